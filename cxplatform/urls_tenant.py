"""URLs of a client's workspace (<slug>.localhost) and of the token-authenticated API."""

from django.urls import include, path

from cxplatform.health import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/v1/", include("cxplatform.urls_api")),
    path("data/", include("integrations.urls")),
    path("", include("tenants.accounts.urls")),
]
