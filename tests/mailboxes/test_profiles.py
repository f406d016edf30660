"""Apple configuration profiles: one account of the mailbox's protocol, no password, and a
CMS signature when the hoster configured a certificate."""

from __future__ import annotations

import datetime
import plistlib
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from mailboxes import profiles
from tests.factories import make_domain, make_mailbox, make_server

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _public_names(settings):  # type: ignore[no-untyped-def]
    settings.POSTAMT_MAIL_HOSTNAME = "mail.hoster.example"
    settings.POSTAMT_MAIL_SECURITY = "ssl"
    settings.POSTAMT_SUBMISSION_HOST = ""
    settings.POSTAMT_PROFILE_SIGNING_CERT = ""
    settings.POSTAMT_PROFILE_SIGNING_KEY = ""


def test_an_imap_profile_has_one_imap_account_and_no_password() -> None:
    make_server("mx1")
    mailbox = make_mailbox("anna", protocol="imap", domain=make_domain(name="bäckerei.example"))
    profile = plistlib.loads(profiles.mobileconfig(mailbox))
    assert profile["PayloadType"] == "Configuration"
    (account,) = profile["PayloadContent"]
    assert account["PayloadType"] == "com.apple.mail.managed"
    assert account["EmailAccountType"] == "EmailTypeIMAP"
    assert account["EmailAddress"] == "anna@bäckerei.example"
    assert account["IncomingMailServerUsername"] == "anna@xn--bckerei-5wa.example"
    assert account["IncomingMailServerHostName"] == "mail.hoster.example"
    assert account["IncomingMailServerPortNumber"] == 993
    assert account["IncomingMailServerUseSSL"] is True
    assert not any("Password" in key and key.endswith("Password") for key in account)
    assert "OutgoingMailServerHostName" not in account  # the hoster has no submission host
    # Installing it again replaces the account: the identifiers do not change.
    assert plistlib.loads(profiles.mobileconfig(mailbox)) == profile


def test_a_pop3_profile_with_a_submission_host(settings) -> None:  # type: ignore[no-untyped-def]
    settings.POSTAMT_SUBMISSION_HOST = "smtp.hoster.example"
    make_server("mx1")
    mailbox = make_mailbox("bob", protocol="pop3", domain=make_domain(name="shop.example"))
    (account,) = plistlib.loads(profiles.mobileconfig(mailbox))["PayloadContent"]
    assert account["EmailAccountType"] == "EmailTypePOP"
    assert account["IncomingMailServerPortNumber"] == 995
    assert account["OutgoingMailServerHostName"] == "smtp.hoster.example"
    assert account["OutgoingMailServerPortNumber"] == 465
    assert account["OutgoingPasswordSameAsIncomingPassword"] is True


def _certificate(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Hoster profiles")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_a_profile_is_signed_when_a_certificate_is_configured(tmp_path, settings) -> None:  # type: ignore[no-untyped-def]
    cert_path, key_path = _certificate(tmp_path)
    settings.POSTAMT_PROFILE_SIGNING_CERT = str(cert_path)
    settings.POSTAMT_PROFILE_SIGNING_KEY = str(key_path)
    make_server("mx1")
    mailbox = make_mailbox("anna", protocol="imap", domain=make_domain(name="shop.example"))
    signed = profiles.mobileconfig(mailbox)
    assert not signed.startswith(b"<?xml")
    (signer,) = pkcs7.load_der_pkcs7_certificates(signed)
    assert signer == x509.load_pem_x509_certificate(cert_path.read_bytes())
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: the signature itself is not checked")
    verified = subprocess.run(
        ["openssl", "cms", "-verify", "-inform", "DER", "-CAfile", str(cert_path)],
        input=signed,
        capture_output=True,
        check=True,
    ).stdout
    assert plistlib.loads(verified)["PayloadContent"][0]["EmailAccountType"] == "EmailTypeIMAP"
