"""URLs of the agency console (public schema: localhost, 127.0.0.1)."""

from django.contrib import admin
from django.urls import include, path

from cxplatform.health import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("tenants.urls")),
]
