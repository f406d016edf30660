"""Apple configuration profiles (.mobileconfig) for one mailbox, signed when a certificate is
configured, and the short-lived links that let a phone fetch one without logging in.

The profile holds no password: iOS and macOS ask for it when the profile is installed.
"""

from __future__ import annotations

import plistlib
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.core import signing

from .client_settings import PLAIN, ClientSettings, for_mailbox
from .models import Mailbox, Protocol

MEDIA_TYPE = "application/x-apple-aspen-config"
_TOKEN_SALT = "mailboxes.profiles.link"


def _identifier_base() -> str:
    """A reverse-DNS name of the site (``net.example.panel``) for the payload identifiers."""
    host = urlsplit(settings.SITE_URL).hostname or "localhost"
    return ".".join(reversed(host.split(".")))


def _uuid(kind: str, login: str) -> str:
    # Stable per mailbox: installing the profile again replaces the account, not doubles it.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{settings.SITE_URL}#{kind}:{login}")).upper()


def profile_data(mailbox: Mailbox) -> dict[str, object]:
    client = for_mailbox(mailbox)
    assert client.login is not None
    incoming = client.incoming[0]
    base = f"{_identifier_base()}.mail.{client.login}"
    account: dict[str, object] = {
        "PayloadType": "com.apple.mail.managed",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{base}.account",
        "PayloadUUID": _uuid("account", client.login),
        "PayloadDisplayName": mailbox.display_address,
        "EmailAccountDescription": mailbox.display_address,
        "EmailAccountType": "EmailTypeIMAP"
        if incoming.protocol == Protocol.IMAP
        else "EmailTypePOP",
        "EmailAddress": mailbox.display_address,
        "IncomingMailServerAuthentication": "EmailAuthPassword",
        "IncomingMailServerHostName": incoming.hostname,
        "IncomingMailServerPortNumber": incoming.port,
        "IncomingMailServerUseSSL": incoming.security != PLAIN,
        "IncomingMailServerUsername": client.login,
    }
    account.update(_outgoing(client))
    return {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": base,
        "PayloadUUID": _uuid("profile", client.login),
        "PayloadDisplayName": f"{settings.POSTAMT_PROVIDER_NAME}: {mailbox.display_address}",
        "PayloadOrganization": settings.POSTAMT_PROVIDER_NAME,
        "PayloadRemovalDisallowed": False,
        "PayloadContent": [account],
    }


def _outgoing(client: ClientSettings) -> dict[str, object]:
    """The submission server, when the hoster has one. Without it the profile has no outgoing
    server, and iOS asks for one when the account is added."""
    out = client.outgoing
    if out is None:
        return {}
    return {
        "OutgoingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingMailServerHostName": out.hostname,
        "OutgoingMailServerPortNumber": out.port,
        "OutgoingMailServerUseSSL": out.security != PLAIN,
        "OutgoingMailServerUsername": client.login,
        "OutgoingPasswordSameAsIncomingPassword": True,
    }


def mobileconfig(mailbox: Mailbox) -> bytes:
    """The profile as Apple devices install it: signed if the hoster configured a certificate."""
    data = plistlib.dumps(profile_data(mailbox), fmt=plistlib.FMT_XML)
    if settings.POSTAMT_PROFILE_SIGNING_CERT and settings.POSTAMT_PROFILE_SIGNING_KEY:
        return sign(data)
    return data


def sign(data: bytes) -> bytes:
    """A CMS SignedData (DER) with the profile inside, which iOS shows as "Verified"."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.serialization import pkcs7

    cert = x509.load_pem_x509_certificate(Path(settings.POSTAMT_PROFILE_SIGNING_CERT).read_bytes())
    key = serialization.load_pem_private_key(
        Path(settings.POSTAMT_PROFILE_SIGNING_KEY).read_bytes(), password=None
    )
    builder = pkcs7.PKCS7SignatureBuilder().set_data(data)
    builder = builder.add_signer(cert, key, hashes.SHA256())  # type: ignore[arg-type]
    if settings.POSTAMT_PROFILE_SIGNING_CHAIN:
        chain = Path(settings.POSTAMT_PROFILE_SIGNING_CHAIN).read_bytes()
        for extra in x509.load_pem_x509_certificates(chain):
            builder = builder.add_certificate(extra)
    return builder.sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])


def filename(mailbox: Mailbox) -> str:
    return mailbox.address.replace("@", "_at_") + ".mobileconfig"


def link_token(mailbox: Mailbox) -> str:
    """A signed, expiring token naming the mailbox, for the QR code a phone scans."""
    return signing.dumps({"m": mailbox.pk}, salt=_TOKEN_SALT, compress=True)


def mailbox_for_token(token: str) -> Mailbox | None:
    """The mailbox a token names if it is genuine and younger than the configured age."""
    try:
        value = signing.loads(
            token, salt=_TOKEN_SALT, max_age=settings.POSTAMT_PROFILE_LINK_MAX_AGE
        )
    except signing.BadSignature:
        return None
    return Mailbox.objects.select_related("domain", "mail_server").filter(pk=value.get("m")).first()
