"""URLs of a client's workspace (<slug>.localhost) and of the token-authenticated API."""

from django.conf import settings
from django.conf.urls.static import static
from django.urls import include, path

urlpatterns = [
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/v1/", include("cxplatform.urls_api")),
    path("data/", include("integrations.urls")),
    path("analytics/", include("analytics.urls")),
    path("", include("tenants.accounts.urls")),
]
# Uploaded media (tenant logos) in development; production serves MEDIA_ROOT from the proxy.
urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
