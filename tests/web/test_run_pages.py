"""Large runs as an admin meets them: a run's changes a page at a time, filtered by outcome
and by email; History without the runs that changed nothing unless asked, filtered by
direction, outcome and date; contacts named and linked to the host's page, Zoho ids linked
to the record in Zoho (and, for the sandbox, to the sandbox's page of it)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

import requests
import sqlalchemy as sa

from flask_zoho_sync.adapter import SQLAlchemyContactAdapter
from flask_zoho_sync.models import RecordHistory, Run
from flask_zoho_sync.preferences import add_default_mappings, get_settings
from flask_zoho_sync.web.history_page import RUN_PAGE_SIZE
from tests.web.conftest import Admin

_ROW = re.compile(r"<tr>\s*<td>", re.S)
#: The outcome of the n-th seeded record, and how many of 250 get each one.
_CYCLE = ["create", "create", "update", "update", "link", "delete", "error"]


def rows_on(page: str) -> int:
    """Record change rows in a run page's table (the header row has <th>)."""
    return len(_ROW.findall(page))


def link_host_pages(admin: Admin) -> None:
    """The host says where a contact's page is (ZohoSync's ``contact_url``)."""
    host = admin.host
    adapter = SQLAlchemyContactAdapter(
        host.Contact, contact_url=lambda contact: f"https://crm.host.test/people/{contact.id}"
    )
    adapter.bind(lambda: host.db.session)
    admin.state.adapter = adapter


def seed_run(admin: Admin, records: int = 250, **run: Any) -> int:
    """A finished two-way run with one history row per contact; returns its id."""
    host = admin.host
    with host.app.app_context():
        session = host.db.session
        get_settings(session).module = "Leads"
        contacts = [
            host.Contact(first_name="Ada", last_name=f"Person {n}", email=f"p{n}@example.org")
            for n in range(records)
        ]
        session.add_all(contacts)
        started = datetime(2026, 11, 20, 9, tzinfo=timezone.utc)
        values = {
            "kind": "sync",
            "mode": "all",
            "status": "partial",
            "trigger": "admin",
            "started_at": started,
            "finished_at": started + timedelta(seconds=30),
            "counts": {"to_host.skipped_blank": 3, "to_zoho.create": 1},
            **run,
        }
        row = Run(**values)
        session.add(row)
        session.flush()
        session.add_all(
            RecordHistory(
                run_id=row.id,
                contact_id=str(contact.id),
                zoho_id=f"{5_000_000 + n}",
                direction="to_zoho" if n % 2 else "to_host",
                action=_CYCLE[n % len(_CYCLE)],
                reason="Zoho refused the value" if _CYCLE[n % len(_CYCLE)] == "error" else None,
                changes={"fields": {"Phone (Phone)": [None, f"555 {n:04d}"]}},
            )
            for n, contact in enumerate(contacts)
        )
        session.commit()
        return row.id


def expected(outcome_actions: tuple[str, ...], records: int = 250) -> int:
    return sum(1 for n in range(records) if _CYCLE[n % len(_CYCLE)] in outcome_actions)


def test_a_large_run_comes_a_page_at_a_time(admin: Admin) -> None:
    run_id = seed_run(admin)
    first = admin.text(f"/history/runs/{run_id}")
    assert rows_on(first) == RUN_PAGE_SIZE
    assert "250 record changes, page 1 of 3" in first
    assert f'href="/admin/zoho/history/runs/{run_id}?page=2" rel="next"' in first
    assert "Person 0 (p0@example.org)" in first and "Person 100 " not in first
    last = admin.text(f"/history/runs/{run_id}?page=3")
    assert rows_on(last) == 50 and "Person 249 (p249@example.org)" in last
    assert "Next page" not in last and "Previous page" in last
    assert admin.get(f"/history/runs/{run_id}?page=0").status_code == 400


def test_a_run_filters_by_outcome_with_its_counts(admin: Admin) -> None:
    run_id = seed_run(admin)
    page = admin.text(f"/history/runs/{run_id}")
    failed, created = expected(("error",)), expected(("create",))
    assert f"Failed ({failed})" in page and f"Created ({created})" in page
    assert f"Updated ({expected(('update', 'link'))})" in page
    assert f"Deleted ({expected(('delete',))})" in page and "Skipped (3)" in page
    only_failed = admin.text(f"/history/runs/{run_id}?outcome=failed")
    assert rows_on(only_failed) == failed
    assert only_failed.count("Zoho refused the value") == failed
    assert ">Created<" not in only_failed and ">Updated<" not in only_failed
    updated = expected(("update", "link"))
    updated_page = admin.text(f"/history/runs/{run_id}?outcome=updated")
    assert rows_on(updated_page) == RUN_PAGE_SIZE and updated > RUN_PAGE_SIZE
    assert f"{updated} record changes, page 1 of 2" in updated_page
    assert "Linked by email" in updated_page and ">Created<" not in updated_page
    assert "outcome=updated&amp;page=2" in updated_page
    skipped = admin.text(f"/history/runs/{run_id}?outcome=skipped")
    assert "3 records: no mapped field beyond the email has a value" in skipped
    refused = admin.get(f"/history/runs/{run_id}?outcome=since_last")
    assert refused.status_code == 400
    assert "not one of the choices" in refused.get_data(as_text=True)


def test_a_run_filters_by_the_contacts_email(admin: Admin) -> None:
    run_id = seed_run(admin)
    page = admin.text(f"/history/runs/{run_id}?email=P12%40EXAMPLE")
    assert rows_on(page) == 1 and "Person 12 (p12@example.org)" in page
    several = admin.text(f"/history/runs/{run_id}?email=p1")  # p1, p10-p19, p100-p199
    assert "111 record changes, page 1 of 2" in several
    failed_p1 = admin.text(f"/history/runs/{run_id}?email=p1&outcome=failed")
    assert rows_on(failed_p1) == sum(
        1 for n in range(250) if str(n).startswith("1") and _CYCLE[n % 7] == "error"
    )
    assert "No record changes." in admin.text(f"/history/runs/{run_id}?email=nobody%40")
    # A wildcard typed by the admin is a character, not a pattern.
    assert "No record changes." in admin.text(f"/history/runs/{run_id}?email=%25")


def test_contacts_are_named_and_link_to_the_hosts_page_and_zoho_ids_to_zoho(
    admin: Admin,
) -> None:
    admin.store_connection(org={"domain_name": "org20051"})
    link_host_pages(admin)
    run_id = seed_run(admin, records=3)
    with admin.host.app.app_context():
        first_id = admin.state.db.session.scalar(
            sa.select(RecordHistory.contact_id).where(RecordHistory.zoho_id == "5000000")
        )
    page = admin.text(f"/history/runs/{run_id}")
    assert (
        f'<a href="https://crm.host.test/people/{first_id}">Ada Person 0 (p0@example.org)</a>'
        in page
    )
    assert '<a href="https://crm.zoho.eu/crm/org20051/tab/Leads/5000000">5000000</a>' in page
    contact = admin.text(f"/history/contacts/{first_id}")
    assert "History of Ada Person 0 (p0@example.org)" in contact
    assert f'href="https://crm.host.test/people/{first_id}">Open Ada Person 0' in contact
    # A contact deleted on this site keeps its history, and says it is gone.
    with admin.host.app.app_context():
        session = admin.state.db.session
        session.delete(session.get(admin.host.Contact, int(first_id)))
        session.commit()
    gone = admin.text(f"/history/runs/{run_id}")
    assert f'Contact {first_id} <span class="zs-muted">(no longer on this site)' in gone


def test_without_a_domain_name_the_org_id_makes_the_zoho_address(admin: Admin) -> None:
    admin.store_connection(org={"id": "777001", "domain_name": None})
    run_id = seed_run(admin, records=1)
    page = admin.text(f"/history/runs/{run_id}")
    assert 'href="https://crm.zoho.eu/crm/org777001/tab/Leads/5000000"' in page


def test_the_sandbox_opens_the_record_at_zohos_address(
    connected_admin: Admin, zoho_sandbox: Any
) -> None:
    """The link the pages build for a record opens that record in the sandbox."""
    host = connected_admin.host
    with host.app.app_context():
        session = host.db.session
        get_settings(session).module = "Leads"
        add_default_mappings(session, connected_admin.state.adapter, "Leads")
        session.add(host.Contact(first_name="Grace", last_name="Hopper", email="g@example.org"))
        session.commit()
        connected_admin.state.run_sync(mode="all")
        zoho_id = session.scalar(
            sa.select(RecordHistory.zoho_id).where(RecordHistory.action == "create")
        )
        run_id = session.scalar(sa.select(RecordHistory.run_id))
    page = connected_admin.text(f"/history/runs/{run_id}")
    link = re.search(rf'href="([^"]+/tab/Leads/{zoho_id})"', page)
    assert link, page
    assert "/crm/org" in link.group(1)
    shown = requests.get(link.group(1), timeout=10)
    assert shown.status_code == 200
    assert 'value="Hopper"' in shown.text and 'value="g@example.org"' in shown.text
    wrong_org = link.group(1).replace("/crm/org", "/crm/orgX")
    assert requests.get(wrong_org, timeout=10).status_code == 404


def add_run(admin: Admin, *, kind: str, status: str, day: int, rows: list[tuple[str, str]]) -> int:
    with admin.host.app.app_context():
        session = admin.state.db.session
        started = datetime(2026, 11, day, 12, tzinfo=timezone.utc)
        run = Run(
            kind=kind,
            mode="since_last",
            status=status,
            trigger="schedule",
            started_at=started,
            finished_at=started + timedelta(seconds=3),
            counts={},
        )
        session.add(run)
        session.flush()
        session.add_all(
            RecordHistory(run_id=run.id, contact_id="1", direction=direction, action=action)
            for direction, action in rows
        )
        session.commit()
        return run.id


def run_links(page: str) -> set[int]:
    return {int(found) for found in re.findall(r'/history/runs/(\d+)"', page)}


def test_history_hides_runs_that_changed_nothing_until_asked(admin: Admin) -> None:
    quiet = [add_run(admin, kind="pull", status="succeeded", day=d, rows=[]) for d in (1, 2, 3)]
    failed_quietly = add_run(admin, kind="push", status="failed", day=4, rows=[])
    changed = add_run(admin, kind="sync", status="succeeded", day=5, rows=[("to_host", "update")])
    page = admin.text("/history")
    assert run_links(page) == {failed_quietly, changed}
    assert "3 runs that changed nothing are hidden." in page
    shown = admin.text("/history?quiet=1")
    assert run_links(shown) == {*quiet, failed_quietly, changed}
    assert 'name="quiet" value="1" checked' in shown


def test_history_filters_by_direction_outcome_and_date(admin: Admin) -> None:
    to_zoho = add_run(admin, kind="push", status="succeeded", day=10, rows=[("to_zoho", "create")])
    to_host = add_run(admin, kind="pull", status="succeeded", day=12, rows=[("to_host", "update")])
    both = add_run(
        admin,
        kind="sync",
        status="partial",
        day=14,
        rows=[("to_zoho", "delete"), ("to_host", "error")],
    )
    assert run_links(admin.text("/history?direction=to_zoho")) == {to_zoho, both}
    assert run_links(admin.text("/history?direction=to_host")) == {to_host, both}
    assert run_links(admin.text("/history?outcome=failed")) == {both}
    assert run_links(admin.text("/history?outcome=created")) == {to_zoho}
    assert run_links(admin.text("/history?outcome=deleted&direction=to_host")) == set()
    assert run_links(admin.text("/history?from=2026-11-11&to=2026-11-13")) == {to_host}
    assert run_links(admin.text("/history?from=2026-11-12")) == {to_host, both}
    assert "No run matches this filter." in admin.text("/history?to=2026-11-01")
    for bad in ("from=yesterday", "from=2026-11-20&to=2026-11-01", "direction=sideways"):
        response = admin.get(f"/history?{bad}")
        assert response.status_code == 400, bad
        assert "This filter cannot be used" in response.get_data(as_text=True)


def test_history_days_are_the_admins_days(admin: Admin) -> None:
    """A run at 23:30 UTC on the 9th is on the 10th in Berlin, the sync's zone here."""
    admin.update_settings(time_zone="Europe/Berlin")
    with admin.host.app.app_context():
        session = admin.state.db.session
        late = Run(
            kind="push",
            mode="outbox",
            status="failed",
            started_at=datetime(2026, 11, 9, 23, 30, tzinfo=timezone.utc),
            counts={},
        )
        session.add(late)
        session.commit()
        late_id = late.id
    assert run_links(admin.text("/history?from=2026-11-10&to=2026-11-10")) == {late_id}
    assert run_links(admin.text("/history?to=2026-11-09")) == set()


def history_table_plans(admin: Admin, paths: list[str]) -> dict[str, str]:
    """Each query on zoho_sync_history the pages at ``paths`` make, with its plan, asked of
    the database with sequential scans discouraged (so a table this small still shows
    whether an index can serve the query)."""
    with admin.host.app.app_context():
        engine = admin.state.db.engine
    seen: list[tuple[str, Any]] = []

    def remember(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if "zoho_sync_history" in statement and statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    with admin.host.app.app_context():
        sa.event.listen(engine, "before_cursor_execute", remember)
        try:
            for path in paths:
                admin.text(path)
        finally:
            sa.event.remove(engine, "before_cursor_execute", remember)
        plans = {}
        with engine.connect() as connection:
            sqlite = engine.dialect.name == "sqlite"
            if not sqlite:
                connection.exec_driver_sql("SET enable_seqscan = off")
            for statement, parameters in seen:
                explain = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
                rows = connection.exec_driver_sql(explain + statement, parameters).all()
                plans[statement] = "\n".join(str(row[-1]) for row in rows)
            connection.rollback()
    return plans


def test_the_run_page_and_history_read_through_indexes(admin: Admin) -> None:
    run_id = seed_run(admin, records=30)
    paths = [
        f"/history/runs/{run_id}",
        f"/history/runs/{run_id}?outcome=failed&page=1",
        f"/history/runs/{run_id}?email=p1",
        "/history",
        "/history?direction=to_host&outcome=updated",
    ]
    plans = history_table_plans(admin, paths)
    assert len(plans) >= 5
    for statement, plan in plans.items():
        if "resolved_at IS NULL" in statement:
            continue  # the open failures: newest first, and it stops at 200
        assert not re.search(r"(^|\n)SCAN zoho_sync_history( |$)", plan), (statement, plan)
        assert "Seq Scan on zoho_sync_history" not in plan, (statement, plan)
