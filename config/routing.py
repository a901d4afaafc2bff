"""WebSocket URL routing: which consumer serves each socket path (the apps' consumers are
wired here, so no app imports another's)."""

from django.urls import path

from analytics.consumers import DashboardConsumer
from chat.consumers import MuxConsumer, RoomConsumer, UserConsumer

websocket_urlpatterns = [
    path("ws/rooms/<slug:slug>/", RoomConsumer.as_asgi()),
    path("ws/me/", UserConsumer.as_asgi()),
    path("ws/", MuxConsumer.as_asgi()),
    path("ws/dashboard/", DashboardConsumer.as_asgi()),
]
