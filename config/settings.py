"""Settings, all from the environment.

With nothing set the product runs on the embedded default: a SQLite file,
local-memory cache and Celery in eager mode, so `manage.py runserver` needs no
services. Setting DATABASE_URL=postgres://... and REDIS_URL=redis://... switches
to the production components: PostgreSQL through psycopg 3 with persistent
connections, django-redis, and Celery on Redis.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from kombu import Queue

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", default=False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if (
        not DEBUG
        and os.environ.get("DATABASE_URL", "").startswith("postgres")
        and env_bool("REQUIRE_SECRET_KEY", default=False)
    ):
        raise RuntimeError("SECRET_KEY must be set in production")
    # Development-only fallback; production deployments set SECRET_KEY.
    SECRET_KEY = "insecure-development-key-change-me"  # noqa: S105

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "ticketing",
    "seating",
    "payments",
    "finance",
    "scanning",
    "workflows",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files from the app processes themselves: no separate web server needed.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "ticketing.middleware.DomainErrorMiddleware",
    # PostgreSQL unreachable (restart, failover): 503 + Retry-After, never a 500.
    "config.middleware.DatabaseUnavailableMiddleware",
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
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL,
        # Persistent connections: opening one per request (or per Celery task)
        # doubles database CPU under load (see PERFORMANCE.md).
        conn_max_age=int(os.environ.get("CONN_MAX_AGE", "600")),
        conn_health_checks=True,
    )
}
# How long a statement waits for a row lock before it gives up and the request
# gets a clear "busy, try again" error.
LOCK_TIMEOUT_MS = int(os.environ.get("LOCK_TIMEOUT_MS", "3000"))

IS_POSTGRES = DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
if IS_POSTGRES:
    # Django's backend, whose health check between requests costs no round
    # trip while the server has sent nothing (config/postgresql/base.py).
    DATABASES["default"]["ENGINE"] = "config.postgresql"
    # Every session waits at most LOCK_TIMEOUT_MS for a row lock: set once per
    # connection instead of once per transaction (ticketing.locks.lock_timeout).
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = f"-c lock_timeout={LOCK_TIMEOUT_MS}"
    # Parameters bound on the server, and psycopg prepares a statement it has
    # run this many times on a connection: parsing and planning are most of
    # the database's work for the small statements of checkout and payment
    # (a read with a join and two subqueries: ~200 microseconds planned each
    # time, ~40 prepared). "off" behind a pooler in transaction mode that
    # cannot keep prepared statements (PgBouncer before 1.21).
    DATABASES["default"]["OPTIONS"]["server_side_binding"] = True
    _prepare = os.environ.get("DB_PREPARE_THRESHOLD", "5")
    DATABASES["default"]["OPTIONS"]["prepare_threshold"] = None if _prepare == "off" else int(_prepare)
    DATABASES["default"]["TEST"] = {"NAME": os.environ.get("TEST_DATABASE_NAME", "test_ticketing")}
else:
    # SQLite serializes writers; wait for the lock instead of failing at once.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
    DATABASES["default"]["CONN_MAX_AGE"] = 0

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache --------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                # The cache only speeds things up; never fail a sale on it.
                "IGNORE_EXCEPTIONS": True,
                "SOCKET_CONNECT_TIMEOUT": 1,
                "SOCKET_TIMEOUT": 1,
            },
            "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", "tix"),
        }
    }
    DJANGO_REDIS_IGNORE_EXCEPTIONS = True
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery -------------------------------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL or "memory://")
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery's Django fixup closes the database connections every this many tasks
# (without it, around every task); config/celery.py tidies them per task.
CELERY_DB_REUSE_MAX = 10_000
# Redis re-delivers unacknowledged messages after the visibility timeout; our
# tasks never run that long and long timers live in the database, not in ETAs.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
# E-mails have a queue of their own, so that in production a worker for it
# alone runs behind the sales at a lower CPU priority (README, "Running
# production-style"): rendering the QR codes takes CPU a rush needs for
# selling, and the delivery row is in the order's transaction, so an e-mail
# is late, never lost. A worker started without -Q consumes both queues.
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_QUEUES = (Queue("celery", routing_key="celery"), Queue("email", routing_key="email"))
CELERY_TASK_ROUTES = {
    "ticketing.tasks.send_email_delivery": {"queue": "email"},
    "ticketing.tasks.send_pending_emails": {"queue": "email"},
}
# The one beat schedule of the platform. Every entry is idempotent: sweepers
# re-derive pending work from the tables, so a missed or doubled beat is harmless.
CELERY_BEAT_SCHEDULE = {
    "seating-expire-holds": {
        "task": "seating.tasks.expire_seat_holds",
        "schedule": 30.0,
    },
    "ticketing-expire-capacity-holds": {
        "task": "ticketing.tasks.expire_capacity_holds",
        "schedule": 30.0,
    },
    "ticketing-resend-lost-emails": {
        "task": "ticketing.tasks.resend_lost_email_deliveries",
        "schedule": 60.0,
    },
    "payments-deliver-sandbox-webhooks": {
        "task": "payments.tasks.deliver_due_sandbox_webhooks",
        "schedule": 10.0,
    },
    "workflows-complete-paid-orders": {
        "task": "workflows.tasks.complete_paid_orders",
        "schedule": 30.0,
    },
    "workflows-expire-checkouts": {
        "task": "workflows.tasks.expire_checkouts",
        "schedule": 15.0,
    },
    "workflows-record-missing-chargebacks": {
        "task": "workflows.tasks.record_missing_chargebacks",
        "schedule": 300.0,
    },
    "workflows-relay-outbox": {
        "task": "workflows.tasks.relay_outbox",
        "schedule": 5.0,
    },
    "workflows-wake-due-runs": {
        "task": "workflows.tasks.wake_due_runs",
        "schedule": 5.0,
    },
    "workflows-reap-expired-leases": {
        "task": "workflows.tasks.reap_expired_leases",
        "schedule": 30.0,
    },
    "ticketing-purge-idempotency-keys": {
        "task": "ticketing.tasks.purge_idempotency_keys",
        "schedule": crontab(minute=7),
    },
    "ticketing-deliver-due-webhooks": {
        "task": "ticketing.tasks.deliver_due_webhooks",
        "schedule": 15.0,
    },
    "workflows-prune-finished-runs": {
        "task": "workflows.tasks.prune_finished_runs",
        "schedule": crontab(minute=17, hour=3),
    },
    # Finance: the same code as manage.py run_settlements / run_payouts (idempotent).
    "finance-run-settlements": {
        "task": "finance.tasks.run_settlements",
        "schedule": crontab(minute=5, hour=2),
    },
    "finance-run-payouts": {
        "task": "finance.tasks.run_payouts",
        "schedule": crontab(minute=35, hour=2),
    },
}

# --- E-mail -------------------------------------------------------------------
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", default=False)
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH", str(BASE_DIR / "var" / "mail"))
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "tickets@localhost")
# Seconds an SMTP conversation may take, and after which a delivery claimed by
# a worker that never finished (killed mid-send) is sent by another.
EMAIL_TIMEOUT = int(os.environ.get("EMAIL_TIMEOUT", "20"))
EMAIL_CLAIM_SECONDS = int(os.environ.get("EMAIL_CLAIM_SECONDS", "120"))
# A recorded e-mail still unsent after this long has its send queued again
# (the resend sweeper, every minute); a second send message is harmless.
EMAIL_RESEND_AFTER_SECONDS = int(os.environ.get("EMAIL_RESEND_AFTER_SECONDS", "120"))
# A paid order's e-mail rings a bell (a Redis key) instead of publishing a
# message of its own: only the ring that sets it publishes a drain
# (ticketing.tasks.send_pending_emails), which silences it and sends the
# waiting e-mails in batches of EMAIL_BATCH_SIZE (claimed and read in a
# statement each, sent over one SMTP connection), at most EMAIL_DRAIN_BATCHES
# batches per task before it rings again. The bell expires after
# EMAIL_BELL_SECONDS, in case its drain message is lost.
EMAIL_BATCH_SIZE = int(os.environ.get("EMAIL_BATCH_SIZE", "20"))
EMAIL_DRAIN_BATCHES = int(os.environ.get("EMAIL_DRAIN_BATCHES", "50"))
EMAIL_BELL_SECONDS = int(os.environ.get("EMAIL_BELL_SECONDS", "30"))
# A drain that emptied the queue holds the bell this long and looks again
# before it ends: in a rush the next orders' e-mails ride it instead of each
# waking the worker with a message of its own (0: end at once).
EMAIL_DRAIN_LINGER_SECONDS = float(os.environ.get("EMAIL_DRAIN_LINGER_SECONDS", "0.2"))

# --- Auth, i18n, static -------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
# Serve straight from the apps' static folders unless collectstatic's output is
# used (production sets WHITENOISE_USE_FINDERS=0 after collectstatic).
WHITENOISE_USE_FINDERS = env_bool("WHITENOISE_USE_FINDERS", default=True)
LOGIN_URL = "admin:login"

# --- REST API -----------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "ticketing.api.schema.ApiAutoSchema",
    "EXCEPTION_HANDLER": "ticketing.api.errors.exception_handler",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "ticketing.api.authentication.ApiTokenAuthentication",
        "ticketing.api.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["ticketing.api.permissions.HasRole"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "ticketing.api.pagination.ApiPagination",
    # Anonymous callers (the public endpoints) per IP, tokens and staff per principal.
    "DEFAULT_THROTTLE_CLASSES": [
        "ticketing.api.throttling.PublicRateThrottle",
        "ticketing.api.throttling.ClientRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": os.environ.get("API_ANON_RATE", "120/min"),
        "client": os.environ.get("API_CLIENT_RATE", "1200/min"),
    },
    # One proxy (the load balancer) in front of the app: the client IP is the
    # last X-Forwarded-For entry it appended. 0 when served directly.
    "NUM_PROXIES": int(os.environ.get("API_NUM_PROXIES", "0")) or None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Ticketing API",
    "DESCRIPTION": (
        "Events, ticket types, availability, seat maps and holds, orders, tickets and workflow runs. "
        "Authenticate with `Authorization: Bearer <token>` (tokens are created in the admin); the /public/ "
        "endpoints need no token. Writes accept an `Idempotency-Key` header. Every 4xx answers "
        '{"code", "message", "detail"}.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "EventStatusEnum": "ticketing.models.EventStatus",
        "OrderStatusEnum": "ticketing.models.OrderStatus",
        "TicketStatusEnum": "ticketing.models.TicketStatus",
        "TicketKindEnum": "ticketing.models.TicketKind",
        "SeatHoldStatusEnum": "seating.models.SeatHoldStatus",
        "RunStatusEnum": "workflows.models.RunStatus",
        "StepStatusEnum": "workflows.models.StepStatus",
        "StepKindEnum": "workflows.models.StepKind",
    },
}

# --- Payments -----------------------------------------------------------------
# Production drops "sandbox": anyone could pay with its test cards.
PAYMENT_PROVIDERS = tuple(env_list("PAYMENT_PROVIDERS", "sandbox,stripe"))
SANDBOX_WEBHOOK_SECRET = os.environ.get("SANDBOX_WEBHOOK_SECRET", "whsec_sandbox_development_only")
SANDBOX_DELAYED_CONFIRMATION_SECONDS = int(os.environ.get("SANDBOX_DELAYED_CONFIRMATION_SECONDS", "20"))
# The sandbox delivers a due webhook right after the change that causes it
# commits, in the same process; off, only its sweeper delivers (or whoever
# plays the provider: bench/drills/settings.py).
SANDBOX_WEBHOOKS_DELIVER_ON_COMMIT = True
STRIPE_SECRET_KEY = os.environ.get("STRIPE_SECRET_KEY", "")
STRIPE_WEBHOOK_SECRET = os.environ.get("STRIPE_WEBHOOK_SECRET", "")  # unset: every Stripe webhook is rejected
if os.environ.get("STRIPE_API_VERSION"):
    STRIPE_API_VERSION = os.environ["STRIPE_API_VERSION"]

# --- Outbound webhooks to integrators -------------------------------------------
WEBHOOK_MAX_ATTEMPTS = int(os.environ.get("WEBHOOK_MAX_ATTEMPTS", "8"))
WEBHOOK_BACKOFF_SECONDS = int(os.environ.get("WEBHOOK_BACKOFF_SECONDS", "30"))
WEBHOOK_BACKOFF_MAX_SECONDS = int(os.environ.get("WEBHOOK_BACKOFF_MAX_SECONDS", str(6 * 3600)))
WEBHOOK_TIMEOUT_SECONDS = int(os.environ.get("WEBHOOK_TIMEOUT_SECONDS", "10"))

# --- Workflows ----------------------------------------------------------------
WORKFLOW_LEASE_SECONDS = int(os.environ.get("WORKFLOW_LEASE_SECONDS", "300"))
WORKFLOW_RETENTION_DAYS = int(os.environ.get("WORKFLOW_RETENTION_DAYS", "30"))
# A bearer token for /metrics; empty leaves it open (restrict it at the network edge).
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")

# --- Domain defaults ----------------------------------------------------------
SEAT_HOLD_MINUTES = int(os.environ.get("SEAT_HOLD_MINUTES", "15"))
CHECKOUT_HOLD_MINUTES = int(os.environ.get("CHECKOUT_HOLD_MINUTES", "15"))
# The hold sweepers leave lapsed holds this long to the checkout that owns
# them (it asks the payment provider before releasing); sales never wait.
HOLD_SWEEP_GRACE_SECONDS = int(os.environ.get("HOLD_SWEEP_GRACE_SECONDS", "600"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}
