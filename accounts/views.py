"""Account pages: a signed-in user's API tokens (list, create, revoke) and their data export."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.actions import AccountError, set_theme
from accounts.export import aexport_chunks
from accounts.models import ApiToken
from accounts.tokens import create_token, parse_lifetime, revoke_token

# The lifetimes the page offers (any other value is refused and creates nothing).
LIFETIMES = {"7d": "in 7 days", "30d": "in 30 days", "90d": "in 90 days", "365d": "in a year"}


@login_required
@require_http_methods(["GET", "POST"])
def tokens(request: HttpRequest) -> HttpResponse:
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
    return render(
        request,
        "accounts/tokens.html",
        {
            "tokens": ApiToken.objects.filter(user=request.user),
            "new_token": new_token,
            "lifetimes": LIFETIMES.items(),
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
