"""``manage.py import_file --tenant SLUG --kind sales|customers PATH [--map SRC=DST …] [--source NAME]``."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_tenants.utils import tenant_context

from integrations.files.columns import Dataset, mapping_suggest
from integrations.files.reader import tabular_file_open
from integrations.files.services import (
    DEFAULT_SOURCE_NAME,
    file_import,
    file_source_get_or_create,
    import_run_create,
)
from integrations.models import ImportRun
from tenants.models import Tenant

ERRORS_PRINTED = 20
BAD_FILE_EXIT_CODE = 2


def mapping_parse(pairs: list[str]) -> dict[str, str]:
    """``["Номер чека=order_id", "Комментарий="]`` → a mapping; an empty target ignores the column."""
    mapping = {}
    for pair in pairs:
        source, separator, target = pair.partition("=")
        if not separator or not source.strip():
            raise CommandError(f"--map takes SOURCE=TARGET (a file header and a canonical column), not {pair!r}.")
        mapping[source.strip()] = target.strip()
    return mapping


class Command(BaseCommand):
    help = (
        "Import a canonical sales or customers file (CSV or XLSX) into a tenant. A bad file imports nothing "
        "and exits with status 2 after printing its errors (row, column, value, reason)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="The tenant's slug.")
        parser.add_argument("--kind", required=True, choices=[d.value for d in Dataset], help="What the file holds.")
        parser.add_argument("path", type=Path, help="The CSV or XLSX file.")
        parser.add_argument(
            "--map",
            action="append",
            default=[],
            metavar="SRC=DST",
            help="Map a file header onto a canonical column (repeatable; 'SRC=' ignores a column). "
            "Saved with the data source and reused next time.",
        )
        parser.add_argument("--source", default=DEFAULT_SOURCE_NAME, help="The file data source to import into.")

    def handle(self, *args, **options) -> None:
        path: Path = options["path"]
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None or tenant.is_public:
            raise CommandError(f"No tenant with the slug {options['tenant']!r}.")
        mapping = mapping_parse(options["map"])
        dataset = Dataset(options["kind"])
        with tenant_context(tenant):
            source = file_source_get_or_create(name=options["source"])
            run = import_run_create(data_source=source, dataset=dataset, file_name=path.name)
            file_import(import_run=run, path=path, mapping=mapping)
        self._report(run, path)

    def _report(self, run: ImportRun, path: Path) -> None:
        if run.status == ImportRun.Status.SUCCEEDED:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Import run {run.pk}: {run.rows_read} rows read, {run.rows_written} written "
                    f"in {run.duration_seconds:.1f} s."
                )
            )
            return
        self.stderr.write(f"Import run {run.pk}: {run.message}")
        for error in run.errors[:ERRORS_PRINTED]:
            row = "file" if error["row"] is None else f"row {error['row']}"
            column = f" {error['column']}" if error["column"] else ""
            value = f" {error['value']!r}" if error["value"] else ""
            self.stderr.write(f"  {row}{column}{value}: {error['reason']}")
        if len(run.errors) > ERRORS_PRINTED:
            self.stderr.write(f"  … only the first {ERRORS_PRINTED} are shown here.")
        if any(error["row"] == 1 for error in run.errors):
            self._suggest_mapping(path, Dataset(run.dataset))
        raise CommandError("Nothing was imported.", returncode=BAD_FILE_EXIT_CODE)

    def _suggest_mapping(self, path: Path, dataset: Dataset) -> None:
        """The header did not fit: print the --map options that the known synonyms suggest."""
        headers = tabular_file_open(path).headers
        options = [f"--map '{src}={dst}'" for src, dst in mapping_suggest(headers, dataset).items() if src != dst]
        if options:
            self.stderr.write("  Suggested mapping: " + " ".join(options))
