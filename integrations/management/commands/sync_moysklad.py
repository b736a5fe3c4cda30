import os

from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import tenant_context

from integrations.moysklad.client import DEFAULT_BASE_URL
from integrations.moysklad.selectors import moysklad_source_get
from integrations.moysklad.services import moysklad_source_connect, moysklad_sync
from tenants.errors import ApplicationError
from tenants.models import Tenant


class Command(BaseCommand):
    help = (
        "Import a tenant's MoySklad data: what changed since the last run, or everything with --full. "
        "With --token (or MOYSKLAD_TOKEN), connect or update the tenant's MoySklad account first."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="the tenant's slug")
        parser.add_argument("--full", action="store_true", help="re-read everything and drop what MoySklad deleted")
        parser.add_argument("--token", default="", help="API token (safer: the MOYSKLAD_TOKEN environment variable)")
        parser.add_argument("--base-url", default="", help=f"API address (default {DEFAULT_BASE_URL})")

    def handle(self, *args, tenant: str, full: bool, token: str, base_url: str, **_):
        tenant_obj = Tenant.objects.filter(slug=tenant).first()
        if tenant_obj is None:
            raise CommandError(f"No tenant with the slug “{tenant}”.")
        token = token or os.environ.get("MOYSKLAD_TOKEN", "")
        if base_url and not token:
            raise CommandError("--base-url changes the connection: pass --token (or MOYSKLAD_TOKEN) with it.")
        try:
            with tenant_context(tenant_obj):
                if token:
                    source = moysklad_source_connect(token=token, base_url=base_url or None)
                else:
                    source = moysklad_source_get()
                if source is None:
                    raise CommandError(f"Tenant “{tenant}” has no MoySklad connection; pass --token to create one.")
                run = moysklad_sync(data_source=source, full=full)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(self.style.SUCCESS(f"MoySklad sync of “{tenant}” done in {run.duration_seconds:.1f} s."))
        self.stdout.write(run.message)
        if run.rows_rejected:
            self.stdout.write(self.style.WARNING(f"{run.rows_rejected} documents rejected:"))
            for error in run.errors:
                self.stdout.write(f"  {error['row']}: {error['column']} = {error['value']!r}: {error['reason']}")
