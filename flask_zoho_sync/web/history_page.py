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

from ..extension import get_state
from ..jobs import schedule_push
from ..ledger import Ledger
from ..models import RecordHistory, Run
from ..preferences import get_settings
from .blueprint import bp

PAGE_SIZE = 50


def _contact_link(contact_id: str | None) -> str | None:
    """The host's page of a contact, when the adapter can build one."""
    if not contact_id:
        return None
    state = get_state()
    contact = state.adapter.get(contact_id)
    if contact is None:
        return None
    try:
        return state.adapter.contact_url(contact)
    except Exception:  # a host's URL builder must not break the history page
        return None


@bp.get("/history")
def history() -> ResponseReturnValue:
    session = get_state().db.session
    runs = session.scalars(
        sa.select(Run).where(Run.dry_run.is_(False)).order_by(Run.id.desc()).limit(PAGE_SIZE)
    ).all()
    failures = session.scalars(
        sa.select(RecordHistory)
        .where(RecordHistory.action == "error", RecordHistory.resolved_at.is_(None))
        .order_by(RecordHistory.id.desc())
        .limit(200)
    ).all()
    links = {row.contact_id: _contact_link(row.contact_id) for row in failures}
    return render_template("zoho_sync/history.html", runs=runs, failures=failures, links=links)


@bp.get("/history/runs/<int:run_id>")
def history_run(run_id: int) -> ResponseReturnValue:
    session = get_state().db.session
    run = session.get(Run, run_id)
    if run is None:
        abort(404)
    changes = session.scalars(
        sa.select(RecordHistory).where(RecordHistory.run_id == run_id).order_by(RecordHistory.id)
    ).all()
    return render_template("zoho_sync/history_run.html", run=run, changes=changes)


@bp.get("/history/contacts/<contact_id>")
def history_contact(contact_id: str) -> ResponseReturnValue:
    session = get_state().db.session
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
        link=_contact_link(contact_id),
    )


@bp.post("/history/errors/<int:error_id>/retry")
def history_retry(error_id: int) -> ResponseReturnValue:
    state = get_state()
    session = state.db.session
    error = session.get(RecordHistory, error_id)
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
