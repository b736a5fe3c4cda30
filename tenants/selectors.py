from __future__ import annotations

from django_tenants.utils import tenant_context

from tenants.accounts.models import Invitation, User
from tenants.accounts.roles import Role
from tenants.models import Tenant


def tenant_owner_emails(tenant: Tenant) -> set[str]:
    """E-mails of the tenant's owners, and of pending owner invitations."""
    with tenant_context(tenant):
        users = User.objects.filter(role=Role.OWNER).values_list("email", flat=True)
        invited = Invitation.objects.filter(role=Role.OWNER, accepted_at__isnull=True).values_list("email", flat=True)
        return {e.lower() for e in [*users, *invited]}
