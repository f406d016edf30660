"""The backup pages as staff see them, under /staff/backups/ (see ``web.backups.urls``)."""

from __future__ import annotations

from web.access import staff_required
from web.backups.urls import backup_patterns

urlpatterns = backup_patterns(staff_required)
