from __future__ import annotations

from integrations.models import DataSource


def moysklad_source_get() -> DataSource | None:
    """The current tenant's MoySklad connection (a tenant connects one account), or None."""
    return DataSource.objects.filter(kind=DataSource.Kind.MOYSKLAD).first()
