"""Pulls by COQL (``ZOHO_SYNC_PULL_WITH_COQL``): 2,000 records a call, the same outcome
as REST paging, keyset past Zoho's offset cap, and REST where COQL cannot read."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from flask_zoho_sync.sandbox import SandboxHandle, SandboxServer
from flask_zoho_sync.zoho.client import ZohoClient
from tests.engine.conftest import Synced, connect_synced, dispose_synced

COQL = "POST /coql"
REST = "GET /Leads"


@pytest.fixture
def synced_config() -> dict[str, Any]:
    return {
        "ZOHO_SYNC_PULL_WITH_COQL": True,
        "ZOHO_SYNC_BULK_THRESHOLD": 0,
        "ZOHO_SYNC_MAX_CONCURRENCY": 2,
    }


def _spent(synced: Synced, before: dict[str, Any]) -> tuple[dict[str, int], dict[str, int]]:
    """Calls and credits by endpoint since ``before`` (a stats snapshot)."""
    after = synced.zoho.stats()
    calls = {k: v - before["calls"].get(k, 0) for k, v in after["calls"].items()}
    credits = {k: v - before["credits"].get(k, 0) for k, v in after["credits"].items()}
    return {k: v for k, v in calls.items() if v}, {k: v for k, v in credits.items() if v}


def _use_coql(synced: Synced, on: bool) -> None:
    synced.state.config = replace(synced.state.config, pull_with_coql=on)


@pytest.mark.slow
def test_a_full_pull_of_10000_takes_five_coql_calls(synced: Synced) -> None:
    count = 10_000
    for start in range(1, count, 2000):  # in parts: one call stays short on a busy machine
        synced.zoho.generate_records("Leads", 2000, start=start)
    before = synced.zoho.stats()
    report = synced.sync(mode="all", direction="pull")
    assert report.status == "succeeded", report.message
    calls, credits = _spent(synced, before)
    assert calls[COQL] == math.ceil(count / 2000) == 5
    assert REST not in calls
    rest_credits = math.ceil(count / 200)  # REST pages: 200 records, one credit each
    assert credits[COQL] == 15 and credits[COQL] <= 0.3 * rest_credits
    assert len(synced.contacts()) == count


def _org_with_a_converted_lead(synced: Synced) -> None:
    ids = synced.zoho.generate_records("Leads", 450)
    synced.zoho.convert_lead(ids[7])
    synced.zoho.update_record("Leads", ids[3], {"Phone": "+1 555 0199", "VIP": True})
    synced.add_contact(last_name="Person 00002", email="person00002@example.test")
    synced.add_contact(first_name="Host", last_name="Only", email="host.only@example.org")


def _plan(synced: Synced, *, coql: bool) -> tuple[list[tuple[str, ...]], dict[str, int]]:
    _use_coql(synced, coql)
    before = synced.zoho.stats()
    plan = synced.sync(mode="all", dry_run=True)
    assert plan.status == "succeeded", plan.message
    changes = sorted(
        (c.direction, c.action, str(c.zoho_id), str(c.contact_id), repr(sorted(c.changes)))
        for c in plan.changes
    )
    return changes, _spent(synced, before)[0]


def test_a_plan_by_coql_matches_the_plan_by_rest_and_so_does_the_run(synced: Synced) -> None:
    _org_with_a_converted_lead(synced)
    by_rest, rest_calls = _plan(synced, coql=False)
    by_coql, coql_calls = _plan(synced, coql=True)
    assert by_coql == by_rest
    assert COQL not in rest_calls and rest_calls[REST] == 3
    assert coql_calls[COQL] == 1 and REST not in coql_calls

    report = synced.sync(mode="all")
    assert report.status == "succeeded", report.message
    contacts = synced.contacts()
    leads = {email: lead for email, lead in synced.leads().items() if not lead.get("Converted__s")}
    assert set(contacts) == set(leads)  # the converted lead is not imported
    assert "person00008@example.test" not in contacts
    assert contacts["person00004@example.test"]["phone"] == "+1 555 0199"
    assert "VIP" in contacts["person00004@example.test"]["groups"]


def test_since_last_reads_only_the_changed_records_by_coql(synced: Synced) -> None:
    ids = synced.zoho.generate_records("Leads", 30)
    synced.first_manual_sync()
    synced.zoho.advance_clock(600)  # past the pull's 5-minute overlap, within the token's hour
    synced.zoho.update_record("Leads", ids[5], {"Last_Name": "Renamed"})
    before = synced.zoho.stats()
    report = synced.sync()
    assert report.status == "succeeded", report.message
    calls, _ = _spent(synced, before)
    assert calls[COQL] == 1 and REST not in calls
    assert synced.contacts()["person00006@example.test"]["last_name"] == "Renamed"
    assert report.counts["to_host.update"] == 1


def test_without_the_coql_scope_the_pull_reads_by_rest(synced: Synced) -> None:
    synced.zoho.generate_records("Leads", 5)
    synced.zoho.faults(
        fail_next=[
            {
                "path_contains": "/coql",
                "status": 401,
                "body": {
                    "code": "OAUTH_SCOPE_MISMATCH",
                    "details": {},
                    "message": "Unauthorized",
                    "status": "error",
                },
            }
        ]
    )
    before = synced.zoho.stats()
    report = synced.sync(mode="all", direction="pull")
    assert report.status == "succeeded", report.message
    calls, _ = _spent(synced, before)
    assert calls[COQL] == 1 and calls[REST] == 1
    assert len(synced.contacts()) == 5


@pytest.fixture
def capped_zoho(monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxHandle]:
    """A sandbox whose COQL offsets reach 400 records (Zoho: 100,000), and a client that
    knows it and reads 200 a page, so keyset paging is tested on 900 records rather than
    on 100,001 (the same walk, scaled down: pages per window, then ``id > last``)."""
    monkeypatch.setattr(ZohoClient, "coql_page_size", 200)
    monkeypatch.setattr(ZohoClient, "coql_offset_records", 400)
    with SandboxServer(coql_record_limit=400) as server, SandboxHandle(server.url) as handle:
        yield handle


def test_past_the_offset_cap_the_pull_pages_by_id(
    database_url: str, redis_client: Any, capped_zoho: SandboxHandle
) -> None:
    built = connect_synced(
        database_url,
        capped_zoho,
        ZOHO_SYNC_PULL_WITH_COQL=True,
        ZOHO_SYNC_BULK_THRESHOLD=0,
        ZOHO_SYNC_MAX_CONCURRENCY=2,
    )
    try:
        built.zoho.generate_records("Leads", 900)
        before = built.zoho.stats()
        report = built.sync(mode="all", direction="pull")
        assert report.status == "succeeded", report.message
        calls, _ = _spent(built, before)
        assert calls[COQL] == 5  # 2 pages, then id > last: 2 pages, then id > last: 1 page
        assert len(built.contacts()) == 900
    finally:
        dispose_synced(built)


def test_a_since_last_pull_of_few_changes_costs_one_credit(synced: Synced) -> None:
    ids = synced.zoho.generate_records("Leads", 30)
    synced.first_manual_sync()
    synced.zoho.advance_clock(600)
    for zoho_id in ids[:3]:
        synced.zoho.update_record("Leads", zoho_id, {"Phone": "+1 555 0142"})
    before = synced.zoho.stats()
    report = synced.sync(direction="pull")
    assert report.status == "succeeded", report.message
    calls, credits = _spent(synced, before)
    assert calls[COQL] == 1 and credits[COQL] == 1  # LIMIT 200: 1 credit, not 2,000's 3
    assert report.counts["to_host.update"] == 3


def test_a_record_deleted_mid_walk_does_not_hide_its_neighbour(
    synced: Synced, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages of 200, two read at once: once the second batch's first page (records 201-400)
    is answered, a Zoho user deletes record 250, before the page at offset 200 is read; that
    page then starts at record 402, and record 401 is in neither page. The pull finds the
    deletion in Zoho's deleted list and reads the border again, so every record Zoho still
    holds is imported, and the next pull removes the deleted one's contact."""
    monkeypatch.setattr(ZohoClient, "coql_page_size", 200)
    ids = sorted(synced.zoho.generate_records("Leads", 700), key=int)
    victim = ids[249]
    first_answered = threading.Event()
    original = ZohoClient.coql
    deleted: list[str] = []

    def coql(client: ZohoClient, query: str) -> tuple[list[dict[str, Any]], bool]:
        in_second_batch = f"id > '{ids[199]}'" in query
        if in_second_batch and query.endswith("offset 200") and not deleted:
            assert first_answered.wait(30)
            synced.zoho.delete_record("Leads", victim)
            deleted.append(victim)
        answer = original(client, query)
        if in_second_batch and query.endswith("offset 0"):
            first_answered.set()
        return answer

    monkeypatch.setattr(ZohoClient, "coql", coql)
    before = synced.zoho.stats()
    report = synced.sync(mode="all", direction="pull")
    assert report.status == "succeeded", report.message
    assert deleted == [victim]
    calls, _ = _spent(synced, before)
    # 1 + 2 + 2 pages, the first of them alone, and the border of the second batch again.
    assert calls[COQL] == 6
    contacts = synced.contacts()
    assert set(synced.leads()) <= set(contacts)  # ids[400] among them
    assert len(contacts) == 700  # the victim too: it was read before it went

    synced.zoho.advance_clock(600)
    again = synced.sync(direction="pull")
    assert again.counts["to_host.delete"] == 1
    assert set(synced.contacts()) == set(synced.leads())

