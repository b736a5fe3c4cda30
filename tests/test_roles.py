"""Roles: what each may see and do in the workspace, the owner rules, and that users stay inside their tenant."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django_tenants.utils import tenant_context

from tenants.accounts import services
from tenants.accounts.models import AuditLogEntry, Invitation, User
from tenants.accounts.roles import Role

# Written out by hand (not derived from roles.py) so that a change to the matrix is a visible test change.
EXPECTED_PERMISSIONS = {
    Role.OWNER: {
        "view_analytics",
        "edit_dashboards",
        "manage_segments",
        "manage_campaigns",
        "export_pii",
        "manage_data_sources",
        "manage_users",
        "manage_api_tokens",
    },
    Role.ANALYST: {"view_analytics", "edit_dashboards", "manage_segments"},
    Role.MARKETER: {"view_analytics", "edit_dashboards", "manage_segments", "manage_campaigns", "export_pii"},
    Role.VIEWER: {"view_analytics"},
}
OWNER_ONLY_PAGES = ("/users/", "/audit/", "/api-tokens/")


@pytest.fixture
def tenant(make_tenant):
    """An English-speaking workspace (a workspace speaks its tenant's locale): messages are asserted in English."""
    return make_tenant(locale="en")


def flashed(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def test_the_permission_matrix_holds_through_has_perm(tenant, make_user):
    all_codenames = set().union(*EXPECTED_PERMISSIONS.values())
    with tenant_context(tenant):
        for role, expected in EXPECTED_PERMISSIONS.items():
            user = User.objects.get(pk=make_user(tenant, role).pk)
            granted = {codename for codename in all_codenames if user.has_perm(f"accounts.{codename}")}
            assert granted == expected, role
        exporters = {user.role for user in User.objects.all() if user.has_perm("accounts.export_pii")}
        assert exporters == {Role.OWNER, Role.MARKETER}

        deactivated_owner = User.objects.get(role=Role.OWNER)
        deactivated_owner.is_active = False
        assert not deactivated_owner.has_perm("accounts.view_analytics")


def test_only_owners_reach_users_tokens_and_audit_pages(tenant, make_user, logged_in_client, tenant_client):
    owner = make_user(tenant, Role.OWNER)
    target = make_user(tenant, Role.VIEWER, email="target@client.test")
    owner_client = logged_in_client(tenant, owner)
    for path in ("/", *OWNER_ONLY_PAGES):
        assert owner_client.get(path).status_code == 200, path

    for role in (Role.ANALYST, Role.MARKETER, Role.VIEWER):
        client = logged_in_client(tenant, make_user(tenant, role))
        home = client.get("/")
        assert home.status_code == 200
        assert "/users/" not in home.content.decode()  # no links to pages they cannot open
        for path in OWNER_ONLY_PAGES:
            assert client.get(path).status_code == 403, (role, path)
        forbidden_posts = {
            "/users/invite/": {"email": "sneaky@client.test", "role": Role.OWNER},
            f"/users/{target.pk}/role/": {"role": Role.OWNER},
            f"/users/{target.pk}/deactivate/": {},
            "/api-tokens/": {"name": "sneaky", "scopes": ["metrics:read"]},
        }
        for path, data in forbidden_posts.items():
            assert client.post(path, data).status_code == 403, (role, path)

    with tenant_context(tenant):
        assert not Invitation.objects.filter(email="sneaky@client.test").exists()
        target.refresh_from_db()
        assert (target.role, target.is_active) == (Role.VIEWER, True)

    anonymous = tenant_client(tenant)
    for path in ("/", *OWNER_ONLY_PAGES):
        response = anonymous.get(path)
        assert response.status_code == 302 and response.url.startswith("/login/"), path


def test_an_owner_invites_and_changes_roles_and_each_change_is_audited(tenant, make_user, logged_in_client, mailoutbox):
    owner = make_user(tenant, Role.OWNER)
    analyst = make_user(tenant, Role.ANALYST)
    client = logged_in_client(tenant, owner)

    invited = client.post("/users/invite/", {"email": "new@client.test", "role": Role.VIEWER})
    assert invited.status_code == 302
    assert [m.to for m in mailoutbox if m.to == ["new@client.test"]] == [["new@client.test"]]
    users_page = client.get("/users/").content.decode()
    assert "new@client.test" in users_page  # listed among pending invitations

    changed = client.post(f"/users/{analyst.pk}/role/", {"role": Role.MARKETER})
    assert changed.status_code == 302
    with tenant_context(tenant):
        analyst.refresh_from_db()
        assert analyst.role == Role.MARKETER
        entry = AuditLogEntry.objects.get(action=AuditLogEntry.Action.ROLE_CHANGED)
        assert (entry.actor, entry.target, entry.details) == (
            owner,
            analyst.email,
            {"from": Role.ANALYST, "to": Role.MARKETER},
        )
        assert AuditLogEntry.objects.filter(action=AuditLogEntry.Action.INVITATION_SENT, target="new@client.test")


def test_inviting_an_existing_user_is_a_clear_form_error(tenant, make_user, logged_in_client):
    owner = make_user(tenant, Role.OWNER)
    response = logged_in_client(tenant, owner).post("/users/invite/", {"email": owner.email, "role": Role.VIEWER})
    assert response.status_code == 200
    assert f"{owner.email} already has an account here." in response.context["invite_form"].non_field_errors()


def test_the_last_active_owner_cannot_be_demoted_or_deactivated(tenant, make_user, logged_in_client):
    owner = make_user(tenant, Role.OWNER)
    second_owner = make_user(tenant, Role.OWNER, email="second@client.test")
    client = logged_in_client(tenant, owner)
    with tenant_context(tenant):
        services.user_deactivate(user=second_owner, deactivated_by=owner)

    # A deactivated owner does not count: the workspace would have nobody able to manage it.
    demoted = client.post(f"/users/{owner.pk}/role/", {"role": Role.VIEWER}, follow=True)
    assert "A workspace needs at least one active owner." in flashed(demoted)
    with tenant_context(tenant):
        owner.refresh_from_db()
        assert owner.role == Role.OWNER
        assert not AuditLogEntry.objects.filter(action=AuditLogEntry.Action.ROLE_CHANGED).exists()

    self_deactivated = client.post(f"/users/{owner.pk}/deactivate/", follow=True)
    assert "You cannot deactivate your own account; ask another owner." in flashed(self_deactivated)

    # With a second active owner the demotion goes through.
    client.post(f"/users/{second_owner.pk}/reactivate/")
    assert client.post(f"/users/{owner.pk}/role/", {"role": Role.VIEWER}).status_code == 302
    with tenant_context(tenant):
        owner.refresh_from_db()
        assert owner.role == Role.VIEWER
    assert client.get("/users/").status_code == 403  # the demoted owner lost the page at once


def test_a_deactivated_user_is_logged_out_and_cannot_log_in(tenant, make_user, logged_in_client, tenant_client):
    owner = make_user(tenant, Role.OWNER)
    analyst = make_user(tenant, Role.ANALYST, password="correct-horse-battery")
    analyst_client = logged_in_client(tenant, analyst)
    assert analyst_client.get("/").status_code == 200

    assert logged_in_client(tenant, owner).post(f"/users/{analyst.pk}/deactivate/").status_code == 302

    assert analyst_client.get("/").status_code == 302
    login = tenant_client(tenant).post("/login/", {"username": analyst.email, "password": "correct-horse-battery"})
    assert login.status_code == 200 and login.context["form"].errors
    with tenant_context(tenant):
        entry = AuditLogEntry.objects.get(action=AuditLogEntry.Action.USER_DEACTIVATED)
        assert (entry.actor, entry.target) == (owner, analyst.email)


def test_a_user_of_one_tenant_cannot_log_in_on_another(make_tenant, make_user, logged_in_client, tenant_client):
    a, b = make_tenant(), make_tenant()
    analyst_a = make_user(a, Role.ANALYST, password="correct-horse-battery")

    on_b = tenant_client(b)
    login = on_b.post("/login/", {"username": analyst_a.email, "password": "correct-horse-battery"})
    assert login.status_code == 200 and login.context["form"].errors
    assert on_b.get("/").status_code == 302

    # A session made on A's host means nothing on B's host: B's schema has its own session table.
    client_a = logged_in_client(a, analyst_a)
    assert client_a.get("/").status_code == 200
    response = client_a.get("/", HTTP_HOST=b.get_primary_domain().domain)
    assert response.status_code == 302 and response.url.startswith("/login/")


def test_the_audit_log_lists_entries_newest_first_in_pages(tenant, make_user, logged_in_client):
    owner = make_user(tenant, Role.OWNER)
    with tenant_context(tenant):
        for n in range(60):
            services.audit_log_record(action=AuditLogEntry.Action.TOKEN_CREATED, actor=owner, target=f"token-{n}")
    client = logged_in_client(tenant, owner)  # logs a login: the newest entry
    with tenant_context(tenant):
        total = AuditLogEntry.objects.count()
    assert 50 < total <= 100

    first = list(client.get("/audit/").context["page"])
    assert len(first) == 50
    assert [e.action for e in first[:2]] == [AuditLogEntry.Action.LOGIN, AuditLogEntry.Action.TOKEN_CREATED]
    assert first[1].target == "token-59"
    second = list(client.get("/audit/?page=2").context["page"])
    assert len(second) == total - 50
    times = [e.created_at for e in first + second]
    assert times == sorted(times, reverse=True)


def test_workspace_login_is_throttled_per_email(make_tenant, make_user):
    from django.test import Client

    from tenants.accounts.services import LOGIN_MAX_FAILURES

    tenant = make_tenant(locale="en")
    make_user(tenant, "viewer", email="v@shop.test", password="right-password-42")
    client = Client(HTTP_HOST=tenant.get_primary_domain().domain)
    for _attempt in range(LOGIN_MAX_FAILURES):
        client.post("/login/", {"username": "v@shop.test", "password": "wrong"})
    response = client.post("/login/", {"username": "v@shop.test", "password": "right-password-42"})
    assert response.status_code == 200
    assert "Too many failed attempts for v@shop.test" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_forbidden_page_explains_itself_in_the_workspace_language(make_tenant, make_user, logged_in_client):
    tenant = make_tenant(locale="en")
    client = logged_in_client(tenant, make_user(tenant, "viewer"))
    response = client.get("/users/")
    assert response.status_code == 403
    assert "Your role does not include this" in response.content.decode()
    assert tenant.name in response.content.decode()  # rendered inside the workspace's branded layout
