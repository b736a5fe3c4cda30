from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from analytics.api import AnalysisListApi, AnalysisRunApi, MetricCatalogApi, MetricQueryApi
from integrations.events.api import EventsIngestApi
from integrations.files.api import FileImportApi
from tenants.accounts.api import WhoAmIApi

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(permission_classes=[]), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema", permission_classes=[]), name="api-docs"),
    path("me/", WhoAmIApi.as_view(), name="api-me"),
    path("events", EventsIngestApi.as_view(), name="api-events"),
    path("query", MetricQueryApi.as_view(), name="api-query"),
    path("metrics", MetricCatalogApi.as_view(), name="api-metrics"),
    path("analyses/", AnalysisListApi.as_view(), name="api-analyses"),
    path("analyses/<slug:name>", AnalysisRunApi.as_view(), name="api-analysis"),
    path("imports", FileImportApi.as_view(), name="api-imports"),
]
