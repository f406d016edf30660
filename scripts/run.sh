#!/usr/bin/env bash
# Run Postamt locally: Redis (unless one runs), a private Dovecot, a Celery worker with beat and
# the web server. Ctrl-C stops all of it. Settings come from .env (made by scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# Everything this starts (database, beat schedule, backups, emails, logs) is its owner's only.
umask 077
set -a; . ./.env; set +a
# Emails are not sent but written to var/mail/, one file each (invitations, password links).
export EMAIL_BACKEND=${EMAIL_BACKEND:-django.core.mail.backends.filebased.EmailBackend}
export EMAIL_FILE_PATH=${EMAIL_FILE_PATH:-$PWD/var/mail}
py=.venv/bin/python

# Stop only what this script started: signalling the whole process group would hit make too
# (make then reports "wait: No child processes"). Ctrl-C in the terminal reaches every child
# by itself; those still running a few seconds later (or when this script alone was told to
# stop) get TERM. Ctrl-C is how it is meant to end: status 0.
children=()
running() {
  local pid
  for pid in "${children[@]}"; do kill -0 "$pid" 2>/dev/null && echo "$pid"; done
}
stop() {
  trap - INT TERM EXIT
  echo; echo "Stopping Postamt"
  for _ in $(seq 50); do [ -z "$(running)" ] && break; sleep 0.1; done
  kill -TERM $(running) 2>/dev/null || true
  wait || true
  exit "$1"
}
trap 'stop 0' INT TERM
trap 'stop $?' EXIT

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "Starting Redis on 127.0.0.1:6379"
  redis-server --bind 127.0.0.1 --port 6379 --save "" --appendonly no --loglevel warning &
  children+=($!)
  for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

$py manage.py migrate --noinput -v 0
$py manage.py seed_demo
# The database must be ready before Dovecot's auth starts: migrate first.
$py manage.py dovecot run &
children+=($!)
# One worker for every queue: the shared ones and each mail server's poll.<server> and
# backup.<server> (servers added later need a restart to be served).
queues=$($py manage.py worker_queues)
# `make run` runs as root (README) and the worker accepts JSON only: Celery's warning about
# root is expected here, so Python's warning filter drops it, for this command only (a filter
# by category cannot name Celery's: it is read before site-packages are). -q: no banner.
PYTHONWARNINGS="ignore:You're running the worker with superuser privileges" \
  .venv/bin/celery -q -A provider worker --beat --loglevel INFO --concurrency 2 \
  -Q "$queues" --without-mingle --without-gossip &
children+=($!)
# Its banner and notices go nowhere; requests and errors still show (stderr).
$py manage.py runserver --noreload 127.0.0.1:8000 >/dev/null &
children+=($!)
sleep 2
$py manage.py poll_usage  # the first measurement now, not at the end of the first interval
echo
echo "Postamt runs on http://127.0.0.1:8000 (log in as admin with the password above)."
echo "Emails it sends (invitations, password links, warnings) are written to $EMAIL_FILE_PATH/."
echo "Ctrl-C stops it."
wait -n
