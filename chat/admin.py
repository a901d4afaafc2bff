"""Admin: saving a new Message here writes and publishes it like any other write path
(Message.save: a batch of one), and its body meets the post action's rule (``Message.body``'s
validator, chat.validation: a bad body is a form error); deleting one is moderation through
chat.actions.delete_message (a tombstone, pushed live)."""

from django.contrib import admin

from chat import actions
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
    readonly_fields = ["seq", "created_at", "edited_at", "deleted_at"]
    raw_id_fields = ["author"]

    def get_readonly_fields(self, request, obj=None):
        # A saved message changes only through actions (edit by its author, delete).
        fixed = ["room", "author", "body"] if obj is not None else []
        return [*fixed, *self.readonly_fields]

    def delete_model(self, request, obj) -> None:
        actions.delete_message(user=request.user, message=obj)

    def delete_queryset(self, request, queryset) -> None:
        for message in queryset.select_related("room", "author"):
            actions.delete_message(user=request.user, message=message)


@admin.register(OutboxEvent)
class OutboxEventAdmin(admin.ModelAdmin):
    list_display = ["id", "type", "room", "seq", "created_at", "published_at"]
    list_filter = ["type", ("published_at", admin.EmptyFieldListFilter)]
    readonly_fields = [f.name for f in OutboxEvent._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False
