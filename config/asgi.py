"""ASGI entry point: HTTP goes to Django, WebSockets to the chat router.

The Django app is built before the consumers are imported, so models load in a ready registry.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
django_asgi_app = get_asgi_application()

from config.routing import websocket_urlpatterns  # noqa: E402
from infra.heap import freeze_startup_heap  # noqa: E402
from realtime.application import Application  # noqa: E402

# HTTP to Django; a WebSocket through the origin check and authentication (a bearer token, in
# the Authorization header or a "bearer.<token>" subprotocol, takes precedence over the session
# cookie) to its consumer by URL: see realtime/application.py.
application = Application(http=django_asgi_app, websocket_routes=websocket_urlpatterns)
freeze_startup_heap()  # what was loaded above is never scanned again (infra/heap.py)
