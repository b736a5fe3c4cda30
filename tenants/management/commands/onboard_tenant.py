from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from tenants.errors import ApplicationError
from tenants.models import Tenant
from tenants.selectors import tenant_owner_emails
from tenants.services import tenant_onboard


class Command(BaseCommand):
    help = "Onboard a client: schema, domain and an invitation for its first owner. Idempotent."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--owner-email", required=True)
        parser.add_argument("--timezone", default=settings.DEFAULT_TENANT_TIMEZONE)
        parser.add_argument("--currency", default=settings.DEFAULT_TENANT_CURRENCY)
        parser.add_argument("--locale", default=Tenant.Locale.RU, choices=Tenant.Locale.values)

    def handle(self, *args, slug: str, name: str, owner_email: str, timezone: str, currency: str, locale: str, **_):
        existing = Tenant.objects.filter(slug=slug).first()
        if existing is not None:
            # Re-running the same onboarding is a no-op; a different client on the same slug is an error.
            if existing.name == name and owner_email.strip().lower() in tenant_owner_emails(existing):
                self.stdout.write(f"Tenant “{slug}” is already onboarded; nothing to do.")
                return
            raise CommandError(f"The slug “{slug}” is already taken by “{existing.name}”.")
        try:
            result = tenant_onboard(
                slug=slug, name=name, owner_email=owner_email, timezone=timezone, currency=currency, locale=locale
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(self.style.SUCCESS(f"Onboarded “{result.tenant.name}” ({slug})."))
        self.stdout.write(f"Owner invitation for {owner_email}: {result.owner_invitation_link}")
