"""Account pages: API tokens, data export, theme, avatars."""

from django.urls import path

from accounts import views

urlpatterns = [
    path("tokens/", views.tokens, name="tokens"),
    path("tokens/<int:token_id>/revoke/", views.revoke, name="token-revoke"),
    path("export/", views.export, name="account-export"),
    path("theme/", views.theme, name="account-theme"),
    path("avatar/", views.avatar_upload, name="account-avatar"),
    path("avatars/", views.avatar_lookup, name="avatar-lookup"),
    path("avatars/<str:username>.png", views.avatar, name="avatar"),
]
