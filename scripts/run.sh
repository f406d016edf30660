#!/usr/bin/env bash
# Run Postamt locally: Redis (unless one runs), a private Dovecot, a Celery worker with beat and
# the web server. Ctrl-C stops all of it. Settings come from .env (made by scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
set -a; . ./.env; set +a
export EMAIL_BACKEND=${EMAIL_BACKEND:-django.core.mail.backends.console.EmailBackend}
py=.venv/bin/python

trap 'trap - INT TERM EXIT; echo; echo "Stopping Postamt"; kill 0 2>/dev/null; wait' INT TERM EXIT

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "Starting Redis on 127.0.0.1:6379"
  redis-server --bind 127.0.0.1 --port 6379 --save "" --appendonly no --loglevel warning &
  for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

$py manage.py migrate --noinput -v 0
$py manage.py seed_demo
# The database must be ready before Dovecot's auth starts: migrate first.
$py manage.py dovecot run &
.venv/bin/celery -A provider worker --beat --loglevel INFO --concurrency 2 -Q default,poll,backup \
  --schedule var/celerybeat-schedule &
$py manage.py runserver 127.0.0.1:8000 &
sleep 2
$py manage.py poll_usage  # the first measurement now, not at the end of the first interval
echo
echo "Postamt runs on http://127.0.0.1:8000 (log in as admin with the password above). Ctrl-C stops it."
wait -n
