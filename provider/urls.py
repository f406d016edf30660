from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("mailboxes.urls")),
    path("staff/", include("mailboxes.urls_staff")),
    path("portal/", include("mailboxes.urls_portal")),
    path("accounts/", include("accounts.urls")),
    path("backups/", include("backups.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
]
