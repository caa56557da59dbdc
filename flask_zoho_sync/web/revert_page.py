"""A run's "Revert this run": a preview of exactly what the revert does, then the revert.

The preview reads (the run's history, today's host values, one Zoho read per 100 records)
and writes nothing; the confirming POST does what it listed, under the run lock, and shows
the revert's own run page.
"""

from __future__ import annotations

from flask import abort, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from ..dbids import row_by_id
from ..errors import ZohoSyncError
from ..jobs import SyncBusy, exclusive_run
from ..models import Run
from ..undo import RevertRefused, revert_run
from ..zoho.errors import ZohoError
from .blueprint import bp, sync_state
from .messages import tell


# One rule for both methods: Werkzeug checks a rule's method before its converter, so a GET
# rule and a POST rule on one path would answer an id no row can have with 405, not 404.
@bp.route("/history/runs/<zoho_sync_id:run_id>/revert", methods=["GET", "POST"])
def history_revert(run_id: int) -> ResponseReturnValue:
    if row_by_id(sync_state().db.session, Run, run_id) is None:
        abort(404)
    if request.method == "POST":
        return _revert(run_id)
    return _preview(run_id)


def _preview(run_id: int) -> ResponseReturnValue:
    state = sync_state()
    try:
        outcome = revert_run(state, run_id, dry_run=True)
    except (RevertRefused, ZohoError, ZohoSyncError) as exc:
        tell(str(exc), "warning")
        return redirect(url_for("zoho_sync.history_run", run_id=run_id))
    return render_template("zoho_sync/history_revert.html", outcome=outcome)


def _revert(run_id: int) -> ResponseReturnValue:
    state = sync_state()
    try:
        with exclusive_run(state):
            outcome = revert_run(state, run_id, dry_run=False)
    except SyncBusy as exc:
        tell(f"{exc}. Wait for it to finish, then revert again.", "warning")
        return redirect(url_for("zoho_sync.history_run", run_id=run_id))
    except (RevertRefused, ZohoError, ZohoSyncError) as exc:
        tell(str(exc), "warning")
        return redirect(url_for("zoho_sync.history_run", run_id=run_id))
    counts = outcome.summary()
    written = sum(value for key, value in counts.items() if key.endswith((".update", ".create")))
    if outcome.errors:
        tell(
            f"Run {run_id} is reverted in part: {len(outcome.errors)} record(s) failed "
            "(listed below).",
            "warning",
        )
    else:
        tell(f"Run {run_id} is reverted: {written} record(s) changed back.", "success")
    return redirect(url_for("zoho_sync.history_run", run_id=outcome.revert_run_id))
