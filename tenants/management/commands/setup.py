from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from analytics.clickhouse.client import ClickHouseUnavailableError
from analytics.clickhouse.migrator import migrate
from tenants.services import public_tenant_ensure


class Command(BaseCommand):
    help = "Bring the databases up to date: Postgres schemas (public and every tenant), ClickHouse, public domains."

    def handle(self, *args, **options):
        call_command("migrate_schemas", interactive=False, verbosity=0)
        try:
            applied = migrate(log=lambda message: self.stdout.write(message))
        except ClickHouseUnavailableError as exc:
            raise CommandError(str(exc)) from exc
        tenant = public_tenant_ensure()
        domains = ", ".join(d.domain for d in tenant.domains.all())
        self.stdout.write(
            self.style.SUCCESS(
                f"Postgres migrated; ClickHouse: {len(applied)} migration(s) applied; console on {domains}."
            )
        )
