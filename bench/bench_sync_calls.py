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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import FIXED, connected_host, measure
from flask_zoho_sync.extension import get_state
from flask_zoho_sync.sandbox.handle import SandboxHandle
from flask_zoho_sync.sandbox.server import SandboxServer


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
