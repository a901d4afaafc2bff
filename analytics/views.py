"""The analytics read API (staff only). REST clients and the dashboard use the same selector."""

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from analytics import dashboard as live
from analytics import selectors


@staff_member_required
def dashboard(request: HttpRequest) -> HttpResponse:
    """The live dashboard: rendered now, then updated by pushes over /ws/dashboard/."""
    context = {"snapshot": live.snapshot(), "minutes": live.WINDOW_MINUTES}
    return render(request, "analytics/dashboard.html", context)


@staff_member_required
def summary(request: HttpRequest) -> JsonResponse:
    try:
        minutes = int(request.GET.get("minutes", "60"))
    except ValueError:
        minutes = 0
    if not 1 <= minutes <= 1440:
        return JsonResponse(
            {"code": "invalid_minutes", "detail": "minutes must be an integer from 1 to 1440"},
            status=400,
        )
    return JsonResponse(selectors.summary(minutes=minutes))
