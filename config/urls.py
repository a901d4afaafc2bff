"""The site's URL map: admin, auth, accounts, analytics, the REST API, the JS catalogue and
the chat pages."""

from django.contrib import admin
from django.urls import include, path
from django.views.i18n import JavaScriptCatalog

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("account/", include("accounts.urls")),
    path("analytics/", include("analytics.urls")),
    path("api/", include("config.api_urls")),
    # The JS strings' translations as a script file (CSP: script-src 'self', no inline script).
    path("jsi18n/", JavaScriptCatalog.as_view(), name="javascript-catalog"),
    path("", include("chat.urls")),
]

# Errors under /api/ (unknown URLs included, with DEBUG on or off) are JSON in the API's shape:
# web.middleware.ApiErrorShapeMiddleware.
