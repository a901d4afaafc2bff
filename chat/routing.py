from django.urls import path

from chat.consumers import RoomConsumer, UserConsumer

websocket_urlpatterns = [
    path("ws/rooms/<slug:slug>/", RoomConsumer.as_asgi()),
    path("ws/me/", UserConsumer.as_asgi()),
]
