from __future__ import annotations

from django.apps import AppConfig
from django.core import checks


class WebConfig(AppConfig):
    name = "web"

    def ready(self) -> None:
        from provider.celery_checks import TAG, check_broker_timeout
        from provider.checks import check_secrets

        # Not tagged "deploy": production refuses weak secrets at every start, not only
        # when someone runs `check --deploy`.
        checks.register(check_secrets, checks.Tags.security)
        checks.register(check_broker_timeout, TAG)
