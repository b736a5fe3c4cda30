from django.contrib import admin
from django_tenants.admin import TenantAdminMixin

from tenants.models import Domain, JobRun, Tenant


class DomainInline(admin.TabularInline):
    model = Domain
    extra = 0


@admin.register(Tenant)
class TenantAdmin(TenantAdminMixin, admin.ModelAdmin):
    list_display = ("name", "slug", "schema_name", "timezone", "currency", "created_at")
    search_fields = ("name", "slug")
    readonly_fields = ("schema_name", "slug")
    inlines = [DomainInline]


@admin.register(JobRun)
class JobRunAdmin(admin.ModelAdmin):
    list_display = ("task_name", "tenant", "status", "started_at", "finished_at")
    list_filter = ("status", "task_name")
    readonly_fields = [f.name for f in JobRun._meta.fields]
