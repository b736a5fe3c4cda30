from __future__ import annotations

import zoneinfo

from django.conf import settings
from django.utils import timezone, translation


class TenantLocaleMiddleware:
    """A workspace speaks its tenant's locale unless the person chose a language (the language cookie),
    and shows times in the tenant's timezone."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        tenant = getattr(request, "tenant", None)
        locale = getattr(tenant, "locale", None)
        is_workspace = tenant is not None and not getattr(tenant, "is_public", True)
        # A person's choice (the cookie) wins; so does an API client's Accept-Language.
        chose_language = settings.LANGUAGE_COOKIE_NAME in request.COOKIES or (
            request.path.startswith("/api/") and "Accept-Language" in request.headers
        )
        if is_workspace and locale and not chose_language:
            translation.activate(locale)
            request.LANGUAGE_CODE = locale
        if is_workspace:
            timezone.activate(zoneinfo.ZoneInfo(tenant.timezone))
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
