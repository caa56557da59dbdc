"""Random histories with Zoho faults in between, then quiescence: both sides must agree.

Built on the engine's convergence test (its steps, its model of who exists, its checks): a
history here also has *faulty syncs*, runs during a 429 or 5xx burst, a lost answer to a
write, an expired access token or the day's credits running out mid-run. A faulty run may
apply part of its work, which no step-by-step model can predict field by field, so after
the first fault the per-sync checks stop and the end state is judged instead: faults
cleared and syncs run until nothing moves, then exactly the contacts the history left alive
exist, once, on both sides, with equal values field by field, and nothing deleted is back.
Histories that happen to draw no fault keep the full model check.

``ZOHO_SYNC_TEST_FAULT_HISTORIES`` (default 100 per database, so 200 in CI) sets how many.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flask_zoho_sync.sandbox.handle import SandboxHandle
from tests.engine.conftest import Synced
from tests.engine.test_convergence import FIELDS, Person, apply_step, step, wipe
from tests.faults.report import REPORT, ScenarioResult
from tests.faults.world import World, host_rows, last_run, moved

# Its scenarios are named by their place in the report ("history 7"): under pytest-xdist
# they share one worker (one report) so no two get the same name.
pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.xdist_group("fault-histories")]

HISTORIES = int(os.environ.get("ZOHO_SYNC_TEST_FAULT_HISTORIES", "100"))

FAULTS = ("429 burst", "5xx burst", "lost answer", "token expired", "credits exhausted")
LOST_ANSWER_CALLS = ({"method": "POST"}, {"method": "PUT"}, {"method": "DELETE"}, {})

fault_step = st.tuples(
    st.just("faulty_sync"),
    st.sampled_from(FAULTS),
    st.integers(0, 3),  # which call loses its answer / a seed for the bursts
)
faulty_history = st.lists(st.one_of(step, step, fault_step), min_size=4, max_size=16)


def _faulty_sync(synced: Synced, kind: str, variant: int) -> str:
    """Run one sync under ``kind``; return how it ended. A stopped run must say why."""
    zoho = synced.zoho
    hook = None
    if kind == "429 burst":
        zoho.faults(rate_429=0.75, seed=variant)
    elif kind == "5xx burst":
        zoho.faults(rate_5xx=0.75, seed=variant)
    elif kind == "lost answer":
        zoho.faults(garble_next=[dict(LOST_ANSWER_CALLS[variant])])
    elif kind == "token expired":
        zoho.faults(expire_access_tokens=True)
    elif kind == "credits exhausted":
        fired: list[bool] = []

        def hook(_done: int, _total: int | None) -> None:
            if not fired:
                fired.append(True)
                zoho.faults(consume_credits=zoho.stats()["credits_remaining"])

    report = synced.sync(on_progress=hook)
    run = last_run(synced)
    assert run.status == report.status
    if report.status == "failed":
        assert report.message and run.error == report.message
    _clear(zoho)
    return report.status


def _clear(zoho: SandboxHandle) -> None:
    """Faults off, and credits for the rest of the history (as if the next day came)."""
    stats = zoho.stats()
    used = stats["credits_limit"] - stats["credits_remaining"]
    zoho.faults(clear=True, daily_credits=used + 100_000)


def _learn_ids(synced: Synced, people: list[Person]) -> None:
    """After a faulty stretch, find where each living person is now (by email)."""
    contacts = synced.contacts()
    leads = synced.leads()
    for person in people:
        if person.deleted:
            continue
        if person.email in contacts:
            person.host_id = contacts[person.email]["id"]
        if person.email in leads:
            person.zoho_id = leads[person.email]["id"]


def _quiesce(synced: Synced) -> int:
    _clear(synced.zoho)
    for attempt in range(1, 6):
        report = synced.sync()
        if report.status == "succeeded" and moved(report) == 0:
            return attempt
    raise AssertionError(f"no quiet sync: last {report.status} {report.message} {report.counts}")


def _judge(synced: Synced, people: list[Person], result: ScenarioResult) -> list[str]:
    """Both sides against each other and against who should exist; fills the tallies."""
    contacts = synced.contacts()
    records = synced.zoho.records("Leads")
    leads = {(r.get("Email") or "").lower(): r for r in records}
    alive = {p.email for p in people if not p.deleted}
    gone = {p.email for p in people if p.deleted}
    zoho_counts = Counter((r.get("Email") or "").lower() for r in records)
    result.duplicated += sum(n - 1 for n in zoho_counts.values() if n > 1)
    host_counts = Counter((c.get("email") or "").lower() for c in host_rows(synced))
    result.duplicated += sum(n - 1 for n in host_counts.values() if n > 1)
    result.lost += len(alive - set(contacts)) + len(alive - set(leads))
    result.resurrected += len(gone & set(contacts)) + len(gone & set(leads))
    problems = [f"unexpected {email}" for email in (set(contacts) | set(leads)) - alive - gone]
    for email in alive & set(contacts) & set(leads):
        result.records_checked += 1
        contact, lead = contacts[email], leads[email]
        for name, api_name in FIELDS.items():
            if contact[name] != lead[api_name]:
                problems.append(f"{email} {name}: host {contact[name]!r} zoho {lead[api_name]!r}")
        if ("VIP" in contact["groups"]) != bool(lead.get("VIP")):
            problems.append(f"{email} vip differs")
    return problems


@settings(
    max_examples=HISTORIES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=faulty_history)
def test_random_histories_with_faults_converge(
    world: World, history: list[tuple[Any, ...]]
) -> None:
    synced = world.synced
    wipe(synced)
    # A fresh grant per history: Zoho allows ten token refreshes per grant in ten minutes,
    # and a hundred histories on one grant would spend them (the run says so, rightly).
    with synced.host.app.app_context():
        grant = synced.zoho.mint_refresh_token()
        synced.state.connect_with_refresh_token(grant["refresh_token"], synced.zoho.accounts_server)
    people: list[Person] = []
    serial = [0]
    faulted = False
    endings: list[str] = []
    result = ScenarioResult(
        category="random histories with faults",
        name=f"history {len(REPORT.results) + 1}",
        inputs=len(history),
    )
    try:
        for action in history:
            if action[0] == "faulty_sync":
                endings.append(f"{action[1]}: {_faulty_sync(synced, action[1], action[2])}")
                faulted = True
            elif action[0] == "sync" and faulted:
                report = synced.sync(mode=action[1])
                assert report.status == "succeeded", (report.status, report.message)
                _learn_ids(synced, people)
            else:
                apply_step(synced, people, action, serial)
        syncs = _quiesce(synced)
        if not faulted:  # one more sync through the model: its values, field by field
            apply_step(synced, people, ("sync", "since_last"), serial)
        problems = _judge(synced, people, result)
        result.note = f"{'; '.join(endings) or 'no fault drawn'}; quiet after {syncs}"
        assert not problems, problems
        assert not (result.lost or result.duplicated or result.resurrected), result
        result.survived = True
    finally:
        REPORT.results.append(result)
