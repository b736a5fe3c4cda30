"""The agency console: staff login and throttling, tenant health, the onboarding wizard, the audit log."""

from __future__ import annotations

import base64
import re
import socket
from datetime import timedelta
from uuid import uuid4

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from django_tenants.utils import tenant_context

from analytics.clickhouse.query import tenant_query
from tenants.accounts.models import AuditLogEntry, Invitation, User
from tenants.accounts.roles import Role
from tenants.accounts.services import LOGIN_MAX_FAILURES, audit_log_record, invitation_create
from tenants.models import Domain, JobRun, Tenant
from tenants.selectors import tenant_health_list

PASSWORD = "correct-horse-battery"
# A 1×1 transparent PNG.
PNG_BYTES = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def console_url(name: str, *args: str) -> str:
    return reverse(name, urlconf="cxplatform.urls_public", args=args)


def unique_email(prefix: str) -> str:
    # Unique per run: with REDIS_URL the login throttle's counters outlive the test database.
    return f"{prefix}-{uuid4().hex[:10]}@agency.test"


def schema_count() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM information_schema.schemata")
        return cursor.fetchone()[0]


def field_block(html: str, field: str) -> str:
    """The rendered markup of one wizard field, up to the next field."""
    start = html.index(f'id="field-{field}"')
    end = html.find('<div class="field', start + 1)
    return html[start : end if end != -1 else len(html)]


def tenant_row(html: str, slug: str) -> dict[str, str]:
    """The health table's cells of one tenant, by column, as text."""
    row = re.search(rf'<tr data-tenant="{slug}">(.*?)</tr>', html, re.S)
    assert row is not None, f"no row for {slug}"
    cells = re.findall(r'<td data-col="([\w-]+)"[^>]*>(.*?)</td>', row.group(1), re.S)
    return {col: " ".join(re.sub(r"<[^>]+>", " ", text).split()) for col, text in cells}


@pytest.fixture
def console(console_client):
    """The console client, in English, so assertions can read the messages."""
    console_client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return console_client


@pytest.fixture
def staff(db) -> User:
    email = unique_email("staff")
    return User.objects.create_user(email=email, username=email, password=PASSWORD, is_staff=True)


@pytest.fixture
def staff_console(console, staff):
    console.force_login(staff)
    return console


def login(console, email: str, password: str = PASSWORD):
    return console.post(console_url("login"), {"username": email, "password": password})


# --- Login -------------------------------------------------------------------


def test_staff_login_works_and_is_audit_logged(console, staff):
    response = login(console, staff.email)

    assert response.status_code == 302 and response["Location"] == console_url("home")
    assert console.get(console_url("home")).status_code == 200
    entry = AuditLogEntry.objects.get(action=AuditLogEntry.Action.LOGIN, actor=staff)
    assert entry.actor_email == staff.email and entry.ip_address == "127.0.0.1"


def test_non_staff_user_is_refused(console):
    email = unique_email("client")
    User.objects.create_user(email=email, username=email, password=PASSWORD)

    response = login(console, email)

    assert response.status_code == 200
    assert f"{email} is not agency staff" in response.content.decode()
    assert "_auth_user_id" not in console.session
    assert console.get(console_url("home")).status_code == 302


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("home", ()),
        ("tenant_onboard", ()),
        ("tenant_slug_check", ()),
        ("tenant_detail", ("any-shop",)),
        ("tenant_onboarded", ("any-shop",)),
        ("audit_log", ()),
    ],
)
def test_anonymous_visitor_is_sent_to_login(console, db, name, args):
    url = console_url(name, *args)

    response = console.get(url)

    assert response.status_code == 302
    assert response["Location"] == f"{console_url('login')}?next={url}"


def test_login_is_refused_after_five_failures_for_that_email(console, staff):
    other = User.objects.create_user(
        email=unique_email("other"), username=unique_email("other"), password=PASSWORD, is_staff=True
    )
    for _attempt in range(LOGIN_MAX_FAILURES):
        response = login(console, staff.email, password="wrong-password")
        body = response.content.decode()
        assert "enter a correct" in body.lower() and "Too many failed attempts" not in body

    response = login(console, staff.email)  # the right password, too late

    assert response.status_code == 200
    assert f"Too many failed attempts for {staff.email}. Try again in 15 minutes." in response.content.decode()
    assert "_auth_user_id" not in console.session
    # The lock is per e-mail: a colleague still gets in.
    assert login(console, other.email).status_code == 302


def test_successful_login_forgets_earlier_failures(console, staff):
    for _attempt in range(LOGIN_MAX_FAILURES - 1):
        login(console, staff.email, password="wrong-password")
    assert login(console, staff.email).status_code == 302
    console.post(console_url("logout"))

    for _attempt in range(LOGIN_MAX_FAILURES - 1):
        login(console, staff.email, password="wrong-password")

    assert login(console, staff.email).status_code == 302


# --- Tenant health ----------------------------------------------------------


def test_tenant_list_shows_each_tenants_health(staff_console, make_tenant, make_user):
    tenant = make_tenant("health-shop", timezone="Asia/Novosibirsk", currency="KZT")
    make_user(tenant, Role.ANALYST)
    make_user(tenant, Role.VIEWER)
    with tenant_context(tenant):
        invitation_create(email="marketer@health-shop.test", role=Role.MARKETER)
        expired, _raw = invitation_create(email="late@health-shop.test", role=Role.VIEWER)
        Invitation.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(hours=1))
    JobRun.objects.create(tenant=tenant, task_id=uuid4().hex, task_name="old.fail", status=JobRun.Status.FAILED)
    JobRun.objects.filter(task_name="old.fail").update(started_at=timezone.now() - timedelta(days=8))
    JobRun.objects.create(tenant=tenant, task_id=uuid4().hex, task_name="recent.fail", status=JobRun.Status.FAILED)
    JobRun.objects.create(tenant=tenant, task_id=uuid4().hex, task_name="newest.ok", status=JobRun.Status.SUCCEEDED)

    [health] = [row for row in tenant_health_list() if row.tenant.pk == tenant.pk]
    response = staff_console.get(console_url("home"))

    # Two users; the owner's and the marketer's invitations are pending, the expired one is not.
    assert (health.users, health.pending_invitations) == (2, 2)
    assert health.clickhouse_rows == 1  # the tenant_settings row written at onboarding
    assert health.last_job.task_name == "newest.ok"
    assert health.failed_jobs_7d == 1
    assert health.last_import_at is None
    assert health.url == "http://health-shop.localhost:8000/"
    assert not any(row.tenant.is_public for row in tenant_health_list())
    row = tenant_row(response.content.decode(), "health-shop")
    assert row["users"] == "2" and row["invitations"] == "2" and row["clickhouse"] == "1"
    assert row["failed-jobs"] == "1" and row["last-job"].startswith("newest.ok Succeeded")
    assert row["last-import"] == "never"
    assert row["settings"].startswith("Asia/Novosibirsk KZT")
    assert row["url"] == "http://health-shop.localhost:8000/"

    detail = staff_console.get(console_url("tenant_detail", "health-shop")).content.decode()
    assert tenant_row(detail, "health-shop") == row
    assert "Onboarded a tenant" in detail
    assert staff_console.get(console_url("tenant_detail", "no-such-shop")).status_code == 404


def test_tenant_list_renders_when_clickhouse_is_unreachable(staff_console, make_tenant, settings):
    make_tenant("offline-shop")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings.CLICKHOUSE_URL = f"http://127.0.0.1:{closed_port}"

    response = staff_console.get(console_url("home"))

    assert response.status_code == 200
    row = tenant_row(response.content.decode(), "offline-shop")
    assert row["clickhouse"] == "ClickHouse unavailable"
    assert row["invitations"] == "1"  # Postgres numbers still shown


# --- Onboarding wizard --------------------------------------------------------


def wizard_data(**overrides) -> dict:
    data = {
        "name": "Wizard Shop",
        "slug": "wizard-shop",
        "timezone": "Asia/Yekaterinburg",
        "currency": "EUR",
        "locale": "en",
        "primary_color": "#FF6600",
        "theme": "dark",
        "owner_email": "Owner@Wizard-Shop.test",
    }
    return {**data, **overrides}


def test_wizard_onboards_a_tenant_end_to_end(staff_console, staff, settings, tmp_path, mailoutbox):
    settings.MEDIA_ROOT = tmp_path
    logo = SimpleUploadedFile("logo.png", PNG_BYTES, content_type="image/png")

    response = staff_console.post(console_url("tenant_onboard"), {**wizard_data(), "logo": logo})

    assert response.status_code == 302 and response["Location"] == console_url("tenant_onboarded", "wizard-shop")
    tenant = Tenant.objects.get(slug="wizard-shop")
    assert (tenant.name, tenant.timezone, tenant.currency, tenant.locale) == (
        "Wizard Shop",
        "Asia/Yekaterinburg",
        "EUR",
        "en",
    )
    assert (tenant.primary_color, tenant.theme) == ("#ff6600", "dark")
    with tenant_context(tenant):  # tenant media is filed under the tenant's schema
        assert tenant.logo.name.endswith(".png") and tenant.logo.read() == PNG_BYTES
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", [tenant.schema_name])
        assert cursor.fetchone() is not None
    assert Domain.objects.get(domain="wizard-shop.localhost").tenant == tenant
    with tenant_context(tenant):
        invitation = Invitation.objects.get()
    assert (invitation.email, invitation.role, invitation.accepted_at) == ("owner@wizard-shop.test", Role.OWNER, None)
    settings_rows = tenant_query(
        "SELECT timezone, currency FROM tenant_settings WHERE tenant_id = {tenant_id:UInt32}", tenant_id=tenant.pk
    ).result_rows
    assert settings_rows == [("Asia/Yekaterinburg", "EUR")]
    assert AuditLogEntry.objects.filter(
        action=AuditLogEntry.Action.TENANT_ONBOARDED, actor=staff, target="wizard-shop"
    ).exists()

    page = staff_console.get(response["Location"]).content.decode()
    [mail] = mailoutbox
    link = re.search(r"http://wizard-shop\.localhost:8000/invite/[\w-]+/", mail.body).group(0)
    assert mail.to == ["owner@wizard-shop.test"]
    assert link in page and "http://wizard-shop.localhost:8000/" in page and 'data-copy="#invitation-link"' in page
    # The link is shown once: a reload no longer has it.
    assert link not in staff_console.get(response["Location"]).content.decode()


@pytest.mark.parametrize(
    ("field", "value", "step", "message"),
    [
        ("slug", "taken-shop", "client", "The slug “taken-shop” is already taken."),
        ("timezone", "Mars/Olympus", "client", "“Mars/Olympus” is not a known time zone"),
        ("owner_email", "not-an-email", "owner", "“not-an-email” is not a valid e-mail address."),
        ("primary_color", "blue", "branding", "Colour must look like #2563eb."),
    ],
)
def test_wizard_shows_a_bad_value_at_its_field_and_creates_nothing(
    staff_console, make_tenant, mailoutbox, field, value, step, message
):
    if value == "taken-shop":
        make_tenant("taken-shop")
        mailoutbox.clear()
    tenants, schemas, audit_entries = Tenant.objects.count(), schema_count(), AuditLogEntry.objects.count()

    response = staff_console.post(console_url("tenant_onboard"), wizard_data(**{field: value}))

    assert response.status_code == 200
    html = response.content.decode()
    assert message in field_block(html, field)
    assert list(response.context["form"].errors) == [field]
    assert response.context["current_step"] == step
    assert 'value="Wizard Shop"' in html  # what was typed is kept
    assert (Tenant.objects.count(), schema_count(), AuditLogEntry.objects.count()) == (tenants, schemas, audit_entries)
    assert not Domain.objects.filter(domain__startswith="wizard-shop.").exists()
    assert mailoutbox == []


def test_slug_check_says_whether_a_slug_is_free(staff_console, make_tenant):
    make_tenant("busy-shop")

    def check(slug: str) -> str:
        response = staff_console.get(console_url("tenant_slug_check"), {"slug": slug})
        assert response.status_code == 200
        return response.content.decode()

    assert "“free-shop” is available" in check("free-shop")
    assert "“free-shop” is available" in check(" Free-Shop ")  # normalised as the wizard does
    assert "The slug “busy-shop” is already taken." in check("busy-shop")
    assert "is not a valid slug" in check("no_underscores")
    assert "is reserved" in check("admin")
    assert check("").strip() == ""


# --- Audit log ----------------------------------------------------------------


def test_audit_log_lists_newest_first_in_pages(staff_console):
    for i in range(51):
        audit_log_record(action=AuditLogEntry.Action.LOGIN_FAILED, actor_email=f"visitor-{i:03}@x.test")

    first = staff_console.get(console_url("audit_log")).content.decode()
    second = staff_console.get(console_url("audit_log"), {"page": 2}).content.decode()

    assert first.index("visitor-050@") < first.index("visitor-049@")
    assert "visitor-000@" not in first and "visitor-000@" in second
    assert "Page 2 of 2" in second


def test_last_import_is_the_newest_successful_run(make_tenant):
    from integrations.models import DataSource, ImportRun

    tenant = make_tenant()
    with tenant_context(tenant):
        source = DataSource.objects.create(kind=DataSource.Kind.FILE, name="1C export")
        done = timezone.now() - timedelta(hours=2)
        ImportRun.objects.create(data_source=source, dataset="sales", status="succeeded", finished_at=done)
        ImportRun.objects.create(data_source=source, dataset="sales", status="failed", finished_at=timezone.now())
    [health] = [row for row in tenant_health_list() if row.tenant.pk == tenant.pk]
    assert health.last_import_at == done


def test_tenant_page_lists_import_runs_of_every_source(staff_console, make_tenant):
    from integrations.models import DataSource, ImportRun

    tenant = make_tenant()
    with tenant_context(tenant):
        files = DataSource.objects.create(kind=DataSource.Kind.FILE, name="1C export")
        moysklad = DataSource.objects.create(kind=DataSource.Kind.MOYSKLAD, name="MoySklad")
        ImportRun.objects.create(
            data_source=files, dataset="sales", status="failed", rows_read=10, rows_rejected=3, message="3 bad rows"
        )
        ImportRun.objects.create(
            data_source=moysklad, dataset="retaildemand", status="succeeded", rows_read=42, rows_written=42
        )
    page = staff_console.get(f"/tenants/{tenant.slug}/").content.decode()
    history = page[page.index("Import history") : page.index("Audit log", page.index("Import history"))]
    assert "1C export" in history and "MoySklad" in history and "3 bad rows" in history
    assert history.index("retaildemand") < history.index("1C export")  # newest first
