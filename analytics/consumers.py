"""``/ws/dashboard/``: staff see the dashboard's figures and charts change as events are
processed, pushed by the analytics subscriber (analytics.dashboard)."""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from analytics import dashboard
from realtime.sending import ClientGoneSafeSend


class DashboardConsumer(ClientGoneSafeSend, AsyncWebsocketConsumer):
    joined = False

    async def connect(self) -> None:
        await self.accept()
        user = self.scope["user"]
        if not user.is_authenticated:
            await self.close(code=4401, reason="authentication required")
            return
        if not user.is_staff:
            await self.close(code=4403, reason="staff only")
            return
        await self.channel_layer.group_add(dashboard.GROUP, self.channel_name)
        self.joined = True
        await self.send(await database_sync_to_async(dashboard.frame)())

    async def disconnect(self, code: int) -> None:
        if self.joined:
            await self.channel_layer.group_discard(dashboard.GROUP, self.channel_name)

    async def chat_signal(self, message: dict) -> None:
        await self.send(message["frame"])

    async def receive(self, text_data=None, bytes_data=None) -> None:
        pass  # this socket only pushes
