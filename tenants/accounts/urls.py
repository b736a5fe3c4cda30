"""Workspace pages, served on a tenant's host (cxplatform/urls_tenant.py includes these at "")."""

from django.contrib.auth.views import LogoutView
from django.urls import path

from tenants.accounts import views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.WorkspaceLoginView.as_view(), name="login"),
    path("logout/", LogoutView.as_view(), name="logout"),
    path("invite/<str:token>/", views.invitation_accept, name="invitation_accept"),
    path("users/", views.users, name="users"),
    path("users/invite/", views.users_invite, name="users_invite"),
    path("users/<int:user_id>/role/", views.user_role_change, name="user_role_change"),
    path("users/<int:user_id>/deactivate/", views.user_deactivate, name="user_deactivate"),
    path("users/<int:user_id>/reactivate/", views.user_reactivate, name="user_reactivate"),
    path("invitations/<int:invitation_id>/revoke/", views.invitation_revoke, name="invitation_revoke"),
    path("audit/", views.audit_log, name="audit_log"),
    path("api-tokens/", views.api_tokens, name="api_tokens"),
    path("api-tokens/<int:token_id>/revoke/", views.api_token_revoke, name="api_token_revoke"),
]
