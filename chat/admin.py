"""Admin: saving a new Message here publishes it like any other write path (Message.save)."""

from django.contrib import admin

from chat.models import Membership, Message, OutboxEvent, Room


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = ["slug", "title", "is_private", "last_seq", "created_at"]
    search_fields = ["slug", "title"]
    inlines = [MembershipInline]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["room", "seq", "author", "body", "created_at"]
    list_filter = ["room"]
    search_fields = ["body"]
    readonly_fields = ["seq", "created_at"]
    raw_id_fields = ["author"]


@admin.register(OutboxEvent)
class OutboxEventAdmin(admin.ModelAdmin):
    list_display = ["id", "type", "room", "seq", "created_at", "published_at"]
    list_filter = ["type", ("published_at", admin.EmptyFieldListFilter)]
    readonly_fields = [f.name for f in OutboxEvent._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False
