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
    capped at ``window``), and counting what it was asked."""

    def __init__(self, count: int, window: int) -> None:
        self.ids = list(range(1, count + 1))
        self.window = window
        self.queries: list[str] = []
        self.lock = threading.Lock()

    def query(self, text: str) -> tuple[list[dict[str, Any]], bool]:
        with self.lock:
            self.queries.append(text)
        after = int(text.split("id > '")[1].split("'")[0]) if "id > '" in text else 0
        limit = limit_of(text)
        offset = int(text.rsplit("offset ", 1)[1])
        assert offset + limit <= self.window
        matching = [i for i in self.ids if i > after]
        page = matching[offset : offset + limit]
        return [{"id": str(i)} for i in page], len(matching) > offset + limit


def test_the_reader_walks_offsets_then_keyset_in_order() -> None:
    zoho = _FakeZoho(count=2_350, window=1_000)
    reader = OffsetReader(
        zoho.query, "Contacts", ["Email"], concurrency=3, page_size=200, window=1_000
    )
    seen = [int(record["id"]) for page in reader.pages() for record in page]
    assert seen == zoho.ids
    keyset_starts = sorted(
        {q.split("id > '")[1].split("'")[0] for q in zoho.queries if "id > '" in q}
    )
    assert keyset_starts == ["1000", "2000"]
    # 12 pages hold the records; reading 3 at a time asks for at most 2 more that find none
    assert 12 <= len(zoho.queries) <= 14


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
