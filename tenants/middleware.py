"""Resolves the tenant of a request: by API token when one is sent, otherwise by host name."""

from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django_tenants.middleware.main import TenantMainMiddleware
from django_tenants.utils import get_tenant_domain_model

from tenants.accounts.tokens import api_token_parse
from tenants.models import Tenant


def bearer_token(request: HttpRequest) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() in ("bearer", "token") and value.strip():
        return value.strip()
    return None


class TenantResolutionMiddleware(TenantMainMiddleware):
    """django-tenants' host resolution, plus tenant resolution by API token.

    An API client may call any host (``api.example.com``); its token says which tenant it
    belongs to. A token for one tenant sent to another tenant's host is refused, never
    silently re-routed.
    """

    def process_request(self, request: HttpRequest):
        raw = bearer_token(request)
        parsed = api_token_parse(raw) if raw else None
        if parsed is None:
            return super().process_request(request)

        connection.set_schema_to_public()
        slug, _secret = parsed
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            return JsonResponse({"message": "Invalid API token.", "extra": {}}, status=401)
        hostname = self.hostname_from_request(request)
        host_domain = get_tenant_domain_model().objects.filter(domain=hostname).select_related("tenant").first()
        if host_domain is not None and not host_domain.tenant.is_public and host_domain.tenant.pk != tenant.pk:
            return JsonResponse(
                {"message": "This API token does not belong to this workspace.", "extra": {}}, status=403
            )
        tenant.domain_url = hostname
        request.tenant = tenant
        connection.set_tenant(tenant)
        self.setup_url_routing(request)
        return None
