"""The tenant's data pages: sources, uploads, import history (issue #4)."""

urlpatterns: list = []
