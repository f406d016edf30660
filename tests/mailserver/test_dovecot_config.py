"""The Dovecot configuration Postamt renders, for 2.3 and 2.4, on PostgreSQL and SQLite.

Only the installed Dovecot (2.3 on Debian 12) can check its own file here; the 2.4 template is run
against Debian 13's real Dovecot by scripts/check-dovecot-2.4.sh (see docs/dovecot.md).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest

from mailserver.dovecot import DovecotError, DovecotInstance, detect_version
from mailserver.tls import make_private_ca

POSTGRES: dict[str, Any] = {
    "ENGINE": "django.db.backends.postgresql",
    "NAME": "postamt",
    "HOST": "db.internal",
    "PORT": 5433,
    "USER": "dovecot",
    "PASSWORD": "se#cret 'q\\",  # a comment sign, a space, a quote and a backslash
}
SQLITE: dict[str, Any] = {"ENGINE": "django.db.backends.sqlite3"}  # NAME: in the test's root
DATABASES = {"pgsql": POSTGRES, "sqlite": SQLITE}
Version = Literal["2.3", "2.4"]


@pytest.fixture
def root() -> Iterator[Path]:
    """Like the test Dovecot's root: outside pytest's 0700 tmp, so the mail user can enter it."""
    path = Path(tempfile.mkdtemp(prefix="postamt-dovecot-conf-"))
    path.chmod(0o755)
    make_private_ca(path / "tls")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def instance(root: Path, backend: str, **overrides: Any) -> DovecotInstance:
    db = dict(DATABASES[backend])
    if backend == "sqlite":
        db["NAME"] = str(root / "postamt.sqlite3")
    values: dict[str, Any] = {
        "root": root,
        "server": "mx1",
        "imap_port": 10143,
        "pop3_port": 10110,
        "lmtp_port": 10024,
        "master_user": "postamt",
        "master_password": "master-secret",
        "ssl_cert": str(root / "tls" / "server.pem"),
        "ssl_key": str(root / "tls" / "server.key"),
        "db": db,
    }
    values.update(overrides)
    return DovecotInstance(**values)


def render(root: Path, backend: str, version: Version, **overrides: Any) -> str:
    return instance(root, backend, **overrides).render(version=version).read_text()


def settings_lines(text: str) -> list[str]:
    """The non-blank, non-comment lines, stripped."""
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def block(text: str, header: str) -> str:
    """The body of the top-level block that starts with ``header {``."""
    match = re.search(rf"(?ms)^{re.escape(header)} {{\n(.*?)^}}", text)
    assert match, f"no block {header!r}"
    return match.group(1)


# --- 2.4 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["pgsql", "sqlite"])
def test_24_versions_come_first(root: Path, backend: str) -> None:
    lines = settings_lines(render(root, backend, "2.4"))
    assert lines[:2] == ["dovecot_config_version = 2.4.0", "dovecot_storage_version = 2.4.0"]
    assert render(root, backend, "2.4").startswith("dovecot_config_version = 2.4.0\n")


@pytest.mark.parametrize("backend", ["pgsql", "sqlite"])
def test_24_uses_24_syntax_only(root: Path, backend: str) -> None:
    text = render(root, backend, "2.4")
    lines = settings_lines(text)
    assert "auth_allow_cleartext = no" in lines
    assert "mail_driver = maildir" in lines
    assert "mail_path = ~/Maildir" in lines
    assert f"mail_home = {root}/mail/%{{user | domain}}/%{{user | username}}" in lines
    assert "quota_storage_grace = 0" in lines
    assert 'quota "User quota" {' in lines
    gone = ["disable_plaintext_auth", "mail_location", "$mail_plugins", "quota_rule"]
    gone += ["quota_vsizes", "quota_grace", "service_count", "args =", "connect ="]
    assert [word for word in gone if word in text] == []
    # Short variables are 2.3 syntax: 2.4 would send "%u" to SQL literally and refuse everyone.
    assert not re.search(r"%[a-zA-Z]", text)
    assert not (root / "conf" / "dovecot-sql.conf.ext").exists()


@pytest.mark.parametrize("backend", ["pgsql", "sqlite"])
def test_24_queries_read_the_view(root: Path, backend: str) -> None:
    text = render(root, backend, "2.4")
    passdb = block(text, "passdb sql")
    assert "FROM dovecot_users WHERE username = '%{user}' AND server = 'mx1'" in passdb
    assert "AND active = 1 AND (protocol = '%{protocol}' OR '%{master_user}' <> '')" in passdb
    userdb = block(text, "userdb sql")
    assert f"SELECT '{root}/mail/' || storage_path AS home" in userdb
    assert "quota_bytes AS quota_storage_size," in userdb
    assert "FROM dovecot_users WHERE username = '%{user}' AND server = 'mx1'" in userdb
    assert "iterate_query = SELECT username AS user FROM dovecot_users WHERE server = 'mx1'" in (
        userdb
    )


@pytest.mark.parametrize("backend", ["pgsql", "sqlite"])
def test_24_master_passdb_comes_first(root: Path, backend: str) -> None:
    text = render(root, backend, "2.4")
    masters = settings_lines(block(text, "passdb masters"))
    assert masters == [
        "driver = passwd-file",
        f"passwd_file_path = {root}/conf/master-users",
        "master = yes",
        "result_success = continue",
    ]
    assert text.index("passdb masters {") < text.index("passdb sql {")
    assert "auth_master_user_separator = *" in text


def test_24_pgsql_block(root: Path) -> None:
    text = render(root, "pgsql", "2.4")
    assert "sql_driver = pgsql" in settings_lines(text)
    assert settings_lines(block(text, "pgsql db.internal")) == [
        "parameters {",
        "port = 5433",
        'dbname = "postamt"',
        'user = "dovecot"',
        # Quoted and escaped: unquoted, Dovecot would cut the password at "#".
        'password = "se#cret \\\'q\\\\"',
        "}",
    ]
    assert "sqlite_path" not in text


def test_24_pgsql_without_password(root: Path) -> None:
    db = {**POSTGRES, "PASSWORD": "", "HOST": ""}
    text = render(root, "pgsql", "2.4", db=db)
    assert "password" not in block(text, "pgsql localhost")


def test_24_sqlite_path(root: Path) -> None:
    text = render(root, "sqlite", "2.4")
    lines = settings_lines(text)
    assert "sql_driver = sqlite" in lines
    assert f'sqlite_path = "{root}/postamt.sqlite3"' in lines
    assert not re.search(r"(?m)^pgsql ", text)


@pytest.mark.parametrize("backend", ["pgsql", "sqlite"])
def test_24_last_login_goes_to_postamts_table(root: Path, backend: str) -> None:
    text = render(root, backend, "2.4")
    assert settings_lines(block(text, "last_login")) == [
        "dict proxy {",
        "name = lastlogin",
        "}",
        "key = last-login/%{protocol}/%{user}",
    ]
    server = settings_lines(block(text, "dict_server"))
    assert server == [
        "dict lastlogin {",
        "driver = sql",
        "dict_map shared/last-login/$protocol/$user {",
        "sql_table = dovecot_last_login",
        "value_field last_login {",
        "type = uint",
        "}",
        "key_field protocol {",
        "value = $protocol",
        "}",
        "key_field username {",
        "value = $user",
        "}",
        "}",
        "}",
    ]
    # The dict process runs as root (a SQLite file anywhere); only the mail user may use it.
    assert settings_lines(block(text, "service dict")) == [
        "user = root",
        "unix_listener dict {",
        "mode = 0600",
        "user = mail",
        "}",
    ]


def test_24_last_login_only_for_own_imap_and_pop3_logins(root: Path) -> None:
    text = render(root, "pgsql", "2.4")
    assert "last_login = yes" in block(text, "protocol imap")
    assert "last_login = yes" in block(text, "protocol pop3")
    assert "last_login" not in block(text, "mail_plugins")  # not for LMTP or doveadm
    # Workers' master logins turn it off: polling must not look like the customer's login.
    userdb = block(text, "userdb sql")
    assert (
        "CASE WHEN '%{master_user}' <> '' THEN 'no' END AS \"*/mail_plugins/last_login\""
    ) in userdb


# --- 2.3 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["pgsql", "sqlite"])
def test_23_main_file(root: Path, backend: str) -> None:
    text = render(root, backend, "2.3")
    lines = settings_lines(text)
    assert lines[0] == "instance_name = postamt-mx1"
    assert "dovecot_config_version" not in text
    assert "mail_location = maildir:~/Maildir" in lines
    assert f"mail_home = {root}/mail/%d/%n" in lines
    assert "mail_plugins = $mail_plugins quota" in lines
    assert "quota = count:User quota" in lines
    assert "quota_grace = 0%%" in lines  # Dovecot expands "%%" to "%"
    passdbs = re.findall(r"(?ms)^passdb {\n(.*?)^}", text)
    assert [settings_lines(p) for p in passdbs] == [
        ["driver = passwd-file", f"args = {root}/conf/master-users", "master = yes", "pass = yes"],
        ["driver = sql", f"args = {root}/conf/dovecot-sql.conf.ext"],
    ]
    assert settings_lines(block(text, "userdb")) == [
        "driver = sql",
        f"args = {root}/conf/dovecot-sql.conf.ext",
    ]


@pytest.mark.parametrize("backend", ["pgsql", "sqlite"])
def test_23_sql_file(root: Path, backend: str) -> None:
    render(root, backend, "2.3")
    sql = settings_lines((root / "conf" / "dovecot-sql.conf.ext").read_text())
    assert f"driver = {backend}" in sql
    queries = dict(line.split(" = ", 1) for line in sql if " = " in line)
    assert "WHERE username = '%u' AND server = 'mx1' AND active = 1" in queries["password_query"]
    assert "(protocol = '%s' OR '%{master_user}' <> '')" in queries["password_query"]
    assert f"SELECT '{root}/mail/' || storage_path AS home" in queries["user_query"]
    assert "'*:bytes=' || quota_bytes AS quota_rule" in queries["user_query"]
    assert queries["iterate_query"] == (
        "SELECT username AS user FROM dovecot_users WHERE server = 'mx1'"
    )
    if backend == "sqlite":
        assert queries["connect"] == f'"{root}/postamt.sqlite3"'
    else:
        # libpq quoting inside Dovecot quoting: the password keeps its "#", space and quote.
        assert queries["connect"] == (
            '"host=db.internal port=5433 dbname=postamt user=dovecot '
            "password=\\'se#cret \\\\\\'q\\\\\\\\\\'\""
        )


@pytest.mark.parametrize("backend", ["pgsql", "sqlite"])
def test_23_last_login_goes_to_postamts_table(root: Path, backend: str) -> None:
    text = render(root, backend, "2.3")
    lines = settings_lines(text)
    assert "last_login_key = last-login/%s/%u" in lines
    assert "mail_plugins = $mail_plugins imap_quota last_login" in block(text, "protocol imap")
    assert "mail_plugins = $mail_plugins last_login" in block(text, "protocol pop3")
    assert settings_lines(block(text, "dict")) == [
        f"lastlogin = {backend}:{root}/conf/dovecot-dict-sql.conf.ext"
    ]
    assert settings_lines(block(text, "service dict")) == [
        "user = root",
        "unix_listener dict {",
        "mode = 0600",
        "user = mail",
        "}",
    ]
    dict_sql = (root / "conf" / "dovecot-dict-sql.conf.ext").read_text()
    sql = (root / "conf" / "dovecot-sql.conf.ext").read_text()
    connect = [line for line in settings_lines(sql) if line.startswith("connect = ")]
    assert connect and connect[0] in settings_lines(dict_sql)
    assert settings_lines(block(dict_sql, "map")) == [
        "pattern = shared/last-login/$protocol/$user",
        "table = dovecot_last_login",
        "value_field = last_login",
        "value_type = uint",
        "fields {",
        "protocol = $protocol",
        "username = $user",
        "}",
    ]


def test_23_last_login_only_for_own_logins(root: Path) -> None:
    """The userdb hands the dict to the user's own logins only, not to master logins."""
    text = render(root, "sqlite", "2.3")
    assert not [line for line in settings_lines(text) if line.startswith("last_login_dict")]
    sql = settings_lines((root / "conf" / "dovecot-sql.conf.ext").read_text())
    queries = dict(line.split(" = ", 1) for line in sql if " = " in line)
    assert (
        "CASE WHEN '%{master_user}' = '' THEN 'proxy::lastlogin' END AS last_login_dict"
    ) in queries["user_query"]


# --- both -----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2.3", "2.4"])
def test_optional_blocks(root: Path, version: Version) -> None:
    plain = render(root, "sqlite", version)
    assert "doveadm_api_key" not in plain and "service doveadm" not in plain
    assert "service anvil" in render(root, "sqlite", version, auth_penalty=False)
    assert "service anvil" not in plain
    text = render(root, "sqlite", version, doveadm_port=10808, doveadm_api_key="k3y")
    assert "doveadm_api_key = k3y" in text
    assert "port = 10808" in block(text, "service doveadm")


@pytest.mark.parametrize("version", ["2.3", "2.4"])
def test_secrets_are_root_only(root: Path, version: Version) -> None:
    render(root, "pgsql", version)
    conf = root / "conf"
    files = [conf / "dovecot.conf", conf / "master-users"]
    if version == "2.3":
        files += [conf / "dovecot-sql.conf.ext", conf / "dovecot-dict-sql.conf.ext"]
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    user, hashed = (conf / "master-users").read_text().strip().split(":", 1)
    assert user == "postamt" and hashed.startswith("{SSHA512}")
    assert "master-secret" not in (conf / "dovecot.conf").read_text()


def can_open(user: str, path: Path) -> bool:
    """Whether the local user (with its own group only, as Dovecot runs its mail processes)
    can list the folder or read the file."""
    command = ["ls", str(path)] if path.is_dir() else ["cat", str(path)]
    group = pwd.getpwnam(user).pw_gid
    result = subprocess.run(command, user=user, group=group, extra_groups=[], capture_output=True)
    return result.returncode == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="acting as other users needs root")
def test_other_local_users_cannot_reach_dovecots_files(root: Path) -> None:
    """Configuration, logs, state and mail are private; only the mail user (mail
    processes) passes through to the mail, and only there."""
    dovecot_root = root / "lib" / "postamt"  # its parents are made as well
    old_umask = os.umask(0o022)
    try:
        dovecot = instance(
            dovecot_root,
            "sqlite",
            ssl_cert=str(root / "tls" / "server.pem"),
            ssl_key=str(root / "tls" / "server.key"),
        )
        dovecot.render(version="2.3")
    finally:
        os.umask(old_umask)
    (dovecot_root / "log" / "dovecot.log").write_text("")
    private = [
        root / "lib", dovecot_root, dovecot.config_file, dovecot.conf_dir / "master-users",
        dovecot_root / "log" / "dovecot.log", dovecot_root / "state", dovecot.mail_root,
    ]  # fmt: skip
    for path in private:
        assert not can_open("nobody", path), path
    assert can_open("mail", dovecot.mail_root)
    for path in (dovecot_root, dovecot.config_file, dovecot_root / "log" / "dovecot.log"):
        assert not can_open("mail", path), path


TLS_LINES = {
    "2.3": ["ssl_cert = <{cert}", "ssl_key = <{key}", "disable_plaintext_auth = yes"],
    "2.4": ["ssl_server_cert_file = {cert}", "ssl_server_key_file = {key}"]
    + ["auth_allow_cleartext = no"],
}


@pytest.mark.parametrize("version", ["2.3", "2.4"])
def test_every_login_off_loopback_needs_tls(root: Path, version: Version) -> None:
    text = render(root, "sqlite", version, imaps_port=10993, pop3s_port=10995, doveadm_port=10808)
    lines = settings_lines(text)
    cert, key = root / "tls" / "server.pem", root / "tls" / "server.key"
    assert "ssl = required" in lines
    for line in TLS_LINES[version]:
        assert line.format(cert=cert, key=key) in lines
    # Trusted networks count as secured, like loopback: none are configured.
    assert not any(line.startswith("login_trusted_networks") for line in lines)
    imap_login, pop3_login = block(text, "service imap-login"), block(text, "service pop3-login")
    assert "inet_listener imaps {\n    port = 10993\n    ssl = yes" in imap_login
    assert "inet_listener pop3s {\n    port = 10995\n    ssl = yes" in pop3_login
    assert "port = 10808\n    ssl = yes" in block(text, "service doveadm")


@pytest.mark.parametrize("field", ["ssl_cert", "ssl_key"])
def test_a_certificate_and_key_are_required(root: Path, field: str) -> None:
    with pytest.raises(DovecotError, match="DOVECOT_SSL_CERT and DOVECOT_SSL_KEY"):
        instance(root, "sqlite", **{field: ""}).render(version="2.3")
    with pytest.raises(DovecotError, match="does not exist"):
        instance(root, "sqlite", **{field: str(root / "missing.pem")}).render(version="2.4")


def test_master_password_is_required(root: Path) -> None:
    with pytest.raises(DovecotError, match="POSTAMT_MASTER_PASSWORD"):
        instance(root, "sqlite", master_password="").render(version="2.4")


@pytest.mark.integration
@pytest.mark.parametrize("backend", ["pgsql", "sqlite"])
def test_installed_dovecot_accepts_its_file(root: Path, backend: str) -> None:
    """``dovecot -n -c`` on the file rendered for the installed version (2.3 on Debian 12)."""
    binary = "/usr/sbin/dovecot"
    if not Path(binary).exists():
        pytest.skip("Dovecot is not installed")
    dovecot = instance(
        root, backend, binary=binary, doveadm_port=10808, doveadm_api_key="k3y", auth_penalty=False
    )
    dovecot.render()  # the installed version's template
    dovecot.check()
    version = "2.4" if detect_version(binary) >= (2, 4) else "2.3"
    first = dovecot.config_file.read_text().splitlines()[0]
    assert first.startswith("dovecot_config_version") == (version == "2.4")


# --- the proxy ------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["pgsql", "sqlite"])
def test_24_proxy_routes_from_the_proxy_view(root: Path, backend: str) -> None:
    text = render(root, backend, "2.4", role="proxy", master_password="")
    assert text.startswith("dovecot_config_version = 2.4.0\n")
    assert not re.search(r"%[a-zA-Z]", text)
    passdb = block(text, "passdb sql")
    assert "'y' AS proxy, host," in passdb
    assert "FROM dovecot_proxy WHERE username = '%{user}'" in passdb
    assert "(active = 1 AND protocol = '%{protocol}')" in passdb
    assert "lmtp_proxy = yes" in settings_lines(text)
    assert "mail_driver" not in text and "master" not in text


@pytest.mark.parametrize("backend", ["pgsql", "sqlite"])
def test_23_proxy_routes_from_the_proxy_view(root: Path, backend: str) -> None:
    text = render(root, backend, "2.3", role="proxy", master_password="")
    assert "lmtp_proxy = yes" in settings_lines(text)
    assert "mail_location" not in text and "master" not in text
    sql = settings_lines((root / "conf" / "dovecot-sql.conf.ext").read_text())
    query = dict(line.split(" = ", 1) for line in sql if " = " in line)["password_query"]
    assert "'y' AS proxy, host," in query
    assert "FROM dovecot_proxy WHERE username = '%u'" in query
    assert "(active = 1 AND protocol = '%s')" in query
    assert stat.S_IMODE((root / "conf" / "dovecot-sql.conf.ext").stat().st_mode) == 0o600
    assert not (root / "conf" / "master-users").exists() and not (root / "mail").exists()


@pytest.mark.parametrize("version", ["2.3", "2.4"])
def test_customers_reach_the_proxy_over_tls_only(root: Path, version: Version) -> None:
    """The proxy is the customers' address: TLS as on a mail server, and no doveadm API."""
    text = render(
        root, "sqlite", version, role="proxy", master_password="", imaps_port=11993,
        pop3s_port=11995, doveadm_port=11808,
    )  # fmt: skip
    lines = settings_lines(text)
    cert, key = root / "tls" / "server.pem", root / "tls" / "server.key"
    assert "ssl = required" in lines
    for line in TLS_LINES[version]:
        assert line.format(cert=cert, key=key) in lines
    assert not any(line.startswith("login_trusted_networks") for line in lines)
    imap_login, pop3_login = block(text, "service imap-login"), block(text, "service pop3-login")
    assert "inet_listener imaps {\n    port = 11993\n    ssl = yes" in imap_login
    assert "inet_listener pop3s {\n    port = 11995\n    ssl = yes" in pop3_login
    assert "service doveadm" not in text and "doveadm_api_key" not in text


def proxy_query(root: Path, version: Version, text: str) -> str:
    if version == "2.4":
        return block(text, "passdb sql")
    sql = settings_lines((root / "conf" / "dovecot-sql.conf.ext").read_text())
    return dict(line.split(" = ", 1) for line in sql if " = " in line)["password_query"]


@pytest.mark.parametrize("version", ["2.3", "2.4"])
def test_the_proxy_logs_in_to_the_mail_servers_over_verified_tls(
    root: Path, version: Version
) -> None:
    """IMAP and POP3 go on to the mail server's IMAPS and POP3S ports (ssl=yes: certificate and
    host name verified); LMTP to its LMTP port in cleartext, without the ssl field."""
    ca_file = str(root / "tls" / "ca.pem")
    text = render(root, "sqlite", version, role="proxy", master_password="", ca_file=ca_file)
    protocol = "'%{protocol}'" if version == "2.4" else "'%s'"
    query = proxy_query(root, version, text)
    assert (
        f"CASE {protocol} WHEN 'imap' THEN imaps_port WHEN 'pop3' THEN pop3s_port"
        " ELSE lmtp_port END AS port" in query
    )
    assert f"CASE {protocol} WHEN 'lmtp' THEN NULL ELSE 'yes' END AS ssl" in query
    lines = settings_lines(text)
    if version == "2.4":
        assert f"ssl_client_ca_file = {ca_file}" in lines
    else:  # 2.3's login processes verify against OpenSSL's default CAs only
        (environment,) = [line for line in lines if line.startswith("import_environment")]
        assert environment.endswith(f" SSL_CERT_FILE={ca_file}")
    for service in ("service imap-login", "service pop3-login"):
        assert "chroot =\n" in block(text, service)  # the CAs are read after start


@pytest.mark.parametrize("version", ["2.3", "2.4"])
def test_without_a_ca_file_the_proxy_trusts_the_system_cas(root: Path, version: Version) -> None:
    text = render(root, "sqlite", version, role="proxy", master_password="", ca_file="")
    lines = settings_lines(text)
    assert not any(line.startswith(("import_environment", "ssl_client_ca_file")) for line in lines)
    if version == "2.4":
        assert "ssl_client_ca_dir = /etc/ssl/certs" in lines


@pytest.mark.parametrize("version", ["2.3", "2.4"])
def test_mail_servers_trust_no_network_for_cleartext(root: Path, version: Version) -> None:
    """Dovecot 2.3 counts login_trusted_networks as secured even with ssl = required: a mail
    server behind the proxy trusts none, so the proxy's cleartext login would be refused."""
    lines = settings_lines(render(root, "sqlite", version))
    assert not any(line.startswith("login_trusted_networks") for line in lines)


@pytest.mark.integration
@pytest.mark.parametrize("backend", ["pgsql", "sqlite"])
def test_installed_dovecot_accepts_the_proxy_file(root: Path, backend: str) -> None:
    binary = "/usr/sbin/dovecot"
    if not Path(binary).exists():
        pytest.skip("Dovecot is not installed")
    dovecot = instance(root, backend, binary=binary, role="proxy", auth_penalty=False)
    dovecot.render()
    dovecot.check()
