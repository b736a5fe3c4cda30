"""The agency console's pages (public schema)."""

from django.contrib.auth.views import LogoutView
from django.urls import path

from tenants import views

urlpatterns = [
    path("", views.home_view, name="home"),
    path("login/", views.StaffLoginView.as_view(), name="login"),
    path("logout/", LogoutView.as_view(), name="logout"),
    path("onboard/", views.tenant_onboard_view, name="tenant_onboard"),
    path("onboard/slug-check/", views.tenant_slug_check_view, name="tenant_slug_check"),
    path("tenants/<slug:slug>/", views.tenant_detail_view, name="tenant_detail"),
    path("tenants/<slug:slug>/onboarded/", views.tenant_onboarded_view, name="tenant_onboarded"),
    path("audit-log/", views.audit_log_view, name="audit_log"),
]
