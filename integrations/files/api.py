"""``POST /api/v1/imports``: import a sales or customers file (multipart), synchronously, all or nothing."""

from __future__ import annotations

import tempfile
from pathlib import Path

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from integrations.files.columns import Dataset
from integrations.files.services import DEFAULT_SOURCE_NAME, file_import, file_source_get_or_create, import_run_create
from integrations.models import ImportRun
from tenants.accounts.authentication import HasTokenScope
from tenants.accounts.models import ApiToken
from tenants.accounts.roles import Permission
from tenants.errors import ApplicationError


class ImportRunSerializer(serializers.ModelSerializer):
    data_source = serializers.CharField(source="data_source.name")

    class Meta:
        model = ImportRun
        fields = [
            "id",
            "data_source",
            "dataset",
            "file_name",
            "status",
            "rows_read",
            "rows_written",
            "rows_rejected",
            "message",
            "errors",
            "started_at",
            "finished_at",
        ]


class FileImportApi(APIView):
    """Import one file; the response is the import run, with the row-level report when the file is bad."""

    permission_classes = [HasTokenScope]
    required_permission = Permission.MANAGE_DATA_SOURCES
    required_scope = ApiToken.Scope.IMPORTS_WRITE
    parser_classes = [MultiPartParser]

    class InputSerializer(serializers.Serializer):
        kind = serializers.ChoiceField(choices=[d.value for d in Dataset])
        file = serializers.FileField()
        mapping = serializers.JSONField(
            required=False, help_text='{"file header": "canonical column"}; "" ignores a column.'
        )
        source = serializers.CharField(required=False, default=DEFAULT_SOURCE_NAME, max_length=100)

        def validate_mapping(self, value: object) -> dict[str, str]:
            if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()
            ):
                raise serializers.ValidationError('Give an object of strings: {"file header": "canonical column"}.')
            return value

    @extend_schema(
        operation_id="imports_create",
        summary="Import a sales or customers file (CSV or XLSX)",
        description=(
            "Multipart form: `kind` (sales | customers), `file`, optional `mapping` (JSON object mapping the "
            "file's headers onto canonical columns, saved with the data source), optional `source` (the file "
            "data source's name). The whole file is checked first; a file with any bad row imports nothing and "
            "the 400 response lists every bad value (row, column, value, reason; the first 1000). Importing the "
            "same file again replaces its rows: totals never double. Needs a token with the `imports:write` "
            "scope (or a signed-in user who may manage data sources)."
        ),
        request={"multipart/form-data": InputSerializer},
        responses={
            201: ImportRunSerializer,
            400: OpenApiResponse(description="A bad file: `extra.import_run` holds the run with its `errors`."),
            403: OpenApiResponse(description="The token lacks imports:write."),
        },
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        source = file_source_get_or_create(name=data["source"])
        run = import_run_create(data_source=source, dataset=Dataset(data["kind"]), file_name=data["file"].name)
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "upload"
            with path.open("wb") as out:
                for chunk in data["file"].chunks():
                    out.write(chunk)
            file_import(import_run=run, path=path, mapping=data.get("mapping"))
        if run.status != ImportRun.Status.SUCCEEDED:
            raise ApplicationError(run.message, extra={"import_run": ImportRunSerializer(run).data})
        return Response(ImportRunSerializer(run).data, status=201)
