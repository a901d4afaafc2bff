"""Pages: thin views over chat.selectors (reads) and chat.actions (every change)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from chat import actions, limits, selectors
from chat.forms import InviteForm, RoomForm, SignUpForm
from chat.models import Membership, Mention, Room

RECENT_HISTORY = 50
MODERATORS = (Membership.Role.OWNER, Membership.Role.MODERATOR)


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("home")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and not limits.allow_signup(request.META.get("REMOTE_ADDR", "")):
        refused = "Too many sign-ups from your address. Please try again later."
        context = {"form": SignUpForm(), "refused": refused}  # nothing checked nor created
        response = render(request, "registration/signup.html", context, status=429)
        response["Retry-After"] = str(limits.SIGNUP_WINDOW_SECONDS)
        return response
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("home")
    return render(request, "registration/signup.html", {"form": form})


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return _home(request, RoomForm())


def _home(request: HttpRequest, room_form: RoomForm, status: int = 200) -> HttpResponse:
    user = request.user
    rooms, direct = [], []
    for room in selectors.rooms_for_user(user=user):
        room.unread = selectors.unread(room)
        is_direct = room.is_private and room.slug.startswith(actions.DIRECT_PREFIX)
        (direct if is_direct else rooms).append(room)
    # A direct room is shown by the other person's name.
    others = dict(
        Membership.objects.filter(room__in=[r.pk for r in direct])
        .exclude(user=user)
        .values_list("room_id", "user__username")
    )
    for room in direct:
        room.other = others.get(room.pk, room.title)
    context = {
        "rooms": rooms,
        "direct_rooms": direct,
        "room_form": room_form,
        "unread_mentions": Mention.objects.filter(user=user, read_at__isnull=True).count(),
    }
    return render(request, "chat/home.html", context, status=status)


@login_required
@require_POST
def create_room(request: HttpRequest) -> HttpResponse:
    form = RoomForm(request.POST)
    if form.is_valid():
        try:
            room = actions.create_room(creator=request.user, **form.cleaned_data)
        except actions.ActionError as exc:
            form.add_error("slug" if exc.code == "already_exists" else None, exc.detail)
        else:
            return redirect("room", room.slug)
    return _home(request, form, status=400)


def _readable_room(request: HttpRequest, slug: str) -> Room:
    try:
        return selectors.room_for_user(user=request.user, slug=slug)
    except selectors.RoomAccessError as exc:
        raise Http404(exc.detail) from None


@login_required
@require_GET
def room(request: HttpRequest, slug: str) -> HttpResponse:
    room = _readable_room(request, slug)
    membership = Membership.objects.filter(user=request.user, room=room).first()
    role = membership.role if membership else None
    is_direct = room.is_private and room.slug.startswith(actions.DIRECT_PREFIX)
    members = list(selectors.members(room=room))
    page = {
        "slug": room.slug,
        # The socket resumes from just before the recent history, so it is replayed into the
        # page; older messages come from the REST API as the reader scrolls up.
        "historyFrom": max(0, room.last_seq - RECENT_HISTORY),
        "me": request.user.get_username(),
        "isMember": membership is not None,
        "lastReadSeq": membership.last_read_seq if membership else 0,
        "csrfToken": get_token(request),
        "messagesUrl": reverse("room-messages", kwargs={"slug": room.slug}),  # the REST API
        "readUrl": reverse("room-read", kwargs={"slug": room.slug}),
    }
    context = {
        "room": room,
        "role": role,
        "is_direct": is_direct,
        "members": members,
        "can_invite": room.is_private and not is_direct and role in MODERATORS,
        "invite_form": InviteForm(),
        "page": page,
    }
    return render(request, "chat/room.html", context)


def _back(request: HttpRequest, default: str) -> HttpResponse:
    """Redirect to the form's ``next`` if it is a page of this site, else ``default``."""
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = default
    return redirect(target)


@login_required
@require_POST
def join(request: HttpRequest, slug: str) -> HttpResponse:
    room = _readable_room(request, slug)
    try:
        actions.join_room(user=request.user, room=room)
    except actions.ActionError as exc:
        messages.error(request, exc.detail)
    return _back(request, reverse("room", args=[room.slug]))


@login_required
@require_POST
def leave(request: HttpRequest, slug: str) -> HttpResponse:
    room = _readable_room(request, slug)
    if actions.leave_room(user=request.user, room=room):
        messages.success(request, f"You left {room.title}.")
    return _back(request, reverse("home"))


@login_required
@require_POST
def invite(request: HttpRequest, slug: str) -> HttpResponse:
    room = _readable_room(request, slug)
    form = InviteForm(request.POST)
    if not form.is_valid():
        for error in form.errors.get("username", ["Give a username."]):
            messages.error(request, error)
        return redirect("room", room.slug)
    try:
        membership = actions.invite_username(
            inviter=request.user, room=room, username=form.cleaned_data["username"]
        )
    except actions.ActionError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, f"{membership.user.get_username()} is a member now.")
    return redirect("room", room.slug)


@login_required
@require_http_methods(["GET", "POST"])
def direct(request: HttpRequest, username: str | None = None) -> HttpResponse:
    """Open the private room of the two of you (made on first use): only by POST, which the
    CSRF check covers, so a link or an image on another site cannot make rooms in your name.

    POST /dm/ (the home page's form, ``username``) or POST /dm/<username>/ (a member list's
    button). GET changes nothing: the conversation if it exists already, else a page with the
    button; it answers alike whether or not the name exists (only the POST tells).
    """
    if username is None:
        username = request.POST.get("username", "") or request.GET.get("username", "")
    username = username.strip()
    if request.method == "GET":
        if not username:
            return redirect("home")
        existing = _existing_direct_room(request, username)
        if existing is not None:
            return redirect("room", existing.slug)
        return render(request, "chat/direct.html", {"username": username})
    try:
        room = actions.open_direct_room_with(user=request.user, username=username)
    except actions.ActionError as exc:
        messages.error(request, exc.detail)
        return redirect("home")
    return redirect("room", room.slug)


def _existing_direct_room(request: HttpRequest, username: str) -> Room | None:
    other = get_user_model().objects.filter(username=username).first()
    if other is None or other.pk == request.user.pk:
        return None
    slug = actions.direct_room_slug(request.user, other)
    return Room.objects.filter(slug=slug, memberships__user=request.user).first()


@login_required
@require_GET
def mentions(request: HttpRequest) -> HttpResponse:
    """The user's mentions in rooms they can still read: unread first, newest first."""
    user = request.user
    readable = selectors.rooms_for_user(user=user).values("pk")
    rows = list(
        Mention.objects.filter(user=user, message__room__in=readable)
        .select_related("message__room", "message__author")
        .order_by("-id")[:300]
    )
    rows.sort(key=lambda m: m.read_at is not None)  # stable: newest first within each
    return render(request, "chat/mentions.html", {"mentions": rows})


@login_required
@require_POST
def mention_read(request: HttpRequest, mention_id: int) -> HttpResponse:
    if actions.mark_mention_read(user=request.user, mention_id=mention_id) is None:
        raise Http404("no such mention")
    return _back(request, reverse("mentions"))
