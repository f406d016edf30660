"""What the adapter needs to know of a mail server.

The adapter sits below the domain apps and does not import their models: ``mailboxes.MailServer``
satisfies this protocol, and so does anything a test or a benchmark hands in.
"""

from __future__ import annotations

from typing import Protocol


class Server(Protocol):
    name: str
    hostname: str
    imaps_port: int  # workers speak implicit TLS and verify the certificate
    doveadm_port: int | None  # HTTPS
    master_user: str

    def master_password(self) -> str: ...

    def doveadm_api_key(self) -> str: ...
