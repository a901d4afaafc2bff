"""The one shape of a refusal that clients see: a stable ``code`` and a human ``detail``."""


class Refused(Exception):
    """A request was refused and nothing was changed."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class ActionError(Refused):
    """A request an action (chat.actions) refuses; nothing was changed. ``code`` is stable for
    clients."""
