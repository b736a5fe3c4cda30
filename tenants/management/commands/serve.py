from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Serve the app for development and the demo. Without REDIS_URL the Celery worker and beat "
        "run as threads of this process (chdb allows one process per data directory)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--addr", default="127.0.0.1")
        parser.add_argument("--port", default="8000")

    def handle(self, *args, addr: str, port: str, **options):
        if settings.CELERY_EMBEDDED:
            from cxplatform.embedded_celery import start_embedded_celery

            start_embedded_celery()
        call_command("collectstatic", interactive=False, verbosity=0)
        # No autoreloader: it would fork a second process that opens chdb too.
        call_command("runserver", f"{addr}:{port}", use_reloader=False, use_threading=True)
