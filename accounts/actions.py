"""Account actions: deleting a user for good (admin, ``manage.py user delete``).

One function per action, as in chat.actions; the admin and the command both call it.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module

from django.conf import settings
from django.contrib.auth import SESSION_KEY, get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.sessions.models import Session
from django.db import transaction
from django.db.models import ProtectedError
from django.utils import timezone

from accounts import avatars
from accounts.models import ApiToken, Preference
from analytics import erasure
from chat import departure
from chat.errors import Refused

# Session engines whose sessions can be listed (the database table); the others' sessions of
# a deleted user stay until they expire but authenticate nobody (their user id is gone).
_LISTABLE_SESSIONS = (
    "django.contrib.sessions.backends.db",
    "django.contrib.sessions.backends.cached_db",
)


class AccountError(Refused):
    """A request the account action refuses; nothing was changed."""


@dataclass(frozen=True)
class Deletion:
    """What deleting a user did."""

    username: str
    messages: int  # tombstoned or re-attributed
    memberships: int  # ended, each with a room.left event
    rooms_handed_over: list[tuple[str, str | None]]  # (room slug, new owner's username or None)
    tokens: int
    sessions: int


def set_theme(*, user: AbstractBaseUser, theme: str) -> str:
    """Keep ``user``'s colour theme: "light" or "dark", or "system" to follow the browser's
    prefers-color-scheme again. Returns the stored value ("" for system). Raises AccountError
    (``bad_request``) for anything else, changing nothing."""
    if theme not in (*Preference.THEMES, "system"):
        raise AccountError("bad_request", "theme must be light, dark or system")
    stored = "" if theme == "system" else theme
    Preference.objects.update_or_create(user=user, defaults={"theme": stored})
    return stored


def set_avatar(*, user: AbstractBaseUser, data: bytes | None) -> int:
    """Keep ``user``'s avatar: ``data`` is the uploaded file (checked and re-encoded by
    accounts.avatars), None removes it (initials again). Returns the new avatar version.
    Raises AccountError (``bad_request``) for a file that is not an acceptable picture,
    changing nothing."""
    picture = None
    if data is not None:
        try:
            picture = avatars.normalise(data)
        except avatars.AvatarRefused as exc:
            raise AccountError("bad_request", str(exc)) from exc
    with transaction.atomic():
        preference, _ = Preference.objects.select_for_update().get_or_create(user=user)
        preference.avatar = picture
        preference.avatar_version += 1
        preference.save(update_fields=["avatar", "avatar_version"])
    return preference.avatar_version


def user_theme(user: AbstractBaseUser) -> str:
    """``user``'s chosen theme, "" when none (follow the system) or anonymous."""
    if not user.is_authenticated:
        return ""
    return Preference.objects.filter(user=user).values_list("theme", flat=True).first() or ""


def placeholder_user() -> AbstractBaseUser:
    """The "deleted user" account (``PARLEY_DELETED_USER_NAME``), made on first use: inactive,
    with no usable password, so nobody logs in or authenticates a token as it. Raises
    AccountError if a real account already holds that name."""
    name = settings.PARLEY_DELETED_USER_NAME
    user, created = get_user_model().objects.get_or_create(
        username=name, defaults={"is_active": False}
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    elif user.is_active or user.has_usable_password():
        raise AccountError(
            "placeholder_taken",
            f"the account {name!r} is a real user; set PARLEY_DELETED_USER_NAME to a free name",
        )
    return user


def delete_user(*, user: AbstractBaseUser, mode: str | None = None) -> Deletion:
    """Delete ``user`` for good, in ONE transaction (a hook on the user's deletion sees a single
    commit; a failure changes nothing):

    - rooms they own pass to an heir (chat.departure.hand_over_rooms); direct conversations
      titled with their name are titled with the placeholder's;
    - their messages are tombstoned or re-attributed to the placeholder account, by ``mode``
      (default ``PARLEY_DELETED_USER_MESSAGES``), each with its change number and event;
    - their memberships end (room.left each); mentions of them, tokens and sessions go;
    - published outbox rows naming them go (chat.departure.forget_published_events), and the
      room events kept for replays name the placeholder (chat.departure.forget_room_events);
    - analytics forgets their username (analytics.erasure.forget_user);
    - the account row goes.

    Events are published after commit and name the placeholder, never the old username.
    Raises AccountError for the placeholder account itself, or when the user posted during
    the deletion (nothing changed; run it again).
    """
    mode = mode or settings.PARLEY_DELETED_USER_MESSAGES
    if mode not in departure.MODES:
        raise AccountError("bad_mode", f"mode must be one of {departure.MODES}, not {mode!r}")
    with transaction.atomic():
        shown_as = placeholder_user()
        if user.pk == shown_as.pk:
            raise AccountError("placeholder", "the placeholder account cannot be deleted")
        username = user.get_username()
        handed = departure.hand_over_rooms(user=user)
        departure.rename_direct_rooms(user=user, shown_as=shown_as)
        messages = departure.release_messages(user=user, shown_as=shown_as, mode=mode)
        memberships = departure.leave_all_rooms(user=user, shown_as=shown_as)
        tokens = ApiToken.objects.filter(user=user).count()
        sessions = _end_sessions(user)
        departure.forget_published_events(username=username)
        departure.forget_room_events(username=username, shown_as=shown_as)
        erasure.forget_user(username=username, shown_as=shown_as.get_username(), at=timezone.now())
        try:
            user.delete()  # tokens and mentions of them cascade
        except ProtectedError:  # a message was posted after release_messages looked
            raise AccountError(
                "busy", f"{username!r} posted during the deletion; nothing changed, try again"
            ) from None
    return Deletion(
        username=username,
        messages=messages,
        memberships=memberships,
        rooms_handed_over=[(r.slug, h.get_username() if h else None) for r, h in handed],
        tokens=tokens,
        sessions=sessions,
    )


def _end_sessions(user: AbstractBaseUser) -> int:
    """Delete the user's sessions (every session is read: Django does not index them by user)."""
    if settings.SESSION_ENGINE not in _LISTABLE_SESSIONS:
        return 0
    store = import_module(settings.SESSION_ENGINE).SessionStore
    mine = str(user.pk)
    keys = [
        session.session_key
        for session in Session.objects.iterator(chunk_size=1000)
        if session.get_decoded().get(SESSION_KEY) == mine
    ]
    for key in keys:
        store(session_key=key).delete()
    return len(keys)
