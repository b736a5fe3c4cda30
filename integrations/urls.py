"""The tenant's data pages (/data/): sources, uploads with preview and mapping, import runs and history."""

from django.urls import path

from integrations import views

urlpatterns = [
    path("", views.data_sources, name="data_sources"),
    path("sources/<int:source_id>/", views.data_source_detail, name="data_source_detail"),
    path("upload/", views.data_upload, name="data_upload"),
    path("upload/<str:token>/", views.data_upload_preview, name="data_upload_preview"),
    path("runs/<int:run_id>/", views.data_run, name="data_run"),
    path("runs/<int:run_id>/status/", views.data_run_status, name="data_run_status"),
]
