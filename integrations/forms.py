"""Forms of the data pages: the upload, and the column mapping offered after it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from django import forms
from django.utils.translation import gettext_lazy as _

from integrations.files.columns import COLUMNS, Dataset
from integrations.files.services import DEFAULT_SOURCE_NAME


class FileUploadForm(forms.Form):
    dataset = forms.ChoiceField(
        label=_("What the file holds"),
        choices=[(Dataset.SALES.value, _("Sales: receipt lines")), (Dataset.CUSTOMERS.value, _("Customers"))],
        initial=Dataset.SALES.value,
        widget=forms.RadioSelect,
    )
    source = forms.CharField(
        label=_("Data source"),
        max_length=100,
        initial=DEFAULT_SOURCE_NAME,
        help_text=_("Column mappings are remembered per data source: use one per cash register system or export."),
    )
    file = forms.FileField(
        label=_("File"),
        help_text=_("CSV (UTF-8 or Windows-1251, comma or semicolon separated) or XLSX, the header in the first row."),
    )


class ColumnMappingForm(forms.Form):
    """One choice per column of the file: the canonical column it fills, or nothing (ignored)."""

    def __init__(
        self, *args, headers: Sequence[str], dataset: Dataset, initial_mapping: Mapping[str, str], **kwargs
    ) -> None:
        super().__init__(*args, **kwargs)
        self.headers = list(headers)
        choices = [("", _("— ignore —")), *[(column, column) for column in COLUMNS[dataset]]]
        for position, header in enumerate(self.headers):
            self.fields[f"column_{position}"] = forms.ChoiceField(
                label=header or _("(no name)"),
                choices=choices,
                required=False,
                initial=initial_mapping.get(header, ""),
            )

    def mapping(self) -> dict[str, str]:
        """{file header: canonical column or ""}: a complete mapping, so nothing is left to chance."""
        return {header: self.cleaned_data[f"column_{position}"] for position, header in enumerate(self.headers)}
