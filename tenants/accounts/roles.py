"""Roles inside a tenant and the permissions each grants.

Permissions are plain codenames checked with ``user.has_perm("accounts.<codename>")``;
``RoleBackend`` resolves them from the user's role, so there is one place to read them.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    OWNER = "owner", _("Owner")
    ANALYST = "analyst", _("Analyst")
    MARKETER = "marketer", _("Marketer")
    VIEWER = "viewer", _("Viewer")


class Permission(models.TextChoices):
    VIEW_ANALYTICS = "view_analytics", _("View dashboards and analyses")
    EDIT_DASHBOARDS = "edit_dashboards", _("Build and edit dashboards")
    MANAGE_SEGMENTS = "manage_segments", _("Build and edit segments")
    MANAGE_CAMPAIGNS = "manage_campaigns", _("Build and launch campaigns")
    EXPORT_PII = "export_pii", _("Export contacts (personal data)")
    MANAGE_DATA_SOURCES = "manage_data_sources", _("Connect and import data")
    MANAGE_USERS = "manage_users", _("Invite users and change roles")
    MANAGE_API_TOKENS = "manage_api_tokens", _("Create and revoke API tokens")


ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    Role.OWNER: frozenset(Permission.values),
    Role.ANALYST: frozenset({Permission.VIEW_ANALYTICS, Permission.EDIT_DASHBOARDS, Permission.MANAGE_SEGMENTS}),
    Role.MARKETER: frozenset(
        {
            Permission.VIEW_ANALYTICS,
            Permission.EDIT_DASHBOARDS,
            Permission.MANAGE_SEGMENTS,
            Permission.MANAGE_CAMPAIGNS,
            Permission.EXPORT_PII,
        }
    ),
    Role.VIEWER: frozenset({Permission.VIEW_ANALYTICS}),
}


def permission_label(codename: str) -> str:
    return f"accounts.{codename}"
