from django.db import connection
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tenants.accounts.authentication import ANY_SCOPE, ApiClient, HasTokenScope


class ApiTokenAuthenticationScheme(OpenApiAuthenticationExtension):
    """Describes ``ApiTokenAuthentication`` in the OpenAPI schema (registered on import)."""

    target_class = "tenants.accounts.authentication.ApiTokenAuthentication"
    name = "ApiToken"

    def get_security_definition(self, auto_schema) -> dict:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "`Authorization: Bearer cx_<workspace>_<secret>`; create tokens on the API tokens page.",
        }


class WhoAmIApi(APIView):
    """Who the caller is and which workspace the request resolved to; the smallest authenticated call."""

    permission_classes = [HasTokenScope]
    required_scope = ANY_SCOPE

    class OutputSerializer(serializers.Serializer):
        workspace = serializers.CharField()
        principal = serializers.CharField()
        scopes = serializers.ListField(child=serializers.CharField())

    @extend_schema(responses=OutputSerializer)
    def get(self, request: Request) -> Response:
        scopes = request.user.token.scopes if isinstance(request.user, ApiClient) else []
        data = {"workspace": connection.tenant.slug, "principal": str(request.user), "scopes": scopes}
        return Response(self.OutputSerializer(data).data)
