from __future__ import annotations

import logging
import zoneinfo
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.core.validators import validate_email
from django.db import transaction
from django.utils.translation import gettext as _
from django_tenants.utils import get_public_schema_name, schema_context

from analytics.clickhouse.client import ClickHouseUnavailableError, get_client
from analytics.services import tenant_settings_publish
from tenants.accounts.models import AuditLogEntry, User
from tenants.accounts.roles import Role
from tenants.accounts.services import audit_log_record, invitation_create, invitation_link, invitation_send
from tenants.currencies import CURRENCY_CODES
from tenants.errors import ApplicationError
from tenants.models import RESERVED_SLUGS, SLUG_PATTERN, Domain, Tenant

logger = logging.getLogger(__name__)

MAX_LOGO_BYTES = 1_000_000
LOGO_EXTENSIONS = (".png", ".svg", ".jpg", ".jpeg", ".webp")


@dataclass(frozen=True)
class OnboardingResult:
    tenant: Tenant
    owner_invitation_link: str


def schema_name_for(slug: str) -> str:
    return "t_" + slug.replace("-", "_")


def tenant_domain_for(slug: str) -> str:
    return f"{slug}.{settings.TENANT_BASE_DOMAIN}"


def tenant_onboarding_errors(
    *,
    slug: str,
    name: str,
    owner_email: str,
    timezone: str,
    currency: str,
    locale: str,
    primary_color: str,
    theme: str,
    logo: UploadedFile | None = None,
) -> dict[str, str]:
    """Check every input before anything is created; return {field: message} (empty when all is well)."""
    import re

    errors: dict[str, str] = {}
    if not re.fullmatch(SLUG_PATTERN, slug or ""):
        errors["slug"] = _(
            "“%(slug)s” is not a valid slug: 3–40 characters, lowercase Latin letters, digits and hyphens, "
            "starting with a letter and not ending with a hyphen."
        ) % {"slug": slug}
    elif slug in RESERVED_SLUGS:
        errors["slug"] = _("“%(slug)s” is reserved; choose another slug.") % {"slug": slug}
    elif Tenant.objects.filter(slug=slug).exists() or Domain.objects.filter(domain=tenant_domain_for(slug)).exists():
        errors["slug"] = _("The slug “%(slug)s” is already taken.") % {"slug": slug}
    if not (name or "").strip():
        errors["name"] = _("Give the client a name.")
    try:
        validate_email(owner_email or "")
    except ValidationError:
        errors["owner_email"] = _("“%(email)s” is not a valid e-mail address.") % {"email": owner_email}
    if timezone not in zoneinfo.available_timezones():
        errors["timezone"] = _("“%(tz)s” is not a known time zone (for example Europe/Moscow).") % {"tz": timezone}
    if currency not in CURRENCY_CODES:
        errors["currency"] = _("“%(cur)s” is not an ISO 4217 currency code (for example RUB).") % {"cur": currency}
    if locale not in Tenant.Locale.values:
        errors["locale"] = _("Locale must be one of: %(valid)s.") % {"valid": ", ".join(Tenant.Locale.values)}
    if not re.fullmatch(r"#[0-9a-fA-F]{6}", primary_color or ""):
        errors["primary_color"] = _("Colour must look like #2563eb.")
    if theme not in Tenant.Theme.values:
        errors["theme"] = _("Theme must be one of: %(valid)s.") % {"valid": ", ".join(Tenant.Theme.values)}
    if logo is not None:
        if not logo.name.lower().endswith(LOGO_EXTENSIONS):
            errors["logo"] = _("The logo must be one of: %(ext)s.") % {"ext": ", ".join(LOGO_EXTENSIONS)}
        elif logo.size > MAX_LOGO_BYTES:
            errors["logo"] = _("The logo is larger than 1 MB.")
    return errors


def tenant_onboard(
    *,
    slug: str,
    name: str,
    owner_email: str,
    timezone: str = settings.DEFAULT_TENANT_TIMEZONE,
    currency: str = settings.DEFAULT_TENANT_CURRENCY,
    locale: str = Tenant.Locale.RU,
    primary_color: str = "#2563eb",
    theme: str = Tenant.Theme.LIGHT,
    logo: UploadedFile | None = None,
    onboarded_by: User | None = None,
) -> OnboardingResult:
    """Create a client: schema, domain, ClickHouse settings row, and the owner's invitation.

    All or nothing: any failure leaves no schema, no rows and no ClickHouse row behind.
    """
    owner_email = (owner_email or "").strip().lower()
    slug = (slug or "").strip().lower()
    currency = (currency or "").strip().upper()
    errors = tenant_onboarding_errors(
        slug=slug,
        name=name,
        owner_email=owner_email,
        timezone=timezone,
        currency=currency,
        locale=locale,
        primary_color=primary_color,
        theme=theme,
        logo=logo,
    )
    if errors:
        raise ApplicationError(" ".join(errors.values()), extra={"errors": errors})
    # Fail fast, before any DDL, if ClickHouse is down: a tenant without its ClickHouse row is half-made.
    try:
        get_client().command("SELECT 1")
    except ClickHouseUnavailableError as exc:
        raise ApplicationError(_("Cannot onboard now: %(error)s") % {"error": exc}) from exc

    tenant = Tenant(
        schema_name=schema_name_for(slug),
        slug=slug,
        name=name.strip(),
        timezone=timezone,
        currency=currency,
        locale=locale,
        primary_color=primary_color.lower(),
        theme=theme,
    )
    try:
        # Postgres DDL is transactional: schema, tables and rows commit together or not at all.
        with transaction.atomic():
            tenant.save()
            if logo is not None:
                # TenantFileSystemStorage files by the active schema: save inside the tenant's.
                with schema_context(tenant.schema_name):
                    tenant.logo.save(logo.name, logo, save=True)
            Domain.objects.create(domain=tenant_domain_for(slug), tenant=tenant, is_primary=True)
            with schema_context(tenant.schema_name):
                invitation, raw = invitation_create(email=owner_email, role=Role.OWNER)
            with schema_context(get_public_schema_name()):
                audit_log_record(
                    action=AuditLogEntry.Action.TENANT_ONBOARDED,
                    actor=onboarded_by,
                    target=slug,
                    details={"name": tenant.name, "owner": owner_email},
                )
            tenant_settings_publish(tenant=tenant)
    except ClickHouseUnavailableError as exc:
        raise ApplicationError(_("Cannot onboard now: %(error)s") % {"error": exc}) from exc

    link = invitation_link(tenant_domain_for(slug), raw)
    try:
        with schema_context(tenant.schema_name):
            invitation_send(invitation=invitation, link=link, tenant=tenant)
    except Exception:  # the tenant exists; the link is shown to the staff member, who can pass it on
        logger.exception("Could not e-mail the invitation for %s", slug)
    return OnboardingResult(tenant=tenant, owner_invitation_link=link)


def public_tenant_ensure() -> Tenant:
    """The public tenant (agency console) and its domains; idempotent."""
    tenant, _created = Tenant.objects.get_or_create(
        schema_name=get_public_schema_name(), defaults={"slug": "public", "name": "Agency console"}
    )
    for i, domain in enumerate(settings.PUBLIC_DOMAINS):
        Domain.objects.get_or_create(domain=domain, defaults={"tenant": tenant, "is_primary": i == 0})
    return tenant
