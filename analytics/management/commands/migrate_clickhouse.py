from django.core.management.base import BaseCommand, CommandError

from analytics.clickhouse.client import ClickHouseUnavailableError
from analytics.clickhouse.migrator import migrate, migrations_applied, migrations_available


class Command(BaseCommand):
    help = "Apply pending ClickHouse schema migrations (analytics/clickhouse/migrations)."

    def add_arguments(self, parser):
        parser.add_argument("--list", action="store_true", help="Show migrations and whether each is applied.")

    def handle(self, *args, **options):
        try:
            if options["list"]:
                applied = migrations_applied()
                for migration in migrations_available():
                    mark = "X" if migration.name in applied else " "
                    self.stdout.write(f"[{mark}] {migration.name}")
                return
            done = migrate(log=lambda message: self.stdout.write(message))
        except ClickHouseUnavailableError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"ClickHouse schema up to date ({len(done)} applied)."))
