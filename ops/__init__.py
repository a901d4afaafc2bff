"""Operations: the process supervisor behind ``manage.py serve``, health and readiness probes,
Prometheus metrics (multiprocess), JSON logs and the graceful drain on SIGTERM."""
