from django.db import connection
from django_tenants.utils import tenant_context

from tenants.accounts.models import User


def test_each_tenant_has_its_own_schema_and_users(make_tenant, make_user):
    a, b = make_tenant("alpha"), make_tenant("beta")
    assert a.schema_name != b.schema_name
    make_user(a, "viewer", email="same@x.test")
    with tenant_context(b):
        assert not User.objects.filter(email="same@x.test").exists()
    with tenant_context(a):
        assert User.objects.filter(email="same@x.test").exists()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT schema_name FROM information_schema.schemata WHERE schema_name = ANY(%s)",
            [[a.schema_name, b.schema_name]],
        )
        assert {row[0] for row in cursor.fetchall()} == {a.schema_name, b.schema_name}
