"""The root URLs: one front door per audience, and the backup pages mounted under each.

Everything is included by module name, so the project package imports none of the apps.
"""

from django.urls import include, path

urlpatterns = [
    path("", include("web.urls")),
    path("", include("autoconfig.urls")),
    path("staff/backups/", include(("staff.backup_urls", "backups"), namespace="staff_backups")),
    path("staff/", include("staff.urls")),
    path("portal/backups/", include(("portal.backup_urls", "backups"), namespace="portal_backups")),
    path("portal/", include("portal.urls")),
    path("api/", include("api.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
]

handler404 = "api.errors.not_found"
