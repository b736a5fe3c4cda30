"""Invitation links: accepted once, refused clearly when used, expired, revoked or unknown, safe under races."""

from __future__ import annotations

import re
import threading
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.db import connections
from django.utils import timezone
from django_tenants.utils import tenant_context

from tenants.accounts import services
from tenants.accounts.models import AuditLogEntry, Invitation, User
from tenants.accounts.roles import Role

PASSWORD = "plum-orchard-42-lantern"
FORM = {"first_name": "Irina", "last_name": "Petrova", "password1": PASSWORD, "password2": PASSWORD}


def invite(tenant, email: str = "irina@client.test", role: str = Role.ANALYST) -> str:
    """Create an invitation in the tenant's schema; return the raw token of its link."""
    with tenant_context(tenant):
        _invitation, raw_token = services.invitation_create(email=email, role=role)
    return raw_token


def users_with_email(tenant, email: str) -> int:
    with tenant_context(tenant):
        return User.objects.filter(email=email).count()


def test_an_invitation_is_accepted_once_and_the_new_user_can_log_in(tenant, tenant_client):
    raw_token = invite(tenant)
    client = tenant_client(tenant)

    page = client.get(f"/invite/{raw_token}/")
    assert page.status_code == 200
    assert "irina@client.test" in page.content.decode()
    assert page.context["invitation"].get_role_display() in page.content.decode()

    accepted = client.post(f"/invite/{raw_token}/", FORM)
    assert accepted.status_code == 302
    assert accepted.url == "/"
    home = client.get("/")
    assert home.status_code == 200
    assert "irina@client.test" in home.content.decode()

    with tenant_context(tenant):
        user = User.objects.get(email="irina@client.test")
        assert user.role == Role.ANALYST
        assert (user.first_name, user.last_name) == ("Irina", "Petrova")
        assert Invitation.objects.get(email="irina@client.test").accepted_at is not None
        assert AuditLogEntry.objects.filter(action=AuditLogEntry.Action.INVITATION_ACCEPTED, target=user.email).exists()

    fresh = tenant_client(tenant)
    logged_in = fresh.post("/login/", {"username": "irina@client.test", "password": PASSWORD})
    assert logged_in.status_code == 302
    assert fresh.get("/").status_code == 200
    assert fresh.post("/logout/").url == "/login/"
    assert fresh.get("/").status_code == 302

    # The second use of the same link is refused and creates nobody.
    for again in (client.get(f"/invite/{raw_token}/"), tenant_client(tenant).post(f"/invite/{raw_token}/", FORM)):
        assert again.status_code == 410
        assert again.context["reason"] == "used"
    assert users_with_email(tenant, "irina@client.test") == 1


def test_an_expired_invitation_is_refused_with_410(tenant, tenant_client):
    raw_token = invite(tenant)
    with tenant_context(tenant):
        Invitation.objects.filter(email="irina@client.test").update(expires_at=timezone.now() - timedelta(minutes=1))
    client = tenant_client(tenant)

    for response in (client.get(f"/invite/{raw_token}/"), client.post(f"/invite/{raw_token}/", FORM)):
        assert response.status_code == 410
        assert response.context["reason"] == "expired"
    assert users_with_email(tenant, "irina@client.test") == 0


def test_an_unknown_invitation_link_is_404(tenant, tenant_client):
    invite(tenant)
    response = tenant_client(tenant).get("/invite/not-a-token-we-issued/")
    assert response.status_code == 404
    assert response.context["reason"] == "unknown"


def test_a_weak_or_mistyped_password_is_a_form_error_and_the_link_stays_usable(tenant, tenant_client):
    raw_token = invite(tenant)
    client = tenant_client(tenant)

    weak = client.post(f"/invite/{raw_token}/", {**FORM, "password1": "12345678", "password2": "12345678"})
    assert weak.status_code == 200
    assert weak.context["form"].non_field_errors()
    mistyped = client.post(f"/invite/{raw_token}/", {**FORM, "password2": PASSWORD + "x"})
    assert mistyped.status_code == 200
    assert mistyped.context["form"].errors["password2"]
    assert users_with_email(tenant, "irina@client.test") == 0

    assert client.post(f"/invite/{raw_token}/", FORM).status_code == 302
    assert users_with_email(tenant, "irina@client.test") == 1


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_acceptances_create_exactly_one_user(make_tenant, tenant_client):
    tenant = make_tenant()
    raw_token = invite(tenant, email="race@client.test")
    both_ready = threading.Barrier(2, timeout=30)
    statuses: list[int] = []
    errors: list[BaseException] = []

    def accept() -> None:
        # Each thread has its own database connection, so the two requests really run side by side.
        try:
            client = tenant_client(tenant)
            both_ready.wait()
            statuses.append(client.post(f"/invite/{raw_token}/", FORM).status_code)
        except BaseException as exc:  # surfaced by the assertion below, with the real error
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=accept) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sorted(statuses) == [302, 410]
    assert users_with_email(tenant, "race@client.test") == 1


def test_the_invitation_email_carries_a_working_link(tenant, make_user, logged_in_client, tenant_client, mailoutbox):
    owner = make_user(tenant, Role.OWNER, email="boss@client.test")
    response = logged_in_client(tenant, owner).post(
        "/users/invite/", {"email": "Newcomer@Client.test", "role": Role.MARKETER}
    )
    assert response.status_code == 302

    [message] = [m for m in mailoutbox if m.to == ["newcomer@client.test"]]
    [link] = re.findall(r"https?://\S+", message.body)
    parts = urlsplit(link)
    assert parts.hostname == tenant.get_primary_domain().domain
    client = tenant_client(tenant)
    assert client.get(parts.path).status_code == 200
    assert client.post(parts.path, FORM).status_code == 302
    with tenant_context(tenant):
        assert User.objects.get(email="newcomer@client.test").role == Role.MARKETER


def test_a_revoked_invitation_link_no_longer_works(tenant, make_user, logged_in_client, tenant_client):
    owner = make_user(tenant, Role.OWNER, email="boss@client.test")
    raw_token = invite(tenant)
    with tenant_context(tenant):
        invitation = Invitation.objects.get(email="irina@client.test")

    assert logged_in_client(tenant, owner).post(f"/invitations/{invitation.pk}/revoke/").status_code == 302

    gone = tenant_client(tenant).get(f"/invite/{raw_token}/")
    assert (gone.status_code, gone.context["reason"]) == (404, "unknown")
    with tenant_context(tenant):
        entry = AuditLogEntry.objects.get(action=AuditLogEntry.Action.INVITATION_REVOKED)
        assert (entry.actor, entry.target) == (owner, "irina@client.test")


def test_invitation_email_speaks_the_workspace_language(make_tenant):
    from django.core import mail
    from django.utils import translation

    with translation.override("en"):  # an agency member on an English console page
        make_tenant(locale="ru", owner_email="owner@ru-shop.test")
    assert mail.outbox[-1].body.startswith("Вас пригласили") and "«Владелец»" in mail.outbox[-1].body
