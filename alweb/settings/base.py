"""Settings shared by every environment, read from the environment (django-environ).

Every variable is documented in `.env.example` and in the README. The embedded defaults need no server:
SQLite and files under `var/`, a filesystem Celery broker, MLflow on a sqlite store.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from engine import threads

BASE_DIR = Path(__file__).resolve().parent.parent.parent
env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env")

VAR_DIR = Path(env.str("ALWEB_VAR_DIR", default=str(BASE_DIR / "var")))

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="insecure-local-only-key-change-me")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS: list[str] = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS: list[str] = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
# The public base URL of alweb: Label Studio loads item media from signed URLs built on it.
ALWEB_BASE_URL = env.str("ALWEB_BASE_URL", default="http://127.0.0.1:8000")

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
    "drf_spectacular_sidecar",  # Swagger UI assets served locally: no CDN at run time
    "axes",  # failed logins counted and locked out (see AXES_* below)
    "campaigns",
    "models_registry",
]

MIDDLEWARE = [
    # First: /healthz answers before the Host check and the HTTPS redirect (load balancers call it by address).
    "alweb.health.HealthzMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "alweb.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Before any view reads the body (CSRF's check parses a POST form): an upload over the limit is a 413 at once.
    "alweb.middleware.UploadLimitMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a login form's lockout into alweb.auth.lockout_response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "alweb.urls"
WSGI_APPLICATION = "alweb.wsgi.application"
ASGI_APPLICATION = "alweb.asgi.application"

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

# The shared cache: login failure counts and API throttles live here, so it must be one for every process that
# serves requests. Local mode and the tests: memory (one process). Production: Redis (alweb.settings.production).
CACHES = {"default": env.cache("ALWEB_CACHE_URL", default="locmemcache://")}

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'alweb.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=0)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    # Not a rule: the hook Django calls after every password change, which deletes the user's API tokens.
    {"NAME": "campaigns.services.tokens.RevokeTokensOnPasswordChange"},
]

# Content-Security-Policy (alweb.middleware): the dashboard, the admin and the API docs use alweb's own static files
# only. data: images are Chart.js' and the admin's icons. Empty turns the header off.
ALWEB_CSP = env.str(
    "ALWEB_CSP",
    default="default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'",
)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env.str("ALWEB_STATIC_ROOT", default=str(VAR_DIR / "staticfiles")))
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env.str("ALWEB_MEDIA_ROOT", default=str(VAR_DIR / "media")))

# Files (item media, uploads) go through django-storages: the filesystem by default, S3 when a bucket is set.
AWS_STORAGE_BUCKET_NAME = env.str("ALWEB_S3_BUCKET", default="")
if AWS_STORAGE_BUCKET_NAME:
    AWS_S3_ENDPOINT_URL = env.str("ALWEB_S3_ENDPOINT_URL", default="") or None
    AWS_S3_REGION_NAME = env.str("ALWEB_S3_REGION", default="us-east-1")
    AWS_ACCESS_KEY_ID = env.str("AWS_ACCESS_KEY_ID", default="") or None
    AWS_SECRET_ACCESS_KEY = env.str("AWS_SECRET_ACCESS_KEY", default="") or None
    AWS_QUERYSTRING_AUTH = True  # presigned, expiring URLs for Label Studio
    AWS_QUERYSTRING_EXPIRE = env.int("ALWEB_MEDIA_URL_TTL", default=3600)
    AWS_DEFAULT_ACL = None
    _default_storage = {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {}}
else:
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT)},
    }
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Signed media URLs served by alweb to Label Studio expire after this many seconds.
ALWEB_MEDIA_URL_TTL = env.int("ALWEB_MEDIA_URL_TTL", default=3600)
# Finished and failed exports (files and rows) are deleted this many days after they were made; 0 keeps them all.
ALWEB_EXPORT_RETENTION_DAYS = env.int("ALWEB_EXPORT_RETENTION_DAYS", default=7)
# Tasks per Label Studio import request (a 1000-task import with predictions is ~1.3 s and ~1 MB; fewer, larger
# requests cost Label Studio less).
ALWEB_LS_SYNC_BATCH = env.int("ALWEB_LS_SYNC_BATCH", default=1000)

# Login throttling (django-axes), on the dashboard's and the admin's login forms and the API's token endpoint:
# after ALWEB_LOGIN_FAILURE_LIMIT failures for one username, or from one client address, every login for it (even
# with the right password) is refused with 429 for ALWEB_LOGIN_LOCKOUT_SECONDS; each failure meanwhile restarts the
# wait. Counted in the shared cache (CACHES, Redis in production), so every web worker sees the same counts. The
# address is alweb.auth.client_ip: REMOTE_ADDR unless ALWEB_TRUSTED_PROXIES says how many proxies to look through.
ALWEB_LOGIN_FAILURE_LIMIT = env.int("ALWEB_LOGIN_FAILURE_LIMIT", default=10)
ALWEB_LOGIN_LOCKOUT_SECONDS = env.int("ALWEB_LOGIN_LOCKOUT_SECONDS", default=900)
ALWEB_TRUSTED_PROXIES = env.int("ALWEB_TRUSTED_PROXIES", default=0)
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out login before any password is checked
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler"
AXES_FAILURE_LIMIT = ALWEB_LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(seconds=ALWEB_LOGIN_LOCKOUT_SECONDS)
# Counted per username and per address, each on its own: one address trying many usernames, and many addresses
# trying one username, are both held. An existing and a made-up username are counted (and answered) the same.
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_CLIENT_IP_CALLABLE = "alweb.auth.client_ip"
AXES_LOCKOUT_CALLABLE = "alweb.auth.lockout_response"
AXES_ENABLE_ADMIN = False  # its admin pages list database records, which the cache handler does not write

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

# API tokens stop working this many seconds after they were issued (401 "Token expired"); asking
# POST /api/auth/token/ again then issues a new one. DELETE /api/auth/token/ revokes one, a password change all.
ALWEB_TOKEN_TTL = env.int("ALWEB_TOKEN_TTL", default=30 * 24 * 3600)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "campaigns.api.authentication.ExpiringTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Service ValidationErrors ({field: reason}) become 400s naming the field, on every endpoint.
    "EXCEPTION_HANDLER": "campaigns.api.errors.exception_handler",
    # JSON bodies bounded (size, depth) before parsing, NaN/Infinity reaching their field: on every endpoint.
    "DEFAULT_PARSER_CLASSES": [
        "campaigns.api.parsers.LenientJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "alweb API",
    "DESCRIPTION": "Active-learning labeling campaigns: projects, items, cycles, scores, model versions.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # One schema name for a choice set used by several fields (a project's default heuristic, a cycle's heuristic).
    # Two "kind" fields (a model version's, an external model's) need names of their own.
    "ENUM_NAME_OVERRIDES": {
        "HeuristicEnum": "campaigns.models.Heuristic",
        "ModelVersionKindEnum": "models_registry.models.ModelKind",
        "ExternalModelKindEnum": "campaigns.services.training.EXTERNAL_KINDS",
        # A task-run row's state (queued, running, done, failed): exports and simulation runs share the choice set.
        "JobStateEnum": "campaigns.models.simulations.SimulationState",
        # Every other "state" field gets its own name, instead of a hash-suffixed one that changes with the set.
        "ItemStateEnum": "campaigns.models.ItemState",
        "ReviewStateEnum": "campaigns.models.label_review.ReviewState",
        "CycleStateEnum": "campaigns.states.CycleState",
        "SyncStateEnum": "campaigns.models.SyncState",
    },
}

# Celery: the embedded default is kombu's filesystem transport (no server) with a real worker process.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
CELERY_BROKER_FOLDER = VAR_DIR / "broker"
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="") or None
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
# At-least-once delivery: a task is acknowledged after it ran, so a killed worker's task is redelivered.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# One task reserved at a time per worker process: a long training must not hold a chunk another worker could score.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=3 * 3600)
CELERY_TASK_TIME_LIMIT = CELERY_TASK_SOFT_TIME_LIMIT + 300
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Redis redelivers an unacknowledged task after this many seconds: longer than the longest task.
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=4 * 3600),
}
if env.str("CELERY_KEY_PREFIX", default=""):
    # Several alweb installs (or test runs) sharing one Redis keep their queues apart.
    CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] = env.str("CELERY_KEY_PREFIX")
# Network errors (Label Studio, MLflow, the database) are retried with exponential backoff, then the cycle fails.
ALWEB_TASK_MAX_RETRIES = env.int("ALWEB_TASK_MAX_RETRIES", default=6)
ALWEB_TASK_RETRY_BACKOFF = env.int("ALWEB_TASK_RETRY_BACKOFF", default=2)
# Scoring writes the pool in chunks of this many item ids, one task each, shared by every scoring worker; a
# redelivered chunk task finds its chunk written and does nothing.
ALWEB_SCORING_CHUNK_IDS = env.int("ALWEB_SCORING_CHUNK_IDS", default=2048)
# Models each worker process keeps loaded across chunks (least recently used evicted first).
ALWEB_MODEL_CACHE_SIZE = env.int("ALWEB_MODEL_CACHE_SIZE", default=2)
# PyTorch operator threads in each worker process (engine.threads): `cores` shares the usable cores out among the
# worker's processes; a positive integer sets the number. Checked here, so a typo stops the process at start.
ALWEB_TORCH_THREADS = env.str("ALWEB_TORCH_THREADS", default=threads.DEFAULT)
try:
    threads.threads_for(ALWEB_TORCH_THREADS, processes=1, cpus=1)
except threads.ThreadsConfigError as exc:
    raise ImproperlyConfigured(str(exc)) from None
# The largest backbone (model_config.backbone) a project may use: it is read, loaded and kept in every worker's
# memory, so one file could otherwise exhaust them. 1 GB holds a ViT-L; refused when the config is saved.
ALWEB_MAX_MODEL_BYTES = env.int("ALWEB_MAX_MODEL_BYTES", default=1024**3)
# Self-supervised pretraining of an image project's trunk on its pool (issue 19): at most this many images (a seeded
# sample of larger pools, held in memory as float pixels) and this many seconds of training, whatever was asked.
ALWEB_SSL_MAX_IMAGES = env.int("ALWEB_SSL_MAX_IMAGES", default=20_000)
ALWEB_SSL_MAX_SECONDS = env.int("ALWEB_SSL_MAX_SECONDS", default=1800)
# /admin/queues/: seconds it waits for the workers to say which queues they consume.
ALWEB_QUEUES_INSPECT_TIMEOUT = env.float("ALWEB_QUEUES_INSPECT_TIMEOUT", default=1.0)
# /healthz: seconds it waits for the broker before answering 503.
ALWEB_HEALTHZ_TIMEOUT = env.float("ALWEB_HEALTHZ_TIMEOUT", default=2.0)
# The admin's "requeue" re-sends the task of a cycle stuck in a working stage once its progress has not moved for
# this many seconds (a task lost with its broker, say); earlier, a worker may still hold it.
ALWEB_REQUEUE_STALE_AFTER = env.int("ALWEB_REQUEUE_STALE_AFTER", default=600)
CELERY_BEAT_SCHEDULE = {
    "pull-annotations": {
        "task": "campaigns.tasks.pull_all_projects",
        "schedule": env.int("ALWEB_PULL_INTERVAL", default=60),
    },
    "prune-exports": {"task": "campaigns.tasks.exports_prune", "schedule": 3600},
    "cleanup-simulations": {"task": "campaigns.tasks.simulations_cleanup", "schedule": 3600},
    "compact-item-counts": {"task": "campaigns.tasks.item_counts_compact", "schedule": 3600},
}
# Queues: `cpu` (training, scoring: CPU-bound), `io` (Label Studio sync and pull: waiting on the network, so many
# per process), `celery` (the rest: selection, exports). Training and scoring can each go to a queue of their own
# (e.g. ALWEB_QUEUE_SCORING=gpu, served by workers on GPU hosts) with ALWEB_QUEUE_TRAINING / ALWEB_QUEUE_SCORING.
ALWEB_QUEUE_TRAINING = env.str("ALWEB_QUEUE_TRAINING", default="cpu")
ALWEB_QUEUE_SCORING = env.str("ALWEB_QUEUE_SCORING", default="cpu")
# Suspected label errors (K out-of-fold trainings after each training) are background work on a queue of their own:
# on the training queue they ran ahead of the cycle's scoring chunks and held a cycle up for minutes.
ALWEB_QUEUE_LABEL_QUALITY = env.str("ALWEB_QUEUE_LABEL_QUALITY", default="quality")
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_ROUTES = {
    "campaigns.tasks.cycle_train": {"queue": ALWEB_QUEUE_TRAINING},
    "campaigns.tasks.cycle_train_closing": {"queue": ALWEB_QUEUE_TRAINING},
    "campaigns.tasks.simulation_run": {"queue": ALWEB_QUEUE_TRAINING},  # it trains a model per cycle per arm
    "campaigns.tasks.backbone_pretrain": {"queue": ALWEB_QUEUE_TRAINING},
    "campaigns.tasks.label_quality": {"queue": ALWEB_QUEUE_LABEL_QUALITY},  # K out-of-fold trainings
    "campaigns.tasks.review_sync": {"queue": "io"},
    "campaigns.tasks.cycle_score": {"queue": ALWEB_QUEUE_SCORING},
    "campaigns.tasks.cycle_score_chunk": {"queue": ALWEB_QUEUE_SCORING},
    # Item features after an import: the scoring workers' kind of work (a network over items), shared the same way.
    "campaigns.tasks.project_features": {"queue": ALWEB_QUEUE_SCORING},
    "campaigns.tasks.project_features_chunk": {"queue": ALWEB_QUEUE_SCORING},
    "campaigns.tasks.cycle_sync": {"queue": "io"},
    "campaigns.tasks.cycle_resync": {"queue": "io"},
    "campaigns.tasks.project_pull": {"queue": "io"},
    "campaigns.tasks.project_overlap": {"queue": "io"},
    "campaigns.tasks.pull_all_projects": {"queue": "io"},
}
# Time limits per stage (seconds; the hard limit kills the process ALWEB_TIME_LIMIT_GRACE later). A chunk is small,
# so a stuck one is noticed in minutes, not after the hours a training may take. Keep CELERY_VISIBILITY_TIMEOUT
# above the longest hard limit: Redis redelivers an unacknowledged task after it, even to a healthy worker.
ALWEB_TIME_LIMIT_GRACE = env.int("ALWEB_TIME_LIMIT_GRACE", default=300)
ALWEB_TIME_LIMIT_TRAIN = env.int("ALWEB_TIME_LIMIT_TRAIN", default=CELERY_TASK_SOFT_TIME_LIMIT)
ALWEB_TIME_LIMIT_SYNC = env.int("ALWEB_TIME_LIMIT_SYNC", default=3600)
ALWEB_STAGE_TIME_LIMITS = {
    "campaigns.tasks.cycle_train": ALWEB_TIME_LIMIT_TRAIN,
    "campaigns.tasks.cycle_train_closing": ALWEB_TIME_LIMIT_TRAIN,
    "campaigns.tasks.cycle_score": env.int("ALWEB_TIME_LIMIT_SCORE_PLAN", default=600),
    "campaigns.tasks.cycle_score_chunk": env.int("ALWEB_TIME_LIMIT_SCORE_CHUNK", default=900),
    "campaigns.tasks.project_features": env.int("ALWEB_TIME_LIMIT_SCORE_PLAN", default=600),
    "campaigns.tasks.project_features_chunk": env.int("ALWEB_TIME_LIMIT_SCORE_CHUNK", default=900),
    "campaigns.tasks.cycle_select": env.int("ALWEB_TIME_LIMIT_SELECT", default=900),
    "campaigns.tasks.cycle_sync": ALWEB_TIME_LIMIT_SYNC,
    "campaigns.tasks.cycle_resync": ALWEB_TIME_LIMIT_SYNC,
    "campaigns.tasks.project_pull": env.int("ALWEB_TIME_LIMIT_PULL", default=1800),
    "campaigns.tasks.label_quality": ALWEB_TIME_LIMIT_TRAIN,
    "campaigns.tasks.review_sync": ALWEB_TIME_LIMIT_SYNC,
}
CELERY_TASK_ANNOTATIONS = {
    name: {"soft_time_limit": limit, "time_limit": limit + ALWEB_TIME_LIMIT_GRACE}
    for name, limit in ALWEB_STAGE_TIME_LIMITS.items()
}

# MLflow: the tracking URI is always explicit (FACTS.md: an old ./mlruns silently changes the default).
MLFLOW_TRACKING_URI = env.str("MLFLOW_TRACKING_URI", default=f"sqlite:///{VAR_DIR / 'mlflow.db'}")
MLFLOW_ARTIFACT_ROOT = env.str("MLFLOW_ARTIFACT_ROOT", default=str(VAR_DIR / "mlartifacts"))

# Label Studio: the server alweb syncs to by default (a project may name its own).
LABEL_STUDIO_URL = env.str("LABEL_STUDIO_URL", default="http://127.0.0.1:8080")
LABEL_STUDIO_API_KEY = env.str("LABEL_STUDIO_API_KEY", default="")
# The Label Studio servers a project may name in `ls_url` (comma-separated). alweb's workers call that URL, so an
# open list would let any member make the server send requests to a host of their choosing (SSRF). The server's own
# LABEL_STUDIO_URL is always allowed.
ALWEB_LS_ALLOWED_URLS: list[str] = env.list("ALWEB_LS_ALLOWED_URLS", default=[LABEL_STUDIO_URL])

# Predictions for new data (POST /api/projects/{id}/predict/): items per request and request body bytes (larger is
# a 413 naming the limit). An image URL is fetched only from the origins listed here (comma-separated, e.g.
# https://images.example.com): alweb's web process makes the request, so an open list would let any member make
# the server call a host of their choosing (SSRF), as for ALWEB_LS_ALLOWED_URLS. Empty: image URLs are refused.
ALWEB_PREDICT_MAX_ITEMS = env.int("ALWEB_PREDICT_MAX_ITEMS", default=64)
ALWEB_PREDICT_MAX_BYTES = env.int("ALWEB_PREDICT_MAX_BYTES", default=16 * 1024**2)
ALWEB_PREDICT_URL_ORIGINS: list[str] = env.list("ALWEB_PREDICT_URL_ORIGINS", default=[])
ALWEB_PREDICT_URL_TIMEOUT = env.float("ALWEB_PREDICT_URL_TIMEOUT", default=10.0)

# Item ingest.
ALWEB_DEFAULT_SPLIT_RATIOS = {"train": 0.0, "valid": 0.1, "test": 0.1, "pool": 0.8}
ALWEB_IMPORT_BATCH_SIZE = env.int("ALWEB_IMPORT_BATCH_SIZE", default=10_000)
ALWEB_IMPORT_MAX_FIELD_CHARS = env.int("ALWEB_IMPORT_MAX_FIELD_CHARS", default=100_000)
ALWEB_IMPORT_MAX_ZIP_BYTES = env.int("ALWEB_IMPORT_MAX_ZIP_BYTES", default=4 * 1024**3)
ALWEB_IMPORT_MAX_IMAGE_PIXELS = env.int("ALWEB_IMPORT_MAX_IMAGE_PIXELS", default=100_000_000)
# The largest request body alweb accepts (an item import's upload): larger is a 413 naming the limit, answered from
# the Content-Length header before anything is read (alweb.middleware.UploadLimitMiddleware).
ALWEB_MAX_UPLOAD_BYTES = env.int("ALWEB_MAX_UPLOAD_BYTES", default=1024**3)
# Uploaded files over 2.5 MiB stream to a temporary file (the import copies it to its own in chunks), never to
# memory; form fields and other bodies over 2.5 MiB are refused (JSON bodies are capped at 1 MiB by the API's
# parser). Django's defaults, stated: the upload limit above relies on them.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("ALWEB_LOG_LEVEL", default="INFO")},
    # One line per HTTP request to Label Studio drowns everything else.
    "loggers": {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}},
}
