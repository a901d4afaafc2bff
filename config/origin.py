"""WebSocket origin check.

Cross-site WebSocket hijacking needs a browser, and browsers always send ``Origin``: a handshake
with an Origin must name one of ALLOWED_HOSTS (channels' AllowedHostsOriginValidator). A handshake
without one comes from a program, not a page, and is let through to authentication.
"""

from channels.security.websocket import AllowedHostsOriginValidator


class BrowserOriginValidator:
    def __init__(self, application) -> None:
        self.application = application
        self.validated = AllowedHostsOriginValidator(application)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not any(
            name == b"origin" for name, _ in scope.get("headers", [])
        ):
            return await self.application(scope, receive, send)
        return await self.validated(scope, receive, send)
