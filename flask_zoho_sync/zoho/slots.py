"""Zoho's concurrency limit per org, held across every process that calls it.

Zoho refuses a call past the org's limit of simultaneous calls with a 429 (reference §4.2,
§4.3: 5 on the Free edition, up to 25), and that limit is the org's, not one process's: two
RQ workers, or a worker and an admin page, each within its own ``ZOHO_SYNC_MAX_CONCURRENCY``
can together go past it and spend their time in 429 backoff. So every HTTP call to Zoho
first takes a *slot*: a lease in a Redis sorted set, one member per call in flight, scored by
the moment (Redis's own ``TIME``, so the workers' clocks do not matter) the lease runs out.

* Taking a slot is one Lua script: drop the leases that ran out, count the rest, add ours if
  there is room. A worker killed mid-call leaves its lease behind; it runs out after the
  HTTP timeout plus a margin, and the slot comes back without anyone cleaning up.
* A caller that finds no room polls again with jittered, growing pauses, and gives up with
  :class:`~.errors.ZohoRetryLater` after ``wait_seconds`` (the lease plus 30 s: by then any
  holder alive has finished or timed out), which the jobs already treat as "try later".
* When Redis does not answer, calls fall back to a limit of the same size per process (one
  warning per outage): the sync goes on, as it does for the token-refresh lock, and only the
  cross-process guarantee is lost until Redis is back.

The client sees only the :class:`CallSlots` protocol; Redis stays inside this module.
Requires Redis 5 or later (a script that writes after reading ``TIME``).
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Protocol

import redis

from .errors import ZohoRetryLater

__all__ = ["CallSlots", "LocalCallSlots", "RedisCallSlots", "RedisOutage", "lease_for"]

logger = logging.getLogger(__name__)

#: What a lease outlives the HTTP timeout by, and a waiter the lease by (the brief's margin:
#: a call's own bookkeeping, and a holder that finishes just as the waiter would give up).
LEASE_MARGIN_SECONDS = 30.0
WAIT_MARGIN_SECONDS = 30.0

#: How long a process keeps to its local limit after Redis failed before asking it again, so
#: a Redis that is down costs one refused connection every few seconds, not one per call.
REDIS_RETRY_SECONDS = 5.0

#: Polling pauses while the org's slots are all taken: short at first (a call ends every few
#: hundred milliseconds when the slots are busy), capped so a waiter notices a free slot soon.
_FIRST_PAUSE = 0.005
_MAX_PAUSE = 0.25

_ACQUIRE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
local lease = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + lease, ARGV[3])
if redis.call('PTTL', KEYS[1]) < lease then
  redis.call('PEXPIRE', KEYS[1], lease)
end
return 1
"""


class CallSlots(Protocol):
    """What the client needs of a concurrency limit: hold a slot for one HTTP call."""

    def hold(self) -> AbstractContextManager[None]:
        """Wait for a slot and keep it until the block ends; raise
        :class:`~.errors.ZohoRetryLater` if none came free in time."""
        ...


def lease_for(timeout: float | tuple[float, float]) -> float:
    """The lease for calls with this ``requests`` timeout: the longest a live call can take
    (connect plus read) and a margin, after which its holder is taken for dead."""
    total = sum(timeout) if isinstance(timeout, tuple) else timeout
    return float(total) + LEASE_MARGIN_SECONDS


def _no_slot(limit: int, waited: float, where: str) -> ZohoRetryLater:
    return ZohoRetryLater(
        f"All {limit} of the Zoho org's call slots stayed taken {where} for {waited:.0f}s",
        code="CALL_SLOTS_BUSY",
        advice=(
            "Other workers kept Zoho busy; the sync will retry later. If this keeps "
            "happening, raise ZOHO_SYNC_ORG_CONCURRENCY to your Zoho edition's limit."
        ),
    )


class LocalCallSlots:
    """A limit of simultaneous calls within this process (threads share it)."""

    def __init__(self, limit: int, *, wait_seconds: float) -> None:
        if limit < 1:
            raise ValueError("a call-slot limit must be at least 1")
        self.limit = limit
        self.wait_seconds = wait_seconds
        self._semaphore = threading.BoundedSemaphore(limit)

    def hold(self) -> AbstractContextManager[None]:
        return self.hold_for(self.wait_seconds)

    @contextmanager
    def hold_for(self, wait_seconds: float) -> Iterator[None]:
        """A slot, waiting at most ``wait_seconds`` for one."""
        if not self._semaphore.acquire(timeout=max(0.0, wait_seconds)):
            raise _no_slot(self.limit, wait_seconds, "in this process")
        try:
            yield
        finally:
            self._semaphore.release()


@dataclass
class RedisOutage:
    """Whether Redis failed a moment ago, so callers leave it alone for a few seconds (a
    refused connection costs redis-py's retries, seconds a call), and whether this outage
    has been reported yet, so it is logged once, not once a call."""

    down_until: float = 0.0
    warned: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def resting(self) -> bool:
        return time.monotonic() < self.down_until

    def failed(self) -> bool:
        """Rest from now; True when this is the outage's first failure (report it)."""
        with self.lock:
            self.down_until = time.monotonic() + REDIS_RETRY_SECONDS
            first, self.warned = not self.warned, True
        return first

    def answered(self) -> bool:
        """Redis answered; True when that ends a reported outage."""
        if not self.warned:
            return False
        with self.lock:
            was_down, self.warned = self.warned, False
        return was_down


@dataclass
class _Fallback:
    """One key's per-process stand-in while Redis is down, shared by every client of the
    process (the state builds a client per run, so the stand-in cannot live on one)."""

    slots: LocalCallSlots
    outage: RedisOutage = field(default_factory=RedisOutage)


_FALLBACKS: dict[tuple[str, int], _Fallback] = {}
_FALLBACKS_LOCK = threading.Lock()


def _fallback_for(key: str, limit: int, wait_seconds: float) -> _Fallback:
    with _FALLBACKS_LOCK:
        found = _FALLBACKS.get((key, limit))
        if found is None:
            found = _Fallback(LocalCallSlots(limit, wait_seconds=wait_seconds))
            _FALLBACKS[(key, limit)] = found
        return found


class RedisCallSlots:
    """The org's call slots in Redis (see the module docstring), with a per-process
    fallback while Redis does not answer."""

    def __init__(
        self,
        connection: redis.Redis,
        key: str,
        limit: int,
        *,
        lease_seconds: float,
        wait_seconds: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1:
            raise ValueError("a call-slot limit must be at least 1")
        if lease_seconds <= 0:
            raise ValueError("a call-slot lease must be positive")
        self.key = key
        self.limit = limit
        self.lease_seconds = lease_seconds
        self.wait_seconds = (
            lease_seconds + WAIT_MARGIN_SECONDS if wait_seconds is None else wait_seconds
        )
        self._connection = connection
        self._acquire = connection.register_script(_ACQUIRE)
        self._sleep = sleep
        self._clock = clock
        self._random = random.Random()
        self._fallback = _fallback_for(key, limit, self.wait_seconds)

    def hold(self) -> AbstractContextManager[None]:
        return self._hold()

    @contextmanager
    def _hold(self) -> Iterator[None]:
        token = uuid.uuid4().hex
        started = self._clock()
        pause = _FIRST_PAUSE
        while True:
            if not self._redis_resting() and self._try_acquire(token):
                break
            if self._redis_resting():  # Redis is down: this process's own limit
                remaining = self.wait_seconds - (self._clock() - started)
                with self._fallback.slots.hold_for(remaining):
                    yield
                return
            waited = self._clock() - started
            if waited >= self.wait_seconds:
                raise _no_slot(self.limit, waited, "across the workers")
            self._sleep(min(pause * self._jitter(), self.wait_seconds - waited))
            pause = min(pause * 2, _MAX_PAUSE)
        try:
            yield
        finally:
            self._release(token)

    def _try_acquire(self, token: str) -> bool:
        """One try at a slot in Redis; False when there is no room or Redis is down (then
        the fallback's ``down_until`` says which)."""
        try:
            taken = self._acquire(
                keys=[self.key], args=[self.limit, int(self.lease_seconds * 1000), token]
            )
        except (redis.RedisError, OSError) as exc:
            self._redis_failed(exc)
            return False
        self._redis_answered()
        return bool(taken)

    def _release(self, token: str) -> None:
        try:
            removed = self._connection.zrem(self.key, token)
        except (redis.RedisError, OSError) as exc:
            # The lease runs out by itself; until then the org has one slot fewer.
            logger.debug("Could not give back a Zoho call slot (%s); its lease will expire", exc)
            return
        if not removed:
            logger.warning(
                "A Zoho call outlasted its call-slot lease (%.0fs); other workers may have "
                "had more calls in flight than ZOHO_SYNC_ORG_CONCURRENCY meanwhile",
                self.lease_seconds,
            )

    def _redis_resting(self) -> bool:
        """True while Redis failed a moment ago and this process keeps to its own limit."""
        return self._fallback.outage.resting()

    def _redis_failed(self, exc: BaseException) -> None:
        if not self._fallback.outage.failed():
            return
        logger.warning(
            "Redis did not answer (%s: %s); Zoho calls are limited to %d at once in this "
            "process only, not across workers, until it does",
            type(exc).__name__,
            exc,
            self.limit,
        )

    def _redis_answered(self) -> None:
        if self._fallback.outage.answered():
            logger.info("Redis answers again; Zoho call slots are shared across workers")

    def _jitter(self) -> float:
        """Waiters that woke together would retry together; spread them."""
        return self._random.uniform(0.5, 1.0)
