"""``manage.py query --tenant SLUG --metrics M1,M2 [--dimensions D1] --from D --to D [...] --format json|csv``."""

from __future__ import annotations

import csv
import json

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_tenants.utils import tenant_context

from analytics.selectors import metrics_query
from analytics.semantic.catalog import catalog
from analytics.semantic.spec import query_parse
from analytics.serialization import to_jsonable
from tenants.errors import ApplicationError
from tenants.models import Tenant

BAD_INPUT_EXIT_CODE = 2


def filters_parse(pairs: list[str]) -> list[dict]:
    """``["store=A", "store=B", "city!=Омск"]`` → filters; values of one dimension and operator are OR-ed."""
    merged: dict[tuple[str, bool], list[str]] = {}
    for pair in pairs:
        exclude = "!=" in pair
        dimension, separator, value = pair.partition("!=" if exclude else "=")
        if not separator or not dimension.strip():
            raise CommandError(f"--filter takes DIMENSION=VALUE or DIMENSION!=VALUE, not {pair!r}.", returncode=2)
        merged.setdefault((dimension.strip(), exclude), []).append(value)
    return [{"dimension": d, "values": values, "exclude": exclude} for (d, exclude), values in merged.items()]


class Command(BaseCommand):
    help = "Query metrics of the semantic layer for a tenant, or print the catalog (--catalog)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--catalog", action="store_true", help="Print every metric and dimension as JSON.")
        parser.add_argument("--tenant", help="The tenant's slug.")
        parser.add_argument("--metrics", help="Comma-separated metric ids.")
        parser.add_argument("--dimensions", default="", help="Comma-separated dimension ids.")
        parser.add_argument("--from", dest="start", help="First day, YYYY-MM-DD (tenant's timezone).")
        parser.add_argument("--to", dest="end", help="Last day, YYYY-MM-DD (included).")
        parser.add_argument("--granularity", help="day, week, month, quarter or year.")
        parser.add_argument("--compare", help="previous_period or previous_year.")
        parser.add_argument("--filter", action="append", default=[], metavar="D=V", help="Repeatable; D!=V excludes.")
        parser.add_argument("--limit", type=int, help="Rows at most (default 1000).")
        parser.add_argument("--format", choices=["json", "csv"], default="json")

    def handle(self, *args, **options) -> None:
        if options["catalog"]:
            self.stdout.write(json.dumps(catalog(), ensure_ascii=False, indent=2))
            return
        if not options["tenant"]:
            raise CommandError("Give --tenant SLUG (or --catalog).", returncode=BAD_INPUT_EXIT_CODE)
        tenant = Tenant.objects.exclude(schema_name="public").filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant with slug {options['tenant']!r}.", returncode=BAD_INPUT_EXIT_CODE)
        raw = {
            "metrics": options["metrics"] or "",
            "dimensions": options["dimensions"],
            "from": options["start"],
            "to": options["end"],
            "granularity": options["granularity"],
            "compare": options["compare"],
            "filters": filters_parse(options["filter"]),
            "limit": options["limit"],
        }
        with tenant_context(tenant):
            try:
                answer = metrics_query(query_parse(raw))
            except ApplicationError as error:
                raise CommandError(error.message, returncode=BAD_INPUT_EXIT_CODE) from error
        if options["format"] == "json":
            self.stdout.write(json.dumps(to_jsonable(answer), ensure_ascii=False, indent=2))
        else:
            self._write_csv(answer)

    def _write_csv(self, answer: dict) -> None:
        """One line per row; with a comparison, each metric's previous value and change in % follow it."""
        metrics = [metric["id"] for metric in answer["metrics"]]
        dimensions = [dimension["id"] for dimension in answer["dimensions"]]
        compared = answer["comparison"] is not None
        header = (["bucket"] if answer["granularity"] else []) + dimensions
        for metric in metrics:
            header += [metric, f"{metric}_previous", f"{metric}_change_pct"] if compared else [metric]
        writer = csv.writer(self.stdout)
        writer.writerow(header)
        rows = [*answer["rows"], {"bucket": "total", "dimensions": {}, **answer["totals"]}]
        for row in to_jsonable(rows):
            line = [row["bucket"]] if answer["granularity"] else []
            line += [row["dimensions"].get(d, "") for d in dimensions]
            if row["bucket"] == "total" and not answer["granularity"]:
                line = ["total", *[""] * (len(dimensions) - 1)] if dimensions else []
            for metric in metrics:
                line.append(row["values"][metric])
                if compared:
                    line += [row["previous"][metric], row["change"][metric]["percent"]]
            writer.writerow(line)
