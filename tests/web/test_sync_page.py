"""The Synchronise page: a plan that changes nothing, a queued run with live progress, the
mass-delete confirmation, and a way to run when Redis is down."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa

from flask_zoho_sync import jobs
from flask_zoho_sync.models import Run
from flask_zoho_sync.preferences import add_default_mappings, get_settings
from tests.web.conftest import Admin


@pytest.fixture
def ready(connected_admin: Admin) -> Admin:
    """Connected, Leads chosen, standard fields mapped, two contacts waiting."""
    host = connected_admin.host
    with host.app.app_context():
        session = host.db.session
        get_settings(session).module = "Leads"
        add_default_mappings(session, connected_admin.state.adapter, "Leads")
        session.add_all(
            [
                host.Contact(first_name="Ann", last_name="Lee", email="ann@example.org"),
                host.Contact(
                    first_name="<script>x</script>", last_name="Ray", email="bo@example.org"
                ),
            ]
        )
        session.commit()
    return connected_admin


def run_worker(admin: Admin) -> None:
    admin.work_queue()


def test_the_page_says_what_is_missing_before_a_sync_can_run(admin: Admin) -> None:
    text = admin.get("/sync").get_data(as_text=True)
    assert "Not ready to synchronise" in text
    assert "not connected" in text


def test_a_plan_shows_the_changes_and_writes_nothing(ready: Admin, zoho_sandbox: Any) -> None:
    response = ready.plan({"mode": "all"})
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "In Zoho</dt><dd>2 created" in text
    assert "about 3 calls" in text  # the listing, the deleted check, one upsert
    assert "&lt;script&gt;x&lt;/script&gt;" in text and "<script>x</script>" not in text
    assert "<td>Ann Lee (ann@example.org)</td>" in text  # contacts named, not numbered
    assert zoho_sandbox.records("Leads") == []
    calls = zoho_sandbox.stats()["calls"]
    reads = ("GET", "POST /oauth", "POST /coql")  # a COQL query is a POST that writes nothing
    assert not [key for key in calls if not key.startswith(reads)]
    with ready.host.app.app_context():
        assert ready.state.db.session.scalar(sa.select(sa.func.count()).select_from(Run)) == 0


def test_run_queues_a_job_and_the_progress_ends_with_the_result(
    ready: Admin, zoho_sandbox: Any
) -> None:
    response = ready.post("/sync/run", {"mode": "all"})
    assert response.status_code == 200
    assert "waiting for the worker" in response.get_data(as_text=True)
    waiting = ready.get("/sync/progress")
    assert waiting.status_code == 200  # keeps polling
    run_worker(ready)
    finished = ready.get("/sync/progress")
    assert finished.status_code == 286  # htmx stops polling
    text = finished.get_data(as_text=True)
    assert "Succeeded" in text and "2 created" in text
    assert len(zoho_sandbox.records("Leads")) == 2


def test_a_mass_delete_asks_for_confirmation_then_runs(ready: Admin, zoho_sandbox: Any) -> None:
    host = ready.host
    with host.app.app_context():
        session = host.db.session
        session.add_all(
            host.Contact(last_name=f"P{i}", email=f"p{i}@example.org") for i in range(20)
        )
        session.commit()
        ready.state.run_sync(mode="all")
    for lead in zoho_sandbox.records("Leads")[:15]:
        zoho_sandbox.delete_record("Leads", lead["id"])
    plan = ready.plan({"mode": "since_last"}).get_data(as_text=True)
    assert "Nothing was deleted" in plan
    assert "Confirm deletions and run" in plan
    ready.post("/sync/run", {"mode": "since_last", "confirm_deletes": "1"})
    run_worker(ready)
    with host.app.app_context():
        remaining = host.db.session.scalar(sa.select(sa.func.count()).select_from(host.Contact))
    assert remaining == 22 - 15


def test_with_redis_down_the_page_offers_to_run_in_the_request(
    ready: Admin, zoho_sandbox: Any
) -> None:
    state = ready.state
    state.config = replace(state.config, redis_url="redis://127.0.0.1:1/0")
    state._redis = None
    response = ready.post("/sync/run", {"mode": "all"})
    assert response.status_code == 503
    assert "did not answer" in response.get_data(as_text=True)
    now = ready.post("/sync/run-now", {"mode": "all"})
    assert "Succeeded" in now.get_data(as_text=True)
    assert len(zoho_sandbox.records("Leads")) == 2


def test_a_plan_waits_for_the_worker_and_offers_to_be_made_here_when_none_listens(
    ready: Admin, zoho_sandbox: Any
) -> None:
    queued = ready.post("/sync/plan", {"mode": "all"}).get_data(as_text=True)
    assert "waiting for the worker to start the plan" in queued
    assert "No worker is running" in queued
    link = re.search(r'<a href="(/admin/zoho/sync/plan/zoho-sync-plan-\d+)">', queued)
    assert link, "a link to the plan, for a browser without JavaScript"
    still = ready.client.get(link.group(1)).get_data(as_text=True)
    assert "waiting for the worker to start the plan" in still
    assert not any(key.startswith("GET /Leads") for key in zoho_sandbox.stats()["calls"])

    here = ready.post("/sync/plan", {"mode": "all", "here": "1"}).get_data(as_text=True)
    assert "In Zoho</dt><dd>2 created" in here
    assert "Run this sync" in here
    assert zoho_sandbox.records("Leads") == []


def test_with_redis_down_the_plan_is_made_in_the_request(ready: Admin, zoho_sandbox: Any) -> None:
    state = ready.state
    state.config = replace(state.config, redis_url="redis://127.0.0.1:1/0")
    state._redis = None
    page = ready.post("/sync/plan", {"mode": "all"}).get_data(as_text=True)
    assert "Redis did not answer, so this plan was made in the request instead" in page
    assert "In Zoho</dt><dd>2 created" in page
    assert zoho_sandbox.records("Leads") == []


def test_a_running_plan_says_how_far_it_has_read(
    ready: Admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flask_zoho_sync.web import sync_page

    running = jobs.PlanProgress("running", "all", workers=1, records_done=12345)
    monkeypatch.setattr(sync_page, "plan_progress", lambda state, job_id: running)
    page = ready.get("/sync/plan/zoho-sync-plan-1").get_data(as_text=True)
    assert "Plan: All records" in page
    assert "12,345 records looked at so far" in page
    assert 'hx-trigger="load delay:1s"' in page  # and the page keeps following it
    assert "No worker is running" not in page


def test_a_plan_waiting_behind_a_busy_worker_says_so_and_offers_to_plan_here(
    ready: Admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flask_zoho_sync.web import sync_page

    waiting = jobs.PlanProgress("waiting", "all", workers=1, workers_busy=True)
    monkeypatch.setattr(sync_page, "plan_progress", lambda state, job_id: waiting)
    page = ready.get("/sync/plan/zoho-sync-plan-1").get_data(as_text=True)
    assert "The worker is busy with another job" in page
    assert "Make the plan in this request" in page
    assert "No worker is running" not in page


def test_a_plan_no_longer_kept_says_to_preview_again(ready: Admin) -> None:
    for job_id in ("zoho-sync-plan-1", "not-a-plan"):
        page = ready.get(f"/sync/plan/{job_id}").get_data(as_text=True)
        assert "This plan is no longer available" in page
        assert "Try again" in page


def test_a_plan_whose_job_crashed_says_why_and_changed_nothing(
    ready: Admin, zoho_sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flask_zoho_sync.extension import ZohoSyncState

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(ZohoSyncState, "run_sync", crash)
    page = ready.plan({"mode": "all"}).get_data(as_text=True)
    assert "The plan could not be made" in page
    assert "the database went away" in page
    assert "Run this sync" not in page
    assert zoho_sandbox.records("Leads") == []


def test_a_plan_stopped_by_an_error_that_cannot_travel_still_says_why(
    ready: Admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker hands the plan back pickled; an error that does not survive that would
    lose the whole plan, so it travels as its message."""
    from flask_zoho_sync.extension import ZohoSyncState
    from flask_zoho_sync.sync.context import RunReport

    class NeedsTwoArguments(Exception):
        def __init__(self, first: str, second: str) -> None:
            super().__init__(f"{first} {second}")

    def stopped(*args: Any, **kwargs: Any) -> RunReport:
        error = NeedsTwoArguments("the adapter", "refused")
        return RunReport(status="failed", message=str(error), error=error)

    monkeypatch.setattr(ZohoSyncState, "run_sync", stopped)
    page = ready.plan({"mode": "all"}).get_data(as_text=True)
    assert "The sync stopped" in page and "the adapter refused" in page
    assert "Run this sync" not in page


def test_sync_posts_need_the_csrf_token(ready: Admin, zoho_sandbox: Any) -> None:
    response = ready.client.post("/admin/zoho/sync/run-now", data={"mode": "all"})
    assert response.status_code == 400
    assert zoho_sandbox.records("Leads") == []


def test_run_now_while_a_worker_runs_says_to_wait_and_sends_nothing(
    ready: Admin, zoho_sandbox: Any
) -> None:
    with ready.host.app.app_context(), jobs.run_lock(ready.state):
        response = ready.post("/sync/run-now", {"mode": "all"})
    page = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "Another sync is running" in page
    assert zoho_sandbox.records("Leads") == []


def test_the_plan_shows_the_daily_budget_and_warns_when_the_run_would_pause(
    ready: Admin, zoho_sandbox: Any
) -> None:
    import re
    from datetime import datetime, timezone

    state = ready.state
    state.config = replace(state.config, daily_credit_budget=1000)
    page = ready.plan({"mode": "all"}).get_data(as_text=True)
    assert "1,000 of 1,000 credits left" in page
    assert "will pause" not in page
    cost = int(re.search(r"about \d+ calls? \((\d+) credits?\)", page).group(1))
    # Earlier runs today spent all but what the plan's own reads need: the plan still
    # works, and it warns that the run (its reads plus its writes) would not fit.
    with ready.host.app.app_context():
        session = ready.host.db.session
        session.add(
            Run(
                kind="sync",
                mode="all",
                status="succeeded",
                credits=1000 - (cost - 1),
                started_at=datetime.now(timezone.utc),
            )
        )
        session.commit()
    page = ready.plan({"mode": "all"}).get_data(as_text=True)
    assert f"{cost - 1:,} of 1,000 credits left" in page
    assert "the run will pause when they are spent" in page
    # With nothing left even the plan's reads do not fit: it says so instead of "nothing".
    state.config = replace(state.config, daily_credit_budget=1000 - (cost - 1))
    page = ready.plan({"mode": "all"}).get_data(as_text=True)
    assert "daily credit budget is spent" in page
    assert "resumes" in page
    state.config = replace(state.config, daily_credit_budget=0)
    assert "Daily budget" not in ready.plan({"mode": "all"}).get_data(as_text=True)


def test_a_large_plan_lists_its_first_changes_and_counts_them_all(
    ready: Admin, zoho_sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flask_zoho_sync.web import sync_page

    monkeypatch.setattr(sync_page, "PLAN_ROWS_SHOWN", 3)
    zoho_sandbox.generate_records("Leads", 5)
    text = ready.plan({"mode": "all"}).get_data(as_text=True)
    assert "In this site</dt><dd>5 created" in text  # the counts stay complete
    assert "7 record changes (the first 3 listed, errors first" in text
    assert "--dry-run --json" in text
    assert text.count("<tr>") - text.count("<thead><tr>") == 3


def test_a_plan_stopped_by_the_org_reserve_says_whose_credits_ran_low(
    ready: Admin, zoho_sandbox: Any
) -> None:
    zoho_sandbox.faults(daily_credits=3000)
    zoho_sandbox.faults(consume_credits=2500)  # Zoho now reports about 490 left
    page = ready.plan({"mode": "all"}).get_data(as_text=True)
    assert "credits for today are nearly used up" in page
    assert "leaves the last 1000 to its other integrations" in page
    assert "Lower ZOHO_SYNC_CREDIT_RESERVE" in page
    assert "Nothing to change" not in page
