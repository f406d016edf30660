"""Staff pages for moving a mailbox to another mail server; ``mailboxes.moves`` does the work."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods
from django_htmx.http import HttpResponseStopPolling

from mailboxes import moves, selectors
from mailboxes.models import Mailbox
from web.access import staff_required
from web.client import client_ip
from web.http import AuthenticatedHttpRequest

from .forms import MoveForm


def _render(
    request: AuthenticatedHttpRequest,
    mailbox: Mailbox,
    form: MoveForm | None = None,
    status: int = 200,
) -> HttpResponse:
    move = moves.latest_move(mailbox)
    context = {"mailbox": mailbox, "move": move, "form": form or MoveForm()}
    if not request.htmx:
        return render(request, "staff/mailbox_move.html", context, status=status)
    response = render(request, "staff/mailbox_move.html#move-state", context)
    if move is not None and move.is_active:
        return response
    return HttpResponseStopPolling(response.content)


@staff_required
@require_http_methods(["GET", "POST"])
def mailbox_move(request: AuthenticatedHttpRequest, mailbox_id: int) -> HttpResponse:
    """GET: the latest move's progress (for htmx only its state, polled while it runs) and
    the form. POST: start a move to the chosen server."""
    mailbox = get_object_or_404(selectors.mailbox_queryset(), pk=mailbox_id)
    if request.method == "GET":
        return _render(request, mailbox)
    form = MoveForm(request.POST)
    if form.is_valid():
        try:
            moves.mailbox_move_start(
                mailbox=mailbox,
                target=form.cleaned_data["target"],
                actor=request.user,
                ip=client_ip(request),
            )
        except ValidationError as exc:
            form.add_service_error(exc)
        else:
            messages.success(
                request,
                _("Moving %(address)s to %(server)s.")
                % {"address": mailbox.display_address, "server": form.cleaned_data["target"]},
            )
            return redirect("staff:mailbox_move", mailbox.pk)
    return _render(request, mailbox, form, status=400)
