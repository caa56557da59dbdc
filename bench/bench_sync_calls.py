"""Zoho API calls and throughput of whole syncs against the sandbox on loopback.

Zoho rations calls per day, so the number that matters most is calls per record. For each
scenario the table shows the calls Zoho saw (from the sandbox's own stats), the least a
client could make for that work (one call per 100 records written, per 200 read), and the
time taken. Fixed costs (a token refresh, the field metadata, the deleted-records check, a
304 for "nothing new") are listed separately so the per-record ratio stays honest.

Run: ``python bench/bench_sync_calls.py [--records 2000] [--db sqlite|postgresql]``.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask_zoho_sync.extension import get_state
from flask_zoho_sync.preferences import add_default_mappings, get_settings
from flask_zoho_sync.sandbox.handle import SandboxHandle
from flask_zoho_sync.sandbox.server import SandboxServer
from tests.hostapp import make_host_app

#: Calls that do not scale with the records: the token, metadata, deletions, the 304.
FIXED = (
    "POST /oauth/v2/token",
    "GET /settings/fields",
    "GET /Leads/deleted",
    "GET /org",
    "GET /users",
)


def connected_host(database_url: str, zoho: SandboxHandle) -> Any:
    host = make_host_app(
        database_url,
        ZOHO_SYNC_CLIENT_ID=zoho.client_id,
        ZOHO_SYNC_CLIENT_SECRET=zoho.client_secret,
        ZOHO_SYNC_ACCOUNTS_URL=zoho.accounts_server,
        ZOHO_SYNC_EXTRA_ACCOUNTS_SERVERS=zoho.accounts_server,
    )
    with host.app.app_context():
        token = zoho.mint_refresh_token()
        get_state().connect_with_refresh_token(token["refresh_token"], zoho.accounts_server)
        session = host.db.session
        get_settings(session).module = "Leads"
        add_default_mappings(session, get_state().adapter, "Leads")
        session.commit()
    return host


def measure(zoho: SandboxHandle, action: Callable[[], None]) -> tuple[dict[str, int], float]:
    before = zoho.stats()["calls"]
    started = time.perf_counter()
    action()
    elapsed = time.perf_counter() - started
    after = zoho.stats()["calls"]
    return {
        k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)
    }, elapsed


def row(name: str, records: int, calls: dict[str, int], minimum: int, seconds: float) -> str:
    scaling = sum(n for k, n in calls.items() if k not in FIXED)
    fixed = sum(n for k, n in calls.items() if k in FIXED)
    ratio = scaling / minimum if minimum else float("nan")
    return (
        f"{name:<34} {records:>7} {scaling:>8} {minimum:>8} {ratio:>6.2f} {fixed:>6} "
        f"{seconds:>8.2f} {records / seconds:>9.0f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    n = args.records
    with tempfile.TemporaryDirectory() as scratch, SandboxServer() as server:
        zoho = SandboxHandle(server.url)
        database_url = (
            f"sqlite:///{scratch}/bench.sqlite3"
            if args.db == "sqlite"
            else "postgresql+psycopg://postgres@127.0.0.1:5432/zoho_sync_bench"
        )
        if args.db == "postgresql":
            import sqlalchemy as sa

            from tests.conftest import _admin_engine

            admin = _admin_engine(database_url)
            with admin.connect() as connection:
                if not connection.scalar(
                    sa.text("SELECT 1 FROM pg_database WHERE datname='zoho_sync_bench'")
                ):
                    connection.execute(sa.text('CREATE DATABASE "zoho_sync_bench"'))
            admin.dispose()
        lines = []

        # 1. Import: N records in Zoho, none in the host.
        zoho.generate_records("Leads", n)
        host = connected_host(database_url, zoho)
        with host.app.app_context():
            calls, seconds = measure(zoho, lambda: get_state().run_sync(mode="all"))
        lines.append(row("full import (pull)", n, calls, math.ceil(n / 200), seconds))

        # 2. Export: N contacts in the host, none in Zoho.
        zoho.reset(keep_tokens=True)
        host = connected_host(database_url, zoho)
        with host.app.app_context():
            session = host.db.session
            session.add_all(
                host.Contact(last_name=f"L{i}", email=f"c{i}@example.org") for i in range(n)
            )
            session.commit()
            calls, seconds = measure(zoho, lambda: get_state().run_sync(mode="all"))
        lines.append(row("full export (push)", n, calls, math.ceil(n / 100), seconds))

        # 3. Edits: half the contacts changed, captured, pushed as the delayed job would.
        with host.app.app_context():
            session = host.db.session
            for contact in session.scalars(
                host.db.select(host.Contact).where(host.Contact.id % 2 == 0)
            ):
                contact.phone = "555"
            session.commit()
            calls, seconds = measure(zoho, lambda: get_state().run_sync(mode="outbox"))
        lines.append(row("push of edits (outbox)", n // 2, calls, math.ceil(n / 2 / 100), seconds))

        # 4. Nothing changed anywhere: what a scheduled pull costs.
        with host.app.app_context():
            calls, seconds = measure(zoho, lambda: get_state().run_sync(mode="since_last"))
        lines.append(row("incremental sync, nothing new", 0, calls, 0, seconds))

    heading = ("scenario", "records", "calls", "minimum", "ratio", "fixed", "seconds", "rec/s")
    print("{:<34} {:>7} {:>8} {:>8} {:>6} {:>6} {:>8} {:>9}".format(*heading))
    print("\n".join(lines))
    print(
        "calls: calls that scale with records; fixed: token, metadata, deleted-records check.\n"
        "A pull after a push re-reads the records the push wrote (Zoho gives them a new\n"
        "Modified_Time, and If-Modified-Since cannot exclude our own writes), so scenarios\n"
        "3 and 4 include reading back the previous scenario's writes."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
