"""Several Zoho calls in flight at once, never more than the configured cap.

Zoho limits how many calls an app may have open at the same time (reference §4.2: 5 on the
Free edition, and 10 "heavy" calls such as 100-record writes on any edition), and answers
429 beyond that. Latency, not Zoho's work, dominates a large push, so a few calls in
parallel make it several times faster; more than the org allows only buys 429s.

Only the HTTP goes to the worker threads. Every outcome is handed back to the calling
thread, in the order the calls were submitted, because applying it means writing the
ledger and the host through one SQLAlchemy session, and sessions are not thread-safe.
"""

from __future__ import annotations

import contextvars
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)

Settle = Callable[[Any], None]


class InFlight:
    """Runs calls on at most ``limit`` threads and settles their results in order.

    The executor's thread count is the cap: a call waits in its queue until a thread is
    free, so no more than ``limit`` are ever in progress. Up to ``limit`` more wait queued,
    ready to go the moment a thread frees up, so a slow call does not leave the others
    idle while the caller is busy settling; beyond that, :meth:`submit` blocks, which keeps
    memory at a few batches however large the run. Even with ``limit`` 1 the call runs on a
    thread, so the caller prepares the next batch while one is in flight (a latency-bound
    push then costs the calls' time, not the calls' time plus the caller's). With
    ``threaded=False`` each call runs and settles inline, as a plain loop would.
    """

    def __init__(self, limit: int, *, name: str = "zoho-sync-call", threaded: bool = True) -> None:
        if limit < 1:
            raise ValueError(f"the concurrency limit must be at least 1, got {limit}")
        self.limit = limit
        self._executor = (
            ThreadPoolExecutor(max_workers=limit, thread_name_prefix=name) if threaded else None
        )
        self._pending: deque[tuple[Future[Any], Settle]] = deque()

    def submit(self, call: Callable[[], Any], settle: Settle) -> None:
        """Start ``call``; ``settle(result)`` runs later in this thread, in submission order.

        If an earlier call failed (or its settling did), the calls still in flight are
        waited for and their successes settled, so work Zoho has done is recorded, and
        then the first failure is raised here.
        """
        if self._executor is None:
            settle(call())
            return
        try:
            self._settle_done()
            while len(self._pending) >= 2 * self.limit:
                self._settle_oldest()
        except BaseException:
            self._settle_rest()
            raise
        # In the caller's context (its tenant): the call may refresh the caller's token.
        context = contextvars.copy_context()
        self._pending.append((self._executor.submit(context.run, call), settle))

    def drain(self) -> None:
        """Wait for every call and settle it; raise the first failure after settling the rest."""
        try:
            while self._pending:
                self._settle_oldest()
        except BaseException:
            self._settle_rest()
            raise

    def close(self) -> None:
        """Stop the threads, first waiting for calls still running (their results, if not
        settled by :meth:`drain`, are dropped: the changes stay in the outbox and are sent
        again, which upserts and updates by id make harmless)."""
        self._pending.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    def __enter__(self) -> InFlight:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------

    def _settle_done(self) -> None:
        while self._pending and self._pending[0][0].done():
            self._settle_oldest()

    def _settle_oldest(self) -> None:
        future, settle = self._pending.popleft()
        settle(future.result())

    def _settle_rest(self) -> None:
        """After a failure: settle what succeeded, log (not raise) further failures."""
        while self._pending:
            try:
                self._settle_oldest()
            except Exception as exc:  # the first failure is the one the caller sees
                log.warning("A Zoho call in flight alongside a failed one also failed: %s", exc)
