"""The chat product: rooms, memberships and messages, the actions that change them, the
transactional outbox and its relay to Redis, and the room and ``/ws/me/`` sockets."""
