"""The one way Postamt writes an email: subject, plain text and (where it exists) HTML from
``templates/emails/<name>…``, all in the recipient's language."""

from __future__ import annotations

from typing import Any

from django.core.mail import EmailMultiAlternatives
from django.template import TemplateDoesNotExist
from django.template.loader import render_to_string
from django.utils import translation


def render_email(
    name: str, context: dict[str, Any], *, to: list[str], language: str
) -> EmailMultiAlternatives:
    """``emails/<name>_subject.txt``, ``<name>.txt`` and ``<name>.html`` rendered in ``language``.

    Marked ``Auto-Submitted`` (RFC 3834), so that vacation responders do not answer a machine.
    """
    with translation.override(language):
        context = {**context, "language": language}
        subject = " ".join(render_to_string(f"emails/{name}_subject.txt", context).split())
        text = render_to_string(f"emails/{name}.txt", context)
        try:
            html: str | None = render_to_string(f"emails/{name}.html", context)
        except TemplateDoesNotExist:
            html = None
    message = EmailMultiAlternatives(subject, text, to=to)
    if html is not None:
        message.attach_alternative(html, "text/html")
    message.extra_headers["Auto-Submitted"] = "auto-generated"
    return message
