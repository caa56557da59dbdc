"""A large first sync through Zoho's bulk APIs instead of REST pages and batches.

A first sync of 100,000 contacts costs 500 REST calls to read and 1,000 calls (10,000
credits) to write; Bulk Read moves 200,000 records per job and Bulk Write 25,000 per job
for 500 credits (reference §4.1, §6). Above ``EngineOptions.bulk_threshold`` the engine
swaps in the two passes below. They are the REST passes with a different transport, so
merging, linking, history and error recording stay exactly what they are for REST:

* :class:`BulkPullPass` reads the export's CSV rows, turns them back into the JSON values
  the REST API would have sent (``true`` -> True, ``a;b`` -> a list, ...) and feeds them to
  the pull's page handling in pages of ``PULL_PAGE`` records.
* :class:`BulkPushPass` collects up to 25,000 writes, and sends them as one job when there
  are at least ``bulk_threshold`` of them (fewer go through REST as usual). Creates are
  upserts with ``find_by`` = the unique Zoho field holding the host's contact id, so a job
  that is repeated after a failure finds the records it made instead of duplicating them;
  without such a field creates stay on REST. Updates (for instance the Contact Id and URL
  of contacts the pull just created from Zoho records, which Zoho only learns by a write
  after the host has created them) are found by ``id``. Each result row is matched back to
  its contact and settled through the push's own bookkeeping, so a refused row becomes a
  history entry with Zoho's code like a refused REST record.

Only first syncs qualify (mode ``all``, nothing linked yet): that is where the volumes are,
and where no three-way merge base exists that a CSV round trip could distort. A plan of one
reads as the run will, export included, and counts the write jobs the run would send.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from flask_zoho_sync.sync.context import RunInProgress, RunReport
from flask_zoho_sync.sync.conversion import listing_options
from flask_zoho_sync.sync.pull import PullPass, _modified_time, _utc, first_coql_page
from flask_zoho_sync.sync.push import PushPass, _Outgoing
from flask_zoho_sync.zoho.results import RecordResult

log = logging.getLogger(__name__)

#: Zoho's Bulk Write job size (reference §6.2).
WRITE_JOB_RECORDS = 25_000
#: Records merged and committed at a time while reading an export, and results settled
#: and committed at a time after a write job: the REST passes' transaction sizes. One
#: transaction per 25,000 results made SQLite spill to an exclusive lock, and change
#: capture's own short read on another connection then failed with "database is locked".
PULL_PAGE = 200
SETTLE_BATCH = 100
#: Records per REST listing page (the client's default, Zoho's maximum).
REST_PAGE = 200
#: Counts a plan of a bulk first sync keeps, for pricing its writes as the real run sends
#: them (its reads are the run's reads: a plan exports the records as the run does).
PLANNED_JOBS = "plan.bulk_write_jobs"
PLANNED_WRITES = "plan.bulk_writes"
#: Status polls a plan prices each job at: Zoho decides how many a job really takes.
PLANNED_POLLS = 3
#: Credits Zoho charges for creating a Bulk Write job (reference §4.1), and what a job
#: needs in all: its upload, polls and download on top.
WRITE_JOB_CREDITS = 500
JOB_CREDITS_NEEDED = WRITE_JOB_CREDITS + 2 + PLANNED_POLLS
#: Zoho types whose CSV cell needs turning back into the JSON type REST would send.
_LOOKUPS = ("lookup", "ownerlookup", "userlookup")
_WHOLE = ("integer",)
_DECIMAL = ("double", "currency", "decimal", "percent")
#: Formats that tell Bulk Write to read ISO-8601 instead of its MM/dd/yyyy default.
_FORMATS = {"date": "yyyy-MM-dd", "datetime": "yyyy-MM-dd'T'HH:mm:ssXXX"}


class BulkTransport(Protocol):
    """The part of ``flask_zoho_sync.zoho.bulk.BulkClient`` the engine uses."""

    def iter_rows(
        self, module: str, fields: Any = ..., *, modified_since: Any = ...
    ) -> Iterator[dict[str, str]]: ...
    def write(self, module: str, operation: str, records: Any, **options: Any) -> Any: ...


def bulk_read_blocker(engine: RunInProgress) -> str | None:
    """Why this mapping cannot be read through Bulk Read, or None when it can.

    The export gives a lookup as its record id only; a mapping that pulls a lookup's *name*
    (the default for Contacts' Account_Name) would import ids, or nothing, where REST gives
    names. Such syncs read through REST: a wrong or missing value costs more than calls.
    """
    for binding in engine.mapping.active_bindings():
        zoho = binding.zoho
        if zoho is not None and zoho.data_type in _LOOKUPS and binding.lookup_part != "id":
            return f"{binding.zoho_api_name} is mapped by name, which bulk exports do not carry"
    return None


def first_sync(engine: RunInProgress, mode: str) -> bool:
    """Whether this run may use the bulk APIs: a full sync before anything is linked.

    A dry run answers the same, so that its plan is made by the bulk passes: they read as
    the run reads (an export is a read) and count the write jobs the run would make.
    """
    return (
        engine.bulk is not None
        and engine.options.bulk_threshold > 0
        and mode == "all"
        and engine.ledger.linked_count() == 0
    )


def bulk_cost(plan: RunReport, followups: int, threshold: int) -> tuple[int, int, int, int]:
    """What the bulk jobs of a planned first sync cost, against REST.

    Returns ``(calls, credits, creates, updates)``: the calls and credits the write jobs
    add, and how many planned creates and updates they carry, which the caller must not
    price as REST writes. ``followups`` are the Contact Id updates the run sends for
    contacts it creates from Zoho records; a plan does not list them, so they are priced
    as one more job when there are enough.
    """
    jobs = plan.counts.get(PLANNED_JOBS, 0)
    creates = plan.counts.get(f"{PLANNED_WRITES}.create", 0)
    updates = plan.counts.get(f"{PLANNED_WRITES}.update", 0)
    if followups >= threshold:
        jobs += math.ceil(followups / WRITE_JOB_RECORDS)
        updates += followups
    # A job: the upload, the job itself, its polls and the result download.
    calls = jobs * (3 + PLANNED_POLLS)
    credits = jobs * JOB_CREDITS_NEEDED
    return calls, credits, creates, updates


# -- reading -------------------------------------------------------------------------------


def row_to_record(row: Mapping[str, str], engine: RunInProgress) -> dict[str, Any]:
    """A CSV row as the REST API would have sent the record (reference §6.1 vs §2.1)."""
    record: dict[str, Any] = {}
    for name, text in row.items():
        if name is None:
            continue
        zoho = engine.mapping.zoho_field(name)
        kind = zoho.data_type if zoho is not None else "text"
        if text == "":
            record[name] = False if kind == "boolean" else None
        elif kind == "boolean":
            record[name] = text.strip().lower() == "true"
        elif kind == "multiselectpicklist":
            record[name] = [part for part in text.split(";") if part]
        elif kind in _LOOKUPS:
            record[name] = {"id": text}
        elif kind in _WHOLE:
            record[name] = _number(text, int)
        elif kind in _DECIMAL:
            record[name] = _number(text, float)
        else:
            record[name] = text
    return record


def _number(text: str, kind: type) -> Any:
    try:
        return kind(text)
    except ValueError:
        return text  # let the mapping's coercion report the bad value for this record


class BulkPullPass(PullPass):
    """The pull of a first sync: one page, and if Zoho holds at least ``bulk_threshold``
    records, one Bulk Read export of the rest.

    The first page costs what a pull without bulk pays for it; only a full page (Zoho may
    well have more) pays one more call to count the module. A small org therefore reads
    exactly as it does without bulk, and a large one pays a page and a count, not a page
    per 200 records up to the threshold.

    The page is a COQL query of up to 2,000 records when the pull reads by COQL
    (``PullPass._pulls_by_coql``), and an org below the threshold goes on with the same COQL
    walk; where COQL cannot read the mapping, or Zoho refuses the query, it is a REST page
    of 200 and the org below the threshold goes on by REST.

    COQL pages come in id order, not by time, so the export after one reads everything and
    leaves out the page's records it finds unchanged (same ``Modified_Time``); one edited
    since is merged again with its edit. After a REST page (sorted by time) the export
    starts at the page's last ``Modified_Time`` (inclusive), so the few records sharing
    that second are read twice and merge as unchanged.
    """

    def run(self, *, full: bool) -> None:
        blocker = bulk_read_blocker(self.engine)
        if blocker is not None:
            log.info("First sync reads through REST, not Bulk Read: %s", blocker)
            super().run(full=full)
            return
        settings = self.ledger.settings
        fields = self.mapping.zoho_api_names()
        extra, converted = listing_options(self.ledger.module)
        read: _FirstRead | None = None
        if self._pulls_by_coql([*fields, *extra]):
            read = self._by_coql([*fields, *extra], converted is not None, settings.pull_watermark)
        if read is None:
            read = self._by_rest(fields, settings.pull_watermark)
        newest, done = read.newest, read.done
        if read.export:
            rows = self.engine.bulk.iter_rows(
                self.ledger.module,
                [name for name in fields if name != "id"],
                modified_since=read.since,
            )
            # The download and the CSV's conversion run on a thread while pages merge here,
            # and the pages already converted are looked up together, as in a REST pull.
            records: Iterable[dict[str, Any]] = (row_to_record(row, self.engine) for row in rows)
            if read.unchanged is not None:
                records = (record for record in records if not read.unchanged(record))
            pages = _pages(records, PULL_PAGE)
            newest, total = self._merge_pages(pages, newest, done, name="zoho-sync-export")
            self.report.count("bulk.read_records", total - done)
        self._deletions()
        if not self.dry_run and self.report.status != "needs_confirmation":
            settings.pull_watermark = newest
            settings.last_pull_at = self.engine.started_at
            self.ledger.commit()

    def _by_coql(
        self, fields: list[str], keep_converted: bool, newest: datetime | None
    ) -> _FirstRead | None:
        """The first page by COQL, and either the rest of the walk merged (an org below the
        threshold) or the export to read; None when Zoho refuses the query (read by REST)."""
        client = self.engine.client
        pages = client.iter_coql_pages(
            self.ledger.module,
            fields,
            concurrency=self.engine.options.max_concurrency,
            keep_converted=keep_converted,
        )
        first = first_coql_page(pages)
        if first is None:
            return None
        newest, done = self._first(first, newest)
        if len(first) == client.coql_page_size and self._large_enough():
            pages.close()
            read = {str(r["id"]): _utc(_modified_time(r)) for r in first if r.get("id")}
            return _FirstRead(newest, done, export=True, unchanged=_unchanged_since(read))
        newest, done = self._merge_pages(pages, newest, done, name="zoho-sync-pull")
        return _FirstRead(newest, done)

    def _by_rest(self, fields: list[str], newest: datetime | None) -> _FirstRead:
        """The first REST page, and either the rest by REST (an org below the threshold) or
        the export from the page's last ``Modified_Time`` on."""
        done = 0
        for page in self.engine.client.iter_pages(self.ledger.module, fields):
            first = done == 0
            newest, done = self._first(page, newest, done)
            # A plan reads as the run will: reading 100,000 records through REST to plan a
            # run that exports them in a few calls would cost the plan 50 times the run.
            if first and len(page) == REST_PAGE and self._large_enough():
                # The run links the first page's records before the export reads the ones
                # sharing its last second again, and merges those as unchanged; a plan
                # saved nothing, and would list them twice.
                read = {str(record.get("id")) for record in page}
                unchanged = _among(read) if self.dry_run else None
                return _FirstRead(newest, done, export=True, since=newest, unchanged=unchanged)
        return _FirstRead(newest, done)

    def _first(
        self, page: list[dict[str, Any]], newest: datetime | None, done: int = 0
    ) -> tuple[datetime | None, int]:
        """Merge and commit one page read before the export is decided on."""
        newest = self._page(page, newest)
        done += len(page)
        self.engine.progress("pull", done)
        if not self.dry_run:
            self.ledger.commit()
        return newest, done

    def _large_enough(self) -> bool:
        """Whether the module holds enough records for an export to be the cheaper read."""
        total = self.engine.client.count_records(self.ledger.module)
        log.info("First sync: Zoho holds %d %s records", total, self.ledger.module)
        return total >= self.engine.options.bulk_threshold


@dataclass(frozen=True)
class _FirstRead:
    """What the pages read before an export left: the newest ``Modified_Time`` merged, how
    many records, whether an export reads the rest (from ``since``), and which of its
    records are the ones already merged (None: merge them all)."""

    newest: datetime | None
    done: int
    export: bool = False
    since: datetime | None = None
    unchanged: Callable[[dict[str, Any]], bool] | None = None


def _among(ids: set[str]) -> Callable[[dict[str, Any]], bool]:
    """Whether an exported record is one of ``ids``, whatever its version."""
    return lambda record: str(record.get("id")) in ids


def _unchanged_since(read: dict[str, datetime | None]) -> Callable[[dict[str, Any]], bool]:
    """Whether an exported record is one of ``read`` (ids and ``Modified_Time``s of a COQL
    page already merged) as it was then. Both the run and its plan leave those out: the
    run merged them, and the plan would list them twice. One edited since the page was
    read has another time, and is merged with its edit."""

    def unchanged(record: dict[str, Any]) -> bool:
        zoho_id = str(record.get("id"))
        return zoho_id in read and read[zoho_id] == _utc(_modified_time(record))

    return unchanged


def _pages(records: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    page: list[dict[str, Any]] = []
    for record in records:
        page.append(record)
        if len(page) == size:
            yield page
            page = []
    if page:
        yield page


# -- writing -------------------------------------------------------------------------------


class BulkPushPass(PushPass):
    """The push of a first sync: writes go out 25,000 to a Bulk Write job.

    Buffers up to a job's worth of creates and of updates; when a buffer is flushed with at
    least ``bulk_threshold`` eligible writes they go as one job, otherwise through REST.
    """

    def __init__(self, engine: RunInProgress, report: RunReport) -> None:
        super().__init__(engine, report)
        self.threshold = engine.options.bulk_threshold
        self.find_by = self._create_key()

    def _read_size(self) -> int:
        """Writes wait for a whole job here, not for threads, so reading a call's worth at a
        time would only add queries."""
        return self.engine.options.batch_size

    def _create_key(self) -> str | None:
        """The unique Zoho field holding the host's contact id, if the mapping has one."""
        for binding in self.mapping.active_bindings():
            zoho = binding.zoho
            if binding.key == "system:contact_id" and zoho is not None and zoho.unique:
                return binding.zoho_api_name
        return None

    def _send(self, waiting: list[_Outgoing], action: str, *, force: bool) -> list[_Outgoing]:
        while waiting and (force or len(waiting) >= WRITE_JOB_RECORDS):
            chunk, waiting = waiting[:WRITE_JOB_RECORDS], waiting[WRITE_JOB_RECORDS:]
            eligible = [item for item in chunk if self._eligible(item, action)]
            rest = chunk
            if len(eligible) >= self.threshold and self._job_fits_budget():
                chosen = {id(item) for item in eligible}
                rest = [item for item in chunk if id(item) not in chosen]
                rest += self._send_job(eligible, action)
            if rest:
                super()._send(rest, action, force=True)
        return waiting

    def _job_fits_budget(self) -> bool:
        """Whether the daily credit budget can ever pay for a job. One that cannot goes
        through REST, which spends a little at a time: pausing for a job the budget never
        holds would pause the sync for good. One that can, but not today, pauses the run
        before the upload until the window frees credits."""
        budget = getattr(self.engine.client, "budget", None)
        if budget is None:
            return True
        if budget.limit is not None and budget.limit < JOB_CREDITS_NEEDED:
            return False
        if not self.dry_run:
            budget.require(JOB_CREDITS_NEEDED, "a Bulk Write job", "POST /bulk/write")
        return True

    def _eligible(self, item: _Outgoing, action: str) -> bool:
        """Writes a CSV row carries faithfully: no value to clear (an empty cell is
        "leave as is" in the job), and a key to find the record by."""
        payload = item.payload
        if any(value is None or value == "" or value == [] for value in payload.values()):
            return False
        if action == "update":
            return bool(payload.get("id"))
        return self.find_by is not None and payload.get(self.find_by) not in (None, "")

    def _send_job(self, items: list[_Outgoing], action: str) -> list[_Outgoing]:
        """Write ``items`` as one job and settle them; returns the rows Zoho left
        unprocessed, for REST to carry."""
        if self.dry_run:
            # A plan lists these writes like any other, and counts the job they would make
            # so that its estimate prices a job, not a REST call per 100 records.
            self.report.count(PLANNED_JOBS)
            self.report.count(f"{PLANNED_WRITES}.{action}", len(items))
            super()._send(items, action, force=True)
            return []
        columns = list(dict.fromkeys(name for item in items for name in item.payload))
        if action == "update":
            columns = ["id", *(name for name in columns if name != "id")]
        formats = {}
        for name in columns:
            zoho = self.mapping.zoho_field(name)
            if zoho is not None and zoho.data_type in _FORMATS:
                formats[name] = _FORMATS[zoho.data_type]
        find_by = "id" if action == "update" else self.find_by
        results = list(
            self.engine.bulk.write(
                self.ledger.module,
                "update" if action == "update" else "upsert",
                [item.payload for item in items],
                fields=columns,
                find_by=find_by,
                field_formats=formats,
                ignore_empty=True,
            )
        )
        self.report.count("bulk.write_jobs")
        unprocessed = [item for item, r in zip(items, results, strict=True) if _unprocessed(r)]
        settled = [
            (item, _as_record_result(position, r, find_by))
            for position, (item, r) in enumerate(zip(items, results, strict=True))
            if not _unprocessed(r)
        ]
        for start in range(0, len(settled), SETTLE_BATCH):
            part = settled[start : start + SETTLE_BATCH]
            self._settle([item for item, _ in part], [r for _, r in part], action)
        return unprocessed


def _unprocessed(result: Any) -> bool:
    return result.status == "unprocessed" and not result.errors


def _as_record_result(position: int, result: Any, find_by: str | None) -> RecordResult:
    """A Bulk Write result row in the shape of a REST write's per-record verdict."""
    details: dict[str, Any] = {}
    if result.errors and result.errors[0][1]:
        details["api_name"] = result.errors[0][1]
    if result.record_id:
        details["id"] = result.record_id
    return RecordResult(
        index=position,
        ok=bool(result.ok and result.record_id),
        code="SUCCESS" if result.ok else (result.code or result.status.upper()),
        status="success" if result.ok else "error",
        message=result.message or (None if result.ok else f"row {result.status} by Zoho"),
        action=result.action,
        duplicate_field=find_by if result.action == "update" else None,
        record_id=result.record_id if result.ok else None,
        modified_time=None,
        details=details,
    )
