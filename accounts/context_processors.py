"""What every page needs to know about its reader beyond ``user``."""

from __future__ import annotations

from django.http import HttpRequest

from accounts.actions import user_theme


def preferences(request: HttpRequest) -> dict[str, str]:
    """``user_theme``: the reader's kept theme ("light", "dark", or "" to follow the system)."""
    return {"user_theme": user_theme(request.user)}
