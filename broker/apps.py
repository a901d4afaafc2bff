"""The broker app's configuration."""

from django.apps import AppConfig


class BrokerConfig(AppConfig):
    """Durable subscribers on Redis Streams: consumer groups, workers, dead letters, retention."""

    name = "broker"
    default_auto_field = "django.db.models.BigAutoField"
