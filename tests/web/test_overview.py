"""The overview: where the sync stands, what to do next, and recent activity."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from typing import Any

from flask_zoho_sync.models import ApiUsage, Connection, FieldMap, Link, Run
from flask_zoho_sync.web.activity import daily_activity
from tests.web.conftest import Admin


def _add(admin: Admin, *rows: object) -> None:
    with admin.host.app.app_context():
        session = admin.state.db.session
        session.add_all(rows)
        session.commit()


def test_not_connected_the_overview_prompts_to_connect(admin: Admin) -> None:
    text = admin.text("/")
    assert "Not connected" in text
    assert "Connect Zoho CRM" in text and 'action="/admin/zoho/connect"' in text
    assert "after the first sync" in text
    assert "No syncs in the last 14 days" in text


def test_connected_without_a_module_the_overview_prompts_for_settings(admin: Admin) -> None:
    admin.store_connection()
    text = admin.text("/")
    assert "Choose what to sync" in text
    for fact in ("owner@acme.test", "Acme Ltd", "EU", "https://www.zohoapis.eu"):
        assert fact in text
    assert "Disconnect" in text


def _contacts(admin: Admin) -> int:
    with admin.host.app.app_context():
        return admin.state.db.session.query(admin.host.Contact).count()


def _current_step(admin: Admin) -> str:
    """The label of the setup step the overview marks as current (aria-current="step")."""
    found = re.search(r'<a href="([^"]*)" aria-current="step">([^<]*)</a>', admin.text("/"))
    assert found, "the overview marks no current step"
    return f"{found.group(2)} -> {found.group(1)}"


def test_with_only_email_mapped_the_overview_still_prompts_for_the_mapping(
    admin: Admin,
) -> None:
    admin.store_connection()
    admin.update_settings(module="Leads")
    _add(admin, FieldMap(kind="field", host_key="email", zoho_field="Email"))
    text = admin.text("/")
    assert "Map the fields" in text
    assert "no field beyond email is mapped" in text
    assert _current_step(admin) == "Map the fields -> /admin/zoho/mapping"


def test_the_overview_marks_each_step_of_the_setup_path_until_the_first_sync(
    connected_admin: Admin, zoho_sandbox: Any
) -> None:
    """Connect, settings, mapping, preview, first sync: each marked while it is next."""
    zoho_sandbox.generate_records("Leads", 3)
    fresh = connected_admin
    with fresh.host.app.app_context():
        fresh.state.db.session.query(Connection).delete()
        fresh.state.db.session.commit()
    assert _current_step(fresh) == "Connect Zoho CRM -> /admin/zoho/"
    grant = zoho_sandbox.mint_refresh_token()
    with fresh.host.app.app_context():
        fresh.state.connect_with_refresh_token(grant["refresh_token"], grant["accounts_server"])
    assert _current_step(fresh) == "Choose Leads or Contacts -> /admin/zoho/settings"
    fresh.update_settings(module="Leads", auto_sync=True)
    assert _current_step(fresh) == "Map the fields -> /admin/zoho/mapping"
    assert "Save the standard pairs" in fresh.text("/mapping")
    assert fresh.post("/mapping/defaults").status_code in (200, 302)
    assert _current_step(fresh) == "Preview the first sync -> /admin/zoho/sync"
    assert "Run without preview" not in fresh.text("/sync")
    plan = fresh.post("/sync/plan", {"mode": "all", "here": "1"})
    assert plan.status_code == 200 and "Run this sync" in plan.get_data(as_text=True)
    assert zoho_sandbox.records("Leads") and not _contacts(fresh)
    assert _current_step(fresh) == "Run the first sync -> /admin/zoho/sync"
    ran = fresh.post("/sync/run-now", {"mode": "all"})
    assert ran.status_code == 200
    assert _contacts(fresh) == len(zoho_sandbox.records("Leads"))
    assert 'aria-current="step"' not in fresh.text("/")
    assert "Run without preview" in fresh.text("/sync")


def test_the_overview_shows_counts_usage_and_the_pull_schedule(make_admin) -> None:
    admin = make_admin(ZOHO_SYNC_PULL_INTERVAL=3600)
    admin.store_connection()
    last_pull = datetime(2026, 3, 1, 9, 30, tzinfo=timezone.utc)
    admin.update_settings(
        module="Leads", auto_sync=True, last_pull_at=last_pull, time_zone="Europe/Berlin"
    )
    _add(
        admin,
        Link(module="Leads", contact_id="1", zoho_id="91"),
        Link(module="Leads", contact_id="2", zoho_id="92"),
        ApiUsage(day=datetime.now(timezone.utc).date(), endpoint="GET /Leads", calls=7, credits=12),
    )
    text = admin.text("/")
    assert '<span class="zs-stat">2</span> contacts linked' in text
    assert '<span class="zs-stat">7</span> API calls' in text
    assert '<span class="zs-stat">12</span> credits used' in text
    assert "1 Mar 2026, 10:30 CET" in text  # last pull, in the sync's zone
    assert "1 Mar 2026, 11:30 CET" in text  # next pull: one interval later
    assert "only while automatic sync is on" not in text


def test_the_activity_chart_draws_a_bar_per_day_of_changes(admin: Admin) -> None:
    now = datetime.now(timezone.utc)
    _add(
        admin,
        Run(
            kind="sync",
            mode="since_last",
            started_at=now - timedelta(days=1),
            counts={
                "to_zoho.create": 3,
                "to_zoho.update": 2,
                "to_host.update": 4,
                "to_host.error": 1,
                "calls": 5,
            },
        ),
        Run(kind="sync", mode="since_last", started_at=now, counts={"to_zoho.update": 1}),
        Run(kind="sync", mode="all", dry_run=True, started_at=now, counts={"to_zoho.create": 500}),
    )
    text = admin.text("/")
    assert "No syncs in the last 14 days" not in text
    assert "<svg" in text and 'class="zs-bar-zoho"' in text and 'class="zs-bar-host"' in text
    assert "5 to Zoho, 4 to this site, 1 error (1 run)" in text
    assert "10 records changed in all" in text  # the dry run is not activity


def test_days_are_counted_in_the_sync_time_zone() -> None:
    class FakeRun:
        def __init__(self, started_at: datetime, counts: dict[str, int]) -> None:
            self.started_at, self.counts = started_at, counts

    from zoneinfo import ZoneInfo

    late_utc = datetime(2026, 3, 1, 23, 30, tzinfo=timezone.utc)  # 2 March in Sydney
    days = daily_activity(
        [FakeRun(late_utc, {"to_host.create": 2})],
        ZoneInfo("Australia/Sydney"),
        date(2026, 3, 2),
        days=3,
    )
    assert [(day.day.day, day.to_host) for day in days] == [(28, 0), (1, 0), (2, 2)]


def test_polling_the_overview_with_htmx_returns_only_the_live_part(admin: Admin) -> None:
    response = admin.get("/", headers={"HX-Request": "true", "HX-Target": "zs-overview"})
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    assert text.lstrip().startswith('<div id="zs-overview"')
    assert "<html" not in text


def test_zoho_text_on_the_overview_is_escaped(admin: Admin) -> None:
    admin.store_connection(org={"company_name": "<script>alert('org')</script>"})
    text = admin.text("/")
    assert "<script>alert" not in text
    assert "&lt;script&gt;alert(&#39;org&#39;)&lt;/script&gt;" in text


def test_no_page_shows_tokens_or_the_client_secret(admin: Admin) -> None:
    admin.store_connection()
    admin.update_settings(module="Leads")
    for path in ("/", "/settings", "/mapping"):
        text = admin.text(path)
        for secret in ("refresh-secret-value", "access-secret-value", "sandbox-client-secret"):
            assert secret not in text, (path, secret)
