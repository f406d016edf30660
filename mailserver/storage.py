"""Mail on disk: what the private Dovecot of this machine keeps for a mailbox."""

from __future__ import annotations

import shutil
from pathlib import Path

from django.conf import settings

from .errors import MailServerError
from .server import Server


def purge_storage(server: Server, storage_path: str) -> bool:
    """Delete a removed mailbox's mail where this machine holds it (the private instance).

    Returns False when the mail lives on another machine: that server's own cleanup applies.
    """
    if server.name != settings.DOVECOT["SERVER_NAME"]:
        return False
    mail_root = (Path(settings.DOVECOT["ROOT"]) / "mail").resolve()
    target = (mail_root / storage_path).resolve()
    if mail_root not in target.parents:
        raise MailServerError(f"refusing to delete {target}: outside {mail_root}")
    try:
        shutil.rmtree(target)
    except FileNotFoundError:
        pass  # never delivered to, or removed by an earlier attempt: nothing left to do
    except OSError as exc:
        # Left half-deleted, the next attempt carries on where this one stopped.
        raise MailServerError(f"could not delete {target}: {exc}") from exc
    return True
