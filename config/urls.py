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

# Outside DEBUG: JSON for unknown URLs under /api/, the usual page elsewhere.
handler404 = "config.api.page_not_found"
