from __future__ import annotations

from django.db import connection
from django.utils import timezone
from rest_framework import authentication, exceptions, permissions

from tenants.accounts.models import ApiToken
from tenants.accounts.roles import permission_label
from tenants.accounts.tokens import api_token_parse, hash_secret
from tenants.middleware import bearer_token


class ApiClient:
    """The caller of an API request authenticated by token (not a person)."""

    is_authenticated = True
    is_anonymous = False
    is_active = True

    def __init__(self, token: ApiToken):
        self.token = token
        self.pk = None
        self.email = f"api-token:{token.name}"

    def has_perm(self, perm: str, obj=None) -> bool:
        return False

    def __str__(self) -> str:
        return self.email


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        raw = bearer_token(request)
        if raw is None:
            return None
        parsed = api_token_parse(raw)
        tenant = getattr(connection, "tenant", None)
        # The middleware already switched to the token's tenant; a mismatch means the token was forged.
        if parsed is None or tenant is None or getattr(tenant, "slug", None) != parsed[0]:
            raise exceptions.AuthenticationFailed("Invalid API token.")
        token = ApiToken.objects.filter(token_hash=hash_secret(parsed[1]), revoked_at__isnull=True).first()
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API token.")
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
        return ApiClient(token), token

    def authenticate_header(self, request) -> str:
        return self.keyword


# ``required_scope`` of views that any valid token may call, whatever its scopes (``/api/v1/me/``).
ANY_SCOPE = "*"


class HasTokenScope(permissions.BasePermission):
    """Views declare ``required_scope`` for token callers and, optionally, ``required_permission``
    (a role permission of roles.py) for people signed in; without it, being logged in is enough.

    A view that declares no scope refuses every token (fail closed); ``ANY_SCOPE`` admits any valid token.
    """

    def has_permission(self, request, view) -> bool:
        scope = getattr(view, "required_scope", None)
        if isinstance(request.auth, ApiToken):
            return scope == ANY_SCOPE or (scope is not None and scope in request.auth.scopes)
        permission = getattr(view, "required_permission", None)
        if permission is not None:
            return request.user.is_authenticated and request.user.has_perm(permission_label(permission))
        return request.user.is_authenticated
