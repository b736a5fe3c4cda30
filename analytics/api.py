"""Analytics API: ``GET /api/v1/analyses/`` and ``GET /api/v1/analyses/{name}?param=value``."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics.analyses.base import analyses, analysis_run
from analytics.serialization import to_jsonable
from tenants.accounts.authentication import HasTokenScope
from tenants.accounts.models import ApiToken
from tenants.accounts.roles import Permission


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
