"""REST representations. Messages use the same shape as WebSocket frames and events."""

from __future__ import annotations

from rest_framework import serializers

from chat import selectors
from chat.models import Membership, Mention, Room
from contract import events


class MessageSerializer(serializers.Serializer):
    """A message: the same fields as in WebSocket frames, plus its change number."""

    id = serializers.IntegerField(read_only=True)
    room = serializers.CharField(read_only=True)
    seq = serializers.IntegerField(read_only=True)
    author = serializers.CharField(read_only=True)
    body = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    edited_at = serializers.DateTimeField(read_only=True, allow_null=True)
    deleted_at = serializers.DateTimeField(read_only=True, allow_null=True)
    change = serializers.IntegerField(
        read_only=True,
        help_text=(
            "The room change number of this message's latest change (creation, edit or "
            "deletion). Not a resume position: resume from a page's last_change."
        ),
    )

    def to_representation(self, instance):
        return {**events.message_data(instance), "change": instance.change}


class MessageCreateSerializer(serializers.Serializer):
    """The request schema only: the body is handed to the action as sent, so REST and the
    WebSocket refuse the same bodies with the same codes (a number is body_required, not
    quietly turned into text)."""

    body = serializers.CharField(max_length=4000, help_text="1 to 4,000 characters")


def body_of(data) -> object:
    """The raw ``body`` of a request, whatever its type (None if absent)."""
    return data.get("body") if isinstance(data, dict) else None


class MessagePageSerializer(serializers.Serializer):
    results = MessageSerializer(many=True)
    next_after_seq = serializers.IntegerField(
        allow_null=True,
        help_text=(
            "Pass as after_seq for the next (newer) page; null when this page ends at the "
            "room's newest message (last_seq)."
        ),
    )
    prev_before_seq = serializers.IntegerField(
        allow_null=True,
        help_text=(
            "Pass as before_seq for the previous (older) page; null when this page starts at "
            "seq 1 or is empty."
        ),
    )
    last_seq = serializers.IntegerField(help_text="The room's newest seq, read before the page.")
    last_change = serializers.IntegerField(
        help_text=(
            "The room's change number, read before the page: every change up to it is in "
            "the page. Resume the WebSocket with after_seq = the highest seq you paged and "
            "after_change = the smallest last_change of the pages you read."
        )
    )


class MessagePageQuery(serializers.Serializer):
    after_seq = serializers.IntegerField(
        required=False,
        min_value=0,
        max_value=2**62,
        help_text=(
            "The page of the messages after this seq, oldest first (0: from the first). Not "
            "with before_seq (400 invalid)."
        ),
    )
    before_seq = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=2**62,
        help_text=(
            "The page of the messages just before this seq, oldest first. Not with after_seq. "
            "Neither given: the newest page."
        ),
    )
    limit = serializers.IntegerField(
        required=False, min_value=1, max_value=200, default=50, help_text="Messages per page."
    )

    def validate(self, attrs):
        if "after_seq" in attrs and "before_seq" in attrs:
            raise serializers.ValidationError("give after_seq or before_seq, not both")
        return attrs


class RoomSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField()
    unread = serializers.SerializerMethodField()

    class Meta:
        model = Room
        fields = [
            "slug",
            "title",
            "is_private",
            "last_seq",
            "last_change",
            "created_at",
            "role",
            "unread",
        ]
        read_only_fields = ["last_seq", "last_change", "created_at"]

    def get_role(self, room) -> str | None:
        return getattr(room, "role", None)

    def get_unread(self, room) -> int | None:
        """Messages after the caller's read position; null if not a member."""
        if not hasattr(room, "last_read_seq"):
            return None
        return selectors.unread(room)


class RoomCreateSerializer(serializers.Serializer):
    slug = serializers.SlugField(max_length=64)
    title = serializers.CharField(max_length=200)
    is_private = serializers.BooleanField(default=False)


class MembershipSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.username", read_only=True)
    room = serializers.CharField(source="room.slug", read_only=True)

    class Meta:
        model = Membership
        fields = ["user", "room", "role", "last_read_seq", "joined_at"]
        read_only_fields = fields


class InviteSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)


class ReadSerializer(serializers.Serializer):
    seq = serializers.IntegerField(min_value=0, max_value=2**62)


class MentionSerializer(serializers.ModelSerializer):
    message = MessageSerializer(read_only=True)

    class Meta:
        model = Mention
        fields = ["id", "message", "created_at", "read_at"]
        read_only_fields = fields


class MyRoomSerializer(serializers.ModelSerializer):
    """A room of the caller's with the caller's positions in it."""

    slug = serializers.CharField(source="room.slug", read_only=True)
    title = serializers.CharField(source="room.title", read_only=True)
    is_private = serializers.BooleanField(source="room.is_private", read_only=True)
    last_seq = serializers.IntegerField(source="room.last_seq", read_only=True)
    last_change = serializers.IntegerField(source="room.last_change", read_only=True)
    unread = serializers.SerializerMethodField()

    class Meta:
        model = Membership
        fields = [
            "slug",
            "title",
            "is_private",
            "role",
            "last_seq",
            "last_change",
            "last_read_seq",
            "unread",
        ]
        read_only_fields = fields

    def get_unread(self, membership) -> int:
        return max(0, membership.room.last_seq - membership.last_read_seq)


class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    is_staff = serializers.BooleanField()
    rooms = MyRoomSerializer(many=True, help_text="The rooms you are a member of, by slug.")
