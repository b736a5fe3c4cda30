"""The Celery app. Tasks sent from a tenant's request run in that tenant's schema (tenant-schemas-celery)."""

from __future__ import annotations

import os

from tenant_schemas_celery.app import CeleryApp

from cxplatform.schedules import BEAT_SCHEDULE

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cxplatform.settings")

app = CeleryApp("cxplatform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.autodiscover_tasks(["integrations.files"])  # tasks of a sub-package of an app
app.conf.beat_schedule = BEAT_SCHEDULE
