"""``POST /api/v1/events``: bulk orders, customers, message and web events (DESIGN §8)."""

from __future__ import annotations

from django.db import connection
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, extend_schema_serializer
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from integrations.events.schema import (
    MAX_BODY_BYTES,
    MAX_ITEMS,
    MAX_REPORTED_ERRORS,
    BatchTooLargeError,
    batch_openapi_schema,
    body_too_large,
    item_openapi_schema,
)
from integrations.events.services import events_ingest
from tenants.accounts.authentication import HasTokenScope
from tenants.accounts.models import ApiToken
from tenants.accounts.roles import Permission

JSON_MEDIA_TYPE = "application/json"
NDJSON_MEDIA_TYPES = ("application/x-ndjson", "application/ndjson")


class PayloadTooLarge(exceptions.APIException):
    status_code = 413
    default_detail = _("The request is too large.")
    default_code = "payload_too_large"


class EventsThrottle(SimpleRateThrottle):
    """Requests per token (or per signed-in user) per workspace; the rate is REST_FRAMEWORK's ``events_api``."""

    scope = "events_api"

    def get_rate(self) -> str | None:
        # Read at request time, not at import as DRF's default does, so a changed setting applies.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def get_cache_key(self, request: Request, view: APIView) -> str:
        caller = f"token-{request.auth.pk}" if isinstance(request.auth, ApiToken) else f"user-{request.user.pk}"
        return self.cache_format % {"scope": self.scope, "ident": f"{connection.tenant.pk}-{caller}"}


def _body_read(request: Request) -> bytes:
    """The raw body, refused unread when it announces more than MAX_BODY_BYTES."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > MAX_BODY_BYTES:
        raise PayloadTooLarge(body_too_large().message)
    stream = request.stream  # the undecoded body: DRF's parsers are bypassed on purpose
    return stream.read(MAX_BODY_BYTES + 1) if stream is not None else b""


_ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "message": {"type": "string"},
        "extra": {
            "type": "object",
            "description": f"For invalid items: `errors` (the first {MAX_REPORTED_ERRORS}), `error_count`, "
            "`invalid_items`. For a body that is not JSON: `line`, `column` (and `position` for a JSON array).",
            "properties": {
                "errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "index": {"type": "integer", "description": "0-based position of the item."},
                            "line": {"type": "integer", "description": "1-based line (NDJSON only)."},
                            "field": {"type": "string", "nullable": True, "description": "e.g. `ts`, `lines[2].price`"},
                            "reason": {"type": "string"},
                            "value": {"description": "What was sent (cut to 100 characters)."},
                        },
                    },
                },
                "error_count": {"type": "integer"},
                "invalid_items": {"type": "integer"},
            },
        },
    },
}


class EventsIngestApi(APIView):
    """Receive a batch of items; write all of them, or none when any is invalid."""

    permission_classes = [HasTokenScope]
    required_permission = Permission.MANAGE_DATA_SOURCES
    required_scope = ApiToken.Scope.EVENTS_WRITE
    throttle_classes = [EventsThrottle]

    @extend_schema_serializer(component_name="EventsIngestResult")
    class OutputSerializer(serializers.Serializer):
        items = serializers.IntegerField(help_text="Items written.")
        items_by_type = serializers.DictField(child=serializers.IntegerField())
        sales_lines = serializers.IntegerField(help_text="Receipt lines written (from order and order_line items).")
        import_run_id = serializers.IntegerField(help_text="This post in the import history.")

    @extend_schema(
        operation_id="events_ingest",
        summary="Push orders, customers, message and web events in bulk",
        description=(
            f"A JSON array (`{JSON_MEDIA_TYPE}`) or NDJSON (`application/x-ndjson`, one item per line, blank "
            f"lines skipped) of at most {MAX_ITEMS:,} items and {MAX_BODY_BYTES // 2**20} MiB. Each item has a "
            "`type`. A batch with any invalid item is rejected whole (400, listing every bad item by index and "
            "field) and nothing is written. Re-sending items is safe: an order line is identified by "
            "`order_id` + `line_no` (+ `is_return`), a customer by `customer_id`, an event by `event_id` "
            "(+ `event_type`); the latest copy replaces the earlier one, totals never double. The identity also "
            "includes the day of `ts`: moving an item to another day adds a row instead of replacing it. "
            "Timestamps are ISO 8601; without a zone they are in the workspace's timezone. Money and quantities "
            "are exact: JSON numbers are read from their text, never through binary floating point; more "
            "decimal places than 2 (money) or 3 (quantities) is an error, not rounded. Contacts (names, "
            "e-mails, phones) stay in the workspace's own database and never reach the analytics store. "
            "Needs a token with the `events:write` scope (or a signed-in user who may manage data sources)."
        ),
        request={
            JSON_MEDIA_TYPE: batch_openapi_schema(),
            NDJSON_MEDIA_TYPES[0]: {**item_openapi_schema(), "description": "One item per line."},
        },
        responses={
            200: OutputSerializer,
            400: OpenApiResponse(_ERROR_SCHEMA, description="Invalid items or a body that is not JSON/NDJSON."),
            401: OpenApiResponse(description="Missing, invalid or revoked token."),
            403: OpenApiResponse(description="The token lacks events:write, or belongs to another workspace."),
            413: OpenApiResponse(description=f"Body over {MAX_BODY_BYTES // 2**20} MiB or over {MAX_ITEMS:,} items."),
            415: OpenApiResponse(description="Content-Type is neither application/json nor application/x-ndjson."),
            429: OpenApiResponse(description="Too many requests for this token; see Retry-After."),
        },
        examples=[
            OpenApiExample(
                "Mixed batch",
                request_only=True,
                media_type=JSON_MEDIA_TYPE,
                value=[
                    {
                        "type": "order",
                        "order_id": "R-1001",
                        "ts": "2026-03-01T10:15:00+03:00",
                        "customer_id": "C-42",
                        "store": "Tverskaya",
                        "lines": [{"product_id": "SKU-1", "category": "Shoes", "qty": 1, "price": "4990.00"}],
                    },
                    {"type": "customer", "customer_id": "C-42", "email": "anna@example.ru", "consent_email": True},
                    {
                        "type": "message_event",
                        "event_id": "mb-77-C-42-open",
                        "event_type": "opened",
                        "ts": "2026-03-01T09:00:00Z",
                        "customer_id": "C-42",
                        "mailing_id": "spring-sale",
                        "channel": "email",
                    },
                    {
                        "type": "web_event",
                        "event_id": "w-9f1c",
                        "event_type": "product_view",
                        "ts": "2026-03-01T09:05:00Z",
                        "session_id": "s-1",
                        "customer_id": "C-42",
                        "product_id": "SKU-1",
                    },
                ],
            )
        ],
    )
    def post(self, request: Request) -> Response:
        media_type = (request.content_type or "").split(";")[0].strip().lower()
        if media_type != JSON_MEDIA_TYPE and media_type not in NDJSON_MEDIA_TYPES:
            raise exceptions.UnsupportedMediaType(
                media_type,
                _("Send Content-Type: application/json (an array of items) or application/x-ndjson (one per line)."),
            )
        body = _body_read(request)
        try:
            result = events_ingest(
                body=body,
                ndjson=media_type in NDJSON_MEDIA_TYPES,
                tenant=connection.tenant,
                principal=str(request.user),
            )
        except BatchTooLargeError as exc:
            raise PayloadTooLarge(exc.message) from None
        return Response(self.OutputSerializer(result).data)
