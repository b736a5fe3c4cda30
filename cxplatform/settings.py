"""Settings, read from the environment (12-factor). See the README's configuration table."""

from __future__ import annotations

from pathlib import Path

import environ
from django.utils.translation import gettext_lazy as _

from cxplatform.embedded import embedded_clickhouse_dsn, embedded_postgres_settings

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
VAR_DIR = Path(env("CX_VAR_DIR", default=str(BASE_DIR / "var")))

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env("SECRET_KEY", default="dev-only-insecure-secret-key-change-me" if DEBUG else environ.Env.NOTSET)
# Fernet key for integration secrets at rest; derived from SECRET_KEY when unset (integrations.crypto).
FIELD_ENCRYPTION_KEY = env("FIELD_ENCRYPTION_KEY", default="")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[".localhost", "localhost", "127.0.0.1", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Tenants are reached at <slug>.<TENANT_BASE_DOMAIN>; browsers resolve *.localhost to loopback.
TENANT_BASE_DOMAIN = env("TENANT_BASE_DOMAIN", default="localhost")
# Hosts that serve the agency console (public schema).
PUBLIC_DOMAINS = env.list("PUBLIC_DOMAINS", default=["localhost", "127.0.0.1"])
# Scheme and port used in links we e-mail (invitations).
SITE_SCHEME = env("SITE_SCHEME", default="http")
SITE_PORT = env("SITE_PORT", default="8000")

SHARED_APPS = [
    "django_tenants",  # must come first
    "tenants",
    "tenants.accounts",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "django_htmx",
    "frontend",
]
TENANT_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "tenants.accounts",
    "analytics",
    "campaigns",
    "integrations",
]
INSTALLED_APPS = list(SHARED_APPS) + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Tenant"
TENANT_DOMAIN_MODEL = "tenants.Domain"
PUBLIC_SCHEMA_URLCONF = "cxplatform.urls_public"
ROOT_URLCONF = "cxplatform.urls_tenant"
TENANT_LIMIT_SET_CALLS = True
AUTH_USER_MODEL = "accounts.User"

MIDDLEWARE = [
    "cxplatform.health.HealthzMiddleware",  # /healthz on any host, even with Postgres down
    "tenants.middleware.TenantResolutionMiddleware",  # sets the schema
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "frontend.middleware.TenantLocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "frontend" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "frontend.context_processors.branding",
            ],
        },
    },
]

WSGI_APPLICATION = "cxplatform.wsgi.application"

# --- Postgres -----------------------------------------------------------------
if env("DATABASE_URL", default=""):
    DATABASES = {"default": env.db_url("DATABASE_URL", engine="django_tenants.postgresql_backend")}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django_tenants.postgresql_backend",
            **embedded_postgres_settings(VAR_DIR / "pg"),
        }
    }
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=0)
# An unreachable host must fail health checks and requests quickly, not hang them.
DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env.int("DATABASE_CONNECT_TIMEOUT", default=5)
DATABASE_ROUTERS = ("django_tenants.routers.TenantSyncRouter",)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- ClickHouse ---------------------------------------------------------------
# An http(s):// URL of a clickhouse-server, or unset for embedded chdb.
CLICKHOUSE_URL = env("CLICKHOUSE_URL", default="") or embedded_clickhouse_dsn(VAR_DIR / "clickhouse")
CLICKHOUSE_DATABASE = env("CLICKHOUSE_DATABASE", default="cxplatform")

# --- Celery / Redis -----------------------------------------------------------
REDIS_URL = env("REDIS_URL", default="")
# Without Redis the worker and beat run as threads of the web process (cxplatform.embedded_celery).
CELERY_EMBEDDED = not REDIS_URL
CELERY_BROKER_URL = REDIS_URL or "memory://localhost/"
CELERY_RESULT_BACKEND = REDIS_URL or None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=600)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=900)
# Housekeeping (integrations.maintenance, tenants.maintenance). A running import that saved no progress
# for this long lost its worker; a job still "started" this long past its task's hard time limit too.
IMPORT_RUN_STUCK_MINUTES = env.int("IMPORT_RUN_STUCK_MINUTES", default=30)
JOB_RUN_STUCK_MARGIN_MINUTES = env.int("JOB_RUN_STUCK_MARGIN_MINUTES", default=15)
# Uploads waiting for their mapping to be confirmed (the preview link lives 24 h) are deleted after this.
IMPORT_UPLOAD_RETENTION_HOURS = env.int("IMPORT_UPLOAD_RETENTION_HOURS", default=24)
# Import and job history older than this is deleted, except the latest runs the console shows.
RUN_HISTORY_RETENTION_DAYS = env.int("RUN_HISTORY_RETENTION_DAYS", default=180)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"

if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Query results: keys name their tenant and its data version themselves (analytics/selectors.py),
# so they skip django-tenants' schema prefix and work the same inside and outside a tenant.
CACHES["analytics"] = {**CACHES["default"], "KEY_PREFIX": "analytics"}
CACHES["default"]["KEY_FUNCTION"] = "django_tenants.cache.make_key"
CACHES["default"]["REVERSE_KEY_FUNCTION"] = "django_tenants.cache.reverse_key"
# Seconds a query result is kept (0 turns the cache off; benchmarks run with it off).
ANALYTICS_QUERY_CACHE_SECONDS = env.int("ANALYTICS_QUERY_CACHE_SECONDS", default=3600)

# --- Auth ---------------------------------------------------------------------
AUTHENTICATION_BACKENDS = ["tenants.accounts.backends.RoleBackend"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
INVITATION_TTL_HOURS = env.int("INVITATION_TTL_HOURS", default=72)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True

EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="CX Platform <noreply@localhost>")

# --- I18n ---------------------------------------------------------------------
LANGUAGE_CODE = "ru"
LANGUAGES = [("ru", _("Russian")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
DEFAULT_TENANT_TIMEZONE = "Europe/Moscow"
DEFAULT_TENANT_CURRENCY = "RUB"

# --- Static and media ---------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
NODE_MODULES = BASE_DIR / "frontend" / "node_modules"
# frontend/static is found as the frontend app's static folder; these are the npm packages.
STATICFILES_DIRS = [
    ("vendor/htmx", NODE_MODULES / "htmx.org" / "dist"),
    ("vendor/echarts", NODE_MODULES / "echarts" / "dist"),
]
MEDIA_URL = "/media/"
MEDIA_ROOT = VAR_DIR / "media"
STORAGES = {
    "default": {"BACKEND": "django_tenants.files.storage.TenantFileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
MULTITENANT_RELATIVE_MEDIA_ROOT = "%s"

# --- API ----------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tenants.accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "cxplatform.api_errors.api_exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "api_token": env("API_THROTTLE_RATE", default="1000/min"),
        # Requests per events API token, each of up to 10,000 items (integrations.events).
        "events_api": env("EVENTS_API_THROTTLE_RATE", default="600/min"),
    },
}
SPECTACULAR_SETTINGS = {"TITLE": "CX Platform API", "VERSION": "1.0.0"}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"tenant_context": {"()": "django_tenants.log.TenantContextFilter"}},
    "formatters": {
        "tenant": {"format": "%(asctime)s %(levelname)s [%(schema_name)s:%(domain_url)s] %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["tenant_context"], "formatter": "tenant"},
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"pgserver": {"level": "WARNING"}},
}
