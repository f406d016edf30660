"""What the API reads and writes. Sizes are bytes everywhere, times ISO 8601 with a zone.

Output serializers describe the resources; input serializers only parse a request, and the
services decide (the same rules and messages as the pages and the CLI).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils.http import urlencode
from rest_framework import serializers

from accounts.models import Customer
from backups.downloads import link_token
from mailboxes.models import Domain, Mailbox, MailServer, Plan, Protocol
from mailboxes.selectors import usage_summary


class CustomerSerializer(serializers.ModelSerializer[Customer]):
    storage_allowance_bytes = serializers.IntegerField(
        read_only=True,
        allow_null=True,
        help_text="Most the quotas of its mailboxes may add up to, in bytes; null: no limit.",
    )

    class Meta:
        model = Customer
        fields = ["id", "name", "contact_email", "language", "storage_allowance_bytes"]
        read_only_fields = ["id"]


class CustomerCreateSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=200)
    contact_email = serializers.CharField(help_text="Where notices go.")
    language = serializers.ChoiceField(choices=[code for code, _name in settings.LANGUAGES])


class PlanSerializer(serializers.ModelSerializer[Plan]):
    class Meta:
        model = Plan
        fields = [
            "id",
            "name",
            "allows_imap",
            "allows_pop3",
            "default_quota_bytes",
            "max_quota_bytes",
            "backup_enabled",
            "warning_thresholds",
        ]
        extra_kwargs = {
            "default_quota_bytes": {"help_text": "Quota of a new mailbox, in bytes."},
            "max_quota_bytes": {"help_text": "Largest quota allowed, in bytes."},
            "warning_thresholds": {"help_text": "Percentages at which the customer is warned."},
        }


class MailServerSerializer(serializers.ModelSerializer[MailServer]):
    class Meta:
        model = MailServer
        fields = [
            "id",
            "name",
            "hostname",
            "imap_port",
            "pop3_port",
            "imaps_port",
            "pop3s_port",
            "active",
            "capacity_bytes",
            "health",
            "last_poll_ok_at",
        ]


class DomainSerializer(serializers.ModelSerializer[Domain]):
    name = serializers.CharField(source="display_name", help_text="In Unicode.")
    name_ascii = serializers.CharField(source="name", help_text="As DNS has it (punycode).")
    customer: serializers.PrimaryKeyRelatedField[Customer] = serializers.PrimaryKeyRelatedField(
        read_only=True
    )
    mail_server: serializers.SlugRelatedField[MailServer] = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )

    class Meta:
        model = Domain
        fields = [
            "id",
            "name",
            "name_ascii",
            "customer",
            "mail_server",
            "storage_allowance_bytes",
            "created_at",
        ]


class DomainCreateSerializer(serializers.Serializer[Any]):
    customer = serializers.IntegerField(help_text="The id of the customer it belongs to.")
    name = serializers.CharField(max_length=253, help_text="Unicode or punycode.")
    mail_server = serializers.CharField(
        required=False, help_text="A server's name; omitted: the least used accepting one."
    )


class MailboxSerializer(serializers.ModelSerializer[Mailbox]):
    address = serializers.CharField(source="display_address", help_text="In Unicode.")
    address_ascii = serializers.CharField(source="address", help_text="The login name.")
    plan: serializers.PrimaryKeyRelatedField[Plan] = serializers.PrimaryKeyRelatedField(
        read_only=True
    )
    mail_server: serializers.SlugRelatedField[MailServer] = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )
    usage_percent = serializers.SerializerMethodField()
    usage_level = serializers.SerializerMethodField()

    class Meta:
        model = Mailbox
        fields = [
            "id",
            "address",
            "address_ascii",
            "domain",
            "protocol",
            "plan",
            "mail_server",
            "status",
            "quota_bytes",
            "used_bytes",
            "message_count",
            "usage_percent",
            "usage_level",
            "usage_checked_at",
            "usage_state",
            "last_login_at",
            "created_at",
        ]
        extra_kwargs = {
            "quota_bytes": {"help_text": "The limit Dovecot enforces, in bytes."},
            "used_bytes": {"help_text": "Last measured, in bytes; null: not measured yet."},
        }

    def _usage(self, mailbox: Mailbox) -> Any:
        """The summary both usage fields read, made once per mailbox."""
        if getattr(mailbox, "_usage_summary", None) is None:
            mailbox._usage_summary = usage_summary(mailbox)  # type: ignore[attr-defined]
        return mailbox._usage_summary  # type: ignore[attr-defined]

    def get_usage_percent(self, mailbox: Mailbox) -> int | None:
        return self._usage(mailbox).percent if mailbox.used_bytes is not None else None

    def get_usage_level(self, mailbox: Mailbox) -> str:
        """ok, warn, danger, full, or unknown: the colour of the bar on the pages."""
        return str(self._usage(mailbox).level)


class MailboxCreateSerializer(serializers.Serializer[Any]):
    domain = serializers.IntegerField()
    local_part = serializers.CharField(max_length=64)
    plan = serializers.IntegerField()
    protocol = serializers.ChoiceField(choices=Protocol.choices, required=False)
    quota_bytes = serializers.IntegerField(required=False, min_value=1)
    password = serializers.CharField(
        required=False,
        write_only=True,
        help_text="Omitted: one is generated and returned once, as generated_password.",
    )
    mail_server = serializers.CharField(
        required=False,
        help_text="A server's name; omitted: the least used server that accepts new mailboxes "
        "(its quotas given out as a share of its capacity).",
    )


class MailboxCreatedSerializer(MailboxSerializer):
    generated_password = serializers.CharField(
        read_only=True, allow_null=True, help_text="Only when none was sent; shown this once."
    )

    class Meta(MailboxSerializer.Meta):
        fields = [*MailboxSerializer.Meta.fields, "generated_password"]


class MailboxUpdateSerializer(serializers.Serializer[Any]):
    password = serializers.CharField(required=False, write_only=True)
    quota_bytes = serializers.IntegerField(required=False, min_value=1)
    plan = serializers.IntegerField(required=False)
    protocol = serializers.ChoiceField(choices=Protocol.choices, required=False)


class FolderSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    message_count = serializers.IntegerField()
    size_bytes = serializers.IntegerField()


class UsagePointSerializer(serializers.Serializer[Any]):
    taken_at = serializers.DateTimeField()
    used_bytes = serializers.IntegerField()


class UsageSerializer(serializers.Serializer[Any]):
    quota_bytes = serializers.IntegerField()
    used_bytes = serializers.IntegerField(allow_null=True)
    message_count = serializers.IntegerField(allow_null=True)
    checked_at = serializers.DateTimeField(allow_null=True)
    folders = FolderSerializer(many=True)
    history = UsagePointSerializer(many=True)


class AllowanceSerializer(serializers.Serializer[Any]):
    storage_allowance_bytes = serializers.IntegerField(
        allow_null=True, min_value=1, help_text="Most the quotas may add up to; null: no limit."
    )
    allocated_bytes = serializers.IntegerField(
        read_only=True, help_text="What the quotas of its mailboxes add up to now."
    )
    left_bytes = serializers.IntegerField(
        read_only=True, allow_null=True, help_text="What may still be given out; null: no limit."
    )


class WarningSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    kind = serializers.CharField(help_text="warning (a threshold crossed) or reminder (daily).")
    threshold = serializers.IntegerField(help_text="Percent of the quota.")
    used_bytes = serializers.IntegerField()
    quota_bytes = serializers.IntegerField()
    recipient = serializers.CharField()
    language = serializers.CharField()
    status = serializers.CharField()
    created_at = serializers.DateTimeField()
    sent_at = serializers.DateTimeField(allow_null=True)


class SnapshotSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    mailbox = serializers.IntegerField(source="repository.mailbox_id", allow_null=True)
    address = serializers.CharField(source="repository.address")
    seq = serializers.IntegerField(help_text="Its number in the mailbox's backups.")
    taken_at = serializers.DateTimeField()
    folders = serializers.IntegerField()
    messages = serializers.IntegerField()
    size_bytes = serializers.IntegerField(help_text="The mail it holds, in bytes.")


class JobSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    status = serializers.CharField(help_text="queued, running, done or failed.")
    percent = serializers.IntegerField(help_text="Progress, 0 to 100.")
    messages_total = serializers.IntegerField()
    messages_done = serializers.IntegerField()
    error = serializers.SerializerMethodField(
        help_text="Why it failed: as it is for staff keys, in plain words for a customer's."
    )
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)

    def get_error(self, job: Any) -> str:
        request = self.context.get("request")
        if request is not None and getattr(request.user, "is_staff", False):
            return str(job.error)
        return str(job.customer_error)


class RestoreJobSerializer(JobSerializer):
    snapshot = serializers.IntegerField(source="snapshot_id")
    scope = serializers.CharField()
    folder = serializers.CharField()
    target_folder = serializers.CharField(help_text="Empty: into the original folders.")


class DownloadJobSerializer(JobSerializer):
    snapshot = serializers.IntegerField(source="snapshot_id", allow_null=True)
    size_bytes = serializers.IntegerField(help_text="Of the zip, once it is built.")
    expires_at = serializers.DateTimeField(allow_null=True)
    file = serializers.SerializerMethodField(
        help_text="Once done: the signed link to the zip (GET with the same key), until it "
        "expires; null before and after."
    )

    def get_file(self, job: Any) -> str | None:
        request = self.context.get("request")
        if request is None or not job.is_ready or job.for_staff != request.user.is_staff:
            return None
        path = reverse("api:download-job-file", args=[job.pk])
        return request.build_absolute_uri(f"{path}?{urlencode({'token': link_token(job)})}")


class RestoreRequestSerializer(serializers.Serializer[Any]):
    scope = serializers.ChoiceField(choices=["mailbox", "folder", "messages"])
    folder = serializers.CharField(required=False, allow_blank=True, default="")
    messages = serializers.ListField(
        child=serializers.ListField(child=serializers.CharField(), min_length=3, max_length=3),
        required=False,
        default=list,
        help_text="For scope messages: [folder, uidvalidity, uid] of each.",
    )
    into_new_folder = serializers.BooleanField(required=False, default=False)
    into_mailbox = serializers.IntegerField(
        required=False, help_text="For the backup of a deleted mailbox: another of its customer's."
    )


class AuditEventSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    actor = serializers.CharField(source="actor_name")
    action = serializers.CharField()
    target_type = serializers.CharField()
    target_id = serializers.IntegerField(allow_null=True)
    target = serializers.CharField(source="target_repr")
    customer = serializers.IntegerField(source="customer_id", allow_null=True)
    ip_address = serializers.CharField(allow_null=True)
    details = serializers.JSONField()
