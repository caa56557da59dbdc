"""The worker stops promptly: Ctrl-C, a deploy's SIGTERM and every burst run end in seconds.

RQ's own classes can hang for a minute there (flask_zoho_sync/workers.py says why); these
tests stage the race they lose, deterministically, on the real Redis.
"""

from __future__ import annotations

import threading
import time

import pytest
import redis
import sqlalchemy as sa
from flask import current_app
from rq import Queue, SimpleWorker
from rq.worker.base import BaseWorker

from flask_zoho_sync.workers import SimpleSyncWorker, SyncWorker
from tests.hostapp import make_host_app
from tests.tables import release_tables

pytestmark = pytest.mark.redis


def _lose_the_race(worker: BaseWorker) -> None:
    """Subscribe, send UNSUBSCRIBE as RQ's ``unsubscribe`` does, and let the pub/sub thread
    read the reply while it still runs: the race RQ's stop can lose."""
    worker.subscribe()
    worker.pubsub.unsubscribe()
    deadline = time.monotonic() + 5
    while worker.pubsub.subscribed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not worker.pubsub.subscribed, "the pub/sub thread never read the UNSUBSCRIBE reply"
    time.sleep(0.3)  # and has gone round to wait for a subscription, as it does in the race


def _stop_in_background(worker: BaseWorker) -> threading.Thread:
    """What RQ's ``unsubscribe`` does once its UNSUBSCRIBE is sent: stop the thread, join it."""
    stopping = threading.Thread(target=worker.pubsub_thread.stop, daemon=True)
    stopping.start()
    return stopping


@pytest.mark.parametrize("worker_class", [SyncWorker, SimpleSyncWorker])
def test_the_sync_workers_stop_within_seconds_after_the_race(
    redis_client: redis.Redis, worker_class: type[BaseWorker]
) -> None:
    worker = worker_class([Queue("prompt-stop", connection=redis_client)], connection=redis_client)
    _lose_the_race(worker)
    started = time.monotonic()
    _stop_in_background(worker).join(timeout=10)
    assert time.monotonic() - started < 3


def test_rqs_own_worker_hangs_after_the_same_race(redis_client: redis.Redis) -> None:
    """The control: without our class the stop is still waiting after 3 s (it waits 60)."""
    worker = SimpleWorker([Queue("hangs", connection=redis_client)], connection=redis_client)
    _lose_the_race(worker)
    stopping = _stop_in_background(worker)
    stopping.join(timeout=3)
    assert stopping.is_alive()


def test_a_burst_run_of_the_sync_worker_does_its_job(redis_client: redis.Redis) -> None:
    queue = Queue("burst", connection=redis_client)
    job = queue.enqueue(sum, [1, 2, 3])
    SimpleSyncWorker([queue], connection=redis_client).work(burst=True, with_scheduler=True)
    job.refresh()
    assert job.return_value() == 6


def run_a_statement_psycopg_prepares() -> int:
    """A job's database work: one query run often enough that psycopg prepares it on the
    server (after 5 runs); the answer is the server session that ran it."""
    session = current_app.extensions["sqlalchemy"].session
    for n in range(8):
        session.execute(sa.text("SELECT CAST(:n AS integer) + 1"), {"n": n}).scalar_one()
    backend = int(session.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())
    session.commit()
    return backend


@pytest.mark.postgres
def test_jobs_of_the_forking_worker_each_use_a_database_session_of_their_own(
    postgres_url: str, redis_client: redis.Redis
) -> None:
    """``flask zoho-sync worker`` checks the tables before it forks, which leaves a pooled
    connection in the worker; a job that used that connection shared the server session
    with the next job, whose statements then collided with the first one's prepared
    statements (``DuplicatePreparedStatement``: every second sync failed on PostgreSQL)."""
    host = make_host_app(postgres_url)
    queue = Queue("forking", connection=redis_client)
    try:
        with host.app.app_context():
            with host.db.engine.connect() as connection:  # as the worker's table check does
                worker_session = connection.scalar(sa.text("SELECT pg_backend_pid()"))
            jobs = [queue.enqueue(run_a_statement_psycopg_prepares) for _ in range(3)]
            SyncWorker([queue], connection=redis_client).work(burst=True)
        for job in jobs:
            job.refresh()
            assert job.get_status() == "finished", (job.latest_result().exc_string or "")[-500:]
        assert worker_session not in {job.return_value() for job in jobs}
    finally:
        with host.app.app_context():
            release_tables(host.db)
