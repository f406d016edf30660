"""Template filters that turn stored codes and numbers into words for the pages."""

from __future__ import annotations

from datetime import datetime, timedelta

from django import template
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html_join
from django.utils.safestring import SafeString
from django.utils.timesince import timesince
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from accounts import roles
from accounts import selectors as account_selectors
from accounts.models import AuditEntry, SupportAccessGrant, User
from mailboxes import selectors
from mailboxes.models import Mailbox
from mailboxes.sizes import size_text

register = template.Library()

# The audit log stores stable codes; people read these. Unknown codes are shown as they are.
ACTION_LABELS = {
    "customer.create": gettext_lazy("customer created"),
    "domain.create": gettext_lazy("domain added"),
    "mailbox.create": gettext_lazy("mailbox created"),
    "mailbox.password": gettext_lazy("password changed"),
    "mailbox.quota": gettext_lazy("quota changed"),
    "storage.allowance": gettext_lazy("storage allowance changed"),
    "staff.role": gettext_lazy("staff role changed"),
    "mailbox.plan": gettext_lazy("plan or protocol changed"),
    "mailbox.suspend": gettext_lazy("mailbox suspended"),
    "mailbox.reactivate": gettext_lazy("mailbox reactivated"),
    "mailbox.delete": gettext_lazy("mailbox deleted"),
    "mailbox.move": gettext_lazy("move to another mail server started"),
    "mailbox.delete_after_backup": gettext_lazy("mailbox to be deleted after a last backup"),
    "plan.create": gettext_lazy("plan created"),
    "plan.self_service": gettext_lazy("plan offered in the portal or withdrawn"),
    "user.disable": gettext_lazy("login disabled"),
    "user.enable": gettext_lazy("login enabled again"),
    "mailserver.create": gettext_lazy("mail server added"),
    "mailserver.update": gettext_lazy("mail server changed"),
    "mailbox.refresh": gettext_lazy("usage measured on request"),
    "user.create": gettext_lazy("login created"),
    "customer.notifications": gettext_lazy("notification settings changed"),
    "plan_request.create": gettext_lazy("plan change requested"),
    "plan_request.approve": gettext_lazy("plan change approved"),
    "plan_request.decline": gettext_lazy("plan change declined"),
    "plan_request.cancel": gettext_lazy("plan change request withdrawn"),
    "backup.request": gettext_lazy("backup started on request"),
    "backup.restore": gettext_lazy("restore from a backup started"),
    "backup.download": gettext_lazy("backup downloaded"),
    "backup.browse": gettext_lazy("senders and subjects in a backup viewed"),
    "backup.browse_with_grant": gettext_lazy("messages in a backup viewed with granted access"),
    "backup.download_with_grant": gettext_lazy("backup downloaded with granted access"),
    "backup.download_fetch": gettext_lazy("prepared backup download fetched by staff"),
    "support_access.grant": gettext_lazy("support allowed to look into the backups"),
    "support_access.revoke": gettext_lazy("support's access to the backups revoked"),
    "twofactor.enrol": gettext_lazy("second factor set up"),
    "twofactor.remove": gettext_lazy("second factor removed"),
    "twofactor.recovery_codes": gettext_lazy("new recovery codes made"),
    "twofactor.recovery_code_used": gettext_lazy("recovery code used to log in"),
    "twofactor.reset": gettext_lazy("every second factor removed (reset)"),
    "import.run": gettext_lazy("CSV file imported"),
    "api_key.create": gettext_lazy("API key created"),
    "api_key.revoke": gettext_lazy("API key revoked"),
    "webhook.create": gettext_lazy("webhook endpoint added"),
    "webhook.enable": gettext_lazy("webhook endpoint enabled"),
    "webhook.disable": gettext_lazy("webhook endpoint disabled"),
    "webhook.delete": gettext_lazy("webhook endpoint deleted"),
    "webhook.test": gettext_lazy("webhook test event sent"),
    "webhook.resend": gettext_lazy("webhook delivery sent again"),
}

# Words for the usage levels of selectors.UsageSummary, shown next to the bar's icon.
LEVEL_LABELS = {
    "warn": gettext_lazy("Filling up"),
    "danger": gettext_lazy("Almost full"),
    "full": gettext_lazy("Full"),
    "unknown": gettext_lazy("Not measured yet"),
}

NOTIFICATION_FIELD_LABELS = {
    "contact_email": gettext_lazy("contact address"),
    "language": gettext_lazy("language"),
    "only_full_warnings": gettext_lazy("early warnings"),
    "copy_warnings_to_mailbox": gettext_lazy("copies into the mailbox"),
}


@register.filter
def ago(moment: datetime | None) -> str:
    """ "5 minutes ago", or "just now" for less than a minute: "0 minutes ago" reads as an error."""
    if moment is None:
        return ""
    if timezone.now() - moment < timedelta(minutes=1):
        return _("just now")
    return _("%(duration)s ago") % {"duration": timesince(moment)}


@register.filter
def size_input(size: int | None) -> str:
    """A size as a quota field shows it (``5G``, ``500M``); empty for None."""
    return "" if size is None else size_text(size)


@register.filter
def audit_action(code: str) -> str:
    return str(ACTION_LABELS.get(code, code))


@register.filter
def audit_summary(entry: AuditEntry) -> str:
    """What changed, for the actions whose details say more than their name."""
    details = entry.details or {}
    try:
        if entry.action == "mailbox.create":
            return _("%(protocol)s, %(quota)s, plan “%(plan)s”") % {
                "protocol": details["protocol"].upper(),
                "quota": filesizeformat(details["quota_bytes"]),
                "plan": details["plan"],
            }
        if entry.action == "mailbox.quota":
            return f"{filesizeformat(details['old'])} → {filesizeformat(details['new'])}"
        if entry.action == "customer.notifications":
            return ", ".join(
                str(NOTIFICATION_FIELD_LABELS.get(field, field)) for field in details["new"]
            )
        if entry.action in ("plan_request.create",):
            return f"{details['plan']} ({details['protocol'].upper()})"
        if entry.action == "plan_request.decline" and details.get("reason"):
            return str(details["reason"])
        if entry.action == "user.create":
            return str(details["email"])
        if entry.action in ("backup.browse", "backup.browse_with_grant"):
            return str(details["folder"])
        if entry.action in ("support_access.grant", "support_access.revoke"):
            until = timezone.localtime(datetime.fromisoformat(details["until"]))
            return _("until %(time)s") % {"time": date_format(until, "SHORT_DATETIME_FORMAT")}
        if entry.action == "backup.restore":
            if details.get("messages"):
                return ngettext("%(count)d message", "%(count)d messages", details["messages"]) % {
                    "count": details["messages"]
                }
            return str(details.get("folder") or "")
        if entry.action == "import.run":
            return _(
                "%(file)s: %(customers)d customers, %(domains)d domains, %(mailboxes)d mailboxes"
            ) % {
                "file": details["file"],
                "customers": details["customers"],
                "domains": details["domains"],
                "mailboxes": details["mailboxes"],
            }
        if entry.action == "mailbox.plan":
            old, new = details["old"], details["new"]
            return (
                f"{old['plan']} ({old['protocol'].upper()}, {filesizeformat(old['quota'])}) → "
                f"{new['plan']} ({new['protocol'].upper()}, {filesizeformat(new['quota'])})"
            )
    except (KeyError, TypeError, AttributeError, ValueError):
        pass  # details written by an older or newer version: show the action alone
    return ""


@register.filter
def usage_summary(mailbox: Mailbox) -> selectors.UsageSummary:
    """``{% with usage=mailbox|usage_summary %}`` for lists of mailboxes."""
    return selectors.usage_summary(mailbox)


@register.filter
def usage_level_label(level: str) -> str:
    return str(LEVEL_LABELS.get(level, ""))


@register.filter
def refresh_pending(mailbox: Mailbox) -> bool:
    """Whether a requested measurement is still on its way (the card then reloads itself)."""
    return selectors.refresh_pending(mailbox, timezone.now())


@register.filter
def may(user: User, action: str) -> bool:
    """``{% if request.user|may:"mailbox.delete" %}``: offer only what the role allows
    (the services refuse the rest anyway)."""
    return roles.may(user, action)


@register.simple_tag
def may_for(user: User, action: str, customer_id: int | None) -> bool:
    """``{% may_for request.user "backup.browse" customer_id as may_browse %}``: ``may`` for
    the actions whose answer depends on the customer (support with the customer's grant)."""
    return roles.may(user, action, customer_id=customer_id)


@register.simple_tag
def support_grant(customer_id: int | None) -> SupportAccessGrant | None:
    """``{% support_grant customer.pk as grant %}``: the customer's permission for support to
    look into its backups, while it lasts."""
    return account_selectors.active_support_grant(customer_id)


@register.filter
def public_actor(entry: AuditEntry) -> str:
    """Who acted, as a customer may see it: their own users by name, the hoster's people by
    role ("Support", "Administrator"), the hoster's machinery as "Provider"; never a staff name."""
    if entry.actor is not None and entry.actor.customer_id is not None:
        return entry.actor_name
    if entry.actor is not None and entry.actor.is_staff:
        return roles.public_name(entry.actor, entry.actor_name)
    return _("Provider")


@register.filter
def actor_kind(entry: AuditEntry) -> str:
    """Who acted, as a customer sees it: "staff" for the hoster's people, scripts and
    workers, "customer" for the customer's own users."""
    if entry.actor is not None and entry.actor.customer_id is not None:
        return "customer"
    return "staff"


@register.filter
def address_parts(address: str) -> SafeString:
    """An address that wraps after its "@" and before its dots, never at a hyphen or inside
    a name: each part is an inline block (``.address-part``), which wraps inside only when it
    is longer than the whole line. Copied, it is still the address."""
    local, at, domain = address.rpartition("@")
    labels = domain.split(".")
    parts = [f"{local}{at}", labels[0], *(f".{label}" for label in labels[1:])]
    return format_html_join(
        "", '<span class="address-part">{}</span>', ((part,) for part in parts if part)
    )
