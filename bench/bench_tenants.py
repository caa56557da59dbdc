"""Many tenants' debounced pushes through real RQ workers (issue #23).

``python -m bench.bench_tenants --tenants 200 --contacts 1000 --workers 1,4 --db postgresql``

What it builds, once (set-up, not timed):

* a host database (a SQLite file, or a fresh PostgreSQL database) holding T tenants' sites,
  each with C contacts (``bench/tenant_host.py``, the host the workers load);
* T sandbox orgs, one per tenant, served by a few ``bench.sandbox_farm`` processes (why
  one org per tenant: that module's docstring);
* each tenant connected to its own org with its own refresh token, Leads and the default
  mapping, and its first sync (``schedule_sync(mode="all")``) run by burst workers.

Then one timed round per worker count W:

1. each tenant's host edits K contacts (``--edits``, default all C) in one captured commit,
   with automatic sync off, so the edits wait in the tenant's outbox;
2. automatic sync is turned on and each tenant's push is scheduled (``jobs.schedule_push``
   under ``tenant_context``) ``--push-delay`` seconds out: that moment is the push's due time;
3. W worker processes (``flask --app bench.tenant_host:create_app zoho-sync worker``) are
   started, and the round ends when every tenant's push run has finished.

Reported per round: wall time (earliest due time to the last run's end), throughput (records
pushed per second of it), lateness (run start minus due time; "inside its window" means at
most ``--tolerance`` seconds late), the calls the sandbox orgs counted against the minimum,
and each org's records against the host's (none lost, none duplicated, every edit there).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from cryptography.fernet import Fernet  # noqa: E402
from rq import Queue  # noqa: E402

from flask_zoho_sync import jobs  # noqa: E402
from flask_zoho_sync.extension import get_state  # noqa: E402
from flask_zoho_sync.models import Run, SyncSettings  # noqa: E402
from flask_zoho_sync.preferences import add_default_mappings, get_settings  # noqa: E402
from flask_zoho_sync.sandbox.handle import SandboxHandle  # noqa: E402
from flask_zoho_sync.tenancy import tenant_context  # noqa: E402

#: A run's counts of records it sent to Zoho.
PUSHED = ("to_zoho.update", "to_zoho.create")
#: Calls that carry the pushed records: one per 100.
RECORD_CALLS = ("POST /Leads/upsert", "PUT /Leads", "POST /Leads")
#: The re-read before each update batch (``sync.checked``: no Zoho edit is overwritten),
#: one per 100 ids. With COQL pulls (the default) it is the only ``GET /Leads``.
REREAD_CALLS = ("GET /Leads",)
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_DATABASE = "zoho_bench_tenants"


@dataclass
class Org:
    index: int
    org_id: str
    url: str
    #: The farm process serving it (for its CPU time).
    pid: int


@dataclass
class Round:
    workers: int
    edits: int
    seconds: float = 0.0
    records: int = 0
    lateness: list[float] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)
    minimum: int = 0
    fixed_calls: int = 0
    record_calls: int = 0
    reread_calls: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    failed_jobs: int = 0
    problems: list[str] = field(default_factory=list)
    peak_in_flight: int = 0
    #: CPU seconds of the worker processes and their work horses, and of the sandbox farm.
    worker_cpu: float = 0.0
    sandbox_cpu: float = 0.0

    @property
    def rate(self) -> float:
        """Records pushed per second of the round."""
        return self.records / self.seconds if self.seconds else float("nan")


def tenant_key(index: int) -> str:
    return f"t{index:03d}"


# -- processes ---------------------------------------------------------------------------------


@contextmanager
def sandbox_farm(
    orgs: int, processes: int, log_dir: Path, *, one_org_id: bool = False
) -> Iterator[list[Org]]:
    """``orgs`` sandbox orgs over ``processes`` farm processes (each its own interpreter)."""
    per_process = math.ceil(orgs / processes)
    started: list[subprocess.Popen[str]] = []
    found: list[Org] = []
    try:
        for first in range(0, orgs, per_process):
            count = min(per_process, orgs - first)
            command = [sys.executable, "-u", "-m", "bench.sandbox_farm"]
            command += ["--orgs", str(count), "--first", str(first)]
            command += ["--one-org-id"] if one_org_id else []
            errors = open(log_dir / f"farm-{first}.log", "w")  # noqa: SIM115 (lives with it)
            process = subprocess.Popen(
                command, cwd=ROOT, stdout=subprocess.PIPE, stderr=errors, text=True, env=_env()
            )
            started.append(process)
            assert process.stdout is not None
            for line in process.stdout:
                if line.strip() == "ready":
                    break
                match = re.fullmatch(r"org (\d+) (\d+) (http://\S+)", line.strip())
                if match:
                    found.append(Org(int(match[1]), match[2], match[3], process.pid))
            else:
                raise RuntimeError(f"sandbox farm {first} did not start (see {errors.name})")
        yield sorted(found, key=lambda org: org.index)
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
            if process.stdout is not None:
                process.stdout.close()


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def start_workers(count: int, log_dir: Path, label: str, *, burst: bool) -> list[subprocess.Popen]:
    """``count`` RQ worker processes as a host runs them (``flask zoho-sync worker``: RQ's
    forking worker with its scheduler, the host app loaded once per worker)."""
    command = [sys.executable, "-m", "flask", "--app", "bench.tenant_host:create_app"]
    command += ["zoho-sync", "worker"] + (["--burst"] if burst else [])
    workers = []
    for number in range(count):
        log = open(log_dir / f"worker-{label}-{number}.log", "w")  # noqa: SIM115
        workers.append(
            subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=_env())
        )
    return workers


def stop_workers(workers: list[subprocess.Popen]) -> None:
    """A warm stop (SIGTERM: RQ finishes the job in hand), then a kill after 30 s."""
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


# -- the host ----------------------------------------------------------------------------------


def database_url(choice: str, directory: Path) -> str:
    """A fresh, empty database: a SQLite file, or ``zoho_bench_tenants`` on the local
    PostgreSQL (dropped and made again), or the URL given."""
    if choice == "sqlite":
        return f"sqlite:///{directory / 'tenants.sqlite3'}"
    url = (
        f"postgresql://postgres@127.0.0.1:5432/{PG_DATABASE}" if choice == "postgresql" else choice
    )
    if url.startswith("postgresql"):
        name = sa.make_url(url).database
        admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
    return url


def seed_contacts(tenants: int, contacts: int) -> None:
    from bench.tenant_host import Contact, db

    rows = [
        {
            "site": tenant_key(t),
            "first_name": "Bench",
            "last_name": f"Contact {n}",
            "email": f"c{n}@{tenant_key(t)}.example.org",
            "company": "Start",
        }
        for t in range(tenants)
        for n in range(contacts)
    ]
    with db.engine.begin() as connection:
        for start in range(0, len(rows), 10_000):
            connection.execute(sa.insert(Contact.__table__), rows[start : start + 10_000])


def connect_tenants(orgs: list[Org]) -> None:
    """Each tenant's admin connects its own org (a refresh token of its own) and picks Leads."""
    from bench.tenant_host import db

    state = get_state()
    for org in orgs:
        with tenant_context(tenant_key(org.index)), SandboxHandle(org.url) as zoho:
            grant = zoho.mint_refresh_token()
            state.connect_with_refresh_token(grant["refresh_token"], zoho.accounts_server)
            session = db.session
            get_settings(session).module = "Leads"
            add_default_mappings(session, state.adapter, "Leads")
            session.commit()


def set_auto_sync(on: bool) -> None:
    """Every tenant's automatic sync, in one statement outside the tenant filter."""
    from bench.tenant_host import db

    with db.engine.begin() as connection:
        connection.execute(sa.update(SyncSettings.__table__).values(auto_sync=on))
    get_state().preferences_changed()


def edit_contacts(tenants: int, edits: int, label: str) -> None:
    """Each tenant's host changes the company of its first ``edits`` contacts in one commit:
    capture files them in that tenant's outbox."""
    from bench.tenant_host import Contact, db

    for t in range(tenants):
        with tenant_context(tenant_key(t)):
            session = db.session
            chosen = session.scalars(
                sa.select(Contact)
                .where(Contact.site == tenant_key(t))
                .order_by(Contact.id)
                .limit(edits)
            ).all()
            for contact in chosen:
                contact.company = f"{label}-{contact.id}"
            session.commit()
            session.remove()


def last_run_id() -> int:
    from bench.tenant_host import db

    with db.engine.connect() as connection:
        return int(connection.scalar(sa.select(sa.func.max(Run.__table__.c.id))) or 0)


def runs_after(run_id: int) -> list[Any]:
    from bench.tenant_host import db

    table = Run.__table__
    with db.engine.connect() as connection:
        return list(
            connection.execute(
                sa.select(
                    table.c.tenant_id,
                    table.c.status,
                    table.c.trigger,
                    table.c.started_at,
                    table.c.finished_at,
                    table.c.counts,
                ).where(table.c.id > run_id)
            )
        )


def process_cpu(pids: set[int]) -> float:
    """CPU seconds (user and system) the processes ``pids`` used so far (Linux)."""
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


# -- the sandbox's side ------------------------------------------------------------------------


def org_calls(orgs: list[Org]) -> tuple[Counter[str], int]:
    """Calls counted by every org, by endpoint, and the highest in-flight peak of any org."""
    total: Counter[str] = Counter()
    peak = 0
    for org in orgs:
        with SandboxHandle(org.url) as zoho:
            stats = zoho.stats()
        total.update(stats["calls"])
        peak = max(peak, int(stats["concurrency_peak"]))
    return total, peak


def set_latency(orgs: list[Org], latency_ms: int) -> None:
    for org in orgs:
        with SandboxHandle(org.url) as zoho:
            zoho.faults(latency_ms=latency_ms)


def check_records(orgs: list[Org], contacts: int, edits: int, label: str) -> list[str]:
    """What each org holds against its tenant's contacts: every contact once, edits there."""
    from bench.tenant_host import Contact, db

    problems = []
    with db.engine.connect() as connection:
        host = {
            (site, email): company
            for site, email, company in connection.execute(
                sa.select(Contact.site, Contact.email, Contact.company)
            )
        }
    for org in orgs:
        site = tenant_key(org.index)
        with SandboxHandle(org.url, timeout=120) as zoho:
            records = zoho.records("Leads")
        emails = Counter(str(record.get("Email")) for record in records)
        duplicated = [email for email, n in emails.items() if n > 1]
        lost = [email for (s, email), _ in host.items() if s == site and email not in emails]
        foreign = [email for email in emails if (site, email) not in host]
        stale = [
            record["Email"]
            for record in records
            if host.get((site, record.get("Email"))) != record.get("Company")
        ]
        edited = sum(1 for record in records if str(record.get("Company", "")).startswith(label))
        if duplicated or lost or foreign or stale or len(records) != contacts or edited != edits:
            problems.append(
                f"{site}: {len(records)} records for {contacts} contacts, {edited} of {edits} "
                f"edits, {len(duplicated)} duplicated, {len(lost)} lost, {len(foreign)} "
                f"foreign, {len(stale)} not as the host holds them"
            )
    return problems


# -- a timed round -----------------------------------------------------------------------------


def timed_round(
    args: argparse.Namespace, orgs: list[Org], workers: int, label: str, log_dir: Path
) -> Round:
    from bench.tenant_host import db

    state = get_state()
    tenants = len(orgs)
    result = Round(workers=workers, edits=args.edits)
    set_auto_sync(False)
    edit_contacts(tenants, args.edits, label)
    set_auto_sync(True)
    before_calls, _ = org_calls(orgs)
    since = last_run_id()
    due: dict[str, float] = {}
    for org in orgs:
        # With --spread, tenant i's edits fall due i/T of the way into the spread: the way
        # sites edit through a day, not all in one second.
        delay = args.push_delay + round(args.spread * org.index / tenants)
        with tenant_context(tenant_key(org.index)):
            moment = time.time() + delay
            if jobs.schedule_push(state, delay=delay) is None:
                result.problems.append(f"{tenant_key(org.index)}: no push was scheduled")
            due[tenant_key(org.index)] = moment
    db.session.remove()
    farm_cpu = process_cpu({org.pid for org in orgs})
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = start_workers(workers, log_dir, label, burst=False)
    deadline = time.monotonic() + args.timeout
    try:
        while time.monotonic() < deadline:
            runs = [run for run in runs_after(since) if run.trigger == "auto"]
            if sum(1 for run in runs if run.finished_at is not None) >= tenants:
                break
            if any(worker.poll() is not None for worker in started):
                result.problems.append("a worker process exited during the round")
                break
            time.sleep(0.25)
        else:
            result.problems.append(f"not every push finished within {args.timeout} s")
    finally:
        stop_workers(started)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    result.worker_cpu = (reaped.ru_utime + reaped.ru_stime) - (
        children.ru_utime + children.ru_stime
    )
    result.sandbox_cpu = process_cpu({org.pid for org in orgs}) - farm_cpu
    runs = [run for run in runs_after(since) if run.trigger == "auto"]
    after_calls, peak = org_calls(orgs)
    result.peak_in_flight = peak
    result.calls = Counter({key: n - before_calls.get(key, 0) for key, n in after_calls.items()})
    result.calls = +result.calls
    first_due = min(due.values())
    ends = []
    for run in runs:
        result.statuses[run.status] += 1
        start = _utc(run.started_at).timestamp()
        result.lateness.append(start - due[run.tenant_id])
        if run.finished_at is not None:
            end = _utc(run.finished_at).timestamp()
            ends.append(end)
            result.durations.append(end - start)
        counts = run.counts or {}
        result.records += sum(int(counts.get(key, 0)) for key in PUSHED)
    per_tenant = Counter(run.tenant_id for run in runs)
    result.problems += [f"{t}: {n} push runs" for t, n in per_tenant.items() if n != 1]
    result.seconds = (max(ends) - first_due) if ends else float("nan")
    result.record_calls = sum(n for key, n in result.calls.items() if key in RECORD_CALLS)
    result.reread_calls = sum(n for key, n in result.calls.items() if key in REREAD_CALLS)
    result.fixed_calls = sum(
        n for key, n in result.calls.items() if key not in RECORD_CALLS + REREAD_CALLS
    )
    result.minimum = tenants * math.ceil(args.edits / 100)
    connection = redis.Redis.from_url(args.redis)
    result.failed_jobs = Queue(state.config.queue, connection=connection).failed_job_registry.count
    result.problems += check_records(orgs, args.contacts, args.edits, label)
    return result


def first_syncs(orgs: list[Org], workers: int, log_dir: Path) -> float:
    """Every tenant's first (full) sync, through burst workers: set-up, timed apart."""
    state = get_state()
    since = last_run_id()
    for org in orgs:
        with tenant_context(tenant_key(org.index)):
            jobs.schedule_sync(state, mode="all", trigger="admin")
    started = time.perf_counter()
    while True:
        for worker in start_workers(workers, log_dir, "first-sync", burst=True):
            worker.wait()
        # An "all" run put off while every other worker ran one waits in the scheduled
        # registry (jobs._wait_for_a_spare_worker): run the workers again once it is due.
        if not jobs.queue_for(state).scheduled_job_registry.count:
            break
        time.sleep(jobs.LONG_RUN_RETRY_SECONDS + 1)
    seconds = time.perf_counter() - started
    runs = runs_after(since)
    failed = [run.tenant_id for run in runs if run.status != "succeeded"]
    if len(runs) != len(orgs) or failed:
        raise RuntimeError(f"first syncs: {len(runs)} runs for {len(orgs)} tenants; {failed=}")
    return seconds


# -- the report --------------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def describe(result: Round, tenants: int, tolerance: float) -> list[str]:
    late = [value for value in result.lateness if value > tolerance]
    rate = result.rate
    fixed = {k: n for k, n in sorted(result.calls.items()) if k not in RECORD_CALLS + REREAD_CALLS}
    checked = [f"  PROBLEM {problem}" for problem in result.problems[:20]] or [
        "  records: every org holds each of its tenant's contacts once, as the host does"
    ]
    return [
        f"workers={result.workers}: {tenants} pushes of {result.edits} records, "
        f"{result.records} records pushed in {result.seconds:.1f} s = {rate:.0f} records/s",
        f"  runs: {dict(result.statuses)}; failed jobs on the queue: {result.failed_jobs}",
        f"  lateness (run start - due): max {max(result.lateness, default=float('nan')):.1f} s, "
        f"p95 {percentile(result.lateness, 0.95):.1f} s, "
        f"median {_median(result.lateness):.1f} s; "
        f"{len(late)} of {len(result.lateness)} later than {tolerance:.0f} s",
        f"  run length: median {_median(result.durations):.2f} s, "
        f"max {max(result.durations, default=float('nan')):.2f} s",
        f"  record calls {result.record_calls} (minimum {result.minimum}); re-reads before "
        f"updates {result.reread_calls}; per-run calls {result.fixed_calls}: {fixed}; "
        f"peak in flight at one org {result.peak_in_flight}",
        f"  CPU: workers {result.worker_cpu:.0f} s, sandbox orgs {result.sandbox_cpu:.0f} s "
        f"({(result.worker_cpu + result.sandbox_cpu) / result.seconds:.2f} cores of the "
        f"{os.cpu_count()} over the round)",
        *checked,
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_tenants", description=__doc__)
    parser.add_argument("--tenants", type=int, default=4)
    parser.add_argument("--contacts", type=int, default=100, help="contacts per tenant")
    parser.add_argument("--edits", type=int, default=None, help="contacts each tenant edits")
    parser.add_argument("--workers", default="1,4", help="worker counts, one round each")
    parser.add_argument("--latency-ms", type=int, default=200, help="added to every Zoho call")
    parser.add_argument("--push-delay", type=int, default=5, help="ZOHO_SYNC_PUSH_DELAY")
    parser.add_argument("--tolerance", type=float, default=60.0, help="seconds late allowed")
    parser.add_argument(
        "--spread",
        type=int,
        default=0,
        help="seconds over which the tenants' pushes fall due, evenly (0: all at once)",
    )
    parser.add_argument("--db", default="sqlite", help="sqlite, postgresql, or a database URL")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/2", help="emptied first")
    parser.add_argument("--farm-processes", type=int, default=2, help="sandbox processes")
    parser.add_argument("--setup-workers", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=3600.0, help="per round, seconds")
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument(
        "--one-org-id",
        action="store_true",
        help="every org keeps the sandbox's single org id: the tenants then share one set "
        "of call slots (ZOHO_SYNC_ORG_CONCURRENCY), as they would against one sandbox",
    )
    args = parser.parse_args(argv)
    args.edits = args.contacts if args.edits is None else args.edits
    counts = [int(item) for item in args.workers.split(",")]

    log_dir = Path(tempfile.mkdtemp(prefix="bench-tenants-"))
    os.environ.update(
        BENCH_TENANTS_DB=database_url(args.db, log_dir),
        BENCH_TENANTS_REDIS=args.redis,
        BENCH_TENANTS_KEY=Fernet.generate_key().decode(),
        BENCH_TENANTS_PUSH_DELAY=str(args.push_delay),
    )
    redis.Redis.from_url(args.redis).flushdb()
    print(f"logs in {log_dir}; load average {os.getloadavg()}", flush=True)
    clock = time.perf_counter()
    results: list[Round] = []
    try:
        farm = sandbox_farm(args.tenants, args.farm_processes, log_dir, one_org_id=args.one_org_id)
        with farm as orgs:
            os.environ["BENCH_TENANTS_SERVERS"] = ",".join(org.url for org in orgs)
            from bench.tenant_host import create_app, db

            app = create_app()
            with app.app_context():
                db.create_all()
                seed_contacts(args.tenants, args.contacts)
                connect_tenants(orgs)
                print(
                    f"set-up: farm, host and connections {time.perf_counter() - clock:.1f} s",
                    flush=True,
                )
                seconds = first_syncs(orgs, args.setup_workers, log_dir)
                print(
                    f"set-up: first syncs of {args.tenants} x {args.contacts} with "
                    f"{args.setup_workers} workers, no latency: {seconds:.1f} s",
                    flush=True,
                )
                set_latency(orgs, args.latency_ms)
                for number, workers in enumerate(counts):
                    print(
                        f"round {number + 1}: {workers} worker(s), load {os.getloadavg()}",
                        flush=True,
                    )
                    result = timed_round(args, orgs, workers, f"r{number + 1}", log_dir)
                    results.append(result)
                    print("\n".join(describe(result, args.tenants, args.tolerance)), flush=True)
    finally:
        if not args.keep_logs:
            shutil.rmtree(log_dir, ignore_errors=True)
    if len(results) >= 2 and results[0].seconds and results[-1].seconds:
        ratio = results[-1].rate / results[0].rate
        print(
            f"throughput with {results[-1].workers} workers / with {results[0].workers}: "
            f"{ratio:.2f} (goal >= 3 for 4 against 1)"
        )
    print(f"total {time.perf_counter() - clock:.0f} s; load average {os.getloadavg()}")
    return 1 if any(result.problems for result in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
