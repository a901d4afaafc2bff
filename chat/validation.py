"""What a message body must be, for every way a message is written: the post action (WebSocket
and REST), edits, the admin's form and a shell's ``Message.save()``.

``check_body`` refuses with the ActionError clients see (``body_required``, ``body_invalid``,
``body_too_long``); ``validate_body`` is the same rule as a Django validator (``Message.body``'s),
so a model form such as the admin's shows it as a form error.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError

from chat.errors import ActionError


def check_body(body: object) -> str:
    """``body`` if it is a message body Parley stores; ActionError otherwise."""
    if not isinstance(body, str) or not body.strip():
        raise ActionError("body_required", "body must be a non-empty string")
    if not _is_storable_text(body):
        raise ActionError("body_invalid", "body contains a NUL or an unpaired surrogate")
    limit = settings.PARLEY["MAX_BODY_CHARS"]
    if len(body) > limit:
        raise ActionError("body_too_long", f"body is longer than {limit} characters")
    return body


def validate_body(body: object) -> None:
    """``check_body`` as a model-field validator: a ValidationError with the refusal's code."""
    try:
        check_body(body)
    except ActionError as exc:
        raise ValidationError(exc.detail, code=exc.code) from None


def _is_storable_text(value: str) -> bool:
    """False for text no database stores alike: a lone surrogate (JSON can escape one, "\\ud800")
    fails to encode, and PostgreSQL refuses NUL characters that SQLite would keep."""
    if "\x00" in value:
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True
