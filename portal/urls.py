"""The customer portal under /portal/; every view is wrapped in ``customer_required``.

tests/accounts/test_portal_isolation.py walks these patterns: a new route needs an entry
there for each object id it takes, or that test fails.
"""

from __future__ import annotations

from django.urls import path

from . import api_keys, views

app_name = "portal"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("mailboxes/<int:mailbox_id>/", views.mailbox_detail, name="mailbox_detail"),
    path("mailboxes/<int:mailbox_id>/refresh/", views.mailbox_refresh, name="mailbox_refresh"),
    path("mailboxes/<int:mailbox_id>/password/", views.mailbox_password, name="mailbox_password"),
    path("mailboxes/<int:mailbox_id>/plan/", views.mailbox_plan, name="mailbox_plan"),
    path("mailboxes/<int:mailbox_id>/devices/", views.mailbox_devices, name="mailbox_devices"),
    path(
        "mailboxes/<int:mailbox_id>/profile.mobileconfig",
        views.mailbox_profile,
        name="mailbox_profile",
    ),
    path("mailboxes/<int:mailbox_id>/usage.csv", views.mailbox_usage_csv, name="mailbox_usage_csv"),
    path(
        "plan-requests/<int:request_id>/cancel/",
        views.plan_request_cancel,
        name="plan_request_cancel",
    ),
    path("domains/<int:domain_id>/dns/", views.domain_dns, name="domain_dns"),
    path("settings/", views.notification_settings, name="settings"),
    path("activity/", views.activity, name="activity"),
    path("api-keys/", api_keys.api_key_list, name="api_keys"),
    path("api-keys/<int:key_id>/revoke/", api_keys.api_key_revoke, name="api_key_revoke"),
]
