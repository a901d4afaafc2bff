"""The analytics app's configuration."""

from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    """The first subscriber of Parley's topics (see issue: durable subscribers)."""

    name = "analytics"
    default_auto_field = "django.db.models.BigAutoField"
