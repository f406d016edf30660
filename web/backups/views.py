"""Backup pages for staff and customers alike (mounted under each, see ``urls``): thin views
over selectors and services. Every view starts from the objects the user may reach and 404s
on the rest."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import content_disposition_header, urlencode
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from accounts import roles
from accounts import selectors as account_selectors
from backups import downloads, selectors, services
from backups.models import DownloadJob, Job, Repository, RestoreJob, Snapshot
from mailboxes.models import Mailbox
from mailboxes.selectors import customer_mailboxes
from web.client import client_ip
from web.forms import ServiceForm
from web.http import AuthenticatedHttpRequest

from .forms import MessagesRestoreForm, RestoreForm


def _by(request: AuthenticatedHttpRequest) -> dict[str, Any]:
    return {"actor": request.user, "ip": client_ip(request)}


def _redirect(request: AuthenticatedHttpRequest, name: str, *args: Any) -> HttpResponse:
    """To another backup page of the same audience's mount."""
    return redirect(reverse(f"backups:{name}", args=args, current_app=request.current_app))


def _snapshot(request: AuthenticatedHttpRequest, snapshot_id: int) -> Snapshot:
    return get_object_or_404(selectors.snapshots_for(request.user), pk=snapshot_id)


def _grant_required(request: AuthenticatedHttpRequest, snapshot: Snapshot) -> HttpResponse:
    """The 403 for support without the customer's grant: say plainly who can open the door."""
    context = {
        "snapshot": snapshot,
        "mailbox": snapshot.repository.mailbox,
        "last_grant": account_selectors.latest_support_grant(snapshot.repository.customer_id),
    }
    return render(request, "backups/grant_required.html", context, status=403)


def _render_backups(
    request: AuthenticatedHttpRequest,
    overview: selectors.MailboxBackups,
    mailbox: Mailbox | None,
    restore_form: RestoreForm | None = None,
    form_snapshot: Snapshot | None = None,
    status: int = 200,
    withheld: bool = False,
) -> HttpResponse:
    """The backups page of a mailbox, or of a deleted mailbox's backups (``mailbox`` None);
    ``withheld``: a suspended mailbox whose backups this user may not reach (it says so)."""
    targets = _restore_targets(overview.repository) if overview.repository else None
    restore_forms = []
    for snapshot in overview.snapshots:
        if restore_form is not None and form_snapshot is not None and snapshot == form_snapshot:
            restore_forms.append((snapshot, restore_form))
        else:
            folders = selectors.snapshot_folders(snapshot)
            form = RestoreForm(folders=folders, targets=targets, prefix=f"s{snapshot.pk}")
            restore_forms.append((snapshot, form))
    # Whose backups they are: what support's access depends on (accounts.roles.BY_GRANT).
    repository = overview.repository
    customer_id = repository.customer_id if repository else mailbox and mailbox.domain.customer_id
    context = {
        "mailbox": mailbox,
        "customer_id": customer_id,
        "backups": overview,
        "restore_forms": restore_forms,
        "keep_days": settings.BACKUP_KEEP_DELETED_DAYS,
        "withheld": withheld,
    }
    return render(request, "backups/mailbox.html", context, status=status)


def _restore_targets(repository: Repository) -> QuerySet[Mailbox] | None:
    """Where the backup of a deleted mailbox may go: its customer's active mailboxes. None
    for a mailbox that still exists: its backups go back into it."""
    if repository.mailbox_id is not None:
        return None
    if repository.customer_id is None:  # the customer is gone too: nowhere to restore to
        return Mailbox.objects.none()
    return customer_mailboxes(repository.customer_id, active_only=True)


def _render_mailbox(
    request: AuthenticatedHttpRequest,
    mailbox_id: int,
    restore_form: RestoreForm | None = None,
    form_snapshot: Snapshot | None = None,
    status: int = 200,
) -> HttpResponse:
    mailbox = get_object_or_404(selectors.mailboxes_for(request.user), pk=mailbox_id)
    if selectors.backups_withheld(request.user, mailbox):
        empty = selectors.MailboxBackups(None)
        return _render_backups(request, empty, mailbox, status=status, withheld=True)
    overview = selectors.mailbox_overview(mailbox)
    return _render_backups(request, overview, mailbox, restore_form, form_snapshot, status)


@login_required
@require_GET
def mailbox_backups(request: AuthenticatedHttpRequest, mailbox_id: int) -> HttpResponse:
    return _render_mailbox(request, mailbox_id)


@login_required
@require_GET
def repository_backups(request: AuthenticatedHttpRequest, repository_id: int) -> HttpResponse:
    """The backups of a deleted mailbox, kept for a while: download, browse, or restore into
    another of the customer's mailboxes."""
    repository = get_object_or_404(selectors.repositories_for(request.user), pk=repository_id)
    if repository.mailbox_id is not None:
        return _redirect(request, "mailbox", repository.mailbox_id)
    return _render_backups(request, selectors.repository_overview(repository), None)


@login_required
@require_POST
def backup_now(request: AuthenticatedHttpRequest, mailbox_id: int) -> HttpResponse:
    mailbox = get_object_or_404(selectors.mailboxes_for(request.user), pk=mailbox_id)
    try:
        job = services.backup_request(mailbox=mailbox, **_by(request))
    except ValidationError as exc:
        for error in exc.messages:
            messages.error(request, error)
    else:
        if job.request_outcome == services.RESUMED:
            messages.success(request, _("The interrupted backup is resumed."))
        elif job.request_outcome == services.UNDER_WAY:
            messages.info(request, _("A backup of this mailbox is already under way."))
        else:
            messages.success(request, _("The backup has been started."))
    return _redirect(request, "mailbox", mailbox.pk)


def _backups_url(request: AuthenticatedHttpRequest, snapshot: Snapshot) -> str:
    """The backups page the snapshot is listed on."""
    repository = snapshot.repository
    if repository.mailbox_id is None:
        return reverse("backups:repository", args=[repository.pk], current_app=request.current_app)
    return reverse("backups:mailbox", args=[repository.mailbox_id], current_app=request.current_app)


def _try_later(
    request: AuthenticatedHttpRequest, snapshot: Snapshot, refused: services.TryLater
) -> HttpResponse:
    """Fair use spent (429) or not countable now (503): say so plainly, with the way back."""
    context = {"message": refused.message, "back": _backups_url(request, snapshot)}
    return render(request, "backups/try_later.html", context, status=refused.status)


def _start_restore(
    request: AuthenticatedHttpRequest, snapshot: Snapshot, form: ServiceForm, **what: Any
) -> HttpResponse | None:
    """Start the restore a valid form asks for and go to the job's progress; None, with the
    service's objections on the form, when it refuses."""
    try:
        job = services.restore_request(
            snapshot=snapshot,
            into_new_folder=form.cleaned_data["into_new_folder"],
            **what,
            **_by(request),
        )
    except ValidationError as exc:
        form.add_service_error(exc)
        return None
    except services.TryLater as refused:
        return _try_later(request, snapshot, refused)
    if job.request_outcome == services.JOINED:
        messages.info(request, _("This restore is already under way."))
    else:
        messages.success(request, _("The restore has been started."))
    return redirect(_backups_url(request, snapshot))


@login_required
@require_POST
def restore(request: AuthenticatedHttpRequest, snapshot_id: int) -> HttpResponse:
    snapshot = _snapshot(request, snapshot_id)
    repository = snapshot.repository
    form = RestoreForm(
        request.POST,
        folders=selectors.snapshot_folders(snapshot),
        targets=_restore_targets(repository),
        prefix=f"s{snapshot.pk}",
    )
    if form.is_valid():
        data = form.cleaned_data
        started = _start_restore(
            request,
            snapshot,
            form,
            scope=data["scope"],
            folder=data["folder"],
            into_mailbox=data.get("into_mailbox"),
        )
        if started is not None:
            return started
    overview = selectors.repository_overview(repository)
    return _render_backups(request, overview, repository.mailbox, form, snapshot, status=400)


def _render_browse(
    request: AuthenticatedHttpRequest,
    snapshot: Snapshot,
    folder: str | None,
    page: str | None,
    form: MessagesRestoreForm | None = None,
    status: int = 200,
) -> HttpResponse:
    folders = selectors.snapshot_folders(snapshot)
    names = [name for name, _count in folders]
    if folder not in names:
        folder = "INBOX" if "INBOX" in names else next(iter(names), "")
    found = services.browse_snapshot(snapshot=snapshot, folder=folder, page=page, **_by(request))
    if form is None:
        form = MessagesRestoreForm(
            initial={"folder": folder, "page": found.number},
            targets=_restore_targets(snapshot.repository),
        )
    context = {
        "snapshot": snapshot,
        "mailbox": snapshot.repository.mailbox,
        "folders": folders,
        "folder": folder,
        "page": found,
        "page_query": urlencode({"folder": folder}),
        "form": form,
        "chosen": set(form["messages"].value() or []) if form.is_bound else set(),
        "headers_hidden": any(message.readable is None for message in found),
    }
    return render(request, "backups/browse.html", context, status=status)


@login_required
@require_GET
def browse(request: AuthenticatedHttpRequest, snapshot_id: int) -> HttpResponse:
    snapshot = _snapshot(request, snapshot_id)
    try:
        return _render_browse(request, snapshot, request.GET.get("folder"), request.GET.get("page"))
    except roles.GrantRequired:
        return _grant_required(request, snapshot)


@login_required
@require_POST
def restore_messages(request: AuthenticatedHttpRequest, snapshot_id: int) -> HttpResponse:
    snapshot = _snapshot(request, snapshot_id)
    form = MessagesRestoreForm(request.POST, targets=_restore_targets(snapshot.repository))
    if form.is_valid():
        data = form.cleaned_data
        started = _start_restore(
            request,
            snapshot,
            form,
            scope=RestoreJob.Scope.MESSAGES,
            messages=[(data["folder"], validity, uid) for validity, uid in data["messages"]],
            into_mailbox=data.get("into_mailbox"),
        )
        if started is not None:
            return started
    return _render_browse(
        request, snapshot, request.POST.get("folder"), request.POST.get("page"), form, status=400
    )


@login_required
@require_POST
def download(request: AuthenticatedHttpRequest, snapshot_id: int) -> HttpResponse:
    """Ask a worker to build the download; its page shows the progress, then the link."""
    snapshot = _snapshot(request, snapshot_id)
    try:
        job = services.download_request(snapshot=snapshot, **_by(request))
    except roles.GrantRequired:
        return _grant_required(request, snapshot)
    except services.TryLater as refused:
        return _try_later(request, snapshot, refused)
    return _redirect(request, "download_job", job.pk)


@login_required
@require_GET
def download_file(
    request: AuthenticatedHttpRequest, job_id: int, token: str
) -> HttpResponse | StreamingHttpResponse:
    """The built download through its signed link, decrypted with its own key as it is
    sent: this process needs no backup identity."""
    job = get_object_or_404(selectors.downloads_to_fetch_for(request.user), pk=job_id)
    try:
        zipped = services.download_fetch(job=job, token=token, **_by(request))
    except downloads.LinkInvalid:
        raise Http404 from None
    except downloads.LinkExpired:
        return render(request, "backups/download_expired.html", {"job": job}, status=410)
    except roles.GrantRequired:
        return _grant_required(request, job.snapshot) if job.snapshot else HttpResponse(status=403)
    response = StreamingHttpResponse(zipped, content_type="application/zip")
    response["Content-Length"] = str(job.size_bytes)
    response["Content-Disposition"] = content_disposition_header(True, downloads.file_name(job))
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
@require_GET
def job_progress(request: AuthenticatedHttpRequest, kind: str, job_id: int) -> HttpResponse:
    """One URL for the job's page and, for htmx, its progress partial; polling stops once
    the job is over (status 286)."""
    jobs: QuerySet[Any] = {
        "backup": selectors.backup_jobs_for,
        "restore": selectors.restore_jobs_for,
        "download": selectors.download_jobs_for,
    }[kind](request.user)
    job: Job = get_object_or_404(jobs, pk=job_id)
    context = {"job": job, "kind": kind}
    if isinstance(job, DownloadJob) and job.is_ready and job.for_staff == request.user.is_staff:
        context["download_url"] = reverse(
            "backups:download_file",
            args=[job.pk, downloads.link_token(job)],
            current_app=request.current_app,
        )
    if not request.htmx:
        return render(request, "backups/job.html", context)
    response = render(request, "backups/_progress.html", context)
    if job.is_active:
        return response
    return HttpResponseStopPolling(response.content)
