"""Parallel pushes: up to ZOHO_SYNC_MAX_CONCURRENCY calls in flight, never more, and the
push's guarantees (no duplicates, every answered write recorded) kept."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from flask_zoho_sync.sync.inflight import InFlight
from tests.engine.conftest import Synced


@pytest.fixture
def synced(synced: Synced) -> Iterator[Synced]:
    """The engine fixture on a sandbox with Zoho's usual limits (10 calls at once, the
    standard daily credits), put back as found afterwards: a reset keeps both, as they are
    settings of the server rather than of the org's data, and other tests change them."""
    stats = synced.zoho.stats()
    synced.zoho.faults(concurrency_limit=10, daily_credits=None)
    yield synced
    synced.zoho.faults(
        concurrency_limit=stats["concurrency_limit"], daily_credits=stats["credits_limit"]
    )


def _cap(synced: Synced, limit: int) -> None:
    state = synced.state
    state.config = dataclasses.replace(state.config, max_concurrency=limit)


def _add_contacts(synced: Synced, count: int, start: int = 0) -> None:
    with synced.host.app.app_context():
        session = synced.host.db.session
        session.add_all(
            synced.host.Contact(first_name="Par", last_name=f"Allel {n}", email=f"p{n}@example.org")
            for n in range(start, start + count)
        )
        session.commit()


def _linked(synced: Synced) -> int:
    with synced.host.app.app_context():
        from flask_zoho_sync.models import Link

        return synced.host.db.session.query(Link).count()


@pytest.mark.parametrize("limit", [1, 3])
def test_the_push_keeps_the_cap_in_flight_and_never_more(synced: Synced, limit: int) -> None:
    # The sandbox allows exactly `limit` calls at once and answers 429 to one more. Each
    # call takes 150 ms there, so its peak of simultaneous calls shows the overlap.
    _cap(synced, limit)
    _add_contacts(synced, 1000)
    synced.zoho.faults(concurrency_limit=limit, latency_ms=150)

    report = synced.sync(mode="all", direction="push")

    stats = synced.zoho.stats()
    assert report.status == "succeeded", report.message
    assert stats["rejected"]["concurrency"] == 0
    assert "429" not in stats["status_codes"]
    assert stats["concurrency_peak"] == limit
    assert stats["calls"]["POST /Leads/upsert"] == 10
    leads = synced.zoho.records("Leads")
    assert len(leads) == 1000
    assert len({lead["Email"] for lead in leads}) == 1000
    assert _linked(synced) == 1000


def test_the_orgs_call_slots_hold_the_push_below_its_own_concurrency(synced: Synced) -> None:
    # One sync may keep 4 calls in flight, but the org's slots (shared through Redis with
    # every other worker) are 2: Zoho never sees more than 2 at once, and nothing is refused.
    _cap(synced, 4)
    state = synced.state
    state.config = dataclasses.replace(state.config, org_concurrency=2)
    _add_contacts(synced, 1000)
    synced.zoho.faults(concurrency_limit=10, latency_ms=150)

    report = synced.sync(mode="all", direction="push")

    stats = synced.zoho.stats()
    assert report.status == "succeeded", report.message
    assert stats["concurrency_peak"] == 2
    assert stats["rejected"]["concurrency"] == 0
    assert stats["calls"]["POST /Leads/upsert"] == 10
    assert len(synced.zoho.records("Leads")) == 1000
    assert _linked(synced) == 1000
    with synced.host.app.app_context():
        key = state.call_slots_key()
    assert key == f"zoho_sync:call-slots:{state.config.client_id}:{_org_id(synced)}"
    assert not state.redis().exists(key)  # every slot given back


def _org_id(synced: Synced) -> str:
    with synced.host.app.app_context():
        from flask_zoho_sync.models import Connection

        org_id = synced.host.db.session.query(Connection.org_id).scalar()
    assert org_id
    return str(org_id)


def test_a_failed_batch_records_the_others_and_a_rerun_creates_no_duplicates(
    synced: Synced,
) -> None:
    _cap(synced, 3)
    _add_contacts(synced, 1000)
    # One batch is refused outright (not retryable); the batches in flight beside it land.
    refused = {"code": "INVALID_DATA", "details": {}, "message": "refused", "status": "error"}
    synced.zoho.faults(
        latency_ms=100,
        fail_next=[{"path_contains": "/upsert", "status": 400, "body": refused}],
    )
    first = synced.sync(mode="all", direction="push")
    assert first.status == "failed"
    made = synced.zoho.records("Leads")
    # Every record Zoho made in the failed run is linked: no answered write was dropped.
    assert 0 < len(made) < 1000
    assert _linked(synced) == len(made)

    synced.zoho.faults(clear=True)
    second = synced.sync(mode="all", direction="push")
    assert second.status == "succeeded", second.message
    leads = synced.zoho.records("Leads")
    assert len(leads) == 1000
    assert len({lead["Email"] for lead in leads}) == 1000
    assert _linked(synced) == 1000


def test_parallel_calls_on_an_expired_token_refresh_it_once(synced: Synced) -> None:
    _cap(synced, 3)
    synced.sync(mode="all", direction="push")  # caches field metadata
    _add_contacts(synced, 600)
    synced.zoho.faults(latency_ms=100, expire_access_tokens=True)
    before = synced.calls().get("POST /oauth/v2/token", 0)

    report = synced.sync(mode="all", direction="push")

    assert report.status == "succeeded", report.message
    assert synced.calls().get("POST /oauth/v2/token", 0) == before + 1
    assert len(synced.zoho.records("Leads")) == 600


def test_changes_pulled_then_pushed_in_parallel_all_arrive(synced: Synced) -> None:
    """A two-way run: the pull (sequential) links Zoho's records, the push (parallel)
    sends both the host's new contacts and edits to linked ones."""
    _cap(synced, 4)
    for n in range(250):
        synced.zoho.create_record("Leads", {"Last_Name": f"Zoho {n}", "Email": f"z{n}@example.org"})
    _add_contacts(synced, 450)
    report = synced.sync(mode="all")
    assert report.status == "succeeded", report.message
    with synced.host.app.app_context():
        session = synced.host.db.session
        for contact in session.scalars(synced.host.db.select(synced.host.Contact)):
            contact.company = "Edited"
        session.commit()
    report = synced.sync(mode="since_last")
    assert report.status == "succeeded", report.message
    leads = synced.zoho.records("Leads")
    assert len(leads) == 700
    assert {lead["Company"] for lead in leads} == {"Edited"}
    assert synced.zoho.stats()["rejected"]["concurrency"] == 0


# -- the dispatcher on its own -------------------------------------------------------------


def test_inflight_settles_in_submission_order_on_the_calling_thread() -> None:
    caller = threading.get_ident()
    settled: list[tuple[int, int]] = []
    with InFlight(3) as calls:
        for n in range(12):
            # Later calls finish first; the settling order must not follow.
            calls.submit(
                lambda n=n: (time.sleep(0.002 * (12 - n)), n)[1],
                lambda result: settled.append((result, threading.get_ident())),
            )
        calls.drain()
    assert [result for result, _ in settled] == list(range(12))
    assert {thread for _, thread in settled} == {caller}


def test_inflight_runs_at_most_its_limit_at_once() -> None:
    lock = threading.Lock()
    running = peak = 0

    def call() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.01)
        with lock:
            running -= 1

    with InFlight(4) as calls:
        for _ in range(40):
            calls.submit(call, lambda _result: None)
        calls.drain()
    assert peak == 4


def test_inflight_raises_the_first_failure_after_settling_the_rest() -> None:
    settled: list[Any] = []

    def call(n: int) -> int:
        time.sleep(0.01)
        if n == 2:
            raise RuntimeError("batch 2 refused")
        return n

    calls = InFlight(3)
    with pytest.raises(RuntimeError, match="batch 2"):
        for n in range(6):
            calls.submit(lambda n=n: call(n), settled.append)
        calls.drain()
    calls.close()
    # 0 and 1 settled before the failure surfaced; what was in flight beside it settled too.
    assert settled[:2] == [0, 1]
    assert 2 not in settled


def test_inflight_unthreaded_runs_inline() -> None:
    threads: list[int] = []
    with InFlight(1, threaded=False) as calls:
        calls.submit(lambda: threads.append(threading.get_ident()), lambda _result: None)
    assert threads == [threading.get_ident()]
    with pytest.raises(ValueError, match="at least 1"):
        InFlight(0)
