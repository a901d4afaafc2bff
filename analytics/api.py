"""REST: the analytics summary, for staff (the same selector as /analytics/summary/)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics import selectors
from web.api import error_codes


class SummaryQuery(serializers.Serializer):
    minutes = serializers.IntegerField(min_value=1, max_value=1440, default=60)


class SummaryMinuteSerializer(serializers.Serializer):
    minute = serializers.DateTimeField()
    messages = serializers.IntegerField()
    joins = serializers.IntegerField()
    leaves = serializers.IntegerField()
    active_users = serializers.IntegerField()


class SummaryTotalsSerializer(serializers.Serializer):
    messages = serializers.IntegerField()
    joins = serializers.IntegerField()
    leaves = serializers.IntegerField()
    active_users = serializers.IntegerField()


class TopRoomSerializer(serializers.Serializer):
    room = serializers.CharField(help_text="the room's slug")
    messages = serializers.IntegerField()


class TopUserSerializer(serializers.Serializer):
    user = serializers.CharField(help_text="the username")
    messages = serializers.IntegerField()


class ConnectionsSerializer(serializers.Serializer):
    open = serializers.IntegerField()
    closed = serializers.IntegerField(help_text="closed in the window")
    mean_duration_s = serializers.FloatField(allow_null=True)


class PushLatencySerializer(serializers.Serializer):
    count = serializers.IntegerField()
    mean_ms = serializers.FloatField(allow_null=True)
    max_ms = serializers.FloatField(allow_null=True)
    p50_ms = serializers.FloatField(allow_null=True, help_text="measured median, within 0.5 %")
    p95_ms = serializers.FloatField(
        allow_null=True, help_text="measured 95th percentile, within 0.5 %"
    )


class SummarySerializer(serializers.Serializer):
    """The analytics figures of the last ``minutes`` minutes (the current one included)."""

    since = serializers.DateTimeField()
    minutes = SummaryMinuteSerializer(many=True, help_text="one per minute, oldest first")
    totals = SummaryTotalsSerializer()
    top_rooms = TopRoomSerializer(many=True, help_text="at most 10, most messages first")
    top_users = TopUserSerializer(many=True, help_text="at most 10, most messages first")
    connections = ConnectionsSerializer()
    latency = PushLatencySerializer(help_text="push latency: event created to processed")


class SummaryView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        parameters=[SummaryQuery],
        responses={200: SummarySerializer},
        extensions=error_codes("invalid", "permission_denied"),
    )
    def get(self, request):
        """Messages per minute, active users, top rooms and users, connections, push latency."""
        query = SummaryQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        return Response(selectors.summary(minutes=query.validated_data["minutes"]))
