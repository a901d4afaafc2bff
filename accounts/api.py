"""REST: the caller's own API tokens (list, create, revoke)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import permissions, serializers, viewsets
from rest_framework.response import Response

from accounts.authentication import BearerTokenAuthentication
from accounts.models import ApiToken
from accounts.tokens import MAX_LIFETIME, create_token, revoke_token
from chat.errors import Refused
from web.api import error_codes


class TokenSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "hint", "created_at", "last_used_at", "revoked_at", "expires_at"]
        read_only_fields = fields


class NewTokenSerializer(TokenSerializer):
    token = serializers.CharField(read_only=True, help_text="Shown this once only.")

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "token"]
        read_only_fields = fields


class TokenCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, default="default")
    expires_in = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=int(MAX_LIFETIME.total_seconds()),
        help_text="Seconds until the token stops working (default: it does not expire).",
    )
    expires_at = serializers.DateTimeField(
        required=False, help_text="When the token stops working (in the future)."
    )

    def validate(self, attrs):
        if "expires_in" in attrs and "expires_at" in attrs:
            raise serializers.ValidationError("give expires_in or expires_at, not both")
        now = timezone.now()
        if "expires_in" in attrs:
            attrs["expires_at"] = now + timedelta(seconds=attrs.pop("expires_in"))
        elif "expires_at" in attrs and not now < attrs["expires_at"] <= now + MAX_LIFETIME:
            raise serializers.ValidationError(
                {"expires_at": [f"must be in the future, within {MAX_LIFETIME.days} days"]}
            )
        return attrs


class SessionOrStaff(permissions.BasePermission):
    """Listing and creating tokens needs a signed-in session (or staff): a leaked token must
    not be able to mint itself successors that outlive its revocation, or list the others."""

    message = "a request authenticated by an API token cannot list or create tokens: sign in"
    code = "token_cannot_manage_tokens"

    def has_permission(self, request, view) -> bool:
        by_token = isinstance(request.successful_authenticator, BearerTokenAuthentication)
        return not by_token or request.user.is_staff


class TokenViewSet(viewsets.ViewSet):
    lookup_value_regex = "[0-9]+"

    def get_permissions(self):
        allowed = super().get_permissions()
        if self.action in ("list", "create"):
            allowed.append(SessionOrStaff())
        return allowed

    @extend_schema(
        responses={200: TokenSerializer(many=True)},
        extensions=error_codes("token_cannot_manage_tokens"),
    )
    def list(self, request):
        """The caller's tokens. Not with a token (403 token_cannot_manage_tokens) unless staff."""
        return Response(TokenSerializer(ApiToken.objects.filter(user=request.user), many=True).data)

    @extend_schema(
        request=TokenCreateSerializer,
        responses={201: NewTokenSerializer},
        extensions=error_codes("token_cannot_manage_tokens"),
    )
    def create(self, request):
        """Create a token for the caller; the response is the only time it is shown. Not with
        a token (403 token_cannot_manage_tokens) unless staff."""
        data = TokenCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        token, raw = create_token(
            user=request.user,
            name=data.validated_data["name"],
            expires_at=data.validated_data.get("expires_at"),
        )
        token.token = raw
        return Response(NewTokenSerializer(token).data, status=201)

    @extend_schema(
        parameters=[OpenApiParameter("id", int, OpenApiParameter.PATH)],
        responses={204: None},
        extensions=error_codes("not_found"),
    )
    def destroy(self, request, pk: str):
        """Revoke one of the caller's tokens."""
        token_id = int(pk) if pk.isascii() and pk.isdigit() and len(pk) < 19 else 0
        if not revoke_token(token_id=token_id, user=request.user):
            raise Refused("not_found", "no such active token")
        return Response(status=204)
