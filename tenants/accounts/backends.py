from __future__ import annotations

from django.contrib.auth.backends import ModelBackend

from tenants.accounts.roles import ROLE_PERMISSIONS, permission_label


class RoleBackend(ModelBackend):
    """Grants ``accounts.<permission>`` from the user's role on top of Django's model permissions."""

    def get_all_permissions(self, user_obj, obj=None) -> set[str]:
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
            return set()
        perms = set(super().get_all_permissions(user_obj, obj))
        perms.update(permission_label(p) for p in ROLE_PERMISSIONS.get(user_obj.role, ()))
        return perms
