"""The overview page: where the sync stands and what the admin should do next.

It is built on ``status.sync_status`` (the same description ``flask zoho-sync status``
prints) so the page and the CLI can never disagree.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import render_template
from flask.typing import ResponseReturnValue

from ..extension import get_state
from ..models import FieldMap
from ..status import sync_status
from ._htmx import hx_target, is_htmx
from .activity import activity_chart
from .blueprint import bp
from .rendering import display_zone


def next_pull_at(last_pull_at: str | None, pull_interval: int) -> datetime | None:
    """When the scheduler will next pull: one interval after the last pull (None: no pull
    yet, so the first sync decides)."""
    if not last_pull_at:
        return None
    return datetime.fromisoformat(last_pull_at) + timedelta(seconds=pull_interval)


def next_steps(status: dict[str, Any], mapped_fields: int) -> list[str]:
    """What is missing before a sync can run, in the order it must be done."""
    if not status["connected"]:
        return ["connect"]
    if not status["module"]:
        return ["settings"]
    if not mapped_fields:
        return ["mapping"]
    return []


@bp.get("/")
def overview() -> ResponseReturnValue:
    state = get_state()
    session = state.db.session
    status = sync_status(session)
    mapped_fields = session.scalar(
        sa.select(sa.func.count()).select_from(FieldMap).where(FieldMap.kind == "field")
    )
    context = {
        "status": status,
        "steps": next_steps(status, mapped_fields or 0),
        "next_pull": next_pull_at(status["last_pull_at"], state.config.pull_interval),
        "chart": activity_chart(session, display_zone()),
    }
    if is_htmx() and hx_target() == "zs-overview":
        return render_template("zoho_sync/_overview_body.html", **context)
    return render_template("zoho_sync/overview.html", **context)
