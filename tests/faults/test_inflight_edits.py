"""Edits that land while the sync's own write is on its way (issue 25).

The host changes a field, the sync starts pushing it, and a Zoho user changes the same field
of the same record while the push's write is held on the wire (the sandbox's ``delay_next``
with ``when=before`` holds the request before Zoho applies it). Zoho has no transaction
around our read and our write, so without care our write overwrites the user's edit and the
record's history shows a plain "changed in the host" update: the edit is lost without trace.

Every scenario here ends with the rule of the issue checked: each edit either survives on
both sides, or the history records a conflict naming both values.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.serving import make_server

from flask_zoho_sync import jobs
from flask_zoho_sync.models import RecordHistory
from flask_zoho_sync.preferences import get_settings
from flask_zoho_sync.sandbox.handle import SandboxHandle
from flask_zoho_sync.workers import SimpleSyncWorker
from tests.engine.test_convergence import wipe
from tests.faults.report import REPORT, ScenarioResult
from tests.faults.world import World

# Its scenarios are named by their place in the report ("history 7"): under pytest-xdist
# they share one worker (one report) so no two get the same name.
pytestmark = [pytest.mark.redis, pytest.mark.xdist_group("fault-histories")]

#: How long the sandbox holds the write: under the world's 1 s read timeout.
HOLD_MS = 600


def conflicts(world: World, zoho_id: str) -> list[dict[str, Any]]:
    """Every conflict the history holds for one Zoho record (both values and the winner)."""
    with world.synced.host.app.app_context():
        rows = world.synced.host.db.session.scalars(
            sa.select(RecordHistory).where(RecordHistory.zoho_id == zoho_id)
        ).all()
        found: list[dict[str, Any]] = []
        for row in rows:
            found.extend((row.changes or {}).get("conflicts") or [])
        return found


def while_held(zoho: SandboxHandle, act: Callable[[], None]) -> threading.Thread:
    """Run ``act`` as soon as the sandbox has taken the held request off its fault queue,
    i.e. while that request waits to be applied."""
    failures: list[BaseException] = []

    def watch() -> None:
        try:
            deadline = time.monotonic() + 20
            while zoho.faults()["delay_next"]:
                if time.monotonic() > deadline:
                    raise AssertionError("the held write never came")
                time.sleep(0.01)
            act()
        except BaseException as exc:  # handed to the test thread, which re-raises it
            failures.append(exc)

    thread = threading.Thread(target=watch, name="zoho-user", daemon=True)
    thread.failures = failures  # type: ignore[attr-defined]
    thread.start()
    return thread


def joined(thread: threading.Thread) -> None:
    thread.join(timeout=30)
    assert not thread.is_alive(), "the Zoho user's edit never finished"
    failures: list[BaseException] = thread.failures  # type: ignore[attr-defined]
    if failures:
        raise failures[0]


@pytest.mark.fault_category("in-flight edits (issue 25)")
def test_zoho_edit_during_our_held_update_is_not_lost(
    world: World, fault_scenario: ScenarioResult
) -> None:
    """The exact scenario of issue 25, on the Phone field: host edit, push held, Zoho edit,
    then that run and two more. The Zoho user's edit is the newest, so under the default
    policy (newest wins) it must end up on both sides, with the conflict in the history."""
    synced, zoho = world.synced, world.synced.zoho
    (email,) = world.add_host(1)
    world.sync_clean()
    zoho_id = world.zoho_ids[email]
    synced.edit_contact(world.host_ids[email], phone="+1 555 0100")
    zoho.faults(delay_next=[{"delay_ms": HOLD_MS, "when": "before", "method": "PUT"}])

    def zoho_user_edits() -> None:
        zoho.advance_clock(2)  # the user saves a moment after our write left
        zoho.update_record("Leads", zoho_id, {"Phone": "+44 20 7946 0999"})

    user = while_held(zoho, zoho_user_edits)
    reports = [synced.sync()]
    joined(user)
    reports += [synced.sync(), synced.sync()]
    assert all(r.status == "succeeded" for r in reports), [(r.status, r.message) for r in reports]

    world.expected[email]["phone"] = "+44 20 7946 0999"
    tally = world.tally(fault_scenario)
    found = conflicts(world, zoho_id)
    fault_scenario.note = f"{len(found)} conflict(s) recorded"
    assert tally.clean, tally.explain()
    assert any(
        c["host"] == "+1 555 0100" and c["zoho"] == "+44 20 7946 0999" and c["winner"] == "zoho"
        for c in found
    ), found


@pytest.fixture
def notified_world(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """The world's host served on a real port with automatic sync on and its notification
    channel registered, so the sandbox's notifications reach its notify hook."""
    synced = world.synced
    monkeypatch.setattr(jobs, "NOTIFY_DELAY", 0)
    server = make_server("127.0.0.1", 0, synced.host.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    synced.state.config = replace(
        synced.state.config, base_url=f"http://127.0.0.1:{server.server_port}"
    )
    with synced.host.app.app_context():
        get_settings(synced.host.db.session).auto_sync = True
        synced.host.db.session.commit()
    synced.state.preferences_changed()
    yield world
    server.shutdown()
    thread.join(5)


def work_queue(world: World) -> None:
    """What the RQ worker does: run the jobs due, the notified pull among them."""
    synced = world.synced
    with synced.host.app.app_context():
        SimpleSyncWorker([jobs.queue_for(synced.state)], connection=synced.state.redis()).work(
            burst=True, with_scheduler=True
        )


@pytest.mark.fault_category("in-flight edits (issue 25)")
def test_an_edit_the_conditional_write_cannot_see_is_found_from_its_notification(
    notified_world: World, fault_scenario: ScenarioResult
) -> None:
    """Zoho's times have whole seconds: a Zoho edit in the same second as the version the
    push re-read passes the conditional write and is overwritten. The notification Zoho
    sends for it names the value it wrote (``affected_values``), and the notified pull
    finds that our write replaced it: a conflict, settled by the policy and recorded with
    both values, at no extra call."""
    world = notified_world
    synced, zoho = world.synced, world.synced.zoho
    (email,) = world.add_host(1)
    world.sync_clean(trigger="cli")  # the first manual sync
    with synced.host.app.app_context():
        assert jobs.tick(synced.state).notifications == "renewed"
    [channel] = requests.get(f"{zoho.url}/__sandbox__/channels", timeout=5).json()["channels"]
    assert channel["return_affected_field_values"] is True
    zoho_id = world.zoho_ids[email]
    version_read = zoho.record("Leads", zoho_id)["Modified_Time"]
    synced.edit_contact(world.host_ids[email], phone="+1 555 0100")
    zoho.faults(delay_next=[{"delay_ms": HOLD_MS, "when": "before", "method": "PUT"}])

    def zoho_user_edits_in_the_same_second() -> None:
        zoho.set_clock(version_read)
        zoho.update_record("Leads", zoho_id, {"Phone": "+44 20 7946 0999"})

    user = while_held(zoho, zoho_user_edits_in_the_same_second)
    assert synced.sync().status == "succeeded"
    joined(user)
    assert zoho.record("Leads", zoho_id)["Phone"] == "+1 555 0100", "the write was not held"
    deliveries = zoho.notifications(wait=5)
    assert [d["status_code"] for d in deliveries][-2:] == [200, 200], deliveries
    before = synced.calls()
    work_queue(world)
    after = synced.calls()
    assert after.get("GET /Leads", 0) - before.get("GET /Leads", 0) == 1  # the ids' read only

    found = conflicts(world, zoho_id)
    [conflict] = [c for c in found if c["zoho"] == "+44 20 7946 0999"]
    assert conflict["host"] == "+1 555 0100"
    assert "while the sync's write was on its way" in conflict["reason"]
    # The host's edit was made after the second the Zoho user saved in: newest wins.
    assert conflict["winner"] == "host"
    world.quiesce()
    world.expected[email]["phone"] = "+1 555 0100"
    tally = world.tally(fault_scenario)
    assert tally.clean, tally.explain()
    work_queue(world)  # the echoes of our own writes: no further conflict
    assert len([c for c in conflicts(world, zoho_id) if c["zoho"] == "+44 20 7946 0999"]) == 1


# -- randomized: many in-flight edits, every one accounted for ----------------------------

#: Host attribute -> Zoho field an in-flight step may edit.
EDITABLE = {"first_name": "First_Name", "last_name": "Last_Name", "phone": "Phone"}
#: Which request the sandbox holds while the Zoho user edits: the push's write (applied
#: after the edit), or the re-read before it (the edit lands just after the read).
HOLDS = {
    "write held": {"method": "PUT", "when": "before"},
    "re-read answered late": {"method": "GET", "path_contains": "ids=", "when": "after"},
}
HISTORIES = int(os.environ.get("ZOHO_SYNC_TEST_INFLIGHT_HISTORIES", "8"))

inflight_step = st.tuples(
    st.sampled_from(sorted(EDITABLE)),  # the host's edit
    st.sampled_from(sorted(EDITABLE)),  # the Zoho user's edit, made while the sync is out
    st.sampled_from(sorted(HOLDS)),
    st.booleans(),  # the Zoho edit in the same clock second as the version the push read
)
inflight_history = st.tuples(
    st.sampled_from(["newest", "host_wins", "zoho_wins"]),
    st.lists(inflight_step, min_size=1, max_size=4),
)


def _fresh(world: World, policy: str) -> World:
    """Both sides emptied, the policy set, and the channel to be registered anew (the
    sandbox's reset dropped it)."""
    synced = world.synced
    wipe(synced)
    with synced.host.app.app_context():
        settings_row = get_settings(synced.host.db.session)
        settings_row.conflict_policy = policy
        settings_row.notify_expires_at = None
        synced.host.db.session.commit()
    synced.state.preferences_changed()
    with synced.host.app.app_context():
        for name in ("notified-ids", "notified-writes", "notify-pending"):
            synced.state.redis().delete(jobs._key(synced.state, name))
    return World(synced)


def _in_flight(world: World, email: str, step: tuple[str, str, str, bool], n: int) -> tuple:
    """One host edit pushed while a Zoho user edits the same record; returns both edits."""
    host_field, zoho_field, hold, same_second = step
    synced, zoho = world.synced, world.synced.zoho
    zoho_id = world.zoho_ids[email]
    host_value, zoho_value = f"H{n} edit", f"Z{n} edit"
    if host_field == "phone":
        host_value = f"+1 555 01{n:02d}"
    if zoho_field == "phone":
        zoho_value = f"+44 20 7946 0{n:03d}"
    version_read = zoho.record("Leads", zoho_id)["Modified_Time"]
    synced.edit_contact(world.host_ids[email], **{host_field: host_value})
    zoho.faults(delay_next=[{"delay_ms": HOLD_MS, **HOLDS[hold]}])

    def zoho_user_edits() -> None:
        if same_second:
            zoho.set_clock(version_read)
        else:
            zoho.advance_clock(2)
        zoho.update_record("Leads", zoho_id, {EDITABLE[zoho_field]: zoho_value})

    user = while_held(zoho, zoho_user_edits)
    report = synced.sync()
    joined(user)
    assert report.status == "succeeded", (report.status, report.message)
    zoho.advance_clock(2)  # the next step's edits come later than this one's
    zoho.notifications(wait=5)
    work_queue(world)
    return (host_field, host_value), (zoho_field, zoho_value)


@pytest.mark.slow
@pytest.mark.fault_category("in-flight edits (issue 25)")
@settings(
    max_examples=HISTORIES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=inflight_history)
def test_random_in_flight_edits_are_never_lost_without_a_conflict(
    notified_world: World, history: tuple[str, list[tuple[str, str, str, bool]]]
) -> None:
    """Host edits pushed while Zoho users edit the same records (the write held, or the
    re-read answered late; the Zoho edit seconds later or in the very second the push
    read), under each conflict policy. Once quiet, every edit either holds on both sides,
    or the history records a conflict naming it and the value that won."""
    policy, steps = history
    world = _fresh(notified_world, policy)
    synced = world.synced
    result = ScenarioResult(
        category="in-flight edits (issue 25)",
        name=f"random in-flight history {len(REPORT.results) + 1}",
        inputs=len(steps),
    )
    lost: list[str] = []
    try:
        emails = world.add_host(len(steps))
        world.sync_clean(trigger="cli")  # the first manual sync
        with synced.host.app.app_context():
            assert jobs.tick(synced.state).notifications == "renewed"
        edits = [
            (email, *_in_flight(world, email, step, n))
            for n, (email, step) in enumerate(zip(emails, steps, strict=True), start=1)
        ]
        world.quiesce()
        work_queue(world)
        world.quiesce()
        contacts, leads = synced.contacts(), synced.leads()
        for email, (host_field, host_value), (zoho_field, zoho_value) in edits:
            result.records_checked += 1
            contact, lead = contacts[email], leads[email]
            recorded = conflicts(world, world.zoho_ids[email])
            for name, api_name in EDITABLE.items():
                assert contact[name] == lead[api_name], (email, name, contact[name], lead)
            for field_name, value, other in (
                (host_field, host_value, zoho_value),
                (zoho_field, zoho_value, host_value),
            ):
                if contact[field_name] == value:
                    continue
                named = any(
                    {c["host"], c["zoho"]} == {value, other} and c["winner"] for c in recorded
                )
                if not named:
                    lost.append(f"{email} {field_name}={value!r} (now {contact[field_name]!r})")
        result.lost = len(lost)
        result.note = f"policy {policy}; {len(steps)} in-flight edits"
        assert not lost, lost
        result.survived = True
    finally:
        REPORT.results.append(result)
