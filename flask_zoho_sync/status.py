"""One description of where the sync stands, shared by ``flask zoho-sync status`` and the
overview page so that the two can never disagree."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .connection import describe_connection
from .ledger import pending_outbox_summary
from .models import ApiUsage, Link, RecordHistory, SyncSettings


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def sync_status(session: Session) -> dict[str, Any]:
    account = describe_connection(session)
    settings = session.scalars(sa.select(SyncSettings).order_by(SyncSettings.id)).first()
    module = settings.module if settings else None
    linked = session.scalar(
        sa.select(sa.func.count()).select_from(Link).where(Link.module == module)
    )
    # Distinct contacts, whether still in a capture batch or already expanded by a worker.
    pending = pending_outbox_summary(session).contacts
    errors = session.scalar(
        sa.select(sa.func.count())
        .select_from(RecordHistory)
        .where(RecordHistory.action == "error", RecordHistory.resolved_at.is_(None))
    )
    today = datetime.now(timezone.utc).date()
    calls_today, credits_today = session.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(ApiUsage.calls), 0),
            sa.func.coalesce(sa.func.sum(ApiUsage.credits), 0),
        ).where(ApiUsage.day == today)
    ).one()
    return {
        "connected": account is not None,
        "connection": None
        if account is None
        else {
            "user": account.user_email,
            "org": account.org_name,
            "org_id": account.org_id,
            "org_time_zone": account.org_time_zone,
            "data_centre": account.location,
            "accounts_server": account.accounts_server,
            "api_domain": account.api_domain,
        },
        "module": module,
        "time_zone": settings.time_zone if settings else None,
        "time_zone_differs": bool(
            account
            and settings
            and account.org_time_zone
            and settings.time_zone != account.org_time_zone
        ),
        "auto_sync": bool(settings and settings.auto_sync),
        "counts": {"linked": linked or 0, "pending": pending or 0, "errors": errors or 0},
        "last_push_at": _iso(settings.last_push_at if settings else None),
        "last_pull_at": _iso(settings.last_pull_at if settings else None),
        "api_today": {"calls": int(calls_today), "credits": int(credits_today)},
    }
