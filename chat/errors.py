"""The one shape of a refusal that clients see: a stable ``code`` and a human ``detail``."""


class Refused(Exception):
    """A request was refused and nothing was changed. ``extra`` holds documented fields some
    codes add (``rate_limited``: ``retry_after``, whole seconds), sent in the socket's error
    frame and turned into headers by REST."""

    def __init__(self, code: str, detail: str, **extra: object) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.extra = extra


class ActionError(Refused):
    """A request an action (chat.actions) refuses; nothing was changed. ``code`` is stable for
    clients."""


def rate_limited(retry_after: int) -> ActionError:
    """The refusal of a post over the user's message limit."""
    return ActionError("rate_limited", "too many messages, slow down", retry_after=retry_after)
