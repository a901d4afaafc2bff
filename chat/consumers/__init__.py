"""The WebSocket consumers of chat, one module per concept:

- ``room``: ``/ws/rooms/<slug>/``, the transport around a chat.delivery.RoomDelivery;
  ``signals``: its presence and typing;
- ``user``: ``/ws/me/``, room activity and mentions of a signed-in user;
- ``base``: what both share (listening on groups, pushing pre-made frames, the access gate);
- ``direct``: the one place the consumer loop departs from channels' (memory), documented.
"""

from chat.consumers.room import RoomConsumer
from chat.consumers.user import UserConsumer

__all__ = ["RoomConsumer", "UserConsumer"]
