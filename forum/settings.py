"""Cordiale settings, read from the environment (see README "Configuration").

Production differs from development only by environment variables. With no
``DATABASE_URL`` the server runs on a SQLite file; with no ``REDIS_URL`` Celery tasks run
in process and the cache lives in memory: the embedded default for trying it out.
"""

from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from forum.client_address import trusted_proxy_networks

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY is required unless DJANGO_DEBUG is true.")
    SECRET_KEY = "insecure-development-key-only-for-DJANGO_DEBUG"  # noqa: S105

ALLOWED_HOSTS = env.list(
    "DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"] if DEBUG else []
)
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "forum.admin_config.CordialeAdminConfig",  # django.contrib.admin with the OTP site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served by the forum (no CDN)
    "django_otp",
    "django_otp.plugins.otp_totp",
    "axes",
    "members",
    "exchange",
]

MIDDLEWARE = [
    # Before SecurityMiddleware and the host check: see forum/middleware.py.
    "forum.middleware.RequestIdMiddleware",
    "forum.middleware.ProbeMiddleware",
    "forum.middleware.MetricsMiddleware",
    "forum.middleware.BodySizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a lockout into a 429 page
]

ROOT_URLCONF = "forum.urls"
WSGI_APPLICATION = "forum.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "forum" / "templates"],  # the landing page (forum/urls.py)
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

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'cordiale.sqlite3'}")
}
_is_sqlite = DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
if _is_sqlite:
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
DATABASES["default"]["ATOMIC_REQUESTS"] = False
# Persistent connections on PostgreSQL: opening one per request (a new server process,
# its catalog caches cold) cost 15% of ingest throughput (tests/bench/bench_ingest.py).
# Each web thread and worker process keeps at most one (see deploy/gunicorn.conf.py on
# sizing against max_connections); health checks replace one broken by a server restart
# before it is used. SQLite gains nothing from them.
DATABASES["default"]["CONN_MAX_AGE"] = env.int(
    "DJANGO_CONN_MAX_AGE", default=0 if _is_sqlite else 60
)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if _is_sqlite:
    # Concurrent readers next to one writer, and wait for the writer instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"}
    )
# A streaming standby of the primary for feed reads (forum/db_routing.py): opt-in. The
# router sends nothing else there; a replica more than CORDIALE_REPLICA_MAX_LAG seconds
# behind, or one that does not answer, leaves the reads on the primary.
CORDIALE_REPLICA_DATABASE_URL = env.str("CORDIALE_REPLICA_DATABASE_URL", default="")
if CORDIALE_REPLICA_DATABASE_URL:
    DATABASES["replica"] = env.db_url_config(CORDIALE_REPLICA_DATABASE_URL)
    DATABASES["replica"].update(
        ATOMIC_REQUESTS=False,
        CONN_MAX_AGE=DATABASES["default"]["CONN_MAX_AGE"],
        CONN_HEALTH_CHECKS=True,
        # Test runs read the test database through the replica alias.
        TEST={"MIRROR": "default"},
    )
    # A replica that stops answering must cost a read seconds, not the OS's minutes.
    DATABASES["replica"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 2)
CORDIALE_REPLICA_MAX_LAG = env.float("CORDIALE_REPLICA_MAX_LAG", default=30.0)
DATABASE_ROUTERS = ["forum.db_routing.ReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "cordiale",
            # A Redis that stops answering (not only one that refuses) must fail a cache
            # call fast: the throttles then count in the process (forum/throttling.py).
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    CELERY_BROKER_URL = REDIS_URL
    CELERY_TASK_ALWAYS_EAGER = False
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CELERY_BROKER_URL = "memory://"
    CELERY_TASK_ALWAYS_EAGER = True
    CELERY_TASK_EAGER_PROPAGATES = True

CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
# A task is acknowledged after it ran: a worker killed mid-task leaves it to another one.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Publishing must never hang a submission when the broker is down: the periodic sweep
# recovers whatever a lost message would have done.
# Kombu's Redis transport polls a worker's queues with one BRPOP whose keys are in the
# order of its queue cycle; Redis answers from the first non-empty key. The default
# cycle ("round_robin") moves the queue just served to the back, so a busy routine queue
# would take turns with "priority". "priority" keeps the declared order, and
# CELERY_TASK_QUEUES declares "priority" first: a worker consuming every queue takes an
# incident's deliveries before any routine backlog (it still finishes its current task).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": 1,
    "socket_timeout": 2,
    "queue_order_strategy": "priority",
}
CELERY_TASK_PUBLISH_RETRY = False
CELERY_TASK_DEFAULT_QUEUE = "maintenance"
CELERY_TASK_QUEUES_NAMES = ("priority", "fanout", "delivery", "maintenance")
# Declared, so that a worker started without -Q consumes every one of them.
CELERY_TASK_QUEUES = [Queue(name) for name in CELERY_TASK_QUEUES_NAMES]
CELERY_TASK_ROUTES = {
    "exchange.tasks.fanout_*": {"queue": "fanout"},
    "exchange.tasks.deliver_*": {"queue": "delivery"},
    "exchange.tasks.*": {"queue": "maintenance"},
}
CELERY_BEAT_SCHEDULE = {
    "lapse-expired-statements": {
        "task": "exchange.tasks.sweep_lapsed_statements",
        "schedule": 60.0,
    },
    "sweep-webhooks": {
        "task": "exchange.tasks.sweep_webhooks",
        "schedule": env.float("CORDIALE_WEBHOOK_SWEEP_INTERVAL", default=30.0),
    },
    # Signed audit checkpoints (members/checkpoints.py): how long a cut of the log's
    # tail may go unnoticed at most.
    # Dispute webhook events whose task was lost (exchange/disputes/events.py).
    "sweep-dispute-events": {
        "task": "exchange.tasks.sweep_dispute_events",
        "schedule": env.float("CORDIALE_WEBHOOK_SWEEP_INTERVAL", default=30.0),
    },
    "audit-checkpoint": {
        "task": "exchange.tasks.take_audit_checkpoint",
        "schedule": env.float("CORDIALE_AUDIT_CHECKPOINT_INTERVAL", default=300.0),
    },
}

# Admin sign-in: a TOTP code besides the password unless DEBUG (forum.admin_site), and
# a lockout after repeated failures (passwords or codes) per username and client address,
# counted in Redis (in the database in the embedded setup, whose in-memory cache is per
# process) and lifted after the cool-off.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = (
    "axes.handlers.cache.AxesCacheHandler"
    if REDIS_URL
    else "axes.handlers.database.AxesDatabaseHandler"
)
AXES_FAILURE_LIMIT = env.int("CORDIALE_ADMIN_LOGIN_FAILURES", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("CORDIALE_ADMIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# Reverse proxies in front of the web processes (addresses or CIDRs, comma-separated):
# X-Forwarded-For is believed only as far back as these vouch for it, for the lockout
# and the audit log alike (forum/client_address.py). Empty: never read.
CORDIALE_TRUSTED_PROXIES = env.list("CORDIALE_TRUSTED_PROXIES", default=[])
try:
    trusted_proxy_networks(CORDIALE_TRUSTED_PROXIES)
except ValueError as exc:
    raise ImproperlyConfigured(str(exc)) from exc
AXES_CLIENT_IP_CALLABLE = "forum.client_address.client_address"
OTP_TOTP_ISSUER = env.str("CORDIALE_OTP_ISSUER", default="Cordiale")
# A device's seed is shown once, when it is made (enrol_totp, the add form); never again,
# or anyone allowed to view devices would hold everyone's second factor.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("DJANGO_STATIC_ROOT", default=str(VAR_DIR / "static"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

EMAIL_BACKEND = env.str(
    "DJANGO_EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend"
)
ADMINS = [("Forum admins", a) for a in env.list("CORDIALE_ADMIN_EMAILS", default=[])]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["members.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["members.permissions.HasScope"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["exchange.parsers.JSONParser"],
    "DEFAULT_THROTTLE_CLASSES": ["forum.throttling.ScopedWorkThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "read": env.str("CORDIALE_THROTTLE_READ", default="6000/min"),
        "submit": env.str("CORDIALE_THROTTLE_SUBMIT", default="600/min"),
        "feedback": env.str("CORDIALE_THROTTLE_FEEDBACK", default="1200/min"),
        "manage": env.str("CORDIALE_THROTTLE_MANAGE", default="120/min"),
        # Work budgets (docs/limits.md): statements submitted, PDQ hashes and values
        # matched, feed rows asked for, sighting reports.
        "statements": env.str("CORDIALE_THROTTLE_STATEMENTS", default="100000/min"),
        "match_hashes": env.str("CORDIALE_THROTTLE_MATCH_HASHES", default="60000/min"),
        "feed_rows": env.str("CORDIALE_THROTTLE_FEED_ROWS", default="2000000/min"),
        "sightings": env.str("CORDIALE_THROTTLE_SIGHTINGS", default="100000/min"),
    },
    "EXCEPTION_HANDLER": "forum.api.problem_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "forum.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Cordiale exchange API",
    "DESCRIPTION": "Signed hashes and indicators of terrorist and violent extremist content, "
    "shared between forum members. The repository's docs/api.md explains every endpoint.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    # Schema completeness is the API's business (tests), not the deployment's: keep
    # `check --deploy` about the deployment.
    "ENABLE_DJANGO_DEPLOY_CHECK": False,
    # The docs page loads Swagger UI from the forum itself, under the CSP below; no
    # validator badge fetched from swagger.io.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # No persistAuthorization: an API key typed into "Authorize" is not left in the
    # browser's local storage.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    # Several answers have a `status` field with their own choices: name each set.
    "ENUM_NAME_OVERRIDES": {
        "SubmitStatusEnum": "exchange.openapi.SUBMIT_STATUSES",
        "WebhookStatusEnum": "exchange.webhooks.openapi.WEBHOOK_STATUSES",
        "KeyStatusEnum": "members.openapi.KEY_STATUSES",
        "MemberStatusEnum": "members.openapi.MEMBER_STATUSES",
    },
}

# Statement acceptance window (seconds): how far in the future an `iat` may be, and
# how old a statement may be when it reaches the server.
CORDIALE_CLOCK_SKEW = env.int("CORDIALE_CLOCK_SKEW", default=300)
CORDIALE_MAX_STATEMENT_AGE = env.int("CORDIALE_MAX_STATEMENT_AGE", default=30 * 24 * 3600)
# Anonymous sighting reporters (other than the reader) needed before their figures show
# in a snapshot (exchange/sightings/summaries.py).
CORDIALE_SIGHTINGS_MIN_REPORTERS = env.int("CORDIALE_SIGHTINGS_MIN_REPORTERS", default=2)
# The forum's own Ed25519 key (members/forum_key.py): it signs receipts and audit
# checkpoints. A PEM private key file, required unless DJANGO_DEBUG (then generated
# under var/ on first use); earlier keys' public halves stay in the JWKS.
CORDIALE_FORUM_KEY_FILE = env.str("CORDIALE_FORUM_KEY_FILE", default="")
CORDIALE_FORUM_KEY = env.str("CORDIALE_FORUM_KEY", default="")  # the key itself, instead
CORDIALE_FORUM_PREVIOUS_KEYS = env.list("CORDIALE_FORUM_PREVIOUS_KEYS", default=[])
# Snapshots of the PDQ match index (exchange/matching/service.py), shared by the web
# processes of a host through mmap: the project's var/ in debug mode, else a cache
# directory outside the installed code (the image creates it, compose and Kubernetes
# mount a volume there). Unwritable, the processes keep the index in memory only.
# Disputes (exchange/disputes/): negative opinions from this many distinct members open
# a dispute by themselves (0 turns that off); an overturn needs this many distinct
# staff approvals before the forum signs it.
CORDIALE_DISPUTE_NEGATIVE_THRESHOLD = env.int("CORDIALE_DISPUTE_NEGATIVE_THRESHOLD", default=3)
CORDIALE_DISPUTE_OVERTURN_APPROVALS = env.int("CORDIALE_DISPUTE_OVERTURN_APPROVALS", default=2)
CORDIALE_MATCH_INDEX_DIR = env.path(
    "CORDIALE_MATCH_INDEX_DIR",
    default=str(VAR_DIR / "match-index") if DEBUG else "/var/cache/cordiale/match-index",
)
# Work one match request may cause, in indexed PDQ hashes compared (docs/limits.md).
CORDIALE_MATCH_WORK_BUDGET = env.int("CORDIALE_MATCH_WORK_BUDGET", default=500_000_000)
CORDIALE_WEBHOOK_ALLOW_PRIVATE = env.bool("CORDIALE_WEBHOOK_ALLOW_PRIVATE", default=False)
# Webhook delivery (seconds unless stated; see exchange/webhooks/delivery/).
CORDIALE_WEBHOOK_TIMEOUT = env.float("CORDIALE_WEBHOOK_TIMEOUT", default=10.0)
CORDIALE_WEBHOOK_BATCH = env.int("CORDIALE_WEBHOOK_BATCH", default=500)  # changes per POST
CORDIALE_WEBHOOK_RETRY_BASE = env.float("CORDIALE_WEBHOOK_RETRY_BASE", default=10.0)
CORDIALE_WEBHOOK_RETRY_MAX = env.float("CORDIALE_WEBHOOK_RETRY_MAX", default=3600.0)
CORDIALE_WEBHOOK_DISABLE_AFTER = env.float("CORDIALE_WEBHOOK_DISABLE_AFTER", default=24 * 3600.0)
CORDIALE_WEBHOOK_TASK_BUDGET = env.float("CORDIALE_WEBHOOK_TASK_BUDGET", default=60.0)
CORDIALE_WEBHOOK_SECRET_GRACE = env.int("CORDIALE_WEBHOOK_SECRET_GRACE", default=24 * 3600)
CORDIALE_WEBHOOK_DELIVERY_RETENTION = env.int(
    "CORDIALE_WEBHOOK_DELIVERY_RETENTION", default=14 * 24 * 3600
)
CORDIALE_WEBHOOK_MAX_PER_MEMBER = env.int("CORDIALE_WEBHOOK_MAX_PER_MEMBER", default=10)
# Ports webhook URLs may use besides 443 (docs/webhooks.md has the whole rule).
CORDIALE_WEBHOOK_ALLOWED_PORTS = env.list("CORDIALE_WEBHOOK_ALLOWED_PORTS", cast=int, default=[])
# Deliveries to one member's endpoints in flight at once, over all workers: one member's
# slow receivers never hold more than this many delivery slots. Keep it at most half of
# the delivery processes (8 of the Kubernetes manifests' 2 x 8; compose sets 2 of its 4).
# Lower costs a member with many endpoints throughput: with bench_fanout (5 members x 10
# endpoints, one worker of 8, --pause 0.2) the p95 latency was 2.5 s at a cap of 8,
# 5.4-6.2 s at 4 and 12-22 s at 2.
CORDIALE_WEBHOOK_MAX_IN_FLIGHT_PER_MEMBER = env.int(
    "CORDIALE_WEBHOOK_MAX_IN_FLIGHT_PER_MEMBER", default=8
)
# Backstops to the per-attempt deadline: a delivery task sends for its budget plus one
# attempt, an event task for one attempt; the margin covers its database work. The soft
# limit ends an attempt in progress as a logged failure (retried with backoff), or else
# the task; the hard limit kills the process (the endpoint lock dies with its database
# connection). Either way the sweep wakes the endpoint again.
_SEND_LIMIT = CORDIALE_WEBHOOK_TIMEOUT + 30
CELERY_TASK_ANNOTATIONS = {
    name: {"soft_time_limit": soft, "time_limit": soft + 30}
    for name, soft in [
        ("exchange.tasks.deliver_endpoint", CORDIALE_WEBHOOK_TASK_BUDGET + _SEND_LIMIT),
        ("exchange.tasks.deliver_ping", _SEND_LIMIT),
        ("exchange.tasks.deliver_incident_declared", _SEND_LIMIT),
    ]
}

# /metrics: the bearer token it requires; unset, only loopback may read it (README).
CORDIALE_METRICS_TOKEN = env.str("CORDIALE_METRICS_TOKEN", default="")
# A Celery worker with a port set serves its task outcome counters there (forum/celery.py).
CORDIALE_WORKER_METRICS_PORT = env.int("CORDIALE_WORKER_METRICS_PORT", default=0)
CORDIALE_WORKER_METRICS_ADDR = env.str("CORDIALE_WORKER_METRICS_ADDR", default="127.0.0.1")

# JSON lines outside debug mode, each with the request id (forum/logs.py): on stdout for
# servers, on stderr for management commands, whose stdout is their output.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "forum.logs.RequestIdFilter"},
        "redact": {"()": "forum.logs.RedactFilter"},
    },
    "formatters": {
        "json": {"()": "forum.logs.JsonFormatter"},
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {
            # stdout for servers, stderr for management commands (forum/logs.py).
            "()": "forum.logs.console_handler",
            "filters": ["request_id", "redact"],
            "formatter": "text" if DEBUG else "json",
        }
    },
    # Their messages name the request's path, which may carry a signal value: redacted
    # on the logger, before Django's own handlers (admin error e-mails) see the record.
    # runserver's request lines go to the console like every other line.
    "loggers": {
        "django.request": {"filters": ["redact"]},
        "django.server": {"handlers": ["console"], "filters": ["redact"], "propagate": False},
    },
    "root": {"handlers": ["console"], "level": env.str("DJANGO_LOG_LEVEL", default="INFO")},
}

# A batch of 10,000 statements is a few MB of JSON (enforced for the API's streamed
# bodies by forum.middleware.BodySizeLimitMiddleware).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("CORDIALE_MAX_BODY_BYTES", default=32 * 1024 * 1024)
# Form limits for the admin, the only place that posts forms; nothing uploads files.
DATA_UPLOAD_MAX_NUMBER_FIELDS = 2000
DATA_UPLOAD_MAX_NUMBER_FILES = 10

# HTTPS and browser hardening. TLS ends at the proxy, which must set (overwrite)
# X-Forwarded-Proto. The probes (/healthz, /readyz, /readyz/web) and /metrics are
# answered before these apply.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp) on every answer: the admin and the API docs run
# only the forum's own script files, no inline script. Inline styles stay allowed (the
# admin's and Swagger UI's style attributes); images may be data: URIs (their icons).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
SESSION_COOKIE_HTTPONLY = True
# Sessions are the admin's only (the API authenticates by key): one left idle this long
# (seconds) ends, and every request starts the count again (docs/admin.md).
CORDIALE_ADMIN_IDLE_TIMEOUT = env.int("CORDIALE_ADMIN_IDLE_TIMEOUT", default=2 * 3600)
SESSION_COOKIE_AGE = CORDIALE_ADMIN_IDLE_TIMEOUT
SESSION_SAVE_EVERY_REQUEST = True
if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # A year, as check --deploy and the preload list expect: members' clients and the
    # admin only ever speak HTTPS to the forum's own host name, so there is nothing to
    # roll back to. Start lower (e.g. 300) on a host name that served plain HTTP before.
    SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=365 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
# Preloading commits the whole registrable domain, which the forum's host name usually
# does not own: a decision for the domain's owner (DJANGO_SECURE_HSTS_PRELOAD), not a
# deployment defect, so check --deploy does not warn about it.
SILENCED_SYSTEM_CHECKS = ["security.W021"]
