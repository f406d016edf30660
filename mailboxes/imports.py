"""Bulk CSV import of customers, domains and mailboxes, and the export in the same columns.

An import is checked as a whole first: every bad row is listed with its line number, its
column and why. Only a file without a bad row is imported, all of it in one transaction, with
bulk inserts (PostgreSQL's COPY for the mailboxes and their audit entries). The rules are
the services' own (``customer_errors``, ``domain_to_ascii``, the mailbox checks of
``services``, the password policy), applied row by row without a query per row.

Passwords: a ``password_hash`` Dovecot verifies is stored as it is (``clean_password_hash``);
a clear ``password`` must meet the policy and is hashed, and a mailbox with neither gets a
generated one, shown once. Hashing costs ~20 ms a password (on purpose), so a file with many
of them runs on a worker, with progress (``run_job``); so does a large file.

The file format is in docs/cli.md ("import_csv").
"""

from __future__ import annotations

import csv
import io
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.template.defaultfilters import filesizeformat
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from accounts import audit, roles
from accounts.audit import Actor
from accounts.models import Customer, User
from accounts.services import customer_errors
from provider.celery import enqueue_after_commit
from provider.db import copy_rows
from webhooks import events

from .event_data import mailbox_data
from .idn import domain_to_ascii, domain_to_unicode
from .models import Domain, ImportJob, Mailbox, MailServer, Plan
from .passwords import (
    clean_password_hash,
    generate_password,
    hash_password,
    validate_mailbox_password,
)
from .placement import Placer
from .services import (
    _check_password,
    _check_quota,
    _clean_local_part,
    allocation,
    protocol_for,
    storage_path_for,
)
from .sizes import parse_size

log = logging.getLogger(__name__)

COLUMNS = (
    "customer",
    "contact_email",
    "language",
    "domain",
    "server",
    "mailbox",
    "protocol",
    "plan",
    "quota",
    "password",
    "password_hash",
)
MAILBOX_COLUMNS = ("protocol", "plan", "quota", "password", "password_hash")
MAX_ROWS = 100_000
MAX_BYTES = 32 * 1024 * 1024
# Larger files, or more passwords to hash than take a second or two, run on a worker.
INLINE_MAX_ROWS = 2_000
INLINE_MAX_HASHES = 100
# A hash costs about as much as checking this many rows: the weight of each in the progress.
HASH_WEIGHT = 20
# The file of an unconfirmed check, and passwords not downloaded, are kept this long.
KEEP_FOR = timedelta(days=1)
_LOOKUP_CHUNK = 1000

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class Problem:
    """Why a row cannot be imported: its line in the file (1 is the header), the column."""

    row: int
    column: str
    message: str


class Superseded(Exception):
    """This run lost its claim on the job (taken for dead): stop without writing."""


# --- Reading the file -----------------------------------------------------------------------


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")  # with or without a byte order mark
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ValidationError(
            _("The file is not UTF-8 text (line %(line)d). Save it as “CSV UTF-8” and try again.")
            % {"line": line}
        ) from exc


def read_rows(data: bytes) -> tuple[list[tuple[int, dict[str, str]]], list[Problem]]:
    """The rows as ``(line, {column: value})`` and the rows that do not fit the header.

    Raises ValidationError for a file that cannot be read at all (not UTF-8, not CSV, no
    header, unknown columns, too many rows). Comma or semicolon, whichever the header uses.
    """
    if len(data) > MAX_BYTES:
        raise ValidationError(
            _("The file is larger than %(max)d MB; split it.") % {"max": MAX_BYTES // 2**20}
        )
    text = _decode(data)
    if (nul := text.find("\x00")) >= 0:  # csv reads it, PostgreSQL stores no text with it
        raise ValidationError(
            _("Line %(line)d contains a NUL character: this is not a CSV text file.")
            % {"line": text.count("\n", 0, nul) + 1}
        )
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows: list[tuple[int, dict[str, str]]] = []
    problems: list[Problem] = []
    try:
        header = next(reader, None)
        if not header or not any(name.strip() for name in header):
            raise ValidationError(
                _("The file is empty: its first line must name the columns, such as %(columns)s.")
                % {"columns": ",".join(COLUMNS)}
            )
        names = [name.strip().lower() for name in header]
        _check_header(names)
        line = reader.line_num
        for record in reader:
            start, line = line + 1, reader.line_num
            if not any(value.strip() for value in record):
                continue  # blank lines, and rows of empty cells a spreadsheet leaves
            if len(rows) >= MAX_ROWS:
                raise ValidationError(
                    _("The file has more than %(max)d rows; split it.") % {"max": MAX_ROWS}
                )
            if len(record) > len(names) and any(v.strip() for v in record[len(names) :]):
                message = _("This row has %(found)d fields, but the header names %(expected)d.")
                if delimiter == "," and any("argon2id$" in value.lower() for value in record):
                    message += " " + _(
                        "An {ARGON2ID} hash contains commas: put it in double quotes."
                    )
                problems.append(
                    Problem(start, "", message % {"found": len(record), "expected": len(names)})
                )
            values = dict.fromkeys(COLUMNS, "")
            values.update((name, value) for name, value in zip(names, record, strict=False) if name)
            rows.append((start, values))
    except csv.Error as exc:
        raise ValidationError(
            _("Line %(line)d is not readable as CSV: %(error)s")
            % {"line": reader.line_num, "error": exc}
        ) from exc
    return rows, problems


def _check_header(names: list[str]) -> None:
    errors = []
    unknown = [name for name in names if name and name not in COLUMNS]
    if unknown:
        errors.append(
            _("Unknown columns: %(names)s. The columns are: %(columns)s.")
            % {"names": ", ".join(unknown), "columns": ", ".join(COLUMNS)}
        )
    twice = sorted({name for name in names if name and names.count(name) > 1})
    if twice:
        errors.append(_("Columns named twice: %(names)s.") % {"names": ", ".join(twice)})
    if "customer" not in names:
        errors.append(_("The column “customer” is missing: every row names its customer."))
    if errors:
        raise ValidationError(errors)


# --- Checking -------------------------------------------------------------------------------


@dataclass
class CustomerEntry:
    name: str
    row: int
    existing: Customer | None
    ambiguous: bool = False
    contact_email: str = ""
    contact_row: int = 0
    language: str = ""
    language_row: int = 0
    declared_row: int = 0
    pk: int | None = None

    def __post_init__(self) -> None:
        if self.existing is not None:
            self.pk = self.existing.pk


@dataclass
class DomainEntry:
    name: str
    row: int
    customer: CustomerEntry
    existing: Domain | None
    server: MailServer | None = None
    server_row: int = 0
    declared_row: int = 0
    pk: int | None = None

    def __post_init__(self) -> None:
        if self.existing is not None:
            self.pk = self.existing.pk
            self.server = self.existing.mail_server

    @cached_property
    def display_name(self) -> str:
        return domain_to_unicode(self.name)


@dataclass
class MailboxEntry:
    row: int
    domain: DomainEntry
    local_part: str
    plan: Plan
    protocol: str
    quota_bytes: int
    password: str
    password_hash: str
    # Staff's choice from the row, else where placement puts it once every row is read.
    server: MailServer | None = None

    @property
    def address(self) -> str:
        return f"{self.local_part}@{self.domain.name}"

    @property
    def display_address(self) -> str:
        return f"{self.local_part}@{self.domain.display_name}"


@dataclass
class Checked:
    """What a file would create, or why it cannot be imported (``problems``)."""

    rows: int
    customers: dict[str, CustomerEntry] = field(default_factory=dict)
    domains: dict[str, DomainEntry] = field(default_factory=dict)
    mailboxes: list[MailboxEntry] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def new_customers(self) -> list[CustomerEntry]:
        return [e for e in self.customers.values() if e.existing is None and not e.ambiguous]

    @property
    def new_domains(self) -> list[DomainEntry]:
        return [entry for entry in self.domains.values() if entry.existing is None]

    @property
    def to_hash(self) -> int:
        """Passwords Postamt has to hash: clear ones and generated ones."""
        return sum(1 for m in self.mailboxes if not m.password_hash)

    @property
    def to_generate(self) -> int:
        return sum(1 for m in self.mailboxes if not m.password_hash and not m.password)


def _messages(exc: ValidationError) -> list[str]:
    return list(exc.messages)


class _Checker:
    """Two passes over the rows: each value on its own (no queries), then, after one batch
    of lookups, how the rows relate to each other and to the database."""

    def __init__(self, rows: list[tuple[int, dict[str, str]]], problems: list[Problem]) -> None:
        self.rows = rows
        self.result = Checked(rows=len(rows), problems=list(problems))
        self.plans = {plan.name: plan for plan in Plan.objects.all()}
        self.servers = {server.name: server for server in MailServer.objects.all()}
        self._ascii: dict[str, str | ValidationError] = {}
        self._protocols: dict[tuple[int, str], str | ValidationError] = {}

    def problem(self, row: int, column: str, message: str | list[str]) -> None:
        for text in [message] if isinstance(message, str) else message:
            self.result.problems.append(Problem(row, column, text))

    def protocol(self, plan: Plan, requested: str) -> str:
        """``protocol_for``, once per plan and value: the answer depends on nothing else."""
        key = (plan.pk, requested)
        if key not in self._protocols:
            try:
                self._protocols[key] = protocol_for(plan, requested or None)
            except ValidationError as exc:
                self._protocols[key] = exc
        answer = self._protocols[key]
        if isinstance(answer, ValidationError):
            raise answer
        return answer

    def domain_ascii(self, name: str) -> str | ValidationError:
        if name not in self._ascii:
            try:
                self._ascii[name] = domain_to_ascii(name)
            except ValidationError as exc:
                self._ascii[name] = exc
        return self._ascii[name]

    def run(self, progress: Progress | None) -> Checked:
        parsed: list[_Row] = []
        for index, (row, values) in enumerate(self.rows):
            parsed.append(self.parse(row, values))
            if progress and index % 2000 == 1999:
                progress(index + 1, len(self.rows), "checking")
        self.lookup(parsed)
        for item in parsed:
            if item.customer:
                self.relate(item)
        self.finish()
        self.result.problems.sort(key=lambda p: (p.row, _column_order(p.column)))
        return self.result

    # Pass 1: every value of a row by itself.

    def parse(self, row: int, values: dict[str, str]) -> _Row:
        before = len(self.result.problems)
        item = _Row(row=row)
        item.customer = values["customer"].strip()  # as customer_create keeps it
        if not item.customer:
            self.problem(row, "customer", _("Every row needs the customer's name."))
        item.contact_email = values["contact_email"].strip()
        item.language = values["language"].strip().lower()
        domain = values["domain"].strip()
        mailbox = values["mailbox"].strip()
        server = values["server"].strip()
        item.has_mailbox = bool(mailbox)
        if "@" in mailbox:  # a whole address: its domain must be the row's
            mailbox, _at, address_domain = mailbox.rpartition("@")
            if not domain:
                domain = address_domain
            elif self.domain_ascii(domain) != self.domain_ascii(address_domain):
                self.problem(
                    row,
                    "mailbox",
                    _("The address is in the domain %(other)s, the row's domain is %(domain)s.")
                    % {"other": address_domain, "domain": domain},
                )
        item.has_domain = bool(domain)
        if domain:
            ascii_name = self.domain_ascii(domain)
            if isinstance(ascii_name, ValidationError):
                self.problem(row, "domain", _messages(ascii_name))
            else:
                item.domain = ascii_name
        elif mailbox:
            self.problem(row, "domain", _("A mailbox needs its domain."))
        if server:
            item.server = self.servers.get(server)
            if item.server is None:
                self.problem(
                    row,
                    "server",
                    _("There is no mail server “%(name)s”. Servers: %(names)s.")
                    % {"name": server, "names": ", ".join(self.servers) or _("none yet")},
                )
            elif not domain:
                self.problem(row, "server", _("A mail server is given for a domain: name one."))
        if mailbox:
            self.parse_mailbox(row, values, mailbox, item)
        elif any(values[column].strip() for column in MAILBOX_COLUMNS):
            self.problem(
                row, "mailbox", _("This row has a mailbox's settings but no mailbox name.")
            )
        item.bad = len(self.result.problems) > before
        return item

    def parse_mailbox(self, row: int, values: dict[str, str], local_part: str, item: _Row) -> None:
        try:
            item.local_part = _clean_local_part(local_part)
        except ValidationError as exc:
            self.problem(row, "mailbox", _messages(exc))
        plan_name = values["plan"].strip()
        plan = self.plans.get(plan_name)
        if not plan_name:
            self.problem(row, "plan", _("Give the mailbox's plan."))
        elif plan is None:
            self.problem(
                row,
                "plan",
                _("There is no plan “%(name)s”. Plans: %(names)s.")
                % {"name": plan_name, "names": ", ".join(sorted(self.plans)) or _("none yet")},
            )
        item.plan = plan
        quota = values["quota"].strip()
        if quota:
            try:
                item.quota_bytes = parse_size(quota)
            except ValidationError as exc:
                self.problem(row, "quota", _messages(exc))
        password = values["password"]
        password_hash = values["password_hash"].strip()
        if password and password_hash:
            self.problem(
                row,
                "password",
                _("Give a password or a password hash, not both."),
            )
        elif password_hash:
            try:
                item.password_hash = clean_password_hash(password_hash)
            except ValidationError as exc:
                self.problem(row, "password_hash", _messages(exc))
        item.password = password
        if plan is None:
            return
        checks: list[tuple[str, Callable[[], object]]] = [
            ("protocol", lambda: self.protocol(plan, values["protocol"].strip().lower()))
        ]
        if item.quota_bytes is None:
            item.quota_bytes = plan.default_quota_bytes
        else:
            checks.append(("quota", lambda: _check_quota(item.quota_bytes or 0, plan)))
        if password and not password_hash and item.local_part and item.domain:
            address = f"{item.local_part}@{item.domain}"
            checks.append(("password", lambda: _check_password(password, address)))
        for column, check in checks:
            try:
                result = check()
            except ValidationError as exc:
                self.problem(row, column, _messages(exc))
            else:
                if column == "protocol":
                    item.protocol = str(result)

    # The database, once for all rows.

    def lookup(self, items: Sequence[_Row]) -> None:
        names = {item.customer for item in items if item.customer}
        self.db_customers: dict[str, list[Customer]] = {}
        for chunk in _chunks(sorted(names)):
            for customer in Customer.objects.filter(name__in=chunk):
                self.db_customers.setdefault(customer.name, []).append(customer)
        domains = {item.domain for item in items if item.domain}
        self.db_domains: dict[str, Domain] = {}
        for chunk in _chunks(sorted(domains)):
            for domain in Domain.objects.filter(name__in=chunk).select_related(
                "customer", "mail_server"
            ):
                self.db_domains[domain.name] = domain
        # An address is its domain's name after the @: only a domain that exists has mailboxes.
        addresses = {
            f"{i.local_part}@{i.domain}"
            for i in items
            if i.local_part and i.domain in self.db_domains
        }
        self.db_addresses: set[str] = set()
        for chunk in _chunks(sorted(addresses)):
            self.db_addresses.update(
                Mailbox.objects.filter(address__in=chunk).values_list("address", flat=True)
            )
        self.seen_addresses: dict[str, int] = {}

    # Pass 2: the rows with each other and with the database.

    def relate(self, item: _Row) -> None:
        customer = self.relate_customer(item)
        if customer is None or not item.domain:
            return
        domain = self.relate_domain(item, customer)
        if domain is None or not item.local_part or item.bad:
            return
        address = f"{item.local_part}@{item.domain}"
        shown = f"{item.local_part}@{domain.display_name}"
        if address in self.seen_addresses:
            self.problem(
                item.row,
                "mailbox",
                _("The mailbox %(address)s is also in row %(row)d.")
                % {"address": shown, "row": self.seen_addresses[address]},
            )
            return
        self.seen_addresses[address] = item.row
        if address in self.db_addresses:
            self.problem(
                item.row,
                "mailbox",
                _("The mailbox %(address)s already exists.") % {"address": shown},
            )
            return
        assert item.plan is not None and item.quota_bytes is not None
        if item.server is not None and not item.server.active:
            self.problem(item.row, "server", _accepts_none(item.server))
            return
        self.result.mailboxes.append(
            MailboxEntry(
                row=item.row,
                domain=domain,
                local_part=item.local_part,
                plan=item.plan,
                protocol=item.protocol,
                quota_bytes=item.quota_bytes,
                password=item.password,
                password_hash=item.password_hash,
                server=item.server,
            )
        )

    def relate_customer(self, item: _Row) -> CustomerEntry | None:
        entry = self.result.customers.get(item.customer)
        if entry is None:
            existing = self.db_customers.get(item.customer, [])
            entry = CustomerEntry(
                name=item.customer,
                row=item.row,
                existing=existing[0] if len(existing) == 1 else None,
                ambiguous=len(existing) > 1,
            )
            self.result.customers[item.customer] = entry
        if entry.ambiguous:
            self.problem(
                item.row,
                "customer",
                _(
                    "%(count)d customers are called “%(name)s”: rename one of them, or add "
                    "these rows in the web interface."
                )
                % {"count": len(self.db_customers[item.customer]), "name": item.customer},
            )
            return None
        ok = self.relate_customer_field(item, entry, "contact_email") and (
            self.relate_customer_field(item, entry, "language")
        )
        if not item.has_domain:  # a row for the customer alone creates it
            if entry.existing is not None:
                self.problem(
                    item.row,
                    "customer",
                    _("The customer “%(name)s” already exists.") % {"name": entry.name},
                )
                return None
            if entry.declared_row:
                self.problem(
                    item.row,
                    "customer",
                    _("The customer “%(name)s” is also in row %(row)d.")
                    % {"name": entry.name, "row": entry.declared_row},
                )
                return None
            entry.declared_row = item.row
        return entry if ok else None

    def relate_customer_field(self, item: _Row, entry: CustomerEntry, column: str) -> bool:
        """A customer's contact email or language may be on each of its rows: the same each
        time (letter case aside), and an existing customer's own."""
        value = getattr(item, column)
        if not value:
            return True
        params = {"name": entry.name}
        if entry.existing is not None:
            stored = getattr(entry.existing, column)
            if value.lower() == stored.lower():
                return True
            params["value"] = stored
            if column == "contact_email":
                message = _(
                    "The customer “%(name)s” exists with the contact email %(value)s: give the "
                    "same or leave it empty."
                )
            else:
                message = _(
                    "The customer “%(name)s” exists with the language %(value)s: give the same "
                    "or leave it empty."
                )
            self.problem(item.row, column, message % params)
            return False
        row_field = "contact_row" if column == "contact_email" else "language_row"
        first = getattr(entry, column)
        if not first:
            setattr(entry, column, value)
            setattr(entry, row_field, item.row)
            return True
        if value.lower() == first.lower():
            return True
        params |= {"value": first, "row": getattr(entry, row_field)}
        if column == "contact_email":
            message = _(
                "Row %(row)d gives the customer “%(name)s” the contact email %(value)s: give "
                "the same or leave it empty."
            )
        else:
            message = _(
                "Row %(row)d gives the customer “%(name)s” the language %(value)s: give the "
                "same or leave it empty."
            )
        self.problem(item.row, column, message % params)
        return False

    def relate_domain(self, item: _Row, customer: CustomerEntry) -> DomainEntry | None:
        assert item.domain
        entry = self.result.domains.get(item.domain)
        if entry is None:
            entry = DomainEntry(
                name=item.domain,
                row=item.row,
                customer=customer,
                existing=self.db_domains.get(item.domain),
            )
            self.result.domains[item.domain] = entry
        if entry.existing is not None and entry.existing.customer_id != customer.pk:
            self.problem(
                item.row,
                "domain",
                _("The domain %(domain)s belongs to the customer “%(owner)s”.")
                % {"domain": entry.display_name, "owner": entry.existing.customer.name},
            )
            return None
        if entry.customer is not customer:
            self.problem(
                item.row,
                "domain",
                _("The domain %(domain)s is the customer “%(owner)s”'s in row %(row)d.")
                % {"domain": entry.display_name, "owner": entry.customer.name, "row": entry.row},
            )
            return None
        # A row's server is its mailbox's; only a row for the domain alone names the domain's.
        if item.server is not None and not item.has_mailbox and not self.relate_server(item, entry):
            return None
        if not item.has_mailbox:  # a row for the domain alone creates it
            if entry.existing is not None:
                self.problem(
                    item.row,
                    "domain",
                    _("The domain “%(name)s” already exists.") % {"name": entry.display_name},
                )
                return None
            if entry.declared_row:
                self.problem(
                    item.row,
                    "domain",
                    _("The domain %(domain)s is also in row %(row)d.")
                    % {"domain": entry.display_name, "row": entry.declared_row},
                )
                return None
            entry.declared_row = item.row
        return entry

    def relate_server(self, item: _Row, entry: DomainEntry) -> bool:
        server = item.server
        assert server is not None
        if entry.server is None:
            if not server.active:
                self.problem(item.row, "server", _accepts_none(server))
                return False
            entry.server, entry.server_row = server, item.row
        elif entry.server.pk != server.pk:
            self.problem(
                item.row,
                "server",
                _("The domain %(domain)s is on the mail server %(server)s%(where)s.")
                % {
                    "domain": entry.display_name,
                    "server": entry.server.name,
                    "where": (_(" (row %(row)d)") % {"row": entry.server_row})
                    if entry.server_row
                    else "",
                },
            )
            return False
        return True

    # What can only be judged once every row is read.

    def finish(self) -> None:
        for entry in self.result.new_customers:
            errors = customer_errors(
                name=entry.name,
                contact_email=entry.contact_email,
                language=entry.language or "en",  # customer_create's default
            )
            rows = {"contact_email": entry.contact_row, "language": entry.language_row}
            for name, messages in errors.items():
                column = "customer" if name == "name" else name
                self.problem(rows.get(name) or entry.row, column, messages)
        self.place_new_domains()
        self.check_allowances()

    def check_allowances(self) -> None:
        for problem in allowance_problems(self.result.mailboxes):
            self.result.problems.append(problem)

    def place_new_domains(self) -> None:
        """Domains without a server, then mailboxes without one, go where ``placement``
        would put them one by one, counting this file's quotas as it goes."""
        unplaced = [entry for entry in self.result.new_domains if entry.server is None]
        if unplaced:
            domains = Placer.for_accepting_servers()
            for entry in unplaced:
                try:
                    entry.server = domains.place(0)
                except ValidationError as exc:
                    self.problem(entry.row, "domain", _messages(exc))
        mailboxes = Placer.for_accepting_servers()
        for mailbox in self.result.mailboxes:
            try:
                mailbox.server = mailboxes.place(mailbox.quota_bytes, requested=mailbox.server)
            except ValidationError as exc:
                self.problem(mailbox.row, "server", _messages(exc))


def _accepts_none(server: MailServer) -> str:
    return _("The mail server %(server)s accepts no new mailboxes.") % {"server": server.name}


@dataclass
class _Row:
    """One row's values once read, before the rows are related."""

    row: int
    bad: bool = False
    has_domain: bool = False
    has_mailbox: bool = False
    customer: str = ""
    contact_email: str = ""
    language: str = ""
    domain: str = ""
    server: MailServer | None = None
    local_part: str = ""
    plan: Plan | None = None
    protocol: str = ""
    quota_bytes: int | None = None
    password: str = ""
    password_hash: str = ""


def allowance_problems(mailboxes: Sequence[MailboxEntry]) -> list[Problem]:
    """The storage allowance rule of ``services.check_storage_allowance`` for a whole file:
    the new quotas of existing customers and domains on top of what they have already."""
    adding: dict[Customer | Domain, tuple[int, int]] = {}
    for mailbox in mailboxes:
        for owner in (mailbox.domain.existing, mailbox.domain.customer.existing):
            if owner is not None and owner.storage_allowance_bytes is not None:
                total, row = adding.get(owner, (0, mailbox.row))
                adding[owner] = (total + mailbox.quota_bytes, row)
    problems = []
    for owner, (new_bytes, row) in adding.items():
        have = allocation(owner)
        if have.fits(new_bytes):
            continue
        message = _(
            "The storage allowance of %(owner)s is %(allowance)s and %(left)s of it is left; "
            "the file's mailboxes need %(quota)s."
        ) % {
            "owner": owner.display_name if isinstance(owner, Domain) else owner.name,
            "allowance": filesizeformat(have.allowance_bytes or 0),
            "left": filesizeformat(have.left_bytes or 0),
            "quota": filesizeformat(new_bytes),
        }
        problems.append(Problem(row, "quota", message))
    return problems


def _column_order(column: str) -> int:
    return COLUMNS.index(column) if column in COLUMNS else -1


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _LOOKUP_CHUNK):
        yield items[start : start + _LOOKUP_CHUNK]


def check(data: bytes, *, progress: Progress | None = None) -> Checked:
    """The dry run: what the file would create, and every problem with a row (``problems``).

    Changes nothing. Raises ValidationError when the file cannot be read at all.
    """
    rows, problems = read_rows(data)
    return _Checker(rows, problems).run(progress)


# --- Importing ------------------------------------------------------------------------------


@dataclass
class Result:
    customers: int
    domains: int
    mailboxes: int
    # (address as shown, login, password) of every generated password.
    generated: list[tuple[str, str, str]]


def _hash_all(checked: Checked, progress: Progress | None) -> tuple[list[str], list[str | None]]:
    """Each mailbox's stored hash and, where Postamt made it up, its password.

    Hashing is slow on purpose; argon2 leaves the GIL, so all cores share the work."""
    hashes: list[str] = []
    generated: list[str | None] = []
    pending: list[tuple[int, str]] = []
    for index, mailbox in enumerate(checked.mailboxes):
        made_up = None
        if not (mailbox.password_hash or mailbox.password):
            made_up = _generate_for(mailbox.address)
        generated.append(made_up)
        hashes.append(mailbox.password_hash)
        if not mailbox.password_hash:
            pending.append((index, mailbox.password or made_up or ""))
    if pending:
        workers = max(1, min(os.cpu_count() or 1, 8))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = pool.map(hash_password, (password for _index, password in pending))
            for done, ((index, _password), stored) in enumerate(
                zip(pending, results, strict=True), start=1
            ):
                hashes[index] = stored
                if progress and done % 20 == 0:
                    progress(done, len(pending), "hashing")
    return hashes, generated


def _generate_for(address: str) -> str:
    """A random password the policy accepts (one could contain a short mailbox name)."""
    while True:
        password = generate_password()
        try:
            validate_mailbox_password(password, address)
        except ValidationError:
            continue
        return password


def _write(
    checked: Checked,
    hashes: list[str],
    *,
    job: ImportJob,
    actor: Actor,
    ip: str | None,
) -> None:
    """Insert everything ``checked`` holds; inside the caller's transaction."""
    # Checked again with the customers locked: an allowance lowered since the dry run holds.
    existing = {
        m.domain.customer.existing.pk for m in checked.mailboxes if m.domain.customer.existing
    }
    list(Customer.objects.select_for_update().filter(pk__in=existing).values_list("pk"))
    if late := allowance_problems(checked.mailboxes):
        raise ValidationError([problem.message for problem in late])
    now = timezone.now()
    details = {"import": job.pk}
    new_customers = checked.new_customers
    created = Customer.objects.bulk_create(
        [
            Customer(
                name=entry.name,
                contact_email=entry.contact_email,
                language=entry.language or "en",  # customer_create's default
            )
            for entry in new_customers
        ]
    )
    for entry, customer in zip(new_customers, created, strict=True):
        entry.pk = customer.pk
    new_domains = checked.new_domains
    domains = Domain.objects.bulk_create(
        [
            Domain(name=entry.name, customer_id=_pk(entry.customer.pk), mail_server=entry.server)
            for entry in new_domains
        ]
    )
    for domain_entry, domain in zip(new_domains, domains, strict=True):
        domain_entry.pk = domain.pk
    copy_rows(
        Mailbox,
        (
            "domain",
            "local_part",
            "address",
            "protocol",
            "plan",
            "mail_server",
            "quota_bytes",
            "status",
            "password_hash",
            "password_changed_at",
            "storage_path",
            "usage_state",
            "usage_error",
            "warning_level",
            "password_notice_due",
            "created_at",
            "updated_at",
        ),
        (
            (
                m.domain.pk,
                m.local_part,
                m.address,
                m.protocol,
                m.plan.pk,
                m.server.pk if m.server else None,
                m.quota_bytes,
                Mailbox.Status.ACTIVE.value,
                stored,
                now,
                storage_path_for(m.domain.name, m.local_part),
                Mailbox.UsageState.UNKNOWN.value,
                "",
                0,
                False,  # a new mailbox's password is no change to announce
                now,
                now,
            )
            for m, stored in zip(checked.mailboxes, hashes, strict=True)
        ),
    )
    # COPY returns no ids: the rows just written are those of these domains from ``now`` on.
    ids: dict[str, int] = {}
    domain_ids = sorted({_pk(m.domain.pk) for m in checked.mailboxes})
    for start in range(0, len(domain_ids), _LOOKUP_CHUNK):
        ids.update(
            Mailbox.objects.filter(
                domain_id__in=domain_ids[start : start + _LOOKUP_CHUNK], created_at__gte=now
            ).values_list("address", "id")
        )
    audit.record_bulk(
        "customer.create",
        Customer,
        ((e.pk or 0, e.name, e.pk, details) for e in new_customers),
        actor=actor,
        ip=ip,
    )
    audit.record_bulk(
        "domain.create",
        Domain,
        ((e.pk or 0, e.display_name, e.customer.pk, details) for e in new_domains),
        actor=actor,
        ip=ip,
    )
    audit.record_bulk(
        "mailbox.create",
        Mailbox,
        (
            (
                ids[m.address],
                m.display_address,
                m.domain.customer.pk,
                {
                    "protocol": m.protocol,
                    "quota_bytes": m.quota_bytes,
                    "plan": m.plan.name,
                    **details,
                },
            )
            for m in checked.mailboxes
        ),
        actor=actor,
        ip=ip,
    )
    _announce(sorted(ids.values()))


def _announce(mailbox_ids: list[int]) -> None:
    """``mailbox.created`` for each imported mailbox, as ``mailbox_create`` sends it."""
    if not events.subscribers(events.MAILBOX_CREATED):
        return
    for start in range(0, len(mailbox_ids), _LOOKUP_CHUNK):
        created = Mailbox.objects.filter(
            pk__in=mailbox_ids[start : start + _LOOKUP_CHUNK]
        ).select_related("domain")
        events.emit_many(events.MAILBOX_CREATED, ({"mailbox": mailbox_data(m)} for m in created))


def _pk(pk: int | None) -> int:
    assert pk is not None, "a parent is written before its children"
    return pk


def passwords_csv(generated: list[tuple[str, str, str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["mailbox", "login", "password"])
    writer.writerows(generated)
    return out.getvalue()


def _execute(
    job: ImportJob,
    token: str,
    checked: Checked,
    *,
    actor: Actor,
    keep_passwords: bool,
    progress: Progress | None = None,
) -> Result:
    """Hash, then write all of ``checked`` in one transaction that also marks the job done."""
    hashes, made_up = _hash_all(checked, progress)
    generated = [
        (m.display_address, m.address, password)
        for m, password in zip(checked.mailboxes, made_up, strict=True)
        if password is not None
    ]
    result = Result(
        customers=len(checked.new_customers),
        domains=len(checked.new_domains),
        mailboxes=len(checked.mailboxes),
        generated=generated,
    )
    if progress:
        progress(0, 1, "writing")
    try:
        with transaction.atomic():
            _write(checked, hashes, job=job, actor=actor, ip=job.ip_address)
            audit.record(
                "import.run",
                job,
                actor=actor,
                ip=job.ip_address,
                file=job.file_name,
                rows=checked.rows,
                customers=result.customers,
                domains=result.domains,
                mailboxes=result.mailboxes,
                passwords_generated=len(generated),
                passwords_hashed=checked.to_hash - len(generated),
            )
            finished = ImportJob.objects.filter(pk=job.pk, claim=token).update(
                status=ImportJob.Status.DONE,
                content=b"",
                customers=result.customers,
                domains=result.domains,
                mailboxes=result.mailboxes,
                passwords_generated=len(generated),
                passwords=passwords_csv(generated) if keep_passwords and generated else "",
                problems=[],
                error="",
                step="",
                finished_at=timezone.now(),
            )
            if not finished:
                raise Superseded(f"import {job.pk} was taken over")
    except IntegrityError as exc:
        # Someone created one of these domains or mailboxes since the check: nothing stands.
        raise ValidationError(
            _(
                "A domain or mailbox of the file was created elsewhere while it was imported; "
                "nothing was imported. Check the file again."
            )
        ) from exc
    return result


def _progress_writer(job: ImportJob, token: str, rows: int) -> Progress:
    """Record progress at most twice a second; it is also the run's heartbeat."""
    state = {"at": 0.0, "hashes": 0}

    def report(done: int, total: int, step: str) -> None:
        if step == "hashing":
            state["hashes"] = total
        grand_total = rows * 2 + state["hashes"] * HASH_WEIGHT
        units = {
            "checking": done,
            "hashing": rows + done * HASH_WEIGHT,
            "writing": rows + state["hashes"] * HASH_WEIGHT,
        }[step]
        now = time.monotonic()
        if step != "writing" and now - state["at"] < 0.5:
            return
        state["at"] = now
        updated = ImportJob.objects.filter(pk=job.pk, claim=token).update(
            step=step,
            progress_done=units,
            progress_total=grand_total,
            heartbeat_at=timezone.now(),
        )
        if not updated:
            raise Superseded(f"import {job.pk} was taken over")

    return report


def _fail(job: ImportJob, token: str, *, problems: Sequence[Problem] = (), error: str = "") -> None:
    ImportJob.objects.filter(pk=job.pk, claim=token).update(
        status=ImportJob.Status.FAILED,
        content=b"",
        problems=[[p.row, p.column, p.message] for p in problems],
        error=error,
        step="",
        finished_at=timezone.now(),
    )


def _run_claimed(job: ImportJob, token: str) -> None:
    """Check the kept file again (the database may have changed since) and import it."""
    with translation.override(job.language):
        progress = _progress_writer(job, token, job.rows)
        try:
            checked = check(bytes(job.content), progress=progress)
            if checked.problems:
                _fail(job, token, problems=checked.problems)
                return
            _execute(
                job,
                token,
                checked,
                actor=job.created_by or job.actor_name,
                keep_passwords=True,
                progress=progress,
            )
        except Superseded:
            log.warning("import %s was taken over by another run", job.pk)
        except ValidationError as exc:
            _fail(job, token, error=" ".join(exc.messages))
        except Exception:
            _fail(job, token, error=_("The import stopped on an unexpected error; see the logs."))
            raise


# --- The job: web uploads -------------------------------------------------------------------


def job_create(
    *,
    data: bytes,
    file_name: str,
    checked: Checked,
    actor: User,
    ip: str | None = None,
) -> ImportJob:
    """Keep a file whose check found no problem until it is confirmed (``job_confirm``)."""
    roles.authorize(actor, "import.run")
    if checked.problems:
        raise ValueError("only a file without problems is kept for import")
    return ImportJob.objects.create(
        file_name=file_name[:255],
        content=data,
        created_by=actor,
        actor_name=audit.actor_label(actor),
        ip_address=ip,
        language=translation.get_language() or settings.LANGUAGE_CODE,
        rows=checked.rows,
        customers=len(checked.new_customers),
        domains=len(checked.new_domains),
        mailboxes=len(checked.mailboxes),
        passwords_generated=checked.to_generate,
        passwords_to_hash=checked.to_hash,
        progress_total=checked.rows * 2 + checked.to_hash * HASH_WEIGHT,
    )


def runs_inline(job: ImportJob) -> bool:
    """Whether the import is quick enough to run while the browser waits (a second or two)."""
    return job.rows <= INLINE_MAX_ROWS and job.passwords_to_hash <= INLINE_MAX_HASHES


def job_confirm(
    *, job: ImportJob, actor: User | str, ip: str | None = None, inline: bool | None = None
) -> bool:
    """Start the import of a checked file: now, in this process, for a small file, else on a
    worker (``inline`` overrides). False when it was started already (a second click, another
    tab) or has expired. Whoever confirms must be allowed to import: a support user must not
    start a file an administrator checked."""
    roles.authorize(actor, "import.run")
    runs_now = runs_inline(job) if inline is None else inline
    now = timezone.now()
    token = secrets.token_hex(16)
    status = ImportJob.Status.RUNNING if runs_now else ImportJob.Status.QUEUED
    started = ImportJob.objects.filter(pk=job.pk, status=ImportJob.Status.CHECKED).update(
        status=status,
        claim=token if runs_now else "",
        attempts=1 if runs_now else 0,
        heartbeat_at=now,
        started_at=now if runs_now else None,
        ip_address=ip or job.ip_address,
        language=translation.get_language() or job.language,
    )
    if not started:
        return False
    job.refresh_from_db()
    if runs_now:
        _run_claimed(job, token)
    else:
        enqueue_after_commit("mailboxes.run_import", job.pk)
    return True


def _stale_after() -> timedelta:
    """A running job without progress for this long lost its worker and may be taken over."""
    return timedelta(seconds=settings.IMPORT_STALE_SECONDS)


def _claim(job_id: int) -> tuple[ImportJob, str] | None:
    now = timezone.now()
    token = secrets.token_hex(16)
    taken = (
        ImportJob.objects.filter(pk=job_id)
        .filter(
            Q(status=ImportJob.Status.QUEUED)
            | Q(status=ImportJob.Status.RUNNING, heartbeat_at__lt=now - _stale_after())
        )
        .update(
            status=ImportJob.Status.RUNNING,
            claim=token,
            attempts=F("attempts") + 1,
            heartbeat_at=now,
            started_at=now,
        )
    )
    if not taken:
        return None
    job = ImportJob.objects.select_related("created_by").get(pk=job_id)
    if job.attempts > settings.JOB_MAX_ATTEMPTS:
        _fail(
            job,
            token,
            error=_("Gave up after %(attempts)d attempts: the workers stopped while importing.")
            % {"attempts": settings.JOB_MAX_ATTEMPTS},
        )
        return None
    return job, token


def run_job(job_id: int) -> ImportJob | None:
    """The worker's part: claim a queued job (or one whose worker died) and import it.

    Safe to run twice: the claim is a conditional UPDATE, the import one transaction that
    also marks the job done, so a second delivery finds nothing left to do.
    """
    claimed = _claim(job_id)
    if claimed is None:
        return None
    job, token = claimed
    _run_claimed(job, token)
    job.refresh_from_db()
    return job


def pending_jobs() -> list[int]:
    """The backstop: forget unconfirmed files and passwords nobody took after a day, and
    return the jobs whose task was lost (queued for over a minute) or whose worker died."""
    now = timezone.now()
    ImportJob.objects.filter(status=ImportJob.Status.CHECKED, created_at__lt=now - KEEP_FOR).update(
        status=ImportJob.Status.EXPIRED, content=b""
    )
    ImportJob.objects.filter(finished_at__lt=now - KEEP_FOR).exclude(passwords="").update(
        passwords=""
    )
    return list(
        ImportJob.objects.filter(
            Q(status=ImportJob.Status.QUEUED, heartbeat_at__lt=now - timedelta(minutes=1))
            | Q(status=ImportJob.Status.RUNNING, heartbeat_at__lt=now - _stale_after())
        ).values_list("pk", flat=True)
    )


def take_passwords(*, job: ImportJob, user: User) -> str | None:
    """The generated passwords as CSV, once, for the person who ran the import, if they still
    may import; then gone."""
    roles.authorize(user, "import.run")
    with transaction.atomic():
        locked = (
            ImportJob.objects.select_for_update()
            .filter(pk=job.pk, created_by=user, status=ImportJob.Status.DONE)
            .exclude(passwords="")
            .first()
        )
        if locked is None:
            return None
        passwords = locked.passwords
        locked.passwords = ""
        locked.passwords_taken_at = timezone.now()
        locked.save(update_fields=["passwords", "passwords_taken_at"])
    return passwords


# --- The command line and the benchmark -----------------------------------------------------


def import_checked(
    *,
    checked: Checked,
    file_name: str,
    actor: Actor,
    ip: str | None = None,
    progress: Progress | None = None,
) -> Result:
    """Import a checked file now, in this process (``manage.py import_csv``); the generated
    passwords are returned, not kept. Raises ValidationError if the check found problems or
    the database changed meanwhile."""
    roles.authorize(actor, "import.run")
    if checked.problems:
        raise ValidationError(
            _("%(count)d problems in the file; nothing was imported.")
            % {"count": len(checked.problems)}
        )
    token = secrets.token_hex(16)
    now = timezone.now()
    job = ImportJob.objects.create(
        file_name=file_name[:255],
        status=ImportJob.Status.RUNNING,
        created_by=actor if isinstance(actor, User) else None,
        actor_name=audit.actor_label(actor),
        ip_address=ip,
        language=translation.get_language() or settings.LANGUAGE_CODE,
        rows=checked.rows,
        claim=token,
        attempts=1,
        started_at=now,
        heartbeat_at=now,
    )
    try:
        return _execute(job, token, checked, actor=actor, keep_passwords=False, progress=progress)
    except ValidationError as exc:
        _fail(job, token, error=" ".join(exc.messages))
        raise


# --- Export ---------------------------------------------------------------------------------


def export_rows() -> Iterator[list[str]]:
    """Every customer, domain and mailbox in the import's columns, without secrets: one row
    per mailbox (with its server), one per domain without mailboxes (with the domain's), one
    per customer without domains."""
    yield list(COLUMNS)
    plans = dict(Plan.objects.values_list("pk", "name"))
    servers = dict(MailServer.objects.values_list("pk", "name"))
    mailboxes: dict[int, list[tuple[str, str, int, int, int]]] = {}
    for domain_id, local_part, protocol, plan_id, quota, server_id in (
        Mailbox.objects.order_by("domain_id", "local_part")
        .values_list(
            "domain_id", "local_part", "protocol", "plan_id", "quota_bytes", "mail_server_id"
        )
        .iterator(chunk_size=5000)
    ):
        mailboxes.setdefault(domain_id, []).append(
            (local_part, protocol, plan_id, quota, server_id)
        )
    domains: dict[int, list[tuple[int, str, int]]] = {}
    for pk, name, customer_id, server_id in Domain.objects.order_by("name").values_list(
        "pk", "name", "customer_id", "mail_server_id"
    ):
        domains.setdefault(customer_id, []).append((pk, name, server_id))
    for customer in Customer.objects.order_by("name", "pk").iterator(chunk_size=2000):
        head = [customer.name, customer.contact_email, customer.language]
        if customer.pk not in domains:
            yield head + [""] * (len(COLUMNS) - 3)
        for domain_id, name, domain_server_id in domains.get(customer.pk, []):
            domain_name = domain_to_unicode(name)
            if domain_id not in mailboxes:
                yield head + [domain_name, servers[domain_server_id]] + [""] * (len(COLUMNS) - 5)
            for local_part, protocol, plan_id, quota, server_id in mailboxes.get(domain_id, []):
                yield head + [
                    domain_name,
                    servers[server_id],
                    local_part,
                    protocol,
                    plans[plan_id],
                    str(quota),
                    "",
                    "",
                ]


class _Echo:
    def write(self, value: str) -> str:
        return value


def export_csv() -> Iterable[str]:
    """The export as CSV text in pieces, for a streamed download: UTF-8 with a byte order
    mark, which spreadsheets need to read the umlauts, and commas."""
    writer = csv.writer(_Echo(), lineterminator="\r\n")
    yield "\ufeff"
    for row in export_rows():
        yield writer.writerow(row)
