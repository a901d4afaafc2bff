"""The WebSocket consumers of chat, one module per concept:

- ``room``: ``/ws/rooms/<slug>/``, the transport around a chat.delivery.RoomDelivery;
  ``signals``: its presence and typing;
- ``mux``: ``/ws/``, one socket following many rooms, a room socket's guarantees per room;
- ``stream``: one room's delivery on a socket (live events, replays, access, posts), shared
  by the room socket and each ``/ws/`` subscription;
- ``user``: ``/ws/me/``, room activity and mentions of a signed-in user;
- ``base``: what both share (listening on groups, pushing pre-made frames, the access gate);
- ``direct``: the one place the consumer loop departs from channels' (memory), documented.
"""

from chat.consumers.mux import MuxConsumer
from chat.consumers.room import RoomConsumer
from chat.consumers.user import UserConsumer

__all__ = ["MuxConsumer", "RoomConsumer", "UserConsumer"]
