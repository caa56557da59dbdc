"""Synchronise: a dry-run plan first, then the run itself, with live progress.

The plan only reads Zoho (the reads the run will make anyway) and writes nothing on either
side, so an admin sees what will happen, and what it will cost in Zoho credits, before
anything happens. Both go to the worker: a plan of a large first sync waits minutes for
Zoho's export, longer than a web request lives. The page polls the plan's job, and the
run's row, until they end. When Redis cannot take a job, or no worker listens, the admin
may make the plan or run the sync in the request instead (fine for small databases)
rather than meet an error page.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import redis
import sqlalchemy as sa
from flask import make_response, render_template, request, session
from flask.typing import ResponseReturnValue

from ..jobs import (
    PlanProgress,
    SyncBusy,
    all_run_waiting,
    exclusive_run,
    plan_progress,
    schedule_alert_delivery,
    schedule_plan,
    schedule_sync,
)
from ..models import Run
from ..state import ZohoSyncState
from ..status import sync_readiness
from ..sync.context import RunReport
from ..zoho.errors import ZohoError
from ._htmx import STOP_POLLING, announce_change, is_htmx
from .blueprint import bp, sync_state
from .history_page import contact_cards, inverted_fields
from .rendering import ZohoProblem, describe_zoho_error, render_zoho_error

MODES = {"since_last": "Modified since the last sync", "all": "All records"}
#: The session remembers when this admin asked for a run, to find that run's row.
_ASKED_AT = "_zoho_sync_run_asked_at"


def _mode() -> str:
    mode = request.form.get("mode", "since_last")
    return mode if mode in MODES else "since_last"


def _ready(state: ZohoSyncState) -> str | None:
    """Why a sync cannot run yet (the page then points at the missing step)."""
    return sync_readiness(state.db.session, state.adapter).missing


def _latest_run(state: ZohoSyncState, since: datetime | None = None) -> Run | None:
    statement = sa.select(Run).where(Run.dry_run.is_(False)).order_by(Run.id.desc()).limit(1)
    if since is not None:
        statement = statement.where(Run.started_at >= since)
    return state.db.session.scalars(statement).first()


def _page(
    state: ZohoSyncState,
    template: str = "zoho_sync/sync.html",
    status: int = 200,
    **context: object,
) -> ResponseReturnValue:
    context.setdefault("modes", MODES)
    readiness = sync_readiness(state.db.session, state.adapter)
    context.setdefault("missing", readiness.missing)
    context.setdefault("refusal", readiness.refusal())
    context.setdefault("first_sync_done", readiness.first_sync_done)
    context.setdefault("latest", _latest_run(state))
    if is_htmx() and template == "zoho_sync/sync.html":
        template = "zoho_sync/_sync_panel.html"
        # _head.html routes htmx's 4xx/5xx answers to the alert box, keeping only their
        # #zs-error-message part; the panel has none, so "Redis did not answer, run it
        # now?" would vanish. The panel explains itself, so it is swapped in as a 200.
        status = 200
    return render_template(template, **context), status


@bp.get("/sync")
def synchronise() -> ResponseReturnValue:
    return _page(sync_state(), mode="since_last")


@bp.post("/sync/plan")
def sync_plan() -> ResponseReturnValue:
    """Queue the plan for the worker, or (``here=1``, or Redis down) make it right here."""
    state = sync_state()
    if _ready(state):
        return _page(state, mode=_mode(), status=409)
    note = None
    if request.form.get("here") != "1":
        try:
            job_id = schedule_plan(state, mode=_mode(), plan_changes=PLAN_ROWS_SHOWN)
        except (redis.RedisError, OSError):
            note = "Redis did not answer, so this plan was made in the request instead."
        else:
            # Where the queued plan is, as the page's polling will ask; a Redis that fails
            # only now shows as a failed plan there, not as a second plan made here.
            return _plan_progress_page(state, job_id)
    try:
        plan = state.run_sync(
            mode=_mode(), dry_run=True, trigger="admin-plan", plan_changes=PLAN_ROWS_SHOWN
        )
    except ZohoError as exc:  # before the run starts: the connection or Zoho's field list
        return render_zoho_error(exc)
    return _show_plan(state, plan, _mode(), note=note)


@bp.get("/sync/plan/<job_id>")
def sync_plan_progress(job_id: str) -> ResponseReturnValue:
    """The plan made on the worker, or where it is; the page polls this until it is done."""
    return _plan_progress_page(sync_state(), job_id)


def _plan_progress_page(state: ZohoSyncState, job_id: str) -> ResponseReturnValue:
    if _ready(state):
        return _page(state, mode="since_last", status=409)
    try:
        progress = plan_progress(state, job_id)
    except (redis.RedisError, OSError):
        reason = "Redis, which carries the plan back from the worker, did not answer"
        progress = PlanProgress("failed", error=reason)
    mode = progress.mode if progress.mode in MODES else "since_last"
    if progress.status == "done" and progress.report is not None:
        return _show_plan(state, progress.report, mode)
    if progress.status == "gone":
        problem = ZohoProblem(
            "This plan is no longer available",
            "Plans are kept for an hour after they are made. Preview the changes again.",
            404,
            "retry",
        )
        return _page(state, mode=mode, problem=problem)
    if progress.status == "failed":
        problem = ZohoProblem(
            "The plan could not be made",
            f"{progress.error}. Nothing was changed. Check the worker's log, then preview "
            "the changes again.",
            500,
            "retry",
        )
        return _page(state, mode=mode, problem=problem)
    return _page(state, mode=mode, planning=progress, plan_job=job_id)


#: The session remembers that this admin saw a plan, for the overview's "preview" step.
PREVIEWED = "_zoho_sync_previewed"


def _show_plan(
    state: ZohoSyncState, plan: RunReport, mode: str, *, note: str | None = None
) -> ResponseReturnValue:
    if plan.status != "failed":
        session[PREVIEWED] = True
    rows = _rows(plan)
    return _page(
        state,
        mode=mode,
        plan=plan,
        plan_note=note,
        plan_rows=rows,
        cards=contact_cards(
            state, (str(row["contact_id"]) for row in rows if row.get("contact_id"))
        ),
        inverted=inverted_fields(state.db.session),
        plan_rows_total=len(plan.changes) + plan.changes_not_kept,
        problem=_problem(plan),
        budget=state.credit_budget(),
    )


@bp.post("/sync/run")
def sync_run() -> ResponseReturnValue:
    state = sync_state()
    if _ready(state):
        return _page(state, mode=_mode(), status=409)
    confirm = request.form.get("confirm_deletes") == "1"
    asked_at = datetime.now(timezone.utc) - timedelta(seconds=2)
    try:
        job_id = schedule_sync(state, mode=_mode(), trigger="admin", confirm_deletes=confirm)
    except (redis.RedisError, OSError):
        return _page(state, mode=_mode(), redis_down=True, confirm=confirm, status=503)
    session[_ASKED_AT] = asked_at.isoformat()
    return _page(state, mode=_mode(), queued=job_id, asked_at=asked_at)


@bp.post("/sync/run-now")
def sync_run_now() -> ResponseReturnValue:
    """Run in this request: the way out when no worker or Redis is available."""
    state = sync_state()
    if _ready(state):
        return _page(state, mode=_mode(), status=409)
    confirm = request.form.get("confirm_deletes") == "1"
    try:
        with exclusive_run(state):
            report = state.run_sync(mode=_mode(), trigger="admin-now", confirm_deletes=confirm)
    except ZohoError as exc:  # before the run starts: the connection or Zoho's field list
        schedule_alert_delivery(state)
        return render_zoho_error(exc)
    except SyncBusy:
        busy = ZohoProblem(
            "Another sync is running",
            "A worker is synchronising right now, and two runs at once could send the same "
            "change twice. Wait for it to finish (its progress shows under History), then try "
            "again.",
            409,
            "retry",
        )
        return _page(state, mode=_mode(), problem=busy, status=409)
    schedule_alert_delivery(state)  # sent by the worker: this request waits on no SMTP
    return _page(
        state,
        mode=_mode(),
        result=report,
        result_run=_latest_run(state),
        problem=_problem(report),
    )


def _problem(report: RunReport) -> ZohoProblem | None:
    """What the admin should do about a plan or run that Zoho stopped.

    The engine never raises for Zoho trouble: it ends the report as failed and keeps the
    exception. Sorting that exception by remedy (reconnect, settings, try later) is what
    turns "failed" into a next step, and keeps a failed plan from posing as "nothing to
    change" with a Run button under it.
    """
    if report.status == "paused":
        title = (
            "Zoho's credits for today are nearly used up"
            if getattr(report.error, "setting", None) == "ZOHO_SYNC_CREDIT_RESERVE"
            else "The sync's daily credit budget is spent"
        )
        return ZohoProblem(title, report.message or "", 429)
    if report.status != "failed":
        return None
    if isinstance(report.error, ZohoError):
        return describe_zoho_error(report.error)
    return ZohoProblem(
        "The sync stopped",
        f"{report.message or 'It stopped without saying why.'} Nothing more was changed; "
        "check the application's log, then try again.",
        500,
        "retry",
    )


@bp.get("/sync/progress")
def sync_progress() -> ResponseReturnValue:
    """The progress fragment the page polls; 286 stops the polling once the run ended."""
    asked = session.get(_ASKED_AT)
    since = datetime.fromisoformat(asked) if isinstance(asked, str) else None
    state = sync_state()
    run = _latest_run(state, since)
    waiting = all_run_waiting(state) if run is None else None
    body = render_template("zoho_sync/_sync_progress.html", run=run, waiting=waiting)
    if run is not None and run.status != "running":
        # The run ended: the panels showing what it changed (the sync's choices, the
        # overview's counts) fetch themselves again.
        return announce_change(make_response(body, STOP_POLLING))
    return body


#: Changes a plan lists on the page. A first sync of 100,000 records plans 100,000 changes;
#: as table rows they made a page of tens of megabytes that froze the browser. The counts
#: above the table stay complete, and ``flask zoho-sync sync --dry-run --json`` lists all.
PLAN_ROWS_SHOWN = 500


def _rows(plan: RunReport) -> list[dict[str, object]]:
    """The plan's first changes, grouped for the page: errors first, then by direction."""
    order = {"error": 0, "delete": 1, "convert": 2, "create": 3, "link": 4, "update": 5}
    ranked = sorted(
        plan.changes,
        key=lambda change: (order.get(str(change.action), 9), str(change.direction)),
    )
    return [vars(change) for change in ranked[:PLAN_ROWS_SHOWN]]


@bp.app_template_filter("zs_counts")
def counts_line(counts: dict[str, int], direction: str) -> str:
    words = (
        ("create", "created"),
        ("update", "updated"),
        ("link", "linked"),
        ("delete", "deleted"),
        ("convert", "converted in Zoho"),
        ("error", "failed"),
        ("left_alone", "left alone"),
    )
    parts = [
        f"{counts[f'{direction}.{a}']} {w}" for a, w in words if counts.get(f"{direction}.{a}")
    ]
    return ", ".join(parts) or "nothing"
