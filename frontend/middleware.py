from __future__ import annotations

from django.conf import settings
from django.utils import translation


class TenantLocaleMiddleware:
    """A workspace speaks its tenant's locale unless the person chose a language (the language cookie)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        tenant = getattr(request, "tenant", None)
        locale = getattr(tenant, "locale", None)
        if locale and not getattr(tenant, "is_public", True) and settings.LANGUAGE_COOKIE_NAME not in request.COOKIES:
            translation.activate(locale)
            request.LANGUAGE_CODE = locale
        return self.get_response(request)
