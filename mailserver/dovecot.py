"""A private Dovecot instance driven by Postamt's database.

Renders a self-contained configuration (no ``conf.d``, no system service) for Dovecot 2.3 or
2.4, whichever is installed, and runs it in the foreground on loopback ports. The same class
renders a mail server (``role="backend"``, stores mail) or the proxy in front of them
(``role="proxy"``, one public address that passes each login and delivery on).
"""

from __future__ import annotations

import base64
import hashlib
import os
import pwd
import re
import secrets
import shutil
import socket
import stat
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from django.conf import settings
from django.db import connection
from django.template.loader import render_to_string


class DovecotError(RuntimeError):
    pass


def detect_version(binary: str | None = None) -> tuple[int, int]:
    """``(2, 3)`` or ``(2, 4)``, from ``dovecot --version`` (e.g. ``2.3.19.1 (9b53102964)``)."""
    binary = binary or settings.DOVECOT["BINARY"]
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise DovecotError(f"cannot run {binary} --version: {exc}") from exc
    match = re.match(r"(\d+)\.(\d+)", out.stdout.strip())
    if not match:
        raise DovecotError(f"unexpected output of dovecot --version: {out.stdout!r}")
    return int(match.group(1)), int(match.group(2))


def sql_settings(db: dict[str, Any] | None = None) -> dict[str, Any]:
    """How Dovecot reaches the same database Django uses."""
    db = db or connection.settings_dict
    engine = db["ENGINE"]
    if engine.endswith("sqlite3"):
        path = str(Path(db["NAME"]).resolve())
        return {"sql_driver": "sqlite", "sql_connect": path, "sqlite_path": path}
    if engine.endswith("postgresql"):
        pg = {
            "host": db.get("HOST") or "localhost",
            "port": db.get("PORT") or 5432,
            "dbname": db["NAME"],
            "user": db.get("USER") or "postgres",
            "password": db.get("PASSWORD") or "",
        }
        connect = " ".join(f"{k}={_conninfo_quote(v)}" for k, v in pg.items() if v != "")
        return {"sql_driver": "pgsql", "sql_connect": connect, "pg": pg}
    raise DovecotError(f"Dovecot cannot read a {engine} database")


def _conninfo_quote(value: object) -> str:
    """A libpq connection-string value; quoted unless plain, so spaces, quotes survive."""
    text = str(value)
    if re.fullmatch(r"[\w.:/@+-]+", text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass
class DovecotInstance:
    """Everything that differs between the instance of ``make run`` and that of the tests."""

    root: Path
    server: str = "local"
    listen: str = "127.0.0.1"
    host: str = ""
    imap_port: int = 10143
    pop3_port: int = 10110
    imaps_port: int = 10993
    pop3s_port: int = 10995
    lmtp_port: int = 10024
    doveadm_port: int | None = None
    doveadm_api_key: str = ""
    master_user: str = "postamt"
    master_password: str = ""
    mail_user: str = "mail"
    ssl_cert: str = ""  # PEM certificate (full chain) and key Dovecot serves
    ssl_key: str = ""
    instance_name: str = ""
    mail_fsync: str = "optimized"
    auth_penalty: bool = True
    role: Literal["backend", "proxy"] = "backend"
    # The proxy verifies each mail server's certificate against this CA file (the system CAs
    # when empty), as the workers do.
    ca_file: str = ""
    binary: str = "/usr/sbin/dovecot"
    db: dict[str, Any] | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, **overrides: Any) -> DovecotInstance:
        conf = settings.DOVECOT
        values: dict[str, Any] = {
            "root": Path(conf["ROOT"]),
            "server": conf["SERVER_NAME"],
            "listen": conf["LISTEN"],
            "host": conf["HOST"],
            "imap_port": conf["IMAP_PORT"],
            "pop3_port": conf["POP3_PORT"],
            "imaps_port": conf["IMAPS_PORT"],
            "pop3s_port": conf["POP3S_PORT"],
            "lmtp_port": conf["LMTP_PORT"],
            "doveadm_port": conf["DOVEADM_PORT"] if settings.POSTAMT_DOVEADM_API_KEY else None,
            "doveadm_api_key": settings.POSTAMT_DOVEADM_API_KEY,
            "master_user": settings.POSTAMT_MASTER_USER,
            "master_password": settings.POSTAMT_MASTER_PASSWORD,
            "mail_user": conf["MAIL_USER"],
            "ssl_cert": conf["SSL_CERT"],
            "ssl_key": conf["SSL_KEY"],
            "instance_name": conf["INSTANCE_NAME"],
            "binary": conf["BINARY"],
            "db": conf["DATABASE"],
            "role": conf["ROLE"],
            "ca_file": settings.POSTAMT_MAIL_CA_FILE,
        }
        values.update(overrides)
        return cls(**values)

    @property
    def conf_dir(self) -> Path:
        return self.root / "conf"

    @property
    def mail_root(self) -> Path:
        return self.root / "mail"

    @property
    def config_file(self) -> Path:
        return self.conf_dir / "dovecot.conf"

    def server_fields(self) -> dict[str, Any]:
        """What a MailServer row needs to reach this instance (its ports change per test run)."""
        return {
            "hostname": self.host or self.listen,
            "imap_port": self.imap_port,
            "pop3_port": self.pop3_port,
            "imaps_port": self.imaps_port,
            "pop3s_port": self.pop3s_port,
            "lmtp_port": self.lmtp_port,
            "doveadm_port": self.doveadm_port,
            "master_user": self.master_user,
        }

    def _clear_stale_base_dir(self) -> None:
        """Refuse a root that a running Dovecot uses; else remove a killed instance's sockets
        (a stale base_dir costs a 5 s retry at start)."""
        running = self.running_pid()
        if running:
            raise DovecotError(f"Dovecot already runs from {self.root} (pid {running})")
        shutil.rmtree(self.root / "run", ignore_errors=True)

    def render(self, version: Literal["2.3", "2.4"] | None = None) -> Path:
        """Write the configuration files; secrets inside are readable by root only.

        ``version`` picks the template; by default that of the installed ``dovecot --version``
        (a check against another Dovecot, e.g. scripts/check-dovecot-2.4.sh, forces it).
        """
        if version is None:
            version = "2.4" if detect_version(self.binary) >= (2, 4) else "2.3"
        if self.role == "proxy":
            return self._render_proxy(version)
        if not self.master_password:
            raise DovecotError("POSTAMT_MASTER_PASSWORD is not set: workers could not log in")
        tls = render_tls(version, self.ssl_cert, self.ssl_key)
        mail_pw = pwd.getpwnam(self.mail_user)
        _make_private_root(self.root, mail_pw.pw_gid)
        for directory in (self.conf_dir, self.root / "log", self.root / "state"):
            directory.mkdir(exist_ok=True, mode=0o700)
            directory.chmod(0o700)
        _check_traversable(self.mail_root, mail_pw.pw_uid, mail_pw.pw_gid)
        self.mail_root.mkdir(exist_ok=True, mode=0o700)
        os.chown(self.mail_root, mail_pw.pw_uid, mail_pw.pw_gid)
        self.mail_root.chmod(0o700)
        self._clear_stale_base_dir()
        context = {
            "server": self.server,
            "instance_name": self.instance_name or f"postamt-{self.server}",
            "root": self.root,
            "conf_dir": self.conf_dir,
            "mail_root": self.mail_root,
            "log_path": self.root / "log" / "dovecot.log",
            "listen": self.listen,
            "imap_port": self.imap_port,
            "pop3_port": self.pop3_port,
            "imaps_port": self.imaps_port,
            "pop3s_port": self.pop3s_port,
            "lmtp_port": self.lmtp_port,
            "tls": tls,
            "doveadm_port": self.doveadm_port,
            "doveadm_api_key": self.doveadm_api_key,
            "master_user": self.master_user,
            "mail_user": self.mail_user,
            "mail_uid": mail_pw.pw_uid,
            "mail_fsync": self.mail_fsync,
            "auth_penalty": self.auth_penalty,
            **sql_settings(self.db),
        }
        self._write(self.config_file, render_to_string(f"dovecot/dovecot-{version}.conf", context))
        if version == "2.3":
            for name in ("dovecot-sql", "dovecot-dict-sql"):
                self._write(
                    self.conf_dir / f"{name}.conf.ext",
                    render_to_string(f"dovecot/{name}-2.3.conf.ext", context),
                )
        self._write(
            self.conf_dir / "master-users",
            f"{self.master_user}:{ssha512(self.master_password)}\n",
        )
        return self.config_file

    def _render_proxy(self, version: Literal["2.3", "2.4"]) -> Path:
        """The proxy keeps no mail and knows no master user: only its configuration, which
        holds the database password and is root's alone. Customers meet it as they would a
        mail server (TLS required off loopback); it logs in to the mail servers over TLS."""
        tls = render_tls(version, self.ssl_cert, self.ssl_key)
        for directory in (self.root, self.conf_dir, self.root / "log", self.root / "state"):
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            directory.chmod(0o700)
        self._clear_stale_base_dir()
        context = {
            "server": self.server,
            "instance_name": self.instance_name or f"postamt-{self.server}",
            "root": self.root,
            "conf_dir": self.conf_dir,
            "log_path": self.root / "log" / "dovecot.log",
            "listen": self.listen,
            "imap_port": self.imap_port,
            "pop3_port": self.pop3_port,
            "imaps_port": self.imaps_port,
            "pop3s_port": self.pop3s_port,
            "lmtp_port": self.lmtp_port,
            "tls": tls,
            "ca_file": self.ca_file,
            "auth_penalty": self.auth_penalty,
            **sql_settings(self.db),
        }
        self._write(self.config_file, render_to_string(f"dovecot/proxy-{version}.conf", context))
        if version == "2.3":
            self._write(
                self.conf_dir / "dovecot-sql.conf.ext",
                render_to_string("dovecot/proxy-sql-2.3.conf.ext", context),
            )
        return self.config_file

    def running_pid(self) -> int | None:
        """The pid of a live master process of this instance, if any."""
        try:
            pid = int((self.root / "run" / "master.pid").read_text().split()[0])
            os.kill(pid, 0)
        except (OSError, ValueError, IndexError):
            return None
        return pid

    @staticmethod
    def _write(path: Path, text: str) -> None:
        """Atomically write a file only root can read: it holds database and master secrets."""
        tmp = path.with_suffix(path.suffix + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)

    def check(self) -> None:
        """Let Dovecot itself validate the rendered file."""
        result = subprocess.run(
            [self.binary, "-n", "-c", str(self.config_file)],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise DovecotError(f"doveconf rejected the configuration: {result.stderr.strip()}")

    def start(self, timeout: float = 20.0) -> None:
        """Start ``dovecot -F`` as a child and wait until every protocol greets."""
        self.render()
        self.process = subprocess.Popen([self.binary, "-F", "-c", str(self.config_file)])
        try:
            self.wait_ready(timeout)
        except DovecotError:
            self.stop()
            raise

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        greetings = {self.imap_port: b"* OK", self.pop3_port: b"+OK", self.lmtp_port: b"220"}
        for port, greeting in greetings.items():
            while True:
                if self.process is not None and self.process.poll() is not None:
                    raise DovecotError(
                        f"dovecot exited with {self.process.returncode}; see {self.log_tail()}"
                    )
                if _greets(self.listen, port, greeting):
                    break
                if time.monotonic() > deadline:
                    raise DovecotError(f"dovecot did not answer on port {port}: {self.log_tail()}")
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 20) -> str:
        log = self.root / "log" / "dovecot.log"
        if not log.exists():
            return "(no log)"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def render_tls(version: Literal["2.3", "2.4"], cert: str, key: str) -> str:
    """The TLS settings of either version: TLS required for every login except on loopback
    (Dovecot counts a connection whose remote and local address are the same as secured)."""
    if not cert or not key:
        raise DovecotError(
            "DOVECOT_SSL_CERT and DOVECOT_SSL_KEY are not set: Dovecot serves TLS only"
        )
    for path in (cert, key):
        if not Path(path).is_file():
            raise DovecotError(f"{path} does not exist: Dovecot cannot serve TLS without it")
    return render_to_string(f"dovecot/tls-{version}.conf", {"cert": cert, "key": key}).strip()


def _make_private_root(root: Path, mail_gid: int) -> None:
    """Create the root (and any missing parent) so that only root and the mail group may
    enter it, and nobody else may list it: other local users must not reach the mail or
    Dovecot's sockets, while mail processes (group mail) must pass through to their homes."""
    missing = [root, *(p for p in root.parents if not p.exists())]
    for path in reversed(missing):
        path.mkdir(exist_ok=True)
        os.chown(path, -1, mail_gid)
        path.chmod(0o710)


def _check_traversable(path: Path, uid: int, gid: int) -> None:
    """Mail processes run as the mail user: every parent of the mail root must let it pass."""
    for parent in path.resolve().parents:
        mode = parent.stat()
        if mode.st_mode & stat.S_IXOTH:
            continue
        if (mode.st_uid == uid and mode.st_mode & stat.S_IXUSR) or (
            mode.st_gid == gid and mode.st_mode & stat.S_IXGRP
        ):
            continue
        raise DovecotError(
            f"the mail user cannot enter {parent}; set DOVECOT_ROOT to a directory outside it"
        )


def _greets(host: str, port: int, greeting: bytes) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1) as sock:
            sock.settimeout(1)
            return sock.recv(64).startswith(greeting)
    except OSError:
        return False


def ssha512(password: str) -> str:
    """A salted SHA-512 for the master passwd-file: cheap, because workers log in constantly."""
    salt = secrets.token_bytes(16)
    digest = hashlib.sha512(password.encode() + salt).digest()
    return "{SSHA512}" + base64.b64encode(digest + salt).decode()
