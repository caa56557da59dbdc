"""The overview page: where the sync stands and what the admin should do next.

It is built on ``status.sync_status`` (the same description ``flask zoho-sync status``
prints) so the page and the CLI can never disagree.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import render_template, url_for
from flask import session as flask_session
from flask.typing import ResponseReturnValue

from ..pairs import open_pairs
from ..preferences import MODULES, build_mapping, get_settings
from ..state import ZohoSyncState
from ..status import SETUP_STEPS, Readiness, sync_readiness, sync_status
from ._htmx import hx_target, is_htmx
from .activity import activity_chart
from .blueprint import bp, sync_state
from .conversions import overview_conversions
from .rendering import display_zone
from .sync_page import PREVIEWED


def next_pull_at(last_pull_at: str | None, pull_interval: int) -> datetime | None:
    """When the scheduler will next pull: one interval after the last pull (None: no pull
    yet, so the first sync decides)."""
    if not last_pull_at:
        return None
    return datetime.fromisoformat(last_pull_at) + timedelta(seconds=pull_interval)


def next_steps(readiness: Readiness) -> list[str]:
    """What is missing before a sync can run, in the order it must be done."""
    return [readiness.missing] if readiness.missing else []


#: The setup path as the overview shows it: each step, its label and the page that does it.
_STEP_PAGES = {
    "connect": ("Connect Zoho CRM", "zoho_sync.overview"),
    "settings": ("Choose Leads or Contacts", "zoho_sync.settings"),
    "mapping": ("Map the fields", "zoho_sync.mapping"),
    "preview": ("Preview the first sync", "zoho_sync.synchronise"),
    "first_sync": ("Run the first sync", "zoho_sync.synchronise"),
}


def current_step(readiness: Readiness, *, previewed: bool) -> str | None:
    """The step the admin is on (None: set up, the first sync has run)."""
    if readiness.missing:
        return readiness.missing
    if readiness.first_sync_done:
        return None
    return "first_sync" if previewed else "preview"


def setup_path(current: str | None) -> list[dict[str, Any]]:
    """Every step with whether it is done or current, for the overview's list."""
    position = SETUP_STEPS.index(current) if current else len(SETUP_STEPS)
    return [
        {
            "name": name,
            "label": _STEP_PAGES[name][0],
            "url": url_for(_STEP_PAGES[name][1]),
            "done": index < position,
            "current": index == position,
        }
        for index, name in enumerate(SETUP_STEPS)
    ]


def paused_rows(state: ZohoSyncState) -> list[str]:
    """The mapping rows that sync nothing now, each with why (issue 19): a Zoho field gone,
    retyped or made read-only, or refused by Zoho during a run. The rest syncs meanwhile,
    so the admin must be told here, not only on the mapping page."""
    session = state.db.session
    settings = get_settings(session)
    if settings.module not in MODULES or not settings.zoho_fields:
        return []  # no mapping yet: the setup path says what to do
    return build_mapping(session, state.adapter).problems()


def _context(state: ZohoSyncState) -> dict[str, Any]:
    session = state.db.session
    status = sync_status(session)
    readiness = sync_readiness(session, state.adapter)
    current = current_step(readiness, previewed=bool(flask_session.get(PREVIEWED)))
    context = {
        "status": status,
        "steps": next_steps(readiness),
        "current_step": current,
        "setup_path": setup_path(current),
        "refusal": readiness.refusal(),
        "next_pull": next_pull_at(status["last_pull_at"], state.config.pull_interval),
        "chart": activity_chart(session, display_zone(state)),
        "merged_pairs": len(open_pairs(session)),
        "paused_rows": paused_rows(state),
        "conversions": overview_conversions(state),
    }
    return context


def overview_fragment(state: ZohoSyncState) -> str:
    """The overview's live part (``#zs-overview``), as its refresh swaps it in."""
    return render_template("zoho_sync/_overview_body.html", **_context(state))


@bp.get("/")
def overview() -> ResponseReturnValue:
    state = sync_state()
    if is_htmx() and hx_target() == "zs-overview":
        return overview_fragment(state)
    return render_template("zoho_sync/overview.html", **_context(state))
