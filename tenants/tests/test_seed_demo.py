from django.core.management import call_command
from django_tenants.utils import tenant_context

from tenants.accounts.models import Invitation, User
from tenants.management.commands.seed_demo import DEMO_PASSWORD, DEMO_STAFF_EMAIL
from tenants.models import Tenant


def test_seed_demo_creates_logins_that_work_and_is_idempotent(db, capsys):
    call_command("seed_demo")
    call_command("seed_demo")
    out = capsys.readouterr().out
    assert DEMO_STAFF_EMAIL in out and "http://demo.localhost:8000/" in out

    staff = User.objects.get(email=DEMO_STAFF_EMAIL)
    assert staff.is_staff and staff.check_password(DEMO_PASSWORD)
    demo = Tenant.objects.get(slug="demo")
    with tenant_context(demo):
        roles = dict(User.objects.values_list("email", "role"))
        assert roles == {f"{r}@demo.example": r for r in ("owner", "analyst", "marketer", "viewer")}
        assert User.objects.get(email="owner@demo.example").check_password(DEMO_PASSWORD)
        assert not Invitation.objects.filter(accepted_at__isnull=True).exists()  # the owner used the link
    assert Tenant.objects.filter(slug="demo").count() == 1
