"""Backup pages under /backups/."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "backups"
urlpatterns = [
    path("mailboxes/<int:mailbox_id>/", views.mailbox_backups, name="mailbox"),
    path("mailboxes/<int:mailbox_id>/backup/", views.backup_now, name="backup_now"),
    path("repositories/<int:repository_id>/", views.repository_backups, name="repository"),
    path("snapshots/<int:snapshot_id>/restore/", views.restore, name="restore"),
    path("snapshots/<int:snapshot_id>/download/", views.download, name="download"),
    path("snapshots/<int:snapshot_id>/messages/", views.browse, name="browse"),
    path(
        "snapshots/<int:snapshot_id>/messages/restore/",
        views.restore_messages,
        name="restore_messages",
    ),
    path("jobs/backup/<int:job_id>/", views.job_progress, {"kind": "backup"}, name="backup_job"),
    path("jobs/restore/<int:job_id>/", views.job_progress, {"kind": "restore"}, name="restore_job"),
]
