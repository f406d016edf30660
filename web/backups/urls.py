"""The backup pages, mounted once per audience: ``/staff/backups/`` and ``/portal/backups/``.

One set of views serves both; each mount (``staff.backup_urls``, ``portal.backup_urls``) puts
its audience's guard in front, and the views still load every object through
``selectors.*_for(user)``, so a mount never widens what a user reaches. Both mounts share the
application namespace ``backups``; the guard sets ``request.current_app`` so that
``{% url 'backups:…' %}`` stays within the audience's own mount.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.urls import URLPattern, path

from web.access import View

from . import views

_ROUTES: list[tuple[str, View, dict[str, Any], str]] = [
    ("mailboxes/<int:mailbox_id>/", views.mailbox_backups, {}, "mailbox"),
    ("mailboxes/<int:mailbox_id>/backup/", views.backup_now, {}, "backup_now"),
    ("repositories/<int:repository_id>/", views.repository_backups, {}, "repository"),
    ("snapshots/<int:snapshot_id>/restore/", views.restore, {}, "restore"),
    ("snapshots/<int:snapshot_id>/download/", views.download, {}, "download"),
    ("snapshots/<int:snapshot_id>/messages/", views.browse, {}, "browse"),
    (
        "snapshots/<int:snapshot_id>/messages/restore/",
        views.restore_messages,
        {},
        "restore_messages",
    ),
    ("jobs/backup/<int:job_id>/", views.job_progress, {"kind": "backup"}, "backup_job"),
    ("jobs/restore/<int:job_id>/", views.job_progress, {"kind": "restore"}, "restore_job"),
    ("jobs/download/<int:job_id>/", views.job_progress, {"kind": "download"}, "download_job"),
    ("jobs/download/<int:job_id>/<str:token>/", views.download_file, {}, "download_file"),
]


def backup_patterns(guard: Callable[[View], View]) -> list[URLPattern]:
    """The backup routes, each view behind ``guard``."""
    return [path(route, guard(view), kwargs, name=name) for route, view, kwargs, name in _ROUTES]
