"""Pages. The full chat UI is built on these in a later step; they stay thin."""

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from chat import selectors

RECENT_HISTORY = 50


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "chat/home.html", {"rooms": selectors.rooms_for_user(user=request.user)})


@login_required
def room(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        room = selectors.room_for_user(user=request.user, slug=slug)
    except selectors.RoomAccessError as exc:
        raise Http404(exc.detail) from None
    history_from = max(0, room.last_seq - RECENT_HISTORY)
    return render(request, "chat/room.html", {"room": room, "history_from": history_from})
