#!/usr/bin/env bash
# Install what Postamt needs on a Debian machine: system packages that are missing, then a
# virtualenv with the Python dependencies. Safe to run again; it only adds what is absent.
#   scripts/setup.sh          packages to run Postamt
#   scripts/setup.sh test     plus what the test suite needs (PostgreSQL, RabbitMQ, Chromium,
#                             isync, and through the test extras moto, whose S3 server the store
#                             tests use)
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-run}

packages=(python3 python3-venv python3-dev gcc gettext redis-server
          dovecot-imapd dovecot-pop3d dovecot-lmtpd dovecot-pgsql dovecot-sqlite)
if [ "$mode" = test ]; then
  # iproute2: the network namespace of the test that logs in from another address;
  # debootstrap: the Debian 13 chroot of scripts/check-dovecot-2.4.sh (Dovecot 2.4).
  packages+=(postgresql chromium isync rabbitmq-server iproute2 debootstrap)
  # `docker-compose config` validates docker/compose.yaml (tests/test_compose.py); it needs no
  # Docker engine, which the CI machines cannot run.
  packages+=(docker-compose)
  # npm fetches axe-core for the browser tests' accessibility checks; any npm will do (some
  # machines have Node.js with npm from elsewhere, and Debian's npm would conflict with it).
  command -v npm >/dev/null || packages+=(npm)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "Missing Debian packages: ${missing[*]} (run as root, or install them)" >&2
    exit 1
  fi
  # Installing must not start the system's Dovecot or Redis: we run private instances.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  echo "Installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# From here on, what this makes (.venv, .env, var/ and its keys) is its owner's only; not
# before: packages' install scripts must make system files as they mean to.
umask 077
# The checkout's state (database, backups, keys, emails) is private; a var/ made before this
# rule, world-readable, is closed too.
mkdir -p var
chmod -R go= var
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
# Reinstall only when pyproject.toml changed; a test install also serves `make run`.
hash=$(sha1sum pyproject.toml | cut -c1-12)
if [ ! -e ".venv/.installed-$hash-test" ] && [ ! -e ".venv/.installed-$hash-$mode" ]; then
  echo "Installing Python packages into .venv"
  extras=""; [ "$mode" = test ] && extras="[test]"
  if ! .venv/bin/pip install -q --upgrade pip -e ".$extras" > var/pip.log 2>&1; then
    cat var/pip.log >&2; exit 1
  fi
  rm -f .venv/.installed-*
  touch ".venv/.installed-$hash-$mode"
fi

# axe-core, the accessibility rules the browser tests run in every page they reach
# (tests/e2e/accessibility.py). From the npm registry, pinned and checked; .cache/ is git-ignored.
axe_version=4.14.1
axe_sha256=29348999450cdf2849a8e70b7912fc2da85a849da39c0d0d5394f51d4a9ed95c
axe=.cache/axe-core/axe.min.js
if [ "$mode" = test ] && ! head -c 40 "$axe" 2>/dev/null | grep -q "axe v$axe_version\$"; then
  echo "Installing axe-core $axe_version into ${axe%/*}"
  tmp=$(mktemp -d)
  if ! (cd "$tmp" && npm pack --silent "axe-core@$axe_version" > npm.log 2>&1); then
    cat "$tmp/npm.log" >&2; rm -rf "$tmp"; exit 1
  fi
  tar -xzf "$tmp/axe-core-$axe_version.tgz" -C "$tmp" package/axe.min.js
  if ! echo "$axe_sha256  $tmp/package/axe.min.js" | sha256sum --check --status; then
    echo "axe-core $axe_version from the npm registry is not the file this script expects" >&2
    rm -rf "$tmp"; exit 1
  fi
  mkdir -p "${axe%/*}"
  mv "$tmp/package/axe.min.js" "$axe"
  rm -rf "$tmp"
fi

# Local secrets, made once and kept out of git (production sets these in its environment).
# A key missing from an older .env is added; existing values are never changed.
touch .env && chmod 600 .env
add_setting() {
  grep -q "^$1=" .env || echo "$1=$2" >> .env
}
token() { .venv/bin/python -c "import secrets; print(secrets.token_urlsafe($1))"; }
add_setting DEBUG true
add_setting SECRET_KEY "$(token 50)"
add_setting POSTAMT_MASTER_PASSWORD "$(token 24)"
add_setting POSTAMT_DOVEADM_API_KEY "$(token 24)"
add_setting BACKUP_ROOT "$PWD/var/backups"
# A demo key pair for backups. In production only restore/download processes hold the identity
# (docs/backups.md); here one worker does everything.
if ! grep -q '^BACKUP_PUBLIC_KEY=' .env; then
  rm -f var/backup-identity.txt
  # Its stderr asks to set BACKUP_PUBLIC_KEY: done here, so only a failure is shown.
  if ! public=$(SECRET_KEY=build .venv/bin/python manage.py backup_keygen \
                  var/backup-identity.txt 2>var/backup-keygen.log | tail -n1); then
    cat var/backup-keygen.log >&2; exit 1
  fi
  rm -f var/backup-keygen.log
  add_setting BACKUP_PUBLIC_KEY "$public"
  add_setting BACKUP_IDENTITY_FILE "$PWD/var/backup-identity.txt"
  echo "Backup key pair made: the identity (private key) is in var/backup-identity.txt," \
       "BACKUP_PUBLIC_KEY and BACKUP_IDENTITY_FILE are set in .env."
fi
# Dovecot serves TLS only: a private CA and its certificate for 127.0.0.1 and localhost
# (production uses Let's Encrypt's files, docs/operations.md). Workers trust this CA.
if ! grep -q '^DOVECOT_SSL_CERT=' .env; then
  SECRET_KEY=build .venv/bin/python manage.py private_ca var/tls >> .env
  echo "Private CA and Dovecot certificate made in var/tls/; DOVECOT_SSL_CERT, DOVECOT_SSL_KEY" \
       "and POSTAMT_MAIL_CA_FILE are set in .env."
fi
SECRET_KEY=build .venv/bin/python manage.py compilemessages -v 0 --ignore=.venv
