"""The backup pages as a customer sees them, under /portal/backups/ (see ``web.backups.urls``)."""

from __future__ import annotations

from web.access import customer_required
from web.backups.urls import backup_patterns

urlpatterns = backup_patterns(customer_required)
