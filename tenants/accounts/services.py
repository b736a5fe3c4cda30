from __future__ import annotations

import hashlib
import math
import time
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import connection, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from tenants.accounts.models import ApiToken, AuditLogEntry, Invitation, User
from tenants.accounts.roles import Role
from tenants.accounts.tokens import api_token_compose, hash_secret, new_secret
from tenants.errors import ApplicationError


def audit_log_record(
    *,
    action: str,
    actor: User | None = None,
    actor_email: str = "",
    target: str = "",
    details: dict | None = None,
    ip_address: str | None = None,
) -> AuditLogEntry:
    return AuditLogEntry.objects.create(
        actor=actor if actor is not None and actor.pk else None,
        actor_email=actor_email or (actor.email if actor is not None else ""),
        action=action,
        target=target,
        details=details or {},
        ip_address=ip_address,
    )


def site_url(domain: str, path: str = "/") -> str:
    """An absolute URL on one of our hosts, with the scheme and port the site is served on."""
    port = f":{settings.SITE_PORT}" if settings.SITE_PORT not in ("", "80", "443") else ""
    return f"{settings.SITE_SCHEME}://{domain}{port}{path}"


def invitation_link(tenant_domain: str, raw_token: str) -> str:
    return site_url(tenant_domain, f"/invite/{raw_token}/")


@transaction.atomic
def invitation_create(*, email: str, role: str, invited_by: User | None = None) -> tuple[Invitation, str]:
    """Create an invitation in the current schema; return it with the raw token (shown once)."""
    email = email.strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        raise ApplicationError(_("“%(email)s” is not a valid e-mail address.") % {"email": email}) from None
    if role not in Role.values:
        raise ApplicationError(
            _("Unknown role “%(role)s”; choose one of: %(roles)s.") % {"role": role, "roles": ", ".join(Role.values)}
        )
    if User.objects.filter(email__iexact=email).exists():
        raise ApplicationError(_("%(email)s already has an account here.") % {"email": email})
    raw = new_secret()
    invitation = Invitation.objects.create(
        email=email,
        role=role,
        token_hash=hash_secret(raw),
        invited_by=invited_by,
        expires_at=timezone.now() + timedelta(hours=settings.INVITATION_TTL_HOURS),
    )
    audit_log_record(
        action=AuditLogEntry.Action.INVITATION_SENT, actor=invited_by, target=email, details={"role": role}
    )
    return invitation, raw


def invitation_send(*, invitation: Invitation, link: str, tenant) -> None:
    """E-mail the link in the workspace's language, whatever language the sender's page is in."""
    with translation.override(tenant.locale):
        send_mail(
            subject=_("You are invited to %(name)s on CX Platform") % {"name": tenant.name},
            message=_(
                "You have been invited to %(name)s as %(role)s.\n\n"
                "Set your password here (the link works once and expires on %(expires)s UTC):\n%(link)s\n"
            )
            % {
                "name": tenant.name,
                "role": invitation.get_role_display(),
                "expires": invitation.expires_at.strftime("%Y-%m-%d %H:%M"),
                "link": link,
            },
            from_email=None,
            recipient_list=[invitation.email],
        )


def invitation_get_valid(*, raw_token: str) -> Invitation:
    """The pending invitation for this token, or an ApplicationError saying why it cannot be used."""
    invitation = Invitation.objects.filter(token_hash=hash_secret(raw_token)).first()
    if invitation is None:
        raise ApplicationError(_("This invitation link is not valid."))
    if invitation.accepted_at is not None:
        raise ApplicationError(_("This invitation link has already been used."))
    if invitation.is_expired:
        raise ApplicationError(_("This invitation link has expired; ask for a new one."))
    return invitation


@transaction.atomic
def invitation_accept(*, raw_token: str, password: str, first_name: str = "", last_name: str = "") -> User:
    invitation = invitation_get_valid(raw_token=raw_token)
    # Lock the row: two clicks on the same link must not create two users.
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if invitation.accepted_at is not None:
        raise ApplicationError(_("This invitation link has already been used."))
    # Another (older) invitation for the same address may have been accepted meanwhile.
    if User.objects.filter(email__iexact=invitation.email).exists():
        raise ApplicationError(_("%(email)s already has an account here.") % {"email": invitation.email})
    user = User(
        email=invitation.email,
        username=invitation.email,
        role=invitation.role,
        first_name=first_name,
        last_name=last_name,
    )
    try:
        from django.contrib.auth.password_validation import validate_password

        validate_password(password, user)
    except ValidationError as exc:
        raise ApplicationError(" ".join(exc.messages)) from None
    user.set_password(password)
    user.save()
    invitation.accepted_at = timezone.now()
    invitation.save(update_fields=["accepted_at"])
    audit_log_record(action=AuditLogEntry.Action.INVITATION_ACCEPTED, actor=user, target=user.email)
    return user


def _ensure_another_active_owner(*, user: User) -> None:
    """Refuse to leave the workspace without an active owner.

    The owner rows are locked, so two owners demoting each other at the same time cannot both succeed.
    """
    owners = User.objects.select_for_update().filter(role=Role.OWNER, is_active=True).exclude(pk=user.pk)
    if not list(owners.values_list("pk", flat=True)):
        raise ApplicationError(_("A workspace needs at least one active owner."))


@transaction.atomic
def user_role_change(*, user: User, role: str, changed_by: User) -> User:
    if role not in Role.values:
        raise ApplicationError(_("Unknown role “%(role)s”.") % {"role": role})
    if role == user.role:  # nothing changes, so nothing to audit
        return user
    if user.role == Role.OWNER:
        _ensure_another_active_owner(user=user)
    old = user.role
    user.role = role
    user.save(update_fields=["role"])
    audit_log_record(
        action=AuditLogEntry.Action.ROLE_CHANGED, actor=changed_by, target=user.email, details={"from": old, "to": role}
    )
    return user


@transaction.atomic
def api_token_create(*, name: str, scopes: list[str], created_by: User | None = None) -> tuple[ApiToken, str]:
    unknown = sorted(set(scopes) - set(ApiToken.Scope.values))
    if unknown or not scopes:
        raise ApplicationError(
            _("Unknown or missing scopes %(unknown)s; valid scopes: %(valid)s.")
            % {"unknown": unknown, "valid": ", ".join(ApiToken.Scope.values)}
        )
    secret = new_secret()
    token = ApiToken.objects.create(
        name=name, prefix=secret[:8], token_hash=hash_secret(secret), scopes=sorted(set(scopes)), created_by=created_by
    )
    audit_log_record(
        action=AuditLogEntry.Action.TOKEN_CREATED, actor=created_by, target=name, details={"scopes": scopes}
    )
    return token, api_token_compose(connection.tenant.slug, secret)


@transaction.atomic
def api_token_revoke(*, token: ApiToken, revoked_by: User | None = None) -> ApiToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_log_record(action=AuditLogEntry.Action.TOKEN_REVOKED, actor=revoked_by, target=token.name)
    return token


def invitations_purge_expired(*, older_than_days: int = 30) -> int:
    """Delete unused invitations that expired more than ``older_than_days`` ago; return how many."""
    cutoff = timezone.now() - timedelta(days=older_than_days)
    deleted, _ = Invitation.objects.filter(accepted_at__isnull=True, expires_at__lt=cutoff).delete()
    return deleted


@transaction.atomic
def user_deactivate(*, user: User, deactivated_by: User) -> User:
    """Block a user from logging in; their sessions stop working on the next request (is_active is checked)."""
    if user.pk == deactivated_by.pk:
        raise ApplicationError(_("You cannot deactivate your own account; ask another owner."))
    if not user.is_active:
        return user
    if user.role == Role.OWNER:
        _ensure_another_active_owner(user=user)
    user.is_active = False
    user.save(update_fields=["is_active"])
    audit_log_record(action=AuditLogEntry.Action.USER_DEACTIVATED, actor=deactivated_by, target=user.email)
    return user


@transaction.atomic
def user_reactivate(*, user: User, reactivated_by: User) -> User:
    if user.is_active:
        return user
    user.is_active = True
    user.save(update_fields=["is_active"])
    audit_log_record(action=AuditLogEntry.Action.USER_REACTIVATED, actor=reactivated_by, target=user.email)
    return user


@transaction.atomic
def invitation_revoke(*, invitation: Invitation, revoked_by: User) -> None:
    """Withdraw a pending invitation: its link stops working. Accepted invitations are history and stay."""
    if invitation.accepted_at is not None:
        raise ApplicationError(
            _("The invitation for %(email)s has already been accepted; deactivate the user instead.")
            % {"email": invitation.email}
        )
    audit_log_record(
        action=AuditLogEntry.Action.INVITATION_REVOKED,
        actor=revoked_by,
        target=invitation.email,
        details={"role": invitation.role},
    )
    invitation.delete()


LOGIN_MAX_FAILURES = 5
LOGIN_THROTTLE_SECONDS = 15 * 60


def _login_cache_keys(email: str) -> tuple[str, str]:
    # Hashed: e-mails may hold characters some cache backends refuse in keys.
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()
    return f"login-failures:{digest}", f"login-locked:{digest}"


def login_throttle_check(*, email: str) -> None:
    """Refuse a login attempt for an e-mail that is locked out after too many failed attempts."""
    _failures_key, locked_key = _login_cache_keys(email)
    locked_until = cache.get(locked_key)
    if locked_until is not None:
        minutes = max(1, math.ceil((locked_until - time.time()) / 60))
        raise ApplicationError(
            ngettext(
                "Too many failed attempts for %(email)s. Try again in %(minutes)d minute.",
                "Too many failed attempts for %(email)s. Try again in %(minutes)d minutes.",
                minutes,
            )
            % {"email": email, "minutes": minutes}
        )


def login_failure_record(*, email: str) -> None:
    """Count a failed login; reaching the limit within the window locks the e-mail out for the next window."""
    failures_key, locked_key = _login_cache_keys(email)
    # add() starts a window only if none is running; incr() is atomic on every backend we use.
    cache.add(failures_key, 0, timeout=LOGIN_THROTTLE_SECONDS)
    try:
        failures = cache.incr(failures_key)
    except ValueError:  # the window expired between add() and incr()
        cache.set(failures_key, 1, timeout=LOGIN_THROTTLE_SECONDS)
        failures = 1
    if failures >= LOGIN_MAX_FAILURES:
        cache.set(locked_key, time.time() + LOGIN_THROTTLE_SECONDS, timeout=LOGIN_THROTTLE_SECONDS)
        cache.delete(failures_key)


def login_failures_clear(*, email: str) -> None:
    """Forget the failed attempts of an e-mail after a successful login."""
    cache.delete_many(_login_cache_keys(email))
