"""Redis and the database failing under the sync: at commit, at schedule time, mid-job.

Redis here is a server of the test's own (stopping the shared one would break other test
runs), and it keeps nothing on disk, so a restart loses every job and gate: only the
database's outbox remembers what is owed to Zoho, which is the design under test. The
database is PostgreSQL behind a proxy the test cuts, as a failover or network loss would.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis
from rq.registry import FailedJobRegistry, ScheduledJobRegistry

from flask_zoho_sync import jobs
from flask_zoho_sync.sandbox.handle import SandboxHandle
from tests.engine.conftest import Synced, connect_synced, dispose_synced
from tests.faults.process import (
    LOCK_SECONDS,
    CuttableProxy,
    PrivateRedis,
    audit,
    pending_changes,
    push_now,
    run_statuses,
    run_worker,
    use_redis,
    work_in_process,
)
from tests.faults.report import ScenarioResult
from tests.faults.test_worker_killed import (
    automatic_sync_on,
    baseline,
    host_changes,
    host_truth,
    recover,
    zoho_changes,
)

# Worker processes and lock lifetimes: kept on one xdist worker, one scenario at a time.
pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.xdist_group("fault-processes")]

DELETED = {"base10@example.org", "base11@example.org"}


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    yield server
    server.stop()


def settle(
    synced: Synced,
    result: ScenarioResult,
    expected: dict[str, Any],
    deleted: set[str] = DELETED,
) -> None:
    found = audit(synced, expected=expected, deleted=deleted)
    found.into(result)
    assert not found.differences, found.differences
    assert pending_changes(synced) == 0
    assert "running" not in run_statuses(synced)


@pytest.mark.fault_category("Redis down")
def test_a_commit_while_redis_is_stopped_reaches_zoho_after_it_restarts_empty(
    synced: Synced, private_redis: PrivateRedis, fault_scenario: ScenarioResult
) -> None:
    use_redis(synced, private_redis.url)
    ids = baseline(synced)
    automatic_sync_on(synced)
    push_now(synced)
    private_redis.stop()
    synced.edit_contact(ids[0], phone="+61 499 999 999")  # the host's commit must not fail
    synced.add_contact(last_name="Offline", email="offline@example.org", first_name="O")
    synced.delete_contact(ids[10])
    synced.delete_contact(ids[11])
    private_redis.start()  # empty: whatever the commit tried to schedule is gone
    with synced.host.app.app_context():
        report = jobs.tick(synced.state)
    assert report.push_scheduled
    work_in_process(synced)
    settle(synced, fault_scenario, host_truth(synced))
    assert synced.leads()["base0@example.org"]["Phone"] == "+61 499 999 999"


@pytest.mark.fault_category("Redis down")
def test_the_scheduler_calling_while_redis_is_stopped_gets_a_clear_answer_and_loses_nothing(
    synced: Synced, private_redis: PrivateRedis, fault_scenario: ScenarioResult
) -> None:
    use_redis(synced, private_redis.url)
    synced.host.app.config["ZOHO_SYNC_CRON_SECRET"] = "cron-secret"
    synced.state.config = replace(synced.state.config, cron_secret="cron-secret")
    ids = baseline(synced)
    synced.edit_contact(ids[1], last_name="Waited")
    automatic_sync_on(synced)
    push_now(synced)
    private_redis.stop()
    answer = synced.host.app.test_client().post(
        "/admin/zoho/cron", headers={"X-Zoho-Sync-Secret": "cron-secret"}
    )
    assert answer.status_code == 503
    assert "Redis did not answer" in answer.get_json()["error"]
    assert "nothing was lost" in answer.get_json()["error"]
    cli = synced.host.app.test_cli_runner().invoke(args=["zoho-sync", "tick"])
    assert cli.exit_code == 1
    assert "Redis did not answer" in cli.output and "Traceback" not in cli.output
    assert pending_changes(synced) > 0  # still owed to Zoho
    private_redis.start()
    answer = synced.host.app.test_client().post(
        "/admin/zoho/cron", headers={"X-Zoho-Sync-Secret": "cron-secret"}
    )
    assert answer.status_code == 200 and answer.get_json()["push_scheduled"]
    work_in_process(synced)
    settle(synced, fault_scenario, host_truth(synced), deleted=set())
    assert synced.leads()["base1@example.org"]["Last_Name"] == "Waited"


@pytest.mark.fault_category("Redis down")
def test_redis_stopping_in_the_middle_of_a_push_job_loses_nothing(
    synced: Synced,
    private_redis: PrivateRedis,
    fault_scenario: ScenarioResult,
    tmp_path: Path,
) -> None:
    use_redis(synced, private_redis.url)
    expected, deleted = host_changes(synced)
    synced.zoho.faults(latency_ms=250)  # a push of several batches takes a few seconds
    stopper = threading.Timer(1.5, private_redis.stop)
    stopper.start()
    # The worker finishes its run (Zoho and the database need no Redis), then cannot
    # report the job's result and exits with an error: that is the expected crash.
    run_worker(synced, tmp_path / "steps", push_batch=3, allowed_exits=(1,))
    stopper.join()
    synced.zoho.faults(clear=True)
    private_redis.start()
    time.sleep(LOCK_SECONDS)
    with synced.host.app.app_context():
        jobs.tick(synced.state)
    work_in_process(synced)
    settle(synced, fault_scenario, expected)
    assert deleted == DELETED


@pytest.mark.fault_category("two workers, one job")
def test_two_workers_given_the_same_job_run_it_once_at_a_time(
    synced: Synced, fault_scenario: ScenarioResult, tmp_path: Path
) -> None:
    expected, _ = host_changes(synced)  # one push job is scheduled
    upserts_before = synced.calls().get("POST /Leads/upsert", 0)
    with synced.host.app.app_context():
        # The same work asked for again (a retry, an impatient admin): two jobs, two workers.
        # Either may reach the lock first, so both carry production's retry policy.
        jobs.schedule_sync(synced.state, mode="outbox", trigger="auto")
    # Each call takes longer than the lock's whole lifetime: only the heartbeat keeps
    # the second worker out while the first is still sending.
    synced.zoho.faults(latency_ms=int(LOCK_SECONDS * 1000) + 200)
    outcomes: list[int] = []
    workers = [
        threading.Thread(
            target=lambda n=n: outcomes.append(
                run_worker(synced, tmp_path / f"steps-{n}", push_batch=4)
            )
        )
        for n in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    synced.zoho.faults(clear=True)
    assert outcomes == [0, 0]
    with synced.host.app.app_context():
        registry = ScheduledJobRegistry(queue=jobs.queue_for(synced.state))
        failed = FailedJobRegistry(queue=jobs.queue_for(synced.state))
        retried = registry.get_job_ids()
        failures = [
            jobs.queue_for(synced.state).fetch_job(job_id) for job_id in failed.get_job_ids()
        ]
        assert not failures, [job.latest_result().exc_string for job in failures if job]
    # The job that found the lock held waits for its retry; run it now instead of in 60 s.
    assert len(retried) == 1
    with synced.host.app.app_context():
        assert jobs.run_sync_job(mode="outbox", trigger="auto")["status"] == "succeeded"
    settle(synced, fault_scenario, expected)
    upserts = synced.calls().get("POST /Leads/upsert", 0) - upserts_before
    assert upserts == 2  # seven creates in batches of four, sent once


def _cut_when_asked(synced: Synced, pages_before: int, proxy: CuttableProxy) -> None:
    """Cut the database once the sandbox has seen the pull's first page request (or after
    a minute, so the test cannot hang on a worker that never pulls)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if synced.calls().get("GET /Leads", 0) > pages_before:
            break
        time.sleep(0.05)
    proxy.cut()


@pytest.mark.fault_category("database down")
def test_the_database_going_away_mid_pull_loses_nothing(
    postgres_url: str,
    zoho_sandbox: SandboxHandle,
    redis_client: redis.Redis,
    fault_scenario: ScenarioResult,
    tmp_path: Path,
) -> None:
    import sqlalchemy as sa

    synced = connect_synced(postgres_url, zoho_sandbox)
    url = sa.engine.make_url(postgres_url)
    proxy = CuttableProxy(url.host or "127.0.0.1", url.port or 5432)
    try:
        expected, _ = zoho_changes(synced)  # 210 new leads: the pull takes two pages
        synced.zoho.faults(latency_ms=400)
        # Cut once the pull has asked Zoho for its first page (the answer takes 400 ms), not
        # after a fixed delay: on a busy machine the worker may still be starting by then,
        # and a worker that finds no database at start-up refuses to run at all.
        pages_before = synced.calls().get("GET /Leads", 0)
        cutter = threading.Thread(
            target=_cut_when_asked, args=(synced, pages_before, proxy), daemon=True
        )
        cutter.start()
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        run_worker(synced, tmp_path / "steps", database_url=proxied)
        cutter.join()
        synced.zoho.faults(clear=True)
        proxy.restore()
        with synced.host.app.app_context():
            failed = FailedJobRegistry(queue=jobs.queue_for(synced.state)).get_job_ids()
            retrying = ScheduledJobRegistry(queue=jobs.queue_for(synced.state)).get_job_ids()
        assert failed or retrying, "the pull should have stopped when the database went away"
        recover(synced)
        settle(synced, fault_scenario, expected)
    finally:
        proxy.close()
        dispose_synced(synced)
