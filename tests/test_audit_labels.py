"""Every action the code records has words for the audit log and the customer's activity
page: an unlabelled code would show as "backup.browse" to the customer."""

from __future__ import annotations

import re
from pathlib import Path

from web.templatetags.postamt import ACTION_LABELS

ROOT = Path(__file__).resolve().parent.parent
# audit.record("code", ... and _set_status(..., "code", ...) name the actions.
RECORDED = re.compile(r'(?:record\(\s*|_set_status\([^)]*?)"([a-z_]+\.[a-z_]+)"')


def recorded_actions() -> set[str]:
    found: set[str] = set()
    for app in ("accounts", "mailboxes", "backups", "web", "webhooks"):
        for path in (ROOT / app).rglob("*.py"):
            found.update(RECORDED.findall(path.read_text()))
    return found


def test_every_recorded_action_has_a_label():
    actions = recorded_actions()

    assert {"mailbox.create", "mailbox.suspend", "backup.browse", "webhook.create"} <= actions
    assert actions - set(ACTION_LABELS) == set()
