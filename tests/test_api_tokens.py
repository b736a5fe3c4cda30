"""API tokens: shown once, stored hashed, bound to their tenant, revocable; one error format for the API."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest
from django.forms.models import model_to_dict
from django_tenants.utils import tenant_context
from rest_framework import exceptions
from rest_framework.settings import api_settings

from cxplatform.api_errors import api_exception_handler
from tenants.accounts.authentication import ANY_SCOPE, ApiClient, HasTokenScope
from tenants.accounts.models import ApiToken, AuditLogEntry
from tenants.accounts.roles import Role
from tenants.accounts.tokens import api_token_parse, hash_secret
from tenants.errors import ApplicationError

ME = "/api/v1/me/"


def bearer(raw_token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {raw_token}"}


def create_token_on_page(client, name: str = "Mindbox sync", scopes: tuple[str, ...] = ("metrics:read",)) -> str:
    """Create a token through the API tokens page; return the raw token the page shows."""
    response = client.post("/api-tokens/", {"name": name, "scopes": list(scopes)})
    assert response.status_code == 200
    assert response.context["created_secret"]
    return response.context["created_secret"]


@pytest.fixture
def owner_client(tenant, make_user, logged_in_client):
    return logged_in_client(tenant, make_user(tenant, Role.OWNER))


def test_the_raw_token_is_shown_once_and_only_its_hash_is_stored(tenant, owner_client):
    raw = create_token_on_page(owner_client, scopes=("metrics:read", "segments:read"))
    slug, secret = api_token_parse(raw)
    assert slug == tenant.slug

    listing = owner_client.get("/api-tokens/")
    assert raw not in listing.content.decode()
    assert secret not in listing.content.decode()
    assert "Mindbox sync" in listing.content.decode()
    with tenant_context(tenant):
        token = ApiToken.objects.get()
        assert token.token_hash == hash_secret(secret)
        assert all(secret not in str(value) for value in model_to_dict(token).values())
        assert token.scopes == ["metrics:read", "segments:read"]
        entry = AuditLogEntry.objects.get(action=AuditLogEntry.Action.TOKEN_CREATED)
        assert entry.target == "Mindbox sync"


def test_a_token_needs_a_name_and_at_least_one_scope(tenant, owner_client):
    response = owner_client.post("/api-tokens/", {"name": "no scopes"})
    assert response.status_code == 200
    assert response.context["created_secret"] is None
    assert response.context["form"].errors["scopes"]
    assert owner_client.post("/api-tokens/", {"name": "", "scopes": ["metrics:read"]}).context["form"].errors["name"]
    with tenant_context(tenant):
        assert not ApiToken.objects.exists()


def test_a_token_authenticates_on_any_host_except_another_tenants(
    make_tenant, make_user, logged_in_client, client, public_tenant
):
    a, b = make_tenant(), make_tenant()
    raw = create_token_on_page(logged_in_client(a, make_user(a, Role.OWNER)), scopes=("segments:read",))
    a_host, b_host = a.get_primary_domain().domain, b.get_primary_domain().domain

    for host in (a_host, "localhost", "api.localhost"):
        response = client.get(ME, HTTP_HOST=host, **bearer(raw))
        assert response.status_code == 200, host
        assert response.json() == {
            "workspace": a.slug,
            "principal": "api-token:Mindbox sync",
            "scopes": ["segments:read"],
        }
    with tenant_context(a):
        assert ApiToken.objects.get().last_used_at is not None

    refused = client.get(ME, HTTP_HOST=b_host, **bearer(raw))
    assert refused.status_code == 403
    assert set(refused.json()) == {"message", "extra"}


def test_forged_revoked_and_malformed_tokens_get_401(make_tenant, make_user, logged_in_client, client, public_tenant):
    a, b = make_tenant(), make_tenant()
    owner_client = logged_in_client(a, make_user(a, Role.OWNER))
    raw = create_token_on_page(owner_client)
    _slug, secret = api_token_parse(raw)
    a_host, b_host = a.get_primary_domain().domain, b.get_primary_domain().domain

    # A's secret under B's slug: the middleware switches to B, where no such token exists.
    forged = f"cx_{b.slug}_{secret}"
    for host in (b_host, "localhost"):
        response = client.get(ME, HTTP_HOST=host, **bearer(forged))
        assert response.status_code == 401, host
        assert set(response.json()) == {"message", "extra"}

    for malformed in ("cx_only-two-parts", "not-a-token", f"cx_no-such-shop_{secret}", f"cx_{a.slug}_wrong-secret"):
        response = client.get(ME, HTTP_HOST=a_host, **bearer(malformed))
        assert response.status_code == 401, malformed
        assert response.json()["message"]

    assert client.get(ME, HTTP_HOST=a_host, **bearer(raw)).status_code == 200
    with tenant_context(a):
        token = ApiToken.objects.get()
    assert owner_client.post(f"/api-tokens/{token.pk}/revoke/").status_code == 302
    assert client.get(ME, HTTP_HOST=a_host, **bearer(raw)).status_code == 401
    with tenant_context(a):
        token.refresh_from_db()
        assert token.revoked_at is not None
        entry = AuditLogEntry.objects.get(action=AuditLogEntry.Action.TOKEN_REVOKED)
        assert entry.target == "Mindbox sync"
        assert entry.actor is not None


def test_me_answers_a_logged_in_user_and_refuses_anonymous_callers(tenant, owner_client, tenant_client):
    me = owner_client.get(ME)
    assert me.status_code == 200
    assert me.json() == {"workspace": tenant.slug, "principal": f"owner@{tenant.slug}.test", "scopes": []}

    anonymous = tenant_client(tenant).get(ME)
    assert anonymous.status_code == 401
    assert set(anonymous.json()) == {"message", "extra"}


def test_scopes_are_enforced_and_views_without_a_scope_refuse_tokens():
    token = ApiToken(name="t", scopes=["segments:read"])
    request = SimpleNamespace(auth=token, user=ApiClient(token))
    check = HasTokenScope().has_permission

    assert check(request, SimpleNamespace(required_scope="segments:read"))
    assert not check(request, SimpleNamespace(required_scope="events:write"))
    assert check(request, SimpleNamespace(required_scope=ANY_SCOPE))
    assert not check(request, SimpleNamespace())  # fail closed


def test_api_errors_share_one_format():
    assert api_settings.EXCEPTION_HANDLER is api_exception_handler

    app_error = api_exception_handler(ApplicationError("Segment is being recomputed.", {"segment": 7}), {})
    assert (app_error.status_code, app_error.data) == (
        400,
        {"message": "Segment is being recomputed.", "extra": {"segment": 7}},
    )
    invalid = api_exception_handler(exceptions.ValidationError({"limit": ["Must be ≤ 1000."]}), {})
    assert invalid.status_code == 400
    assert invalid.data["extra"] == {"fields": {"limit": ["Must be ≤ 1000."]}}
    throttled = api_exception_handler(exceptions.Throttled(wait=3), {})
    assert throttled.status_code == 429
    assert set(throttled.data) == {"message", "extra"}
    assert api_exception_handler(ValueError("a bug"), {}) is None  # not an API error: a 500, not a 400


def test_the_openapi_schema_renders(tenant, tenant_client):
    response = tenant_client(tenant).get("/api/v1/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = json.loads(response.content)
    assert ME in schema["paths"]
    assert schema["components"]["securitySchemes"]["ApiToken"]["scheme"] == "bearer"
    assert re.match(r"\d+\.\d+", schema["openapi"])
