"""What the runs going on now have spent on one Zoho org, held in Redis for every worker.

A run's credits reach the database (``Run.credits``) when it ends, and a run reads the
database once, when it starts, to learn what the org spent in the last 24 hours. Two runs
going at once on one org (two sites of a platform connected to the same CRM, each on its own
worker) would therefore not see each other's spending, and together could cross the org's
``ZOHO_SYNC_DAILY_CREDIT_BUDGET`` by what both spend meanwhile. So each run also keeps its
running total in a Redis hash of the org, one field per run, and the budget adds the other
fields to every check (``credits.CreditBudget``).

* A run's field is removed when the run has ended and its credits are in the database
  (``release``); until then the two counts overlap, which can only stop a run early.
* A worker killed mid-run leaves its field behind; the hash expires ``ttl`` seconds after
  the last credit any run on the org added, so a stale field overcounts for at most that
  long, and only while no run spends. Fields are also dropped once older than the ttl.
* When Redis does not answer, the other runs count as nothing (one warning per outage): the
  run goes on under the database's figure, as before this module existed, and Redis is
  left alone for ``slots.REDIS_RETRY_SECONDS`` (a refused connection costs redis-py's retries,
  seconds, which every Zoho call would otherwise wait).
"""

from __future__ import annotations

import logging
import time
import uuid

import redis

from .slots import RedisOutage

log = logging.getLogger(__name__)

__all__ = ["RedisRunningCredits"]

#: A run's field outlives its last credit by this long (a run that spends nothing for an
#: hour is not running any more: even a bulk job's wait polls Zoho every few seconds).
DEFAULT_TTL_SECONDS = 3600


class RedisRunningCredits:
    """One run's running total in the org's hash, and the sum of the other runs' totals.

    Fields are ``"<run>"`` -> credits and ``"<run>:at"`` -> when that run last added, in
    Redis's clock seconds, so that a dead run's total can be told apart and dropped.
    """

    def __init__(
        self,
        connection: redis.Redis,
        key: str,
        *,
        run: str | None = None,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
    ) -> None:
        self.key = key
        self.run = run or uuid.uuid4().hex
        self.ttl_seconds = ttl_seconds
        self._connection = connection
        self._outage = RedisOutage()

    def add(self, credits: int) -> None:
        """Count ``credits`` more for this run."""
        if credits <= 0 or self._resting():
            return
        try:
            with self._connection.pipeline() as pipe:
                pipe.hincrby(self.key, self.run, credits)
                pipe.hset(self.key, f"{self.run}:at", int(time.time()))
                pipe.expire(self.key, self.ttl_seconds)
                pipe.execute()
        except (redis.RedisError, OSError) as exc:
            self._unavailable(exc)

    def of_others(self) -> int:
        """What the other runs on this org going on now have spent (0 without Redis)."""
        if self._resting():
            return 0
        try:
            fields = self._connection.hgetall(self.key)
        except (redis.RedisError, OSError) as exc:
            self._unavailable(exc)
            return 0
        now = time.time()
        total = 0
        for name, value in fields.items():
            run = name.decode() if isinstance(name, bytes) else str(name)
            if run == self.run or run.endswith(":at"):
                continue
            last = fields.get(f"{run}:at".encode(), b"0")
            try:
                if now - float(last) > self.ttl_seconds:
                    continue  # a run that died without releasing its field
                total += int(value)
            except (TypeError, ValueError):
                continue  # a field someone else wrote: not a run's total
        return total

    def release(self) -> None:
        """Drop this run's field: its credits are in the database now."""
        try:  # tried even after an outage: once a run, and a field left behind overcounts
            self._connection.hdel(self.key, self.run, f"{self.run}:at")
        except (redis.RedisError, OSError) as exc:
            self._unavailable(exc)

    def _resting(self) -> bool:
        return self._outage.resting()

    def _unavailable(self, exc: Exception) -> None:
        if not self._outage.failed():
            return
        log.warning(
            "Redis did not answer for the org's running credits (%s): other runs going on "
            "now are not counted against the daily budget until it does.",
            exc,
        )
