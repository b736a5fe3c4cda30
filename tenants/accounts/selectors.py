"""Reads of the current tenant's accounts: users, invitations, API tokens, audit log."""

from __future__ import annotations

from django.db.models import F, QuerySet

from tenants.accounts.models import ApiToken, AuditLogEntry, Invitation, User
from tenants.accounts.tokens import hash_secret


def user_list() -> QuerySet[User]:
    return User.objects.order_by("-is_active", "email")


def invitation_list_pending() -> QuerySet[Invitation]:
    """Invitations not yet accepted, expired ones included (the page marks them)."""
    return Invitation.objects.filter(accepted_at__isnull=True).select_related("invited_by").order_by("-created_at")


def invitation_get_by_token(*, raw_token: str) -> Invitation | None:
    """The invitation behind a link, whatever its state; None for a link we never issued (or one revoked)."""
    return Invitation.objects.filter(token_hash=hash_secret(raw_token)).first()


def api_token_list() -> QuerySet[ApiToken]:
    """Active tokens first, newest first."""
    return ApiToken.objects.select_related("created_by").order_by(F("revoked_at").asc(nulls_first=True), "-created_at")


def audit_log_list() -> QuerySet[AuditLogEntry]:
    return AuditLogEntry.objects.order_by("-created_at", "-pk")
