"""One description of where the sync stands, shared by ``flask zoho-sync status`` and the
overview page so that the two can never disagree."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .connection import describe_connection
from .ledger import pending_outbox_summary
from .models import ApiUsage, Link, RecordHistory, Run, SyncSettings
from .preferences import mapping_carries_data

#: Runs an admin started by hand (the Synchronise page, on the worker or in the request, and
#: ``flask zoho-sync sync``): the first of them is the one the admin previewed.
MANUAL_TRIGGERS = ("admin", "admin-now", "cli")
#: Runs nobody asked for at that moment; they wait for the first manual sync.
AUTOMATIC_TRIGGERS = ("auto", "schedule", "notify")
#: The admin's path to a running sync, in order (the overview shows it).
SETUP_STEPS = ("connect", "settings", "mapping", "preview", "first_sync")

_MAPPING_REFUSAL = (
    "Nothing was synced: no field beyond email is mapped, so every contact would arrive blank"
)


@dataclass(frozen=True)
class Readiness:
    """What stands between this app and a sync: the one rule every trigger asks.

    A sync writes nothing until Zoho is connected, a module is chosen and a mapping pair
    beyond identity is saved (issue 16: a pull with only email mapped created blank
    contacts). Automatic runs also wait for the first manual sync, the one the admin
    previewed; until then their changes stay in the outbox and go with that sync.
    """

    connected: bool
    module: str | None
    carries_data: bool
    first_sync_done: bool

    @property
    def missing(self) -> str | None:
        """The first setup step not done that any sync needs, or None."""
        if not self.connected:
            return "connect"
        if not self.module:
            return "settings"
        if not self.carries_data:
            return "mapping"
        return None

    @property
    def automatic_allowed(self) -> bool:
        return self.missing is None and self.first_sync_done

    def refusal(self, *, face: str = "page") -> str | None:
        """Why no sync may write now, in one sentence with the way out; None: it may.

        ``face`` is ``page`` (points at Field mapping) or ``cli`` (names the command).
        """
        if self.missing != "mapping":
            return None
        if face == "cli":
            return (
                f"{_MAPPING_REFUSAL}; run 'flask zoho-sync settings --defaults' to map the "
                "standard fields (or --map HOST_FIELD=ZOHO_FIELD), then sync again."
            )
        return f"{_MAPPING_REFUSAL}; map the fields on the Field mapping page, then sync again."

    def automatic_refusal(self) -> str | None:
        """Why an automatic run (push, scheduled pull, notification) writes nothing now."""
        if self.missing is not None:
            return self.refusal() or "Nothing was synced: the sync is not set up yet."
        if not self.first_sync_done:
            return (
                "Nothing was synced automatically: the first sync is run by hand, after its "
                "preview, on the Synchronise page; changes are kept and go with it."
            )
        return None


def first_manual_sync_done(session: Session) -> bool:
    """Whether a manual run has finished (succeeded, or synced all but some records)."""
    return (
        session.scalar(
            sa.select(Run.id)
            .where(
                Run.dry_run.is_(False),
                Run.trigger.in_(MANUAL_TRIGGERS),
                Run.status.in_(("succeeded", "partial")),
            )
            .limit(1)
        )
        is not None
    )


def sync_readiness(session: Session, adapter: Any) -> Readiness:
    """The one readiness check below the faces (jobs, tick, pages, CLI, the engine entry)."""
    settings = session.scalars(sa.select(SyncSettings).order_by(SyncSettings.id)).first()
    module = settings.module if settings else None
    return Readiness(
        connected=describe_connection(session) is not None,
        module=module,
        carries_data=bool(module) and mapping_carries_data(session, adapter),
        first_sync_done=first_manual_sync_done(session),
    )


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
