"""The chat's HTML pages: home, sign-up, rooms, and the room page's forms."""

from django.urls import path

from chat import views

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/signup/", views.signup, name="signup"),
    path("rooms/", views.create_room, name="create-room"),
    path("rooms/<slug:slug>/", views.room, name="room"),
    path("rooms/<slug:slug>/join/", views.join, name="join-room"),
    path("rooms/<slug:slug>/leave/", views.leave, name="leave-room"),
    path("rooms/<slug:slug>/invite/", views.invite, name="invite-to-room"),
    path("rooms/<slug:slug>/remove/", views.remove_member, name="remove-member"),
    path("dm/", views.direct, name="direct-form"),
    path("dm/<str:username>/", views.direct, name="direct"),
    path("mentions/", views.mentions, name="mentions"),
    path("mentions/<int:mention_id>/read/", views.mention_read, name="mark-mention-read"),
]
