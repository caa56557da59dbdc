"""What the benchmarks share: a sandbox in its own process, a connected host, fast seeding.

The sandbox runs as a separate process (``python -m flask_zoho_sync.sandbox``) so its own
work neither competes for the client's interpreter lock nor counts in the client's memory:
what is measured is the client, as it would be against Zoho.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from flask_zoho_sync.extension import get_state  # noqa: E402
from flask_zoho_sync.preferences import add_default_mappings, get_settings  # noqa: E402
from flask_zoho_sync.sandbox.handle import SandboxHandle  # noqa: E402
from tests.hostapp import HostApp, make_host_app  # noqa: E402

#: Calls that do not scale with the records: the token, metadata, deletions, org and user.
FIXED = (
    "POST /oauth/v2/token",
    "GET /settings/fields",
    "GET /Leads/deleted",
    "GET /org",
    "GET /users",
)


@dataclass
class Row:
    """One line of the table."""

    section: str
    scenario: str
    records: int
    calls: int | None
    seconds: float | None
    reference: str = ""  # what it is compared with, e.g. "ceil(N/100)=100"
    ratio: float | None = None
    goal: str = ""
    met: bool | None = None
    note: str = ""

    @property
    def rate(self) -> float | None:
        if self.seconds and self.records:
            return self.records / self.seconds
        return None


@contextmanager
def sandbox_process(**options: Any) -> Iterator[SandboxHandle]:
    """A sandbox in a child process on a free loopback port; yields a control handle."""
    command = [sys.executable, "-u", "-m", "flask_zoho_sync.sandbox", "--port", "0"]
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert process.stdout is not None
        url = None
        deadline = time.monotonic() + 30
        while url is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            match = re.search(r"running at (http://\S+)", line)
            if match:
                url = match.group(1)
        if url is None:
            raise RuntimeError("the sandbox did not start")
        handle = SandboxHandle(url, timeout=600)
        if options:
            handle.faults(**options)
        yield handle
        handle.close()
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def connected_host(database_url: str, zoho: SandboxHandle, **config: Any) -> HostApp:
    """A host app on a fresh schema, connected to the sandbox, syncing Leads with the
    default mapping.

    The REST path unless ``config`` says otherwise: the SDK and the naive loop use REST, so
    comparisons with them (and the ceil(N/200) and ceil(N/100) call counts) measure REST
    against REST; the bulk section sets its own threshold, the coql section turns COQL on.
    """
    config = {"ZOHO_SYNC_BULK_THRESHOLD": 0, "ZOHO_SYNC_PULL_WITH_COQL": False, **config}
    host = make_host_app(
        database_url,
        ZOHO_SYNC_CLIENT_ID=zoho.client_id,
        ZOHO_SYNC_CLIENT_SECRET=zoho.client_secret,
        ZOHO_SYNC_ACCOUNTS_URL=zoho.accounts_server,
        ZOHO_SYNC_EXTRA_ACCOUNTS_SERVERS=zoho.accounts_server,
        **config,
    )
    with host.app.app_context():
        token = zoho.mint_refresh_token()
        get_state().connect_with_refresh_token(token["refresh_token"], zoho.accounts_server)
        session = host.db.session
        get_settings(session).module = "Leads"
        add_default_mappings(session, get_state().adapter, "Leads")
        session.commit()
    return host


def contact_rows(start: int, stop: int) -> list[dict[str, Any]]:
    return [
        {"first_name": "Bench", "last_name": f"Contact {n}", "email": f"c{n}@example.org"}
        for n in range(start, stop)
    ]


def seed_host(host: HostApp, count: int, chunk: int = 5000) -> None:
    """``count`` contacts inserted with Core, a chunk at a time: the way contacts exist in
    a host before the extension is installed (no outbox rows), and without holding ORM
    objects that would count in a memory measurement."""
    table = host.Contact.__table__
    with host.app.app_context():
        engine = host.db.engine
        for start in range(0, count, chunk):
            with engine.begin() as connection:
                connection.execute(sa.insert(table), contact_rows(start, min(count, start + chunk)))


def seed_zoho(zoho: SandboxHandle, count: int, chunk: int = 20_000) -> None:
    for start in range(1, count + 1, chunk):
        zoho.generate_records("Leads", min(chunk, count + 1 - start), start=start)


def crm_calls(zoho: SandboxHandle) -> dict[str, int]:
    return dict(zoho.stats()["calls"])


def measure(zoho: SandboxHandle, action: Callable[[], Any]) -> tuple[dict[str, int], float]:
    """Calls the sandbox saw during ``action``, by endpoint, and the seconds it took."""
    before = crm_calls(zoho)
    started = time.perf_counter()
    action()
    elapsed = time.perf_counter() - started
    after = crm_calls(zoho)
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}, elapsed


def scaling(calls: dict[str, int]) -> int:
    return sum(n for key, n in calls.items() if key not in FIXED)


def fixed(calls: dict[str, int]) -> int:
    return sum(n for key, n in calls.items() if key in FIXED)


def sqlite_url(directory: str, name: str) -> str:
    path = os.path.join(directory, f"{name}.sqlite3")
    if os.path.exists(path):
        os.remove(path)
    return f"sqlite:///{path}"
