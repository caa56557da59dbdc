"""Whether the sync is healthy, for monitors: ``GET {prefix}/health`` and ``status --check``.

It adds to ``status.sync_status`` (what the overview shows) what a monitor needs to raise
an alarm: ages rather than timestamps, the queue's depth, credits against the budget, the
open incidents, and a verdict with one line per problem. The thresholds are settings
(ZOHO_SYNC_HEALTH_*) with defaults derived from the push delay and the pull interval.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

import redis
from rq import Queue

from .incidents import INCIDENT_TITLES, open_incidents
from .ledger import CREDIT_WINDOW, credits_spent_since, pending_outbox_summary
from .state import ZohoSyncState
from .status import sync_status
from .tenancy import tenant_context

#: What every tenant of an app has in common (one clock, one RQ queue, one set of
#: thresholds from the app's config): the all-tenants answer reads and shows them once, at
#: its top, instead of once per tenant.
SHARED_FIGURES = ("checked_at", "queue", "thresholds")


def _age(moment: datetime | None, now: datetime) -> float | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return round(max(0.0, (now - moment).total_seconds()), 1)


def queue_depth(state: ZohoSyncState) -> dict[str, int] | None:
    """Jobs waiting on the sync's RQ queue, scheduled for later, and failed (None: Redis
    does not answer)."""
    try:
        queue = Queue(state.config.queue, connection=state.redis())
        return {
            "waiting": int(queue.count),
            "scheduled": int(queue.scheduled_job_registry.count),
            "failed": int(queue.failed_job_registry.count),
        }
    except (redis.RedisError, OSError):
        return None


def health_report(
    state: ZohoSyncState, *, now: datetime | None = None, shared: bool = True
) -> dict[str, Any]:
    """The figures and the verdict (``healthy``, and ``problems``: one sentence each).

    ``shared=False`` leaves out :data:`SHARED_FIGURES` and the verdict on Redis, so that
    :func:`all_tenants_health` can ask the queue once for 200 tenants, not 200 times.
    """
    moment = now or datetime.now(timezone.utc)
    session = state.db.session
    status = sync_status(session)
    pending = pending_outbox_summary(session)
    spent, _oldest = credits_spent_since(session, moment - CREDIT_WINDOW)
    incidents = open_incidents(session)
    lost = any(incident.kind == "connection_lost" for incident in incidents)
    last_pull = _parse(status["last_pull_at"])
    report: dict[str, Any] = {
        "checked_at": moment.isoformat(),
        "module": status["module"],
        "auto_sync": status["auto_sync"],
        "token_state": "not_connected" if not status["connected"] else "lost" if lost else "ok",
        "last_successful_pull": status["last_pull_at"],
        "last_successful_push": status["last_push_at"],
        "last_pull_age_seconds": _age(last_pull, moment),
        "oldest_unsent_change": {
            "contacts": pending.contacts,
            "since": pending.oldest.isoformat() if pending.oldest else None,
            "age_seconds": _age(pending.oldest, moment),
        },
        "queue": queue_depth(state) if shared else None,
        "failed_records": status["counts"]["errors"],
        "credits": {
            "calls_today": status["api_today"]["calls"],
            "used_today": status["api_today"]["credits"],
            "used_last_24h": int(spent),
            "budget": state.config.daily_credit_budget or None,
        },
        "incidents": [
            {
                "kind": incident.kind,
                "title": INCIDENT_TITLES.get(incident.kind, incident.kind),
                "summary": incident.summary,
                "opened_at": incident.opened_at.isoformat(),
            }
            for incident in incidents
        ],
        "thresholds": _thresholds(state),
    }
    if not shared:
        for key in SHARED_FIGURES:
            del report[key]
    report["problems"] = health_problems(state, report)
    report["healthy"] = not report["problems"]
    return report


def _thresholds(state: ZohoSyncState) -> dict[str, Any]:
    ops = state.config.operations
    return {
        "max_outbox_age_seconds": ops.max_outbox_age,
        "max_pull_age_seconds": ops.max_pull_age,
        "max_failed_records": ops.max_failed or None,
    }


def _parse(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def health_problems(state: ZohoSyncState, report: dict[str, Any]) -> list[str]:
    """One line per thing wrong, each saying what to look at."""
    ops = state.config.operations
    problems = []
    if report["token_state"] == "not_connected":
        problems.append(
            "Not connected to Zoho CRM: connect on the admin pages or with 'flask zoho-sync "
            "connect'."
        )
    problems.extend(f"{item['title']}: {item['summary']}" for item in report["incidents"])
    if "queue" in report and report["queue"] is None:
        problems.append(_redis_problem(state))
    if report["auto_sync"] and report["module"]:
        problems.extend(_lag_problems(report, ops.max_pull_age, ops.max_outbox_age))
    if ops.max_failed and report["failed_records"] > ops.max_failed:
        problems.append(
            f"{report['failed_records']} records failed to sync (more than "
            f"ZOHO_SYNC_HEALTH_MAX_FAILED={ops.max_failed}): see History's errors."
        )
    return problems


def _redis_problem(state: ZohoSyncState) -> str:
    return (
        f"Redis at {state.config.redis_url} does not answer: no job runs until it does "
        "(changes are kept in the outbox)."
    )


def _lag_problems(report: dict[str, Any], max_pull_age: int, max_outbox_age: int) -> list[str]:
    """Automatic sync is on, so pulls and pushes are due: say when they are late."""
    problems = []
    pull_age = report["last_pull_age_seconds"]
    if pull_age is None:
        problems.append(
            "No successful pull yet with automatic sync on: run the first sync from the "
            "Synchronise page (or 'flask zoho-sync sync')."
        )
    elif pull_age > max_pull_age:
        problems.append(
            f"No successful pull for {pull_age / 3600:.1f} hours (more than "
            f"{max_pull_age / 3600:.1f}): is the scheduler calling the tick, and a worker "
            "running?"
        )
    outbox_age = report["oldest_unsent_change"]["age_seconds"]
    if outbox_age is not None and outbox_age > max_outbox_age:
        problems.append(
            f"The oldest unsent change waits for {outbox_age / 60:.0f} minutes (more than "
            f"{max_outbox_age / 60:.0f}): is a worker running on the queue?"
        )
    return problems


def all_tenants_health(
    state: ZohoSyncState, tenants: Iterable[str], *, now: datetime | None = None
) -> dict[str, Any]:
    """One verdict for every tenant of a multi-tenant host (``?tenant=*``, ``status
    --all-tenants``), so an operator of 200 sites has one check to alarm on, not 200.

    Each tenant's report is its usual one, read as that tenant, less the figures all
    tenants share, which come once at the top. ``problems`` names the tenant of each
    (``"KEY: ..."``); a shared one (Redis not answering) is said once, unprefixed, and
    makes the whole answer unhealthy without marking every tenant so.
    """
    moment = now or datetime.now(timezone.utc)
    queue = queue_depth(state)
    problems = [] if queue is not None else [_redis_problem(state)]
    reports: dict[str, dict[str, Any]] = {}
    for tenant in tenants:
        with tenant_context(tenant):
            try:
                reports[tenant] = health_report(state, now=moment, shared=False)
            finally:
                state.db.session.rollback()  # nothing of one tenant's reads lingers for the next
        problems.extend(f"{tenant}: {problem}" for problem in reports[tenant]["problems"])
    return {
        "healthy": not problems,
        "checked_at": moment.isoformat(),
        "queue": queue,
        "thresholds": _thresholds(state),
        "tenants": reports,
        "problems": problems,
    }
