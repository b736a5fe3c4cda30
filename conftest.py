"""Fixtures shared by every test: a migrated public schema, tenants on demand, clients per host."""

from __future__ import annotations

import itertools

import pytest
from django.db import connection
from django.utils import translation
from django_tenants.test.client import TenantClient

_slugs = itertools.count(1)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    from analytics.clickhouse.migrator import migrate

    with django_db_blocker.unblock():
        migrate(log=lambda message: None)


@pytest.fixture
def public_tenant(db):
    """The console's tenant and domains. Per test: transactional tests flush the public tables."""
    from tenants.services import public_tenant_ensure

    return public_tenant_ensure()


@pytest.fixture(autouse=True)
def _reset_request_state_after_test():
    """A request leaves its schema and language active in this thread; the next test starts clean."""
    yield
    connection.set_schema_to_public()
    translation.deactivate()


@pytest.fixture
def make_tenant(db):
    """Onboard a tenant the way the product does; returns (tenant, owner invitation link)."""
    from tenants.services import tenant_onboard

    def make(slug: str | None = None, **kwargs):
        slug = slug or f"shop-{next(_slugs)}"
        kwargs.setdefault("name", slug.title())
        kwargs.setdefault("owner_email", f"owner@{slug}.test")
        kwargs.setdefault("locale", "en")  # tests read English; i18n tests pass locale="ru"
        result = tenant_onboard(slug=slug, **kwargs)
        connection.set_schema_to_public()
        return result.tenant

    return make


@pytest.fixture
def tenant(make_tenant):
    return make_tenant()


@pytest.fixture
def make_user():
    """Create a user with a role inside a tenant's schema."""
    from django_tenants.utils import tenant_context

    from tenants.accounts.models import User

    def make(tenant, role: str, email: str | None = None, password: str = "correct-horse-battery"):
        email = email or f"{role}@{tenant.slug}.test"
        with tenant_context(tenant):
            user = User.objects.create_user(email=email, username=email, password=password, role=role)
        return user

    return make


@pytest.fixture
def tenant_client():
    """A Django test client whose requests go to a tenant's host."""

    def make(tenant) -> TenantClient:
        return TenantClient(tenant)

    return make


@pytest.fixture
def logged_in_client(tenant_client):
    """A client on a tenant's host with ``user`` logged in (the session lives in the tenant's schema)."""
    from django_tenants.utils import tenant_context

    def make(tenant, user) -> TenantClient:
        client = tenant_client(tenant)
        with tenant_context(tenant):
            client.force_login(user)
        return client

    return make


@pytest.fixture
def console_client(client, public_tenant):
    """A Django test client on the agency console's host (public schema)."""
    client.defaults["HTTP_HOST"] = "localhost"
    return client


@pytest.fixture
def embedded_celery(tmp_path):
    """The embedded Celery worker and beat, as threads of this process; stopped after the test.

    Only without REDIS_URL: with it, the broker is Redis and workers are separate processes.
    """
    from django.conf import settings

    from cxplatform.embedded_celery import start_embedded_celery, stop_embedded_celery

    if not settings.CELERY_EMBEDDED:
        pytest.skip("REDIS_URL is set: the embedded worker runs only without Redis")
    start_embedded_celery(schedule_filename=tmp_path / "celerybeat-schedule")
    yield
    stop_embedded_celery()
