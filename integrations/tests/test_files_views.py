"""The data pages (upload → preview and mapping → import task → result, history) and POST /api/v1/imports."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django_tenants.utils import tenant_context

from analytics.clickhouse.query import tenant_query
from cxplatform.celery import app
from integrations.models import DataSource, ImportRun
from tenants.accounts.models import ApiToken
from tenants.accounts.roles import Role
from tenants.accounts.services import api_token_create

FIXTURES = Path(__file__).parent / "fixtures"
ONE_C = (FIXTURES / "sales_1c_cp1251.csv").read_bytes()
GOOD_CSV = b"order_id,ts,amount\nR1,2026-03-01 10:00,100.50\nR1,2026-03-01 10:00,20\nR2,2026-03-02,5\n"
BAD_CSV = b"order_id,ts,amount\nR1,2026-03-01,100\nR2,yesterday,5\nR3,2026-03-01,-1\n"


def sales_count(tenant) -> int:
    return tenant_query(
        "SELECT count() FROM sales_lines FINAL WHERE tenant_id = {tenant_id:UInt32}", tenant_id=tenant.pk
    ).result_rows[0][0]


def upload(client, content: bytes, name: str = "export.csv", dataset: str = "sales"):
    return client.post(
        "/data/upload/", {"dataset": dataset, "source": "Касса", "file": SimpleUploadedFile(name, content)}
    )


@pytest.fixture
def owner_client(tenant, make_user, logged_in_client):
    return logged_in_client(tenant, make_user(tenant, Role.OWNER))


def test_data_pages_need_the_manage_data_sources_permission(tenant, make_user, logged_in_client, tenant_client):
    viewer = logged_in_client(tenant, make_user(tenant, Role.VIEWER))
    for url in ("/data/", "/data/upload/"):
        assert viewer.get(url).status_code == 403
        assert tenant_client(tenant).get(url)["Location"].startswith("/login/")
    assert "/data/" not in viewer.get("/").content.decode()  # no menu entry either


def test_the_preview_shows_how_a_1c_export_was_read_and_proposes_a_mapping(tenant, owner_client):
    response = upload(owner_client, ONE_C)
    assert response.status_code == 302
    preview = owner_client.get(response["Location"])
    page = preview.content.decode()
    assert "CP1251" in page and "“;”" in page
    form = preview.context["form"]
    assert form.initial == {} and [form[f"column_{i}"].initial for i in range(3)] == ["order_id", "ts", "customer_id"]
    assert preview.context["preview"].problems == []
    assert "000123" in page and "Тверская" in page and "1234.50" in page
    assert "2026-03-01 10:05:00" in page  # shown in the workspace's time, as the file had it


def test_changing_the_mapping_refreshes_the_preview_in_place_and_problems_block_the_import(tenant, owner_client):
    location = upload(owner_client, ONE_C)["Location"]
    fields = {f"column_{i}": "" for i in range(8)} | {"column_0": "order_id", "column_1": "ts"}  # no amount
    partial = owner_client.post(location, fields, HTTP_HX_REQUEST="true")
    assert partial.templates[0].name == "integrations/_preview.html"
    assert "required column missing: amount (or qty and price)" in partial.content.decode()
    assert re.search(r'value="import"\s+disabled', partial.content.decode())
    refused = owner_client.post(location, fields | {"action": "import"})
    assert refused.status_code == 200
    with tenant_context(tenant):
        assert not ImportRun.objects.exists()


def test_an_unreadable_upload_is_refused_on_the_preview_page(tenant, owner_client):
    location = upload(owner_client, bytes(range(256)) * 8, name="photo.csv")["Location"]
    response = owner_client.get(location)
    assert response.status_code == 400
    assert "not a text file" in response.content.decode()


@pytest.fixture
def eager_tasks(monkeypatch):
    """Run tasks in the sending thread, for the tests that are not about the worker."""
    monkeypatch.setitem(app.conf, "task_always_eager", True)
    monkeypatch.setitem(app.conf, "task_eager_propagates", True)


def test_a_bad_file_shows_its_error_report_and_imports_nothing(
    tenant, owner_client, eager_tasks, django_capture_on_commit_callbacks
):
    location = upload(owner_client, BAD_CSV)["Location"]
    with django_capture_on_commit_callbacks(execute=True):
        started = owner_client.post(location, {"column_0": "order_id", "column_1": "ts", "column_2": "amount",
                                               "action": "import"})  # fmt: skip
    run_url = started["Location"]
    page = owner_client.get(run_url).content.decode()
    assert "hx-trigger" not in page  # finished: no more polling
    assert "yesterday" in page and "not a date" in page
    assert "negative on a sale line" in page
    with tenant_context(tenant):
        run = ImportRun.objects.get()
    assert (run.status, run.rows_read, run.rows_rejected) == ("failed", 3, 2)
    assert sales_count(tenant) == 0
    history = owner_client.get(f"/data/sources/{run.data_source_id}/").content.decode()
    assert "export.csv" in history and "2 errors" in history


@pytest.fixture
def committed_tenant(transactional_db, make_tenant):
    """A tenant whose rows the worker thread can see; its schema is dropped afterwards."""
    tenant = make_tenant()
    yield tenant
    tenant.delete(force_drop=True)


@pytest.mark.broker
def test_upload_map_and_import_through_the_embedded_worker(committed_tenant, make_user, logged_in_client,
                                                           embedded_celery):  # fmt: skip
    tenant = committed_tenant
    client = logged_in_client(tenant, make_user(tenant, Role.OWNER))
    location = upload(client, ONE_C)["Location"]
    form = client.get(location).context["form"]
    mapping = {name: field.initial for name, field in form.fields.items()}
    started = client.post(location, mapping | {"action": "import"})
    assert started.status_code == 302
    run_url = started["Location"]
    assert 'hx-trigger="every 1s"' in client.get(run_url).content.decode()  # polls while running

    deadline = time.monotonic() + 30
    while "hx-trigger" in (status := client.get(f"{run_url}status/").content.decode()):
        assert time.monotonic() < deadline, "the import did not finish"
        time.sleep(0.2)
    assert "3 rows imported." in status
    assert sales_count(tenant) == 3
    with tenant_context(tenant):
        source = DataSource.objects.get(name="Касса")
        assert source.config["mapping"]["sales"]["Номер чека"] == "order_id"
        run = ImportRun.objects.get()
        assert (run.status, run.rows_written, run.progress) == ("succeeded", 3, 1.0)
    assert client.get(location).status_code == 404  # the upload is deleted once imported


# --- API ----------------------------------------------------------------------------------------------------------


def api_post(tenant_client, tenant, raw_token: str | None, content: bytes, **fields):
    data = {"kind": "sales", "file": SimpleUploadedFile("api.csv", content), **fields}
    headers = {"HTTP_AUTHORIZATION": f"Bearer {raw_token}"} if raw_token else {}
    return tenant_client(tenant).post("/api/v1/imports", data, **headers)


def token(tenant, *scopes: str) -> str:
    with tenant_context(tenant):
        return api_token_create(name="loader", scopes=list(scopes))[1]


def test_the_api_imports_a_file_and_a_second_post_changes_no_total(tenant, tenant_client):
    raw = token(tenant, ApiToken.Scope.IMPORTS_WRITE)
    first = api_post(tenant_client, tenant, raw, GOOD_CSV)
    assert first.status_code == 201, first.content
    body = first.json()
    assert (body["status"], body["rows_read"], body["rows_written"], body["errors"]) == ("succeeded", 3, 3, [])
    assert api_post(tenant_client, tenant, raw, GOOD_CSV).status_code == 201
    assert sales_count(tenant) == 3


def test_the_api_answers_a_bad_file_with_400_and_the_row_level_report(tenant, tenant_client):
    raw = token(tenant, ApiToken.Scope.IMPORTS_WRITE)
    response = api_post(tenant_client, tenant, raw, BAD_CSV)
    assert response.status_code == 400
    run = response.json()["extra"]["import_run"]
    assert [(e["row"], e["column"], e["value"]) for e in run["errors"]] == [(3, "ts", "yesterday"), (4, "amount", "-1")]
    assert run["rows_rejected"] == 2
    assert sales_count(tenant) == 0


def test_the_api_applies_a_mapping_and_checks_its_shape(tenant, tenant_client):
    raw = token(tenant, ApiToken.Scope.IMPORTS_WRITE)
    content = "Чек,Дата,Сумма\nR1,2026-03-01,10\n".encode()
    mapping = json.dumps({"Чек": "order_id", "Дата": "ts", "Сумма": "amount"})
    assert api_post(tenant_client, tenant, raw, content, mapping=mapping).status_code == 201
    invalid = api_post(tenant_client, tenant, raw, content, mapping=json.dumps(["Чек"]))
    assert invalid.status_code == 400
    assert "mapping" in invalid.json()["extra"]["fields"]


def test_the_api_needs_the_imports_scope_or_the_permission(tenant, tenant_client, make_user, logged_in_client):
    assert api_post(tenant_client, tenant, token(tenant, ApiToken.Scope.EVENTS_WRITE), GOOD_CSV).status_code == 403
    assert api_post(tenant_client, tenant, None, GOOD_CSV).status_code in (401, 403)
    viewer = logged_in_client(tenant, make_user(tenant, Role.VIEWER))
    assert (
        viewer.post("/api/v1/imports", {"kind": "sales", "file": SimpleUploadedFile("a.csv", GOOD_CSV)}).status_code
        == 403
    )
    owner = logged_in_client(tenant, make_user(tenant, Role.OWNER))
    assert (
        owner.post("/api/v1/imports", {"kind": "sales", "file": SimpleUploadedFile("a.csv", GOOD_CSV)}).status_code
        == 201
    )
    assert sales_count(tenant) == 3
