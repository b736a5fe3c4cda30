import json

from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import tenant_context

from integrations.readiness import readiness_json_default, readiness_report
from tenants.models import Tenant


class Command(BaseCommand):
    help = "What a tenant's imported data holds and what is wrong with it (for the agency)."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--format", choices=["text", "json"], default="text")

    def handle(self, *args, tenant: str, format: str, **options):
        found = Tenant.objects.filter(slug=tenant).exclude(schema_name="public").first()
        if found is None:
            raise CommandError(f"No tenant with the slug “{tenant}”.")
        with tenant_context(found):
            report = readiness_report(tenant=found)
        if format == "json":
            text = json.dumps(report.as_dict(), default=readiness_json_default, ensure_ascii=False, indent=2)
            self.stdout.write(text)
            return
        self.stdout.write(f"{found.name} ({found.slug}), {found.timezone}, {found.currency}")
        self.stdout.write(f"  sales from {report.first_sale} to {report.last_sale}")
        self.stdout.write(
            f"  orders {report.orders}, lines {report.lines}, revenue {report.revenue}, returns {report.returns}"
        )
        self.stdout.write(
            f"  customers {report.customers} (contacts {report.contacts}), identified receipts "
            f"{report.identified_order_share:.1%}, repeat customers {report.repeat_customers}"
        )
        self.stdout.write(f"  stores {report.stores}, employees {report.employees}")
        self.stdout.write(
            f"  enough history for cohorts: {report.enough_for_cohorts}; for CLV: {report.enough_for_clv}"
        )
        for problem in report.problems:
            self.stdout.write(self.style.WARNING(f"  ! {problem.code}: {problem.message} ({problem.rows} rows)"))
            for sample in problem.samples:
                self.stdout.write(f"      {sample}")
