"""URLs of the agency console (public schema: localhost, 127.0.0.1)."""

from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("tenants.urls")),
]
# Uploaded media (tenant logos) in development; production serves MEDIA_ROOT from the proxy.
urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
