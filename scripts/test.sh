#!/usr/bin/env bash
# Run the whole suite against the machine's PostgreSQL and Redis, a private Dovecot, a real
# Celery worker and Debian's Chromium. Extra arguments go to pytest.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/services.sh || exit 1

export DEBUG=false
export SECRET_KEY=test-secret-key-not-for-production
export DATABASE_URL=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postamt}
export REDIS_URL=${TEST_REDIS_URL:-redis://127.0.0.1:6379/15}
export CACHE_URL=${TEST_CACHE_URL:-redis://127.0.0.1:6379/14}
export POSTAMT_MASTER_PASSWORD=test-master-password
export POSTAMT_DOVEADM_API_KEY=test-doveadm-api-key
export EMAIL_BACKEND=django.core.mail.backends.locmem.EmailBackend
export SECURE_COOKIES=false

.venv/bin/python -m pytest "$@"
status=$?
# 5: no test was selected (e.g. a filter matched nothing). Not a failure of the code.
if [ $status -eq 5 ]; then exit 0; fi
exit $status
