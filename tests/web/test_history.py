"""History, beyond test_history_page.py: pages of runs with their duration, failures that
have no contact on this site, escaping of Zoho's text, Retry with Redis down, the contact
page under both paths, the overview's link to the failures, and refusals."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from flask_zoho_sync.models import OutboxEntry, RecordHistory, Run
from flask_zoho_sync.web.history_page import PAGE_SIZE, duration
from tests.web.conftest import PREFIX, Admin
from tests.web.test_history_page import failed  # noqa: F401  (fixture)

HOSTILE = '<script>alert("zoho")</script>'


def add_runs(admin: Admin, count: int) -> None:
    start = datetime(2026, 11, 1, 9, 0, tzinfo=timezone.utc)
    with admin.host.app.app_context():
        session = admin.state.db.session
        session.add_all(
            Run(
                kind="sync",
                mode="all",
                status="succeeded",
                trigger="schedule",
                error=f"note run-{n}",
                started_at=start + timedelta(hours=n),
                finished_at=start + timedelta(hours=n, seconds=65),
                counts={"to_zoho.create": n},
            )
            for n in range(count)
        )
        session.commit()


def test_runs_come_in_pages_newest_first_with_their_duration(admin: Admin) -> None:
    add_runs(admin, PAGE_SIZE + 3)
    # These runs changed nothing (no record history), so only the toggle shows them.
    assert "run-2<" not in admin.text("/history")
    first = admin.text("/history?quiet=1")
    assert first.index(f"run-{PAGE_SIZE + 2}<") < first.index(f"run-{PAGE_SIZE + 1}<")
    assert "run-2<" not in first
    assert "1 min 5 s" in first
    assert "Older runs" in first and "Newer runs" not in first
    assert 'href="/admin/zoho/history?quiet=1&amp;page=2"' in first or (
        'href="/admin/zoho/history?page=2&amp;quiet=1"' in first
    )
    second = admin.text("/history?page=2&quiet=1")
    assert all(f"run-{n}<" in second for n in range(3))
    assert "Newer runs" in second and "Older runs" not in second
    assert "No runs on page 9" in admin.text("/history?page=9&quiet=1")
    assert admin.get("/history?page=abc").status_code == 400
    assert admin.get("/history?page=-2").status_code == 400


def test_duration_reads_like_a_person_would_say_it() -> None:
    start = datetime(2026, 11, 1, tzinfo=timezone.utc)

    def took(seconds: float | None) -> str:
        end = None if seconds is None else start + timedelta(seconds=seconds)
        return duration(Run(started_at=start, finished_at=end))

    assert took(4) == "4 s"
    assert took(125) == "2 min 5 s"
    assert took(3 * 3600 + 120) == "3 h 2 min"
    assert took(None) == "—"  # still running
    naive_end = Run(started_at=start, finished_at=datetime(2026, 11, 1, 0, 0, 9))
    assert duration(naive_end) == "9 s"


def test_a_failure_without_a_contact_here_and_zoho_text_are_escaped(admin: Admin) -> None:
    """A Zoho record this site could not take has no contact id: the page still renders,
    offers no Retry (there is nothing to push), and Zoho's text stays text."""
    with admin.host.app.app_context():
        session = admin.state.db.session
        session.add(
            RecordHistory(
                direction="to_host",
                action="error",
                zoho_id="4242",
                reason=HOSTILE,
                error_code="<i>CODE</i>",
                changes={"fields": {"last_name": [None, HOSTILE]}},
            )
        )
        session.commit()
    text = admin.text("/history")
    assert "4242" in text and "not created on this site" in text
    assert HOSTILE not in text and "<i>CODE</i>" not in text
    assert "&lt;script&gt;alert(&#34;zoho&#34;)&lt;/script&gt;" in text
    assert "Retry" not in text


def test_a_run_and_a_contact_page_escape_zoho_values(admin: Admin) -> None:
    with admin.host.app.app_context():
        session = admin.state.db.session
        run = Run(kind="sync", mode="all", status="partial", error=HOSTILE, counts={})
        session.add(run)
        session.flush()
        session.add(
            RecordHistory(
                run_id=run.id,
                contact_id="7",
                zoho_id="99",
                direction="to_host",
                action="update",
                changes={
                    "fields": {"company": ["Old", HOSTILE]},
                    "conflicts": [
                        {
                            "key": "company",
                            "host": "Old",
                            "zoho": HOSTILE,
                            "winner": "zoho",
                            "reason": "newest wins",
                        }
                    ],
                },
            )
        )
        session.commit()
        run_id = run.id
    for path in (f"/history/runs/{run_id}", "/history/contacts/7", "/history"):
        text = admin.text(path)
        assert HOSTILE not in text, path
    contact = admin.text("/history/contacts/7")
    assert "Old → &lt;script&gt;" in contact
    assert "Zoho won (newest wins)" in contact


def test_the_contact_page_answers_at_the_singular_path_too(failed: Admin) -> None:  # noqa: F811
    with failed.host.app.app_context():
        contact_id = failed.state.db.session.scalar(
            sa.select(RecordHistory.contact_id).where(RecordHistory.action == "error")
        )
    plural = failed.text(f"/history/contacts/{contact_id}")
    singular = failed.text(f"/history/contact/{contact_id}")
    assert "History of B (b@example.org)" in plural
    assert singular == plural
    assert "Failed" in plural and ("DUPLICATE_CONTACT" in plural or "DUPLICATE_DATA" in plural)
    assert failed.text("/history/contacts/nobody").count("No record changes.") == 1


def test_retry_with_redis_down_still_requeues_and_says_so(failed: Admin) -> None:  # noqa: F811
    state = failed.state
    state.config = replace(state.config, redis_url="redis://127.0.0.1:1/0")
    state._redis = None
    with failed.host.app.app_context():
        error = state.db.session.scalar(
            sa.select(RecordHistory).where(RecordHistory.action == "error")
        )
        error_id, contact_id = error.id, error.contact_id
    response = failed.post(f"/history/errors/{error_id}/retry", follow_redirects=True)
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "the job queue did not answer" in text
    assert "No record is failing." in text
    with failed.host.app.app_context():
        session = state.db.session
        assert session.get(RecordHistory, error_id).resolved_at is not None
        pending = session.scalars(
            sa.select(OutboxEntry.contact_id).where(OutboxEntry.processed_at.is_(None))
        ).all()
    assert contact_id in pending


def test_retry_of_an_unknown_or_non_error_row_is_404(failed: Admin) -> None:  # noqa: F811
    with failed.host.app.app_context():
        created = failed.state.db.session.scalar(
            sa.select(RecordHistory.id).where(RecordHistory.action == "create")
        )
    assert failed.post(f"/history/errors/{created}/retry").status_code == 404
    assert failed.post("/history/errors/999999/retry").status_code == 404


def test_the_overview_links_unresolved_errors_to_history(failed: Admin) -> None:  # noqa: F811
    text = failed.text("/")
    assert f'href="{PREFIX}/history#zs-failures-title">with unresolved errors' in text


@pytest.mark.parametrize(
    "request_line",
    [
        "GET /history",
        "GET /history/runs/1",
        "GET /history/contacts/1",
        "POST /history/errors/1/retry",
    ],
)
def test_a_non_admin_is_refused_history(
    make_admin: Callable[..., Admin], request_line: str
) -> None:
    allowed = {"value": True}
    admin = make_admin(admin_check=lambda: allowed["value"])
    token = admin.csrf_token()
    allowed["value"] = False
    method, path = request_line.split()
    if method == "GET":
        response = admin.client.get(PREFIX + path)
    else:
        response = admin.client.post(PREFIX + path, data={"csrf_token": token})
    assert response.status_code == 403
    assert "administrators" in response.get_data(as_text=True)
