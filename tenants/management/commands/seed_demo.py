from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import tenant_context

from analytics.preaggregations import preaggregations_rebuild
from integrations.demo.selectors import sales_exist
from integrations.demo.services import demo_data_generate
from tenants.accounts.models import User
from tenants.accounts.roles import Role
from tenants.accounts.services import invitation_accept, site_url
from tenants.errors import ApplicationError
from tenants.models import Tenant
from tenants.services import tenant_domain_for, tenant_onboard

DEMO_PASSWORD = "cx-demo-2026"
DEMO_STAFF_EMAIL = "staff@agency.example"
DEMO_SLUG = "demo"
DEMO_CUSTOMERS, DEMO_SEED = 3000, 2026  # a small shop: generated in seconds


def _ensure_user(email: str, **fields) -> User:
    user, created = User.objects.get_or_create(email=email, defaults={"username": email, **fields})
    if created:
        user.set_password(DEMO_PASSWORD)
        user.save()
    return user


class Command(BaseCommand):
    help = "Create the demo agency user and the demo tenant with a user per role. Idempotent."

    def handle(self, *args, **options):
        _ensure_user(DEMO_STAFF_EMAIL, is_staff=True, is_superuser=True, first_name="Agency")
        tenant = Tenant.objects.filter(slug=DEMO_SLUG).first()
        if tenant is None:
            try:
                result = tenant_onboard(
                    slug=DEMO_SLUG,
                    name="Demo Retail",
                    owner_email=f"owner@{DEMO_SLUG}.example",
                    primary_color="#0f766e",
                )
            except ApplicationError as exc:
                raise CommandError(exc.message) from exc
            tenant = result.tenant
            # The owner joins the way a real one does: through the one-time link.
            raw_token = result.owner_invitation_link.rstrip("/").rsplit("/", 1)[-1]
            with tenant_context(tenant):
                invitation_accept(raw_token=raw_token, password=DEMO_PASSWORD, first_name="Owner")
        with tenant_context(tenant):
            for role in Role.values:
                _ensure_user(f"{role}@{DEMO_SLUG}.example", role=role, first_name=role.title())
        if not sales_exist(tenant_id=tenant.pk):
            generated = demo_data_generate(tenant=tenant, customers=DEMO_CUSTOMERS, seed=DEMO_SEED)
            self.stdout.write(f"Generated demo data: {generated.rows.get('sales_lines', 0):,} sales lines.")
            preaggregations_rebuild(tenant_id=tenant.pk, timezone=tenant.timezone)

        console_url = site_url(settings.PUBLIC_DOMAINS[0])
        self.stdout.write(
            self.style.SUCCESS("\nCX Platform demo is ready.\n")
            + f"  Agency console : {console_url}   log in as {DEMO_STAFF_EMAIL} / {DEMO_PASSWORD}\n"
            + f"  Demo workspace : {site_url(tenant_domain_for(DEMO_SLUG))}   log in as owner@{DEMO_SLUG}.example"
            + f" / {DEMO_PASSWORD}\n"
            + f"                   (also analyst@, marketer@ and viewer@{DEMO_SLUG}.example, same password)\n"
        )
