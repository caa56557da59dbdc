"""A run's "Revert this run": a preview of exactly what the revert does, then the revert.

The preview reads (the run's history, today's host values, one Zoho read per 100 records)
and writes nothing; the confirming POST does what it listed, under the run lock, and shows
the revert's own run page.
"""

from __future__ import annotations

from flask import redirect, render_template, url_for
from flask.typing import ResponseReturnValue

from ..errors import ZohoSyncError
from ..jobs import SyncBusy, exclusive_run
from ..undo import RevertRefused, revert_run
from ..zoho.errors import ZohoError
from .blueprint import bp, sync_state
from .messages import tell


@bp.get("/history/runs/<zoho_sync_id:run_id>/revert")
def history_revert_preview(run_id: int) -> ResponseReturnValue:
    state = sync_state()
    try:
        outcome = revert_run(state, run_id, dry_run=True)
    except (RevertRefused, ZohoError, ZohoSyncError) as exc:
        tell(str(exc), "warning")
        return redirect(url_for("zoho_sync.history_run", run_id=run_id))
    return render_template("zoho_sync/history_revert.html", outcome=outcome)


@bp.post("/history/runs/<zoho_sync_id:run_id>/revert")
def history_revert(run_id: int) -> ResponseReturnValue:
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
