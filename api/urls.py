"""``/api/v1/``: the resources, the OpenAPI 3.1 schema and its documentation."""

from __future__ import annotations

from csp.constants import UNSAFE_INLINE
from csp.decorators import csp_update
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView
from rest_framework.routers import DefaultRouter

from . import views

app_name = "api"

router = DefaultRouter(trailing_slash=True, use_regex_path=False)
router.include_root_view = False
router.include_format_suffixes = False  # JSON only: no ".json" twin of every URL
router.register("customers", views.CustomerViewSet, basename="customer")
router.register("plans", views.PlanViewSet, basename="plan")
router.register("servers", views.MailServerViewSet, basename="server")
router.register("domains", views.DomainViewSet, basename="domain")
router.register("mailboxes", views.MailboxViewSet, basename="mailbox")
router.register("snapshots", views.SnapshotViewSet, basename="snapshot")
router.register("backup-jobs", views.BackupJobViewSet, basename="backup-job")
router.register("restore-jobs", views.RestoreJobViewSet, basename="restore-job")
router.register("download-jobs", views.DownloadJobViewSet, basename="download-job")
router.register("audit-events", views.AuditEventViewSet, basename="audit-event")

# Redoc (from our static files) styles itself with <style> elements it adds, searches in a
# worker it starts from a blob: address and shows its "powered by" logo from its own site
# (it has no setting to leave it out): the policy allows these on this page only.
docs = csp_update(
    {
        "style-src-elem": [UNSAFE_INLINE],
        "worker-src": ["blob:"],
        "img-src": ["https://cdn.redoc.ly"],
    }
)(SpectacularRedocView.as_view(url_name="api:schema", template_name="api/redoc.html"))

urlpatterns = [
    path("v1/", include(router.urls)),
    path("v1/schema/", SpectacularAPIView.as_view(api_version="v1"), name="schema"),
    path("v1/docs/", docs, name="docs"),
]
