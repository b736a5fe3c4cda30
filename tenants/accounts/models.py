from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tenants.accounts.roles import Role


class User(AbstractUser):
    """A person who logs in.

    The table exists in every schema: in the public schema its rows are agency staff
    (``is_staff``), in a tenant's schema they are that client's users with a ``role``.
    """

    email = models.EmailField(_("e-mail"), unique=True)
    role = models.CharField(_("role"), max_length=16, choices=Role.choices, blank=True)

    objects = UserManager()

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS = ["username"]

    def __str__(self) -> str:
        return self.email


class Invitation(models.Model):
    """A one-time link that lets a person set a password and join with a role."""

    email = models.EmailField(_("e-mail"))
    role = models.CharField(_("role"), max_length=16, choices=Role.choices)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email} ({self.role})"

    @property
    def is_expired(self) -> bool:
        return timezone.now() >= self.expires_at


class ApiToken(models.Model):
    """A hashed, scoped, revocable token for the REST API. The secret is shown once."""

    class Scope(models.TextChoices):
        SEGMENTS_READ = "segments:read", _("Read segments and members")
        METRICS_READ = "metrics:read", _("Query metrics")
        EVENTS_WRITE = "events:write", _("Push events and orders")
        IMPORTS_WRITE = "imports:write", _("Import sales and customers files")

    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(max_length=16, db_index=True)
    token_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class AuditLogEntry(models.Model):
    """Who did what, append-only. Used from day one (DESIGN §10)."""

    class Action(models.TextChoices):
        LOGIN = "login", _("Logged in")
        LOGIN_FAILED = "login_failed", _("Failed login")
        LOGOUT = "logout", _("Logged out")
        TENANT_ONBOARDED = "tenant_onboarded", _("Onboarded a tenant")
        INVITATION_SENT = "invitation_sent", _("Sent an invitation")
        INVITATION_ACCEPTED = "invitation_accepted", _("Accepted an invitation")
        INVITATION_REVOKED = "invitation_revoked", _("Revoked an invitation")
        ROLE_CHANGED = "role_changed", _("Changed a role")
        USER_DEACTIVATED = "user_deactivated", _("Deactivated a user")
        USER_REACTIVATED = "user_reactivated", _("Reactivated a user")
        TOKEN_CREATED = "token_created", _("Created an API token")
        TOKEN_REVOKED = "token_revoked", _("Revoked an API token")

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    # Kept as text too, so the entry still says who it was after the user is deleted.
    actor_email = models.CharField(max_length=254, blank=True)
    action = models.CharField(max_length=32, choices=Action.choices)
    target = models.CharField(max_length=254, blank=True)
    details = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "audit log entries"

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_email} {self.action} {self.target}"
