"""Paging and exporting the staff lists: keyset pages, capped counts, streamed CSV.

Keyset paging ("the 50 rows after this one") costs the same on page 2 as on page 2,000: the
database seeks to the cursor in the index of the order instead of counting past every row
before it, as ``OFFSET`` does. The price is that pages have no numbers: a list has First,
Previous and Next, which is how a list of 100,000 is read anyway, with search and filters.
"""

from __future__ import annotations

import base64
import binascii
import csv
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from django.db.models import BooleanField, Expression, F, Model, QuerySet, Value
from django.http import QueryDict, StreamingHttpResponse
from django.utils import timezone

from mailboxes.search import Order

M = TypeVar("M", bound=Model)

# Counting every match of a filter costs a scan of all of them (25 ms for 100,000 rows here);
# counting up to this many costs at most this many, and "more than 10,000" says enough.
COUNT_CAP = 10_000
# A search is counted by fetching the ids it matches, up to this many ("more than 1,000":
# time to type more); when they are at most FEW_ROWS, its pages are read from those ids.
SEARCH_COUNT_CAP = 1_000
FEW_ROWS = 500
PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_PAGE_SIZE = 50


class RowComparison(Expression):
    """``(a, b) > (x, y)``: SQL's row comparison, which PostgreSQL (and SQLite) answer by
    seeking in an index on ``(a, b)``. Spelled as ``a > x OR (a = x AND b > y)`` the planner
    would walk the index from its start and filter, which is the slowness of OFFSET again."""

    conditional = True

    def __init__(self, columns: Sequence[Any], operator: str, values: Sequence[object]) -> None:
        super().__init__(output_field=BooleanField())
        if operator not in ("<", ">"):
            raise ValueError(operator)
        self.columns = list(columns)
        self.operator = operator
        self.values: list[Any] = [Value(v) for v in values]

    def get_source_expressions(self) -> list[Any]:
        return [*self.columns, *self.values]

    def set_source_expressions(self, exprs: Sequence[Any]) -> None:
        self.columns = list(exprs[: len(self.columns)])
        self.values = list(exprs[len(self.columns) :])

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, tuple[Any, ...]]:
        compiled = [compiler.compile(e) for e in self.get_source_expressions()]
        columns, values = compiled[: len(self.columns)], compiled[len(self.columns) :]
        sql = "({}) {} ({})".format(
            ", ".join(s for s, _p in columns), self.operator, ", ".join(s for s, _p in values)
        )
        return sql, tuple(p for _s, params in compiled for p in params)


# --- Cursors --------------------------------------------------------------------------------


def encode_cursor(values: Sequence[object]) -> str:
    """The keys of a row as an opaque token for the query string."""
    plain = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    data = json.dumps(plain, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def decode_cursor(token: str | None, order: Order) -> list[object] | None:
    """The keys in ``token`` if they fit ``order``; None for anything else (an old or edited
    link then shows the first page rather than an error)."""
    if not token or len(token) > 2000:
        return None
    try:
        values = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(values, list) or len(values) != len(order.keys):
        return None
    decoded: list[object] = []
    for value, (_name, _expression, kind) in zip(values, order.keys, strict=True):
        if kind is datetime and isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                return None
            if timezone.is_naive(moment):
                return None
            decoded.append(moment)
        elif kind is int and type(value) is int and abs(value) < 2**63:
            decoded.append(value)
        elif kind is str and isinstance(value, str):
            decoded.append(value)
        else:
            return None
    return decoded


# --- Pages ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeysetPage(Generic[M]):
    rows: list[M]
    is_first: bool  # no cursor: the list's beginning
    has_previous: bool
    has_next: bool
    previous_cursor: str | None
    next_cursor: str | None
    size: int

    def __iter__(self) -> Iterator[M]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)


def _key_alias(name: str) -> str:
    return f"_key_{name}"


def ordered(queryset: QuerySet[M], order: Order, *, reverse: bool = False) -> QuerySet[M]:
    """``queryset`` in ``order`` (reversed for the way back), its keys on every row."""
    queryset = queryset.annotate(**{_key_alias(n): e for n, e, _k in order.keys})
    descending = order.descending != reverse
    return queryset.order_by(
        *(
            F(_key_alias(n)).desc() if descending else F(_key_alias(n)).asc()
            for n, _e, _k in order.keys
        )
    )


def keyset_page(
    queryset: QuerySet[M],
    order: Order,
    *,
    size: int,
    after: str | None = None,
    before: str | None = None,
) -> KeysetPage[M]:
    """One page of ``queryset``: the first, the one after the row ``after`` names or the one
    before the row ``before`` names. One query, whichever page."""
    backwards = False
    cursor = decode_cursor(after, order)
    if cursor is None:
        cursor = decode_cursor(before, order)
        backwards = cursor is not None
    rows_query = ordered(queryset, order, reverse=backwards)
    if cursor is not None:
        later = ">" if order.descending == backwards else "<"
        rows_query = rows_query.filter(
            RowComparison([e for _n, e, _k in order.keys], later, cursor)
        )
    rows = list(rows_query[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    if backwards:
        rows.reverse()
    has_previous = more if backwards else cursor is not None
    has_next = bool(rows) and (backwards or more)

    def cursor_of(row: M) -> str:
        return encode_cursor([getattr(row, _key_alias(n)) for n, _e, _k in order.keys])

    return KeysetPage(
        rows=rows,
        is_first=cursor is None,
        has_previous=has_previous and bool(rows),
        has_next=has_next,
        previous_cursor=cursor_of(rows[0]) if rows else None,
        next_cursor=cursor_of(rows[-1]) if rows else None,
        size=size,
    )


def capped_count(queryset: QuerySet[Any]) -> int:
    """How many rows match, counting no further than ``COUNT_CAP + 1``."""
    return queryset.order_by()[: COUNT_CAP + 1].count()


def searched(queryset: QuerySet[M]) -> tuple[QuerySet[M], int]:
    """A search's rows, and how many there are (up to ``SEARCH_COUNT_CAP + 1``): one query
    for the ids it matches, which is also the count.

    PostgreSQL cannot tell how many rows ``LIKE '%…%'`` matches. Sure of many, it walks the
    index of the page's order until a page is full; a search that matches few rows then walks
    most of the table (30 ms at 100,000 mailboxes when its matches come late in the order).
    Its ids, when few, are a condition it can count exactly: it reads them by primary key.
    """
    ids = list(queryset.order_by().values_list("pk", flat=True)[: SEARCH_COUNT_CAP + 1])
    if ids and len(ids) <= min(FEW_ROWS, SEARCH_COUNT_CAP):  # all of them, and few
        queryset = queryset.filter(pk__in=ids)
    return queryset, len(ids)


def query_string(params: QueryDict, **changes: object) -> str:
    """The current query string with ``changes`` (None removes a key) and without empty
    values, for links that keep the filters: the pager, the export, the address bar."""
    result = QueryDict(mutable=True)
    for key, values in params.lists():
        kept = [v for v in values if v]
        if key not in changes and kept:
            result.setlist(key, kept)
    for key, value in changes.items():
        if value is not None and value != "":
            result[key] = str(value)
    return result.urlencode()


# --- CSV ------------------------------------------------------------------------------------


class _Echo:
    """A file that hands back what is written: csv.writer then yields lines one by one."""

    def write(self, value: str) -> str:
        return value


# A spreadsheet runs a cell that starts like a formula; a name typed by anyone must not.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    if isinstance(value, datetime):
        return value.isoformat()
    return "" if value is None else value


def csv_response(
    filename: str,
    header: Sequence[str],
    rows: Iterable[M],
    row: Callable[[M], Sequence[object]],
) -> StreamingHttpResponse:
    """Stream ``rows`` as CSV, a header line first: memory stays flat for any number of rows,
    and the first bytes leave before the last row is read."""
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield writer.writerow(header)
        for item in rows:
            yield writer.writerow([_cell(v) for v in row(item)])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
