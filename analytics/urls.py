"""Analytics pages of the workspace (cxplatform/urls_tenant.py includes these at "analytics/")."""

from django.urls import path

from analytics import views

urlpatterns = [
    path("", views.analytics_index, name="analytics_index"),
    path("dashboards/<slug:dashboard_id>/", views.dashboard_detail, name="analytics_dashboard"),
    path("analyses/<slug:name>/", views.analysis_detail, name="analytics_analysis"),
    path("catalog/", views.metric_catalog, name="analytics_catalog"),
]
