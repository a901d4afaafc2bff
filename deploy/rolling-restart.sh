#!/bin/sh
# Restart Parley's web processes one at a time, with nothing lost (DEPLOY.md, Upgrading):
#   deploy/rolling-restart.sh 8001 8002
# Each one drains on SIGTERM (its sockets move to the others with 1012 and resume), is started
# again, and must answer /readyz 200 before the next one goes; then nginx is given its
# fail_timeout (parley-upstream.conf: 5 s) to try it again. tests/deploy/test_rolling_restart.py
# runs the same sequence (waiting for nginx to route to the new process instead of sleeping).
set -eu
FAIL_TIMEOUT=${FAIL_TIMEOUT:-5}
for port in "$@"; do
  echo "parley-web@$port: restarting"
  systemctl restart "parley-web@$port"
  tries=0
  until curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz"; do
    tries=$((tries + 1))
    if [ "$tries" -gt 120 ]; then
      echo "parley-web@$port: not ready after 60 s; stopping the roll" >&2
      curl -sS "http://127.0.0.1:$port/readyz" >&2 || true
      exit 1
    fi
    sleep 0.5
  done
  echo "parley-web@$port: ready"
  sleep "$FAIL_TIMEOUT"
done
