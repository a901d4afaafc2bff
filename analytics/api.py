"""REST: the analytics summary, for staff (the same selector as /analytics/summary/)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics import selectors
from config.api import error_codes


class SummaryQuery(serializers.Serializer):
    minutes = serializers.IntegerField(min_value=1, max_value=1440, default=60)


class SummaryView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        parameters=[SummaryQuery],
        responses={200: OpenApiTypes.OBJECT},
        extensions=error_codes("invalid", "permission_denied"),
    )
    def get(self, request):
        """Messages per minute, active users, top rooms and users, connections, push latency."""
        query = SummaryQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        return Response(selectors.summary(minutes=query.validated_data["minutes"]))
