"""The user admin: deleting users (the change page's Delete and the "Delete selected users"
action, with Django's confirmation page) goes through accounts.actions.delete_user, so their
messages are tombstoned or re-attributed and everything is published like any other change."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from accounts.actions import AccountError, delete_user

User = get_user_model()


class ParleyUserAdmin(UserAdmin):
    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.get_username() == settings.PARLEY_DELETED_USER_NAME:
            return False  # the placeholder that deleted users' messages are attributed to
        return super().has_delete_permission(request, obj)

    def get_deleted_objects(self, objs, request):
        # A user's messages are PROTECTed from a plain delete; delete_user releases them first
        # (tombstone or placeholder), so they do not stop the deletion here.
        deleted, counts, perms_needed, _protected = super().get_deleted_objects(objs, request)
        return deleted, counts, perms_needed, []

    def delete_model(self, request, obj) -> None:
        self._delete(request, [obj])

    def delete_queryset(self, request, queryset) -> None:
        self._delete(request, list(queryset))

    def _delete(self, request, users: list) -> None:
        for user in users:
            try:
                done = delete_user(user=user)
            except AccountError as exc:
                self.message_user(request, f"{user}: {exc.detail}", messages.ERROR)
                continue
            self.message_user(
                request, f"{done.username}: {done.messages} messages released, account deleted."
            )


if admin.site.is_registered(User):
    admin.site.unregister(User)
admin.site.register(User, ParleyUserAdmin)
