"""WebSocket origin check.

Cross-site WebSocket hijacking needs a browser, and browsers always send ``Origin``: a handshake
with an Origin must name one of ALLOWED_HOSTS (channels' AllowedHostsOriginValidator). A handshake
without one comes from a program, not a page, and is let through to authentication.
"""

from __future__ import annotations

from urllib.parse import urlparse

from channels.security.websocket import AllowedHostsOriginValidator


class BrowserOriginCheck:
    """``check(scope)``: may this handshake go on? ALLOWED_HOSTS is read when it is made."""

    def __init__(self) -> None:
        # channels' validator, used for its checks only (never as an application)
        self.validator = AllowedHostsOriginValidator(None)

    def __call__(self, scope) -> bool:
        """No Origin, or an allowed one (the last Origin header counts; one that does not
        decode is skipped), as channels' OriginValidator decides."""
        seen, parsed = False, None
        for name, value in scope.get("headers", []):
            if name == b"origin":
                seen = True
                try:
                    parsed = urlparse(value.decode("latin1"))
                except UnicodeDecodeError:
                    pass
        return not seen or self.validator.valid_origin(parsed)
