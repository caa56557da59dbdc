"""How Zoho prices a call, shared by the client's meter and the sandbox's ledger.

Zoho rations API credits per rolling 24 hours (reference §4.1). The client estimates what
each call cost so the admin pages and benchmarks can show it; the sandbox charges the same
table so that the two agree when tests compare them. Keeping one table in one place means a
pricing change is one edit.
"""

from __future__ import annotations

import math
import re
import threading
from datetime import datetime
from typing import Protocol

from .errors import ZohoBudgetExhausted

#: Paths are normalised to a template so per-module and per-id calls aggregate sensibly.
_ID_SEGMENT = re.compile(r"/\d{6,}(?=/|$)")
_VERSION_PREFIX = re.compile(r"^/crm/(bulk/)?v\d+")

#: Calls whose price depends on how many records they carry (3rd-party summary of the
#: v8 limits page: one credit per ten records, at least one).
_PER_TEN_RECORDS = ("POST /{module}", "PUT /{module}", "POST /{module}/upsert")

#: Calls with a fixed price other than one credit.
_FIXED_PRICES = {
    "POST /{module}/{id}/actions/convert": 5,
    "POST /bulk/write": 500,
}

_MODULE_SEGMENT = re.compile(r"^/(Leads|Contacts|[A-Z][A-Za-z0-9_]*)(?=/|$)")


def endpoint_key(method: str, path: str) -> str:
    """Name a call the way the meter and the sandbox's stats both report it.

    ``("GET", "/crm/v8/Leads/5725767000000524157")`` becomes ``"GET /Leads/{id}"``;
    ``("POST", "/crm/v8/Contacts/upsert")`` becomes ``"POST /Contacts/upsert"``;
    ``("POST", "/oauth/v2/token")`` stays as it is.
    """
    path = path.split("?", 1)[0].rstrip("/") or "/"
    # Bulk calls keep their ``/bulk`` so that a 500-credit write job is told apart from a
    # one-credit call: ``/crm/bulk/v8/write`` -> ``/bulk/write``.
    path = _VERSION_PREFIX.sub(lambda match: "/bulk" if match.group(1) else "", path)
    path = _ID_SEGMENT.sub("/{id}", path)
    return f"{method.upper()} {path}"


def _template(key: str) -> str:
    method, _, path = key.partition(" ")
    if path.startswith(("/settings", "/org", "/users", "/actions", "/bulk", "/oauth", "/coql")):
        return key
    return f"{method} {_MODULE_SEGMENT.sub('/{module}', path)}"


#: COQL is priced by the query's LIMIT (Zoho's COQL overview): up to 200 records 1 credit,
#: up to 1,000 2, up to 2,000 3.
_COQL_STEPS = ((200, 1), (1000, 2))
_COQL_TOP_PRICE = 3


def estimate_credits(method: str, path: str, record_count: int = 0) -> int:
    """Credits one call costs; OAuth calls cost none (they are not CRM API calls).
    For ``POST /coql`` ``record_count`` is the query's LIMIT (0: Zoho's default, 200)."""
    key = endpoint_key(method, path)
    if key.split(" ", 1)[1].startswith("/oauth"):
        return 0
    template = _template(key)
    if template == "POST /coql":
        limit = record_count or 200
        return next((price for top, price in _COQL_STEPS if limit <= top), _COQL_TOP_PRICE)
    if template in _FIXED_PRICES:
        return _FIXED_PRICES[template]
    if template in _PER_TEN_RECORDS:
        return max(1, math.ceil(record_count / 10))
    return 1


class RunningCredits(Protocol):
    """What other runs on the same org, going on now, have spent (``zoho.running_credits``):
    their credits reach the database only when they end."""

    def add(self, credits: int) -> None: ...

    def of_others(self) -> int: ...


class CreditBudget:
    """Lines the sync does not cross in Zoho's daily credits, checked before every call.

    Zoho's limit is shared by every integration of the org (the sales team's phone system,
    their mail plug-in); a first sync of a large contact base could spend all of it and
    stop those for the day. Two lines guard against that, each checked *before* a call with
    that call's price, so a run never crosses one, not even by one batch:

    * ``limit``: a ceiling of the host's own on what the sync spends in any 24 hours.
    * ``keep_for_others``: credits left to the rest of the org. Zoho tells how many the
      whole org has left (``X-API-CREDITS-REMAINING``, once half the day's credits are
      used; reference §4.1); the sync stops short of spending the last ones.

    :param limit: credits the sync may spend in any 24 hours (None: no ceiling of its own).
    :param spent: credits already spent in the current 24 hours against ``limit``.
    :param frees_at: when the oldest of those credits leave the window (None: unknown).
    :param keep_for_others: credits of the org's that the sync never spends (0: none).
    :param spent_by_others: the part of ``spent`` that other syncs of the host on the same
        org spent (another site's): the limit is the org's, so it counts, and a refusal
        names it so an admin is not left wondering where credits they never used went.
    :param running: the org's runs going on now, whose credits ``spent`` cannot hold yet;
        each check adds what they spent, and each call priced here is added for them.
    """

    def __init__(
        self,
        limit: int | None,
        spent: int = 0,
        frees_at: datetime | None = None,
        *,
        keep_for_others: int = 0,
        spent_by_others: int = 0,
        running: RunningCredits | None = None,
    ) -> None:
        if limit is not None and limit <= 0:
            raise ValueError("a credit budget needs a positive limit (or None for none)")
        if keep_for_others < 0:
            raise ValueError("keep_for_others cannot be negative")
        self.limit = limit
        self.spent = spent
        self.frees_at = frees_at
        self.keep_for_others = keep_for_others
        self.spent_by_others = spent_by_others
        self.running = running
        #: What Zoho last said the whole org has left today (None: it has not said).
        self.org_remaining: int | None = None
        self._lock = threading.Lock()

    @property
    def remaining(self) -> int | None:
        """What the sync's own ceiling still allows (None: no ceiling)."""
        return None if self.limit is None else max(0, self.limit - self.spent)

    def zoho_reports(self, org_remaining: int) -> None:
        """Zoho's ``X-API-CREDITS-REMAINING`` on an answer: the org's credits left.

        The lower of Zoho's figure and the running count is kept: with calls in parallel
        an answer can predate calls already sent and priced, and believing it would let the
        sync spend past the line by those calls.
        """
        with self._lock:
            if self.org_remaining is None or org_remaining < self.org_remaining:
                self.org_remaining = org_remaining

    def require(self, credits: int, purpose: str, endpoint: str) -> None:
        """Refuse, before its first call, work that needs ``credits`` to finish: a Bulk
        Write job's upload is wasted if the job itself then does not fit."""
        with self._lock:
            self._check(credits, endpoint, f"{purpose} needs {credits}")

    def reserve(self, method: str, path: str, record_count: int = 0) -> None:
        """Count one call against the budget, or refuse it before it is sent."""
        price = estimate_credits(method, path, record_count)
        if price == 0:
            return
        with self._lock:
            self._check(price, endpoint_key(method, path), f"the next call costs {price}")
            self.spent += price
            if self.running is not None:
                self.running.add(price)
            if self.org_remaining is not None:
                self.org_remaining -= price  # until Zoho's next answer says exactly

    def _check(self, credits: int, endpoint: str, need: str) -> None:
        running = self.running.of_others() if self.running and self.limit is not None else 0
        spent = self.spent + running
        if self.limit is not None and spent + credits > self.limit:
            by_others = self.spent_by_others + running
            shared = f", of which {by_others} by other sites on this Zoho org" if by_others else ""
            raise ZohoBudgetExhausted(
                f"The sync's daily budget of {self.limit} Zoho credits has "
                f"{max(0, self.limit - spent)} left ({spent} used in the last 24 hours"
                f"{shared}); {need}",
                endpoint=endpoint,
                resumes_at=self.frees_at,
            )
        if (
            self.keep_for_others
            and self.org_remaining is not None
            and self.org_remaining - credits < self.keep_for_others
        ):
            raise ZohoBudgetExhausted(
                f"Zoho reports {self.org_remaining} credits left for the whole org today, and "
                f"the sync leaves the last {self.keep_for_others} to its other integrations; "
                f"{need}",
                endpoint=endpoint,
                setting="ZOHO_SYNC_CREDIT_RESERVE",
            )
