"""The chat app's configuration: connects the access-change receivers when Django starts."""

from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from chat import access  # noqa: F401 - connects the access.revoked receivers
