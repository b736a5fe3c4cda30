"""Analytics API: metric queries, the metric catalog, and the analyses."""

from __future__ import annotations

from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics.analyses.base import analyses, analysis_run
from analytics.selectors import metrics_query
from analytics.semantic.catalog import catalog
from analytics.semantic.spec import query_parse
from analytics.serialization import to_jsonable
from tenants.accounts.authentication import HasTokenScope
from tenants.accounts.models import ApiToken
from tenants.accounts.roles import Permission
from tenants.errors import ApplicationError


class AnalyticsApi(APIView):
    permission_classes = [HasTokenScope]
    required_scope = ApiToken.Scope.METRICS_READ
    required_permission = Permission.VIEW_ANALYTICS


class AnalysisListApi(AnalyticsApi):
    """The analyses of this workspace and their parameters."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        return Response([a.describe() for a in analyses().values() if not a.staff_only])


class AnalysisRunApi(AnalyticsApi):
    """Run one analysis; parameters are query-string values. 400 names a bad parameter or too little data."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, name: str) -> Response:
        return Response(to_jsonable(analysis_run(name, request.query_params.dict())))


class MetricQueryApi(AnalyticsApi):
    """``POST /api/v1/query``: metrics × dimensions × filters × period × comparison × granularity.

    Body: ``{"metrics": ["revenue"], "dimensions": ["store"], "filters": [{"dimension": "channel",
    "values": ["online"]}], "from": "2025-01-01", "to": "2025-03-31", "granularity": "month",
    "compare": "previous_year"}``. 400 lists the valid ids when one is unknown or does not apply.
    """

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request) -> Response:
        if not isinstance(request.data, dict):
            raise ApplicationError(_("The body must be a JSON object."))
        return Response(to_jsonable(metrics_query(query_parse(request.data))))


class MetricCatalogApi(AnalyticsApi):
    """``GET /api/v1/metrics``: every metric and dimension with its label, unit and formula."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        return Response(catalog())
