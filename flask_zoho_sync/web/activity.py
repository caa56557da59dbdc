"""Sync activity per day for the overview's chart, from ``zoho_sync_run`` rows.

A run's ``counts`` are keyed ``"<direction>.<action>"`` (``to_zoho.update``, ...); the chart
shows records *changed* (created, updated, deleted) so a quiet day reads as quiet even when
runs looked at thousands of records. Days are the admin's days, in the sync's time zone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..models import Run

DAYS = 14
CHANGING_ACTIONS = ("create", "update", "delete")


@dataclass(frozen=True)
class DayActivity:
    day: date
    to_zoho: int
    to_host: int
    errors: int
    runs: int

    @property
    def changed(self) -> int:
        return self.to_zoho + self.to_host


@dataclass(frozen=True)
class Bar:
    """One day's bar in SVG units (computed here so the template holds no arithmetic)."""

    activity: DayActivity
    x: float
    zoho_y: float
    zoho_height: float
    host_y: float
    host_height: float
    label: str


@dataclass(frozen=True)
class ActivityChart:
    days: list[DayActivity]
    bars: list[Bar]
    width: int
    height: int
    peak: int

    @property
    def empty(self) -> bool:
        return not any(day.runs for day in self.days)

    @property
    def total_changed(self) -> int:
        return sum(day.changed for day in self.days)


def _changed(counts: dict[str, int], direction: str) -> int:
    return sum(int(counts.get(f"{direction}.{action}", 0) or 0) for action in CHANGING_ACTIONS)


def daily_activity(
    runs: Iterable[Run], zone: tzinfo, today: date, days: int = DAYS
) -> list[DayActivity]:
    """One entry per day for the ``days`` days ending ``today``, oldest first."""
    first = today - timedelta(days=days - 1)
    totals: dict[date, list[int]] = {first + timedelta(n): [0, 0, 0, 0] for n in range(days)}
    for run in runs:
        day = run.started_at.astimezone(zone).date()
        if day not in totals:
            continue
        counts = run.counts or {}
        entry = totals[day]
        entry[0] += _changed(counts, "to_zoho")
        entry[1] += _changed(counts, "to_host")
        entry[2] += int(counts.get("to_zoho.error", 0) or 0) + int(
            counts.get("to_host.error", 0) or 0
        )
        entry[3] += 1
    return [DayActivity(day, *values) for day, values in totals.items()]


def activity_chart(session: Session, zone: tzinfo, now: datetime | None = None) -> ActivityChart:
    """The last fortnight of real (not dry-run) runs, laid out as stacked bars."""
    now = now or datetime.now(timezone.utc)
    today = now.astimezone(zone).date()
    since = now - timedelta(days=DAYS + 1)
    runs = session.scalars(
        sa.select(Run).where(Run.started_at >= since, Run.dry_run.is_(False))
    ).all()
    days = daily_activity(runs, zone, today)
    width, height, gap = DAYS * 24, 120, 6
    peak = max((day.changed for day in days), default=0)
    scale = (height - 20) / peak if peak else 0.0
    bars = []
    for index, day in enumerate(days):
        zoho_h, host_h = day.to_zoho * scale, day.to_host * scale
        bottom = float(height - 14)
        bars.append(
            Bar(
                activity=day,
                x=index * 24 + gap / 2,
                zoho_y=bottom - zoho_h,
                zoho_height=zoho_h,
                host_y=bottom - zoho_h - host_h,
                host_height=host_h,
                label=f"{day.day:%d}",
            )
        )
    return ActivityChart(days=days, bars=bars, width=width, height=height, peak=peak)
