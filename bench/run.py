"""All benchmarks in one run, printed as one table: ``python -m bench``.

Calls, throughput against the official SDK and a naive loop, the latency-bound export,
memory as the data grows, and capture's cost on the host's commit. Everything runs on
loopback against the sandbox (a separate process) with SQLite hosts. Measurements, not
tests: the command exits 1 when a goal is missed, so it can serve as a manual gate.
``--quick`` runs small sizes to check the harness in a minute.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import peers
from bench.harness import (
    FIXED,
    ROOT,
    HostApp,
    Row,
    connected_host,
    fixed,
    measure,
    sandbox_process,
    scaling,
    seed_host,
    seed_zoho,
    sqlite_url,
)
from flask_zoho_sync.extension import get_state
from flask_zoho_sync.preferences import set_field_map
from flask_zoho_sync.sandbox.handle import SandboxHandle

Work = Callable[[SandboxHandle, HostApp], None]

#: ``ZOHO_SYNC_MAX_CONCURRENCY``'s default, which a host that sets nothing runs with.
DEFAULT_CONCURRENCY = 2

#: Most of the official SDK's time a full sync of ours may take on loopback (issue #20):
#: the import keeps a link, a snapshot and a history row per record where the SDK only
#: INSERTs the contact; the export must simply be the faster.
GOAL_OF_SDK_TIME = {"import": 0.80, "export": 1.00}


def _ours(direction: str) -> Work:
    """A full sync in one direction (``mode="all"``), as ``flask zoho-sync sync --all
    --direction ...`` runs it: the same work the SDK and the naive loop do."""

    def work(zoho: SandboxHandle, host: HostApp) -> None:
        with host.app.app_context():
            report = get_state().run_sync(mode="all", direction=direction)
        if report.status != "succeeded":
            raise RuntimeError(f"{direction} ended {report.status}: {report.message}")

    return work


_ours_import = _ours("pull")
_ours_export = _ours("push")


def _run(
    zoho: SandboxHandle,
    scratch: str,
    records: int,
    kind: str,
    work: Work,
    *,
    latency_ms: int = 0,
    **config: Any,
) -> tuple[dict[str, int], float]:
    """Reset the sandbox, seed one side with ``records``, run ``work`` and measure it.

    ``latency_ms`` is added to every call of ``work`` alone: seeding and connecting are
    set-up, not the work measured (the reset clears it for the next run)."""
    zoho.reset()
    if kind == "import":
        seed_zoho(zoho, records)
    host = connected_host(sqlite_url(scratch, f"{kind}-{records}"), zoho, **config)
    if kind == "export":
        seed_host(host, records)
    if latency_ms:
        zoho.faults(latency_ms=latency_ms)
    calls, seconds = measure(zoho, lambda: work(zoho, host))
    with host.app.app_context():
        host.db.engine.dispose()
    return calls, seconds


# -- sections -----------------------------------------------------------------------------


def throughput(sizes: list[int], peer_size: int, rows: list[Row]) -> dict[tuple[str, int], Any]:
    """Ours at every size; the SDK and the naive loop at ``peer_size`` (extrapolated
    linearly, and marked so, to larger sizes)."""
    measured: dict[tuple[str, int], Any] = {}
    peers.load_sdk()
    with tempfile.TemporaryDirectory() as scratch, sandbox_process() as zoho:
        for kind in ("import", "export"):
            for records in sizes:
                work = _ours_import if kind == "import" else _ours_export
                calls, seconds = _run(zoho, scratch, records, kind, work)
                measured[("ours", kind, records)] = (calls, seconds)
                rows.append(
                    Row(
                        "throughput",
                        f"full {kind}: flask-zoho-sync",
                        records,
                        sum(calls.values()),
                        seconds,
                        note=f"{scaling(calls)} record calls + {fixed(calls)} fixed",
                    )
                )
            for name, work in (
                ("official SDK (batch calls)", getattr(peers, f"sdk_{kind}")),
                ("naive loop (call per record)", getattr(peers, f"naive_{kind}")),
            ):
                calls, seconds = _run(zoho, scratch, peer_size, kind, work)
                for records in sizes:
                    ours_calls, ours_seconds = measured[("ours", kind, records)]
                    scale = records / peer_size
                    peer_calls = sum(calls.values()) * scale
                    peer_seconds = seconds * scale
                    # Calls that carry records, both sides; token and metadata calls are
                    # a handful per run whatever the size, and are in the calls column.
                    call_ratio = scaling(calls) * scale / scaling(ours_calls)
                    time_ratio = peer_seconds / ours_seconds
                    naive = name.startswith("naive")
                    # Against the SDK the ratio is ours over its time, against the goal
                    # (GOAL_OF_SDK_TIME): an import keeping links, snapshots and history
                    # in at most 0.8 of the time of the SDK's INSERTs alone.
                    goal = GOAL_OF_SDK_TIME[kind]
                    rows.append(
                        Row(
                            "throughput",
                            f"full {kind}: {name}",
                            records,
                            round(peer_calls),
                            peer_seconds,
                            reference="ours, calls" if naive else "ours / SDK, time",
                            ratio=call_ratio if naive else 1 / time_ratio,
                            goal="calls >= 100x ours" if naive else f"<= {goal:.2f}",
                            met=call_ratio >= 100 if naive else 1 / time_ratio <= goal,
                            note=(
                                f"{call_ratio:.0f}x our calls, {time_ratio:.2f}x our time"
                                + (
                                    f"; extrapolated from {peer_size:,} (x{scale:g})"
                                    if scale != 1
                                    else ""
                                )
                            ),
                        )
                    )
    return measured


def calls(records: int, rows: list[Row]) -> None:
    """Pull of N vs ceil(N/200); push of N captured edits vs ceil(N/100)."""
    with tempfile.TemporaryDirectory() as scratch, sandbox_process() as zoho:
        zoho.reset()
        seed_zoho(zoho, records)
        host = connected_host(sqlite_url(scratch, "calls"), zoho)
        made, seconds = measure(zoho, lambda: _ours_import(zoho, host))
        minimum = math.ceil(records / 200)
        rows.append(
            Row(
                "calls",
                "pull of N (full import)",
                records,
                scaling(made),
                seconds,
                reference=f"ceil(N/200)={minimum}",
                ratio=scaling(made) / minimum,
                goal="= 1.00",
                met=scaling(made) == minimum,
                note=f"+ {fixed(made)} fixed (token, fields, deleted check)",
            )
        )
        with host.app.app_context():
            session = host.db.session
            # Every contact edited by the host, captured, then pushed as the delayed job does.
            for start in range(0, records, 1000):
                for contact in session.scalars(
                    host.db.select(host.Contact).order_by(host.Contact.id).offset(start).limit(1000)
                ):
                    contact.phone = "555 0100"
                session.commit()
            made, seconds = measure(
                zoho, lambda: get_state().run_sync(mode="outbox", direction="push")
            )
        minimum = math.ceil(records / 100)
        rows.append(
            Row(
                "calls",
                "push of N changed contacts",
                records,
                scaling(made),
                seconds,
                reference=f"ceil(N/100)={minimum}",
                ratio=scaling(made) / minimum,
                goal="= 1.00",
                met=scaling(made) == minimum,
                note=f"+ {fixed(made)} fixed",
            )
        )


def bulk(records: int, rows: list[Row]) -> None:
    """A first sync of N records each way through Zoho's bulk APIs against the REST path.

    Bulk Write's creates are upserts on the unique Contact Id field, so the host maps it
    (as the README recommends); without it, creates stay on REST.
    """
    bulk_made: dict[str, dict[str, int]] = {}
    plans: dict[str, tuple[dict[str, int], float]] = {}
    with tempfile.TemporaryDirectory() as scratch, sandbox_process() as zoho:
        for kind in ("import", "export"):
            measured = {}
            for path, threshold in (("REST", 0), ("bulk", 5200)):
                zoho.reset()
                zoho.add_custom_field(
                    "Leads",
                    api_name="Contact_Id",
                    field_label="Contact Id",
                    data_type="text",
                    length=50,
                    unique=True,
                )
                if kind == "import":
                    seed_zoho(zoho, records)
                host = connected_host(
                    sqlite_url(scratch, f"bulk-{kind}-{path}"),
                    zoho,
                    ZOHO_SYNC_BULK_THRESHOLD=threshold,
                    ZOHO_SYNC_BULK_POLL_INTERVAL=0.2,
                )
                with host.app.app_context():
                    set_field_map(
                        host.db.session,
                        kind="system",
                        host_key="contact_id",
                        zoho_field="Contact_Id",
                    )
                    host.db.session.commit()
                if kind == "export":
                    seed_host(host, records)
                if kind == "import":
                    # The plan an admin previews first: it reads as the run will.
                    with host.app.app_context():
                        planned, plan_seconds = measure(
                            zoho,
                            lambda: get_state().run_sync(
                                mode="all", direction="pull", dry_run=True
                            ),
                        )
                    plans[path] = (planned, plan_seconds)
                credits_before = zoho.stats()["total_credits"]
                direction = "pull" if kind == "import" else "push"
                with host.app.app_context():
                    made, seconds = measure(
                        zoho, lambda d=direction: get_state().run_sync(mode="all", direction=d)
                    )
                credits = zoho.stats()["total_credits"] - credits_before
                measured[path] = (sum(made.values()), credits, seconds)
                if path == "bulk":
                    bulk_made[kind] = made
                with host.app.app_context():
                    host.db.engine.dispose()
            rest_calls, rest_credits, _ = measured["REST"]
            bulk_calls, bulk_credits, bulk_seconds = measured["bulk"]
            made = bulk_made[kind]
            polls = sum(n for key, n in made.items() if key.startswith("GET /bulk/") and
                        key.endswith("/{id}"))  # fmt: skip
            work = sum(made.values()) - polls - fixed(made)
            floor = _bulk_floor(kind, records)
            rows.append(
                Row(
                    "bulk",
                    f"first sync, {kind}: bulk vs REST",
                    records,
                    bulk_calls,
                    bulk_seconds,
                    reference=f"REST {rest_calls:,} calls",
                    ratio=bulk_calls / rest_calls,
                    goal=f"fewer; = {floor} + polls",
                    met=bulk_calls < rest_calls and work == floor,
                    note=(
                        f"{work} calls doing work (minimum {floor}), {polls} status polls, "
                        f"{fixed(made)} fixed; {bulk_credits:,} credits vs {rest_credits:,} "
                        f"on REST; REST took {measured['REST'][2]:.1f}s"
                    ),
                )
            )
            if kind == "import":
                # Token and field metadata calls go to whichever comes first: compared apart.
                (rest_plan, _), (bulk_plan, plan_seconds) = plans["REST"], plans["bulk"]
                rows.append(
                    Row(
                        "bulk",
                        "plan (dry run) of that import: bulk vs REST",
                        records,
                        sum(bulk_plan.values()),
                        plan_seconds,
                        reference=f"REST plan {scaling(rest_plan):,} calls",
                        ratio=scaling(bulk_plan) / scaling(rest_plan),
                        goal="no more than the run",
                        met=scaling(bulk_plan) <= scaling(made),
                        note=(
                            f"{scaling(bulk_plan)} calls reading, {fixed(bulk_plan)} fixed; "
                            f"the bulk run it plans makes {scaling(made)} besides fixed ones"
                        ),
                    )
                )


def _bulk_floor(kind: str, records: int) -> int:
    """The fewest calls, status polls apart, a bulk first sync of ``records`` can make.

    Import: the first REST page (a small org ends there), the count that shows the org is
    large, then per Bulk Read job of 200,000 rows its creation and its download. Export:
    per Bulk Write job of 25,000 rows the upload, the job and its result. How many polls a
    job needs is up to Zoho (the sandbox: one per state), so they are reported apart.
    """
    if kind == "import":
        return 2 + 2 * math.ceil((records - 200) / 200_000)
    return 3 * math.ceil(records / 25_000)


def latency(records: int, concurrencies: list[int], latency_ms: int, rows: list[Row]) -> None:
    """A full export with the sandbox adding ``latency_ms`` to every call."""
    with tempfile.TemporaryDirectory() as scratch, sandbox_process() as zoho:
        for concurrency in concurrencies:
            zoho.reset()
            zoho.faults(clear=True)
            host = connected_host(
                sqlite_url(scratch, f"latency-{concurrency}"),
                zoho,
                ZOHO_SYNC_MAX_CONCURRENCY=concurrency,
            )
            with host.app.app_context():  # field metadata and token, before the clock starts
                get_state().run_sync(mode="all", direction="push")
            seed_host(host, records)
            zoho.faults(latency_ms=latency_ms)
            with host.app.app_context():
                made, seconds = measure(
                    zoho, lambda: get_state().run_sync(mode="all", direction="push")
                )
            stats = zoho.stats()
            limit = math.ceil(records / 100) / concurrency * latency_ms / 1000
            rows.append(
                Row(
                    "latency",
                    f"export, {latency_ms} ms/call, concurrency {concurrency}",
                    records,
                    sum(made.values()),
                    seconds,
                    reference=f"limit {limit:.1f}s",
                    ratio=seconds / limit,
                    goal="<= 1.20",
                    met=seconds / limit <= 1.2,
                    note=(
                        f"peak {stats['concurrency_peak']} in flight, "
                        f"{stats['status_codes'].get('429', 0)} x 429"
                    ),
                )
            )
            with host.app.app_context():
                host.db.engine.dispose()


def peers_at_latency(records: int, latency_ms: int, rows: list[Row]) -> None:
    """Full import and export, ours and the official SDK's, with the sandbox adding
    ``latency_ms`` to every call, as Zoho's own round trip does.

    On loopback a call costs about a millisecond, so the throughput rows compare the
    clients' own work per record. Against Zoho the calls dominate: how a client waits for
    them (the pull reads the next pages while it merges; the push keeps
    ``ZOHO_SYNC_MAX_CONCURRENCY`` writes in flight) decides what a user waits for.
    """
    peers.load_sdk()
    with tempfile.TemporaryDirectory() as scratch, sandbox_process() as zoho:
        for kind in ("import", "export"):
            ours_work = _ours_import if kind == "import" else _ours_export
            ours_calls, ours_seconds = _run(
                zoho,
                scratch,
                records,
                kind,
                ours_work,
                latency_ms=latency_ms,
                ZOHO_SYNC_MAX_CONCURRENCY=DEFAULT_CONCURRENCY,
            )
            # The record calls' latency alone: the import's pages one after another (each
            # needs the previous page's token), the export's writes spread over the calls
            # in flight.
            rounds = (
                math.ceil(records / 200)
                if kind == "import"
                else math.ceil(records / 100) / DEFAULT_CONCURRENCY
            )
            limit = rounds * latency_ms / 1000
            rows.append(
                Row(
                    "latency",
                    f"full {kind}, {latency_ms} ms/call: flask-zoho-sync",
                    records,
                    sum(ours_calls.values()),
                    ours_seconds,
                    reference=f"record calls alone {limit:.1f}s",
                    ratio=ours_seconds / limit,
                    note=f"{scaling(ours_calls)} record calls + {fixed(ours_calls)} fixed",
                )
            )
            sdk_work = peers.sdk_import if kind == "import" else peers.sdk_export
            sdk_calls, sdk_seconds = _run(
                zoho, scratch, records, kind, sdk_work, latency_ms=latency_ms
            )
            ratio = sdk_seconds / ours_seconds
            rows.append(
                Row(
                    "latency",
                    f"full {kind}, {latency_ms} ms/call: official SDK",
                    records,
                    sum(sdk_calls.values()),
                    sdk_seconds,
                    reference="ours, time",
                    ratio=ratio,
                    goal="time > ours",
                    met=ratio > 1,
                    note=f"{ratio:.2f}x our time; one call at a time",
                )
            )


def memory(small: int, large: int, rows: list[Row]) -> None:
    """Peak RSS of a sync of ``large`` records against one of ``small``, each in a fresh
    process (``bench.memory``)."""
    for kind in ("import", "export"):
        peaks = {}
        for records in (small, large):
            peaks[records] = _peak(records, kind)
        ratio = peaks[large]["peak_rss_kib"] / peaks[small]["peak_rss_kib"]
        rows.append(
            Row(
                "memory",
                f"peak RSS, full {kind}",
                large,
                None,
                peaks[large]["seconds"],
                reference=f"N={small:,}",
                ratio=ratio,
                goal="<= 1.50",
                met=ratio <= 1.5,
                note=(
                    f"{peaks[small]['peak_rss_kib'] / 1024:.0f} MiB -> "
                    f"{peaks[large]['peak_rss_kib'] / 1024:.0f} MiB"
                ),
            )
        )


def _credits(zoho: SandboxHandle, action: Callable[[], Any]) -> tuple[dict[str, int], int, float]:
    """Calls by endpoint, record-call credits (token and metadata left out) and seconds."""
    before = dict(zoho.stats()["credits"])
    made, seconds = measure(zoho, action)
    after = zoho.stats()["credits"]
    spent = sum(n - before.get(key, 0) for key, n in after.items() if key not in FIXED)
    return made, spent, seconds


def coql(records: int, large: int, latency_ms: int, rows: list[Row]) -> None:
    """Pulls by COQL (``ZOHO_SYNC_PULL_WITH_COQL``) against issue #20's goals: record calls
    and credits of a full pull of N against REST paging, a since-last pull of a few
    changes, the import's time against the official SDK on loopback and at ``latency_ms``
    a call, and peak memory at ``large`` against N."""
    peers.load_sdk()
    with tempfile.TemporaryDirectory() as scratch, sandbox_process() as zoho:
        spent: dict[bool, tuple[dict[str, int], int, float]] = {}
        for by_coql in (False, True):
            zoho.reset()
            seed_zoho(zoho, records)
            host = connected_host(
                sqlite_url(scratch, f"coql-{by_coql}"), zoho, ZOHO_SYNC_PULL_WITH_COQL=by_coql
            )
            spent[by_coql] = _credits(zoho, lambda host=host: _ours_import(zoho, host))
            if by_coql:
                since_last = _since_last(zoho, host, records)
            with host.app.app_context():
                host.db.engine.dispose()
        (rest_calls, rest_credits, _), (made, credits, seconds) = spent[False], spent[True]
        minimum = math.ceil(records / 2000)
        rows.append(
            Row(
                "coql",
                "pull of N by COQL (full import): record calls",
                records,
                scaling(made),
                seconds,
                reference=f"ceil(N/2000)={minimum}",
                ratio=scaling(made) / minimum,
                goal="= 1.00",
                met=scaling(made) == minimum,
                note=f"+ {fixed(made)} fixed (fields, deleted checks); REST: "
                f"{scaling(rest_calls)} record calls",
            )
        )
        rows.append(
            Row(
                "coql",
                "pull of N by COQL (full import): credits",
                records,
                credits,
                None,
                reference=f"REST paging {rest_credits} credits",
                ratio=credits / rest_credits,
                goal="<= 0.30",
                met=credits / rest_credits <= 0.30,
            )
        )
        rows.append(since_last)
        for at_latency in (0, latency_ms):
            ours_calls, ours_seconds = _run(
                zoho,
                scratch,
                records,
                "import",
                _ours_import,
                latency_ms=at_latency,
                ZOHO_SYNC_PULL_WITH_COQL=True,
            )
            sdk_calls, sdk_seconds = _run(
                zoho, scratch, records, "import", peers.sdk_import, latency_ms=at_latency
            )
            goal = 0.25 if at_latency else GOAL_OF_SDK_TIME["import"]
            ratio = ours_seconds / sdk_seconds
            rows.append(
                Row(
                    "coql",
                    f"full import by COQL, {at_latency} ms/call: ours / SDK",
                    records,
                    sum(ours_calls.values()),
                    ours_seconds,
                    reference=f"SDK {sdk_seconds:.2f}s, {sum(sdk_calls.values())} calls",
                    ratio=ratio,
                    goal=f"<= {goal:.2f}",
                    met=ratio <= goal,
                )
            )
    peaks = {n: _peak(n, "import", coql=True) for n in (records, large)}
    ratio = peaks[large]["peak_rss_kib"] / peaks[records]["peak_rss_kib"]
    rows.append(
        Row(
            "coql",
            "peak RSS, full import by COQL",
            large,
            None,
            peaks[large]["seconds"],
            reference=f"N={records:,}",
            ratio=ratio,
            goal="<= 1.50",
            met=ratio <= 1.5,
            note=(
                f"{peaks[records]['peak_rss_kib'] / 1024:.0f} MiB -> "
                f"{peaks[large]['peak_rss_kib'] / 1024:.0f} MiB"
            ),
        )
    )


def _since_last(zoho: SandboxHandle, host: HostApp, records: int) -> Row:
    """A scheduled pull after 20 records came: one COQL call of LIMIT 200, one credit.

    A since-last pull reads from its watermark (the newest Modified_Time it has seen) less
    five minutes' overlap, and the seeded records all have the same time: a pull after two
    records made ten minutes later sets a watermark that leaves them behind, as the pulls
    of an org whose changes spread over time do."""
    with host.app.app_context():
        zoho.advance_clock(600)  # past the pull's overlap
        zoho.generate_records("Leads", 2, start=records + 1)
        get_state().run_sync(mode="since_last", direction="pull")
        zoho.advance_clock(600)
        zoho.generate_records("Leads", 20, start=records + 3)
    with host.app.app_context():
        made, credits, seconds = _credits(
            zoho, lambda: get_state().run_sync(mode="since_last", direction="pull")
        )
    return Row(
        "coql",
        "since-last pull of 20 new records by COQL: credits",
        20,
        scaling(made),
        seconds,
        reference="LIMIT 200 = 1 credit",
        ratio=credits,
        goal="= 1",
        met=credits == 1,
        note=", ".join(f"{key}: {n}" for key, n in sorted(made.items())),
    )


def _peak(records: int, kind: str, *, coql: bool = False) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.memory", "--records", str(records), "--kind", kind]
    output = subprocess.run(
        command + (["--coql"] if coql else []),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def pages(records: int, repeat: int, rows: list[Row]) -> None:
    """The admin's run page and History for a run of ``records`` (bench_pages)."""
    from bench import bench_pages

    bench_pages.run_pages(records, repeat, rows)


def capture(repeat: int, rows: list[Row]) -> None:
    """Host commit of 1,000 updates with and without change capture (bench_capture)."""
    import sqlalchemy as sa

    from bench import bench_capture

    with tempfile.TemporaryDirectory() as directory:
        engine = sa.create_engine(f"sqlite:///{directory}/capture.sqlite3")
        plain, captured = bench_capture.run(engine, 1000, repeat, "loaded")
        engine.dispose()
    rows.append(
        Row(
            "capture",
            "host commit of 1,000 updates, SQLite",
            1000,
            None,
            captured,
            reference=f"without {plain * 1000:.1f} ms",
            ratio=captured / plain,
            goal="<= 1.10",
            met=captured / plain <= 1.10,
            note=f"median of {repeat}",
        )
    )


# -- output ---------------------------------------------------------------------------------


def _rate(row: Row) -> str:
    if row.rate is None or row.section in ("memory", "capture", "pages"):
        return ""
    return f"{row.rate:,.0f}"


def render(rows: list[Row], *, markdown: bool) -> str:
    header = ["section", "scenario", "N", "calls", "seconds", "rec/s", "vs", "ratio", "goal", "met"]
    body = []
    for row in rows:
        body.append(
            [
                row.section,
                row.scenario,
                f"{row.records:,}",
                "" if row.calls is None else f"{row.calls:,}",
                "" if row.seconds is None else f"{row.seconds:.2f}",
                _rate(row),
                row.reference,
                "" if row.ratio is None else f"{row.ratio:.2f}",
                row.goal,
                "" if row.met is None else ("yes" if row.met else "NO"),
            ]
            + ([row.note] if markdown else [])
        )
    if markdown:
        lines = ["| " + " | ".join([*header, "note"]) + " |"]
        lines.append("|" + "---|" * (len(header) + 1))
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        return "\n".join(lines)
    widths = [max(len(str(cells[i])) for cells in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    for cells, row in zip(body, rows, strict=True):
        line = "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))
        lines.append(line + (f"  {row.note}" if row.note else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the harness")
    parser.add_argument(
        "--only",
        default="calls,throughput,bulk,latency,memory,capture,pages,coql",
        help="comma-separated sections to run",
    )
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args(argv)
    sections = set(args.only.split(","))
    sizes = [1000, 5000] if args.quick else [10_000, 100_000]
    peer_size = sizes[0]
    rows: list[Row] = []
    started = time.monotonic()
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("calls", lambda: calls(sizes[0], rows)),
        ("throughput", lambda: throughput(sizes, peer_size, rows)),
        ("bulk", lambda: bulk(sizes[1], rows)),
        ("latency", lambda: latency(sizes[0] // (10 if args.quick else 1), [1, 2, 5], 200, rows)),
        ("latency", lambda: peers_at_latency(sizes[0] // (10 if args.quick else 1), 200, rows)),
        ("memory", lambda: memory(sizes[0], sizes[1], rows)),
        ("capture", lambda: capture(3 if args.quick else 9, rows)),
        # The goal is set for 10,000 records, so --quick keeps the size and repeats less.
        ("pages", lambda: pages(10_000, 3 if args.quick else 9, rows)),
        ("coql", lambda: coql(sizes[0], sizes[1], 200, rows)),
    ]
    for name, step in steps:
        if name in sections:
            print(f"... {name} ({time.monotonic() - started:.0f}s)", file=sys.stderr, flush=True)
            step()
    print(render(rows, markdown=args.markdown))
    print(f"({time.monotonic() - started:.0f}s in all)")
    return 0 if all(row.met is not False for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
