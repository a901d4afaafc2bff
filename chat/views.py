"""Pages: thin views over chat.selectors (reads) and chat.actions (every change)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AbstractBaseUser
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.avatars import avatar_urls
from chat import actions, limits, refusals, selectors
from chat.forms import InviteForm, RoomForm, SignUpForm
from chat.models import Membership, Mention, Room

RECENT_HISTORY = 50
# Opening a room at an older message (first unread, or ?seq=N) replays from a little before it,
# but never more than this many messages through the socket: beyond, the room opens at the
# oldest replayed message and the reader scrolls up from there.
MAX_REPLAY = 1000
CONTEXT_BEFORE = 10
MODERATORS = (Membership.Role.OWNER, Membership.Role.MODERATOR)


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("home")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and not limits.allow_signup(request.META.get("REMOTE_ADDR", "")):
        refused = _("Too many sign-ups from your address. Please try again later.")
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
        (direct if _is_direct(room) else rooms).append(room)
    _name_direct_rooms(user, direct)
    context = {"rooms": rooms, "direct_rooms": direct, "room_form": room_form, **sidebar(user)}
    return render(request, "chat/home.html", context, status=status)


def _is_direct(room: Room) -> bool:
    return room.is_private and room.slug.startswith(actions.DIRECT_PREFIX)


def _name_direct_rooms(user: AbstractBaseUser, rooms: list[Room]) -> None:
    """Set ``other`` on each direct room: it is shown by the other person's name."""
    others = dict(
        Membership.objects.filter(room__in=[r.pk for r in rooms])
        .exclude(user=user)
        .values_list("room_id", "user__username")
    )
    for room in rooms:
        room.other = others.get(room.pk, room.title)


def sidebar(user: AbstractBaseUser) -> dict:
    """The sidebar of the app's pages: the user's rooms and direct messages, most recent
    activity first, with unread counts and a preview of the newest message."""
    rooms = selectors.sidebar_rooms(user=user)
    direct = [room for room in rooms if _is_direct(room)]
    _name_direct_rooms(user, direct)
    for room in rooms:
        room.is_direct = _is_direct(room)
        room.unread = max(0, room.last_seq - (room.last_read_seq or 0))
    return {
        "side_rooms": rooms,
        "unread_mentions": Mention.objects.filter(user=user, read_at__isnull=True).count(),
    }


@login_required
@require_POST
def create_room(request: HttpRequest) -> HttpResponse:
    form = RoomForm(request.POST)
    if form.is_valid():
        try:
            room = actions.create_room(creator=request.user, **form.cleaned_data)
        except actions.ActionError as exc:
            form.add_error("slug" if exc.code == "already_exists" else None, refusals.text(exc))
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
    """The room: ?seq=N opens it at message N and highlights it; otherwise a room with unread
    messages opens at the first of them. A ?seq that is not a number is a 400."""
    room = _readable_room(request, slug)
    target = request.GET.get("seq")
    if target is not None and not target.isdigit():
        return HttpResponseBadRequest(_("seq must be a message number"), content_type="text/plain")
    membership = Membership.objects.filter(user=request.user, room=room).first()
    role = membership.role if membership else None
    is_direct = _is_direct(room)
    members = list(selectors.members(room=room))
    last_read = membership.last_read_seq if membership else 0
    highlight = int(target) if target and 1 <= int(target) <= room.last_seq else None
    first_unread = last_read + 1 if membership and last_read < room.last_seq else None
    anchor = highlight or first_unread
    # The socket resumes from just before the recent history (or the anchor), so it is replayed
    # into the page; older messages come from the REST API as the reader scrolls up.
    history_from = max(0, room.last_seq - RECENT_HISTORY)
    if anchor is not None:
        history_from = max(min(history_from, anchor - 1 - CONTEXT_BEFORE), 0)
        history_from = max(history_from, room.last_seq - MAX_REPLAY)
    page = {
        "slug": room.slug,
        "historyFrom": history_from,
        "me": request.user.get_username(),
        "isMember": membership is not None,
        "lastReadSeq": last_read,
        "firstUnread": first_unread,
        "highlightSeq": highlight,
        "canModerate": role in MODERATORS or request.user.is_staff,
        "csrfToken": get_token(request),
        "messagesUrl": reverse("room-messages", kwargs={"slug": room.slug}),  # the REST API
        "readUrl": reverse("room-read", kwargs={"slug": room.slug}),
        # Uploaded pictures of the members who have one (the others: initials); anyone else
        # the page meets later is looked up at avatarsUrl (static/parley/avatars.js).
        "avatars": avatar_urls([m.user.get_username() for m in members]),
        "avatarsUrl": reverse("avatar-lookup"),
        # A refusal's detail in the reader's language (chat.refusals; empty in English).
        "refusals": refusals.for_scripts(),
    }
    context = {
        "room": room,
        "role": role,
        "is_direct": is_direct,
        "members": members,
        "can_invite": room.is_private and not is_direct and role in MODERATORS,
        "can_remove": not is_direct and (role in MODERATORS or request.user.is_staff),
        "invite_form": InviteForm(),
        "page": page,
        **sidebar(request.user),
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
        messages.error(request, refusals.text(exc))
    return _back(request, reverse("room", args=[room.slug]))


@login_required
@require_POST
def leave(request: HttpRequest, slug: str) -> HttpResponse:
    room = _readable_room(request, slug)
    if actions.leave_room(user=request.user, room=room):
        messages.success(request, _("You left %(title)s.") % {"title": room.title})
    return _back(request, reverse("home"))


@login_required
@require_POST
def invite(request: HttpRequest, slug: str) -> HttpResponse:
    room = _readable_room(request, slug)
    form = InviteForm(request.POST)
    if not form.is_valid():
        for error in form.errors.get("username", [_("Give a username.")]):
            messages.error(request, error)
        return redirect("room", room.slug)
    try:
        membership = actions.invite_username(
            inviter=request.user, room=room, username=form.cleaned_data["username"]
        )
    except actions.ActionError as exc:
        messages.error(request, refusals.text(exc))
    else:
        name = membership.user.get_username()
        messages.success(request, _("%(name)s is a member now.") % {"name": name})
    return redirect("room", room.slug)


@login_required
@require_POST
def remove_member(request: HttpRequest, slug: str) -> HttpResponse:
    room = _readable_room(request, slug)
    username = request.POST.get("username", "")
    try:
        actions.remove_member(remover=request.user, room=room, username=username)
    except actions.ActionError as exc:
        messages.error(request, refusals.text(exc))
    else:
        messages.success(request, _("%(name)s is no longer a member.") % {"name": username})
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
        messages.error(request, refusals.text(exc))
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
    return render(request, "chat/mentions.html", {"mentions": rows, **sidebar(user)})


@login_required
@require_POST
def mention_read(request: HttpRequest, mention_id: int) -> HttpResponse:
    if actions.mark_mention_read(user=request.user, mention_id=mention_id) is None:
        raise Http404("no such mention")
    return _back(request, reverse("mentions"))
