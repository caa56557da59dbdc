"""Scheduling with the real Redis and a real RQ worker (SimpleWorker, in-process)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from rq import SimpleWorker
from rq.registry import ScheduledJobRegistry

from flask_zoho_sync import jobs
from flask_zoho_sync.models import OutboxEntry
from flask_zoho_sync.preferences import get_settings
from tests.engine.conftest import Synced


def work(synced: Synced) -> None:
    """Run every due job (the scheduler moves due scheduled jobs first)."""
    with synced.host.app.app_context():
        queue = jobs.queue_for(synced.state)
        SimpleWorker([queue], connection=synced.state.redis()).work(burst=True, with_scheduler=True)


def auto_sync(synced: Synced, on: bool = True) -> None:
    with synced.host.app.app_context():
        get_settings(synced.host.db.session).auto_sync = on
        synced.host.db.session.commit()


def scheduled(synced: Synced) -> list[str]:
    with synced.host.app.app_context():
        return list(ScheduledJobRegistry(queue=jobs.queue_for(synced.state)).get_job_ids())


def test_many_schedule_requests_in_the_window_make_one_push_job(synced: Synced) -> None:
    with synced.host.app.app_context():
        first = jobs.schedule_push(synced.state)
        assert first is not None and first.startswith("zoho-sync-push-")
        assert all(jobs.schedule_push(synced.state) is None for _ in range(9))
    assert scheduled(synced) == [first]


def test_the_push_job_sends_outbox_rows_in_one_upsert(synced: Synced) -> None:
    auto_sync(synced)
    synced.sync(mode="all")
    ids = [synced.add_contact(last_name=f"P{i}", email=f"p{i}@example.org") for i in range(10)]
    with synced.host.app.app_context():
        session = synced.host.db.session
        session.add_all(OutboxEntry(contact_id=str(i), operation="upsert") for i in ids)
        session.commit()
        jobs.schedule_push(synced.state, delay=0)
    before = synced.calls().get("POST /Leads/upsert", 0)
    work(synced)
    assert synced.calls().get("POST /Leads/upsert", 0) - before == 1
    assert len(synced.zoho.records("Leads")) == 10
    with synced.host.app.app_context():
        pending = synced.host.db.session.scalar(
            sa.select(sa.func.count())
            .select_from(OutboxEntry)
            .where(OutboxEntry.processed_at.is_(None))
        )
    assert pending == 0


def test_a_job_finds_automatic_sync_off_and_leaves_the_outbox(synced: Synced) -> None:
    contact = synced.add_contact(last_name="Kept", email="kept@example.org")
    with synced.host.app.app_context():
        synced.host.db.session.add(OutboxEntry(contact_id=str(contact), operation="upsert"))
        synced.host.db.session.commit()
        jobs.schedule_push(synced.state, delay=0)
    work(synced)
    assert synced.zoho.records("Leads") == []
    auto_sync(synced)
    with synced.host.app.app_context():
        jobs.schedule_push(synced.state, delay=0)
    work(synced)
    assert [lead["Email"] for lead in synced.zoho.records("Leads")] == ["kept@example.org"]


def test_tick_schedules_a_due_pull_once(synced: Synced) -> None:
    auto_sync(synced)
    with synced.host.app.app_context():
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


def test_tick_redrives_an_outbox_that_redis_never_heard_of(synced: Synced) -> None:
    """A commit while Redis was down leaves a row and no job: the tick finds it."""
    auto_sync(synced)
    synced.sync(mode="all")
    contact = synced.add_contact(last_name="Late", email="late@example.org")
    with synced.host.app.app_context():
        session = synced.host.db.session
        session.add(
            OutboxEntry(
                contact_id=str(contact),
                operation="upsert",
                created_at=datetime.now(timezone.utc) - timedelta(hours=1),
            )
        )
        session.commit()
        report = jobs.tick(synced.state)
    assert report.outbox_redriven == 1
    assert report.push_scheduled is not None
    work(synced)
    assert "late@example.org" in synced.leads()


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
