from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("account/", include("accounts.urls")),
    path("analytics/", include("analytics.urls")),
    path("api/", include("config.api_urls")),
    path("", include("chat.urls")),
]

# Errors under /api/ (unknown URLs included, with DEBUG on or off) are JSON in the API's shape:
# config.middleware.ApiErrorShapeMiddleware.
