"""TLS between Postamt and its mail servers.

Workers verify every server's certificate and host name against ``POSTAMT_MAIL_CA_FILE`` (the
system CAs when empty, as with Let's Encrypt). ``make run`` and the tests have no public
certificate: ``make_private_ca`` gives them a CA of their own and a server certificate it signed.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import ssl
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.conf import settings

from .errors import MailServerUnavailable, UntrustedCertificate


def client_context() -> ssl.SSLContext:
    """The context every connection to a mail server uses: certificate and host name checked."""
    return _context(settings.POSTAMT_MAIL_CA_FILE or None)


@cache
def _context(ca_file: str | None) -> ssl.SSLContext:
    # One per CA file and process: loading the system CAs costs milliseconds per connection.
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def check_certificate(host: str, port: int, timeout: float) -> None:
    """A TLS handshake with ``host``, as the workers make it: raises ``UntrustedCertificate``
    if its certificate does not verify, ``MailServerUnavailable`` if it cannot be reached."""
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as sock,
            client_context().wrap_socket(sock, server_hostname=host),
        ):
            return
    except ssl.SSLCertVerificationError as exc:
        raise UntrustedCertificate(f"{host}:{port}: {exc.verify_message}") from exc
    except OSError as exc:
        raise MailServerUnavailable(f"cannot reach {host}:{port}: {exc}") from exc


@dataclass(frozen=True)
class PrivateCA:
    ca_file: Path  # what workers and mail programs trust
    cert_file: Path  # Dovecot's certificate
    key_file: Path  # its private key, readable by its owner only


def make_private_ca(
    directory: Path, names: tuple[str, ...] = ("localhost", "127.0.0.1"), days: int = 825
) -> PrivateCA:
    """A CA and a server certificate for ``names`` (host names or IP addresses) in
    ``directory``; files already there are kept, so a CA that mail programs trust stays."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    result = PrivateCA(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    if all(path.exists() for path in (result.ca_file, result.cert_file, result.key_file)):
        return result
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Postamt private CA")])
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key(), now, days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    cert = (
        _builder(subject, ca_name, key.public_key(), now, days)
        .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write(result.key_file, key.private_bytes(*_PKCS8))
    _write(result.cert_file, cert.public_bytes(serialization.Encoding.PEM))
    _write(result.ca_file, ca_cert.public_bytes(serialization.Encoding.PEM))
    # The CA's key is not kept: nothing else is ever signed with it.
    return result


_PKCS8 = (
    serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8,
    serialization.NoEncryption(),
)


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    now: datetime.datetime,
    days: int,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
    )


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
