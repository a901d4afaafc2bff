"""The admin of subscribers' state and dead letters."""

from django.contrib import admin

from broker.models import DeadLetter, SubscriberState


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin):
    """Events a subscriber kept failing on. Re-apply them with ``manage.py redrive NAME``."""

    list_display = ["subscriber", "topic", "stream_id", "attempts", "failed_at", "redriven_at"]
    list_filter = ["subscriber", "topic", ("redriven_at", admin.EmptyFieldListFilter)]
    readonly_fields = [f.name for f in DeadLetter._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(SubscriberState)
class SubscriberStateAdmin(admin.ModelAdmin):
    list_display = ["subscriber", "processed", "last_processed_at"]
    readonly_fields = ["subscriber", "processed", "last_processed_at", "last_event_ts"]
