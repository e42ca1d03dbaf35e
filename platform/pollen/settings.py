"""One settings module. Everything comes from the environment, with an embedded default.

The embedded default (no variables set) runs on SQLite, filesystem storage and a
broker that needs no server, so ``make run`` works on a bare machine. Deployments
set ``POLLEN_ENV=production`` and the service URLs; see README.md for the table.
"""

from __future__ import annotations

from pathlib import Path

from pollen.env import (
    ConfigError,
    env_bool,
    env_int,
    env_list,
    env_networks,
    env_secret,
    env_str,
    parse_database_url,
)
from pollen_contracts.local_signing import PUBLISHED_SECRETS

PLATFORM_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = PLATFORM_DIR.parent
VAR_DIR = Path(env_str("POLLEN_VAR_DIR", str(REPO_DIR / "var")) or "var")

POLLEN_ENV = env_str("POLLEN_ENV", "embedded")
if POLLEN_ENV not in {"embedded", "production", "test"}:
    raise ConfigError(f"POLLEN_ENV={POLLEN_ENV!r}: use embedded, production or test")
PRODUCTION = POLLEN_ENV == "production"

DEBUG = env_bool("POLLEN_DEBUG", default=False)
# Sessions, CSRF and password-reset links are signed with this. Outside production, an install
# without one makes its own random key beside its state; the old published default is refused.
SECRET_KEY, _ = env_secret(
    "POLLEN_SECRET_KEY",
    state_file=None if PRODUCTION else VAR_DIR / "secret-key",
    published=frozenset({"embedded-default-not-secret-" + "x" * 40}),
)
ALLOWED_HOSTS = env_list(
    "POLLEN_ALLOWED_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost", "testserver"]
)
CSRF_TRUSTED_ORIGINS = env_list("POLLEN_CSRF_TRUSTED_ORIGINS", [])
PUBLIC_URL = (env_str("POLLEN_PUBLIC_URL", "http://127.0.0.1:8000") or "").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "pollen.core",
    "pollen.accounts",
    "pollen.audit",
    "pollen.ops",
    "pollen.datasets",
    "pollen.zoo",
    "pollen.training",
    "pollen.marketplace",
    "pollen.federation",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "pollen.core.middleware.RequestIdMiddleware",
    "pollen.ops.metrics.MetricsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "pollen.urls"
WSGI_APPLICATION = "pollen.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {
    "default": parse_database_url(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'pollen.sqlite3'}") or "", base_dir=REPO_DIR
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
FRONTEND_DIST = REPO_DIR / "frontend" / "dist"
STATICFILES_DIRS = [p for p in [FRONTEND_DIST / "assets"] if p.is_dir()]
WHITENOISE_ROOT = FRONTEND_DIST if FRONTEND_DIST.is_dir() else None

# Bodies: JSON only on the API; pixels never come to the hub (they go to site storage).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("POLLEN_MAX_REQUEST_BYTES", 2 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = DATA_UPLOAD_MAX_MEMORY_SIZE
DATA_UPLOAD_MAX_NUMBER_FIELDS = 2000

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "pollen.accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "pollen.core.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["pollen.core.filters.FilterBackend"],
    "EXCEPTION_HANDLER": "pollen.core.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "pollen.core.schema.PollenAutoSchema",
    "DEFAULT_THROTTLE_RATES": {
        "login": env_str("POLLEN_LOGIN_RATE", "10/min"),
        "tokens": env_str("POLLEN_TOKEN_RATE", "30/min"),
        # Opening and accepting invitation links (no sign-in needed): per client address.
        "invitations": env_str("POLLEN_INVITATION_RATE", "30/min"),
    },
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Pollen API",
    "DESCRIPTION": (
        "REST API for hospital systems. Authenticate with a site-scoped token: "
        "`Authorization: Bearer pln_...`. Every list is paginated and filterable; every error "
        'has the shape `{"error": {"code": ..., "message": ...}}` with a stable code. '
        "The site agent's internal endpoints come last, and apart at /api/v1/agent/docs/."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "pollen.core.openapi.public_api_first",
    ],
    "ENUM_NAME_OVERRIDES": {
        "TokenKindEnum": "pollen.accounts.models.TokenKind",
        "RoleEnum": "pollen.accounts.models.Role",
        "InvitationStatusEnum": "pollen.accounts.models.InvitationStatus",
        "DatasetStatusEnum": "pollen.datasets.models.DatasetStatus",
        "ImageStatusEnum": "pollen.datasets.models.ImageStatus",
        "ArchiveStatusEnum": "pollen.datasets.models.ArchiveStatus",
        "JobStatusEnum": "pollen.training.models.JobStatus",
        "VersionStatusEnum": "pollen.marketplace.models.VersionStatus",
        "WorkStatusEnum": "pollen.marketplace.models.WorkStatus",
        "FederatedStatusEnum": "pollen.federation.models.FederatedStatus",
        "ParticipantStatusEnum": "pollen.federation.models.ParticipantStatus",
        "RoundStatusEnum": "pollen.federation.models.RoundStatus",
        "UpdateStatusEnum": "pollen.federation.models.UpdateStatus",
        # What ingest found of one file or one mask (the agent reports it).
        "IngestResultInStatusEnum": [("accepted", "accepted"), ("rejected", "rejected")],
    },
}

# Celery: the hub only produces tasks (and waits briefly on io answers).
# The embedded broker is SQLite through SQLAlchemy: transactional, so a message is never half-read
# (Celery's filesystem transport can hand a consumer a file its producer is still writing).
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", f"sqla+sqlite:///{VAR_DIR / 'broker.sqlite3'}")
if (CELERY_BROKER_URL or "").startswith("filesystem"):
    raise ConfigError(
        "CELERY_BROKER_URL: the filesystem broker is no longer supported; use Redis, or leave it "
        "unset for the embedded SQLite broker."
    )
CELERY_RESULT_BACKEND = env_str(
    "CELERY_RESULT_BACKEND", f"db+sqlite:///{VAR_DIR / 'celery-results.sqlite3'}"
)
# Longer than the longest job, so an unacknowledged job is never handed out twice.
CELERY_VISIBILITY_TIMEOUT = env_int("POLLEN_VISIBILITY_TIMEOUT", 12 * 3600)
AGENT_ANSWER_TIMEOUT = float(env_str("POLLEN_AGENT_ANSWER_TIMEOUT", "8") or 8)
# Request threads per hub process (deploy/docker/gunicorn.conf.py reads the same variable):
# long waits on a prediction leave one of them free.
WEB_THREADS = env_int("GUNICORN_THREADS", 4)

# The embedded default stores each site's files on this machine and serves signed local URLs.
LOCAL_STORAGE_ENABLED = env_bool("POLLEN_LOCAL_STORAGE", default=not PRODUCTION)
LOCAL_STORAGE_ROOT = Path(env_str("POLLEN_LOCAL_STORAGE_ROOT", str(VAR_DIR / "storage")) or "")
# The key that signs those URLs, shared with the agent (seed_demo points its config at the file).
# Without one configured, each install makes its own random key beside its state (mode 0600);
# a published default or an empty key is refused, since anyone could forge links with it.
LOCAL_STORAGE_SECRET: str | None = None
LOCAL_STORAGE_SECRET_FILE: Path | None = None
if LOCAL_STORAGE_ENABLED or env_str("POLLEN_LOCAL_STORAGE_SECRET") is not None:
    LOCAL_STORAGE_SECRET, LOCAL_STORAGE_SECRET_FILE = env_secret(
        "POLLEN_LOCAL_STORAGE_SECRET",
        state_file=None if PRODUCTION else VAR_DIR / "local-storage-secret",
        published=PUBLISHED_SECRETS,
        min_length=32,
    )

# The hub's own model store: published weights and model cards (never a site's storage).
MODEL_STORE = {
    "kind": env_str("POLLEN_MODEL_STORE_KIND", "fs"),
    "root": env_str("POLLEN_MODEL_STORE_ROOT", str(VAR_DIR / "model-store")),
    "endpoint_url": env_str("POLLEN_MODEL_STORE_ENDPOINT"),
    "bucket": env_str("POLLEN_MODEL_STORE_BUCKET", "pollen-models"),
    "access_key": env_str("POLLEN_MODEL_STORE_ACCESS_KEY"),
    "secret_key": env_str("POLLEN_MODEL_STORE_SECRET_KEY"),
    "region": env_str("POLLEN_MODEL_STORE_REGION", "us-east-1"),
}
PRESIGN_SECONDS = env_int("POLLEN_PRESIGN_SECONDS", 900)
# An upload slot that was never finished (the user left mid-upload) expires after this long:
# it shows as "upload not finished" and its file is removed from site storage.
UPLOAD_SLOT_EXPIRY_SECONDS = env_int("POLLEN_UPLOAD_SLOT_EXPIRY_SECONDS", 24 * 3600)
# A running job renews its lease; one whose lease lapses is queued again and resumes from its checkpoint.
JOB_LEASE_SECONDS = env_int("POLLEN_JOB_LEASE_SECONDS", 120)
# Queued work nobody claimed for this long (a job or marketplace work at a site that runs none of
# its kind, a cross-site turn) is sent to its queue again: a broker restart may have lost it.
JOB_RESEND_SECONDS = env_int("POLLEN_JOB_RESEND_SECONDS", 300)
# Marketplace work (predictions, evaluations, exports, publications) is claimed the same way.
WORK_LEASE_SECONDS = env_int("POLLEN_WORK_LEASE_SECONDS", 120)
# Every kind of work (pollen.core.lease) is claimed at most this many times; when the last
# claim's worker dies too, it fails with worker_lost and a reason instead of looping.
LEASE_MAX_ATTEMPTS = env_int("POLLEN_LEASE_MAX_ATTEMPTS", 3)
# The clock (`manage.py clock`) does the hub's periodic work off the request path: it re-queues
# lapsed leases, moves cross-site rounds on and combines their updates, every this many seconds.
CLOCK_SECONDS = env_int("POLLEN_CLOCK_SECONDS", 10)
# Work at a site is taken back from a dead worker only while the site's agent answers (it was
# seen within this many seconds), so that another worker there can take it over; 0: always.
CLOCK_AGENT_SEEN_SECONDS = env_int("POLLEN_CLOCK_AGENT_SEEN_SECONDS", 120)
# The clock touches this file after every tick; `manage.py clock --check` (liveness) reads it.
CLOCK_HEARTBEAT_PATH = Path(
    env_str("POLLEN_CLOCK_HEARTBEAT_PATH", str(VAR_DIR / "clock.alive")) or ""
)

# /metrics names every API route and how often it fails: it answers only the operations token
# (`Authorization: Bearer ...`) or a scraper whose TCP address is in the allow-list. With neither
# configured it refuses everyone, so a forgotten setting never exposes it.
METRICS_TOKEN = env_str("POLLEN_METRICS_TOKEN") or ""
if METRICS_TOKEN and len(METRICS_TOKEN) < 32:
    raise ConfigError(
        "POLLEN_METRICS_TOKEN is too short: use 32 or more random characters "
        "(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
    )
METRICS_ALLOW = env_networks("POLLEN_METRICS_ALLOW")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "pollen.core.logging.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"handlers": ["console"], "level": env_str("POLLEN_LOG_LEVEL", "INFO")},
    "loggers": {"django.server": {"level": "WARNING"}},
}

LOGIN_URL = "/"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"

if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("POLLEN_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("POLLEN_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
