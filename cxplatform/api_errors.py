"""One error format for the whole API: ``{"message": str, "extra": dict}`` (HackSoft styleguide).

``ApplicationError`` (a failure the caller can act on) becomes 400; Django's own ValidationError,
Http404 and PermissionDenied become their DRF counterparts; DRF's errors keep their status codes
and field errors go to ``extra["fields"]``.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from django.utils.translation import gettext as _
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler

from tenants.errors import ApplicationError


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        return Response({"message": exc.message, "extra": exc.extra}, status=400)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(as_serializer_error(exc))
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    response = exception_handler(exc, context)
    if response is None:  # not an API error: let Django's 500 handling take it
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = {"message": _("Validation error"), "extra": {"fields": response.data}}
    else:
        response.data = {"message": str(exc.detail), "extra": {}}
    return response
