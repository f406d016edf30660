#!/usr/bin/env bash
# Check templates/dovecot/dovecot-2.4.conf against Debian 13's real Dovecot 2.4, from a Debian 12
# machine (whose own Dovecot is 2.3). Part of `make test`: the first run builds a trixie chroot
# under .cache/ (about 45 s, ~320 MB), later runs take ~25 s. See docs/dovecot.md.
#
#   sudo bash scripts/check-dovecot-2.4.sh            # SQLite, and PostgreSQL if it answers
#   BACKENDS=sqlite bash scripts/check-dovecot-2.4.sh
#
# For each database it creates Postamt's schema and three mailboxes (IMAP, POP3, a tiny IMAP
# quota), renders the 2.4 configuration with DovecotInstance.render(version="2.4"), runs
# `doveconf -n` and `dovecot -F` inside the chroot and probes it from this machine over IMAPS,
# POP3S, STARTTLS, plain IMAP and POP3 on loopback, LMTP and the doveadm HTTP API over HTTPS
# (a private CA's certificate), and shows that a cleartext login from another address than the
# server's is refused; then it starts the proxy (role="proxy") in front of it and probes logins
# through the proxy over IMAPS, POP3S and STARTTLS (cleartext from another address refused, the
# mail server's log showing the proxied login as TLS) and delivery through it. It ends with PASS
# or FAIL (exit status 0 or 1).
#
# Environment: CHROOT (default /var/tmp/postamt-trixie-chroot; runs wait for each other), MIRROR (default:
# the Debian mirror of this machine's apt sources), PG_URL (default postgres://postgres@127.0.0.1:5432),
# BACKENDS ("sqlite pgsql"), IMAP_PORT/POP3_PORT/IMAPS_PORT/POP3S_PORT/LMTP_PORT/DOVEADM_PORT
# (24143/24110/24993/24995/24024/24808),
# PROXY_IMAP_PORT/PROXY_POP3_PORT/PROXY_IMAPS_PORT/PROXY_POP3S_PORT/PROXY_LMTP_PORT
# (24144/24111/24994/24996/24025),
# KEEP=1 keeps the rendered files and databases for a look afterwards.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

mkdir -p .cache
# Outside the checkout: the mail user must pass through every parent of the mail root, which a
# checkout in a private folder (mktemp -d is 0700) does not allow; and clones share it.
DEFAULT_CHROOT=/var/tmp/postamt-trixie-chroot
CHROOT=${CHROOT:-$DEFAULT_CHROOT}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
BACKENDS=${BACKENDS:-sqlite pgsql}
IMAP_PORT=${IMAP_PORT:-24143}
POP3_PORT=${POP3_PORT:-24110}
IMAPS_PORT=${IMAPS_PORT:-24993}
POP3S_PORT=${POP3S_PORT:-24995}
LMTP_PORT=${LMTP_PORT:-24024}
DOVEADM_PORT=${DOVEADM_PORT:-24808}
PROXY_IMAP_PORT=${PROXY_IMAP_PORT:-24144}
PROXY_POP3_PORT=${PROXY_POP3_PORT:-24111}
PROXY_IMAPS_PORT=${PROXY_IMAPS_PORT:-24994}
PROXY_POP3S_PORT=${PROXY_POP3S_PORT:-24996}
PROXY_LMTP_PORT=${PROXY_LMTP_PORT:-24025}
KEEP=${KEEP:-0}
WORK=/srv/postamt-check           # inside the chroot; $CHROOT$WORK on this machine
PG_DB=postamt_check_dovecot24
PACKAGES="dovecot-imapd dovecot-pop3d dovecot-lmtpd dovecot-sqlite dovecot-pgsql python3"
PY=$REPO/.venv/bin/python
# DEBUG is off: the secret check (provider/checks.py) wants a key of 50 characters or more.
export SECRET_KEY=check-dovecot-24-only-key-7c1e9a3b5d2f4a6c8e0b1d3f5a7c9e POSTAMT_MASTER_PASSWORD=master-secret-24
export POSTAMT_DOVEADM_API_KEY=doveadm-api-key-24 POSTAMT_MASTER_USER=postamt DEBUG=false
export PGOPTIONS="--client-min-messages=warning"  # no NOTICE for DROP ... IF EXISTS

declare -a SUMMARY=()
failed=0
dovecot_pid=""
proxy_pid=""

say() { printf '\n== %s\n' "$*"; }
result() {  # result PASS|FAIL|SKIP text
  SUMMARY+=("$1  $2")
  [ "$1" = FAIL ] && failed=1
  printf '%s  %s\n' "$1" "$2"
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

[ "$(id -u)" = 0 ] || { echo "run as root (debootstrap, chroot, mount)" >&2; exit 1; }
[ -x "$PY" ] || { echo "no $PY: run make setup-test first" >&2; exit 1; }
case $CHROOT in /*) ;; *) echo "CHROOT must be an absolute path" >&2; exit 1 ;; esac
# One run at a time per chroot (checkouts may share .cache): the work folder, the database
# and the ports are the same for all.
exec 9>"$CHROOT.lock"
flock 9
# The mail user (Dovecot's mail processes) must pass through every parent of the mail root;
# --x lets it pass without listing anything (setup.sh makes .cache/ 0700).
chmod o+x "$(dirname "$CHROOT")"

stop_pid() {  # stop_pid PID: a Dovecot master started here
  local pid=$1
  [ -n "$pid" ] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    local t0; t0=$(now)
    kill -TERM "$pid"
    for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    wait "$pid" 2>/dev/null
    echo "stopped in $(since "$t0") s"
  fi
}
stop_dovecot() {
  stop_pid "$proxy_pid"; proxy_pid=""
  stop_pid "$dovecot_pid"; dovecot_pid=""
}

cleanup() {
  stop_dovecot
  for mnt in "$CHROOT/dev" "$CHROOT/proc"; do
    if mountpoint -q "$mnt"; then umount "$mnt" 2>/dev/null || umount -l "$mnt"; fi
  done
  if [ "$KEEP" != 1 ]; then
    rm -rf "${CHROOT:?}$WORK"
    if [[ " $BACKENDS " == *" pgsql "* ]] && command -v psql >/dev/null; then
      psql -q "$PG_URL/postgres" -c "DROP DATABASE IF EXISTS $PG_DB" 2>/dev/null
    fi
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 1. The chroot ------------------------------------------------------------------------
mirror() {
  [ -n "${MIRROR:-}" ] && { echo "$MIRROR"; return; }
  local uri
  uri=$(grep -hs -E '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
          /etc/apt/sources.list.d/*.list \
        | grep -oE 'https?://[^ ]*/debian/?' | grep -v security | head -n1)
  echo "${uri:-http://deb.debian.org/debian}"
}

in_chroot() { chroot "$CHROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }

if ! [ -x "$CHROOT/usr/sbin/dovecot" ]; then
  say "Building a Debian 13 (trixie) chroot in $CHROOT"
  t0=$(now)
  if ! [ -x "$CHROOT/usr/bin/apt-get" ]; then
    if [ -d "$CHROOT" ] && [ -n "$(ls -A "$CHROOT")" ]; then
      # An interrupted build: the cache of our own is made again; another folder is left alone.
      if [ "$CHROOT" = "$DEFAULT_CHROOT" ] \
         && ! mountpoint -q "$CHROOT/dev" && ! mountpoint -q "$CHROOT/proc"; then
        echo "removing the unfinished chroot in $CHROOT"; rm -rf "${CHROOT:?}"
      else
        echo "$CHROOT exists but holds no usable system: remove it and rerun" >&2; exit 1
      fi
    fi
    command -v debootstrap >/dev/null || apt-get install -y -q debootstrap || exit 1
    mkdir -p "$CHROOT"
    debootstrap --variant=minbase trixie "$CHROOT" "$(mirror)" > "$CHROOT.build.log" 2>&1 || {
      tail -n 20 "$CHROOT.build.log"
      echo "debootstrap failed (log: $CHROOT.build.log)" >&2; exit 1; }
  fi
  # Nothing may start in the chroot (it shares this machine's network and ports).
  printf '#!/bin/sh\nexit 101\n' > "$CHROOT/usr/sbin/policy-rc.d"
  chmod 755 "$CHROOT/usr/sbin/policy-rc.d"
  in_chroot sh -c "DEBIAN_FRONTEND=noninteractive apt-get update -q && \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $PACKAGES" \
    >> "$CHROOT.build.log" 2>&1 \
    || { tail -n 20 "$CHROOT.build.log"
         echo "installing Dovecot in the chroot failed (log: $CHROOT.build.log)" >&2; exit 1; }
  in_chroot apt-get clean
  echo "chroot built in $(since "$t0") s"
fi
version=$(in_chroot dovecot --version)
say "Dovecot in the chroot: $version"
case $version in 2.4.*) ;; *) echo "expected Dovecot 2.4, found $version" >&2; exit 1 ;; esac

mountpoint -q "$CHROOT/proc" || mount -t proc proc "$CHROOT/proc"
mountpoint -q "$CHROOT/dev" || mount --bind /dev "$CHROOT/dev"
# Postamt renders paths as this machine sees them ($CHROOT/srv/...). Inside the chroot the same
# path leads back to its root, so the rendered file works unchanged on both sides.
mkdir -p "$CHROOT$(dirname "$CHROOT")"
[ -L "$CHROOT$CHROOT" ] || ln -s / "$CHROOT$CHROOT"

for port in "$IMAP_PORT" "$POP3_PORT" "$IMAPS_PORT" "$POP3S_PORT" "$LMTP_PORT" "$DOVEADM_PORT" \
            "$PROXY_IMAP_PORT" "$PROXY_POP3_PORT" "$PROXY_IMAPS_PORT" "$PROXY_POP3S_PORT" \
            "$PROXY_LMTP_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is in use: set IMAP_PORT, POP3_PORT, IMAPS_PORT, POP3S_PORT, LMTP_PORT," \
         "DOVEADM_PORT, PROXY_*_PORT" >&2; exit 1
  fi
done

# --- 2.-4. Per database: schema, mailboxes, render, doveconf, start, probe, stop ------------
seed_and_render() {  # seed_and_render ROOT: prints nothing on success
  "$PY" manage.py migrate -v0 || return 1
  ROOT=$1 "$PY" manage.py shell -v0 -c '
import os
from pathlib import Path
from django.db import connection
from accounts.services import customer_create
from mailserver.dovecot import DovecotInstance
from mailserver.tls import make_private_ca
from mailboxes.models import MIB, Plan
from mailboxes.services import domain_create, mail_server_register_local, mailbox_create

env = os.environ
ca = make_private_ca(Path(env["ROOT"]) / "tls")
instance = DovecotInstance(
    root=Path(env["ROOT"]), server="check24",
    imap_port=int(env["IMAP_PORT"]), pop3_port=int(env["POP3_PORT"]),
    imaps_port=int(env["IMAPS_PORT"]), pop3s_port=int(env["POP3S_PORT"]),
    ssl_cert=str(ca.cert_file), ssl_key=str(ca.key_file),
    lmtp_port=int(env["LMTP_PORT"]), doveadm_port=int(env["DOVEADM_PORT"]),
    doveadm_api_key=env["POSTAMT_DOVEADM_API_KEY"],
    master_user=env["POSTAMT_MASTER_USER"], master_password=env["POSTAMT_MASTER_PASSWORD"],
    mail_fsync="never", auth_penalty=False, db=dict(connection.settings_dict),
)
server = mail_server_register_local(instance)
def plan(name, imap, max_quota):
    return Plan.objects.create(name=name, allows_imap=imap, allows_pop3=not imap,
        default_quota_bytes=min(100 * MIB, max_quota), max_quota_bytes=max_quota)
customer = customer_create(name="Check GmbH", contact_email="owner@example.org", actor="check")
domain = domain_create(customer=customer, name="example.test", mail_server=server, actor="check")
for local, p, quota in (("anna", plan("IMAP", True, 1024 * MIB), 50 * MIB),
                        ("bob", plan("POP3", False, 100 * MIB), 10 * MIB),
                        ("tiny", plan("Tiny", True, 10 * MIB), 64 * 1024)):
    mailbox_create(domain=domain, local_part=local, password=env["BOX_PASSWORD"], plan=p,
                   protocol="imap" if p.allows_imap else "pop3", quota_bytes=quota, actor="check")
instance.render(version="2.4")
# The proxy in front of it: its own root, ports and configuration, the same database; the same
# certificate, and the CA that signed the mail server certificate to verify it.
DovecotInstance(
    root=Path(env["ROOT"]) / "proxy", server="proxy24", role="proxy",
    imap_port=int(env["PROXY_IMAP_PORT"]), pop3_port=int(env["PROXY_POP3_PORT"]),
    imaps_port=int(env["PROXY_IMAPS_PORT"]), pop3s_port=int(env["PROXY_POP3S_PORT"]),
    lmtp_port=int(env["PROXY_LMTP_PORT"]), ssl_cert=str(ca.cert_file), ssl_key=str(ca.key_file),
    ca_file=str(ca.ca_file), auth_penalty=False, db=dict(connection.settings_dict),
).render(version="2.4")
'
}

proxy_probe() {
  "$PY" - <<'PY'
"""Probe logins and delivery through the proxy; stdlib only. Exit status: number of failures."""
import imaplib, os, poplib, re, smtplib, socket, ssl, sys, time

HOST = "127.0.0.1"
OTHER_ADDRESS = "127.0.0.2"  # not the proxy's own address: what a customer's machine meets
IMAP, POP3, LMTP = (int(os.environ[k]) for k in ("PROXY_IMAP_PORT", "PROXY_POP3_PORT", "PROXY_LMTP_PORT"))
IMAPS, POP3S = int(os.environ["PROXY_IMAPS_PORT"]), int(os.environ["PROXY_POP3S_PORT"])
TLS = ssl.create_default_context(cafile=os.environ["CA_FILE"])
BACKEND_LOG = os.environ["BACKEND_LOG"]
BACKEND_LOG_START = os.path.getsize(BACKEND_LOG)  # the mail server's own probes came before
PASSWORD = os.environ["BOX_PASSWORD"]
ANNA, BOB = "anna@example.test", "bob@example.test"
results = []


def check(name, func):
    try:
        detail, ok = func(), True
    except Exception as exc:  # noqa: BLE001 - every failure is a result to report
        detail, ok = f"{type(exc).__name__}: {exc}", False
    results.append(ok)
    print(f"{'PASS' if ok else 'FAIL'}  proxy: {name}  {detail}", flush=True)


def wait_ready(timeout=20):
    start = time.monotonic()
    for port, greeting in ((IMAP, b"* OK"), (POP3, b"+OK"), (LMTP, b"220")):
        while True:
            try:
                with socket.create_connection((HOST, port), timeout=1) as sock:
                    if sock.recv(64).startswith(greeting):
                        break
            except OSError:
                pass
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"no greeting on port {port}")
            time.sleep(0.05)
    return "IMAP, POP3 and LMTP greet"


def inbox_count(user=ANNA):
    client = imaplib.IMAP4_SSL(HOST, IMAPS, ssl_context=TLS, timeout=10)
    client.login(user, PASSWORD)
    _typ, data = client.select("INBOX", readonly=True)
    client.logout()
    return int(data[0])


def imap_refused(user, password):
    try:
        client = imaplib.IMAP4_SSL(HOST, IMAPS, ssl_context=TLS, timeout=10)
        client.login(user, password)
        client.logout()
    except imaplib.IMAP4.error as exc:
        return f"refused: {exc}"
    raise AssertionError("login succeeded")


def pop3(user, password):
    pop = poplib.POP3_SSL(HOST, POP3S, context=TLS, timeout=10)
    try:
        pop.user(user)
        pop.pass_(password)
        return pop.stat()
    finally:
        pop.quit()


def pop3_refused(user, password):
    try:
        pop3(user, password)
    except poplib.error_proto as exc:
        return f"refused: {exc}"
    raise AssertionError("login succeeded")


def imap_reaches_the_mail_server():
    count = inbox_count()
    assert count >= 1, "the message delivered to the mail server is not seen"
    return f"{count} message(s) in INBOX, as on the mail server"


def starttls_logins():
    client = imaplib.IMAP4(HOST, IMAP, timeout=10)
    client.starttls(TLS)
    client.login(ANNA, PASSWORD)
    client.logout()
    pop = poplib.POP3(HOST, POP3, timeout=10)
    pop.stls(TLS)
    pop.user(BOB)
    pop.pass_(PASSWORD)
    pop.quit()
    return "IMAP STARTTLS and POP3 STLS"


class FromOtherAddress(imaplib.IMAP4):
    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout, (OTHER_ADDRESS, 0))


def cleartext_refused_from_another_address():
    client = FromOtherAddress(HOST, IMAP, timeout=10)
    assert "LOGINDISABLED" in client.capabilities, client.capabilities
    try:
        client.login(ANNA, PASSWORD)
    except imaplib.IMAP4.error as exc:
        refused = f"refused: {exc}"
    else:
        raise AssertionError("a cleartext login from another address succeeded")
    client.starttls(TLS)
    client.login(ANNA, PASSWORD)
    client.logout()
    return f"{refused}; after STARTTLS logged in"


def proxied_logins_are_tls_on_the_mail_server():
    with open(BACKEND_LOG, "rb") as log:
        log.seek(BACKEND_LOG_START)
        lines = log.read().decode(errors="replace").splitlines()
    logins = [line for line in lines if re.search(r"(Login|Logged in): user=<bob@example.test>", line)]
    assert logins, "no login of bob on the mail server"
    assert all(", TLS" in line for line in logins), logins
    return f"{len(logins)} POP3 login(s) of bob, all TLS"


def lmtp_through_the_proxy():
    before = inbox_count()
    message = "Subject: via proxy\r\n\r\nhello\r\n"
    with smtplib.LMTP(HOST, LMTP) as lmtp:
        refused = lmtp.sendmail("sender@example.org", [ANNA], message)
    assert refused == {}, refused
    after = inbox_count()
    assert after == before + 1, (before, after)
    return f"INBOX {before} -> {after}"


def unknown_recipient_refused():
    try:
        with smtplib.LMTP(HOST, LMTP) as lmtp:
            lmtp.sendmail("sender@example.org", ["nobody@example.test"], "Subject: x\r\n\r\nx\r\n")
    except smtplib.SMTPRecipientsRefused as exc:
        return f"refused: {exc.recipients}"
    raise AssertionError("accepted")


check("ready", wait_ready)
if not results[-1]:
    sys.exit(1)
check("IMAP login reaches the mail server", imap_reaches_the_mail_server)
check("POP3 login of the POP3 mailbox", lambda: f"STAT {pop3(BOB, PASSWORD)}")
check("POP3 mailbox refused on IMAP", lambda: imap_refused(BOB, PASSWORD))
check("IMAP mailbox refused on POP3", lambda: pop3_refused(ANNA, PASSWORD))
check("wrong password refused", lambda: imap_refused(ANNA, "not-the-password"))
check("STARTTLS logins through the proxy", starttls_logins)
check("cleartext login from another address refused", cleartext_refused_from_another_address)
check("the proxy logs in to the mail server over TLS", proxied_logins_are_tls_on_the_mail_server)
check("LMTP delivery through the proxy", lmtp_through_the_proxy)
check("unknown recipient refused", unknown_recipient_refused)
failures = results.count(False)
print(f"{len(results) - failures}/{len(results)} proxy probes passed")
sys.exit(failures)
PY
}

probe() {
  "$PY" - <<'PY'
"""Probe the running Dovecot from outside; stdlib only. Exit status: number of failures."""
import base64, imaplib, json, os, poplib, re, smtplib, socket, ssl, subprocess, sys, time
import urllib.request

HOST = "127.0.0.1"
# Dovecot counts a client whose address is the server's own as secured: one on 127.0.0.2
# (loopback too, but another address) meets what a customer's machine meets.
OTHER_ADDRESS = "127.0.0.2"
IMAP, POP3, LMTP = (int(os.environ[k]) for k in ("IMAP_PORT", "POP3_PORT", "LMTP_PORT"))
IMAPS, POP3S = int(os.environ["IMAPS_PORT"]), int(os.environ["POP3S_PORT"])
TLS = ssl.create_default_context(cafile=os.environ["CA_FILE"])
DOVEADM = int(os.environ["DOVEADM_PORT"])
PASSWORD, MASTER = os.environ["BOX_PASSWORD"], os.environ["POSTAMT_MASTER_USER"]
MASTER_PASSWORD, API_KEY = os.environ["POSTAMT_MASTER_PASSWORD"], os.environ["POSTAMT_DOVEADM_API_KEY"]
ANNA, BOB, TINY = "anna@example.test", "bob@example.test", "tiny@example.test"
ANNA_KIB, TINY_KIB = 50 * 1024, 64
results = []


def check(name, func):
    start = time.monotonic()
    try:
        detail, ok = func(), True
    except Exception as exc:  # noqa: BLE001 - every failure is a result to report
        detail, ok = f"{type(exc).__name__}: {exc}", False
    results.append(ok)
    ms = (time.monotonic() - start) * 1000
    print(f"{'PASS' if ok else 'FAIL'}  {name}  ({ms:.0f} ms)  {detail}", flush=True)


def wait_ready(timeout=20):
    start = time.monotonic()
    for port, greeting in ((IMAP, b"* OK"), (POP3, b"+OK"), (LMTP, b"220")):
        while True:
            try:
                with socket.create_connection((HOST, port), timeout=1) as sock:
                    if sock.recv(64).startswith(greeting):
                        break
            except OSError:
                pass
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"no greeting on port {port}")
            time.sleep(0.05)
    return f"IMAP, POP3 and LMTP greet after {(time.monotonic() - start) * 1000:.0f} ms"


def imap(user, password):
    client = imaplib.IMAP4(HOST, IMAP, timeout=10)
    client.login(user, password)
    return client


def imap_refused(user, password):
    try:
        imap(user, password).logout()
    except imaplib.IMAP4.error as exc:
        return f"refused: {exc}"
    raise AssertionError("login succeeded")


def pop3_refused(user, password):
    pop = poplib.POP3(HOST, POP3, timeout=10)
    try:
        pop.user(user)
        pop.pass_(password)
    except poplib.error_proto as exc:
        return f"refused: {exc}"
    finally:
        pop.quit()
    raise AssertionError("login succeeded")


def imaps_login():
    client = imaplib.IMAP4_SSL(HOST, IMAPS, ssl_context=TLS, timeout=10)
    client.login(ANNA, PASSWORD)
    version = client.sock.version()
    client.logout()
    return f"{version}, certificate verified"


def pop3s_login():
    pop = poplib.POP3_SSL(HOST, POP3S, context=TLS, timeout=10)
    pop.user(BOB)
    pop.pass_(PASSWORD)
    stat = pop.stat()
    pop.quit()
    return f"STAT {stat}"


def starttls_logins():
    client = imaplib.IMAP4(HOST, IMAP, timeout=10)
    client.starttls(TLS)
    client.login(ANNA, PASSWORD)
    client.logout()
    pop = poplib.POP3(HOST, POP3, timeout=10)
    pop.stls(TLS)
    pop.user(BOB)
    pop.pass_(PASSWORD)
    pop.quit()
    return "IMAP STARTTLS and POP3 STLS"


class FromOtherAddress(imaplib.IMAP4):
    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout, (OTHER_ADDRESS, 0))


def cleartext_refused_from_another_address():
    client = FromOtherAddress(HOST, IMAP, timeout=10)
    assert "LOGINDISABLED" in client.capabilities, client.capabilities
    try:
        client.login(ANNA, PASSWORD)
    except imaplib.IMAP4.error as exc:
        refused = f"refused: {exc}"
    else:
        raise AssertionError("a cleartext login from another address succeeded")
    client.starttls(TLS)
    client.login(ANNA, PASSWORD)  # the same connection, once it is encrypted
    client.logout()
    return f"{refused}; after STARTTLS logged in"


def untrusted_certificate_refused():
    try:
        imaplib.IMAP4_SSL(HOST, IMAPS, ssl_context=ssl.create_default_context(), timeout=10)
    except ssl.SSLCertVerificationError as exc:
        return f"system CAs: {exc.verify_message}"
    raise AssertionError("the private CA's certificate verified against the system CAs")


def storage_quota(client):
    typ, data = client.getquotaroot("INBOX")
    text = " ".join(d.decode() for d in data[1] if d) if typ == "OK" and len(data) > 1 else ""
    match = re.search(r"STORAGE (\d+) (\d+)", text)
    assert match, f"no STORAGE quota: {typ} {data}"
    return int(match.group(1)), int(match.group(2)), text


def imap_login():
    client = imap(ANNA, PASSWORD)
    _typ, data = client.list()
    client.logout()
    names = {line.decode().rsplit(" ", 1)[-1].strip('"') for line in data}
    assert {"INBOX", "Sent", "Drafts", "Trash", "Junk"} <= names, names
    return f"folders {sorted(names)}"


def pop3_login():
    pop = poplib.POP3(HOST, POP3, timeout=10)
    pop.user(BOB)
    pop.pass_(PASSWORD)
    stat = pop.stat()
    pop.quit()
    return f"STAT {stat}"


def master_login(user):
    def run():
        client = imap(f"{user}*{MASTER}", MASTER_PASSWORD)
        used, limit, _ = storage_quota(client)
        client.logout()
        return f"logged in as {user}; STORAGE {used}/{limit} KiB"
    return run


def quota_from_database():
    client = imap(ANNA, PASSWORD)
    _used, limit, text = storage_quota(client)
    client.logout()
    assert limit == ANNA_KIB, f"limit {limit} KiB, the database says {ANNA_KIB}"
    return text


def lmtp_delivery():
    message = "Subject: Hallo\r\nMessage-ID: <1@example.org>\r\n\r\n" + "x" * 4000 + "\r\n"
    with smtplib.LMTP(HOST, LMTP) as lmtp:
        refused = lmtp.sendmail("sender@example.org", [ANNA], message)
    assert refused == {}, refused
    client = imap(ANNA, PASSWORD)
    client.select("INBOX", readonly=True)
    _typ, data = client.search(None, "ALL")
    numbers = data[0].split()
    _typ, subject = client.fetch(numbers[-1], "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    used, limit, _ = storage_quota(client)
    client.logout()
    assert b"Hallo" in subject[0][1], subject
    assert used >= 4, f"usage {used} KiB"
    return f"{len(numbers)} message(s) in INBOX; STORAGE {used}/{limit} KiB"


def lmtp_over_quota():
    client = imap(TINY, PASSWORD)
    _used, limit, _ = storage_quota(client)
    client.logout()
    assert limit == TINY_KIB, f"limit {limit} KiB"
    big = "Subject: big\r\n\r\n" + ("y" * 998 + "\r\n") * 100  # ~100 KB
    try:
        with smtplib.LMTP(HOST, LMTP) as lmtp:
            lmtp.sendmail("sender@example.org", [TINY], big)
    except smtplib.SMTPDataError as exc:
        assert exc.smtp_code == 552 and b"Quota exceeded" in exc.smtp_error, exc
        return f"{exc.smtp_code} {exc.smtp_error.decode()}"
    raise AssertionError("delivered")


def status_size():
    client = imap(f"{ANNA}*{MASTER}", MASTER_PASSWORD)
    _typ, caps = client.capability()
    typ, data = client.status("INBOX", "(MESSAGES SIZE)")
    client.logout()
    assert b"STATUS=SIZE" in caps[0], caps
    match = re.search(rb"MESSAGES (\d+) SIZE (\d+)", data[0]) if typ == "OK" else None
    assert match and int(match.group(1)) >= 1 and int(match.group(2)) > 4000, data
    return data[0].decode()


def doveadm_quota_get():
    request = urllib.request.Request(
        f"https://{HOST}:{DOVEADM}/doveadm/v1",
        data=json.dumps([["quotaGet", {"allUsers": True}, "postamt"]]).encode(),
        headers={
            "Content-Type": "application/json",
            "Authorization": "X-Dovecot-API " + base64.b64encode(API_KEY.encode()).decode(),
        },
    )
    with urllib.request.urlopen(request, timeout=30, context=TLS) as response:
        answer = json.load(response)
    kind, payload, _tag = answer[0]
    assert kind == "doveadmResponse", answer
    storage = {row["username"]: row for row in payload if row.get("type") == "STORAGE"}
    assert set(storage) == {ANNA, BOB, TINY}, payload
    assert storage[ANNA]["limit"] == str(ANNA_KIB) and int(storage[ANNA]["value"]) >= 4, storage
    return json.dumps(storage[ANNA])


def django(code):
    """Run ``code`` in Postamt's shell against the same database; its output, stripped."""
    result = subprocess.run([os.environ["PY"], "manage.py", "shell", "-v0", "-c", code],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def recorded_logins(until):
    """{(login, protocol): Unix time} from dovecot_last_login once ``until(rows)`` holds (the
    dict process writes after the session), or as it is after about 10 s."""
    code = ("import json; from mailboxes.models import MailboxLogin; "
            "print(json.dumps(list(MailboxLogin.objects.values_list("
            "'username', 'protocol', 'last_login'))))")
    deadline = time.monotonic() + 10
    while True:
        rows = {(user, protocol): at for user, protocol, at in json.loads(django(code))}
        if until(rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def last_login_per_protocol():
    """Own logins recorded per protocol; refused, master (worker) and LMTP sessions not."""
    expected = {(ANNA, "imap"), (BOB, "pop3"), (TINY, "imap")}
    rows = recorded_logins(lambda rows: expected <= set(rows))
    assert set(rows) == expected, f"recorded {sorted(rows)}, expected {sorted(expected)}"
    now = time.time()
    assert all(now - 120 < at <= now + 5 for at in rows.values()), rows
    return ", ".join(f"{user} {protocol}" for user, protocol in sorted(rows))


def last_login_updated():
    """A row already there is updated (INSERT ... ON CONFLICT DO UPDATE), not duplicated."""
    django("from mailboxes.models import MailboxLogin; "
           f"MailboxLogin.objects.filter(username='{ANNA}', protocol='imap')"
           ".update(last_login=1000)")
    imap(ANNA, PASSWORD).logout()
    rows = recorded_logins(lambda rows: rows.get((ANNA, "imap"), 0) > 1000)
    at = rows.get((ANNA, "imap"))
    assert at and at > 1000, f"still {at}"
    return f"{ANNA} imap: 1000 -> {at}"


check("Dovecot ready", wait_ready)
if not results[-1]:
    sys.exit(1)
check("IMAP login of the IMAP mailbox", imap_login)
check("POP3 login of the POP3 mailbox", pop3_login)
check("IMAPS login of the IMAP mailbox", imaps_login)
check("POP3S login of the POP3 mailbox", pop3s_login)
check("STARTTLS logins", starttls_logins)
check("cleartext login from another address refused", cleartext_refused_from_another_address)
check("certificate not verifiable without the private CA", untrusted_certificate_refused)
check("POP3 mailbox refused on IMAP", lambda: imap_refused(BOB, PASSWORD))
check("IMAP mailbox refused on POP3", lambda: pop3_refused(ANNA, PASSWORD))
check("wrong password refused", lambda: imap_refused(ANNA, "not-the-password"))
check("master login user*master", master_login(ANNA))
check("master login of the POP3 mailbox over IMAP (polling)", master_login(BOB))
check("wrong master password refused", lambda: imap_refused(f"{ANNA}*{MASTER}", "wrong"))
check("master login of an unknown user refused",
      lambda: imap_refused(f"nobody@example.test*{MASTER}", MASTER_PASSWORD))
check("GETQUOTAROOT limit is the database quota (KiB)", quota_from_database)
check("LMTP delivery arrives and counts", lmtp_delivery)
check("LMTP delivery over quota refused with 552", lmtp_over_quota)
check("STATUS (MESSAGES SIZE)", status_size)
check("doveadm HTTP API over HTTPS quotaGet allUsers", doveadm_quota_get)
check("last login recorded per protocol, not for refused, master or LMTP sessions",
      last_login_per_protocol)
check("last login updated on the next login", last_login_updated)
failures = results.count(False)
print(f"{len(results) - failures}/{len(results)} probes passed")
sys.exit(failures)
PY
}

export IMAP_PORT POP3_PORT IMAPS_PORT POP3S_PORT LMTP_PORT DOVEADM_PORT PY BOX_PASSWORD=Brave-Otter-2041
export PROXY_IMAP_PORT PROXY_POP3_PORT PROXY_IMAPS_PORT PROXY_POP3S_PORT PROXY_LMTP_PORT
rm -rf "${CHROOT:?}$WORK"
mkdir -p "$CHROOT$WORK"
chmod 755 "$CHROOT" "$CHROOT/srv" "$CHROOT$WORK"  # the mail user must reach the mail root

for backend in $BACKENDS; do
  say "$backend"
  case $backend in
    sqlite)
      export DATABASE_URL="sqlite:///$CHROOT$WORK/postamt.sqlite3" ;;
    pgsql)
      if ! command -v psql >/dev/null || ! psql -q "$PG_URL/postgres" -c 'SELECT 1' >/dev/null 2>&1; then
        result SKIP "pgsql: PostgreSQL does not answer at $PG_URL"; continue
      fi
      psql -q "$PG_URL/postgres" -c "DROP DATABASE IF EXISTS $PG_DB" -c "CREATE DATABASE $PG_DB" \
        || { result FAIL "pgsql: cannot create $PG_DB"; continue; }
      export DATABASE_URL="$PG_URL/$PG_DB" ;;
    *) result FAIL "unknown backend $backend"; continue ;;
  esac
  root=$CHROOT$WORK/$backend
  mkdir -p "$root"; chmod 755 "$root"
  t0=$(now)
  if ! seed_and_render "$root"; then
    result FAIL "$backend: schema, mailboxes or rendering failed"; continue
  fi
  echo "schema, mailboxes and configuration in $(since "$t0") s"
  conf=$root/conf/dovecot.conf

  if errors=$(in_chroot doveconf -n -c "$conf" 2>&1 >/dev/null) && [ -z "$errors" ]; then
    result PASS "$backend: doveconf -n accepts the rendered 2.4 configuration"
  else
    result FAIL "$backend: doveconf -n: $errors"; continue
  fi

  t0=$(now)
  chroot "$CHROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    dovecot -F -c "$conf" > "$root/log/foreground.log" 2>&1 &
  dovecot_pid=$!
  CA_FILE=$root/tls/ca.pem probe; status=$?
  echo "started and probed in $(since "$t0") s"
  if [ $status -eq 0 ]; then
    result PASS "$backend: every probe passed"
  else
    result FAIL "$backend: $status probe(s) failed; Dovecot's log follows"
    tail -n 30 "$root/log/dovecot.log" "$root/log/foreground.log" 2>/dev/null
  fi
  proxy_conf=$root/proxy/conf/dovecot.conf
  if errors=$(in_chroot doveconf -n -c "$proxy_conf" 2>&1 >/dev/null) && [ -z "$errors" ]; then
    result PASS "$backend: doveconf -n accepts the rendered 2.4 proxy configuration"
    chroot "$CHROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
      dovecot -F -c "$proxy_conf" > "$root/proxy/log/foreground.log" 2>&1 &
    proxy_pid=$!
    CA_FILE=$root/tls/ca.pem BACKEND_LOG=$root/log/dovecot.log proxy_probe; status=$?
    if [ $status -eq 0 ]; then
      result PASS "$backend: every proxy probe passed"
    else
      result FAIL "$backend: $status proxy probe(s) failed; the proxy's log follows"
      tail -n 30 "$root/proxy/log/dovecot.log" "$root/proxy/log/foreground.log" 2>/dev/null
    fi
    stop_pid "$proxy_pid"; proxy_pid=""
  else
    result FAIL "$backend: doveconf -n (proxy): $errors"
  fi
  # Anything Dovecot logged beyond Info lines deserves a look.
  if grep -v ' Info: ' "$root/log/dovecot.log" 2>/dev/null | grep -q .; then
    echo "Dovecot logged warnings or errors:"
    grep -v ' Info: ' "$root/log/dovecot.log" | tail -n 20
  fi
  stop_dovecot
done

say "Summary (Dovecot $version in $CHROOT)"
printf '%s\n' "${SUMMARY[@]}"
if [ $failed -eq 0 ] && [ ${#SUMMARY[@]} -gt 0 ]; then echo "PASS"; exit 0; fi
echo "FAIL"; exit 1
