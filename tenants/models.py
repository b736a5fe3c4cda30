from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django_tenants.models import DomainMixin, TenantMixin

SLUG_PATTERN = r"^[a-z][a-z0-9-]{1,38}[a-z0-9]$"
# Slugs that would collide with hosts or schemas we use ourselves.
RESERVED_SLUGS = frozenset({"public", "www", "api", "admin", "static", "media", "pg_catalog", "information_schema"})


class Tenant(TenantMixin):
    """A retail client of the agency: one Postgres schema, one ``tenant_id`` in ClickHouse."""

    class Locale(models.TextChoices):
        RU = "ru", _("Russian")
        EN = "en", _("English")

    class Theme(models.TextChoices):
        LIGHT = "light", _("Light")
        DARK = "dark", _("Dark")

    slug = models.CharField(_("slug"), max_length=40, unique=True, validators=[RegexValidator(SLUG_PATTERN)])
    name = models.CharField(_("name"), max_length=200)
    timezone = models.CharField(_("timezone"), max_length=64, default="Europe/Moscow")
    currency = models.CharField(_("currency"), max_length=3, default="RUB")
    locale = models.CharField(_("locale"), max_length=2, choices=Locale.choices, default=Locale.RU)
    logo = models.FileField(_("logo"), upload_to="branding/", blank=True)
    primary_color = models.CharField(
        _("primary colour"), max_length=7, default="#2563eb", validators=[RegexValidator(r"^#[0-9a-fA-F]{6}$")]
    )
    theme = models.CharField(_("default theme"), max_length=5, choices=Theme.choices, default=Theme.LIGHT)
    # Metric settings that the semantic layer reads (DESIGN §5).
    churn_window_days = models.PositiveIntegerField(default=180)
    attribution_window_days = models.PositiveIntegerField(default=5)
    created_at = models.DateTimeField(auto_now_add=True)

    auto_create_schema = True
    auto_drop_schema = True

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_public(self) -> bool:
        from django_tenants.utils import get_public_schema_name

        return self.schema_name == get_public_schema_name()


class Domain(DomainMixin):
    pass


class JobRun(models.Model):
    """One execution of a Celery task, kept for the console's health view ("failing jobs")."""

    class Status(models.TextChoices):
        STARTED = "started"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="job_runs")
    task_id = models.CharField(max_length=64, unique=True)
    task_name = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.STARTED)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "status", "-started_at"]),
            # The stuck-job sweep reads only runs still marked started.
            models.Index(fields=["started_at"], condition=Q(status="started"), name="job_run_started_since"),
        ]
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.task_name} {self.status}"
