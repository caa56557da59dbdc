"""History: what the runs did, which records failed and why, and each record's own story.

A failed record is kept until it syncs cleanly (its error is then marked resolved), so the
list is what still needs attention, not a log to scroll. Retry puts the contact back in the
outbox and schedules a push; the contact's own history says what happened next.
"""

from __future__ import annotations

from datetime import datetime, timezone

import redis
import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue

from ..connection import ConnectedAccount, describe_connection
from ..dbids import row_by_id
from ..jobs import schedule_push
from ..ledger import Ledger
from ..models import RecordHistory, Run
from ..preferences import get_settings
from ..state import ZohoSyncState
from .blueprint import bp, sync_state
from .url_values import page_number

PAGE_SIZE = 50


def zoho_record_url(
    account: ConnectedAccount | None, module: str | None, zoho_id: str | None
) -> str | None:
    """Where the record opens in Zoho's web UI (the sandbox's own page for the sandbox).

    Zoho's CRM UI lives at ``crm.zoho.{tld}`` beside the API's ``www.zohoapis.{tld}``, with
    the org's domain name in the path.
    """
    if account is None or not module or not zoho_id:
        return None
    api = account.api_domain.rstrip("/")
    if "://www.zohoapis." in api:
        if not account.org_domain:
            return None
        return f"{api.replace('://www.zohoapis.', '://crm.zoho.')}/crm/{account.org_domain}/tab/{module}/{zoho_id}"
    return f"{api}/ui/{module}/{zoho_id}/edit"


def _contact_link(state: ZohoSyncState, contact_id: str | None) -> str | None:
    """The host's page of a contact, when the adapter can build one."""
    if not contact_id:
        return None
    contact = state.adapter.get(contact_id)
    if contact is None:
        return None
    try:
        return state.adapter.contact_url(contact)
    except Exception:  # a host's URL builder must not break the history page
        return None


@bp.app_template_filter("zs_duration")
def duration(run: Run) -> str:
    """How long a run took, as an admin reads it (``4 s``, ``2 min 5 s``, ``1 h 3 min``).

    A run still going (or one a crashed worker left "running") has no end, so it shows
    "—" rather than a time that keeps growing.
    """
    if run.started_at is None or run.finished_at is None:
        return "—"
    start, end = run.started_at, run.finished_at
    if (start.tzinfo is None) != (end.tzinfo is None):  # SQLite drops the zone
        start, end = start.replace(tzinfo=None), end.replace(tzinfo=None)
    seconds = max(int((end - start).total_seconds()), 0)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


@bp.get("/history")
def history() -> ResponseReturnValue:
    state = sync_state()
    session = state.db.session
    page = page_number(PAGE_SIZE)
    # One row more than a page tells whether an older page exists, without a COUNT(*).
    runs = session.scalars(
        sa.select(Run)
        .where(Run.dry_run.is_(False))
        .order_by(Run.id.desc())
        .offset((page - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE + 1)
    ).all()
    older = len(runs) > PAGE_SIZE
    runs = runs[:PAGE_SIZE]
    failures = session.scalars(
        sa.select(RecordHistory)
        .where(RecordHistory.action == "error", RecordHistory.resolved_at.is_(None))
        .order_by(RecordHistory.id.desc())
        .limit(200)
    ).all()
    links = {row.contact_id: _contact_link(state, row.contact_id) for row in failures}
    account = describe_connection(session)
    module = get_settings(session).module
    zoho_links = {row.zoho_id: zoho_record_url(account, module, row.zoho_id) for row in failures}
    return render_template(
        "zoho_sync/history.html",
        runs=runs,
        page=page,
        older=older,
        failures=failures,
        links=links,
        zoho_links=zoho_links,
    )


@bp.get("/history/runs/<zoho_sync_id:run_id>")
def history_run(run_id: int) -> ResponseReturnValue:
    session = sync_state().db.session
    run = row_by_id(session, Run, run_id)
    if run is None:
        abort(404)
    changes = session.scalars(
        sa.select(RecordHistory).where(RecordHistory.run_id == run_id).order_by(RecordHistory.id)
    ).all()
    return render_template("zoho_sync/history_run.html", run=run, changes=changes)


# Registered last, so url_for() keeps building the plural form; the singular one is the
# path the issue named and still answers.
@bp.get("/history/contact/<contact_id>")
@bp.get("/history/contacts/<contact_id>")
def history_contact(contact_id: str) -> ResponseReturnValue:
    state = sync_state()
    session = state.db.session
    changes = session.scalars(
        sa.select(RecordHistory)
        .where(RecordHistory.contact_id == contact_id)
        .order_by(RecordHistory.id.desc())
        .limit(500)
    ).all()
    return render_template(
        "zoho_sync/history_contact.html",
        contact_id=contact_id,
        changes=changes,
        link=_contact_link(state, contact_id),
    )


@bp.post("/history/errors/<zoho_sync_id:error_id>/retry")
def history_retry(error_id: int) -> ResponseReturnValue:
    state = sync_state()
    session = state.db.session
    error = row_by_id(session, RecordHistory, error_id)
    if error is None or error.action != "error" or not error.contact_id:
        abort(404)
    Ledger(session, get_settings(session)).requeue_contact(error.contact_id)
    error.resolved_at = datetime.now(timezone.utc)
    session.commit()
    try:
        schedule_push(state, delay=0)
        flash(
            f"Contact {error.contact_id} will be sent to Zoho again in a moment; its history "
            "shows the outcome.",
            "zs-success",
        )
    except (redis.RedisError, OSError):
        flash(
            f"Contact {error.contact_id} is queued again, but the job queue did not answer; "
            "it goes with the next sync (or press Synchronise).",
            "zs-warning",
        )
    return redirect(url_for("zoho_sync.history"))
