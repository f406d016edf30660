#!/usr/bin/env bash
# Run the whole suite against the machine's PostgreSQL and Redis, a private Dovecot, a real
# Celery worker and Debian's Chromium. Extra arguments go to pytest.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/services.sh || exit 1

export DEBUG=false
# DEBUG is off, as in production: the secret check (provider/checks.py) wants a long key.
export SECRET_KEY=test-only-key-3f9c1b7e5a2d4c8e9b0a6f1d2e3c4b5a6978
export DATABASE_URL=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postamt}
export REDIS_URL=${TEST_REDIS_URL:-redis://127.0.0.1:6379/15}
export CACHE_URL=${TEST_CACHE_URL:-redis://127.0.0.1:6379/14}
export POSTAMT_MASTER_PASSWORD=test-master-password
export POSTAMT_DOVEADM_API_KEY=test-doveadm-api-key
export EMAIL_BACKEND=django.core.mail.backends.locmem.EmailBackend
export SECURE_COOKIES=false
# The live servers of the browser tests speak plain HTTP, and nothing runs collectstatic.
export SECURE_SSL_REDIRECT=false SECURE_HSTS_SECONDS=0 STATIC_MANIFEST=false
export LOG_FORMAT=text

.venv/bin/python -m pytest "$@"
status=$?
# 5: no test was selected (e.g. a filter matched nothing). Not a failure of the code.
if [ $status -eq 5 ]; then exit 0; fi
exit $status
