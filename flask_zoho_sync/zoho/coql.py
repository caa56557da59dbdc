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

import contextvars
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from .timefmt import format_datetime

#: Zoho's COQL limits (COQL-Limitations, v8).
MAX_SELECT_FIELDS = 50
MAX_LIMIT = 2000
#: Records LIMIT/OFFSET reach; past them, keyset on id (``where id > last order by id``).
MAX_OFFSET_RECORDS = 100_000
#: The first LIMIT of a since-last read: 1 credit (201-2,000 cost 2 or 3), and most
#: scheduled pulls find fewer changed records than this.
FIRST_SINCE_LIMIT = 200

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


def _id(record: dict[str, Any]) -> int:
    """A record's id as the number Zoho orders by (ids are 19-digit strings)."""
    return int(record["id"])


@dataclass(frozen=True)
class Border:
    """Where two pages read at once meet: ``last`` ended the earlier page, ``first``
    began the later one (None: the later page came back empty while the earlier said more
    records followed). A record deleted, between the two reads, from ``after`` (the batch's
    keyset start, None: the module's start) up to ``first`` moved every later record one
    offset down, so the record that was first past ``last`` fell between the pages."""

    after: int | None
    last: int
    first: int | None

    def shifted_by(self, deleted: Iterable[int]) -> bool:
        return any(
            (self.after is None or gone > self.after) and (self.first is None or gone < self.first)
            for gone in deleted
        )


@dataclass
class OffsetReader:
    """Every record of a module (changed since a moment) by COQL, a page of up to 2,000
    at a time, in id order.

    The first query is alone; each next batch of ``concurrency`` pages starts after the last
    id read (keyset) and reads its pages by OFFSET at once (Zoho counts each as one call
    against the org's concurrency), so offsets stay far below Zoho's 100,000-record cap
    (``window``) and only pages of one batch can miss each other. Reading ahead costs at
    most ``concurrency - 1`` calls that find nothing, at the end of the walk.

    A since-last read (``modified_since``) asks first for ``FIRST_SINCE_LIMIT`` records
    (1 credit, where 2,000 cost 3): most scheduled pulls find fewer changes than that.

    Offsets shift when a record is deleted while a batch is read: the page read later then
    starts one record late and the record at the border is in neither page. After a walk
    with such borders, ``deleted_since`` (Zoho's deleted-records list, one call) names the
    records deleted since the walk began (less ``clock_slack``, as Zoho's clock is not
    ours); each border a deletion could have shifted is read again by keyset
    (``id > last and id < first``), and what it finds comes as one more page. Records a
    later page repeats (a record that came into the criteria moved offsets the other way)
    are dropped, so each id comes once.

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
    deleted_since: Callable[[datetime], Iterable[str]] | None = None
    clock_slack: timedelta = timedelta(minutes=5)

    def __post_init__(self) -> None:
        wanted = ["id", *self.fields]
        if self.module == "Leads":
            wanted.append("Converted__s")
        self.selected = list(dict.fromkeys(wanted))
        if len(self.selected) > MAX_SELECT_FIELDS:
            raise ValueError(f"COQL selects at most {MAX_SELECT_FIELDS} fields")
        if not 1 <= self.page_size <= MAX_LIMIT or self.window % self.page_size:
            raise ValueError("the page size must be 1 to 2,000 and divide the window")
        #: Where pages read at once met in the last walk (see :class:`Border`).
        self.borders: list[Border] = []

    def pages(self) -> Iterator[list[dict[str, Any]]]:
        started = datetime.now(timezone.utc)
        self.borders = []
        first_limit = self.page_size
        if self.modified_since is not None:
            first_limit = min(FIRST_SINCE_LIMIT, self.page_size)
        per_batch = max(1, min(self.concurrency, self.window // self.page_size))
        newest: int | None = None  # the highest id handed out
        with ThreadPoolExecutor(max(1, self.concurrency), "zoho-coql") as pool:
            after: int | None = None
            batch = [self.query(self._text(None, 0, first_limit))]
            while True:
                previous: int | None = None  # the last id of the batch's page before
                walked = False
                for records, more in batch:
                    if previous is not None:
                        first = _id(records[0]) if records else None
                        if first is None or first > previous:
                            self.borders.append(Border(after, previous, first))
                    fresh = [r for r in records if newest is None or _id(r) > newest]
                    if fresh:
                        newest = _id(fresh[-1])
                        yield from self._kept(fresh)
                    if not more or not records:
                        walked = True
                        break
                    previous = _id(records[-1])
                if walked:
                    break
                after = previous
                batch = self._batch(pool, after, per_batch)
        yield from self._reread_borders(started)

    def _batch(
        self, pool: ThreadPoolExecutor, after: int | None, pages: int
    ) -> list[tuple[list[dict[str, Any]], bool]]:
        """``pages`` pages after id ``after``, read at once, in offset order."""
        offsets = range(0, pages * self.page_size, self.page_size)
        # Each query in the caller's context (whatever its context variables hold, such as
        # the host's tenant, which a token refresh on the pool's thread reads).
        context = contextvars.copy_context()
        return list(
            pool.map(
                lambda at: context.copy().run(self.query, self._text(after, at, self.page_size)),
                offsets,
            )
        )

    def _kept(self, records: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
        drop = self.module == "Leads" and not self.keep_converted
        kept = _drop_converted(records) if drop else records
        if kept:
            yield kept

    def _reread_borders(self, started: datetime) -> Iterator[list[dict[str, Any]]]:
        """The records deletions during the walk moved between two pages read at once."""
        if not self.borders or self.deleted_since is None:
            return
        deleted = {int(zoho_id) for zoho_id in self.deleted_since(started - self.clock_slack)}
        for border in self.borders:
            if not border.shifted_by(deleted):
                continue
            after = border.last
            while True:
                text = self._text(after, 0, self.page_size, before=border.first)
                records, more = self.query(text)
                yield from self._kept(records)
                if not more or not records:
                    break
                after = _id(records[-1])

    def _text(
        self, after_id: int | None, offset: int, limit: int, *, before: int | None = None
    ) -> str:
        criteria: list[Criterion | AnyOf | OneOf] = list(self.criteria)
        if self.modified_since is not None:
            criteria.append(Criterion("Modified_Time", ">=", self.modified_since))
        if after_id is not None:
            criteria.append(Criterion("id", ">", str(after_id)))
        if before is not None:
            criteria.append(Criterion("id", "<", str(before)))
        return select(self.module, self.selected, criteria, limit=limit, offset=offset)
