"""Account pages: a signed-in user's API tokens (list, create, revoke), their avatar and their
data export; who has an avatar, for the room page."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.actions import AccountError, set_avatar, set_theme
from accounts.avatars import AVATAR_MAX_BYTES, avatar_urls
from accounts.export import aexport_chunks
from accounts.models import ApiToken, Preference
from accounts.tokens import create_token, parse_lifetime, revoke_token

# The lifetimes the page offers (any other value is refused and creates nothing).
LIFETIMES = {
    "7d": gettext_lazy("in 7 days"),
    "30d": gettext_lazy("in 30 days"),
    "90d": gettext_lazy("in 90 days"),
    "365d": gettext_lazy("in a year"),
}
# Names one avatar lookup answers for at most (a page asks for the few it has just met).
AVATAR_LOOKUP_MAX = 50


@login_required
@require_http_methods(["GET", "POST"])
def tokens(request: HttpRequest) -> HttpResponse:
    """The account page: API tokens (POST creates one), the avatar, the data download."""
    new_token, status = None, 200
    if request.method == "POST":
        name = request.POST.get("name", "").strip()[:100] or "default"
        expires = request.POST.get("expires", "")
        if expires and expires not in LIFETIMES:
            messages.error(request, _("Choose an expiry from the list."))
            status = 400
        else:
            expires_at = timezone.now() + parse_lifetime(expires) if expires else None
            _record, new_token = create_token(user=request.user, name=name, expires_at=expires_at)
    return _account_page(request, new_token=new_token, status=status)


def _account_page(request: HttpRequest, *, new_token: str | None, status: int) -> HttpResponse:
    preference = Preference.objects.filter(user=request.user).only("avatar_version").first()
    return render(
        request,
        "accounts/tokens.html",
        {
            "tokens": ApiToken.objects.filter(user=request.user),
            "new_token": new_token,
            "lifetimes": LIFETIMES.items(),
            "avatar_version": preference.avatar_version if preference else 0,
            "has_avatar": Preference.objects.filter(
                user=request.user, avatar__isnull=False
            ).exists(),
        },
        status=status,
    )


@login_required
@require_POST
def revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    if revoke_token(token_id=token_id, user=request.user):
        messages.success(request, _("Token revoked."))
    else:
        messages.error(request, _("No such active token."))
    return redirect("tokens")


@login_required
@require_GET
def export(request: HttpRequest) -> HttpResponse:
    """The caller's data as a JSON download (accounts.export). Staff may name anyone with
    ``?username=``; anyone else naming another user gets 403 and nothing of theirs."""
    user = request.user
    username = request.GET.get("username", user.get_username())
    if "\x00" in username:
        return JsonResponse({"code": "bad_request", "detail": "invalid username"}, status=400)
    if username != user.get_username():
        if not user.is_staff:
            return JsonResponse({"code": "forbidden", "detail": "only your own data"}, status=403)
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            return JsonResponse({"code": "not_found", "detail": "no such user"}, status=404)
    response = StreamingHttpResponse(aexport_chunks(user), content_type="application/json")
    name = f"parley-{user.get_username()}.json".replace('"', "")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@login_required
@require_POST
def theme(request: HttpRequest) -> HttpResponse:
    """Keep the caller's theme (form field ``theme``: light, dark or system), for every browser
    they use; the pages read it (accounts.context_processors). 400 with nothing changed for
    another value. Session and CSRF token, like every form of the pages."""
    try:
        stored = set_theme(user=request.user, theme=request.POST.get("theme", ""))
    except AccountError as exc:
        return JsonResponse({"code": exc.code, "detail": exc.detail}, status=400)
    return JsonResponse({"theme": stored or "system"})


@login_required
@require_POST
def avatar_upload(request: HttpRequest) -> HttpResponse:
    """Set the caller's avatar from the ``avatar`` file (``remove`` set: back to initials).
    A file that is not an acceptable picture: the account page with 400 and the reason; the
    kept avatar is unchanged."""
    upload = request.FILES.get("avatar")
    if "remove" in request.POST:
        set_avatar(user=request.user, data=None)
        messages.success(request, _("Avatar removed."))
        return redirect("tokens")
    try:
        # Read one byte over the limit at most: a huge upload is refused, not loaded.
        data = upload.read(AVATAR_MAX_BYTES + 1) if upload else b""
        set_avatar(user=request.user, data=data)
    except AccountError as exc:
        messages.error(request, exc.detail)
        return _account_page(request, new_token=None, status=400)
    messages.success(request, _("Avatar saved."))
    return redirect("tokens")


@login_required
@require_GET
def avatar(request: HttpRequest, username: str) -> HttpResponse:
    """A user's avatar: always the PNG re-encoded by accounts.avatars, never uploaded bytes,
    with nosniff and a sandboxing CSP. 404 when the user has none. ``?v=`` (the version the
    pages add) makes it cacheable for good."""
    preference = Preference.objects.filter(user__username=username, avatar__isnull=False).first()
    if preference is None:
        return HttpResponse(status=404)
    response = HttpResponse(bytes(preference.avatar), content_type="image/png")
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = (
        "private, max-age=31536000, immutable" if request.GET.get("v") else "private, no-cache"
    )
    return response


@login_required
@require_GET
def avatar_lookup(request: HttpRequest) -> JsonResponse:
    """``GET ?user=alice&user=bob``: ``{"avatars": {"alice": "<url>"}}``, the avatar URL of each
    named user who has one (the others are left out). For the room page, which meets people
    after it loaded: a member who joined since, the author of an older message. It tells no
    more than the avatars themselves (served to any signed-in user, 404 alike for a user with
    no avatar and for no user)."""
    names = list(dict.fromkeys(request.GET.getlist("user")))[:AVATAR_LOOKUP_MAX]
    return JsonResponse({"avatars": avatar_urls(names)})
