"""Prometheus metrics, read from the database at scrape time (optional: ``[metrics]``).

The work happens in the RQ worker and the figures are scraped from the web process, so
counters kept in either process's memory would tell only that process's part (and reset
with it). The database already holds every run, record outcome and call, so a custom
collector turns those rows into the metrics on each scrape: every process, any number of
them, reports the same figures.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from .incidents import open_incidents
from .ledger import pending_outbox_summary
from .models import ApiUsage, RecordHistory, Run, SyncSettings
from .state import ZohoSyncState
from .tenancy import tenant_context

INSTALL_HINT = (
    "Prometheus metrics need the prometheus-client package: pip install 'Flask-Zoho-Sync[metrics]'."
)


def metrics_available() -> bool:
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return False
    return True


def _seconds_since(moment: datetime | None, now: datetime) -> float:
    """Seconds since ``moment``; NaN for never (Prometheus' way of saying "no value")."""
    if moment is None:
        return float("nan")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return max(0.0, (now - moment).total_seconds())


class SyncCollector:
    """A prometheus_client collector over one app's sync tables."""

    def __init__(self, state: ZohoSyncState) -> None:
        self.state = state

    def describe(self) -> list[Any]:
        return []  # collected on demand only: a registry must not query at registration

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily

        session = self.state.db.session
        records = CounterMetricFamily(
            "zoho_sync_records",
            "Records the sync handled, by direction and outcome (create, update, delete, "
            "link, conflict, error).",
            labels=["direction", "outcome"],
        )
        rows = session.execute(
            sa.select(RecordHistory.direction, RecordHistory.action, sa.func.count()).group_by(
                RecordHistory.direction, RecordHistory.action
            )
        )
        for direction, action, count in rows:
            records.add_metric([direction, action], int(count))
        yield records
        calls = CounterMetricFamily(
            "zoho_sync_api_calls", "Zoho API calls, by endpoint.", labels=["endpoint"]
        )
        credits = CounterMetricFamily(
            "zoho_sync_api_credits", "Zoho API credits spent, by endpoint.", labels=["endpoint"]
        )
        usage = session.execute(
            sa.select(
                ApiUsage.endpoint, sa.func.sum(ApiUsage.calls), sa.func.sum(ApiUsage.credits)
            ).group_by(ApiUsage.endpoint)
        )
        for endpoint, call_count, credit_count in usage:
            calls.add_metric([endpoint], int(call_count or 0))
            credits.add_metric([endpoint], int(credit_count or 0))
        yield calls
        yield credits
        yield from self._runs()
        yield from self._lag()

    def _runs(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, SummaryMetricFamily

        session = self.state.db.session
        runs = CounterMetricFamily(
            "zoho_sync_runs",
            "Sync runs that ended, by kind and outcome.",
            labels=["kind", "status"],
        )
        durations = SummaryMetricFamily(
            "zoho_sync_run_duration_seconds", "How long ended sync runs took.", labels=["kind"]
        )
        totals: dict[str, list[float]] = {}
        counts: dict[tuple[str, str], int] = {}
        ended = session.execute(
            sa.select(Run.kind, Run.status, Run.started_at, Run.finished_at).where(
                Run.dry_run.is_(False), Run.finished_at.is_not(None)
            )
        )
        for kind, status, started_at, finished_at in ended:
            counts[(kind, status)] = counts.get((kind, status), 0) + 1
            count_and_sum = totals.setdefault(kind, [0, 0.0])
            count_and_sum[0] += 1
            count_and_sum[1] += max(0.0, (finished_at - started_at).total_seconds())
        for (kind, status), count in sorted(counts.items()):
            runs.add_metric([kind, status], count)
        for kind, (count, seconds) in sorted(totals.items()):
            durations.add_metric([kind], count_value=count, sum_value=seconds)
        yield runs
        yield durations

    def _lag(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        session = self.state.db.session
        now = datetime.now(timezone.utc)
        pending = pending_outbox_summary(session)
        settings = session.scalars(sa.select(SyncSettings).order_by(SyncSettings.id)).first()
        yield GaugeMetricFamily(
            "zoho_sync_outbox_pending_contacts",
            "Contacts with changes not yet sent to Zoho.",
            value=pending.contacts,
        )
        yield GaugeMetricFamily(
            "zoho_sync_outbox_oldest_age_seconds",
            "Age of the oldest change not yet sent to Zoho (0: none waits).",
            value=_seconds_since(pending.oldest, now) if pending.oldest else 0.0,
        )
        for direction, moment in (
            ("pull", settings.last_pull_at if settings else None),
            ("push", settings.last_push_at if settings else None),
        ):
            yield GaugeMetricFamily(
                f"zoho_sync_last_{direction}_age_seconds",
                f"Seconds since the last successful {direction} (NaN: never).",
                value=_seconds_since(moment, now),
            )
        failed = session.scalar(
            sa.select(sa.func.count())
            .select_from(RecordHistory)
            .where(RecordHistory.action == "error", RecordHistory.resolved_at.is_(None))
        )
        yield GaugeMetricFamily(
            "zoho_sync_failed_records", "Records whose last sync failed.", value=int(failed or 0)
        )
        incidents = GaugeMetricFamily(
            "zoho_sync_open_incidents", "Incidents open now, by kind.", labels=["kind"]
        )
        by_kind: dict[str, int] = {}
        for incident in open_incidents(session):
            by_kind[incident.kind] = by_kind.get(incident.kind, 0) + 1
        for kind, count in sorted(by_kind.items()):
            incidents.add_metric([kind], count)
        yield incidents


class AllTenantsCollector:
    """Every tenant's :class:`SyncCollector` figures in one scrape, each series labelled
    ``tenant``: Prometheus' way to tell the same measure apart by whose it is, so one
    scrape job covers a host of 200 sites and a query sums or filters by tenant.

    A metric family may appear only once in an exposition, so each tenant's samples are
    merged into one family per name rather than yielded tenant after tenant.
    """

    def __init__(self, state: ZohoSyncState, tenants: Iterable[str]) -> None:
        self.state = state
        self.tenants = list(tenants)

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.metrics_core import Metric

        merged: dict[str, Metric] = {}
        for tenant in self.tenants:
            with tenant_context(tenant):
                try:
                    families = list(SyncCollector(self.state).collect())
                finally:
                    self.state.db.session.rollback()  # no tenant's reads linger for the next
            for family in families:
                into = merged.get(family.name)
                if into is None:
                    into = Metric(family.name, family.documentation, family.type, family.unit)
                    merged[family.name] = into
                into.samples.extend(
                    sample._replace(labels={"tenant": tenant, **sample.labels})
                    for sample in family.samples
                )
        yield from merged.values()


def render_metrics(state: ZohoSyncState, tenants: Iterable[str] | None = None) -> tuple[bytes, str]:
    """The exposition text and its content type, from a registry of this app's collector
    alone (the process-global registry would add this process's own Python metrics).

    With ``tenants``, every one of them, labelled (:class:`AllTenantsCollector`); without,
    the current tenant's, unlabelled, as dashboards made before tenants expect."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    collector = SyncCollector(state) if tenants is None else AllTenantsCollector(state, tenants)
    registry.register(collector)  # type: ignore[arg-type]
    return generate_latest(registry), CONTENT_TYPE_LATEST
