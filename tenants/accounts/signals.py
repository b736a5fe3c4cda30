"""Audit of logins, failed logins and logouts, in the schema where they happen."""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from tenants.accounts.models import AuditLogEntry
from tenants.accounts.services import audit_log_record


def _ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR") if request is not None else None


@receiver(user_logged_in, dispatch_uid="audit_login")
def _logged_in(sender, request, user, **kwargs) -> None:
    audit_log_record(action=AuditLogEntry.Action.LOGIN, actor=user, ip_address=_ip(request))


@receiver(user_logged_out, dispatch_uid="audit_logout")
def _logged_out(sender, request, user, **kwargs) -> None:
    if user is not None:
        audit_log_record(action=AuditLogEntry.Action.LOGOUT, actor=user, ip_address=_ip(request))


@receiver(user_login_failed, dispatch_uid="audit_login_failed")
def _login_failed(sender, credentials, request=None, **kwargs) -> None:
    audit_log_record(
        action=AuditLogEntry.Action.LOGIN_FAILED,
        actor_email=str(credentials.get("username") or credentials.get("email") or "")[:254],
        ip_address=_ip(request),
    )
