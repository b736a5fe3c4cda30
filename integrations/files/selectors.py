"""Reads for the data pages: data sources with their latest run, import history, saved column mappings."""

from __future__ import annotations

from django.db.models import OuterRef, QuerySet, Subquery

from integrations.files.columns import Dataset
from integrations.models import DataSource, ImportRun


def data_source_list() -> QuerySet[DataSource]:
    """Every data source of the current tenant, with its latest run's status and start time annotated."""
    latest = ImportRun.objects.filter(data_source=OuterRef("pk")).order_by("-started_at")
    return DataSource.objects.annotate(
        last_run_status=Subquery(latest.values("status")[:1]),
        last_run_started_at=Subquery(latest.values("started_at")[:1]),
    ).order_by("name")


def file_source_list() -> QuerySet[DataSource]:
    return DataSource.objects.filter(kind=DataSource.Kind.FILE, is_active=True).order_by("name")


def import_run_list(*, data_source: DataSource) -> QuerySet[ImportRun]:
    return ImportRun.objects.filter(data_source=data_source).order_by("-started_at")


def file_mapping_saved(*, data_source: DataSource, dataset: Dataset) -> dict[str, str]:
    """The column mapping last used for ``dataset`` files of this source: {file header: canonical column}."""
    return dict(data_source.config.get("mapping", {}).get(dataset.value, {}))
