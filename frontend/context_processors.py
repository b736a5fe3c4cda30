from __future__ import annotations

from django.db import connection
from django.http import HttpRequest


def branding(request: HttpRequest) -> dict:
    """The tenant's branding for every page; the agency console uses the defaults."""
    tenant = getattr(request, "tenant", None) or getattr(connection, "tenant", None)
    is_tenant = tenant is not None and not getattr(tenant, "is_public", True)
    return {
        "workspace": tenant if is_tenant else None,
        "brand_color": getattr(tenant, "primary_color", "#2563eb") if is_tenant else "#2563eb",
        "brand_theme": getattr(tenant, "theme", "light") if is_tenant else "light",
    }
