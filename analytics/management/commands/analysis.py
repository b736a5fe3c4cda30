"""``manage.py analysis NAME --tenant SLUG [--param K=V …] --format json``."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_tenants.utils import tenant_context

from analytics.analyses.base import analyses, analysis_run
from analytics.serialization import to_jsonable
from tenants.errors import ApplicationError
from tenants.models import Tenant

BAD_INPUT_EXIT_CODE = 2


def params_parse(pairs: list[str]) -> dict[str, str]:
    params = {}
    for pair in pairs:
        name, separator, value = pair.partition("=")
        if not separator or not name.strip():
            raise CommandError(f"--param takes NAME=VALUE, not {pair!r}.", returncode=BAD_INPUT_EXIT_CODE)
        params[name.strip()] = value.strip()
    return params


class Command(BaseCommand):
    help = "Run an analysis (cohorts, rfm, clv, basket, …) for a tenant and print it as JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", nargs="?", help="The analysis; omit it with --list.")
        parser.add_argument("--tenant", help="The tenant's slug.")
        parser.add_argument("--param", action="append", default=[], metavar="K=V", help="A parameter (repeatable).")
        parser.add_argument("--format", choices=["json"], default="json")
        parser.add_argument("--list", action="store_true", help="Print every analysis and its parameters.")

    def handle(self, *args, **options) -> None:
        if options["list"]:
            described = [analysis.describe() for analysis in analyses().values()]
            self.stdout.write(json.dumps(described, ensure_ascii=False, indent=2))
            return
        if not options["name"] or not options["tenant"]:
            raise CommandError("Give an analysis NAME and --tenant SLUG (or --list).", returncode=BAD_INPUT_EXIT_CODE)
        tenant = Tenant.objects.exclude(schema_name="public").filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant with slug {options['tenant']!r}.", returncode=BAD_INPUT_EXIT_CODE)
        params = params_parse(options["param"])
        with tenant_context(tenant):
            try:
                # The command is an operator's tool: staff-only analyses (peers) are allowed here.
                result = analysis_run(options["name"], params, staff=True)
            except ApplicationError as error:
                raise CommandError(error.message, returncode=BAD_INPUT_EXIT_CODE) from error
        self.stdout.write(json.dumps(to_jsonable(result), ensure_ascii=False, indent=2))
