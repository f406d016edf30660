"""The REST API, version 1: thin views over the same selectors and services as the pages.

Every queryset starts from what the key may reach (``_scope``): a hoster key reaches
everything, a customer's key only that customer's things; the rest is a 404, as on the
pages. Whether the key's role may change something is decided by the services.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import services as account_services
from accounts.models import AuditEntry, Customer, User
from accounts.selectors import AuditFilter, audit_entries
from backups import downloads
from backups import selectors as backup_selectors
from backups import services as backup_services
from backups.models import BackupJob, DownloadJob, RestoreJob, Snapshot
from mailboxes import search, selectors, services
from mailboxes.models import Domain, Mailbox, MailServer, Plan
from mailboxes.passwords import generate_password
from web.client import client_ip

from . import idempotency, serializers
from .pagination import IdCursorPagination
from .permissions import StaffKeyOnly


def _named_server(name: str | None) -> MailServer | None:
    """The server a request names, None when it names none (placement chooses)."""
    if not name:
        return None
    server = MailServer.objects.filter(name=name).first()
    if server is None:
        raise exceptions.ValidationError(
            {"mail_server": _("There is no mail server by that name.")}
        )
    return server


def _by(request: Request) -> dict[str, Any]:
    return {"actor": request.user, "ip": client_ip(request)}


def _key_user(request: Request) -> User:
    """The user the request's key acts through (every view needs a key: ``KeyScope``)."""
    user = request.user
    assert isinstance(user, User)
    return user


def _own_customer(request: Request) -> int | None:
    """The customer a customer's key is confined to; None for the hoster's keys."""
    user = _key_user(request)
    return None if user.is_staff else user.customer_id


class ApiViewSet(viewsets.GenericViewSet):
    """Claims the ``Idempotency-Key`` of a POST once the key is known, keeps its answer."""

    lookup_value_converter = "int"

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        for name, values in request.query_params.lists():
            if any("\x00" in value for value in values):
                raise exceptions.ValidationError({name: _("Null characters are not allowed.")})
        self.idempotent = idempotency.claim(request)

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, idempotency.Replay):
            return idempotency.replayed(exc.record)
        return super().handle_exception(exc)

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        record = getattr(self, "idempotent", None)
        if record is not None and not response.has_header("Idempotent-Replayed"):
            idempotency.keep(record, response)
        return response


def _referenced(queryset: QuerySet[Any], field: str, pk: int) -> Any:
    """The object a request body names, or a 400 on that field (not a 404: the URL exists)."""
    found = queryset.filter(pk=pk).first()
    if found is None:
        raise exceptions.ValidationError(
            {field: _("There is none with the id %(id)s.") % {"id": pk}}
        )
    return found


def _integer(request: Request, name: str, most: int = 2**63 - 1) -> int | None:
    """A positive whole number from the query string (an id, a number of days)."""
    value = request.query_params.get(name)
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except ValueError:
        number = 0
    if not 1 <= number <= most:
        raise exceptions.ValidationError(
            {name: _("Enter a whole number from 1 to %(most)d.") % {"most": most}}
        )
    return number


def _allowance(request: Request, owner: Customer | Domain) -> Response:
    """GET: the allowance and what is allocated of it; PUT: set it (null: no limit)."""
    if request.method == "PUT":
        data = serializers.AllowanceSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        owner = services.storage_allowance_set(
            owner=owner,
            allowance_bytes=data.validated_data["storage_allowance_bytes"],
            **_by(request),
        )
    current = services.allocation(owner)
    return Response(
        serializers.AllowanceSerializer(
            {
                "storage_allowance_bytes": current.allowance_bytes,
                "allocated_bytes": current.allocated_bytes,
                "left_bytes": current.left_bytes,
            }
        ).data
    )


ALLOWANCE = extend_schema(
    methods=["GET", "PUT"],
    request=serializers.AllowanceSerializer,
    responses=serializers.AllowanceSerializer,
)


class CustomerViewSet(ApiViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    serializer_class = serializers.CustomerSerializer

    def get_queryset(self) -> QuerySet[Customer]:
        customers = Customer.objects.all()
        own = _own_customer(self.request)
        return customers if own is None else customers.filter(pk=own)

    @extend_schema(
        request=serializers.CustomerCreateSerializer,
        responses={201: serializers.CustomerSerializer},
    )
    def create(self, request: Request) -> Response:
        data = serializers.CustomerCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        customer = account_services.customer_create(**data.validated_data, **_by(request))
        return Response(
            serializers.CustomerSerializer(customer).data, status=status.HTTP_201_CREATED
        )

    @ALLOWANCE
    @action(detail=True, methods=["get", "put"])
    def allowance(self, request: Request, pk: int) -> Response:
        """The customer's quota pool: the quotas of all its mailboxes together."""
        return _allowance(request, self.get_object())


class PlanViewSet(ApiViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    serializer_class = serializers.PlanSerializer
    queryset = Plan.objects.all()


class MailServerViewSet(ApiViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    serializer_class = serializers.MailServerSerializer
    queryset = MailServer.objects.all()

    def get_permissions(self) -> list[Any]:
        return [*super().get_permissions(), StaffKeyOnly()]


class DomainViewSet(ApiViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    serializer_class = serializers.DomainSerializer

    def get_queryset(self) -> QuerySet[Domain]:
        domains = Domain.objects.select_related("mail_server")
        own = _own_customer(self.request)
        if own is not None:
            domains = domains.filter(customer=own)
        customer = _integer(self.request, "customer")
        return domains if customer is None else domains.filter(customer=customer)

    @extend_schema(
        parameters=[OpenApiParameter("customer", OpenApiTypes.INT, description="A customer's.")]
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(
        request=serializers.DomainCreateSerializer, responses={201: serializers.DomainSerializer}
    )
    def create(self, request: Request) -> Response:
        data = serializers.DomainCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        customers = Customer.objects.all()
        own = _own_customer(request)
        if own is not None:
            customers = customers.filter(pk=own)
        customer = _referenced(customers, "customer", data.validated_data["customer"])
        domain = services.domain_create(
            customer=customer,
            name=data.validated_data["name"],
            mail_server=_named_server(data.validated_data.get("mail_server")),
            **_by(request),
        )
        return Response(serializers.DomainSerializer(domain).data, status=status.HTTP_201_CREATED)

    @ALLOWANCE
    @action(detail=True, methods=["get", "put"])
    def allowance(self, request: Request, pk: int) -> Response:
        """The domain's quota pool, inside its customer's."""
        return _allowance(request, self.get_object())


MAILBOX_FILTERS = [
    OpenApiParameter("q", OpenApiTypes.STR, description="Part of the address or customer name."),
    OpenApiParameter("protocol", OpenApiTypes.STR, enum=["imap", "pop3"]),
    OpenApiParameter("plan", OpenApiTypes.INT),
    OpenApiParameter("status", OpenApiTypes.STR, enum=["active", "suspended"]),
    OpenApiParameter("server", OpenApiTypes.INT, description="A mail server's id."),
    OpenApiParameter("band", OpenApiTypes.STR, enum=list(search.BANDS)),
    OpenApiParameter("customer", OpenApiTypes.INT),
    OpenApiParameter("domain", OpenApiTypes.INT),
    OpenApiParameter("unused_days", OpenApiTypes.INT, description="No login for this many days."),
]


class MailboxViewSet(
    ApiViewSet,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
):
    serializer_class = serializers.MailboxSerializer

    def _filters(self) -> search.MailboxFilters:
        params = self.request.query_params
        unused = _integer(self.request, "unused_days", most=36_500)
        own = _own_customer(self.request)
        return search.MailboxFilters(
            search=params.get("q", ""),
            protocol=params.get("protocol") or None,
            plan=_integer(self.request, "plan"),
            status=params.get("status") or None,
            server=_integer(self.request, "server"),
            band=params.get("band") if params.get("band") in search.BANDS else None,
            customer=own if own is not None else _integer(self.request, "customer"),
            domain=_integer(self.request, "domain"),
            no_login_since=timezone.now() - timedelta(days=unused) if unused else None,
        )

    def get_queryset(self) -> QuerySet[Mailbox]:
        if self.action == "list":
            found = search.mailbox_list(self._filters(), list(Plan.objects.all()))
            return found.only(*search.MAILBOX_LIST_FIELDS, "domain_id", "message_count")
        mailboxes = Mailbox.objects.select_related("domain__customer", "plan", "mail_server")
        own = _own_customer(self.request)
        return mailboxes if own is None else mailboxes.filter(domain__customer=own)

    @extend_schema(parameters=MAILBOX_FILTERS)
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        assert page is not None
        rows = list(
            search.with_plans_and_servers(page, Plan.objects.all(), MailServer.objects.all())
        )
        return self.get_paginated_response(self.get_serializer(rows, many=True).data)

    @extend_schema(
        request=serializers.MailboxCreateSerializer,
        responses={201: serializers.MailboxCreatedSerializer},
    )
    def create(self, request: Request) -> Response:
        data = serializers.MailboxCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        domains = Domain.objects.all()
        own = _own_customer(request)
        if own is not None:
            domains = domains.filter(customer=own)
        domain = _referenced(domains, "domain", fields["domain"])
        plan = _referenced(Plan.objects.all(), "plan", fields["plan"])
        generated = None if fields.get("password") else generate_password()
        mailbox = services.mailbox_create(
            domain=domain,
            local_part=fields["local_part"],
            password=fields.get("password") or generated or "",
            plan=plan,
            protocol=fields.get("protocol"),
            quota_bytes=fields.get("quota_bytes"),
            mail_server=_named_server(fields.get("mail_server")),
            **_by(request),
        )
        mailbox.generated_password = generated  # type: ignore[attr-defined]
        body = serializers.MailboxCreatedSerializer(mailbox).data
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=serializers.MailboxUpdateSerializer, responses=serializers.MailboxSerializer
    )
    def partial_update(self, request: Request, pk: int) -> Response:
        mailbox = self.get_object()
        data = serializers.MailboxUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        if "plan" in fields or "protocol" in fields:
            plan = _referenced(Plan.objects.all(), "plan", fields.get("plan", mailbox.plan_id))
            mailbox = services.mailbox_change_plan(
                mailbox=mailbox, plan=plan, protocol=fields.get("protocol"), **_by(request)
            )
        if "quota_bytes" in fields:
            mailbox = services.mailbox_set_quota(
                mailbox=mailbox, quota_bytes=fields["quota_bytes"], **_by(request)
            )
        if "password" in fields:
            mailbox = services.mailbox_set_password(
                mailbox=mailbox, password=fields["password"], **_by(request)
            )
        return Response(serializers.MailboxSerializer(self.get_object()).data)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "final_backup",
                OpenApiTypes.BOOL,
                description="Back it up first; it is deleted once that backup is stored "
                "(202 with the backup job), and kept if the backup fails.",
            )
        ],
        responses={204: None, 202: serializers.JobSerializer},
    )
    def destroy(self, request: Request, pk: int) -> Response:
        mailbox = self.get_object()
        if request.query_params.get("final_backup") in ("true", "1"):
            job = backup_services.mailbox_delete_after_backup(mailbox=mailbox, **_by(request))
            return Response(serializers.JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)
        services.mailbox_delete(mailbox=mailbox, **_by(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=serializers.MailboxSerializer)
    @action(detail=True, methods=["post"])
    def suspend(self, request: Request, pk: int) -> Response:
        services.mailbox_suspend(mailbox=self.get_object(), **_by(request))
        return Response(serializers.MailboxSerializer(self.get_object()).data)

    @extend_schema(request=None, responses=serializers.MailboxSerializer)
    @action(detail=True, methods=["post"])
    def reactivate(self, request: Request, pk: int) -> Response:
        services.mailbox_reactivate(mailbox=self.get_object(), **_by(request))
        return Response(serializers.MailboxSerializer(self.get_object()).data)

    @extend_schema(responses=serializers.WarningSerializer(many=True))
    @action(detail=True, methods=["get"])
    def warnings(self, request: Request, pk: int) -> Response:
        """The quota warnings sent for the mailbox, newest first (the last 20)."""
        found = selectors.mailbox_warnings(self.get_object())
        return Response(serializers.WarningSerializer(found, many=True).data)

    @extend_schema(request=None, responses={202: serializers.JobSerializer})
    @action(detail=True, methods=["post"])
    def backup(self, request: Request, pk: int) -> Response:
        """Back the mailbox up now; follow the job at /backup-jobs/{id}/."""
        job = backup_services.backup_request(mailbox=self.get_object(), **_by(request))
        return Response(serializers.JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "since",
                OpenApiTypes.DATETIME,
                description="History from this time on (ISO 8601); default: 30 days ago.",
            )
        ],
        responses=serializers.UsageSerializer,
    )
    @action(detail=True, methods=["get"])
    def usage(self, request: Request, pk: int) -> Response:
        """The last measurement, the folders' sizes and the history since ``since``."""
        mailbox = self.get_object()
        now = timezone.now()
        since: datetime | None = now - timedelta(days=30)
        if request.query_params.get("since"):
            since = parse_datetime(request.query_params["since"])
            if since is None or timezone.is_naive(since):
                raise exceptions.ValidationError(
                    {"since": _("Give a time in ISO 8601 with its zone, e.g. 2026-12-01T00:00Z.")}
                )
        assert since is not None
        history = mailbox.samples.filter(taken_at__gte=since).order_by("taken_at")
        body = {
            "quota_bytes": mailbox.quota_bytes,
            "used_bytes": mailbox.used_bytes,
            "message_count": mailbox.message_count,
            "checked_at": mailbox.usage_checked_at,
            "folders": selectors.mailbox_folders(mailbox),
            "history": history.values("taken_at", "used_bytes"),
        }
        return Response(serializers.UsageSerializer(body).data)


# --- Backups and restores -----------------------------------------------------------------


class SnapshotViewSet(ApiViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    serializer_class = serializers.SnapshotSerializer

    def get_queryset(self) -> QuerySet[Snapshot]:
        snapshots = backup_selectors.snapshots_for(_key_user(self.request))
        mailbox = _integer(self.request, "mailbox")
        return snapshots if mailbox is None else snapshots.filter(repository__mailbox=mailbox)

    @extend_schema(parameters=[OpenApiParameter("mailbox", OpenApiTypes.INT)])
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(request=None, responses={202: serializers.DownloadJobSerializer})
    @action(detail=True, methods=["post"])
    def download(self, request: Request, pk: int) -> Response:
        """Have the snapshot built as a zip of one mbox file per folder; follow
        /download-jobs/{id}/ until its ``file`` link is there."""
        snapshot = self.get_object()
        job = backup_services.download_request(snapshot=snapshot, **_by(request))
        data = serializers.DownloadJobSerializer(job, context={"request": request}).data
        return Response(data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        request=serializers.RestoreRequestSerializer,
        responses={202: serializers.RestoreJobSerializer},
    )
    @action(detail=True, methods=["post"])
    def restore(self, request: Request, pk: int) -> Response:
        """Restore the whole snapshot, a folder or chosen messages; follow /restore-jobs/{id}/."""
        snapshot = self.get_object()
        data = serializers.RestoreRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        into = None
        if fields.get("into_mailbox") is not None:
            into = _referenced(
                backup_selectors.mailboxes_for(_key_user(request)),
                "into_mailbox",
                fields["into_mailbox"],
            )
        job = backup_services.restore_request(
            snapshot=snapshot,
            scope=fields["scope"],
            folder=fields["folder"],
            messages=[(folder, int(v), int(u)) for folder, v, u in fields["messages"]],
            into_new_folder=fields["into_new_folder"],
            into_mailbox=into,
            **_by(request),
        )
        return Response(serializers.RestoreJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class BackupJobViewSet(ApiViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    serializer_class = serializers.JobSerializer

    def get_queryset(self) -> QuerySet[BackupJob]:
        return backup_selectors.backup_jobs_for(_key_user(self.request))


class RestoreJobViewSet(ApiViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    serializer_class = serializers.RestoreJobSerializer

    def get_queryset(self) -> QuerySet[RestoreJob]:
        return backup_selectors.restore_jobs_for(_key_user(self.request))


class DownloadJobViewSet(ApiViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    serializer_class = serializers.DownloadJobSerializer

    def get_queryset(self) -> QuerySet[DownloadJob]:
        return backup_selectors.download_jobs_for(_key_user(self.request))

    @extend_schema(
        parameters=[OpenApiParameter("token", OpenApiTypes.STR, required=True)],
        responses={(200, "application/zip"): OpenApiTypes.BINARY},
    )
    @action(detail=True, methods=["get"])
    def file(self, request: Request, pk: int) -> StreamingHttpResponse:
        """The built zip, through the signed link the job gives (404 if tampered with,
        410 once expired)."""
        job = get_object_or_404(backup_selectors.downloads_to_fetch_for(_key_user(request)), pk=pk)
        token = request.query_params.get("token", "")
        try:
            zipped = backup_services.download_fetch(job=job, token=token, **_by(request))
        except downloads.LinkInvalid:
            raise exceptions.NotFound from None
        except downloads.LinkExpired:
            raise Gone from None
        response = StreamingHttpResponse(zipped, content_type="application/zip")
        response["Content-Length"] = str(job.size_bytes)
        response["Content-Disposition"] = content_disposition_header(True, downloads.file_name(job))
        return response


class Gone(exceptions.APIException):
    status_code = status.HTTP_410_GONE
    default_detail = _("This download has expired and was deleted. Ask for a new one.")
    default_code = "gone"


# --- The audit log --------------------------------------------------------------------------


class NewestFirst(IdCursorPagination):
    ordering = "-id"


AUDIT_FILTERS = [
    OpenApiParameter("actor", OpenApiTypes.STR, description="Part of who acted."),
    OpenApiParameter("customer", OpenApiTypes.STR, description="A customer's id or name."),
    OpenApiParameter("mailbox", OpenApiTypes.STR, description="Part of the address."),
    OpenApiParameter("action", OpenApiTypes.STR, description="e.g. mailbox.suspend"),
    OpenApiParameter("since", OpenApiTypes.DATE),
    OpenApiParameter("until", OpenApiTypes.DATE),
]


class AuditEventViewSet(ApiViewSet, mixins.ListModelMixin):
    """Every change, newest first: the hoster's keys only."""

    serializer_class = serializers.AuditEventSerializer
    pagination_class = NewestFirst

    def get_permissions(self) -> list[Any]:
        return [*super().get_permissions(), StaffKeyOnly()]

    def get_queryset(self) -> QuerySet[AuditEntry]:
        params = self.request.query_params
        days = {}
        for name in ("since", "until"):
            if params.get(name):
                day = parse_date(params[name])
                if day is None:
                    raise exceptions.ValidationError({name: _("Give a date as 2026-12-01.")})
                days[name] = day
        return audit_entries(
            AuditFilter(
                actor=params.get("actor", ""),
                customer=params.get("customer", ""),
                mailbox=params.get("mailbox", ""),
                action=params.get("action", ""),
                **days,
            )
        )

    @extend_schema(parameters=AUDIT_FILTERS)
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)
