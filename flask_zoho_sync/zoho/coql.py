"""Writing COQL queries (``POST /crm/v8/coql``) that say only what their author meant.

A COQL query is text, so a value pasted into it unquoted could end the string and add
criteria of its own. Every value here goes through :func:`literal` (quoted, quotes and
backslashes escaped, datetimes in Zoho's ISO 8601 with an offset) and every field or module
name through :func:`name` (letters, digits and underscores only), so no field value or date
can change the query's shape. Zoho's rules the builder keeps (docs/zoho-api-notes.md,
"COQL"): at most 50 fields a select, at most 2,000 records a call, criteria joined two at a
time in brackets, a WHERE always present (Zoho's error list names a query without one).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .timefmt import format_datetime

#: Zoho's COQL limits (COQL-Limitations, v8).
MAX_SELECT_FIELDS = 50
MAX_LIMIT = 2000
#: Records LIMIT/OFFSET reach; past them, keyset on id (``where id > last order by id``).
MAX_OFFSET_RECORDS = 100_000

#: Field types COQL cannot select (Zoho's COQL-Limitations, v4-v8): a pull whose mapping
#: holds one of these reads by REST instead.
COQL_UNSELECTABLE = frozenset(
    {"multiselectlookup", "subform", "fileupload", "imageupload", "multiuserlookup"}
)

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_OPERATORS = frozenset({"=", "!=", ">", ">=", "<", "<="})


def name(text: str) -> str:
    """A field or module API name, refused unless it is one (no quotes, spaces, dots)."""
    if not isinstance(text, str) or not _NAME.match(text):
        raise ValueError(f"{text!r} is not a Zoho API name (letters, digits and _ only)")
    return text


def literal(value: str | int | bool | datetime) -> str:
    """``value`` as a COQL literal that cannot end early: strings quoted with ``\\'`` and
    ``\\\\`` escaped, datetimes (aware only) in ISO 8601 with their offset."""
    if isinstance(value, bool):
        return "'true'" if value else "'false'"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        value = format_datetime(value)  # refuses a naive datetime
    if not isinstance(value, str):
        raise TypeError(f"cannot write a {type(value).__name__} into a COQL query")
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True)
class Criterion:
    """``field operator value``: one comparison of a WHERE."""

    field: str
    operator: str
    value: str | int | bool | datetime

    def text(self) -> str:
        if self.operator not in _OPERATORS:
            raise ValueError(f"{self.operator!r} is not a COQL comparator this builder writes")
        return f"{name(self.field)} {self.operator} {literal(self.value)}"


@dataclass(frozen=True)
class AnyOf:
    """``(A or B)``: criteria of which one must hold (a sync scope's complement), joined two
    at a time in brackets as ``where_text`` joins ``and``."""

    criteria: tuple[Criterion, ...]

    def text(self) -> str:
        if not self.criteria:
            raise ValueError("an AnyOf needs at least one criterion")
        text = self.criteria[0].text()
        for criterion in self.criteria[1:]:
            text = f"({text} or {criterion.text()})"
        return text


@dataclass(frozen=True)
class OneOf:
    """``field in ('a', 'b')``: at most 50 values (Zoho's limit for ``in`` in a WHERE)."""

    field: str
    values: tuple[str, ...]

    def text(self) -> str:
        if not 1 <= len(self.values) <= 50:
            raise ValueError("a COQL 'in' takes 1 to 50 values")
        return f"{name(self.field)} in ({', '.join(literal(v) for v in self.values)})"


def where_text(criteria: Sequence[Criterion | AnyOf | OneOf]) -> str:
    """The criteria joined by ``and``, two at a time in brackets (``((A and B) and C)``)
    as Zoho asks; none at all is ``id is not null``."""
    if not criteria:
        return "id is not null"
    text = criteria[0].text()
    for criterion in criteria[1:]:
        text = f"({text} and {criterion.text()})"
    return text


def select(
    module: str,
    fields: Iterable[str],
    criteria: Sequence[Criterion | AnyOf | OneOf] = (),
    *,
    order_by: str = "id",
    limit: int = MAX_LIMIT,
    offset: int = 0,
) -> str:
    """A whole ``select ... from ... where ... order by ... limit ... offset ...``."""
    names = [name(field) for field in dict.fromkeys(fields)]
    if not 1 <= len(names) <= MAX_SELECT_FIELDS:
        raise ValueError(f"a COQL select takes 1 to {MAX_SELECT_FIELDS} fields, not {len(names)}")
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"a COQL LIMIT is 1 to {MAX_LIMIT}, not {limit}")
    if offset < 0 or offset + limit > MAX_OFFSET_RECORDS:
        raise ValueError(f"LIMIT/OFFSET reach only the first {MAX_OFFSET_RECORDS} records")
    return (
        f"select {', '.join(names)} from {name(module)} where {where_text(criteria)} "
        f"order by {name(order_by)} asc limit {limit} offset {offset}"
    )


def unreadable_fields(field_types: dict[str, str], fields: Iterable[str]) -> list[str]:
    """The fields COQL cannot carry, by their Zoho ``data_type`` (unknown types pass: Zoho
    then refuses the query and the pull reads by REST, see ``ZohoClient.iter_coql_pages``)."""
    return [field for field in fields if field_types.get(field) in COQL_UNSELECTABLE]


_LIMIT = re.compile(r"\blimit\s+(\d+)(?:\s*,\s*(\d+))?", re.IGNORECASE)


def limit_of(query: str) -> int:
    """The LIMIT a query asks for (Zoho's default 200 when it names none): what it costs."""
    found = list(_LIMIT.finditer(query))
    if not found:
        return 200
    return int(found[-1].group(2) or found[-1].group(1))


def _drop_converted(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [record for record in records if record.get("Converted__s") is not True]


@dataclass
class OffsetReader:
    """Every record of a module (changed since a moment) by COQL, a page of up to 2,000
    at a time, in id order.

    Offsets within the first 100,000 records are read ``concurrency`` at a time (Zoho
    counts each as one call against the org's concurrency); past them the next window
    starts after the last id read (keyset), where offsets count from 0 again. A window's
    pages come back in order, so the caller sees one ascending walk. Reading ahead costs at
    most ``concurrency - 1`` calls that find nothing, at the end of the walk.

    Leads converted in Zoho are left out, as REST's default ``converted=false`` leaves them
    out: Zoho's docs do not say whether COQL returns them, so ``Converted__s`` is asked
    for and checked here either way. ``keep_converted`` keeps them, as ``converted=both``
    does (the sync's pull reads conversions from them).
    """

    query: Callable[[str], tuple[list[dict[str, Any]], bool]]
    module: str
    fields: Sequence[str]
    modified_since: datetime | None = None
    concurrency: int = 1
    page_size: int = MAX_LIMIT
    window: int = MAX_OFFSET_RECORDS
    keep_converted: bool = False
    #: Criteria every record read must meet besides the time (a sync's Zoho scope): sent
    #: in the WHERE, so Zoho never sends a record outside them.
    criteria: Sequence[Criterion | AnyOf | OneOf] = ()

    def __post_init__(self) -> None:
        wanted = ["id", *self.fields]
        if self.module == "Leads":
            wanted.append("Converted__s")
        self.selected = list(dict.fromkeys(wanted))
        if len(self.selected) > MAX_SELECT_FIELDS:
            raise ValueError(f"COQL selects at most {MAX_SELECT_FIELDS} fields")
        if not 1 <= self.page_size <= MAX_LIMIT or self.window % self.page_size:
            raise ValueError("the page size must be 1 to 2,000 and divide the window")

    def pages(self) -> Iterator[list[dict[str, Any]]]:
        after_id: str | None = None
        with ThreadPoolExecutor(max(1, self.concurrency), "zoho-coql") as pool:
            while True:
                last = yield from self._window(pool, after_id)
                if last is None:
                    return
                after_id = last

    def _text(self, offset: int, after_id: str | None) -> str:
        criteria: list[Criterion | AnyOf | OneOf] = list(self.criteria)
        if self.modified_since is not None:
            criteria.append(Criterion("Modified_Time", ">=", self.modified_since))
        if after_id is not None:
            criteria.append(Criterion("id", ">", after_id))
        return select(self.module, self.selected, criteria, limit=self.page_size, offset=offset)

    def _window(
        self, pool: ThreadPoolExecutor, after_id: str | None
    ) -> Generator[list[dict[str, Any]], None, str | None]:
        """Yield one window's pages; return the id to start the next window after, or None
        when the walk is done."""
        offsets = list(range(0, self.window, self.page_size))
        records, more = self.query(self._text(0, after_id))
        batch: list[tuple[list[dict[str, Any]], bool]] = [(records, more)]
        done = 1
        while True:
            for records, more in batch:
                drop = self.module == "Leads" and not self.keep_converted
                kept = _drop_converted(records) if drop else records
                if kept:
                    yield kept
                if not more or not records:
                    return None
                last_id = str(records[-1]["id"])
            if done == len(offsets):
                return last_id  # the window is full and more records follow
            ahead = offsets[done : done + self.concurrency]
            batch = list(pool.map(lambda at: self.query(self._text(at, after_id)), ahead))
            done += len(ahead)
