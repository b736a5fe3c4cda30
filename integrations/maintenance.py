"""Housekeeping of a tenant's imports (beat runs each in every tenant): stuck runs, abandoned uploads, old history.

Everything here works in the current tenant's schema and storage.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connection
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from integrations.files.services import UPLOAD_DIRECTORY, file_upload_discard
from integrations.models import ImportRun

logger = logging.getLogger(__name__)


def import_runs_fail_stuck() -> int:
    """Mark failed the running imports that saved no progress for IMPORT_RUN_STUCK_MINUTES; return how many.

    Their worker died (killed, redeployed, out of memory) or their queued task was lost: nothing
    else would ever finish them, and the UI would poll them forever.
    """
    now = timezone.now()
    cutoff = now - timedelta(minutes=settings.IMPORT_RUN_STUCK_MINUTES)
    local = ZoneInfo(connection.tenant.timezone)
    failed = 0
    for run in ImportRun.objects.filter(status=ImportRun.Status.RUNNING, heartbeat_at__lt=cutoff):
        since = timezone.localtime(run.heartbeat_at, local).strftime("%Y-%m-%d %H:%M %Z")
        stuck = _("No progress since %(since)s; the worker probably stopped. Run the import again.") % {"since": since}
        # Matching the heartbeat read above: a run that showed a sign of life meanwhile is left alone.
        failed += ImportRun.objects.filter(
            pk=run.pk, status=ImportRun.Status.RUNNING, heartbeat_at=run.heartbeat_at
        ).update(
            status=ImportRun.Status.FAILED,
            message=f"{run.message}\n{stuck}" if run.message else stuck,
            finished_at=now,
        )
    if failed:
        logger.warning("Marked %d stuck import run(s) failed.", failed)
    return failed


def uploads_delete_abandoned() -> int:
    """Delete uploads kept longer than IMPORT_UPLOAD_RETENTION_HOURS; return how many.

    An import deletes its upload when it ends, so what is left was previewed and never imported, or
    its import died with the worker. Either way it may hold personal data nobody can reach any more
    (the preview link has expired).
    """
    cutoff = timezone.now() - timedelta(hours=settings.IMPORT_UPLOAD_RETENTION_HOURS)
    _directories, names = default_storage.listdir(UPLOAD_DIRECTORY)
    deleted = 0
    for name in names:
        stored_name = f"{UPLOAD_DIRECTORY}/{name}"
        try:
            modified = default_storage.get_modified_time(stored_name)
        except FileNotFoundError:  # an import finished and took it meanwhile
            continue
        if modified < cutoff:
            file_upload_discard(stored_name=stored_name)
            deleted += 1
    return deleted


def import_runs_delete_old() -> int:
    """Delete import runs started more than RUN_HISTORY_RETENTION_DAYS ago; return how many.

    Each data source keeps its latest run and its latest successful one, whatever their age: the
    source page shows the first, the console's "last successful import" the second.
    """
    cutoff = timezone.now() - timedelta(days=settings.RUN_HISTORY_RETENTION_DAYS)
    per_source = ImportRun.objects.distinct("data_source_id")
    latest = per_source.order_by("data_source_id", "-started_at", "-pk").values("pk")
    latest_succeeded = (
        per_source.filter(status=ImportRun.Status.SUCCEEDED)
        .order_by("data_source_id", "-finished_at", "-pk")
        .values("pk")
    )
    deleted, _by_model = (
        ImportRun.objects.filter(started_at__lt=cutoff).exclude(Q(pk__in=latest) | Q(pk__in=latest_succeeded)).delete()
    )
    return deleted
