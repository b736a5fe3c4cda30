from datetime import date

from django.core.management.base import BaseCommand, CommandError

from analytics.preaggregations import preaggregations_rebuild
from integrations.demo.services import DEFAULT_MONTHS, demo_data_generate
from tenants.errors import ApplicationError
from tenants.models import Tenant


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"--end-date must be a date like 2026-01-31, got “{value}”.") from exc


class Command(BaseCommand):
    help = (
        "Generate a realistic, deterministic retail history (customers, receipts, mailings, web funnel) "
        "into a tenant. The same arguments give the same data; running them again replaces it."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="Tenant slug")
        parser.add_argument("--customers", type=int, required=True, help="Number of customers (≈24 sales lines each)")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--months", type=int, default=DEFAULT_MONTHS, help="Length of the history")
        parser.add_argument(
            "--end-date",
            type=_day,
            default=None,
            help="The history ends before this day (default: today in the tenant's timezone)",
        )

    def handle(self, *args, tenant: str, customers: int, seed: int, months: int, end_date: date | None, **options):
        target = Tenant.objects.filter(slug=tenant).first()
        if target is None or target.is_public:
            raise CommandError(f"No tenant with the slug “{tenant}”.")

        def report(done: int, total: int, rows: int) -> None:
            self.stdout.write(f"  chunk {done}/{total}: {rows:,} rows written")

        try:
            result = demo_data_generate(
                tenant=target,
                customers=customers,
                seed=seed,
                months=months,
                end_day=end_date,
                progress=report if options["verbosity"] > 1 else None,
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        rows = ", ".join(f"{table} {count:,}" for table, count in result.rows.items())
        self.stdout.write(
            self.style.SUCCESS(
                f"Generated {result.first_day} – {result.end_day} (end exclusive) for “{target.slug}” "
                f"in {result.seconds:.1f} s: {rows}."
            )
        )
        # Dashboards read the pre-aggregations: build them now rather than at the next beat.
        built = preaggregations_rebuild(tenant_id=target.pk, timezone=target.timezone)
        self.stdout.write(f"Pre-aggregations built in {sum(built.values()):.1f} s.")
