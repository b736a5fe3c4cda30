"""Connecting a tenant's MoySklad account and running its sync (an ImportRun per run)."""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext as _

from analytics.clickhouse.query import current_tenant_id
from integrations.crypto import SecretUnreadableError, secret_decrypt, secret_encrypt
from integrations.models import DataSource, ImportRun
from integrations.moysklad.client import DEFAULT_BASE_URL, MoySkladClient, MoySkladError
from integrations.moysklad.importer import EXPAND_LIMIT, MoySkladImporter, SyncReport
from integrations.moysklad.selectors import moysklad_source_get
from tenants.errors import ApplicationError

DATASET = "moysklad"
logger = logging.getLogger(__name__)


class SyncAlreadyRunningError(ApplicationError):
    """Another sync of the same connection holds the lock (a long run overlapping the next schedule)."""


def moysklad_source_connect(*, token: str, base_url: str | None = None, page_size: int = EXPAND_LIMIT) -> DataSource:
    """Create or update the tenant's MoySklad connection; the token is stored encrypted.

    ``base_url`` defaults to the connection's current address, else to the public API.
    """
    source = moysklad_source_get() or DataSource(kind=DataSource.Kind.MOYSKLAD, name="MoySklad")
    token = token.strip()
    base_url = (base_url or source.config.get("base_url") or DEFAULT_BASE_URL).strip().rstrip("/")
    errors: dict[str, str] = {}
    if not token:
        errors["token"] = _("Enter the MoySklad API token.")
    try:
        URLValidator(schemes=["http", "https"])(base_url)
    except ValidationError:
        errors["base_url"] = _("Enter the API address, e.g. %(example)s.") % {"example": DEFAULT_BASE_URL}
    if not 1 <= page_size <= 1000:
        errors["page_size"] = _("The page size must be between 1 and 1000.")
    if errors:
        raise ApplicationError(_("The MoySklad connection is not valid."), extra=errors)
    source.config = {**source.config, "base_url": base_url, "page_size": page_size}
    source.secret_encrypted = secret_encrypt(token)
    source.is_active = True
    source.save()
    return source


def moysklad_client_for(data_source: DataSource) -> MoySkladClient:
    try:
        token = secret_decrypt(data_source.secret_encrypted)
    except SecretUnreadableError as exc:
        raise ApplicationError(
            _("The MoySklad token cannot be read; enter it again."), extra={"token": str(exc)}
        ) from exc
    return MoySkladClient(base_url=data_source.config.get("base_url", DEFAULT_BASE_URL), token=token)


@contextmanager
def moysklad_sync_lock(data_source: DataSource) -> Iterator[None]:
    """One sync per connection at a time. A session advisory lock dies with its process, so a crash never wedges it."""
    key = zlib.crc32(f"{connection.schema_name}:moysklad:{data_source.pk}".encode())
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        if not cursor.fetchone()[0]:
            raise SyncAlreadyRunningError(_("A MoySklad sync of this workspace is already running."))
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


def moysklad_sync(*, data_source: DataSource, full: bool = False, client: MoySkladClient | None = None) -> ImportRun:
    """Import what changed in MoySklad since the last run (everything with ``full``); returns the finished run.

    MoySklad failures (refused token, unreachable API) mark the run failed and raise ApplicationError
    naming the URL; anything written before the failure stays, and the next run resumes after it.
    """
    if data_source.kind != DataSource.Kind.MOYSKLAD:
        raise ApplicationError(_("This data source is not a MoySklad connection."))
    tenant_id = current_tenant_id()
    client = client or moysklad_client_for(data_source)
    with moysklad_sync_lock(data_source):
        data_source.refresh_from_db(fields=["watermarks", "config"])  # as the previous run left them
        # Holding the lock, any run still marked running was cut off (its process died).
        ImportRun.objects.filter(data_source=data_source, status=ImportRun.Status.RUNNING).update(
            status=ImportRun.Status.FAILED, message=_("Interrupted."), finished_at=timezone.now()
        )
        run = ImportRun.objects.create(data_source=data_source, dataset=DATASET)

        def save_watermarks(watermarks: dict[str, dict[str, Any]]) -> None:
            DataSource.objects.filter(pk=data_source.pk).update(watermarks=watermarks)
            data_source.watermarks = watermarks

        importer = MoySkladImporter(
            client=client,
            tenant_id=tenant_id,
            watermarks=data_source.watermarks,
            save_watermarks=save_watermarks,
            page_size=int(data_source.config.get("page_size", EXPAND_LIMIT)),
            progress=lambda fraction: ImportRun.objects.filter(pk=run.pk).update(
                progress=fraction, heartbeat_at=timezone.now()
            ),
        )
        try:
            importer.run(full=full)
        except MoySkladError as exc:
            _run_finish(run, importer.report, ImportRun.Status.FAILED, str(exc))
            raise ApplicationError(str(exc), extra={"import_run_id": run.pk, "url": exc.url}) from exc
        except Exception as exc:
            _run_finish(run, importer.report, ImportRun.Status.FAILED, f"{type(exc).__name__}: {exc}")
            raise
        _run_finish(run, importer.report, ImportRun.Status.SUCCEEDED, importer.report.summary())
    return run


def moysklad_sync_if_connected(*, full: bool = False) -> ImportRun | None:
    """The scheduled sync: nothing without an active connection, nor while another sync of it runs."""
    source = moysklad_source_get()
    if source is None or not source.is_active:
        return None
    try:
        return moysklad_sync(data_source=source, full=full)
    except SyncAlreadyRunningError:
        logger.info("MoySklad sync skipped: the previous one is still running.")
        return None


def _run_finish(run: ImportRun, report: SyncReport, status: str, message: str) -> None:
    run.status = status
    run.message = message
    run.rows_read = sum(report.read.values())
    run.rows_written = sum(report.written.values())
    run.rows_rejected = sum(report.rejected.values())
    run.errors = report.errors
    run.finished_at = timezone.now()
    fields = ["status", "message", "rows_read", "rows_written", "rows_rejected", "errors", "finished_at"]
    if status == ImportRun.Status.SUCCEEDED:
        run.progress = 1.0
        fields.append("progress")  # a failed run keeps the progress it reached
    run.save(update_fields=fields)
