"""A refusal in the reader's language, for pages.

Actions refuse with a stable ``code`` and an English ``detail`` (chat.errors); the API and the
socket keep both as they are, for programs. Pages show the same refusal in the reader's
language: every detail a page can meet is a message id here, written exactly as the English
detail, with ``%(name)s`` where the action puts a value (a username, a slug, a limit). The
value is read back from the detail, so the English page says exactly what the API says. A
detail not listed is shown as it is (tests/ui/test_refusals.py keeps the list complete).
"""

from __future__ import annotations

import re
from functools import cache

from django.utils.translation import gettext, gettext_noop

from chat.errors import Refused

DETAILS: tuple[str, ...] = (
    # posting, editing and deleting (chat.actions, chat.errors, chat.idempotency, chat.limits)
    gettext_noop("body must be a non-empty string"),
    gettext_noop("body contains a NUL or an unpaired surrogate"),
    gettext_noop("body is longer than %(limit)s characters"),
    gettext_noop("too many messages, slow down"),
    gettext_noop("more than %(frames)s frames in %(seconds)s s on this socket"),
    gettext_noop("authentication required"),
    gettext_noop("this account is not active"),
    gettext_noop("you are not a member of this room"),
    gettext_noop("only the author edits a message"),
    gettext_noop("only the author or a moderator deletes a message"),
    gettext_noop("the message was deleted"),
    gettext_noop("this client_id was used for another room"),
    gettext_noop("this client_id was used for another message"),
    # rooms and members
    gettext_noop("private rooms are joined by invitation"),
    gettext_noop("join the room first"),
    gettext_noop("a direct conversation has exactly two members"),
    gettext_noop("only the room's owner, moderators and staff remove members"),
    gettext_noop("%(name)s is not another member of this room"),
    gettext_noop("only the owner removes a moderator or the owner"),
    gettext_noop("the owner cannot be removed"),
    gettext_noop("anyone can join a public room; no invitation needed"),
    gettext_noop("only the room's owner and moderators invite"),
    gettext_noop("there is no user %(name)s"),
    gettext_noop("slugs starting %(prefix)s are direct messages"),
    gettext_noop("a room %(slug)s exists already"),
    gettext_noop("a direct conversation needs another user"),
    gettext_noop("room %(slug)s is not a direct conversation"),
)

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


@cache
def _patterns() -> tuple[tuple[re.Pattern[str], str], ...]:
    """Each message id as a pattern that matches the details it stands for."""
    patterns = []
    for template in DETAILS:
        parts = _PLACEHOLDER.split(template)  # text, name, text, name, ..., text
        regex = "".join(
            re.escape(part) if i % 2 == 0 else f"(?P<{part}>.+?)" for i, part in enumerate(parts)
        )
        patterns.append((re.compile(regex, re.DOTALL), template))
    return tuple(patterns)


def template_for(detail: str) -> tuple[str, dict[str, str]] | None:
    """The message id ``detail`` is written from and its values, or None if it is not listed."""
    for pattern, template in _patterns():
        match = pattern.fullmatch(detail)
        if match:
            return template, match.groupdict()
    return None


def translate(detail: str) -> str:
    """``detail`` in the active language (itself when it is not listed or not translated)."""
    found = template_for(detail)
    if found is None:
        return detail
    template, values = found
    return gettext(template) % values if values else gettext(template)


def text(refusal: Refused) -> str:
    """What a page shows for ``refusal``, in the active language."""
    return translate(refusal.detail)


def for_scripts() -> dict[str, str]:
    """The message ids that the active language translates, with their translations, for a
    page's script (the room page's data): it reads the values back from a detail the same way
    (static/parley/refusals.js). Empty in English."""
    return {template: gettext(template) for template in DETAILS if gettext(template) != template}
