"""Zoho misbehaving under a real sync: every scenario ends with both sides converged.

Each test seeds both sides, syncs cleanly, changes both sides, then runs syncs while the
sandbox injects one kind of fault. A run may succeed (the client retried) or stop, but if it
stops its report and its Run row must say why. Then the faults are cleared, syncs run until
nothing moves, and every record is compared field by field (``World.tally``): nothing lost,
duplicated or brought back from deletion.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from flask_zoho_sync.sync.context import RunReport
from tests.faults.report import ScenarioResult
from tests.faults.world import World, last_run, record_errors, retry_failed_records

pytestmark = pytest.mark.redis


def _seeded(world: World, *, host: int = 12, zoho: int = 12) -> None:
    world.add_host(host)
    world.add_zoho(zoho)
    world.sync_clean()
    world.churn()


def _check_stop(world: World, report: RunReport, *reasons: str) -> None:
    """A run that did not succeed says why, in its report and in its Run row."""
    run = last_run(world.synced)
    assert run.status == report.status
    if report.status == "succeeded":
        return
    assert run.finished_at is not None
    if report.status == "partial":
        # The run went through; the records it could not send each carry Zoho's reason.
        reasons_shown = record_errors(world.synced, run.id)
        assert len(reasons_shown) == report.counts.get("to_zoho.error", 0) + report.counts.get(
            "to_host.error", 0
        )
        assert all(reasons_shown), "a refused record must say why"
        if reasons:
            assert all(any(r in shown for r in reasons) for shown in reasons_shown), reasons_shown
        return
    assert report.status in ("failed", "paused"), report.status
    assert report.message, "a stopped run must carry its reason"
    assert run.error == report.message
    if reasons:
        assert any(reason in report.message for reason in reasons), report.message


def _finish(world: World, result: ScenarioResult, note: str = "") -> None:
    quiet = world.quiesce()
    tally = world.tally(result)
    result.note = f"{note}; {len(quiet)} syncs to quiescence".lstrip("; ")
    assert tally.clean, tally.explain()


def _under_fault(
    world: World,
    runs: int,
    *reasons: str,
    on_progress: Callable[[int, int | None], None] | None = None,
) -> list[RunReport]:
    reports = []
    for _ in range(runs):
        report = world.synced.sync(on_progress=on_progress)
        _check_stop(world, report, *reasons)
        reports.append(report)
    return reports


def _summary(reports: list[RunReport]) -> str:
    return "runs under fault: " + ",".join(r.status for r in reports)


# -- rate limits and outages ------------------------------------------------------------------


@pytest.mark.fault_category("zoho: 429 storm")
@pytest.mark.parametrize("rate", [0.5, 0.85])
def test_429_storm(world: World, fault_scenario: ScenarioResult, rate: float) -> None:
    _seeded(world)
    world.synced.zoho.faults(rate_429=rate, seed=9)
    reports = _under_fault(world, 3, "credit or concurrency limit")
    if rate > 0.8:
        assert any(r.status == "failed" for r in reports), "the storm never stopped a run"
    _finish(world, fault_scenario, _summary(reports))


@pytest.mark.fault_category("zoho: 5xx burst")
@pytest.mark.parametrize("rate", [0.5, 0.85])
def test_5xx_burst(world: World, fault_scenario: ScenarioResult, rate: float) -> None:
    _seeded(world)
    world.synced.zoho.faults(rate_5xx=rate, seed=4)
    reports = _under_fault(world, 3, "could not be reached or failed", "may already have been")
    if rate > 0.8:
        assert any(r.status == "failed" for r in reports), "the burst never stopped a run"
    _finish(world, fault_scenario, _summary(reports))


@pytest.mark.fault_category("zoho: slow responses")
def test_slow_responses_under_the_timeout(world: World, fault_scenario: ScenarioResult) -> None:
    _seeded(world)
    world.synced.zoho.faults(latency_ms=250)
    reports = _under_fault(world, 1)
    assert reports[0].status == "succeeded"
    _finish(world, fault_scenario, "250 ms per call")


# -- timeouts: the answer is lost, the work may be done ---------------------------------------

LOST_ANSWERS = {
    "create (upsert)": {"method": "POST", "path_contains": "/upsert"},
    "update": {"method": "PUT", "path_contains": "/Leads"},
    "delete": {"method": "DELETE", "path_contains": "/Leads"},
    "listing": {"method": "GET", "path_contains": "/Leads?"},
    "query (COQL)": {"method": "POST", "path_contains": "/coql"},
}
#: The sandbox's meter key of each call above.
LOST_ANSWER_ENDPOINTS = {
    "create (upsert)": "POST /Leads/upsert",
    "update": "PUT /Leads",
    "delete": "DELETE /Leads",
    "listing": "GET /Leads",
    "query (COQL)": "POST /coql",
}


def _pull_by_rest(world: World) -> None:
    """Pull by REST paging (``ZOHO_SYNC_PULL_WITH_COQL=false``, and COQL's fallback)."""
    state = world.synced.state
    state.config = replace(state.config, pull_with_coql=False)


@pytest.mark.fault_category("zoho: timeout (answer lost)")
@pytest.mark.parametrize("call", sorted(LOST_ANSWERS))
def test_timed_out_call_is_not_turned_into_a_duplicate(
    world: World, fault_scenario: ScenarioResult, call: str
) -> None:
    """The sandbox does the work, then answers after the client's 1 s read timeout."""
    with world.synced.host.app.app_context():
        timeout = world.synced.state.client().timeout
    assert timeout == (5.0, 1.0), "every Zoho call must have a connect and a read timeout"
    _seeded(world)
    if call == "listing":
        _pull_by_rest(world)  # the REST listing; the query is COQL's read
    before = world.synced.zoho.stats()["calls"]
    world.synced.zoho.faults(delay_next=[{"delay_ms": 1300, "when": "after", **LOST_ANSWERS[call]}])
    reports = _under_fault(world, 1, "did not answer", "may already have been applied")
    assert world.synced.zoho.faults()["delay_next"] == [], "the fault never hit"
    calls = world.synced.zoho.stats()["calls"]
    endpoint = LOST_ANSWER_ENDPOINTS[call]
    sent = calls.get(endpoint, 0) - before.get(endpoint, 0)
    # Safe to repeat (an upsert finds the record it made), so it was sent again. The listing
    # shares its endpoint with the push's re-read of its update batch (one more GET).
    assert sent == 2 + (endpoint == "GET /Leads"), (endpoint, sent)
    _finish(world, fault_scenario, f"{_summary(reports)}; {endpoint} sent {sent} times")


@pytest.mark.fault_category("zoho: timeout (answer lost)")
def test_timed_out_insert_is_reported_not_repeated(
    world: World, fault_scenario: ScenarioResult
) -> None:
    """``insert`` has no duplicate check: a lost answer must stop, never send it again."""
    from flask_zoho_sync.zoho.errors import ZohoUnavailable

    zoho = world.synced.zoho
    zoho.faults(delay_next=[{"delay_ms": 1300, "when": "after", "method": "POST"}])
    with world.synced.host.app.app_context():
        client = world.synced.state.client()
        with pytest.raises(ZohoUnavailable) as caught:
            client.insert("Leads", [{"Last_Name": "Once", "Email": "once@example.org"}])
    assert caught.value.maybe_applied
    assert "may already have been applied" in str(caught.value)
    records = [r for r in zoho.records("Leads") if r.get("Email") == "once@example.org"]
    assert zoho.stats()["calls"].get("POST /Leads") == 1
    fault_scenario.records_checked = 1
    fault_scenario.duplicated = max(0, len(records) - 1)
    fault_scenario.lost = int(not records)
    assert len(records) == 1


# -- tokens and credits mid-run ---------------------------------------------------------------


def _once(action: Callable[[], Any]) -> Callable[[int, int | None], None]:
    fired: list[bool] = []

    def on_progress(_done: int, _total: int | None) -> None:
        if not fired:
            fired.append(True)
            action()

    return on_progress


@pytest.mark.fault_category("zoho: token expired mid-run")
def test_access_token_expired_mid_run(world: World, fault_scenario: ScenarioResult) -> None:
    _seeded(world)
    zoho = world.synced.zoho
    refreshes = zoho.stats()["calls"].get("POST /oauth/v2/token", 0)
    hook = _once(lambda: zoho.faults(expire_access_tokens=True))
    reports = _under_fault(world, 1, on_progress=hook)
    assert reports[0].status == "succeeded", reports[0].message
    assert zoho.stats()["calls"]["POST /oauth/v2/token"] > refreshes
    _finish(world, fault_scenario, "refreshed and carried on")


@pytest.mark.fault_category("zoho: token expired mid-run")
def test_access_token_expired_while_the_run_holds_its_writes(
    world: World, fault_scenario: ScenarioResult
) -> None:
    """Zoho drops the access token, and the run writes before its first call: a contact
    added and deleted between syncs is struck from the outbox, with nothing to send. On
    SQLite the run then holds the database's only write lock, so the token refreshed at
    that first call cannot be saved until the run commits. The run carries on with it and
    saves it at the end; the next run needs no refresh."""
    world.add_host(3)
    world.add_zoho(3)
    world.sync_clean()
    synced = world.synced
    synced.delete_contact(synced.add_contact(first_name="Brief", email="brief@example.org"))
    zoho = synced.zoho
    zoho.faults(expire_access_tokens=True)
    refreshes = zoho.stats()["calls"].get("POST /oauth/v2/token", 0)
    reports = _under_fault(world, 1)
    assert reports[0].status == "succeeded", reports[0].message
    assert zoho.stats()["calls"]["POST /oauth/v2/token"] == refreshes + 1
    _finish(world, fault_scenario, "refreshed, carried on, saved the token after the run")
    assert zoho.stats()["calls"]["POST /oauth/v2/token"] == refreshes + 1


@pytest.mark.fault_category("zoho: token revoked mid-run")
def test_token_revoked_mid_run(world: World, fault_scenario: ScenarioResult) -> None:
    _seeded(world)
    zoho = world.synced.zoho
    hook = _once(lambda: zoho.faults(revoke_all_tokens=True))
    reports = _under_fault(world, 1, "Reconnect Zoho CRM", on_progress=hook)
    assert reports[0].status == "failed"
    again = _under_fault(world, 1, "Reconnect Zoho CRM")
    assert again[0].status == "failed"
    with world.synced.host.app.app_context():  # the admin reconnects
        grant = zoho.mint_refresh_token()
        world.synced.state.connect_with_refresh_token(grant["refresh_token"], zoho.accounts_server)
    _finish(world, fault_scenario, _summary(reports + again) + "; reconnected")


@pytest.mark.fault_category("zoho: daily credits exhausted")
@pytest.mark.parametrize(
    ("keep_for_others", "outcome", "reason"),
    [
        # Zoho's own limit stops the run: the sync was told to spend every credit.
        (0, "failed", "credit or concurrency limit"),
        # Zoho's header says the org is nearly out: the sync pauses before Zoho refuses.
        (1000, "paused", "leaves the last 1000 to its other integrations"),
    ],
)
def test_daily_credit_limit_reached_mid_run(
    world: World, fault_scenario: ScenarioResult, keep_for_others: int, outcome: str, reason: str
) -> None:
    world.synced.state.config = replace(world.synced.state.config, credit_reserve=keep_for_others)
    _seeded(world)
    zoho = world.synced.zoho
    limit = zoho.stats()["credits_limit"]
    hook = _once(lambda: zoho.faults(consume_credits=limit))
    reports = _under_fault(world, 2, reason, on_progress=hook)
    assert [r.status for r in reports] == [outcome, outcome]
    zoho.faults(daily_credits=10**9)  # the next day, or more credits bought
    _finish(world, fault_scenario, _summary(reports))


@pytest.mark.fault_category("zoho: page_token expired")
def test_page_token_expires_mid_pull(world: World, fault_scenario: ScenarioResult) -> None:
    world.add_host(5)
    world.add_zoho(5)
    world.sync_clean()
    world.generate_zoho(250)  # two pages: the second needs the page_token
    _pull_by_rest(world)  # page tokens are REST paging's; COQL pages by offset and id
    world.synced.zoho.faults(page_token_ttl=0)
    reports = _under_fault(world, 2, "page_token")
    assert all(r.status == "failed" for r in reports)
    _finish(world, fault_scenario, _summary(reports))


# -- replies that are not what they claim ------------------------------------------------------

GARBLED_REPLIES: dict[str, dict[str, Any]] = {
    "malformed JSON (listing)": {
        "fail_next": [
            {
                "status": 200,
                "body": '{"data": [{"id": ',
                "content_type": "application/json",
                "method": "GET",
                "path_contains": "/Leads?",
            }
        ]
    },
    "HTML error page 502 (listing)": {
        "fail_next": [{"status": 502, "body": "<html><h1>Bad Gateway</h1></html>", "method": "GET"}]
    },
    "HTML page with 200 (listing)": {
        "fail_next": [
            {"status": 200, "body": "<html>Service maintenance</html>", "path_contains": "/Leads"}
        ]
    },
    "200 with error body (listing)": {
        "fail_next": [
            {
                "status": 200,
                "body": {
                    "code": "INTERNAL_ERROR",
                    "details": {},
                    "message": "x",
                    "status": "error",
                },
                "path_contains": "/Leads?",
            }
        ]
    },
    "HTML error page 503 (create)": {
        "fail_next": [{"status": 503, "body": "<html>Unavailable</html>", "method": "POST"}]
    },
    "200 with error body (update)": {
        "fail_next": [
            {
                "status": 200,
                "body": {
                    "code": "INTERNAL_ERROR",
                    "details": {},
                    "message": "x",
                    "status": "error",
                },
                "method": "PUT",
            }
        ]
    },
    "reply cut short (create applied)": {"garble_next": [{"method": "POST"}]},
    "reply cut short (update applied)": {"garble_next": [{"method": "PUT"}]},
    "reply cut short (delete applied)": {"garble_next": [{"method": "DELETE"}]},
    "reply cut short (deleted listing)": {"garble_next": [{"path_contains": "/deleted"}]},
}


@pytest.mark.fault_category("zoho: garbled reply")
@pytest.mark.parametrize("kind", sorted(GARBLED_REPLIES))
def test_garbled_reply(world: World, fault_scenario: ScenarioResult, kind: str) -> None:
    _seeded(world)
    world.synced.zoho.faults(**GARBLED_REPLIES[kind])
    reports = _under_fault(world, 1, "not in the expected format", "not valid JSON", "Zoho")
    left = world.synced.zoho.faults()
    assert left["fail_next"] == [] and left["garble_next"] == [], "the fault never hit"
    _finish(world, fault_scenario, _summary(reports))


# -- one record refused, at every position of a 100-record batch ------------------------------

POSITIONS = {"first": [0], "middle": [50], "last": [-1], "all": "all"}


#: Bad data at every position; a lock (handled the same way whatever the position, by the
#: same code path) at one position and for the whole batch.
REFUSALS = [("INVALID_DATA", where) for where in POSITIONS] + [
    ("RECORD_LOCKED", "middle"),
    ("RECORD_LOCKED", "all"),
]


@pytest.mark.fault_category("zoho: per-record failure in a batch")
@pytest.mark.parametrize(("code", "where"), REFUSALS)
def test_record_refused_at_each_batch_position(
    world: World, fault_scenario: ScenarioResult, where: str, code: str
) -> None:
    """A refused record fails alone with Zoho's reason; its neighbours go through. A lock
    (transient) is retried by the next sync; bad data waits for the admin's Retry."""
    world.add_zoho(3)
    world.sync_clean()
    created = world.add_host(100)
    world.synced.zoho.faults(
        fail_records=[{"positions": POSITIONS[where], "code": code, "method": "POST"}]
    )
    report = world.synced.sync()
    _check_stop(world, report, code)
    refused = 100 if where == "all" else 1
    assert report.status == "partial"
    assert report.counts.get("to_zoho.error") == refused
    zoho_emails = {(r.get("Email") or "").lower() for r in world.synced.zoho.records("Leads")}
    assert len([email for email in created if email in zoho_emails]) == 100 - refused
    if code == "INVALID_DATA":
        assert retry_failed_records(world.synced) == refused
    _finish(world, fault_scenario, f"{refused} refused with {code}")
