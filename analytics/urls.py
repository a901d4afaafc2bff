"""The analytics pages: the staff dashboard and its summary."""

from django.urls import path

from analytics import views

app_name = "analytics"
urlpatterns = [
    path("summary/", views.summary, name="summary"),
    path("dashboard/", views.dashboard, name="dashboard"),
]
