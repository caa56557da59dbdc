"""Synchronise, beyond the happy path in test_sync_page.py: a plan leaves this site alone,
shows conflicts with who wins, turns a Zoho refusal into a next step instead of a Run
button, answers htmx with a fragment it can swap, and refuses non-admins."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa

from flask_zoho_sync.models import FieldMap, Link, RecordHistory, Run
from flask_zoho_sync.status import sync_status
from tests.web.conftest import PREFIX, Admin, sandbox_config
from tests.web.test_sync_page import ready, run_worker  # noqa: F401  (fixture)


def host_snapshot(admin: Admin) -> dict[str, Any]:
    """Everything a plan must not touch on this site's side."""
    with admin.host.app.app_context():
        session = admin.state.db.session
        contacts = {
            c.email: (c.first_name, c.last_name, c.company)
            for c in session.scalars(sa.select(admin.host.Contact))
        }

        def count(model: Any) -> int:
            return session.scalar(sa.select(sa.func.count()).select_from(model)) or 0

        snapshot = {
            "contacts": contacts,
            # What waits for Zoho, not how it is stored: reading the outbox may expand a
            # flush's batch row into per-contact rows, which changes nothing that syncs.
            "pending": sync_status(session)["counts"]["pending"],
            "links": count(Link),
            "history": count(RecordHistory),
            "runs": count(Run),
        }
        session.rollback()
        return snapshot


def test_a_plan_leaves_this_site_untouched(ready: Admin, zoho_sandbox: Any) -> None:  # noqa: F811
    before = host_snapshot(ready)
    response = ready.plan({"mode": "since_last"})
    assert response.status_code == 200
    assert "2 created" in response.get_data(as_text=True)
    assert host_snapshot(ready) == before
    reads = ("GET", "POST /oauth", "POST /coql")  # the token and COQL queries write nothing
    writes = [k for k in zoho_sandbox.stats()["calls"] if not k.startswith(reads)]
    assert writes == []


def test_a_plan_shows_a_conflict_and_which_side_wins(
    ready: Admin,  # noqa: F811
    zoho_sandbox: Any,
) -> None:
    host = ready.host
    with host.app.app_context():
        ready.state.run_sync(mode="all")
        contact = host.db.session.scalar(
            sa.select(host.Contact).where(host.Contact.email == "ann@example.org")
        )
        contact.last_name = "Host-edit"
        host.db.session.commit()
    [lead] = [r for r in zoho_sandbox.records("Leads") if r["Email"] == "ann@example.org"]
    zoho_sandbox.advance_clock(120)
    zoho_sandbox.update_record("Leads", lead["id"], {"Last_Name": "Zoho-<b>edit</b>"})
    text = ready.plan({"mode": "since_last"}).get_data(as_text=True)
    assert "Both changed <strong>last_name</strong>" in text
    assert "this site “Host-edit”" in text
    assert "Zoho “Zoho-&lt;b&gt;edit&lt;/b&gt;”" in text
    assert "Zoho wins" in text
    assert "<b>edit</b>" not in text


def test_a_plan_zoho_refuses_says_to_reconnect_and_offers_no_run(
    ready: Admin,  # noqa: F811
    zoho_sandbox: Any,
) -> None:
    assert ready.plan({"mode": "all"}).status_code == 200  # fields now cached
    zoho_sandbox.faults(revoke_all_tokens=True, expire_access_tokens=True)
    response = ready.plan({"mode": "all"})
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Zoho refused the connection" in text
    assert "Connect Zoho CRM again" in text
    assert "Run this sync" not in text
    assert "Nothing to change" not in text


@pytest.mark.parametrize("where", ["worker plan", "plan here", "run now"])
def test_zoho_refusing_before_the_run_starts_is_a_page_not_a_500(
    ready: Admin,  # noqa: F811
    zoho_sandbox: Any,
    where: str,
) -> None:
    """Building the engine may already ask Zoho (its field list); that refusal too must say
    what to do, wherever the work ran."""
    zoho_sandbox.faults(revoke_all_tokens=True, expire_access_tokens=True)
    if where == "worker plan":
        response = ready.plan({"mode": "all"})
        assert response.status_code == 200
        assert "Run this sync" not in response.get_data(as_text=True)
    else:
        path, form = {
            "plan here": ("/sync/plan", {"mode": "all", "here": "1"}),
            "run now": ("/sync/run-now", {"mode": "all"}),
        }[where]
        response = ready.post(path, form)
        assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert "Zoho refused the connection" in text and "Connect Zoho CRM again" in text


def test_run_now_that_zoho_refuses_says_what_to_do(ready: Admin, zoho_sandbox: Any) -> None:  # noqa: F811
    assert ready.plan({"mode": "all"}).status_code == 200  # fields now cached
    state = ready.state
    state.config = replace(state.config, redis_url="redis://127.0.0.1:1/0")
    state._redis = None
    zoho_sandbox.faults(revoke_all_tokens=True, expire_access_tokens=True)
    response = ready.post("/sync/run-now", {"mode": "all"})
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Failed" in text
    assert "Connect Zoho CRM again" in text


def test_htmx_gets_the_panel_alone_even_when_redis_is_down(
    ready: Admin,  # noqa: F811
    zoho_sandbox: Any,
) -> None:
    """htmx only swaps a 4xx/5xx's #zs-error-message; the Redis-down offer must arrive as
    a panel it swaps in place, or the admin would see nothing happen."""
    plan = ready.plan({"mode": "all"}, htmx=True)
    assert plan.status_code == 200
    assert plan.get_data(as_text=True).lstrip().startswith('<div id="zs-sync">')
    state = ready.state
    state.config = replace(state.config, redis_url="redis://127.0.0.1:1/0")
    state._redis = None
    down = ready.htmx_post("/sync/run", {"mode": "all"})
    assert down.status_code == 200
    text = down.get_data(as_text=True)
    assert "<html" not in text
    assert "did not answer" in text and "Run now in this request" in text
    # Without htmx the same answer is a full page with the honest status.
    assert ready.post("/sync/run", {"mode": "all"}).status_code == 503


def test_the_run_form_of_a_plan_and_the_progress_show_a_loading_state(
    ready: Admin,  # noqa: F811
    zoho_sandbox: Any,
) -> None:
    plan = ready.plan({"mode": "all"}).get_data(as_text=True)
    assert 'hx-indicator="#zs-run-busy"' in plan and "Queueing…" in plan
    queued = ready.post("/sync/run", {"mode": "all"}).get_data(as_text=True)
    assert 'hx-trigger="load, every 2s"' in queued
    assert "<progress" in queued
    run_worker(ready)
    assert ready.get("/sync/progress").status_code == 286


def test_a_page_that_is_not_ready_points_at_settings_then_mapping(
    connected_admin: Admin,
) -> None:
    text = connected_admin.text("/sync")
    assert "Choose what to sync" in text
    connected_admin.update_settings(module="Leads")
    text = connected_admin.text("/sync")
    assert "Map the fields" in text
    refused = connected_admin.post("/sync/plan", {"mode": "all"})
    assert refused.status_code == 409
    assert "Map the fields" in refused.get_data(as_text=True)


@pytest.mark.parametrize(
    "request_line",
    [
        "GET /sync",
        "GET /sync/progress",
        "POST /sync/plan",
        "GET /sync/plan/zoho-sync-plan-1",
        "POST /sync/run",
        "POST /sync/run-now",
    ],
)
def test_a_non_admin_is_refused_even_with_a_valid_token(
    make_admin: Callable[..., Admin], zoho_sandbox: Any, request_line: str
) -> None:
    allowed = {"value": True}
    admin = make_admin(admin_check=lambda: allowed["value"], **sandbox_config(zoho_sandbox))
    token = admin.csrf_token()
    allowed["value"] = False
    method, path = request_line.split()
    if method == "GET":
        response = admin.client.get(PREFIX + path)
    else:
        response = admin.client.post(PREFIX + path, data={"csrf_token": token, "mode": "all"})
    assert response.status_code == 403
    assert zoho_sandbox.records("Leads") == []


@pytest.mark.parametrize("path", ["/sync/plan", "/sync/run"])
def test_sync_posts_without_the_token_are_refused(
    ready: Admin,  # noqa: F811
    zoho_sandbox: Any,
    path: str,
) -> None:
    response = ready.client.post(PREFIX + path, data={"mode": "all"})
    assert response.status_code == 400
    with ready.host.app.app_context():
        assert ready.state.db.session.scalar(sa.select(sa.func.count()).select_from(Run)) == 0


def test_with_only_email_mapped_every_button_refuses_with_the_way_to_field_mapping(
    connected_admin: Admin, zoho_sandbox: Any
) -> None:
    """Issue 16: an email-only mapping once pulled 25 blank contacts; now nothing syncs."""
    zoho_sandbox.generate_records("Leads", 3)
    connected_admin.update_settings(module="Leads")
    with connected_admin.host.app.app_context():
        session = connected_admin.state.db.session
        session.add(FieldMap(kind="field", host_key="email", zoho_field="Email"))
        session.commit()
    page = connected_admin.text("/sync")
    assert "no field beyond email is mapped" in page
    assert 'href="/admin/zoho/mapping"' in page
    for path in ("/sync/plan", "/sync/run", "/sync/run-now"):
        refused = connected_admin.post(path, {"mode": "all", "here": "1"})
        assert refused.status_code == 409, path
        assert "map the fields on the Field mapping page" in refused.get_data(as_text=True)
    with connected_admin.host.app.app_context():
        assert connected_admin.state.db.session.query(connected_admin.host.Contact).count() == 0
