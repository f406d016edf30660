"""Staff pages under /staff/; every view is wrapped in ``staff_required``."""

from __future__ import annotations

from django.urls import path

from . import api_keys, imports, moves, views, views_lists, webhooks

app_name = "staff"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("customers/", views_lists.customer_list, name="customer_list"),
    path("customers/export.csv", views_lists.customer_export, name="customer_export"),
    path("domains/", views_lists.domain_list, name="domain_list"),
    path("domains/export.csv", views_lists.domain_export, name="domain_export"),
    path("mailboxes/", views_lists.mailbox_list, name="mailbox_list"),
    path("mailboxes/export.csv", views_lists.mailbox_export, name="mailbox_export"),
    path("customers/new/", views.customer_create, name="customer_create"),
    path("customers/<int:customer_id>/", views.customer_detail, name="customer_detail"),
    path("customers/<int:customer_id>/domains/new/", views.domain_create, name="domain_create"),
    path(
        "customers/<int:customer_id>/allowance/",
        views.customer_allowance,
        name="customer_allowance",
    ),
    path("domains/<int:domain_id>/allowance/", views.domain_allowance, name="domain_allowance"),
    path("domains/<int:domain_id>/dns/", views.domain_dns, name="domain_dns"),
    path("customers/<int:customer_id>/mailboxes/new/", views.mailbox_create, name="mailbox_create"),
    path(
        "customers/<int:customer_id>/users/new/",
        views.customer_user_create,
        name="customer_user_create",
    ),
    path(
        "customers/<int:customer_id>/users/<int:user_id>/active/",
        views.customer_user_active,
        name="customer_user_active",
    ),
    path("mailboxes/<int:mailbox_id>/", views.mailbox_detail, name="mailbox_detail"),
    path("mailboxes/<int:mailbox_id>/refresh/", views.mailbox_refresh, name="mailbox_refresh"),
    path("mailboxes/<int:mailbox_id>/password/", views.mailbox_password, name="mailbox_password"),
    path("mailboxes/<int:mailbox_id>/quota/", views.mailbox_quota, name="mailbox_quota"),
    path("mailboxes/<int:mailbox_id>/plan/", views.mailbox_plan, name="mailbox_plan"),
    path("mailboxes/<int:mailbox_id>/suspend/", views.mailbox_suspend, name="mailbox_suspend"),
    path(
        "mailboxes/<int:mailbox_id>/reactivate/",
        views.mailbox_reactivate,
        name="mailbox_reactivate",
    ),
    path("mailboxes/<int:mailbox_id>/delete/", views.mailbox_delete, name="mailbox_delete"),
    path("mailboxes/<int:mailbox_id>/move/", moves.mailbox_move, name="mailbox_move"),
    path(
        "plan-requests/<int:request_id>/approve/",
        views.plan_request_approve,
        name="plan_request_approve",
    ),
    path(
        "plan-requests/<int:request_id>/decline/",
        views.plan_request_decline,
        name="plan_request_decline",
    ),
    path("audit/", views.audit_log, name="audit_log"),
    path("import/", imports.import_start, name="import_start"),
    path("import/<int:job_id>/", imports.import_job, name="import_job"),
    path("import/<int:job_id>/run/", imports.import_run, name="import_run"),
    path("import/<int:job_id>/passwords/", imports.import_passwords, name="import_passwords"),
    path("export/", imports.export, name="export"),
    path("api-keys/", api_keys.api_key_list, name="api_keys"),
    path("api-keys/new/", api_keys.api_key_create, name="api_key_create"),
    path("api-keys/<int:key_id>/revoke/", api_keys.api_key_revoke, name="api_key_revoke"),
    path("webhooks/", webhooks.webhook_list, name="webhook_list"),
    path("webhooks/new/", webhooks.webhook_create, name="webhook_create"),
    path("webhooks/<int:endpoint_id>/", webhooks.webhook_detail, name="webhook_detail"),
    path("webhooks/<int:endpoint_id>/active/", webhooks.webhook_active, name="webhook_active"),
    path("webhooks/<int:endpoint_id>/delete/", webhooks.webhook_delete, name="webhook_delete"),
    path("webhooks/<int:endpoint_id>/test/", webhooks.webhook_test, name="webhook_test"),
    path(
        "webhooks/deliveries/<int:delivery_id>/resend/",
        webhooks.webhook_resend,
        name="webhook_resend",
    ),
]
