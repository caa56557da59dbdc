"""Everything the sandbox remembers, behind one lock, optionally saved to a JSON file.

One object owns the records, the recycle bin, OAuth grants and tokens, custom fields, the
org, the clock, faults and the usage meter. The HTTP layers are thin views over it, so a
test can drive the same state through HTTP or directly, and the whole emulator can be
reset, persisted or thrown away in one place. The server is threaded, so every read or
write of ``data`` happens under ``lock``.
"""

from __future__ import annotations

import copy
import json
import os
import random
import tempfile
import threading
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from .fields import MODULES, FieldSpec, custom_field, standard_fields, store_instant
from .zoho_time import format_datetime, parse_datetime

UTC = timezone.utc

DEFAULT_TIMEZONE = "America/Los_Angeles"
DEFAULT_CLIENT_ID = "sandbox-client-id"
DEFAULT_CLIENT_SECRET = "sandbox-client-secret"
#: What `POST /__sandbox__/tokens` grants when the caller names no scope: all a sync needs.
DEFAULT_SCOPES = (
    "ZohoCRM.modules.ALL",
    "ZohoCRM.coql.READ",
    "ZohoCRM.settings.ALL",
    "ZohoCRM.org.READ",
    "ZohoCRM.users.READ",
    "ZohoCRM.notifications.ALL",
    "ZohoCRM.bulk.ALL",
    "ZohoFiles.files.ALL",
)

#: Org ids share a prefix with record ids, as they do in a real Zoho org.
ID_PREFIX = "4876876"
API_USER_ID = "4876876000000050001"
SALES_REP_ID = "4876876000000050002"

DEFAULT_USERS = [
    {
        "id": API_USER_ID,
        "first_name": "Sync",
        "last_name": "Admin",
        "email": "sync.admin@zylker.example",
        "role": {"name": "CEO", "id": "4876876000000026005"},
        "profile": {"name": "Administrator", "id": "4876876000000026011"},
    },
    {
        "id": SALES_REP_ID,
        "first_name": "Sales",
        "last_name": "Rep",
        "email": "sales.rep@zylker.example",
        "role": {"name": "Manager", "id": "4876876000000026008"},
        "profile": {"name": "Standard", "id": "4876876000000026014"},
    },
    {
        "id": "4876876000000050003",
        "first_name": "Patricia",
        "last_name": "Boyle",
        "email": "patricia.boyle@zylker.example",
        "role": {"name": "Manager", "id": "4876876000000026008"},
        "profile": {"name": "Standard", "id": "4876876000000026014"},
    },
]

#: Credits every Standard-edition org gets per rolling 24 h, plus per licensed user (§4.1).
BASE_CREDITS = 50_000
CREDITS_PER_USER = 250


def default_org(time_zone: str) -> dict[str, Any]:
    """The org record `GET /org` returns (reference §3.3)."""
    return {
        "id": "4876876000000000001",
        "company_name": "Zylker Sandbox",
        "alias": None,
        "primary_email": "sync.admin@zylker.example",
        "phone": None,
        "mobile": None,
        "fax": None,
        "website": "https://zylker.example",
        "employee_count": "10",
        "description": None,
        "country": "United States",
        "city": None,
        "street": None,
        "state": None,
        "zip": None,
        "country_code": "US",
        "time_zone": time_zone,
        "currency": "US Dollar - USD",
        "currency_symbol": "$",
        "currency_locale": "en_US",
        "iso_code": "USD",
        "mc_status": False,
        "type": "production",
        "domain_name": "org4876876",
        "zgid": "4876876",
        "primary_zuid": "700000001",
        "zia_portal_id": None,
        "gapps_enabled": False,
        "translation_enabled": False,
        "hipaa_compliance_enabled": False,
        "lite_users_enabled": False,
        "privacy_settings": False,
        "deletable_org_account": False,
        "photo_id": None,
        "hierarchy_preferences": {"type": "Role_Hierarchy"},
        "license_details": {
            "paid": True,
            "paid_type": "standard",
            "paid_expiry": None,
            "users_license_purchased": len(DEFAULT_USERS),
            "trial_type": None,
            "trial_expiry": None,
            "portal_users_license_purchased": 0,
        },
    }


class Faults:
    """Injected trouble for tests: latency, random 429/5xx, and a scripted queue.

    The random faults use their own seeded RNG so a test that sets ``seed`` sees the same
    sequence every run.
    """

    def __init__(self) -> None:
        self.latency_ms = 0
        self.rate_429 = 0.0
        self.rate_5xx = 0.0
        self.seed = 0
        self.fail_next: list[dict[str, Any]] = []
        #: Requests answered late: ``{delay_ms, when: "before"|"after", path_contains?,
        #: method?}``. "after" does the work first, so a client that times out has lost the
        #: answer to a request Zoho carried out.
        self.delay_next: list[dict[str, Any]] = []
        #: Requests carried out whose answer then arrives cut short (``{path_contains?,
        #: method?, keep?}``: the first ``keep`` bytes, default half), as when a proxy drops
        #: the connection mid-reply.
        self.garble_next: list[dict[str, Any]] = []
        #: Writes whose records at given positions are refused: ``{positions: [int] | "all",
        #: code?, message?, details?, path_contains?, method?}``, one spec per matching batch.
        self.fail_records: list[dict[str, Any]] = []
        #: Seconds a new page_token stays valid (None: Zoho's 24 hours); 0 expires every
        #: token before its next page is asked for.
        self.page_token_ttl: float | None = None
        self.rng = random.Random(0)

    def as_json(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency_ms,
            "rate_429": self.rate_429,
            "rate_5xx": self.rate_5xx,
            "seed": self.seed,
            "fail_next": copy.deepcopy(self.fail_next),
            "delay_next": copy.deepcopy(self.delay_next),
            "garble_next": copy.deepcopy(self.garble_next),
            "fail_records": copy.deepcopy(self.fail_records),
            "page_token_ttl": self.page_token_ttl,
        }


class SandboxState:
    """The in-memory Zoho org (records, tokens, metadata, clock, meters).

    ``options`` are fixed at construction (client credentials, limits); ``data`` is the part
    that is persisted to ``state_file`` and restored by ``reset``.
    """

    def __init__(
        self,
        *,
        org_timezone: str = DEFAULT_TIMEZONE,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        redirect_uris: list[str] | None = None,
        token_ttl: int = 3600,
        daily_credits: int | None = None,
        concurrency_limit: int = 10,
        page_token_limit: int = 100_000,
        coql_record_limit: int = 100_000,
        fault_seed: int = 0,
        state_file: str | os.PathLike[str] | None = None,
        location: str = "us",
    ) -> None:
        ZoneInfo(org_timezone)  # fail fast on a bad zone name
        self.lock = threading.RLock()
        self._meter_lock = threading.Lock()
        self.org_timezone = org_timezone
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uris = list(redirect_uris) if redirect_uris else None
        self.token_ttl = token_ttl
        self.daily_credits = daily_credits
        self.concurrency_limit = concurrency_limit
        self.page_token_limit = page_token_limit
        #: Records COQL's LIMIT/OFFSET reach (Zoho: 100,000); lower it to test keyset paging.
        self.coql_record_limit = coql_record_limit
        #: What ``reset`` restores: limits a test changed through ``/faults`` must not leak
        #: into the next test on the same sandbox.
        self._configured_limits = (token_ttl, daily_credits, concurrency_limit)
        #: Demo leads a reset fills the org with again (seed.py seeds; the state only keeps
        #: the number, so it needs nothing of the write path that seeding goes through).
        self.seed_count = 0
        self.location = location
        self.state_file = Path(state_file) if state_file else None
        self.faults = Faults()
        self.faults.seed = fault_seed
        self.faults.rng = random.Random(fault_seed)
        self.page_tokens: dict[str, dict[str, Any]] = {}
        #: Bulk files and jobs (sandbox/bulk.py): in memory only, result files are large.
        self.bulk_jobs: dict[str, Any] = {}
        self._id_counter = 100_000
        self._reset_meters()
        self.data: dict[str, Any] = self._fresh_data(org_timezone)
        self.notifier: Any = None  # set by notifications.attach (avoids an import cycle)
        #: Whether ``data`` came from ``state_file`` (a restored org is not seeded again).
        self.restored = bool(self.state_file and self.state_file.exists())
        if self.restored:
            self.load()

    # ----------------------------------------------------------------- data and reset
    def _fresh_data(self, time_zone: str, custom: dict[str, list] | None = None) -> dict:
        return {
            "clock_offset": 0.0,
            "org": default_org(time_zone),
            "users": copy.deepcopy(DEFAULT_USERS),
            "custom_fields": custom or {m: [] for m in MODULES},
            "records": {m: {} for m in MODULES},
            "deleted": {m: [] for m in MODULES},
            # What lead conversions made beyond a Contact: only id and name, as the lead's
            # Converted_Account / Converted_Deal lookups show them (no module of their own).
            "accounts": {},
            "deals": {},
            "refresh_tokens": {},
            "access_tokens": {},
            "codes": {},
            "grant_log": [],
            "channels": {},
        }

    def _reset_meters(self) -> None:
        with self._meter_lock:
            self.calls: dict[str, int] = {}
            self.credits: dict[str, int] = {}
            self.status_codes: dict[str, int] = {}
            self.ledger: deque[tuple[float, int]] = deque()
            self._ledger_total = 0
            self.active_requests = 0
            self.concurrency_peak = 0
            self.rejected: dict[str, int] = {"concurrency": 0, "credits": 0}

    def reset(
        self,
        *,
        keep_custom_fields: bool = False,
        keep_tokens: bool = False,
        org_timezone: str | None = None,
        refill: Callable[[SandboxState], None] | None = None,
    ) -> None:
        """Back to the start state; tests call this before each case.

        ``refill`` runs on the fresh org under the lock, before anyone can see it empty:
        ``seed.reset_seeded`` puts the demo data back this way.
        """
        if self.notifier is not None:
            self.notifier.drain(timeout=2.0)
            self.notifier.clear_log()
        with self.lock:
            old = self.data
            custom = copy.deepcopy(old["custom_fields"]) if keep_custom_fields else None
            self.data = self._fresh_data(org_timezone or self.org_timezone, custom)
            if keep_tokens:
                for key in ("refresh_tokens", "access_tokens"):
                    self.data[key] = old[key]
            self.page_tokens.clear()
            self.token_ttl, self.daily_credits, self.concurrency_limit = self._configured_limits
            self.bulk_jobs.clear()
            fault_seed = self.faults.seed
            self.faults = Faults()
            self.faults.seed = fault_seed
            self.faults.rng = random.Random(fault_seed)
            self._reset_meters()
            if refill is not None:
                refill(self)
            self.save()

    # ---------------------------------------------------------------- persistence
    def save(self) -> None:
        """Write ``data`` atomically, so a crash never leaves a half-written file."""
        if self.state_file is None:
            return
        with self.lock:
            payload = json.dumps({"version": 1, "id_counter": self._id_counter, **self.data})
        directory = self.state_file.parent
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".sandbox-", suffix=".json", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(payload)
            os.replace(tmp, self.state_file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load(self) -> None:
        assert self.state_file is not None
        stored = json.loads(self.state_file.read_text(encoding="utf-8"))
        stored.pop("version", None)
        counter = int(stored.pop("id_counter", self._id_counter))
        with self.lock:
            fresh = self._fresh_data(self.org_timezone)
            fresh.update(stored)
            self.data = fresh
            self._id_counter = max(self._id_counter, counter)

    # ----------------------------------------------------------------------- clock
    def now(self) -> datetime:
        """The sandbox clock: real time shifted by what tests asked for."""
        return datetime.now(UTC) + timedelta(seconds=self.data["clock_offset"])

    def timestamp(self) -> float:
        return self.now().timestamp()

    def stamp(self) -> str:
        """The stored form of "now" at Zoho's one-second resolution."""
        return store_instant(self.now().replace(microsecond=0))

    def advance_clock(self, seconds: float) -> datetime:
        with self.lock:
            self.data["clock_offset"] += float(seconds)
            self.save()
        return self.now()

    def set_clock(self, moment: datetime) -> datetime:
        with self.lock:
            self.data["clock_offset"] = (moment - datetime.now(UTC)).total_seconds()
            self.save()
        return self.now()

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.data["org"]["time_zone"])

    def show(self, stored: str | None) -> str | None:
        """An internal instant as Zoho writes it: org zone offset, no milliseconds."""
        if stored is None:
            return None
        return format_datetime(parse_datetime(stored), self.zone)

    def show_now(self) -> str:
        return format_datetime(self.now().replace(microsecond=0), self.zone)

    # ------------------------------------------------------------------ ids, users
    def new_id(self) -> str:
        """A 19-digit id that is never reused within a process (even across resets)."""
        with self.lock:
            self._id_counter += 1
            return f"{ID_PREFIX}{self._id_counter:012d}"

    def user(self, user_id: str) -> dict[str, Any] | None:
        for user in self.data["users"]:
            if user["id"] == user_id:
                return user
        return None

    def find_user(self, key: str | None) -> dict[str, Any] | None:
        """A user by id, email or full name (control API and consent page convenience)."""
        if not key:
            return None
        for user in self.data["users"]:
            full = f"{user['first_name']} {user['last_name']}"
            if key in (user["id"], user["email"], full):
                return user
        return None

    def user_ref(self, user_id: str | None) -> dict[str, Any] | None:
        """How Zoho embeds a user in a record: ``{"name", "id", "email"}``."""
        user = self.user(user_id) if user_id else None
        if user is None:
            return None
        name = f"{user['first_name']} {user['last_name']}"
        return {"name": name, "id": user["id"], "email": user["email"]}

    # ----------------------------------------------------------------------- fields
    def fields(self, module: str) -> list[FieldSpec]:
        custom = [custom_field(spec) for spec in self.data["custom_fields"][module]]
        return standard_fields(module) + custom

    def field_map(self, module: str) -> dict[str, FieldSpec]:
        return {spec.api_name: spec for spec in self.fields(module)}

    def add_custom_field(self, module: str, spec: dict[str, Any]) -> FieldSpec:
        built = custom_field(spec)
        with self.lock:
            if built.api_name in self.field_map(module):
                raise ValueError(f"{module} already has a field {built.api_name}")
            self.data["custom_fields"][module].append(built.to_json())
            self.save()
        return built

    # ----------------------------------------------------------------- usage meter
    def credit_limit(self) -> int:
        if self.daily_credits is not None:
            return self.daily_credits
        return BASE_CREDITS + CREDITS_PER_USER * len(self.data["users"])

    def credits_used(self) -> int:
        """Credits spent in the rolling 24 hours before the sandbox's now (§4.1).

        A running total, not a sum over the ledger: this runs twice per call, and summing
        made a run of 100,000 one-record calls quadratic."""
        horizon = self.timestamp() - 86_400
        with self._meter_lock:
            while self.ledger and self.ledger[0][0] < horizon:
                self._ledger_total -= self.ledger.popleft()[1]
            return self._ledger_total

    def credits_remaining(self) -> int:
        return max(0, self.credit_limit() - self.credits_used())

    def charge(self, key: str, amount: int) -> None:
        with self._meter_lock:
            if amount:
                self.ledger.append((self.timestamp(), amount))
                self._ledger_total += amount
            self.credits[key] = self.credits.get(key, 0) + amount

    def count_call(self, key: str) -> None:
        with self._meter_lock:
            self.calls[key] = self.calls.get(key, 0) + 1

    def count_status(self, status: int) -> None:
        with self._meter_lock:
            self.status_codes[str(status)] = self.status_codes.get(str(status), 0) + 1

    def try_enter(self) -> bool:
        """Take a concurrency slot, or say no (the caller answers 429)."""
        with self._meter_lock:
            if self.active_requests >= self.concurrency_limit:
                self.rejected["concurrency"] += 1
                return False
            self.active_requests += 1
            self.concurrency_peak = max(self.concurrency_peak, self.active_requests)
            return True

    def leave(self) -> None:
        with self._meter_lock:
            self.active_requests = max(0, self.active_requests - 1)

    def stats(self) -> dict[str, Any]:
        used = self.credits_used()
        with self._meter_lock:
            return {
                "calls": dict(sorted(self.calls.items())),
                "credits": dict(sorted(self.credits.items())),
                "total_calls": sum(self.calls.values()),
                "total_credits": sum(self.credits.values()),
                "credits_limit": self.credit_limit(),
                "credits_used_24h": used,
                "credits_remaining": max(0, self.credit_limit() - used),
                "status_codes": dict(sorted(self.status_codes.items())),
                "concurrency_limit": self.concurrency_limit,
                "concurrency_active": self.active_requests,
                "concurrency_peak": self.concurrency_peak,
                "rejected": dict(self.rejected),
            }

    def close(self) -> None:
        """Stop background work (the notification sender)."""
        if self.notifier is not None:
            self.notifier.stop()
