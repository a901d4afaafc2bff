"""The accounts app's configuration."""

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """API tokens: how programs authenticate (REST and WebSocket)."""

    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts import schema  # noqa: F401 - registers the OpenAPI extension
