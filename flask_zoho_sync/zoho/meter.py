"""Counting what the sync spends of Zoho's API budget.

Credits are Zoho's scarce resource (a rolling 24-hour budget per org, reference §4.1), so
every HTTP call the client makes, OAuth included, passes through a :class:`UsageMeter`. The
extension drains the meter into its usage table; the listener hook lets it persist calls as
they happen, e.g. from a long-running worker. Prices come from :mod:`.credits`, the same
table the sandbox charges, so the two agree in tests.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .credits import endpoint_key, estimate_credits
from .timefmt import utc_now

logger = logging.getLogger(__name__)

CREDITS_REMAINING_HEADER = "X-API-CREDITS-REMAINING"


@dataclass(frozen=True)
class CallRecord:
    """One HTTP call to Zoho as the meter saw it."""

    endpoint: str  # e.g. "POST /Leads/upsert", see credits.endpoint_key
    method: str
    status: int | None  # None when no HTTP answer arrived (connection error, timeout)
    credits: int
    records: int
    duration_s: float
    at: datetime  # aware UTC, when the call finished
    credits_remaining: int | None = None


CallListener = Callable[[CallRecord], None]


class UsageMeter:
    """Thread-safe tally of calls and estimated credits per endpoint."""

    def __init__(self, listener: CallListener | None = None) -> None:
        self.listener = listener
        self._lock = threading.Lock()
        self._calls: Counter[str] = Counter()
        self._credits: Counter[str] = Counter()
        self._credits_remaining: int | None = None

    def record(
        self,
        method: str,
        path: str,
        *,
        status: int | None,
        records: int = 0,
        duration_s: float = 0.0,
        credits_remaining: int | None = None,
    ) -> CallRecord:
        """Count one call. ``path`` is the URL path (``/crm/v8/Leads``, ``/oauth/v2/token``).

        Zoho charges only calls it accepted and processed, so calls without an answer, 401s
        and 429s/5xx are counted but cost nothing (the sandbox's ledger does the same).
        """
        key = endpoint_key(method, path)
        charged = status is not None and status < 429 and status != 401
        credits = estimate_credits(method, path, records) if charged else 0
        call = CallRecord(
            endpoint=key,
            method=method.upper(),
            status=status,
            credits=credits,
            records=records,
            duration_s=duration_s,
            at=utc_now(),
            credits_remaining=credits_remaining,
        )
        with self._lock:
            self._calls[key] += 1
            self._credits[key] += credits
            if credits_remaining is not None:
                self._credits_remaining = credits_remaining
        if self.listener is not None:
            try:
                self.listener(call)
            except Exception:  # a broken usage sink must not fail the sync itself
                logger.warning("Usage listener failed for %s", key, exc_info=True)
        return call

    @property
    def credits_remaining(self) -> int | None:
        """The last ``X-API-CREDITS-REMAINING`` Zoho sent (only sent past 50% usage)."""
        with self._lock:
            return self._credits_remaining

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "calls": dict(self._calls),
                "credits": dict(self._credits),
                "total_calls": sum(self._calls.values()),
                "total_credits": sum(self._credits.values()),
                "credits_remaining": self._credits_remaining,
            }

    def reset(self) -> None:
        """Forget the counts (after they were persisted); keeps the last remaining-credits
        reading, which describes Zoho's state rather than ours."""
        with self._lock:
            self._calls.clear()
            self._credits.clear()


def parse_credits_remaining(headers: Any) -> int | None:
    """Read ``X-API-CREDITS-REMAINING`` from response headers, if present and numeric."""
    value = headers.get(CREDITS_REMAINING_HEADER) if headers is not None else None
    try:
        return int(str(value).strip()) if value is not None else None
    except ValueError:
        return None
