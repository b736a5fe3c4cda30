"""The tenant's data pages: data sources, file upload → preview and mapping → import (a Celery task) → result.

Views only parse input, call services and selectors, and render.
"""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from cxplatform.embedded_celery import embedded_celery_problem
from integrations.files import selectors, services
from integrations.files.columns import Dataset
from integrations.files.reader import FileUnreadableError
from integrations.forms import ColumnMappingForm, FileUploadForm
from integrations.models import DataSource, ImportRun
from tenants.accounts.roles import Permission, permission_label
from tenants.accounts.views import permission_required_or_403

MANAGE_DATA_SOURCES = permission_label(Permission.MANAGE_DATA_SOURCES)
# An upload waits this long for its mapping to be confirmed.
UPLOAD_TOKEN_MAX_AGE_SECONDS = 24 * 3600
_UPLOAD_SALT = "integrations.files.upload"


@require_GET
@permission_required_or_403(MANAGE_DATA_SOURCES)
def data_sources(request: HttpRequest) -> HttpResponse:
    return render(request, "integrations/sources.html", {"sources": selectors.data_source_list()})


@require_GET
@permission_required_or_403(MANAGE_DATA_SOURCES)
def data_source_detail(request: HttpRequest, source_id: int) -> HttpResponse:
    source = get_object_or_404(DataSource, pk=source_id)
    runs = selectors.import_run_list(data_source=source)[:200]
    return render(request, "integrations/source_detail.html", {"source": source, "runs": runs})


@require_http_methods(["GET", "POST"])
@permission_required_or_403(MANAGE_DATA_SOURCES)
def data_upload(request: HttpRequest) -> HttpResponse:
    form = FileUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        source = services.file_source_get_or_create(name=form.cleaned_data["source"])
        uploaded = form.cleaned_data["file"]
        upload = {
            "stored": services.file_upload_store(uploaded=uploaded),
            "name": uploaded.name,
            "dataset": form.cleaned_data["dataset"],
            "source": source.pk,
        }
        return redirect("data_upload_preview", token=signing.dumps(upload, salt=_UPLOAD_SALT))
    return render(request, "integrations/upload.html", {"form": form})


def _upload_from_token(token: str) -> dict:
    try:
        return signing.loads(token, salt=_UPLOAD_SALT, max_age=UPLOAD_TOKEN_MAX_AGE_SECONDS)
    except signing.BadSignature:
        raise Http404("Unknown or expired upload.") from None


@require_http_methods(["GET", "POST"])
@permission_required_or_403(MANAGE_DATA_SOURCES)
def data_upload_preview(request: HttpRequest, token: str) -> HttpResponse:
    """The uploaded file as it would import, with the mapping form; "Import" starts the run."""
    upload = _upload_from_token(token)
    source = get_object_or_404(DataSource, pk=upload["source"], kind=DataSource.Kind.FILE)
    dataset = Dataset(upload["dataset"])
    path = services.file_upload_path(stored_name=upload["stored"])
    if path is None:
        raise Http404("The upload is gone: it was imported already.")
    context = {"upload": upload, "source": source, "dataset": dataset, "token": token}
    try:
        preview = services.file_preview(path=path, dataset=dataset, data_source=source)
        form = ColumnMappingForm(
            request.POST or None, headers=preview.file.headers, dataset=dataset, initial_mapping=preview.mapping
        )
        if request.method == "POST" and form.is_valid():
            mapping = form.mapping()
            preview = services.file_preview(path=path, dataset=dataset, data_source=source, mapping=mapping)
            if request.POST.get("action") == "import" and not preview.problems:
                run = services.file_import_start(
                    data_source=source,
                    dataset=dataset,
                    stored_name=upload["stored"],
                    file_name=upload["name"],
                    mapping=mapping,
                )
                return redirect("data_run", run_id=run.pk)
    except FileUnreadableError as exc:
        services.file_upload_discard(stored_name=upload["stored"])
        return render(request, "integrations/preview.html", {**context, "unreadable": exc.message}, status=400)
    suggestions = [preview.suggested.get(header, "") for header in preview.file.headers]
    context |= {"preview": preview, "form": form, "rows": list(zip(form, suggestions, strict=True))}
    template = "integrations/_preview.html" if request.htmx else "integrations/preview.html"
    return render(request, template, context)


@require_GET
@permission_required_or_403(MANAGE_DATA_SOURCES)
def data_run(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(ImportRun.objects.select_related("data_source"), pk=run_id)
    return render(request, "integrations/run.html", _run_context(run))


@require_GET
@permission_required_or_403(MANAGE_DATA_SOURCES)
def data_run_status(request: HttpRequest, run_id: int) -> HttpResponse:
    """The part of the run page that htmx polls while the run is running."""
    run = get_object_or_404(ImportRun.objects.select_related("data_source"), pk=run_id)
    return render(request, "integrations/_run_status.html", _run_context(run))


def _run_context(run: ImportRun) -> dict:
    running = run.status == ImportRun.Status.RUNNING
    worker_problem = embedded_celery_problem() if running and settings.CELERY_EMBEDDED else None
    return {"run": run, "running": running, "worker_problem": worker_problem}
