"""Forms of the workspace pages. They only parse input; the rules live in services."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from tenants.accounts.models import ApiToken
from tenants.accounts.roles import Role
from tenants.accounts.services import login_failure_record, login_failures_clear, login_throttle_check
from tenants.errors import ApplicationError


class ThrottledLoginForm(AuthenticationForm):
    """E-mail and password, refused for a while after too many failures for that e-mail (per schema)."""

    def clean(self) -> dict[str, Any]:
        email = self.cleaned_data.get("username") or ""
        if email:
            try:
                login_throttle_check(email=email)
            except ApplicationError as exc:
                raise ValidationError(exc.message, code="throttled") from None
        try:
            cleaned = super().clean()
        except ValidationError as exc:
            if exc.code == "invalid_login":
                login_failure_record(email=email)
            raise
        login_failures_clear(email=email)
        return cleaned


class InvitationAcceptForm(forms.Form):
    first_name = forms.CharField(label=_("First name"), max_length=150)
    last_name = forms.CharField(label=_("Last name"), max_length=150, required=False)
    password1 = forms.CharField(
        label=_("Password"), strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )
    password2 = forms.CharField(
        label=_("Password again"), strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )

    def clean(self) -> dict:
        cleaned = super().clean()
        if cleaned.get("password1") and cleaned.get("password2") and cleaned["password1"] != cleaned["password2"]:
            self.add_error("password2", _("The two passwords differ; type the same password twice."))
        return cleaned


class InvitationCreateForm(forms.Form):
    email = forms.EmailField(label=_("E-mail"))
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices, initial=Role.VIEWER)


class RoleChangeForm(forms.Form):
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices)


class ApiTokenCreateForm(forms.Form):
    name = forms.CharField(
        label=_("Name"), max_length=100, help_text=_("Who or what will use the token, e.g. “Mindbox sync”.")
    )
    scopes = forms.MultipleChoiceField(
        label=_("Scopes"),
        choices=ApiToken.Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": _("Choose at least one scope.")},
    )
