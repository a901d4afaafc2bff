"""REST: the caller's own API tokens (list, create, revoke)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.response import Response

from accounts.models import ApiToken
from accounts.tokens import create_token, revoke_token
from chat.errors import Refused
from config.api import documented_errors


class TokenSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "hint", "created_at", "last_used_at", "revoked_at"]
        read_only_fields = fields


class NewTokenSerializer(TokenSerializer):
    token = serializers.CharField(read_only=True, help_text="Shown this once only.")

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "token"]
        read_only_fields = fields


class TokenCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, default="default")


class TokenViewSet(viewsets.ViewSet):
    lookup_value_regex = "[0-9]+"

    @extend_schema(responses={200: TokenSerializer(many=True), **documented_errors()})
    def list(self, request):
        return Response(TokenSerializer(ApiToken.objects.filter(user=request.user), many=True).data)

    @extend_schema(
        request=TokenCreateSerializer,
        responses={201: NewTokenSerializer, **documented_errors(400)},
    )
    def create(self, request):
        """Create a token for the caller; the response is the only time it is shown."""
        data = TokenCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        token, raw = create_token(user=request.user, name=data.validated_data["name"])
        token.token = raw
        return Response(NewTokenSerializer(token).data, status=201)

    @extend_schema(
        parameters=[OpenApiParameter("id", int, OpenApiParameter.PATH)],
        responses={204: None, **documented_errors(404)},
    )
    def destroy(self, request, pk: str):
        """Revoke one of the caller's tokens."""
        token_id = int(pk) if pk.isascii() and pk.isdigit() and len(pk) < 19 else 0
        if not revoke_token(token_id=token_id, user=request.user):
            raise Refused("not_found", "no such active token")
        return Response(status=204)
