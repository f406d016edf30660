"""``manage.py webhook_create``: a webhook endpoint, its signing secret printed once."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser
from django.utils.translation import gettext as _

from provider.cli import ServiceCommand, usage_error
from webhooks.events import EVENTS
from webhooks.services import endpoint_create


class Command(ServiceCommand):
    help = "Register a webhook endpoint for some or all events (docs/api.md, Webhooks)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("url", help=_("Where the events are POSTed (http or https)."))
        events = parser.add_mutually_exclusive_group(required=True)
        events.add_argument(
            "--event",
            action="append",
            choices=list(EVENTS),
            help=_("An event to send; repeat for more."),
        )
        events.add_argument("--all-events", action="store_true", help=_("Every event."))
        parser.add_argument("--description", default="", help=_("e.g. Billing."))
        self.add_json_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        chosen = list(EVENTS) if options["all_events"] else options["event"]
        if not chosen:
            raise usage_error(_("Give --event (repeatable) or --all-events."))
        new = self.call(
            endpoint_create,
            url=options["url"],
            events=chosen,
            description=options["description"],
        )
        self.emit(
            options,
            _(
                "Webhook endpoint %(id)s created. Its signing secret, shown only this once:\n"
                "%(secret)s"
            )
            % {"id": new.endpoint.pk, "secret": new.secret},
            {
                "id": new.endpoint.pk,
                "url": new.endpoint.url,
                "events": new.endpoint.events,
                "secret": new.secret,
            },
        )
