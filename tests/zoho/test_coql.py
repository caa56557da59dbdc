"""The COQL query builder (no value can change a query's shape) and the offset reader."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from flask_zoho_sync.sandbox import SandboxHandle
from flask_zoho_sync.zoho.coql import (
    Criterion,
    OffsetReader,
    limit_of,
    literal,
    select,
    unreadable_fields,
)
from flask_zoho_sync.zoho.errors import ZohoRequestError
from flask_zoho_sync.zoho.timefmt import ZohoTimeFormatError


def test_a_quote_in_a_value_stays_inside_the_string() -> None:
    hostile = "x' or Email is not null or Last_Name = '"
    query = select("Leads", ["Last_Name"], [Criterion("Last_Name", "=", hostile)])
    assert query == (
        "select Last_Name from Leads where Last_Name = "
        "'x\\' or Email is not null or Last_Name = \\'' order by id asc limit 2000 offset 0"
    )
    assert literal("back\\slash'") == "'back\\\\slash\\''"


def test_datetimes_carry_their_offset_and_naive_ones_are_refused() -> None:
    moment = datetime(2026, 1, 15, 10, 20, 30, 999, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    assert literal(moment) == "'2026-01-15T10:20:30+05:30'"
    with pytest.raises(ZohoTimeFormatError):
        literal(datetime(2026, 1, 15))


def test_names_and_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="not a Zoho API name"):
        select("Leads", ["Email from Contacts --"])
    with pytest.raises(ValueError, match="1 to 50 fields"):
        select("Leads", [f"F{n}" for n in range(51)])
    with pytest.raises(ValueError, match="LIMIT"):
        select("Leads", ["id"], limit=2001)
    with pytest.raises(ValueError, match="first 100000"):
        select("Leads", ["id"], offset=98_001)
    with pytest.raises(ValueError, match="comparator"):
        select("Leads", ["id"], [Criterion("id", "or 1=1 --", 1)])


def test_three_criteria_are_bracketed_two_at_a_time() -> None:
    criteria = [Criterion("A", "=", 1), Criterion("B", ">", 2), Criterion("C", "!=", "x")]
    query = select("Leads", ["id"], criteria, limit=10)
    assert "where ((A = 1 and B > 2) and C != 'x') order by id asc limit 10 offset 0" in query
    assert " where id is not null " in select("Leads", ["id"])


def test_limit_of_reads_both_forms() -> None:
    assert limit_of("select id from Leads where id is not null limit 1500 offset 0") == 1500
    assert limit_of("select id from Leads limit 100, 700") == 700
    assert limit_of("select id from Leads where id is not null") == 200


def test_unreadable_fields_are_named_by_type() -> None:
    types = {"Email": "email", "Files": "fileupload", "Friends": "multiselectlookup"}
    assert unreadable_fields(types, ["Email", "Files", "Friends", "Unknown"]) == [
        "Files",
        "Friends",
    ]


class _FakeZoho:
    """``count`` records with ids 1..count, answering queries as COQL would (offset window
    capped at ``window``), and counting what it was asked. ``delete_during`` deletes an id
    while a batch is read: after the batch's first page is answered, before its second is."""

    def __init__(self, count: int, window: int, delete_during: int | None = None) -> None:
        self.ids = list(range(1, count + 1))
        self.window = window
        self.queries: list[str] = []
        self.lock = threading.Lock()
        self.delete_during = delete_during
        self.deleted: list[int] = []
        self.first_answered = threading.Event()
        self.deleted_asked: list[datetime] = []

    @staticmethod
    def _bound(text: str, operator: str) -> int | None:
        marker = f"id {operator} '"
        return int(text.split(marker)[1].split("'")[0]) if marker in text else None

    def query(self, text: str) -> tuple[list[dict[str, Any]], bool]:
        after = self._bound(text, ">") or 0
        before = self._bound(text, "<")
        limit = limit_of(text)
        offset = int(text.rsplit("offset ", 1)[1])
        assert offset + limit <= self.window
        pending = self.delete_during
        if pending is not None and after < pending and offset > 0:
            assert self.first_answered.wait(10)
            self.ids.remove(pending)
            self.deleted.append(pending)
            self.delete_during = None
        with self.lock:
            self.queries.append(text)
            matching = [i for i in self.ids if i > after and (before is None or i < before)]
        page = matching[offset : offset + limit]
        if pending is not None and after < pending and offset == 0:
            self.first_answered.set()
        return [{"id": str(i)} for i in page], len(matching) > offset + limit

    def deleted_since(self, moment: datetime) -> list[str]:
        self.deleted_asked.append(moment)
        return [str(i) for i in self.deleted]


def _ids(reader: OffsetReader) -> list[int]:
    return [int(record["id"]) for page in reader.pages() for record in page]


def test_the_reader_reads_a_batch_at_once_after_the_last_id_read() -> None:
    zoho = _FakeZoho(count=2_350, window=1_000)
    reader = OffsetReader(
        zoho.query, "Contacts", ["Email"], concurrency=3, page_size=200, window=1_000
    )
    assert _ids(reader) == zoho.ids
    keyset_starts = [zoho._bound(q, ">") for q in zoho.queries]
    # The first page alone, then batches of three pages (offsets 0, 200, 400) each after
    # the last id of the batch before.
    assert sorted(set(keyset_starts), key=lambda at: at or 0) == [None, 200, 800, 1400, 2000]
    assert max(int(q.rsplit("offset ", 1)[1]) for q in zoho.queries) == 400
    assert 12 <= len(zoho.queries) <= 14


def test_a_since_last_read_asks_first_for_200_records() -> None:
    since = datetime(2026, 12, 1, tzinfo=timezone.utc)
    few = _FakeZoho(count=30, window=100_000)
    assert _ids(OffsetReader(few.query, "Contacts", ["Email"], modified_since=since)) == few.ids
    assert [limit_of(q) for q in few.queries] == [200]  # 1 credit, not 3
    many = _FakeZoho(count=2_500, window=100_000)
    reader = OffsetReader(many.query, "Contacts", ["Email"], modified_since=since, concurrency=2)
    assert _ids(reader) == many.ids
    assert [limit_of(q) for q in many.queries] == [200, 2000, 2000]
    # A full read needs no small first page: 2,000 a call from the start.
    full = _FakeZoho(count=2_500, window=100_000)
    assert _ids(OffsetReader(full.query, "Contacts", ["Email"], concurrency=2)) == full.ids
    assert [limit_of(q) for q in full.queries] == [2000, 2000, 2000]


def test_a_record_deleted_between_two_pages_read_at_once_skips_none() -> None:
    """Ids 201-400 are the batch's first page; deleting 300 once it is read moves 401 to
    offset 199, so the page at offset 200 starts at 402. The reader finds 300 in Zoho's
    deleted list and reads the border between the pages again."""
    zoho = _FakeZoho(count=1_000, window=100_000, delete_during=300)
    everything = list(zoho.ids)
    reader = OffsetReader(
        zoho.query,
        "Contacts",
        ["Email"],
        concurrency=2,
        page_size=200,
        deleted_since=zoho.deleted_since,
    )
    seen = _ids(reader)
    assert zoho.deleted == [300]
    assert sorted(seen) == everything  # 401 too, and 300 as read before it went
    assert len(seen) == len(set(seen))
    rereads = [q for q in zoho.queries if "id < '" in q]
    assert len(rereads) == 1 and "id > '400'" in rereads[0] and "id < '402'" in rereads[0]
    assert len(zoho.deleted_asked) == 1


def test_without_deletions_the_borders_cost_one_look_at_the_deleted_list() -> None:
    zoho = _FakeZoho(count=1_000, window=100_000)
    reader = OffsetReader(
        zoho.query,
        "Contacts",
        ["Email"],
        concurrency=2,
        page_size=200,
        deleted_since=zoho.deleted_since,
    )
    assert _ids(reader) == zoho.ids
    assert len(zoho.deleted_asked) == 1 and not any("id < '" in q for q in zoho.queries)
    # One page at a time (concurrency 1): each page starts after the last id, nothing to check.
    alone = _FakeZoho(count=1_000, window=100_000)
    reader = OffsetReader(
        alone.query, "Contacts", ["Email"], page_size=200, deleted_since=alone.deleted_since
    )
    assert _ids(reader) == alone.ids
    assert alone.deleted_asked == []


def test_converted_leads_are_left_out() -> None:
    def query(text: str) -> tuple[list[dict[str, Any]], bool]:
        assert "Converted__s" in text
        return [{"id": "1", "Converted__s": True}, {"id": "2", "Converted__s": False}], False

    pages = list(OffsetReader(query, "Leads", ["Email"]).pages())
    assert pages == [[{"id": "2", "Converted__s": False}]]


def test_client_coql_against_the_sandbox(
    zoho_sandbox: SandboxHandle, zoho_sandbox_client: Any
) -> None:
    zoho_sandbox.generate_records("Contacts", 3)
    records, more = zoho_sandbox_client.coql(select("Contacts", ["Email"], limit=2))
    assert len(records) == 2 and more is True
    assert zoho_sandbox_client.coql(select("Contacts", ["Email"], limit=2, offset=3)) == ([], False)
    with pytest.raises(ZohoRequestError) as refused:
        zoho_sandbox_client.coql("select Nope from Contacts where id is not null")
    assert refused.value.code == "INVALID_QUERY"
