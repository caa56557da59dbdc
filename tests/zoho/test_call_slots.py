"""The org's call slots, held in Redis across workers, against the sandbox's concurrency
limit: workers that share them meet no 429, a dead worker's slot comes back, and a Redis
that does not answer leaves each process its own limit (and says so once)."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis

from flask_zoho_sync.sandbox.handle import SandboxHandle
from flask_zoho_sync.sandbox.pytest_plugin import sandbox_client
from flask_zoho_sync.zoho.client import ZohoClient
from flask_zoho_sync.zoho.errors import ZohoRetryLater
from flask_zoho_sync.zoho.slots import CallSlots, RedisCallSlots, lease_for
from tests.conftest import TEST_REDIS_URL

#: Threads per worker and calls per thread: well past the limit of 3 at any moment.
THREADS = 4
CALLS = 8


@pytest.fixture
def sandbox(zoho_sandbox: SandboxHandle) -> Iterator[SandboxHandle]:
    """The sandbox allowing 3 calls at once, each taking 40 ms there so calls overlap, with
    its limits put back afterwards (a reset keeps them: they are the server's settings)."""
    stats = zoho_sandbox.stats()
    zoho_sandbox.faults(concurrency_limit=3, daily_credits=None, latency_ms=40)
    yield zoho_sandbox
    zoho_sandbox.faults(
        concurrency_limit=stats["concurrency_limit"],
        daily_credits=stats["credits_limit"],
        latency_ms=0,
    )


@pytest.fixture
def key() -> str:
    """A key of its own per test, so no other test's leases or fallback state are shared."""
    return f"zoho_sync:call-slots:test:{uuid.uuid4().hex}"


def worker_client(sandbox: SandboxHandle, slots: CallSlots | None) -> ZohoClient:
    """A client as one worker process builds it: its own tokens, session and slots object.
    Backoff is short and retries many, so a 429 costs a retry, not the call."""
    client = sandbox_client(
        sandbox,
        sleep=lambda seconds: time.sleep(min(seconds, 0.02)),
        max_retries=30,
    )
    client.org()  # the token is fetched now, not by every thread at once
    client.call_slots = slots
    return client


def hammer(clients: list[ZohoClient]) -> list[BaseException]:
    """Every client makes THREADS x CALLS calls from THREADS threads, all at once; the
    failures, if any."""
    failures: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(len(clients) * THREADS)

    def run(client: ZohoClient) -> None:
        start.wait()
        for _ in range(CALLS):
            try:
                client.org()
            except Exception as exc:
                with lock:
                    failures.append(exc)

    with ThreadPoolExecutor(len(clients) * THREADS) as pool:
        for future in [pool.submit(run, c) for c in clients for _ in range(THREADS)]:
            future.result()
    return failures


def slots_of(connection: redis.Redis, key: str, limit: int = 3, **options: Any) -> RedisCallSlots:
    """Slots as the app makes them (a lease of the HTTP timeout and a margin) unless the
    test gives its own ``lease_seconds``."""
    options.setdefault("lease_seconds", lease_for((5.0, 30.0)))
    return RedisCallSlots(connection, key, limit, **options)


def test_two_workers_sharing_the_orgs_slots_meet_no_429(
    sandbox: SandboxHandle, redis_client: redis.Redis, key: str
) -> None:
    # Two workers: each its own Redis connection, slots object, client and threads.
    workers = [
        worker_client(sandbox, slots_of(redis.Redis.from_url(TEST_REDIS_URL), key))
        for _ in range(2)
    ]
    before = sandbox.stats()["calls"].get("GET /org", 0)

    failures = hammer(workers)

    stats = sandbox.stats()
    assert failures == []
    assert stats["rejected"]["concurrency"] == 0
    assert "429" not in stats["status_codes"]
    assert stats["calls"]["GET /org"] - before == 2 * THREADS * CALLS
    assert stats["concurrency_peak"] == 3  # the slots were used, all of them
    assert redis_client.zcard(key) == 0  # every slot was given back


def test_without_slots_the_same_workers_run_into_zohos_limit(sandbox: SandboxHandle) -> None:
    """The control: the same load without shared slots goes past the org's limit, so the
    test above would see it if the slots did not hold."""
    workers = [worker_client(sandbox, None) for _ in range(2)]

    hammer(workers)

    stats = sandbox.stats()
    assert stats["rejected"]["concurrency"] > 0
    assert stats["status_codes"].get("429", 0) > 0


def test_a_dead_workers_slot_comes_back_when_its_lease_runs_out(
    sandbox: SandboxHandle, redis_client: redis.Redis, key: str
) -> None:
    impatient = worker_client(sandbox, slots_of(redis_client, key, 1, wait_seconds=0.2))
    patient = worker_client(sandbox, slots_of(redis_client, key, 1, wait_seconds=10.0))
    # A worker takes the only slot and is killed before it gives it back.
    dead = RedisCallSlots(redis_client, key, 1, lease_seconds=2.0)
    assert dead._try_acquire("the-killed-worker")
    killed_at = time.monotonic()
    assert redis_client.zcard(key) == 1

    # Meanwhile another worker's call waits, then gives up as "retry later", unsent.
    sent = sandbox.stats()["calls"]["GET /org"]
    with pytest.raises(ZohoRetryLater) as refused:
        impatient.org()
    assert refused.value.code == "CALL_SLOTS_BUSY"
    assert "ZOHO_SYNC_ORG_CONCURRENCY" in refused.value.advice
    assert sandbox.stats()["calls"]["GET /org"] == sent

    # A worker that waits as long as a lease gets the slot once the dead one's runs out.
    patient.org()
    assert time.monotonic() - killed_at > 1.5  # not before
    assert sandbox.stats()["calls"]["GET /org"] == sent + 1
    assert redis_client.zcard(key) == 0


def test_redis_down_leaves_each_process_its_own_limit_and_warns_once(
    sandbox: SandboxHandle, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox.faults(concurrency_limit=10)
    caplog.set_level(logging.WARNING, logger="flask_zoho_sync.zoho.slots")
    nowhere = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    # Two clients of one process (two syncs, or a sync and a page): one limit between them.
    workers = [
        worker_client(sandbox, slots_of(redis.Redis.from_url(nowhere), key, limit=2))
        for _ in range(2)
    ]

    failures = hammer(workers)

    stats = sandbox.stats()
    assert failures == []
    assert stats["rejected"]["concurrency"] == 0
    assert stats["concurrency_peak"] == 2
    warnings = [r for r in caplog.records if r.name == "flask_zoho_sync.zoho.slots"]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "in this process only" in warnings[0].getMessage()
