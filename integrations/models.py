from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class Contact(models.Model):
    """A customer's personal data (PII). Lives only in the tenant's Postgres schema, never in ClickHouse.

    ``customer_id`` is the tenant's own opaque id; ClickHouse facts refer to customers by it alone.
    """

    class Gender(models.TextChoices):
        UNKNOWN = "", _("Unknown")
        FEMALE = "f", _("Female")
        MALE = "m", _("Male")

    customer_id = models.CharField(max_length=100)
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=32, blank=True)
    gender = models.CharField(max_length=1, choices=Gender.choices, blank=True)
    birth_date = models.DateField(null=True, blank=True)
    city = models.CharField(max_length=100, blank=True)
    home_store = models.CharField(max_length=200, blank=True)
    consent_email = models.BooleanField(default=False)
    consent_sms = models.BooleanField(default=False)
    created_at = models.DateTimeField(null=True, blank=True, help_text=_("When the customer joined, per the source"))
    imported_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["customer_id"]
        # Declared here rather than with unique=/db_index= on the fields: those add a second,
        # varchar_pattern_ops index per column that exact lookups never use and that costs
        # every bulk load of millions of contacts (docs/benchmarks.md, generator).
        constraints = [models.UniqueConstraint(fields=["customer_id"], name="unique_contact_customer_id")]
        indexes = [models.Index(fields=["email"]), models.Index(fields=["phone"])]

    def __str__(self) -> str:
        return self.customer_id


class DataSource(models.Model):
    """Where a tenant's data comes from: a file upload channel, MoySklad, the events API, the demo generator."""

    class Kind(models.TextChoices):
        FILE = "file", _("File upload (CSV/XLSX)")
        MOYSKLAD = "moysklad", _("MoySklad")
        EVENTS_API = "events_api", _("Events API")
        DEMO = "demo", _("Demo data generator")

    kind = models.CharField(max_length=16, choices=Kind.choices)
    name = models.CharField(max_length=100)
    # Non-secret settings (base URL, brand attribute id, column mapping of a 1C/POS export …).
    config = models.JSONField(default=dict, blank=True)
    # Secrets (API tokens), encrypted at rest with integrations.crypto.
    secret_encrypted = models.TextField(blank=True)
    # Incremental sync state, e.g. {"retaildemand": "2026-01-01 10:00:00.000"}.
    watermarks = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["kind", "name"], name="unique_data_source_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"


class ImportRun(models.Model):
    """One import of a data source: what was read, written and rejected, and why."""

    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")

    data_source = models.ForeignKey(DataSource, on_delete=models.CASCADE, related_name="runs")
    dataset = models.CharField(max_length=32, help_text=_("sales, customers, events, …"))
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    file_name = models.CharField(max_length=255, blank=True)
    rows_read = models.BigIntegerField(default=0)
    rows_written = models.BigIntegerField(default=0)
    rows_rejected = models.BigIntegerField(default=0)
    # Progress 0..1 for the UI; errors as [{"row", "column", "value", "reason"}], capped.
    progress = models.FloatField(default=0)
    errors = models.JSONField(default=list, blank=True)
    message = models.TextField(blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    # The run's last sign of life: set by every save, and passed along by every QuerySet.update of its
    # progress. A running run silent for IMPORT_RUN_STUCK_MINUTES lost its worker (integrations.maintenance).
    heartbeat_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            models.Index(fields=["data_source", "-started_at"]),
            # The stuck-run sweep reads only running runs: a few rows among millions of finished ones.
            models.Index(fields=["heartbeat_at"], condition=Q(status="running"), name="import_run_running_heartbeat"),
        ]

    def __str__(self) -> str:
        return f"{self.data_source} {self.dataset} {self.status}"

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()
