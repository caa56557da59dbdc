"""Scheduling with the real Redis and a real RQ worker (SimpleSyncWorker, in-process)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from rq.registry import ScheduledJobRegistry

from flask_zoho_sync import jobs
from flask_zoho_sync.capture import mark_dirty
from flask_zoho_sync.ledger import pending_outbox_summary
from flask_zoho_sync.models import FieldMap, OutboxBatch, OutboxEntry
from flask_zoho_sync.preferences import get_settings
from flask_zoho_sync.workers import SimpleSyncWorker
from tests.engine.conftest import Synced


def work(synced: Synced) -> None:
    """Run every due job (the scheduler moves due scheduled jobs first)."""
    with synced.host.app.app_context():
        queue = jobs.queue_for(synced.state)
        worker = SimpleSyncWorker([queue], connection=synced.state.redis())
        worker.work(burst=True, with_scheduler=True)


def auto_sync(synced: Synced, on: bool = True, *, first_sync: bool = True) -> None:
    """Automatic sync on (or off), after the first manual sync an admin runs first."""
    if on and first_sync:
        synced.first_manual_sync()
    with synced.host.app.app_context():
        get_settings(synced.host.db.session).auto_sync = on
        synced.host.db.session.commit()


def jobs_queued(synced: Synced) -> list[str]:
    with synced.host.app.app_context():
        return list(jobs.queue_for(synced.state).job_ids)


def scheduled(synced: Synced) -> list[str]:
    with synced.host.app.app_context():
        return list(ScheduledJobRegistry(queue=jobs.queue_for(synced.state)).get_job_ids())


def test_many_schedule_requests_in_the_window_make_one_push_job(synced: Synced) -> None:
    with synced.host.app.app_context():
        first = jobs.schedule_push(synced.state)
        assert first is not None and first.startswith("zoho-sync-push-")
        assert all(jobs.schedule_push(synced.state) is None for _ in range(9))
    assert scheduled(synced) == [first]


def push_now(synced: Synced) -> None:
    """The push delay is ten minutes; these tests make it zero instead of waiting."""
    synced.state.config = replace(synced.state.config, push_delay=0)


def test_ten_edits_in_the_window_make_one_push_job_and_one_upsert(synced: Synced) -> None:
    auto_sync(synced)
    push_now(synced)
    ids = [synced.add_contact(last_name=f"P{i}", email=f"p{i}@example.org") for i in range(10)]
    assert len(scheduled(synced)) + len(jobs_queued(synced)) == 1
    work(synced)
    assert synced.calls().get("POST /Leads/upsert", 0) == 1
    assert {lead["Email"] for lead in synced.zoho.records("Leads")} == {
        f"p{i}@example.org" for i in range(10)
    }
    with synced.host.app.app_context():
        pending = synced.host.db.session.scalar(
            sa.select(sa.func.count())
            .select_from(OutboxEntry)
            .where(OutboxEntry.processed_at.is_(None))
        )
    assert pending == 0
    assert len(ids) == 10


def test_edits_while_automatic_sync_is_off_are_kept_and_sent_later(synced: Synced) -> None:
    push_now(synced)
    synced.add_contact(last_name="Kept", email="kept@example.org")
    assert scheduled(synced) == [] and jobs_queued(synced) == []
    auto_sync(synced)
    synced.state.preferences_changed()
    with synced.host.app.app_context():
        jobs.tick(synced.state)  # the outbox row is younger than the delay: pull only
    work(synced)
    assert [lead["Email"] for lead in synced.zoho.records("Leads")] == ["kept@example.org"]


def test_a_commit_while_redis_is_down_still_reaches_zoho_after_the_next_tick(
    synced: Synced,
) -> None:
    auto_sync(synced)
    push_now(synced)
    good_redis = synced.state.config.redis_url
    synced.state.config = replace(synced.state.config, redis_url="redis://127.0.0.1:1/0")
    synced.state._redis = None
    contact = synced.add_contact(last_name="Offline", email="offline@example.org")
    assert contact  # the host's commit succeeded although Redis did not answer
    synced.state.config = replace(synced.state.config, redis_url=good_redis)
    synced.state._redis = None
    with synced.host.app.app_context():
        report = jobs.tick(synced.state)
    assert report.outbox_pending == 1
    assert report.push_scheduled is not None
    work(synced)
    assert "offline@example.org" in synced.leads()


def test_the_debounced_push_sends_the_edits_alone_and_merges_a_zoho_edit_it_meets(
    synced: Synced,
) -> None:
    """Each push costs its re-reads and writes only: no pull reads back, every ten minutes,
    what the previous push wrote. A Zoho edit to a record it updates is merged, not
    overwritten; a Zoho edit elsewhere waits for the scheduled pull."""
    auto_sync(synced)
    push_now(synced)
    ids = [synced.add_contact(last_name=f"E{i}", email=f"e{i}@example.org") for i in range(3)]
    work(synced)  # their creation reaches Zoho
    before = dict(synced.calls())

    synced.edit_contact(ids[1], company="Bolt")
    work(synced)

    spent = {key: n - before.get(key, 0) for key, n in synced.calls().items()}
    assert {key: n for key, n in spent.items() if n} == {"GET /Leads": 1, "PUT /Leads": 1}
    assert synced.leads()["e1@example.org"]["Company"] == "Bolt"

    leads = synced.leads()
    synced.zoho.advance_clock(120)
    synced.zoho.update_record("Leads", leads["e0@example.org"]["id"], {"Phone": "+44 1"})
    synced.zoho.update_record("Leads", leads["e2@example.org"]["id"], {"Phone": "+44 3"})
    synced.edit_contact(ids[0], company="Acme")
    work(synced)

    leads = synced.leads()
    assert leads["e0@example.org"]["Company"] == "Acme"
    assert leads["e0@example.org"]["Phone"] == "+44 1"  # Zoho's edit kept and merged
    contacts = synced.contacts()
    assert contacts["e0@example.org"]["phone"] == "+44 1"  # merged into the host too
    assert contacts["e2@example.org"]["phone"] != "+44 3"  # left for the scheduled pull

    synced.sync(mode="since_last", trigger="schedule")
    assert synced.contacts()["e2@example.org"]["phone"] == "+44 3"


def test_an_old_batch_makes_the_tick_push_now_not_after_another_delay(synced: Synced) -> None:
    """The tick re-drives changes no push was scheduled for (Redis lost the push job)."""
    auto_sync(synced)
    synced.state.config = replace(synced.state.config, push_delay=600)
    ann = synced.add_contact(last_name="Lee", email="lee@example.org")
    with synced.host.app.app_context():
        session = synced.host.db.session
        session.execute(
            sa.update(OutboxBatch).values(
                created_at=datetime.now(timezone.utc) - timedelta(hours=1)
            )
        )
        session.commit()
    synced.add_contact(last_name="Ray", email="ray@example.org")
    with synced.host.app.app_context():
        mark_dirty(synced.host.db.session, [ann])  # Lee twice: counted once
        synced.host.db.session.commit()
    synced.state.redis().flushdb()  # as if Redis had lost the push scheduled at commit

    with synced.host.app.app_context():
        report = jobs.tick(synced.state)

    assert report.outbox_pending == 2
    assert report.push_scheduled is not None, report.message
    due = int(report.push_scheduled.rsplit("-", 1)[1])
    assert abs(due - datetime.now(timezone.utc).timestamp()) < 60  # now, not in ten minutes
    work(synced)
    assert {"lee@example.org", "ray@example.org"} <= set(synced.leads())


def test_tick_schedules_a_due_pull_once(synced: Synced) -> None:
    auto_sync(synced)
    with synced.host.app.app_context():  # the first sync's pull was two days ago
        settings = get_settings(synced.host.db.session)
        settings.last_pull_at = datetime.now(timezone.utc) - timedelta(days=2)
        synced.host.db.session.commit()
        first = jobs.tick(synced.state)
        second = jobs.tick(synced.state)
    assert first.pull_scheduled is not None
    assert second.pull_scheduled is None


def test_tick_waits_for_the_pull_interval(synced: Synced) -> None:
    auto_sync(synced)
    synced.sync(mode="all")
    with synced.host.app.app_context():
        report = jobs.tick(synced.state)
        assert report.pull_scheduled is None
        later = datetime.now(timezone.utc) + timedelta(days=1, minutes=1)
        assert jobs.tick(synced.state, now=lambda: later).pull_scheduled is not None


def test_a_second_sync_waits_while_one_runs(synced: Synced) -> None:
    with (
        synced.host.app.app_context(),
        jobs.run_lock(synced.state),
        pytest.raises(jobs.SyncBusy),
        jobs.run_lock(synced.state),
    ):
        pass


def test_tick_with_automatic_sync_off_schedules_nothing(synced: Synced) -> None:
    with synced.host.app.app_context():
        report = jobs.tick(synced.state)
    assert report.pull_scheduled is None
    assert "off" in report.message
    assert scheduled(synced) == []


def test_a_worker_outside_the_app_finds_it_through_flask_app(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``rq worker`` runs jobs with no app context: the job loads the app as flask does."""
    monkeypatch.setenv("FLASK_APP", "demo_app")
    monkeypatch.setenv("DEMO_INSTANCE_PATH", str(tmp_path))
    with jobs._app_context() as app:
        assert app.name == "demo_app"
        assert "zoho_sync" in app.extensions


def test_a_worker_without_flask_app_says_how_to_set_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLASK_APP", raising=False)
    monkeypatch.chdir("/")
    with pytest.raises(RuntimeError, match="set FLASK_APP"), jobs._app_context():
        pass


def test_a_run_a_dead_worker_left_running_is_closed_as_interrupted(synced: Synced) -> None:
    from flask_zoho_sync.models import Run

    auto_sync(synced)
    with synced.host.app.app_context():
        session = synced.host.db.session
        session.add(Run(kind="sync", mode="outbox", status="running", trigger="auto"))
        session.commit()
    with synced.host.app.app_context():
        assert jobs.run_sync_job(mode="outbox", trigger="auto")["status"] == "succeeded"
        runs = synced.host.db.session.scalars(
            sa.select(Run).where(Run.trigger == "auto").order_by(Run.id)
        ).all()
    assert [run.status for run in runs] == ["interrupted", "succeeded"]
    assert "worker stopped before this run finished" in runs[0].error
    assert runs[0].finished_at is not None


def test_the_run_lock_outlives_its_expiry_while_the_run_lives(
    synced: Synced, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    monkeypatch.setattr(jobs, "RUN_LOCK_SECONDS", 0.6)
    with synced.host.app.app_context(), jobs.run_lock(synced.state):
        time.sleep(1.5)  # two and a half lifetimes: only the heartbeat keeps it
        with pytest.raises(jobs.SyncBusy), jobs.run_lock(synced.state):
            pass
    with synced.host.app.app_context(), jobs.run_lock(synced.state):
        pass  # released at the end of the run


def test_sync_jobs_may_run_longer_than_rqs_three_minute_default(synced: Synced) -> None:
    """A first sync of a large contact base runs for many minutes; RQ would kill it at 180 s."""
    from rq.job import Job

    auto_sync(synced)
    with synced.host.app.app_context():
        ids = [
            jobs.schedule_push(synced.state),
            jobs.schedule_sync(synced.state),
            jobs.schedule_notified_pull(synced.state, ["1"]),
        ]
        timeouts = {Job.fetch(i, connection=synced.state.redis()).timeout for i in ids}
    assert timeouts == {jobs.SYNC_JOB_TIMEOUT}
    assert jobs.SYNC_JOB_TIMEOUT >= 3600


def test_a_plan_made_on_the_worker_comes_back_whole_and_writes_nothing(synced: Synced) -> None:
    """The plan travels back through RQ's stored result; on RQ 2.12 as on 3.x."""
    synced.add_contact(last_name="Host", email="host@example.org")
    synced.zoho.generate_records("Leads", 3)
    with synced.host.app.app_context():
        job_id = jobs.schedule_plan(synced.state, mode="all", plan_changes=2)
        waiting = jobs.plan_progress(synced.state, job_id)
    assert (waiting.status, waiting.mode, waiting.workers) == ("waiting", "all", 0)
    work(synced)
    with synced.host.app.app_context():
        done = jobs.plan_progress(synced.state, job_id)
    assert done.status == "done" and done.report is not None
    assert done.report.counts["to_host.create"] == 3
    assert done.report.counts["to_zoho.create"] == 1
    assert len(done.report.changes) == 2 and done.report.changes_not_kept == 2
    assert len(synced.contacts()) == 1 and len(synced.zoho.records("Leads")) == 3


def test_only_plan_jobs_are_shown_as_plans(synced: Synced) -> None:
    with synced.host.app.app_context():
        sync_job = jobs.schedule_sync(synced.state, mode="all")
        assert jobs.plan_progress(synced.state, sync_job).status == "gone"
        assert jobs.plan_progress(synced.state, "zoho-sync-plan-1").status == "gone"


def test_a_running_plan_shows_how_many_records_it_has_looked_at(synced: Synced) -> None:
    import threading

    synced.zoho.generate_records("Leads", 450)  # three pages
    with synced.host.app.app_context():
        job_id = jobs.schedule_plan(synced.state, mode="all", plan_changes=10)
    seen: list[jobs.PlanProgress] = []
    stop = threading.Event()

    def watch() -> None:
        with synced.host.app.app_context():
            while not stop.is_set():
                seen.append(jobs.plan_progress(synced.state, job_id))
                stop.wait(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    synced.zoho.faults(latency_ms=400)
    try:
        work(synced)  # RQ's worker wants the main thread; the page's polling is the thread
    finally:
        synced.zoho.faults(clear=True)
        stop.set()
        watcher.join()
    running = [progress for progress in seen if progress.status == "running"]
    assert running and running[0].workers == 1
    assert any(progress.records_done >= 200 for progress in running)
    with synced.host.app.app_context():
        done = jobs.plan_progress(synced.state, job_id)
    assert done.status == "done" and done.report is not None
    assert done.report.counts["to_host.create"] == 450


def test_a_plan_behind_a_busy_worker_says_what_it_waits_for(synced: Synced) -> None:
    from rq import Worker

    with synced.host.app.app_context():
        queue = jobs.queue_for(synced.state)
        job_id = jobs.schedule_plan(synced.state, mode="since_last", plan_changes=10)
        busy = Worker([queue], connection=synced.state.redis(), name="busy-with-a-sync")
        busy.register_birth()
        try:
            busy.set_state("idle")
            idle = jobs.plan_progress(synced.state, job_id)
            busy.set_state("busy")
            behind = jobs.plan_progress(synced.state, job_id)
        finally:
            busy.register_death()
    assert (idle.status, idle.workers, idle.workers_busy) == ("waiting", 1, False)
    assert (behind.status, behind.workers, behind.workers_busy) == ("waiting", 1, True)


def _pending_outbox(synced: Synced) -> int:
    """Contacts waiting to be pushed, as the overview and ``status`` count them."""
    with synced.host.app.app_context():
        return int(pending_outbox_summary(synced.host.db.session).contacts or 0)


def test_automatic_sync_writes_nothing_before_the_first_manual_sync_then_sends_it(
    synced: Synced,
) -> None:
    push_now(synced)
    auto_sync(synced, first_sync=False)
    synced.zoho.create_record("Leads", {"Last_Name": "Zed", "Email": "zed@example.org"})
    synced.add_contact(last_name="Early", email="early@example.org")
    work(synced)  # the debounced push job runs, and refuses
    with synced.host.app.app_context():
        tick = jobs.tick(synced.state)
    assert "first sync is run by hand" in (tick.message or "")
    assert tick.pull_scheduled is None and tick.push_scheduled is None
    work(synced)
    assert synced.zoho.records("Leads")[0]["Email"] == "zed@example.org"
    assert len(synced.zoho.records("Leads")) == 1  # the early contact stays captured
    assert set(synced.contacts()) == {"early@example.org"}  # nor is Zed pulled
    assert _pending_outbox(synced) >= 1
    synced.first_manual_sync()
    assert {lead["Email"] for lead in synced.zoho.records("Leads")} == {
        "zed@example.org",
        "early@example.org",
    }
    assert _pending_outbox(synced) == 0
    synced.add_contact(last_name="Later", email="later@example.org")
    work(synced)  # after the first sync, automatic sync sends by itself
    assert "later@example.org" in {lead["Email"] for lead in synced.zoho.records("Leads")}


@pytest.mark.parametrize("trigger", ["auto", "schedule", "notify", "admin"])
def test_every_trigger_refuses_while_only_email_is_mapped(synced: Synced, trigger: str) -> None:
    synced.first_manual_sync()
    auto_sync(synced, first_sync=False)
    record = synced.zoho.create_record("Leads", {"Last_Name": "Zed", "Email": "zed@example.org"})
    synced.add_contact(last_name="Host", email="host@example.org")
    with synced.host.app.app_context():
        session = synced.host.db.session
        session.execute(sa.delete(FieldMap).where(FieldMap.host_key != "email"))
        session.commit()
        if trigger == "notify":
            synced.state.redis().sadd(jobs._key(synced.state, "notified-ids"), str(record["id"]))
            outcome = jobs.run_notified_pull_job()
        else:
            outcome = jobs.run_sync_job(mode="since_last", trigger=trigger)
        tick = jobs.tick(synced.state)
    assert outcome["status"] == "skipped"
    assert "no field beyond email is mapped" in outcome["message"]
    assert "no field beyond email is mapped" in (tick.message or "")
    assert len(synced.zoho.records("Leads")) == 1
    assert "zed@example.org" not in synced.contacts()
