"""Staff pages for the CSV import and export; ``mailboxes.imports`` does the work.

Upload (a dry run: every bad row and why, or what would be created) → confirm → the result,
with the generated passwords offered once as a download. The checked file waits in its
``ImportJob`` row; a large one is imported by a worker while the page shows its progress.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling

from mailboxes import imports
from mailboxes.models import ImportJob
from web.access import staff_required
from web.forms import ServiceForm
from web.http import AuthenticatedHttpRequest

RECENT_JOBS = 10


class ImportForm(ServiceForm):
    file = forms.FileField(
        label=gettext_lazy("CSV file"),
        help_text=gettext_lazy(
            "UTF-8 (with or without BOM), comma or semicolon; at most 100,000 rows."
        ),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )


def _render_start(
    request: AuthenticatedHttpRequest,
    form: ImportForm,
    *,
    problems: list[imports.Problem] | None = None,
    file_name: str = "",
    status: int = 200,
) -> HttpResponse:
    context = {
        "form": form,
        "problems": problems or [],
        "problem_rows": len({p.row for p in problems or []}),
        "file_name": file_name,
        "columns": imports.COLUMNS,
        "jobs": ImportJob.objects.defer("content", "passwords")[:RECENT_JOBS],
        "inline_rows": imports.INLINE_MAX_ROWS,
    }
    return render(request, "staff/imports.html", context, status=status)


@staff_required
@require_http_methods(["GET", "POST"])
def import_start(request: AuthenticatedHttpRequest) -> HttpResponse:
    """GET: the upload form. POST: the dry run; a file without problems is kept for the
    confirmation, one with problems is listed row by row and not kept."""
    if request.method == "GET":
        return _render_start(request, ImportForm())
    form = ImportForm(request.POST, request.FILES)
    if not form.is_valid():
        return _render_start(request, form, status=400)
    upload = form.cleaned_data["file"]
    if upload.size > imports.MAX_BYTES:
        form.add_error(
            "file",
            _("The file is larger than %(max)d MB; split it.") % {"max": imports.MAX_BYTES >> 20},
        )
        return _render_start(request, form, status=400)
    data = upload.read()
    try:
        checked = imports.check(data)
    except ValidationError as exc:
        form.add_error("file", exc)
        return _render_start(request, form, status=400)
    if checked.problems:
        return _render_start(
            request, form, problems=checked.problems, file_name=upload.name, status=400
        )
    job = imports.job_create(
        data=data,
        file_name=upload.name,
        checked=checked,
        actor=request.user,
        ip=request.META.get("REMOTE_ADDR"),
    )
    return redirect("staff:import_job", job.pk)


def _job_context(request: AuthenticatedHttpRequest, job: ImportJob) -> dict[str, object]:
    return {
        "job": job,
        "on_worker": not imports.runs_inline(job),
        # Offered only to who ran the import, and only once.
        "passwords_ready": bool(job.passwords) and job.created_by_id == request.user.pk,
    }


@staff_required
@require_GET
def import_job(request: AuthenticatedHttpRequest, job_id: int) -> HttpResponse:
    """The job's page; for htmx only its state, polled while it runs (286 stops it)."""
    job = get_object_or_404(ImportJob.objects.defer("content"), pk=job_id)
    context = _job_context(request, job)
    if not request.htmx:
        return render(request, "staff/import_job.html", context)
    response = render(request, "staff/import_job.html#job-state", context)
    if job.is_active:
        return response
    return HttpResponseStopPolling(response.content)


@staff_required
@require_POST
def import_run(request: AuthenticatedHttpRequest, job_id: int) -> HttpResponse:
    """Confirm: a small file is imported before the answer, a large one by a worker."""
    job = get_object_or_404(ImportJob, pk=job_id)
    if not imports.job_confirm(job=job, actor=request.user, ip=request.META.get("REMOTE_ADDR")):
        messages.warning(request, _("This import was started already."))
    return redirect("staff:import_job", job.pk)


@staff_required
@require_POST
def import_passwords(request: AuthenticatedHttpRequest, job_id: int) -> HttpResponse:
    """The generated passwords, once; a POST, so that no prefetch or crawler uses them up."""
    job = get_object_or_404(ImportJob, pk=job_id)
    passwords = imports.take_passwords(job=job, user=request.user)
    if passwords is None:
        messages.error(
            request,
            _("The passwords of this import are no longer here: they are given out only once."),
        )
        return redirect("staff:import_job", job.pk)
    response = HttpResponse(passwords, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = content_disposition_header(
        True, f"passwords-import-{job.pk}.csv"
    )
    response["Cache-Control"] = "no-store"
    return response


@staff_required
@require_GET
def export(request: AuthenticatedHttpRequest) -> StreamingHttpResponse:
    response = StreamingHttpResponse(imports.export_csv(), content_type="text/csv; charset=utf-8")
    name = f"postamt-{timezone.localdate():%Y-%m-%d}.csv"
    response["Content-Disposition"] = content_disposition_header(True, name)
    return response
