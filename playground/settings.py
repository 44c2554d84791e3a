"""Settings: everything that differs between a laptop and a cluster comes from the environment.

Embedded defaults: SQLite, the in-memory channel layer and the agent inside the web process.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
from datetime import timedelta
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("SYSOPS_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)


def _env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name, "1" if default else "0")
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _secret_key() -> str:
    """The key from the environment, else one generated once and kept in var/ (mode 0600)."""
    if key := os.environ.get("SECRET_KEY"):
        return key
    path = VAR_DIR / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        key = secrets.token_urlsafe(50)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key)
        return key


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


SECRET_KEY = _secret_key()
DEBUG = _env_bool("DEBUG")

# The address the server listens on. Off loopback, starting or cancelling a run needs a sign-in.
LISTEN_HOST = os.environ.get("LISTEN_HOST", "127.0.0.1")
SYSOPS_REQUIRE_LOGIN = _env_bool("SYSOPS_REQUIRE_LOGIN", not _is_loopback(LISTEN_HOST))

ALLOWED_HOSTS = [
    h.strip()
    for h in os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]").split(",")
    if h.strip()
]
if LISTEN_HOST not in ALLOWED_HOSTS and LISTEN_HOST not in {"0.0.0.0", "::"}:
    ALLOWED_HOSTS.append(LISTEN_HOST)
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]

# Served behind HTTPS (a TLS-terminating proxy that sets X-Forwarded-Proto): cookies only over
# HTTPS, HSTS, plain HTTP redirected. `manage.py check --deploy` is clean in this mode.
SYSOPS_HTTPS = _env_bool("SYSOPS_HTTPS")
if SYSOPS_HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("SYSOPS_HSTS_SECONDS", 365 * 24 * 3600))
    # Subdomains and the browsers' preload list concern the whole domain, not this site:
    # the operator decides them, so their reminders are silenced here.
    SILENCED_SYSTEM_CHECKS = ["security.W005", "security.W021"]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "axes",
    "sysops",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "playground.security.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it turns a lock-out into the page below.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "playground.urls"
ASGI_APPLICATION = "playground.asgi.application"

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
                "sysops.context_processors.playground",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        conn_max_age=0,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Runners write from their own processes: wait for the lock rather than fail, and keep a
    # file-based test database (ChannelsLiveServerTestCase and runner processes share it).
    # synchronous=NORMAL: in WAL mode a commit no longer waits for an fsync (28-135 ms each on a
    # busy host, measured); a power cut may lose the last commits, never the database.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test_db.sqlite3")}

# What one request may make the server hold (playground/http_limits.py): a body over the cap is
# refused with 413 before it is read; the headers must arrive within the timeout of the request
# line, and the body may not stall longer than that. An endpoint that takes more (the bundle
# import) gets its own cap by path prefix (REQUEST_BODY_MAX_BYTES_BY_PATH, below).
SYSOPS_REQUEST_BODY_MAX_BYTES = int(os.environ.get("SYSOPS_REQUEST_BODY_MAX_BYTES", 1 << 20))
SYSOPS_REQUEST_TIMEOUT_S = float(os.environ.get("SYSOPS_REQUEST_TIMEOUT_S", 30))
DATA_UPLOAD_MAX_MEMORY_SIZE = SYSOPS_REQUEST_BODY_MAX_BYTES

# Live viewers of one run per server process; beyond it a viewer is told to reload later.
SYSOPS_MAX_VIEWERS_PER_RUN = int(os.environ.get("SYSOPS_MAX_VIEWERS_PER_RUN", 200))
# A websocket viewer whose unread frames pile up past this in the server is disconnected.
SYSOPS_WS_BUFFER_MAX_BYTES = int(os.environ.get("SYSOPS_WS_BUFFER_MAX_BYTES", 4 << 20))

REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "capacity": 1000},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "sysops.layers.SharedMessageLayer"}}

# Embedded mode: the agent runs inside the web process unless a standalone agent is used.
SYSOPS_EMBEDDED_AGENT = _env_bool("SYSOPS_EMBEDDED_AGENT", not REDIS_URL)
SYSOPS_MAX_RUNNING = int(os.environ.get("SYSOPS_MAX_RUNNING", os.cpu_count() or 1))
SYSOPS_ALLOW_UNSANDBOXED = _env_bool("SYSOPS_ALLOW_UNSANDBOXED")
# The nice value a run's runner and sandbox run at (where the agent may set it: as root), ahead
# of the web server and the browsers watching: measured on 2 cores, a run's first figure waited
# 8-25 ms at a time for a CPU taken by them, and a timing run is meant to have the CPUs.
SYSOPS_RUN_NICE = int(os.environ.get("SYSOPS_RUN_NICE", -5))
# Fair use: runs one person (a user; the client address where there are no users) may have
# waiting, and runs waiting in all. A run over either is refused with the reason, and 429.
SYSOPS_QUEUED_PER_USER = int(os.environ.get("SYSOPS_QUEUED_PER_USER", 5))
SYSOPS_QUEUE_MAX = int(os.environ.get("SYSOPS_QUEUE_MAX", 100))
# Workers on several hosts: the name an agent registers and claims pinned runs for
# (Run.pinned_host), stamped on its runs' host fingerprints; its heartbeat period, and the
# silence after which it counts as gone (another agent then finishes its runs as failed).
SYSOPS_HOST_NAME = os.environ.get("SYSOPS_HOST_NAME", "").strip() or socket.gethostname()
SYSOPS_AGENT_HEARTBEAT_S = float(os.environ.get("SYSOPS_AGENT_HEARTBEAT_S", 5))
SYSOPS_AGENT_EXPIRY_S = float(os.environ.get("SYSOPS_AGENT_EXPIRY_S", 3 * SYSOPS_AGENT_HEARTBEAT_S))
# Development switch: run where the host cannot give a run its memory, pids and cpu cgroup;
# every such run is marked UNBOUNDED. Off, such runs are refused with the reason.
SYSOPS_ALLOW_UNBOUNDED = _env_bool("SYSOPS_ALLOW_UNBOUNDED")
# CPU seconds per wall second a run may use (cgroup cpu quota): 1.0 is one core.
SYSOPS_RUN_CPUS = float(os.environ.get("SYSOPS_RUN_CPUS", "1"))
SYSOPS_TEST_EXPERIMENTS = _env_bool("SYSOPS_TEST_EXPERIMENTS")
SYSOPS_OUTPUT_CAP_BYTES = int(os.environ.get("SYSOPS_OUTPUT_CAP_BYTES", 16 << 20))
# Worker events per pass, as well as bytes: many tiny events cost the runner per event.
SYSOPS_MAX_EVENTS = int(os.environ.get("SYSOPS_MAX_EVENTS", 500_000))
SYSOPS_TRACE_MAX_EVENTS = int(os.environ.get("SYSOPS_TRACE_MAX_EVENTS", 1_000_000))
SYSOPS_RUN_DIR = Path(os.environ.get("SYSOPS_RUN_DIR", "/tmp"))
# The largest run or comparison bundle an import accepts (sysops/bundle.py); the upload view
# reads no more than this of the body, whatever a global request cap allows elsewhere.
SYSOPS_BUNDLE_MAX_BYTES = int(os.environ.get("SYSOPS_BUNDLE_MAX_BYTES", 5 << 20))
# Up to twice that reaches the import view, which refuses an oversized bundle with its own page;
# beyond, the server refuses the body unread.
REQUEST_BODY_MAX_BYTES_BY_PATH = {"/runs/import/": 2 * SYSOPS_BUNDLE_MAX_BYTES}
# Runners publish their live batches to the agent here; one that outlives its agent (the web
# server restarted) connects again, and the new agent adopts its run.
SYSOPS_AGENT_SOCKET = VAR_DIR / "agent.sock"
# Per-run scratch filesystems of experiments about disks (file-io): on the disk that holds var/,
# never on a tmpfs (see sysops/agent/scratch.py).
SYSOPS_SCRATCH_DIR = Path(os.environ.get("SYSOPS_SCRATCH_DIR", VAR_DIR / "scratch"))

# Ceilings on the sandbox limits an experiment may raise for its own runs (Experiment.limits):
# the runner clamps every request to these, and forms refuse parameters that would need more.
SYSOPS_LIMITS_MAX_MEMORY_BYTES = int(os.environ.get("SYSOPS_LIMITS_MAX_MEMORY_BYTES", 2 << 30))
SYSOPS_LIMITS_MAX_ADDRESS_SPACE_BYTES = int(
    os.environ.get("SYSOPS_LIMITS_MAX_ADDRESS_SPACE_BYTES", 4 << 30)
)
SYSOPS_LIMITS_MAX_NOFILE = int(os.environ.get("SYSOPS_LIMITS_MAX_NOFILE", 65_536))
SYSOPS_LIMITS_MAX_NPROC = int(os.environ.get("SYSOPS_LIMITS_MAX_NPROC", 256))
SYSOPS_LIMITS_MAX_FILE_SIZE_BYTES = int(
    os.environ.get("SYSOPS_LIMITS_MAX_FILE_SIZE_BYTES", 1 << 30)
)
SYSOPS_LIMITS_MAX_WALL_S = float(os.environ.get("SYSOPS_LIMITS_MAX_WALL_S", 600))

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
AUTHENTICATION_BACKENDS = [
    "sysops.login_throttle.LoginThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Sign-in throttle (django-axes): this many failures from one address, or for one user name,
# lock that address or that name out for the cool-off; a success clears the count.
AXES_FAILURE_LIMIT = int(os.environ.get("SYSOPS_LOGIN_FAILURE_LIMIT", 5))
AXES_COOLOFF_TIME = timedelta(seconds=float(os.environ.get("SYSOPS_LOGIN_COOLOFF_S", 900)))
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        name: {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")}
        for name in ("sysops", "playground")
    },
}
