"""The agency console (public schema): staff login, tenant health, onboarding, audit log.

Views only parse, delegate to services and selectors, and render.
"""

from __future__ import annotations

from django.contrib.auth.decorators import user_passes_test
from django.contrib.auth.views import LoginView
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET
from django_tenants.utils import tenant_context

from analytics.clickhouse.client import ClickHouseUnavailableError
from integrations.readiness import readiness_report
from tenants.errors import ApplicationError
from tenants.forms import StaffLoginForm, TenantOnboardForm
from tenants.models import Tenant
from tenants.selectors import audit_log_list, tenant_health_list, tenant_import_runs, tenant_url
from tenants.services import tenant_onboard, tenant_onboarding_errors

AUDIT_LOG_PAGE_SIZE = 50
# Session key under which the owner's one-time invitation link waits for the success page.
ONBOARDED_SESSION_KEY = "console_onboarded_invitation"

staff_required = user_passes_test(lambda user: user.is_active and user.is_staff, login_url="login")


class StaffLoginView(LoginView):
    template_name = "console/login.html"
    form_class = StaffLoginForm


@staff_required
def home_view(request: HttpRequest) -> HttpResponse:
    return render(request, "console/home.html", {"health": tenant_health_list()})


@staff_required
def tenant_detail_view(request: HttpRequest, slug: str) -> HttpResponse:
    health = tenant_health_list(slug=slug)
    if not health:
        raise Http404(_("No tenant with the slug “%(slug)s”.") % {"slug": slug})
    tenant = health[0].tenant
    try:
        with tenant_context(tenant):
            readiness = readiness_report(tenant=tenant)
    except ClickHouseUnavailableError:
        readiness = None  # the health row already says ClickHouse is unavailable
    return render(
        request,
        "console/tenant_detail.html",
        {
            "row": health[0],
            "readiness": readiness,
            "import_runs": tenant_import_runs(tenant=tenant),
            "entries": audit_log_list(target=slug)[:AUDIT_LOG_PAGE_SIZE],
        },
    )


@staff_required
def tenant_onboard_view(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _render_onboard_form(request, TenantOnboardForm())
    form = TenantOnboardForm(request.POST, request.FILES)
    if not form.is_valid():
        return _render_onboard_form(request, form)
    try:
        result = tenant_onboard(**form.cleaned_data, onboarded_by=request.user)
    except ApplicationError as exc:
        field_errors = exc.extra.get("errors") or {}
        for field, message in field_errors.items():
            form.add_error(field if field in form.fields else None, message)
        if not field_errors:
            form.add_error(None, exc.message)
        return _render_onboard_form(request, form)
    request.session[ONBOARDED_SESSION_KEY] = {"slug": result.tenant.slug, "link": result.owner_invitation_link}
    return redirect("tenant_onboarded", slug=result.tenant.slug)


def _render_onboard_form(request: HttpRequest, form: TenantOnboardForm) -> HttpResponse:
    # A failed submit opens the wizard at the first step with an error (review for errors of no field).
    current_step = (form.first_step_with_errors() or "review") if form.errors else "client"
    return render(request, "console/onboard.html", {"form": form, "current_step": current_step})


@staff_required
def tenant_onboarded_view(request: HttpRequest, slug: str) -> HttpResponse:
    tenant = Tenant.objects.filter(slug=slug).prefetch_related("domains").first()
    if tenant is None:
        raise Http404(_("No tenant with the slug “%(slug)s”.") % {"slug": slug})
    # The link is shown once: a reload shows the page without it (the owner also got it by e-mail).
    pending = request.session.get(ONBOARDED_SESSION_KEY) or {}
    invitation_link = None
    if pending.get("slug") == slug:
        invitation_link = pending["link"]
        del request.session[ONBOARDED_SESSION_KEY]
    return render(
        request,
        "console/onboarded.html",
        {"tenant": tenant, "tenant_url": tenant_url(tenant), "invitation_link": invitation_link},
    )


@staff_required
@require_GET
def tenant_slug_check_view(request: HttpRequest) -> HttpResponse:
    """htmx fragment: whether a slug can be used for a new tenant, and if not, why."""
    slug = request.GET.get("slug", "").strip().lower()
    # Only the slug's verdict matters here; the other fields are checked when the wizard is submitted.
    errors = tenant_onboarding_errors(
        slug=slug, name="", owner_email="", timezone="", currency="", locale="", primary_color="", theme=""
    )
    return render(request, "console/_slug_check.html", {"slug": slug, "error": errors.get("slug")})


@staff_required
def audit_log_view(request: HttpRequest) -> HttpResponse:
    page = Paginator(audit_log_list(), AUDIT_LOG_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "console/audit_log.html", {"page": page, "entries": page.object_list})
