"""/api/: the REST API, its OpenAPI schema, interactive docs (no CDN) and the AsyncAPI document
of the WebSocket protocol."""

from django.urls import path
from django.views.decorators.http import require_safe
from django.views.static import serve
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from accounts.api import TokenViewSet
from analytics.api import SummaryView
from chat.api.views import MentionViewSet, MeView, RoomViewSet
from config.settings.base import BASE_DIR

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("rooms", RoomViewSet, basename="room")
router.register("mentions", MentionViewSet, basename="mention")
router.register("tokens", TokenViewSet, basename="token")

urlpatterns = [
    *router.urls,
    path("me/", MeView.as_view(), name="api-me"),
    path("analytics/summary/", SummaryView.as_view(), name="api-analytics-summary"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script as a file: the page has no inline
    # script, as the Content-Security-Policy (web/middleware.py) requires.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path(
        "asyncapi.yaml",
        require_safe(serve),  # a document: GET and HEAD only (others: 405)
        {"path": "asyncapi.yaml", "document_root": BASE_DIR / "docs"},
        name="api-asyncapi",
    ),
]
