"""Reads of webhook endpoints and deliveries for the staff pages."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet

from .models import WebhookDelivery, WebhookEndpoint


def endpoint_list() -> QuerySet[WebhookEndpoint]:
    failed = Count("deliveries", filter=Q(deliveries__status=WebhookDelivery.Status.FAILED))
    pending = Count("deliveries", filter=Q(deliveries__status=WebhookDelivery.Status.PENDING))
    return WebhookEndpoint.objects.annotate(failed=failed, pending=pending).order_by(
        "created_at", "id"
    )


def endpoint_deliveries(endpoint: WebhookEndpoint) -> QuerySet[WebhookDelivery]:
    return endpoint.deliveries.order_by("-created_at", "-id")


def recent_deliveries() -> QuerySet[WebhookDelivery]:
    return WebhookDelivery.objects.select_related("endpoint").order_by("-created_at", "-id")
