"""The signature of a delivery, as receivers check it (docs/api.md, "Webhooks").

``Postamt-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``: the time is
signed with the body, so a receiver that refuses old timestamps refuses replayed deliveries.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, body: bytes, timestamp: int) -> str:
    signed = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: int) -> str:
    return f"t={timestamp},v1={signature(secret, body, timestamp)}"
