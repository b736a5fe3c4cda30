"""Pages of a client's workspace (<slug>.localhost): login, invitations, users and roles, API tokens, audit log.

Views only parse input, call services/selectors and render; every rule lives in services.
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Callable

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required, permission_required
from django.contrib.auth.views import LoginView
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from tenants.accounts import selectors, services
from tenants.accounts.forms import (
    ApiTokenCreateForm,
    InvitationAcceptForm,
    InvitationCreateForm,
    RoleChangeForm,
    ThrottledLoginForm,
)
from tenants.accounts.models import ApiToken, Invitation, User
from tenants.accounts.roles import Permission, Role, permission_label
from tenants.errors import ApplicationError

logger = logging.getLogger(__name__)

MANAGE_USERS = permission_label(Permission.MANAGE_USERS)
MANAGE_API_TOKENS = permission_label(Permission.MANAGE_API_TOKENS)
AUDIT_LOG_PAGE_SIZE = 50


def permission_required_or_403(permission: str) -> Callable:
    """Anonymous visitors go to the login page; logged-in users without the permission get 403, not a redirect."""

    def decorator(view: Callable) -> Callable:
        return login_required(permission_required(permission, raise_exception=True)(view))

    return decorator


def _perform(request: HttpRequest, action: Callable[[], object], success_message: str) -> None:
    """Run a service call and report its outcome as a flash message (the error says what went wrong)."""
    try:
        action()
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, success_message)


class WorkspaceLoginView(LoginView):
    template_name = "workspace/login.html"
    form_class = ThrottledLoginForm
    redirect_authenticated_user = True


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "workspace/home.html")


# --- Invitations ------------------------------------------------------------------------------------------------


def _invitation_unusable_page(request: HttpRequest, invitation: Invitation | None) -> HttpResponse | None:
    """The page for a link that cannot be used (unknown: 404; used or expired: 410), or None when it can."""
    if invitation is None:
        reason, status = "unknown", 404
    elif invitation.accepted_at is not None:
        reason, status = "used", 410
    elif invitation.is_expired:
        reason, status = "expired", 410
    else:
        return None
    return render(request, "workspace/invitation_unusable.html", {"reason": reason}, status=status)


@never_cache
@require_http_methods(["GET", "POST"])
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    invitation = selectors.invitation_get_by_token(raw_token=token)
    unusable = _invitation_unusable_page(request, invitation)
    if unusable is not None:
        return unusable
    form = InvitationAcceptForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.invitation_accept(
                raw_token=token,
                password=form.cleaned_data["password1"],
                first_name=form.cleaned_data["first_name"],
                last_name=form.cleaned_data["last_name"],
            )
        except ApplicationError as exc:
            # Someone may have used, or an owner revoked, the link while this form was open.
            unusable = _invitation_unusable_page(request, selectors.invitation_get_by_token(raw_token=token))
            if unusable is not None:
                return unusable
            form.add_error(None, exc.message)
        else:
            login(request, user)
            messages.success(request, _("Welcome to %(name)s.") % {"name": request.tenant.name})
            return redirect("home")
    return render(request, "workspace/invitation_accept.html", {"invitation": invitation, "form": form})


# --- Users, roles, audit log ------------------------------------------------------------------------------------


def _users_page(request: HttpRequest, invite_form: InvitationCreateForm) -> HttpResponse:
    return render(
        request,
        "workspace/users.html",
        {
            "users": selectors.user_list(),
            "invitations": selectors.invitation_list_pending(),
            "invite_form": invite_form,
            "role_form": RoleChangeForm(),
        },
    )


@permission_required_or_403(MANAGE_USERS)
def users(request: HttpRequest) -> HttpResponse:
    return _users_page(request, InvitationCreateForm())


@require_POST
@permission_required_or_403(MANAGE_USERS)
def users_invite(request: HttpRequest) -> HttpResponse:
    form = InvitationCreateForm(request.POST)
    if not form.is_valid():
        return _users_page(request, form)
    email = form.cleaned_data["email"]
    try:
        invitation, raw_token = services.invitation_create(
            email=email, role=form.cleaned_data["role"], invited_by=request.user
        )
    except ApplicationError as exc:
        form.add_error(None, exc.message)
        return _users_page(request, form)
    link = services.invitation_link(request.tenant.get_primary_domain().domain, raw_token)
    try:
        services.invitation_send(invitation=invitation, link=link, tenant=request.tenant)
    except (smtplib.SMTPException, OSError):
        # The invitation exists; the owner can pass the link on by other means.
        logger.exception("Could not e-mail the invitation to %s", email)
        messages.warning(
            request,
            _(
                "The invitation for %(email)s was created, but the e-mail could not be sent. "
                "Give them this link: %(link)s"
            )
            % {"email": email, "link": link},
        )
    else:
        messages.success(request, _("Invitation sent to %(email)s.") % {"email": email})
    return redirect("users")


@require_POST
@permission_required_or_403(MANAGE_USERS)
def user_role_change(request: HttpRequest, user_id: int) -> HttpResponse:
    user = get_object_or_404(User, pk=user_id)
    form = RoleChangeForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose one of the listed roles."))
        return redirect("users")
    role = form.cleaned_data["role"]
    _perform(
        request,
        lambda: services.user_role_change(user=user, role=role, changed_by=request.user),
        _("%(email)s is now %(role)s.") % {"email": user.email, "role": Role(role).label},
    )
    return redirect("users")


@require_POST
@permission_required_or_403(MANAGE_USERS)
def user_deactivate(request: HttpRequest, user_id: int) -> HttpResponse:
    user = get_object_or_404(User, pk=user_id)
    _perform(
        request,
        lambda: services.user_deactivate(user=user, deactivated_by=request.user),
        _("%(email)s can no longer log in.") % {"email": user.email},
    )
    return redirect("users")


@require_POST
@permission_required_or_403(MANAGE_USERS)
def user_reactivate(request: HttpRequest, user_id: int) -> HttpResponse:
    user = get_object_or_404(User, pk=user_id)
    _perform(
        request,
        lambda: services.user_reactivate(user=user, reactivated_by=request.user),
        _("%(email)s can log in again.") % {"email": user.email},
    )
    return redirect("users")


@require_POST
@permission_required_or_403(MANAGE_USERS)
def invitation_revoke(request: HttpRequest, invitation_id: int) -> HttpResponse:
    invitation = get_object_or_404(Invitation, pk=invitation_id)
    _perform(
        request,
        lambda: services.invitation_revoke(invitation=invitation, revoked_by=request.user),
        _("The invitation for %(email)s is revoked; its link no longer works.") % {"email": invitation.email},
    )
    return redirect("users")


@permission_required_or_403(MANAGE_USERS)
def audit_log(request: HttpRequest) -> HttpResponse:
    page = Paginator(selectors.audit_log_list(), AUDIT_LOG_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "workspace/audit_log.html", {"page": page})


# --- API tokens ---------------------------------------------------------------------------------------------------


@never_cache
@require_http_methods(["GET", "POST"])
@permission_required_or_403(MANAGE_API_TOKENS)
def api_tokens(request: HttpRequest) -> HttpResponse:
    form = ApiTokenCreateForm(request.POST or None)
    created: tuple[ApiToken, str] | None = None
    if request.method == "POST" and form.is_valid():
        try:
            created = services.api_token_create(
                name=form.cleaned_data["name"], scopes=form.cleaned_data["scopes"], created_by=request.user
            )
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            form = ApiTokenCreateForm()
    # The raw token goes into this one response only (no redirect, no session): we keep nothing but its hash.
    return render(
        request,
        "workspace/api_tokens.html",
        {
            "form": form,
            "tokens": selectors.api_token_list(),
            "created_token": created[0] if created else None,
            "created_secret": created[1] if created else None,
        },
    )


@require_POST
@permission_required_or_403(MANAGE_API_TOKENS)
def api_token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=token_id)
    _perform(
        request,
        lambda: services.api_token_revoke(token=token, revoked_by=request.user),
        _("The token “%(name)s” is revoked; calls with it now get 401.") % {"name": token.name},
    )
    return redirect("api_tokens")
