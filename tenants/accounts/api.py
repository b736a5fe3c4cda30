from django.db import connection
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tenants.accounts.authentication import ApiClient


class WhoAmIApi(APIView):
    """Who the caller is and which workspace the request resolved to; the smallest authenticated call."""

    class OutputSerializer(serializers.Serializer):
        workspace = serializers.CharField()
        principal = serializers.CharField()
        scopes = serializers.ListField(child=serializers.CharField())

    def get(self, request: Request) -> Response:
        scopes = request.user.token.scopes if isinstance(request.user, ApiClient) else []
        data = {"workspace": connection.tenant.slug, "principal": str(request.user), "scopes": scopes}
        return Response(self.OutputSerializer(data).data)
