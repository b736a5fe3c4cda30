"""Forms of the agency console. They parse input; the rules live in tenants.services."""

from __future__ import annotations

import zoneinfo
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.urls import reverse_lazy
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from tenants.accounts.forms import ThrottledLoginForm
from tenants.currencies import CURRENCY_CODES
from tenants.models import Tenant
from tenants.services import LOGO_EXTENSIONS


class StaffLoginForm(ThrottledLoginForm):
    """E-mail and password of an agency staff member."""

    error_messages = {
        **ThrottledLoginForm.error_messages,
        "not_staff": _(
            "%(email)s is not agency staff. The console is for agency staff only; "
            "client users log in at their workspace's address."
        ),
    }

    def confirm_login_allowed(self, user) -> None:
        super().confirm_login_allowed(user)
        if not user.is_staff:
            raise ValidationError(self.error_messages["not_staff"], code="not_staff", params={"email": user.email})


class TenantOnboardForm(forms.Form):
    """The onboarding wizard: one form, shown step by step.

    Fields are loosely typed on purpose: ``tenant_onboard`` checks every value and says
    what is wrong with each, and the view puts those messages next to the fields.
    """

    # (step id, title, fields) in the order the wizard shows them.
    STEPS = (
        ("client", _("Client"), ("name", "slug", "timezone", "currency", "locale")),
        ("branding", _("Branding"), ("logo", "primary_color", "theme")),
        ("owner", _("First owner"), ("owner_email",)),
    )

    name = forms.CharField(label=_("Client name"), max_length=Tenant._meta.get_field("name").max_length, required=False)
    slug = forms.CharField(
        label=_("Slug"),
        required=False,
        # Live availability check: the endpoint answers with the error or "available".
        widget=forms.TextInput(
            attrs={
                "hx-get": reverse_lazy("tenant_slug_check"),
                "hx-trigger": "input changed delay:300ms",
                "hx-target": "#slug-check",
                "autocomplete": "off",
            }
        ),
        # format_lazy, not %: the field is built at import time, the text must follow each request's language.
        help_text=format_lazy(
            _("The workspace address: <slug>.{domain}. Lowercase Latin letters, digits and hyphens."),
            domain=settings.TENANT_BASE_DOMAIN,
        ),
    )
    timezone = forms.CharField(
        label=_("Time zone"),
        initial=settings.DEFAULT_TENANT_TIMEZONE,
        required=False,
        widget=forms.TextInput(attrs={"list": "timezones", "autocomplete": "off"}),
        help_text=_("Periods (days, weeks, months) are counted in this time zone."),
    )
    currency = forms.CharField(
        label=_("Currency"),
        initial=settings.DEFAULT_TENANT_CURRENCY,
        required=False,
        widget=forms.TextInput(attrs={"list": "currencies", "autocomplete": "off", "maxlength": 3}),
    )
    locale = forms.ChoiceField(label=_("Language"), choices=Tenant.Locale.choices, initial=Tenant.Locale.RU)
    logo = forms.FileField(
        label=_("Logo"),
        required=False,
        widget=forms.ClearableFileInput(attrs={"accept": ",".join(LOGO_EXTENSIONS)}),
        help_text=_("Optional: PNG, SVG, JPG or WebP, up to 1 MB."),
    )
    primary_color = forms.CharField(
        label=_("Primary colour"),
        initial="#2563eb",
        required=False,
        widget=forms.TextInput(attrs={"type": "color"}),
    )
    theme = forms.ChoiceField(
        label=_("Default theme"), choices=Tenant.Theme.choices, initial=Tenant.Theme.LIGHT, widget=forms.RadioSelect
    )
    owner_email = forms.CharField(
        label=_("Owner's e-mail"),
        required=False,
        widget=forms.EmailInput(attrs={"autocomplete": "off"}),
        help_text=_("They get a one-time link to set their password and invite their colleagues."),
    )

    def clean_slug(self) -> str:
        return self.cleaned_data["slug"].strip().lower()

    def steps(self) -> list[dict[str, Any]]:
        """The wizard's steps with their bound fields, for the template."""
        return [
            {
                "id": step_id,
                "title": title,
                "fields": [self[name] for name in names],
                "has_errors": any(name in self.errors for name in names),
            }
            for step_id, title, names in self.STEPS
        ]

    def first_step_with_errors(self) -> str | None:
        for step_id, _title, names in self.STEPS:
            if any(name in self.errors for name in names):
                return step_id
        return None

    @staticmethod
    def timezone_choices() -> list[str]:
        return sorted(zoneinfo.available_timezones())

    @staticmethod
    def currency_choices() -> list[str]:
        return sorted(CURRENCY_CODES)
