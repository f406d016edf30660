"""Postamt settings: one module, every deployment difference comes from the environment.

Secrets may also be given as ``NAME_FILE`` pointing at a file (Docker/Kubernetes secrets).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import environ
from csp.constants import NONCE, NONE, SELF, UNSAFE_INLINE
from django.utils.translation import gettext_lazy as _

from provider.secrets import secret

BASE_DIR = Path(__file__).resolve().parent.parent
# Templates, static files and translations ship inside the package, so `pip install .` has them.
PROJECT_DIR = Path(__file__).resolve().parent
VAR_DIR = Path(os.environ.get("POSTAMT_VAR_DIR", BASE_DIR / "var"))
# This checkout's name on the machine, from its path: what two checkouts must not share
# (Dovecot's files, its process titles) is told apart by it.
CHECKOUT_ID = "{}-{}".format(
    re.sub(r"[^A-Za-z0-9_.-]+", "-", BASE_DIR.name).strip("-.") or "postamt",
    hashlib.sha256(str(BASE_DIR).encode()).hexdigest()[:8],
)

env = environ.Env()


def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


environ.Env.read_env(BASE_DIR / ".env", overwrite=False)


DEBUG = env.bool("DEBUG", default=False)
# Not every process holds it (Dovecot and beat do not): the start-up checks (provider/checks.py)
# require it of those that do, and Django refuses to use an empty one.
SECRET_KEY = secret("SECRET_KEY")
if not SECRET_KEY and DEBUG:
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    # Second factors for staff: authenticator apps (TOTP), recovery codes, security keys.
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "django_otp_webauthn",
    # Domain apps: models, services, selectors, tasks, commands.
    "accounts",
    "mailboxes",
    "backups",
    "webhooks",
    # Front doors: the pages of each audience, and what they share.
    "web",
    "staff",
    "portal",
    "api",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    # Where mail programs fetch their settings (autoconfig, autodiscover, Apple profiles).
    "autoconfig",
]

MIDDLEWARE = [
    # autoconfig.<domain> and autodiscover.<domain> for every hosted domain (see its docstring).
    "autoconfig.middleware.DiscoveryHostMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files from the web process itself (gunicorn has no static server): compressed,
    # with far-future caching of the hashed names collectstatic writes.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # request.user.is_verified(): whether this session passed a second factor.
    "django_otp.middleware.OTPMiddleware",
    "web.middleware.CustomerLanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "provider.urls"
WSGI_APPLICATION = "provider.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [PROJECT_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
            ],
        },
    }
]

# SQLite needs no setup; production and the test suite use PostgreSQL via DATABASE_URL.
DATABASES = {
    "default": env.db_url_config(
        secret("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'postamt.sqlite3'}"
    ),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Dovecot reads the same file while we write: WAL lets readers and one writer coexist.
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].setdefault("init_command", "PRAGMA journal_mode=WAL;")
    DATABASES["default"]["OPTIONS"].setdefault("transaction_mode", "IMMEDIATE")
    # Writers queue for the one write lock: the web, beat and the workers' backups wait their
    # turn for this many seconds (Python's default, 5, is shorter than a busy backup's commits).
    DATABASES["default"]["OPTIONS"].setdefault("timeout", 30)
    # The file holds password hashes and sessions: its folder is its owner's alone.
    Path(DATABASES["default"]["NAME"]).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "accounts:login"
# Customers log in with their email address; staff with their user name or email.
AUTHENTICATION_BACKENDS = ["accounts.backends.EmailOrUsernameBackend"]
# The shortest password, of a mailbox (mailboxes.passwords) and of a login to these pages
# alike: one rule, so no page states another.
MAILBOX_MIN_PASSWORD_LENGTH = env.int("MAILBOX_MIN_PASSWORD_LENGTH", default=10)
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": MAILBOX_MIN_PASSWORD_LENGTH},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Failed logins per account and IP, and per IP, within the window (seconds) before a lockout.
# Reverse proxies in front of Postamt (addresses or networks): only from these is
# X-Forwarded-For believed, for the login throttle and the audit log's addresses.
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
LOGIN_FAILURES_PER_ACCOUNT = env.int("LOGIN_FAILURES_PER_ACCOUNT", default=5)
LOGIN_FAILURES_PER_IP = env.int("LOGIN_FAILURES_PER_IP", default=30)
LOGIN_FAILURES_PER_ACCOUNT_ANYWHERE = env.int("LOGIN_FAILURES_PER_ACCOUNT_ANYWHERE", default=50)
LOGIN_FAILURE_WINDOW = env.int("LOGIN_FAILURE_WINDOW", default=15 * 60)
PASSWORD_RESETS_PER_ADDRESS = env.int("PASSWORD_RESETS_PER_ADDRESS", default=3)
PASSWORD_RESETS_PER_IP = env.int("PASSWORD_RESETS_PER_IP", default=10)
PASSWORD_RESET_WINDOW = env.int("PASSWORD_RESET_WINDOW", default=60 * 60)
# Second factors (required for every staff user, web.access.staff_required). Authenticator apps
# show this name beside the code; security keys are bound to the site's host name (WebAuthn
# refuses IP addresses: use a name such as localhost, not 127.0.0.1).
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default="Postamt")
OTP_WEBAUTHN_RP_NAME = OTP_TOTP_ISSUER
_site = urlsplit(SITE_URL)
_key_host = _site.hostname or "localhost"
if _is_ip_address(_key_host):  # e.g. the default 127.0.0.1: keys work on localhost instead
    _key_host = "localhost"
OTP_WEBAUTHN_RP_ID = env.str("OTP_WEBAUTHN_RP_ID", default=_key_host)
OTP_WEBAUTHN_ALLOWED_ORIGINS = env.list(
    "OTP_WEBAUTHN_ALLOWED_ORIGINS",
    default=[f"{_site.scheme}://{_key_host}" + (f":{_site.port}" if _site.port else "")],
)
# A key is a second factor after the password, never a login of its own: the password step
# is where logins are throttled.
OTP_WEBAUTHN_ALLOW_PASSWORDLESS_LOGIN = False
OTP_WEBAUTHN_EXCEPTION_LOGGER_NAME = "web.twofactor"
# Recovery codes made at enrolment (each works once).
POSTAMT_RECOVERY_CODES = 10

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]

LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("de", _("German"))]
LOCALE_PATHS = [PROJECT_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [PROJECT_DIR / "static"]
# Production serves what collectstatic wrote: names with a content hash (cached for a year by
# browsers) and gzip/brotli copies. That needs collectstatic first, so DEBUG (``make run``)
# and the test suite (STATIC_MANIFEST=false in scripts/test.sh) use the files as they are.
STATIC_MANIFEST = env.bool("STATIC_MANIFEST", default=not DEBUG)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if STATIC_MANIFEST
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# --- HTTPS, cookies, sessions ---------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"
# A login lasts this long (seconds; counted from the last change of the session, e.g. the
# login itself), and ends when the browser closes.
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=8 * 3600)
SESSION_EXPIRE_AT_BROWSER_CLOSE = env.bool("SESSION_EXPIRE_AT_BROWSER_CLOSE", default=True)
# Plain HTTP is answered with a redirect to HTTPS, except for load balancers' health probes and
# Thunderbird's discovery, which asks http://autoconfig.<domain>/ when HTTPS fails.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [
    r"^healthz$",
    r"^mail/config-v1\.1\.xml$",
    r"^\.well-known/autoconfig/mail/config-v1\.1\.xml$",
]
# Browsers remember to use HTTPS only for this long (seconds); 0 sends no HSTS header.
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
# Asking browsers' preload lists to carry the domain is the domain owner's decision, for
# every name under it: off unless asked for (and then Django's reminder is not needed).
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
# Behind a reverse proxy that ends TLS: the header it sets to "https" for HTTPS requests
# (e.g. X-Forwarded-Proto). Only where clients cannot reach Postamt except through that proxy,
# and the proxy overwrites the header: otherwise anyone could claim HTTPS.
_proxy_ssl_header = env.str("SECURE_PROXY_SSL_HEADER", default="").strip()
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_" + _proxy_ssl_header.upper().replace("-", "_"), "https") if _proxy_ssl_header else None
)

# Content security policy (django-csp): scripts and styles from our own static files only
# (htmx included); an inline script needs the request's nonce. Inline style *attributes* are
# allowed (style-src-attr): the usage bars set their width with style="width: N%", which
# carries no script and no selector; <style> elements and style sheets stay 'self' only.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF],
        "style-src-elem": [SELF],
        "style-src-attr": [UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env.str("EMAIL_HOST", default="127.0.0.1")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = secret("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Postamt <postamt@localhost>")
# For EMAIL_BACKEND=django.core.mail.backends.filebased.EmailBackend (``make run``).
EMAIL_FILE_PATH = env.str("EMAIL_FILE_PATH", default=str(VAR_DIR / "mail"))

# --- Celery and the cache -----------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
# Shared by every web process (login throttling). By default in REDIS_URL's database, beside
# Celery's keys: an instance's cache is then as much its own as its queues, whatever database
# it was given. A CACHE_URL of its own is needed only to flush the cache (tests do).
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": env.str("CACHE_URL", default=REDIS_URL),
        "KEY_PREFIX": "postamt",
    }
}
# The broker: Redis (the default, REDIS_URL) or RabbitMQ (amqp://). Results, the cache and
# beat's lock stay on Redis whichever it is (docs/operations.md, "Celery: brokers, workers
# and beat").
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
BROKER_IS_REDIS = urlsplit(CELERY_BROKER_URL).scheme in {"redis", "rediss", "sentinel"}
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=REDIS_URL)
# Redis gives an unacked task to another worker after the visibility timeout: it must outlast
# every countdown, ETA and time limit (provider/celery_checks.py refuses to start otherwise).
CELERY_VISIBILITY_TIMEOUT = env.int("CELERY_VISIBILITY_TIMEOUT", default=6 * 3600)
# RabbitMQ's equivalent, set on the server (rabbitmq.conf ``consumer_timeout``, in ms there):
# a delivery unacked for longer closes the worker's channel. Say here what the server has.
RABBITMQ_CONSUMER_TIMEOUT = env.int("RABBITMQ_CONSUMER_TIMEOUT", default=30 * 60)
# A request that sends a task must not hang on a broker that is down (enqueue_after_commit);
# for amqp:// that is Celery's broker_connection_timeout (4 s).
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT, "socket_connect_timeout": 3}
    if BROKER_IS_REDIS
    else {}
)
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
# A test that makes Redis redeliver on purpose (a timeout of seconds) says so with
# SILENCED_SYSTEM_CHECKS=postamt.E010; nothing else should.
SILENCED_SYSTEM_CHECKS += env.list("SILENCED_SYSTEM_CHECKS", default=[])
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=600)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=540)
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TIMEZONE = TIME_ZONE
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# One beat only: celery-redbeat keeps the schedule in Redis under a lock that beat renews
# every loop; a second beat waits for it and takes over once it lapses (the first died).
CELERY_BEAT_SCHEDULER = "redbeat.RedBeatScheduler"
CELERY_REDBEAT_REDIS_URL = env.str("CELERY_REDBEAT_REDIS_URL", default=REDIS_URL)
CELERY_REDBEAT_REDIS_OPTIONS = {"socket_connect_timeout": 3}
CELERY_REDBEAT_KEY_PREFIX = env.str("CELERY_REDBEAT_KEY_PREFIX", default="postamt:beat:")
CELERY_BEAT_MAX_LOOP_INTERVAL = env.int("CELERY_BEAT_MAX_LOOP_INTERVAL", default=10)
CELERY_REDBEAT_LOCK_TIMEOUT = env.int("CELERY_REDBEAT_LOCK_TIMEOUT", default=60)
# A job (backup, restore, import) whose worker died is run again, at most this many
# times in all; then it ends failed, with the reason for staff.
JOB_MAX_ATTEMPTS = env.int("JOB_MAX_ATTEMPTS", default=5)
# An import without progress for this long lost its worker and may be taken over.
IMPORT_STALE_SECONDS = env.int("IMPORT_STALE_SECONDS", default=5 * 60)

# --- Mail servers -------------------------------------------------------------------------
# The master password lets workers log in as any mailbox (``user*master``). It never goes
# into the database: each MailServer names the environment variable that holds it.
POSTAMT_MASTER_USER = env.str("POSTAMT_MASTER_USER", default="postamt")
POSTAMT_MASTER_PASSWORD = secret("POSTAMT_MASTER_PASSWORD")
# Dovecot's HTTP API lets polls list the users Dovecot knows (drift in both directions).
POSTAMT_DOVEADM_API_KEY = secret("POSTAMT_DOVEADM_API_KEY")
# Workers speak TLS to every mail server and check its certificate and host name against this
# CA file (PEM); empty: the system's CAs, which is right for Let's Encrypt certificates.
POSTAMT_MAIL_CA_FILE = env.str("POSTAMT_MAIL_CA_FILE", default="")

# The private Dovecot instance that ``make run`` and the test suite start.
DOVECOT = {
    "SERVER_NAME": env.str("DOVECOT_SERVER_NAME", default="local"),
    # One per checkout, outside it: mail processes run as the mail user, who may not enter
    # /root or the checkout's private var/.
    "ROOT": Path(env.str("DOVECOT_ROOT", default=f"/var/lib/postamt/{CHECKOUT_ID}")),
    # Dovecot's processes are titled "dovecot-<instance name>/imap" and so on.
    "INSTANCE_NAME": env.str("DOVECOT_INSTANCE_NAME", default=f"postamt-{CHECKOUT_ID}"),
    "BINARY": env.str("DOVECOT_BINARY", default="/usr/sbin/dovecot"),
    "LISTEN": env.str("DOVECOT_LISTEN", default="127.0.0.1"),
    # Where workers reach it, when that is not the listen address (e.g. "*" in a container).
    "HOST": env.str("DOVECOT_HOST", default=""),
    "IMAP_PORT": env.int("DOVECOT_IMAP_PORT", default=10143),  # STARTTLS
    "POP3_PORT": env.int("DOVECOT_POP3_PORT", default=10110),  # STARTTLS
    "IMAPS_PORT": env.int("DOVECOT_IMAPS_PORT", default=10993),
    "POP3S_PORT": env.int("DOVECOT_POP3S_PORT", default=10995),
    "LMTP_PORT": env.int("DOVECOT_LMTP_PORT", default=10024),
    "DOVEADM_PORT": env.int("DOVECOT_DOVEADM_PORT", default=10808),
    "MAIL_USER": env.str("DOVECOT_MAIL_USER", default="mail"),
    # On PostgreSQL, Dovecot's own role (manage.py dovecot_db_role): it reads dovecot_users
    # and records last logins, nothing else. Unset: Dovecot connects like Postamt does.
    "DATABASE": (
        env.db_url_config(secret("DOVECOT_DATABASE_URL"))
        if secret("DOVECOT_DATABASE_URL")
        else None
    ),
    # "backend" stores mail; "proxy" is the one public address in front of the mail servers
    # (docs/operations.md); it verifies the mail servers' certificates against
    # POSTAMT_MAIL_CA_FILE.
    "ROLE": env.str("DOVECOT_ROLE", default="backend"),
    # Its certificate (full chain) and private key, PEM: Let's Encrypt's fullchain.pem and
    # privkey.pem in production; scripts/setup.sh makes a private CA's under var/tls/.
    "SSL_CERT": env.str("DOVECOT_SSL_CERT", default=""),
    "SSL_KEY": env.str("DOVECOT_SSL_KEY", default=""),
}

# "json": one JSON object per line (provider/logs.py), for log collectors; "text" for people.
LOG_FORMAT = env.str("LOG_FORMAT", default="text" if DEBUG else "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "provider.logs.JsonFormatter"},
        "text": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "text",
        }
    },
    # Django's loggers (django.request: the 500s) reach this handler through the root.
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

# --- Usage polling ------------------------------------------------------------------------
POSTAMT_POLL_INTERVAL = env.int("POSTAMT_POLL_INTERVAL", default=15 * 60)  # seconds
POSTAMT_POLL_CHUNK = env.int("POSTAMT_POLL_CHUNK", default=200)  # mailboxes per DB transaction
# doveadm HTTP API requests a poll of one server sends at once, one per user mask: each is a
# doveadm process on the mail server, so about its number of cores (2 is right for the 2-core
# servers we test on; 1 sends one request for every user).
POSTAMT_POLL_DOVEADM_REQUESTS = env.int("POSTAMT_POLL_DOVEADM_REQUESTS", default=2)
POSTAMT_REFRESH_MIN_INTERVAL = env.int("POSTAMT_REFRESH_MIN_INTERVAL", default=60)  # seconds
# A mailbox move waits this long after switching servers before it catches up with the old
# one, so that a delivery the proxy routed just before the switch has landed (docs/operations.md).
POSTAMT_MOVE_SETTLE_SECONDS = env.float("POSTAMT_MOVE_SETTLE_SECONDS", default=5.0)
POSTAMT_HISTORY_FULL_DAYS = env.int("POSTAMT_HISTORY_FULL_DAYS", default=7)
POSTAMT_HISTORY_HOURLY_DAYS = env.int("POSTAMT_HISTORY_HOURLY_DAYS", default=90)

# --- Quota warnings -----------------------------------------------------------------------
# A warning re-arms only when usage falls this many points below its threshold.
POSTAMT_WARNING_HYSTERESIS = env.int("POSTAMT_WARNING_HYSTERESIS", default=5)
# While a mailbox stays at or above the top threshold, remind at most this often.
POSTAMT_WARNING_REMINDER_HOURS = env.int("POSTAMT_WARNING_REMINDER_HOURS", default=24)
# Who gets the daily digest of full mailboxes; empty: every active staff user with an email.
POSTAMT_STAFF_EMAILS = env.list("POSTAMT_STAFF_EMAILS", default=[])

# --- Customer portal ----------------------------------------------------------------------
# Plan changes customers may make without staff approval: "false" (every change waits for
# staff), "true" (any plan) or a comma-separated list of plan names. Never a change that would
# lower a mailbox's quota: those always wait for staff.
_self_service = env.str("POSTAMT_SELF_SERVICE_PLAN_CHANGES", default="false").strip()
POSTAMT_SELF_SERVICE_PLAN_CHANGES: bool | list[str] = (
    _self_service.lower() in ("true", "yes", "1", "on")
    if _self_service.lower() in ("true", "yes", "1", "on", "false", "no", "0", "off", "")
    else [name.strip() for name in _self_service.split(",") if name.strip()]
)

# --- Mail client set-up (autoconfig, autodiscover, Apple profiles, the portal's help) ------
# What mail programs are told. The host clients use: empty for each mail server's own host;
# "{server}" is replaced by the server's name (e.g. "{server}.mail.example.net").
POSTAMT_MAIL_HOSTNAME = env.str("POSTAMT_MAIL_HOSTNAME", default="")
# "ssl" (implicit TLS: each server's IMAPS and POP3S ports) or "starttls" (its IMAP and POP3
# ports): Dovecot refuses cleartext logins off loopback.
POSTAMT_MAIL_SECURITY = env.str("POSTAMT_MAIL_SECURITY", default="ssl")
# 0: the server's own port for the TLS mode above; set where clients reach another (a proxy).
POSTAMT_MAIL_IMAP_PORT = env.int("POSTAMT_MAIL_IMAP_PORT", default=0)
POSTAMT_MAIL_POP3_PORT = env.int("POSTAMT_MAIL_POP3_PORT", default=0)
# Where clients send mail (SMTP submission with the mailbox's login); empty: none is offered.
POSTAMT_SUBMISSION_HOST = env.str("POSTAMT_SUBMISSION_HOST", default="")
POSTAMT_SUBMISSION_SECURITY = env.str("POSTAMT_SUBMISSION_SECURITY", default="ssl")
POSTAMT_SUBMISSION_PORT = env.int("POSTAMT_SUBMISSION_PORT", default=0)  # 0: 465 or 587
# The provider's name in mail programs and Apple profiles.
POSTAMT_PROVIDER_NAME = env.str("POSTAMT_PROVIDER_NAME", default="Postamt")
# Requests to the discovery endpoints per client address and window (seconds).
AUTOCONFIG_REQUESTS_PER_IP = env.int("AUTOCONFIG_REQUESTS_PER_IP", default=60)
AUTOCONFIG_WINDOW = env.int("AUTOCONFIG_WINDOW", default=10 * 60)
# Apple profiles are signed when both are set (PEM files; the chain file is optional).
POSTAMT_PROFILE_SIGNING_CERT = env.str("POSTAMT_PROFILE_SIGNING_CERT", default="")
POSTAMT_PROFILE_SIGNING_KEY = env.str("POSTAMT_PROFILE_SIGNING_KEY", default="")
POSTAMT_PROFILE_SIGNING_CHAIN = env.str("POSTAMT_PROFILE_SIGNING_CHAIN", default="")
# DNS for hosters (mailboxes/dns_records.py): where autoconfig.<domain> and
# autodiscover.<domain> point (empty: SITE_URL's host), the MX hosts ("host" or "priority
# host"; empty: the mail server's public name), and the resolvers the check asks (empty: the
# system's), with their port and how long one lookup may take (seconds).
POSTAMT_DISCOVERY_HOST = env.str("POSTAMT_DISCOVERY_HOST", default="")
POSTAMT_MX_HOSTS = env.list("POSTAMT_MX_HOSTS", default=[])
POSTAMT_DNS_RESOLVERS = env.list("POSTAMT_DNS_RESOLVERS", default=[])
POSTAMT_DNS_PORT = env.int("POSTAMT_DNS_PORT", default=53)
POSTAMT_DNS_TIMEOUT = env.float("POSTAMT_DNS_TIMEOUT", default=3.0)
# How long the link in a set-up QR code works (seconds).
POSTAMT_PROFILE_LINK_MAX_AGE = env.int("POSTAMT_PROFILE_LINK_MAX_AGE", default=60 * 60)

CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "mailboxes.poll_server": {"queue": "poll"},
    "mailboxes.refresh_usage": {"queue": "poll"},
    "backups.*": {"queue": "backup"},
    # Its own workers: a slow receiver never holds up polls, backups or emails.
    "webhooks.*": {"queue": "webhooks"},
}
CELERY_BEAT_SCHEDULE = {
    "poll-usage": {
        "task": "mailboxes.poll_all",
        "schedule": POSTAMT_POLL_INTERVAL,
        "options": {"expires": POSTAMT_POLL_INTERVAL},
    },
    "quota-warning-digest": {
        "task": "mailboxes.send_staff_digest",
        "schedule": 24 * 3600,
        "options": {"expires": 3600},
    },
    "resend-pending-warnings": {
        "task": "mailboxes.send_pending_warnings",
        "schedule": 10 * 60,
        "options": {"expires": 10 * 60},
    },
    "purge-deleted-mailboxes": {
        "task": "mailboxes.purge_pending_storage",
        "schedule": 3600,
        "options": {"expires": 3600},
    },
    # Backstops of tasks sent from requests, which a broker outage may have lost.
    "refresh-pending": {
        "task": "mailboxes.refresh_pending",
        "schedule": 2 * 60,
        "options": {"expires": 2 * 60},
    },
    "resume-stalled-moves": {
        "task": "mailboxes.resume_stalled_moves",
        "schedule": 5 * 60,
        "options": {"expires": 5 * 60},
    },
    "send-pending-password-notices": {
        "task": "mailboxes.send_pending_password_notices",
        "schedule": 5 * 60,
        "options": {"expires": 5 * 60},
    },
    "send-pending-invites": {
        "task": "accounts.send_pending_invites",
        "schedule": 5 * 60,
        "options": {"expires": 5 * 60},
    },
    "resume-imports": {
        "task": "mailboxes.resume_imports",
        "schedule": 2 * 60,
        "options": {"expires": 2 * 60},
    },
    "forget-idempotency-keys": {
        "task": "api.forget_idempotency_keys",
        "schedule": 3600,
        "options": {"expires": 3600},
    },
    "thin-usage-history": {
        "task": "mailboxes.thin_usage_history",
        "schedule": 24 * 3600,
        "options": {"expires": 3600},
    },
}

# --- Webhooks (webhooks/, docs/api.md) ----------------------------------------------------
# Seconds to connect to a receiver, and to wait for each read of its answer.
WEBHOOK_CONNECT_TIMEOUT = env.float("WEBHOOK_CONNECT_TIMEOUT", default=5)
WEBHOOK_READ_TIMEOUT = env.float("WEBHOOK_READ_TIMEOUT", default=10)
# A delivery is retried (2, 4, 8 … minutes apart, at most 6 h) for this long, then failed.
WEBHOOK_RETRY_HOURS = env.int("WEBHOOK_RETRY_HOURS", default=24)
# How long a worker holds a delivery it sends; longer than the task's time limit (50 s), so
# only a dead worker's lease lapses.
WEBHOOK_LEASE_SECONDS = 90
# The sweeper sends a delivery's task again only this long after the last one was sent.
WEBHOOK_QUEUE_GRACE_SECONDS = 120
WEBHOOK_KEEP_DAYS = env.int("WEBHOOK_KEEP_DAYS", default=30)
CELERY_BEAT_SCHEDULE.update(
    {
        "webhooks-sweep": {
            "task": "webhooks.sweep",
            "schedule": 60,
            "options": {"expires": 60},
        },
        "webhooks-forget-old": {
            "task": "webhooks.forget_old",
            "schedule": 24 * 3600,
            "options": {"expires": 3600},
        },
    }
)

# --- REST API (api/, docs/api.md) ---------------------------------------------------------
API_RATE_LIMIT = env.str("API_RATE_LIMIT", default="600/min")  # per key
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["api.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["api.permissions.KeyScope"],
    "DEFAULT_THROTTLE_CLASSES": ["api.throttling.KeyRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"api_key": API_RATE_LIMIT},
    "DEFAULT_PAGINATION_CLASS": "api.pagination.IdCursorPagination",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Postamt API",
    "DESCRIPTION": "Mailboxes, domains and customers of a hoster. Sizes are bytes, times are "
    "ISO 8601 with a zone. See docs/api.md.",
    "VERSION": "1",
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "api.schema.add_error_responses",
    ],
}

# --- Backups ------------------------------------------------------------------------------
# Workers encrypt to the public key only; the private key (identity) is needed only by the
# separate restore/download step. See docs/backups.md for generating and keeping them.
BACKUP_ROOT = Path(env.str("BACKUP_ROOT", default=str(VAR_DIR / "backups")))
# Off-site: s3://bucket or s3://bucket/prefix puts backups in S3-compatible object storage
# instead of BACKUP_ROOT. The endpoint is AWS unless BACKUP_S3_ENDPOINT_URL names another
# (MinIO, Ceph, Wasabi, …); MinIO and Ceph usually want the "path" addressing style. Without
# BACKUP_S3_ACCESS_KEY_ID, boto3's own chain applies (AWS_ACCESS_KEY_ID, AWS_PROFILE, a role).
BACKUP_STORE_URL = env.str("BACKUP_STORE_URL", default="")
if BACKUP_STORE_URL and not re.fullmatch(
    r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?", BACKUP_STORE_URL
):
    raise RuntimeError("BACKUP_STORE_URL must be s3://bucket or s3://bucket/prefix, or unset")
BACKUP_S3_ENDPOINT_URL = env.str("BACKUP_S3_ENDPOINT_URL", default="")
BACKUP_S3_REGION = env.str("BACKUP_S3_REGION", default="")
BACKUP_S3_ADDRESSING_STYLE = env.str("BACKUP_S3_ADDRESSING_STYLE", default="auto")
if BACKUP_S3_ADDRESSING_STYLE not in ("auto", "path", "virtual"):
    raise RuntimeError("BACKUP_S3_ADDRESSING_STYLE must be auto, path or virtual")
BACKUP_S3_ACCESS_KEY_ID = secret("BACKUP_S3_ACCESS_KEY_ID")
BACKUP_S3_SECRET_ACCESS_KEY = secret("BACKUP_S3_SECRET_ACCESS_KEY")
BACKUP_PUBLIC_KEY = env.str("BACKUP_PUBLIC_KEY", default="")
BACKUP_IDENTITY_FILE = env.str("BACKUP_IDENTITY_FILE", default="")
# Messages fetched per IMAP round trip and committed per database transaction.
BACKUP_BATCH_MESSAGES = env.int("BACKUP_BATCH_MESSAGES", default=500)
# Messages larger than this are fetched, sealed, stored and restored in pieces, each in a
# pack of its own, so that no message is ever held whole (docs/backups.md, "Large messages").
BACKUP_STREAM_THRESHOLD = env.int("BACKUP_STREAM_THRESHOLD", default=8 * 1024 * 1024)
# A running job without a heartbeat for this long has lost its worker (kill -9, a lost host):
# it shows as interrupted, and "Back up now" or the next check resumes it. A live run beats
# every sixth of it, from a thread of its own, however long one step takes.
BACKUP_DEAD_SECONDS = env.int("BACKUP_DEAD_SECONDS", default=60)
# How often beat looks for interrupted jobs to resume.
BACKUP_RESUME_CHECK_SECONDS = 30
# A job running longer than this (since it first started) is listed for staff to look at.
BACKUP_LONG_RUNNING_MINUTES = env.int("BACKUP_LONG_RUNNING_MINUTES", default=30)
# A queued job whose task has not started for this long is sent again (its message was lost);
# also how long a repository lease lasts unless its holder renews it.
BACKUP_STALE_SECONDS = env.int("BACKUP_STALE_SECONDS", default=600)
# Restores need the identity: route them to a worker that holds it (e.g. "restore").
BACKUP_RESTORE_QUEUE = env.str("BACKUP_RESTORE_QUEUE", default="backup")
# Backups of a deleted mailbox (or one whose plan stopped backups) are kept this long.
BACKUP_KEEP_DELETED_DAYS = env.int("BACKUP_KEEP_DELETED_DAYS", default=30)
# Fair use: restores and downloads a customer's users may start per window (staff are not
# counted); one restore at a time runs into a mailbox whatever these say.
BACKUP_RESTORES_PER_CUSTOMER = env.int("BACKUP_RESTORES_PER_CUSTOMER", default=10)
BACKUP_DOWNLOADS_PER_CUSTOMER = env.int("BACKUP_DOWNLOADS_PER_CUSTOMER", default=10)
BACKUP_FAIR_USE_WINDOW = env.int("BACKUP_FAIR_USE_WINDOW", default=3600)
# Who reaches a suspended mailbox's backups: "staff" only (the customer's users get a page that
# says so), or the "customer" too. Restoring into a suspended mailbox is refused either way.
# Anything but "customer" means staff only.
BACKUP_SUSPENDED_ACCESS = env.str("BACKUP_SUSPENDED_ACCESS", default="staff")
# A download (built by a worker on BACKUP_RESTORE_QUEUE) and its link last this long; then
# beat deletes it.
BACKUP_DOWNLOAD_HOURS = env.int("BACKUP_DOWNLOAD_HOURS", default=24)
BACKUP_DOWNLOAD_EXPIRE_SECONDS = 15 * 60
BACKUP_DUE_CHECK_SECONDS = 15 * 60
# The scheduled pass asks a server without the doveadm API for its due mailboxes' folder
# states over IMAP, this many sessions at a time.
BACKUP_STATUS_CONNECTIONS = env.int("BACKUP_STATUS_CONNECTIONS", default=8)
# Every pack is read back and hashed this often (manage.py backup_check does it on demand).
BACKUP_CHECK_DAYS = env.int("BACKUP_CHECK_DAYS", default=7)
CELERY_BEAT_SCHEDULE.update(
    {
        "backups-run-due": {
            "task": "backups.run_due",
            "schedule": BACKUP_DUE_CHECK_SECONDS,
            "options": {"expires": BACKUP_DUE_CHECK_SECONDS},
        },
        "backups-resume-interrupted": {
            "task": "backups.resume_interrupted",
            "schedule": BACKUP_RESUME_CHECK_SECONDS,
            "options": {"expires": BACKUP_RESUME_CHECK_SECONDS},
        },
        "backups-prune": {
            "task": "backups.prune",
            "schedule": 24 * 3600,
            "options": {"expires": 3600},
        },
        "backups-expire-downloads": {
            "task": "backups.expire_downloads",
            "schedule": BACKUP_DOWNLOAD_EXPIRE_SECONDS,
            "options": {"expires": BACKUP_DOWNLOAD_EXPIRE_SECONDS},
        },
        "backups-check": {
            "task": "backups.check_all",
            "schedule": BACKUP_CHECK_DAYS * 24 * 3600,
            "options": {"expires": 3600},
        },
    }
)
