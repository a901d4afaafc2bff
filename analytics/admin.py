"""The admin of behaviour records and connection sessions."""

from django.contrib import admin

from analytics.models import BehaviourRecord, ConnectionSession


@admin.register(BehaviourRecord)
class BehaviourRecordAdmin(admin.ModelAdmin):
    list_display = ["type", "room", "user", "occurred_at", "latency_ms"]
    list_filter = ["type", "topic"]
    search_fields = ["room", "user"]


@admin.register(ConnectionSession)
class ConnectionSessionAdmin(admin.ModelAdmin):
    list_display = ["session", "user", "room", "connected_at", "disconnected_at", "duration_s"]
