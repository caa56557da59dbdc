"""How fast the admin's run page and History answer for a large run (``python -m bench
--only pages``).

A 3,000-record run's page once listed 6,000 rows and took 2.9 s. The page now shows 100
record changes at a time, filtered by outcome or by the contact's email; the goal is every
such page of a 10,000-record run in under 200 ms on SQLite. History is measured beside it,
with 2,000 runs of which most changed nothing (hidden by default).

No sandbox is needed: the run, its history rows and the contacts are written straight into
a SQLite file, as a finished sync leaves them, and the pages are asked for through Flask's
test client, which runs the view, the queries and the template as a browser's request would
(minus the network).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa

from bench.harness import Row, seed_host, sqlite_url
from flask_zoho_sync.connection import store_account_details
from flask_zoho_sync.extension import get_state
from flask_zoho_sync.models import RecordHistory, Run
from flask_zoho_sync.preferences import get_settings
from flask_zoho_sync.web import register_admin
from flask_zoho_sync.zoho.auth import TokenSet
from tests.hostapp import HostApp, make_host_app

#: The longest a page of a large run may take.
GOAL_SECONDS = 0.2
PREFIX = "/admin/zoho"
#: Outcomes of the seeded run's records, in the proportions a first two-way sync has.
_ACTIONS = (["create"] * 6) + (["update"] * 3) + ["error"]


def _host(database_url: str) -> HostApp:
    host = make_host_app(database_url, SECRET_KEY="bench", ZOHO_SYNC_URL_PREFIX=PREFIX)
    state = get_state(host.app)
    state.admin_check = lambda: True
    register_admin(host.app, state)
    with host.app.app_context():
        state.token_store().save(
            TokenSet(
                refresh_token="1000.bench",
                access_token="1000.bench",
                expires_at=9_999_999_999.0,
                api_domain="https://www.zohoapis.eu",
                accounts_server="https://accounts.zoho.eu",
            )
        )
        session = state.db.session
        store_account_details(
            session,
            location="eu",
            org={"id": "20051", "company_name": "Bench", "domain_name": "org20051"},
            user={"id": "1", "email": "bench@example.org"},
        )
        get_settings(session).module = "Leads"
        session.commit()
    return host


def seed_run(host: HostApp, records: int) -> int:
    """A finished run of ``records`` record changes, one per contact; returns its id."""
    seed_host(host, records)
    with host.app.app_context():
        session = host.db.session
        started = datetime.now(timezone.utc) - timedelta(minutes=5)
        run = Run(
            kind="sync",
            mode="all",
            status="partial",
            trigger="admin",
            started_at=started,
            finished_at=started + timedelta(seconds=90),
            counts={},
            calls=records // 100,
            credits=records // 10,
        )
        session.add(run)
        session.flush()
        run_id = run.id
        contact_ids = session.scalars(sa.select(host.Contact.id).order_by(host.Contact.id)).all()
        rows = []
        counts: dict[str, int] = {}
        for n, contact_id in enumerate(contact_ids):
            action = _ACTIONS[n % len(_ACTIONS)]
            direction = "to_zoho" if n % 2 else "to_host"
            counts[f"{direction}.{action}"] = counts.get(f"{direction}.{action}", 0) + 1
            rows.append(
                {
                    "run_id": run_id,
                    "contact_id": str(contact_id),
                    "zoho_id": str(4_876_876_000_000_000_000 + n),
                    "direction": direction,
                    "action": action,
                    "changes": {"fields": {"Phone (Phone)": [None, f"555 {n:04d}"]}},
                    "reason": "DUPLICATE_DATA: the value exists" if action == "error" else None,
                    "error_code": "DUPLICATE_DATA" if action == "error" else None,
                    "created_at": started,
                }
            )
        session.execute(RecordHistory.__table__.insert(), rows)
        session.get(Run, run_id).counts = counts
        session.commit()
    return run_id


def seed_quiet_runs(host: HostApp, count: int) -> None:
    """``count`` scheduled pulls that changed nothing, the noise History hides."""
    start = datetime.now(timezone.utc) - timedelta(days=30)
    with host.app.app_context():
        session = host.db.session
        session.execute(
            Run.__table__.insert(),
            [
                {
                    "kind": "pull",
                    "mode": "since_last",
                    "dry_run": False,
                    "status": "succeeded",
                    "trigger": "schedule",
                    "started_at": start + timedelta(minutes=15 * n),
                    "finished_at": start + timedelta(minutes=15 * n, seconds=2),
                    "counts": {},
                    "calls": 2,
                    "credits": 2,
                    "progress_done": 0,
                }
                for n in range(count)
            ],
        )
        session.commit()


def timed(client: Any, path: str, repeat: int) -> tuple[float, str]:
    """The median seconds of ``repeat`` GETs of ``path`` after one warm-up, and its text."""
    first = client.get(path)
    if first.status_code != 200:
        raise RuntimeError(f"{path} answered {first.status_code}")
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(path)
        samples.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"{path} answered {response.status_code}")
    return statistics.median(samples), first.get_data(as_text=True)


def run_pages(records: int, repeat: int, rows: list[Row]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        host = _host(sqlite_url(scratch, "pages"))
        run_id = seed_run(host, records)
        seed_quiet_runs(host, 2000)
        client = host.app.test_client()
        last_page = -(-records // 100)
        scenarios = [
            ("run page, first 100 changes", f"/history/runs/{run_id}"),
            ("run page, last page", f"/history/runs/{run_id}?page={last_page}"),
            ("run page, failed only", f"/history/runs/{run_id}?outcome=failed"),
            ("run page, by email", f"/history/runs/{run_id}?email=c{records // 2}%40"),
            ("History, quiet runs hidden", "/history"),
            ("History, quiet runs shown", "/history?quiet=1"),
        ]
        for scenario, path in scenarios:
            seconds, text = timed(client, PREFIX + path, repeat)
            if "/runs/" in path and "Record changes" not in text:
                raise RuntimeError(f"{path} did not render the run's changes")
            rows.append(
                Row(
                    "pages",
                    scenario,
                    records,
                    None,
                    seconds,
                    reference=f"{GOAL_SECONDS * 1000:.0f} ms",
                    ratio=seconds / GOAL_SECONDS,
                    goal="<= 1.00",
                    met=seconds <= GOAL_SECONDS,
                    note=f"median of {repeat}; GET {path}",
                )
            )
        with host.app.app_context():
            host.db.engine.dispose()
