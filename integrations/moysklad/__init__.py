"""MoySklad JSON API 1.2: HTTP client, incremental importer, and a fake server for tests and the demo."""
