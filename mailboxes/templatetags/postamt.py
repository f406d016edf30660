"""Template filters that turn stored codes and numbers into words for the staff pages."""
from __future__ import annotations

from django import template
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import AuditEntry

register = template.Library()

# The audit log stores stable codes; people read these. Unknown codes are shown as they are.
ACTION_LABELS = {
    "customer.create": gettext_lazy("customer created"),
    "domain.create": gettext_lazy("domain added"),
    "mailbox.create": gettext_lazy("mailbox created"),
    "mailbox.password": gettext_lazy("password changed"),
    "mailbox.quota": gettext_lazy("quota changed"),
    "mailbox.plan": gettext_lazy("plan or protocol changed"),
    "mailbox.suspend": gettext_lazy("mailbox suspended"),
    "mailbox.reactivate": gettext_lazy("mailbox reactivated"),
    "mailbox.delete": gettext_lazy("mailbox deleted"),
    "plan.create": gettext_lazy("plan created"),
    "mailserver.create": gettext_lazy("mail server added"),
    "mailserver.update": gettext_lazy("mail server changed"),
}


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
        if entry.action == "mailbox.plan":
            old, new = details["old"], details["new"]
            return (
                f"{old['plan']} ({old['protocol'].upper()}, {filesizeformat(old['quota'])}) → "
                f"{new['plan']} ({new['protocol'].upper()}, {filesizeformat(new['quota'])})"
            )
    except (KeyError, TypeError, AttributeError):
        pass  # details written by an older or newer version: show the action alone
    return ""
