"""A real worker process killed at every step of a push and of a pull.

Each scenario: both sides in step, then changes on one side, then a worker in its own
process that sends itself SIGKILL at step N (before its N-th commit, or right after its N-th
Zoho answer arrived, which Zoho then did but the worker never learned). Then what production
does: the dead worker's lock expires, the next tick re-drives the work, a restarted worker
runs it. Then the audit: both sides equal, field by field, nothing lost, duplicated or
brought back; no run left "running" (the killed one reads "interrupted"); nothing left
queued.

N counts up from 1 until a worker runs to the end without reaching its kill point, so every
step of the run is covered however the run's steps change. PostgreSQL, the database that
matters in production, gets every step; SQLite every third (each kill point costs a worker
process and a fresh pair of databases, and the suite must stay well inside CI's time).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import redis

from flask_zoho_sync import jobs
from flask_zoho_sync.preferences import get_settings
from flask_zoho_sync.sandbox.handle import SandboxHandle
from tests.engine.conftest import Synced, connect_synced, dispose_synced
from tests.faults.process import (
    LOCK_SECONDS,
    audit,
    pending_changes,
    push_now,
    run_statuses,
    run_worker,
    work_in_process,
)
from tests.faults.report import REPORT, ScenarioResult

# Worker processes and lock lifetimes: kept on one xdist worker, one scenario at a time.
pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.xdist_group("fault-processes")]

Intent = tuple[dict[str, dict[str, Any]], set[str]]


def clear_queue_state(connection: redis.Redis) -> None:
    """Forget jobs, locks and gates between scenarios, but not this session's db claim."""
    for pattern in ("rq:*", "zoho_sync:*"):
        keys = list(connection.scan_iter(pattern))
        if keys:
            connection.delete(*keys)


def baseline(synced: Synced, count: int = 12) -> list[int]:
    ids = [
        synced.add_contact(
            first_name=f"F{i}",
            last_name=f"Base{i}",
            email=f"base{i}@example.org",
            phone=f"+61 400 000 {i:03d}",
            groups=["VIP"] if i % 3 == 0 else [],
        )
        for i in range(count)
    ]
    report = synced.sync(mode="all", trigger="cli")  # the admin's first, manual sync
    assert report.status == "succeeded", report.message
    return ids


def automatic_sync_on(synced: Synced) -> None:
    with synced.host.app.app_context():
        get_settings(synced.host.db.session).auto_sync = True
        synced.host.db.session.commit()
    synced.state.preferences_changed()


def host_truth(synced: Synced) -> dict[str, dict[str, Any]]:
    return {
        email: {
            "first_name": values["first_name"],
            "last_name": values["last_name"],
            "phone": values["phone"],
            "vip": "VIP" in values["groups"],
        }
        for email, values in synced.contacts().items()
    }


def zoho_truth(synced: Synced) -> dict[str, dict[str, Any]]:
    return {
        email: {
            "first_name": lead.get("First_Name"),
            "last_name": lead.get("Last_Name"),
            "phone": lead.get("Phone"),
            "vip": bool(lead.get("VIP")),
        }
        for email, lead in synced.leads().items()
    }


# -- the two histories ----------------------------------------------------------------------


def host_changes(synced: Synced) -> Intent:
    """Edits, creates, group changes and deletes in the host, waiting in the outbox."""
    ids = baseline(synced)
    for index, contact_id in enumerate(ids[:8]):
        values: dict[str, Any] = {"phone": f"+61 411 111 {index:03d}"}
        if index % 2:
            values["last_name"] = f"Edited{index}"
        if index in (1, 2, 3):
            values["groups"] = [] if index == 3 else ["VIP"]
        synced.edit_contact(contact_id, **values)
    for number in range(7):
        synced.add_contact(
            first_name=f"N{number}",
            last_name=f"New{number}",
            email=f"new{number}@example.org",
            phone=f"+61 422 222 {number:03d}",
            groups=["VIP"] if number % 2 else [],
        )
    synced.delete_contact(ids[10])
    synced.delete_contact(ids[11])
    automatic_sync_on(synced)
    push_now(synced)
    with synced.host.app.app_context():
        tick = jobs.tick(synced.state)
    assert tick.push_scheduled and not tick.pull_scheduled
    return host_truth(synced), {"base10@example.org", "base11@example.org"}


def zoho_changes(synced: Synced) -> Intent:
    """Edits, 210 new leads (two pages) and deletes in Zoho; the daily pull is due."""
    baseline(synced)
    leads = synced.leads()
    for index in range(8):
        fields: dict[str, Any] = {"Phone": f"+61 433 333 {index:03d}"}
        if index % 2:
            fields["Last_Name"] = f"ZohoEdit{index}"
        if index in (1, 2, 3):
            fields["VIP"] = index != 3
        synced.zoho.update_record("Leads", leads[f"base{index}@example.org"]["id"], fields)
    for number in range(210):
        synced.zoho.create_record(
            "Leads",
            {
                "First_Name": f"Z{number}",
                "Last_Name": f"Zoho{number}",
                "Email": f"zoho{number}@example.org",
                "Phone": f"+61 444 {number:06d}",
                "VIP": number % 2 == 1,
            },
        )
    for index in (10, 11):
        synced.zoho.delete_record("Leads", leads[f"base{index}@example.org"]["id"])
    automatic_sync_on(synced)
    with synced.host.app.app_context():
        tick = jobs.tick(synced.state, now=_pull_due)
    assert tick.pull_scheduled and not tick.push_scheduled
    return zoho_truth(synced), {"base10@example.org", "base11@example.org"}


def _pull_due() -> datetime:
    return datetime.now(timezone.utc) + timedelta(days=2)


def recover(synced: Synced) -> None:
    """What production does after a worker dies: the lock expires, cron ticks, a worker runs."""
    time.sleep(LOCK_SECONDS + 0.3)
    with synced.host.app.app_context():
        jobs.tick(synced.state, now=_pull_due)
    work_in_process(synced)


# -- the matrix -----------------------------------------------------------------------------


def kill_every_step(
    database_url: str,
    zoho_sandbox: SandboxHandle,
    redis_client: redis.Redis,
    tmp_path: Path,
    *,
    history: Callable[[Synced], Intent],
    category: str,
    **worker_settings: Any,
) -> list[ScenarioResult]:
    database = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    stride = 1 if database == "postgresql" else 3
    results: list[ScenarioResult] = []
    for kind in ("commit", "answer"):
        step = 1
        while True:
            assert step < 80, "the kill point ran away: a run should not take 80 steps"
            zoho_sandbox.reset()
            clear_queue_state(redis_client)
            synced = connect_synced(database_url, zoho_sandbox)
            try:
                expected, deleted = history(synced)
                code = run_worker(
                    synced,
                    tmp_path / f"{kind}-{step}.steps",
                    kill=f"{kind}:{step}",
                    **worker_settings,
                )
                killed = code == -9
                name = f"{database} {kind} {step}" if killed else f"{database} {kind} none"
                result = ScenarioResult(category=category, name=name)
                if killed:
                    recover(synced)
                found = audit(synced, expected=expected, deleted=deleted)
                found.into(result)
                left = pending_changes(synced)
                statuses = run_statuses(synced)
                problems = []
                if left:
                    problems.append(f"{left} changes still queued")
                if "running" in statuses:
                    problems.append("a run is left 'running'")
                if problems:
                    result.note = "; ".join([*problems, result.note]).strip("; ")
                result.survived = not (
                    problems or found.lost or found.duplicated or found.resurrected
                )
                results.append(result)
            finally:
                dispose_synced(synced)
            if not killed:
                break
            step += stride
    REPORT.results.extend(results)
    return results


@pytest.mark.parametrize(
    ("history", "category", "settings"),
    [
        pytest.param(host_changes, "worker killed mid-push", {"push_batch": 5}, id="push"),
        pytest.param(zoho_changes, "worker killed mid-pull", {}, id="pull"),
    ],
)
def test_a_worker_killed_at_any_step_loses_and_duplicates_nothing(
    database_url: str,
    zoho_sandbox: SandboxHandle,
    redis_client: redis.Redis,
    tmp_path: Path,
    history: Callable[[Synced], Intent],
    category: str,
    settings: dict[str, Any],
) -> None:
    results = kill_every_step(
        database_url,
        zoho_sandbox,
        redis_client,
        tmp_path,
        history=history,
        category=category,
        **settings,
    )
    failed = [f"{r.name}: {r.note}" for r in results if not r.survived]
    assert not failed, "\n".join(failed)
    kills = [r for r in results if not r.name.endswith("none")]
    assert len(kills) >= 4, f"only {len(kills)} kill points were reached: the switch is broken"
