"""REST endpoints for rooms, messages, read state and mentions: thin calls to actions and
selectors, so REST, WebSocket, admin and shell share every rule."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from chat import actions, idempotency, ratelimit, selectors
from chat.api import serializers as s
from chat.errors import Refused
from chat.models import Mention, Message, Room
from web.api import error_codes, note_quota

IDEMPOTENT_REPLAYED = OpenApiParameter(
    "Idempotent-Replayed",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    response=[200],
    required=True,
    enum=["true"],
    description="The answer to a retry: the message the key created earlier.",
)
SEQ = OpenApiParameter("seq", int, OpenApiParameter.PATH, description="The message's seq.")
IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description=(
        "Makes a retry safe: the same key with the same body and room returns the message it "
        "created (200, Idempotent-Replayed: true), for as long as that message exists; the "
        "key reused for another body or room is a 409 (idempotency_key_reused). 1 to 200 "
        "characters. A UUID is the WebSocket client_id of the same post (one namespace per "
        "user: a retry may switch transport)."
    ),
)


def _room(request, slug: str) -> Room:
    """The room if the caller may read it (404 unknown, or private and not a member: the same
    answer, see selectors.room_for_user)."""
    try:
        return selectors.room_for_user(user=request.user, slug=slug)
    except selectors.RoomAccessError as exc:
        code = {4404: "not_found"}.get(exc.code, "not_authenticated")
        raise Refused(code, exc.detail) from None


def _annotated(request, room: Room) -> Room:
    return selectors.rooms_for_user(user=request.user).get(pk=room.pk)


class RoomViewSet(viewsets.ViewSet):
    lookup_field = "slug"
    lookup_value_regex = "[-a-zA-Z0-9_]+"

    @extend_schema(extensions=error_codes(), responses={200: s.RoomSerializer(many=True)})
    def list(self, request):
        """Rooms the caller can read, with the caller's role and unread count."""
        rooms = selectors.rooms_for_user(user=request.user)
        return Response(s.RoomSerializer(rooms, many=True).data)

    @extend_schema(
        extensions=error_codes("already_exists", "reserved_slug"),
        request=s.RoomCreateSerializer,
        responses={201: s.RoomSerializer},
    )
    def create(self, request):
        """Create a room; the caller becomes its owner."""
        data = _valid(s.RoomCreateSerializer, request.data)
        room = actions.create_room(creator=request.user, **data)
        return Response(s.RoomSerializer(_annotated(request, room)).data, status=201)

    @extend_schema(extensions=error_codes("not_found"), responses={200: s.RoomSerializer})
    def retrieve(self, request, slug: str):
        return Response(s.RoomSerializer(_annotated(request, _room(request, slug))).data)

    @extend_schema(
        extensions=error_codes("not_found", "forbidden"),
        request=None,
        responses={200: s.MembershipSerializer},
    )
    @action(detail=True, methods=["post"])
    def join(self, request, slug: str):
        """Join a public room (a member already: nothing changes)."""
        membership = actions.join_room(user=request.user, room=_room(request, slug))
        return Response(s.MembershipSerializer(membership).data)

    @extend_schema(extensions=error_codes("not_found"), request=None, responses={204: None})
    @action(detail=True, methods=["post"])
    def leave(self, request, slug: str):
        """Leave the room (not a member: nothing changes)."""
        actions.leave_room(user=request.user, room=_room(request, slug))
        return Response(status=204)

    @extend_schema(
        extensions=error_codes("not_found"), responses={200: s.MembershipSerializer(many=True)}
    )
    @action(detail=True, methods=["get"])
    def members(self, request, slug: str):
        memberships = selectors.members(room=_room(request, slug))
        return Response(s.MembershipSerializer(memberships, many=True).data)

    @extend_schema(
        extensions=error_codes(
            "not_found", "forbidden", "no_such_user", "public_room", "direct_room"
        ),
        request=s.InviteSerializer,
        responses={200: s.MembershipSerializer},
    )
    @action(detail=True, methods=["post"])
    def invite(self, request, slug: str):
        """Add a user to a private room (owner or moderators only)."""
        room = _room(request, slug)
        username = _valid(s.InviteSerializer, request.data)["username"]
        membership = actions.invite_username(inviter=request.user, room=room, username=username)
        return Response(s.MembershipSerializer(membership).data)

    @extend_schema(
        extensions=error_codes("not_found", "not_a_member"),
        request=s.ReadSerializer,
        responses={200: s.MembershipSerializer},
    )
    @action(detail=True, methods=["post"])
    def read(self, request, slug: str):
        """Mark the room read up to ``seq`` (never moves backwards)."""
        seq = _valid(s.ReadSerializer, request.data)["seq"]
        membership = actions.mark_read(user=request.user, room=_room(request, slug), seq=seq)
        return Response(s.MembershipSerializer(membership).data)

    @extend_schema(
        extensions=error_codes("not_found", "invalid"),
        methods=["GET"],
        parameters=[s.MessagePageQuery],
        responses={200: s.MessagePageSerializer},
    )
    @extend_schema(
        extensions=error_codes(
            "not_found",
            "forbidden",
            "body_required",
            "body_invalid",
            "body_too_long",
            "invalid_idempotency_key",
            "idempotency_key_reused",
            "rate_limited",
        ),
        methods=["POST"],
        parameters=[IDEMPOTENCY_KEY, IDEMPOTENT_REPLAYED],
        request=s.MessageCreateSerializer,
        responses={
            201: s.MessageSerializer,
            200: OpenApiResponse(s.MessageSerializer, description="an Idempotency-Key retry"),
        },
    )
    @action(detail=True, methods=["get", "post"])
    def messages(self, request, slug: str):
        """GET: a page of messages by seq. POST: post a message (pushed to every socket)."""
        room = _room(request, slug)
        if request.method == "POST":
            return self._post(request, room)
        query = _valid(s.MessagePageQuery, request.query_params)
        page = selectors.message_page(
            room_id=room.pk,
            after_seq=query.get("after_seq"),
            before_seq=query.get("before_seq"),
            limit=query["limit"],
        )
        newest = room.last_seq  # read (with last_change) before the page, by _room
        return Response(
            {
                "results": s.MessageSerializer(page, many=True).data,
                "next_after_seq": page[-1].seq if page and page[-1].seq < newest else None,
                "prev_before_seq": page[0].seq if page and page[0].seq > 1 else None,
                "last_seq": newest,
                "last_change": room.last_change,
            }
        )

    @extend_schema(
        extensions=error_codes(
            "not_found",
            "forbidden",
            "body_required",
            "body_invalid",
            "body_too_long",
            "message_deleted",
        ),
        methods=["PATCH"],
        parameters=[SEQ],
        request=s.MessageCreateSerializer,
        responses={200: s.MessageSerializer},
    )
    @extend_schema(
        # message_deleted: only when a concurrent delete wins the race (a repeat is a 200).
        extensions=error_codes("not_found", "forbidden", "message_deleted"),
        methods=["DELETE"],
        parameters=[SEQ],
        responses={200: s.MessageSerializer},
    )
    @action(detail=True, methods=["patch", "delete"], url_path=r"messages/(?P<seq>[0-9]+)")
    def message(self, request, slug: str, seq: str):
        """PATCH: edit your message. DELETE: delete it (author, room owner or moderator); it
        stays as a tombstone. Both are pushed to every socket (message.edited / .deleted)."""
        room = _room(request, slug)
        message = (
            Message.objects.select_related("room", "author")
            .filter(room=room, seq=_int(seq))
            .first()
        )
        if message is None:
            raise Refused("not_found", f"no message {seq} in {slug!r}")
        if request.method == "PATCH":
            body = s.body_of(request.data)
            message = actions.edit_message(user=request.user, message=message, body=body)
        else:
            message = actions.delete_message(user=request.user, message=message)
        return Response(s.MessageSerializer(message).data)

    def _post(self, request, room: Room) -> Response:
        body = s.body_of(request.data)
        key = request.headers.get("Idempotency-Key")
        client_id = None if key is None else idempotency.client_id_of_key(key)
        try:
            result = actions.post_message(
                author=request.user, room=room, body=body, client_id=client_id
            )
        except actions.ActionError as exc:
            if exc.code != "client_id_reused":
                raise
            raise Refused(
                "idempotency_key_reused",
                "this Idempotency-Key was used for another request (another body or room)",
            ) from None
        finally:
            note_quota(request, ratelimit.post_quota(request.user.pk))
        response = Response(s.MessageSerializer(result.message).data, status=201)
        if not result.created:
            response.status_code = 200
            response["Idempotent-Replayed"] = "true"
        return response


class MeView(APIView):
    @extend_schema(extensions=error_codes(), responses={200: s.MeSerializer})
    def get(self, request):
        """Who you are, and your rooms with your positions in them: where each room stands
        (last_seq, last_change: resume a socket from there) and how far you read."""
        user = request.user
        memberships = selectors.memberships_of(user=user)
        return Response(
            {
                "id": user.pk,
                "username": user.get_username(),
                "is_staff": user.is_staff,
                "rooms": s.MyRoomSerializer(memberships, many=True).data,
            }
        )


class MentionViewSet(viewsets.ViewSet):
    lookup_value_regex = "[0-9]+"

    @extend_schema(
        extensions=error_codes(),
        parameters=[OpenApiParameter("unread", OpenApiTypes.BOOL, description="only unread")],
        responses={200: s.MentionSerializer(many=True)},
    )
    def list(self, request):
        """The caller's mentions, newest first (at most 200)."""
        mentions = Mention.objects.filter(user=request.user).select_related(
            "message__room", "message__author"
        )
        if request.query_params.get("unread") in ("true", "1"):
            mentions = mentions.filter(read_at__isnull=True)
        return Response(s.MentionSerializer(mentions[:200], many=True).data)

    @extend_schema(
        extensions=error_codes("not_found"),
        request=None,
        parameters=[OpenApiParameter("id", int, OpenApiParameter.PATH)],
        responses={200: s.MentionSerializer},
    )
    @action(detail=True, methods=["post"])
    def read(self, request, pk: str):
        mention = actions.mark_mention_read(user=request.user, mention_id=_int(pk))
        if mention is None:
            raise Refused("not_found", "no such mention")
        return Response(s.MentionSerializer(mention).data)


def _valid(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _int(value: str) -> int:
    return int(value) if value.isascii() and value.isdigit() and len(value) < 19 else 0
