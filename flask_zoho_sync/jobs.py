"""RQ jobs and their scheduling: one debounced push, the periodic pull, notification pulls.

The outbox table is the source of truth; Redis only carries wake-ups. So every step here
may fail (Redis down at commit, a worker killed mid-run) without losing a change: the next
``tick`` finds outbox rows older than the push delay and schedules them again, and the
engine's runs are idempotent (creates are upserts on the contact-id key).

Workers find the host app the way the ``flask`` command does, through ``FLASK_APP``, so
``rq worker zoho-sync --with-scheduler`` works as documented; ``flask zoho-sync worker``
does the same without the variable. The job functions (``run_sync_job`` and its siblings)
are the worker's face: each takes the sync state from the app it found and hands it to the
code below, so nothing here looks the state up anywhere else.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import redis
import sqlalchemy as sa
from flask import Flask, current_app, has_app_context
from rq import Queue, Retry, Worker, get_current_job
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry

from .alerts import alerts_pending, deliver_pending, deliver_quietly
from .ledger import (
    CREDIT_WINDOW,
    Ledger,
    close_interrupted_runs,
    org_credits_spent_since,
    pending_outbox_summary,
)
from .models import Connection, SyncSettings
from .notifications import ensure_channel
from .preferences import get_settings
from .signals import connection_lost, send
from .state import ZohoSyncState, state_of
from .status import AUTOMATIC_TRIGGERS, sync_readiness
from .sync.context import RunReport
from .sync.notified import NotifiedWrite
from .tenancy import ALL_TENANTS, DEFAULT_TENANT, current_tenant, tenant_context
from .zoho.errors import ZohoError, ZohoReconnectRequired, ZohoRetryLater

log = logging.getLogger(__name__)

#: A push job is due this long after the first edit that asked for it.
PUSH_GRACE = 60
#: At most one sync runs per connection. A run holds a lock that expires this long after
#: its last renewal; a thread renews it every third of that while the run lives, so a killed
#: worker blocks the next run for at most this long, however long a healthy run takes.
RUN_LOCK_SECONDS = 90
#: How long a module switch waits for a running sync to end before it is refused.
SWITCH_WAIT_SECONDS = 3.0
SYNC_RUNNING = "a sync is running; try again when it finishes"
#: Notifications name records; their pull runs this soon after (ids are batched meanwhile).
NOTIFY_DELAY = 30
#: Transient Zoho trouble is retried by RQ at these intervals (seconds).
RETRY_INTERVALS = [60, 300, 900, 3600]
#: How long a plan made on the worker stays in Redis for the admin page to show.
PLAN_TTL = 3600
_PLAN_JOB_ID = re.compile(r"zoho-sync-plan-\d+(-[A-Za-z0-9_.:-]+)?")
#: RQ stops a job after 180 s unless told otherwise; a first sync of 100,000 contacts, or
#: one waiting on Zoho's bulk jobs (ZOHO_SYNC_BULK_TIMEOUT, an hour each), takes longer.
SYNC_JOB_TIMEOUT = 6 * 3600


class SyncBusy(RuntimeError):
    """Another sync of this connection is running; the job is retried shortly."""


class SyncRetryLater(RuntimeError):
    """Zoho said "later" (429, 5xx, a timeout); RQ retries the job with backoff."""


def _key(state: ZohoSyncState, name: str) -> str:
    """A Redis key of the current tenant's sync (the single tenant's keys keep the names
    they had before tenants, so an upgrade finds its pending gates and pauses)."""
    tenant = current_tenant()
    if tenant == DEFAULT_TENANT:
        return f"zoho_sync:{state.config.queue}:{name}"
    return f"zoho_sync:{state.config.queue}:tenant:{tenant}:{name}"


def _job_id(kind: str, stamp: int) -> str:
    """A job id naming the tenant, so two tenants' pushes due in the same second are two
    jobs, not one RQ would replace."""
    tenant = current_tenant()
    if tenant == DEFAULT_TENANT:
        return f"zoho-sync-{kind}-{stamp}"
    return f"zoho-sync-{kind}-{stamp}-{tenant}"


def queue_for(state: ZohoSyncState) -> Queue:
    return Queue(state.config.queue, connection=state.redis())


# -- scheduling (called by capture after commit, by tick, by the admin pages) --------------


def schedule_push(state: ZohoSyncState, *, delay: int | None = None) -> str | None:
    """Schedule one push of the captured changes ``ZOHO_SYNC_PUSH_DELAY`` seconds out,
    unless one is pending.

    It pushes only: Zoho's edits come back by the scheduled pull and by notifications, and a
    pull in every push would read back, each time, the records the previous push wrote
    (Zoho's Modified_Time moves on our own writes): two to four calls and a merge of every
    record per push, for nothing. A Zoho edit to a record the push updates is still merged
    first, not overwritten: the push re-reads each update batch (``sync.checked``).

    The gate key is set with NX, so of many commits in the window only the first enqueues;
    the job clears the gate when it starts, so edits made during a run get a run of their
    own. Works the same on RQ 2.12 and 3.x (no reliance on ``unique``).
    """
    seconds = state.config.push_delay if delay is None else delay
    connection = state.redis()
    if connection.exists(_key(state, "paused-until")):
        return None  # the paused run's resume job sends these changes too
    if not connection.set(_key(state, "push-pending"), "1", nx=True, ex=seconds + PUSH_GRACE):
        return None
    due = datetime.now(timezone.utc) + timedelta(seconds=seconds)
    job_id = _job_id("push", int(due.timestamp()))
    try:
        queue_for(state).enqueue_at(
            due,
            run_sync_job,
            mode="outbox",
            trigger="auto",
            direction="push",
            tenant=current_tenant(),
            job_id=job_id,
            retry=Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS),
            job_timeout=SYNC_JOB_TIMEOUT,
            result_ttl=3600,
            failure_ttl=7 * 86400,
        )
    except Exception:
        connection.delete(_key(state, "push-pending"))
        raise
    return job_id


def schedule_sync(
    state: ZohoSyncState,
    *,
    mode: str = "since_last",
    trigger: str = "admin",
    confirm_deletes: bool = False,
) -> str:
    """Queue a run now (the admin's Synchronise, the scheduled pull)."""
    job = queue_for(state).enqueue(
        run_sync_job,
        mode=mode,
        trigger=trigger,
        confirm_deletes=confirm_deletes,
        tenant=current_tenant(),
        job_id=_job_id(trigger, int(time.time() * 1000)),
        retry=Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS),
        job_timeout=SYNC_JOB_TIMEOUT,
        result_ttl=3600,
        failure_ttl=7 * 86400,
    )
    return str(job.id)


def schedule_plan(state: ZohoSyncState, *, mode: str, plan_changes: int | None) -> str:
    """Make a plan (a dry run) on the worker, for the admin page to show when it is done.

    A plan reads what the run will read. For a large first sync that is a Bulk Read export,
    which Zoho takes minutes to prepare; reading a large org page by page takes minutes as
    well. Either would outlast a web request.
    """
    job = queue_for(state).enqueue(
        run_plan_job,
        mode=mode,
        plan_changes=plan_changes,
        tenant=current_tenant(),
        job_id=_job_id("plan", int(time.time() * 1000)),
        job_timeout=SYNC_JOB_TIMEOUT,
        result_ttl=PLAN_TTL,
        failure_ttl=PLAN_TTL,
    )
    return str(job.id)


def run_plan_job(
    mode: str, plan_changes: int | None = None, tenant: str = DEFAULT_TENANT
) -> RunReport:
    """The plan itself. It takes no run lock: it writes nothing on either side."""
    job = get_current_job()
    with _job_state(tenant) as state:
        try:
            report = state.run_sync(
                mode=mode,
                dry_run=True,
                trigger="admin-plan",
                plan_changes=plan_changes,
                on_progress=_PlanProgressMeter(job) if job is not None else None,
            )
        except ZohoError as exc:  # before the run starts: the connection or Zoho's field list
            # Told like a plan Zoho stopped, so the page names the remedy (reconnect, wait).
            report = RunReport(status="failed", message=str(exc), error=exc)
    report.error = _portable(report.error)
    return report


class _PlanProgressMeter:
    """Keeps the records a plan has looked at in its job's meta, for the page to show.

    A plan has no run row to hold its progress, and a large one takes minutes. Saved at
    most once a second: a page of 200 records takes milliseconds to merge.
    """

    def __init__(self, job: Job) -> None:
        self.job = job
        self.saved_at = 0.0

    def __call__(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - self.saved_at < 1.0:
            return
        self.saved_at = now
        self.job.meta["records_done"] = done
        try:
            self.job.save_meta()
        except (redis.RedisError, OSError) as exc:  # the plan goes on; only its count lags
            log.debug("could not save the plan's progress: %s", exc)


def _portable(error: Exception | None) -> Exception | None:
    """RQ pickles a job's result for the page to read back. An exception that does not
    survive the round trip would lose the whole plan, so such a one travels as its text."""
    if error is None:
        return None
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return RuntimeError(str(error))
    return error


@dataclass
class PlanProgress:
    """Where a plan made on the worker is: ``waiting`` for a worker, ``running``, ``done``
    (with its report), ``failed`` (with the reason) or ``gone`` (expired, or never was)."""

    status: str
    mode: str = "since_last"
    report: RunReport | None = None
    error: str | None = None
    #: Workers on the sync's queue: with none, a waiting plan waits for good, and a running
    #: one lost its worker.
    workers: int = 0
    #: Every one of those workers is busy (with a sync, most likely: a large first sync
    #: keeps one busy for a long time), so a waiting plan waits for it to end.
    workers_busy: bool = False
    #: Records a running plan has looked at so far.
    records_done: int = 0


def plan_progress(state: ZohoSyncState, job_id: str) -> PlanProgress:
    """The plan job ``job_id``; only plan jobs are looked at, whatever id is asked for."""
    if not _PLAN_JOB_ID.fullmatch(job_id):
        return PlanProgress("gone")
    connection = state.redis()
    try:
        job = Job.fetch(job_id, connection=connection)
    except NoSuchJobError:
        return PlanProgress("gone")
    if job.kwargs.get("tenant", DEFAULT_TENANT) != current_tenant():
        return PlanProgress("gone")  # another tenant's plan, whatever id was guessed
    mode = str(job.kwargs.get("mode", "since_last"))
    status = job.get_status()
    if status == JobStatus.FINISHED:
        report = job.return_value()
        if isinstance(report, RunReport):
            return PlanProgress("done", mode, report=report)
        return PlanProgress("gone", mode)
    if status in (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED):
        result = job.latest_result()
        lines = (result.exc_string or "").strip().splitlines() if result else []
        reason = lines[-1] if lines else f"the job ended {status.value}"
        return PlanProgress("failed", mode, error=reason)
    workers = Worker.all(connection=connection, queue=queue_for(state))
    if status != JobStatus.STARTED:
        busy = bool(workers) and all(worker.get_state() == "busy" for worker in workers)
        return PlanProgress("waiting", mode, workers=len(workers), workers_busy=busy)
    done = job.meta.get("records_done", 0)
    return PlanProgress("running", mode, workers=len(workers), records_done=int(done))


def schedule_notified_pull(
    state: ZohoSyncState, zoho_ids: list[str], written: Sequence[NotifiedWrite] | None = None
) -> str | None:
    """Remember the ids Zoho named and pull them within a minute, in one job.

    ``written`` (``Notification.written``) is what the updates wrote; it is kept for the
    job, which checks it against our own writes."""
    connection = state.redis()
    if zoho_ids:
        connection.sadd(_key(state, "notified-ids"), *zoho_ids)
        connection.expire(_key(state, "notified-ids"), 86400)
    if written:
        key = _key(state, "notified-writes")
        connection.rpush(key, *(json.dumps(write.as_json()) for write in written))
        connection.expire(key, 86400)
    if not connection.set(
        _key(state, "notify-pending"), "1", nx=True, ex=NOTIFY_DELAY + PUSH_GRACE
    ):
        return None
    due = datetime.now(timezone.utc) + timedelta(seconds=NOTIFY_DELAY)
    job_id = _job_id("notified", int(due.timestamp()))
    queue_for(state).enqueue_at(
        due,
        run_notified_pull_job,
        tenant=current_tenant(),
        job_id=job_id,
        retry=Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS),
        job_timeout=SYNC_JOB_TIMEOUT,
        result_ttl=3600,
    )
    return job_id


# -- running (inside the worker) ------------------------------------------------------------


@contextmanager
def _app_context() -> Iterator[Flask]:
    """The host app, found like the ``flask`` command finds it (``FLASK_APP``).

    Each job runs in an app context, and so a database session, of its own: a worker lives
    for days, and a job that lost its database connection must not hand a broken session
    to the next one.
    """
    if has_app_context():
        app = current_app._get_current_object()  # type: ignore[attr-defined]
    else:
        from flask.cli import NoAppException, ScriptInfo

        try:
            app = ScriptInfo(app_import_path=os.environ.get("FLASK_APP")).load_app()
        except NoAppException as exc:
            raise RuntimeError(
                "The Zoho sync worker cannot find the Flask app: set FLASK_APP for the worker "
                "(FLASK_APP=myapp rq worker zoho-sync --with-scheduler --worker-class "
                "flask_zoho_sync.workers.SyncWorker) or run it with "
                "'flask --app myapp zoho-sync worker'."
            ) from exc
    with app.app_context():
        try:
            yield app
        finally:
            _discard_session(app)


@contextmanager
def _job_state(tenant: str = DEFAULT_TENANT) -> Iterator[ZohoSyncState]:
    """The sync state of the host app this job runs for, inside that app's context, as the
    tenant the job was scheduled for."""
    with _app_context() as app, tenant_context(tenant):
        yield state_of(app)


def _discard_session(app: Flask) -> None:
    try:
        state_of(app).db.session.remove()
    except Exception as exc:  # the database is gone; the next job starts afresh anyway
        log.warning("could not close the sync job's database session: %s", exc)


@contextmanager
def run_lock(
    state: ZohoSyncState,
    *,
    wait: float = 0.0,
    busy: str = "another Zoho sync is running; this one will run after it",
) -> Iterator[None]:
    """One sync per connection at a time, across every worker; expires if a worker dies.

    A fixed expiry long enough for the longest run would keep a dead worker's lock for that
    long; a short expiry with a heartbeat frees it within ``RUN_LOCK_SECONDS``. Once held,
    runs that an earlier worker left "running" are closed as interrupted: no other run can
    be going on, and their unfinished work is still in the outbox for this one.
    """
    seconds = RUN_LOCK_SECONDS
    # thread_local=False: the heartbeat thread renews the token the run's thread acquired.
    lock = state.redis().lock(
        _key(state, "run-lock"), timeout=seconds, blocking=False, thread_local=False
    )
    if not lock.acquire(blocking=wait > 0, blocking_timeout=wait if wait > 0 else None):
        raise SyncBusy(busy)
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(seconds / 3):
            try:
                lock.reacquire()
            except (redis.RedisError, OSError) as exc:
                # The run goes on: its writes are idempotent, and the outbox is the truth.
                log.warning("could not renew the Zoho sync lock: %s", exc)

    heartbeat = threading.Thread(target=renew, name="zoho-sync-run-lock", daemon=True)
    heartbeat.start()
    try:
        close_interrupted_runs(state.db.session)
        yield
    finally:
        stop.set()
        heartbeat.join(timeout=5)
        try:
            lock.release()
        except (redis.RedisError, OSError):
            log.warning("the Zoho sync lock had expired or Redis was gone when the run ended")


@contextmanager
def exclusive_run(state: ZohoSyncState) -> Iterator[None]:
    """The run lock for runs outside the worker (CLI, the admin's "run now").

    Those exist for when Redis or the worker is down, so a Redis that does not answer means
    running unlocked (no worker can be running either: it needs Redis to get jobs); a held
    lock still means another run is going on, and ``SyncBusy`` says so.
    """
    try:
        state.redis().ping()
    except (redis.RedisError, OSError):
        yield
        return
    with run_lock(state):
        yield


@contextmanager
def settings_lock(state: ZohoSyncState, *, wait: float | None = None) -> Iterator[None]:
    """The run lock for a change that pulls the ground from under a run (a module switch
    forgets the links a running sync is writing).

    It waits ``SWITCH_WAIT_SECONDS`` for a run about to end, then raises ``SyncBusy`` with
    ``SYNC_RUNNING``. Without Redis no worker runs; an unlocked CLI run that is going on
    anyway is the engine's to notice, before its next write.
    """
    try:
        state.redis().ping()
    except (redis.RedisError, OSError):
        yield
        return
    seconds = SWITCH_WAIT_SECONDS if wait is None else wait
    with run_lock(state, wait=seconds, busy=SYNC_RUNNING):
        yield


def _outcome(state: ZohoSyncState, report: RunReport, *, mode: str, trigger: str) -> dict[str, Any]:
    if report.status == "failed" and isinstance(report.error, ZohoRetryLater):
        raise SyncRetryLater(report.message or "Zoho asked us to try later")
    outcome = {"status": report.status, "message": report.message, "counts": dict(report.counts)}
    if report.status == "paused":
        outcome["resumes_at"] = schedule_resume(state, report, mode=mode, trigger=trigger)
    return outcome


def schedule_resume(state: ZohoSyncState, report: RunReport, *, mode: str, trigger: str) -> str:
    """Run the paused work again once the budget's window frees credits.

    Until then the tick schedules nothing (each attempt would only pause again), and says so.
    """
    resumes_at = getattr(report.error, "resumes_at", None)
    now = datetime.now(timezone.utc)
    if resumes_at is None or resumes_at <= now:
        resumes_at = now + timedelta(hours=1)
    connection = state.redis()
    connection.set(_key(state, "paused-until"), resumes_at.isoformat())
    connection.expireat(_key(state, "paused-until"), resumes_at)
    queue_for(state).enqueue_at(
        resumes_at,
        run_sync_job,
        mode="since_last" if mode == "ids" else mode,
        trigger=trigger,
        tenant=current_tenant(),
        job_id=_job_id("resume", int(resumes_at.timestamp())),
        retry=Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS),
        job_timeout=SYNC_JOB_TIMEOUT,
        result_ttl=3600,
        failure_ttl=7 * 86400,
    )
    return resumes_at.isoformat()


def paused_until(state: ZohoSyncState) -> str | None:
    value = state.redis().get(_key(state, "paused-until"))
    return value.decode() if value else None


def _refusal(state: ZohoSyncState, trigger: str) -> str | None:
    """Why a run of ``trigger`` writes nothing now (``status.sync_readiness``), or None.

    Automatic runs need automatic sync on and the first manual sync done; every run needs a
    mapping that carries data. The captured changes stay in the outbox meanwhile.
    """
    readiness = sync_readiness(state.db.session, state.adapter)
    if trigger not in AUTOMATIC_TRIGGERS:
        return readiness.refusal()
    settings = state.db.session.scalars(sa.select(SyncSettings)).first()
    if not (settings and settings.auto_sync and settings.module):
        return "automatic sync is off"
    return readiness.automatic_refusal()


def run_sync_job(
    mode: str = "outbox",
    trigger: str = "auto",
    confirm_deletes: bool = False,
    tenant: str = DEFAULT_TENANT,
    direction: str = "both",
) -> dict[str, Any]:
    """A sync run in a worker: the debounced push (push only), the scheduled pull and the
    admin's Synchronise (two-way passes: incremental pull, then push) all run this.

    An outbox larger than ``ZOHO_SYNC_PUSH_SLICE`` is sent a slice a job: the next slice's
    job (push only: a two-way run has just pulled) is queued now, behind the jobs already due,
    so one tenant's mass edit does not hold a worker while others' pushes fall due."""
    with _job_state(tenant) as state:
        gate = {"auto": "push-pending", "schedule": "pull-pending"}.get(trigger)
        if gate:
            state.redis().delete(_key(state, gate))
        refusal = _refusal(state, trigger)
        if refusal:
            log.info("Zoho sync job (%s) wrote nothing: %s", trigger, refusal)
            return {"status": "skipped", "message": refusal}
        if mode == "all":
            waiting = _wait_for_a_spare_worker(
                state, trigger=trigger, confirm_deletes=confirm_deletes, direction=direction
            )
            if waiting is not None:
                return waiting
        with run_lock(state):
            if mode == "all":
                state.redis().delete(_key(state, "all-run-waiting"))
            report = state.run_sync(
                mode=mode,
                direction=direction,
                trigger=trigger,
                confirm_deletes=confirm_deletes,
                outbox_slice=state.config.push_slice,
            )
        deliver_quietly(state)  # on the worker: no request waits for SMTP or the webhook
        outcome = _outcome(state, report, mode=mode, trigger=trigger)
        if report.status in ("succeeded", "partial") and report.counts.get("outbox.left"):
            outcome["next_slice"] = _queue_next_slice(state, trigger)
        return outcome


#: An "all" run that finds every other worker in a long run asks again this much later.
LONG_RUN_RETRY_SECONDS = 30
#: How RQ names the sync run's job function (``Job.func_name``).
_RUN_SYNC_JOB = f"{__name__}.run_sync_job"


def _long_runs_going_on(state: ZohoSyncState) -> tuple[int, int]:
    """Workers on the sync's queue, and how many of them run an "all" run now (this job's
    own worker left out): any tenant's, as every tenant's jobs share the workers."""
    queue = queue_for(state)
    connection = state.redis()
    mine = get_current_job()
    long_runs = 0
    for job_id in StartedJobRegistry(queue=queue).get_job_ids():
        if mine is not None and job_id == mine.id:
            continue
        try:
            job = Job.fetch(job_id, connection=connection)
        except NoSuchJobError:
            continue
        if job.func_name == _RUN_SYNC_JOB and job.kwargs.get("mode") == "all":
            long_runs += 1
    return Worker.count(connection=connection, queue=queue), long_runs


def _wait_for_a_spare_worker(
    state: ZohoSyncState, *, trigger: str, confirm_deletes: bool, direction: str
) -> dict[str, Any] | None:
    """Put this "all" run off (None: it may run now) while every other worker is in one.

    An "all" run of a large tenant (the admin's Synchronise all, a first sync through the
    bulk APIs) holds its worker for minutes or hours; with every worker in one, every
    tenant's ten-minute push would wait for them. So at least one worker of two or more
    stays free of them: this run asks again in ``LONG_RUN_RETRY_SECONDS``, as a new job,
    without holding a worker meanwhile. One worker alone runs everything in turn."""
    if get_current_job() is None:
        return None  # not on a worker (the CLI, a test): nothing to share
    try:
        workers, long_runs = _long_runs_going_on(state)
    except (redis.RedisError, OSError):
        return None  # the lock that follows says what is wrong with Redis
    if workers < 2 or long_runs < workers - 1:
        return None
    job = queue_for(state).enqueue_in(
        timedelta(seconds=LONG_RUN_RETRY_SECONDS),
        run_sync_job,
        mode="all",
        trigger=trigger,
        confirm_deletes=confirm_deletes,
        tenant=current_tenant(),
        direction=direction,
        job_id=_job_id("all-waiting", int(time.time() * 1000)),
        retry=Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS),
        job_timeout=SYNC_JOB_TIMEOUT,
        result_ttl=3600,
        failure_ttl=7 * 86400,
    )
    message = (
        f"{long_runs} of the {workers} workers are each in a run of every record; this one "
        f"waits so that pushes keep a worker, and asks again in {LONG_RUN_RETRY_SECONDS} s."
    )
    log.info("Zoho sync 'all' run put off (job %s): %s", job.id, message)
    # For the Synchronise page, which shows the run once it starts: until then, why not yet.
    state.redis().set(_key(state, "all-run-waiting"), message, ex=2 * LONG_RUN_RETRY_SECONDS)
    return {"status": "waiting", "message": message, "next": str(job.id)}


def all_run_waiting(state: ZohoSyncState) -> str | None:
    """Why the current tenant's "all" run has not started yet, if a worker put it off."""
    try:
        value = state.redis().get(_key(state, "all-run-waiting"))
    except (redis.RedisError, OSError):
        return None
    return value.decode() if value else None


def _queue_next_slice(state: ZohoSyncState, trigger: str) -> str:
    job = queue_for(state).enqueue(
        run_sync_job,
        mode="outbox",
        trigger=trigger,
        direction="push",
        tenant=current_tenant(),
        job_id=_job_id("push-slice", int(time.time() * 1000)),
        retry=Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS),
        job_timeout=SYNC_JOB_TIMEOUT,
        result_ttl=3600,
        failure_ttl=7 * 86400,
    )
    return str(job.id)


def _take_notified_writes(state: ZohoSyncState) -> list[NotifiedWrite]:
    """Everything notifications said updates wrote since the last notified pull, taken in
    one transaction so a notification arriving meanwhile is kept for the next job."""
    key = _key(state, "notified-writes")
    with state.redis().pipeline() as pipe:
        pipe.lrange(key, 0, -1)
        pipe.delete(key)
        raw, _deleted = pipe.execute()
    written = []
    for item in raw:
        try:
            written.append(NotifiedWrite.from_json(json.loads(item)))
        except (ValueError, KeyError, TypeError):
            log.warning("Dropped an unreadable notified write: %r", item[:200])
    return written


def run_notified_pull_job(tenant: str = DEFAULT_TENANT) -> dict[str, Any]:
    with _job_state(tenant) as state:
        connection = state.redis()
        connection.delete(_key(state, "notify-pending"))
        key = _key(state, "notified-ids")
        ids = [member.decode() for member in connection.smembers(key)]
        refusal = _refusal(state, "notify") if ids else None
        if not ids or refusal:
            # The ids stay remembered for a day: the first sync pulls them anyway.
            return {"status": "skipped", "ids": len(ids), "message": refusal}
        with run_lock(state):
            connection.srem(key, *ids)
            written = _take_notified_writes(state)
            session = state.db.session
            deleted = Ledger(session, get_settings(session)).known_deleted(ids)
            wanted = [zoho_id for zoho_id in ids if zoho_id not in deleted]
            if not wanted:
                return {"status": "skipped", "ids": len(ids), "known_deleted": len(deleted)}
            report = state.sync_records(wanted, trigger="notify", notified=written)
        if report.status in ("failed", "paused"):
            connection.sadd(key, *wanted)  # keep them for the retry
            if written:
                connection.rpush(
                    _key(state, "notified-writes"),
                    *(json.dumps(write.as_json()) for write in written),
                )
        deliver_quietly(state)
        return _outcome(state, report, mode="ids", trigger="notify")


# -- alerts ----------------------------------------------------------------------------------


def schedule_alert_delivery(state: ZohoSyncState) -> str | None:
    """Deliver pending alerts on the worker (for the faces that must not wait on SMTP or a
    webhook: a web request). None when nothing is pending or Redis is down: the incidents
    stay in the database and the next tick schedules them."""
    try:
        if not alerts_pending(state):
            return None
        job = queue_for(state).enqueue(
            deliver_alerts_job,
            tenant=current_tenant(),
            job_id=_job_id("alerts", int(time.time() * 1000)),
            job_timeout=300,
            result_ttl=3600,
        )
    except (redis.RedisError, OSError) as exc:
        log.warning("could not queue the Zoho sync's alerts: %s", exc)
        return None
    return str(job.id)


def deliver_alerts_job(tenant: str = DEFAULT_TENANT) -> dict[str, Any]:
    """The worker's side of :func:`schedule_alert_delivery`."""
    with _job_state(tenant) as state:
        report = deliver_pending(state)
    return {"sent": report.sent, "problems": report.problems}


# -- the tick (cron endpoint and CLI) --------------------------------------------------------


@dataclass
class TickReport:
    pull_scheduled: str | None = None
    pull_due_at: str | None = None
    outbox_pending: int = 0
    push_scheduled: str | None = None
    notifications: str = "off"
    auto_sync: bool = False
    message: str | None = None
    #: The job delivering alerts the database holds unsent (an earlier attempt failed).
    alerts_scheduled: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def known_tenants(state: ZohoSyncState) -> list[str]:
    """Every tenant that has chosen settings or connected, in key order (the default
    tenant of a single-tenant install, even before anything is set up)."""
    either = sa.union(sa.select(SyncSettings.tenant_id), sa.select(Connection.tenant_id))
    statement = sa.select(either.subquery()).execution_options(**{ALL_TENANTS: True})
    found = {str(key) for key in state.db.session.scalars(statement)}
    return sorted(found or {DEFAULT_TENANT})


def tick_tenants(
    state: ZohoSyncState,
    tenants: Sequence[str] | None = None,
    *,
    now: Callable[[], datetime] | None = None,
) -> dict[str, TickReport]:
    """:func:`tick` for each tenant (all known ones unless ``tenants`` names some), each
    as itself: one tenant's pull falling due schedules nothing for another, and one
    tenant's Redis or Zoho trouble does not stop the others' ticks."""
    reports: dict[str, TickReport] = {}
    for tenant in tenants if tenants is not None else known_tenants(state):
        with tenant_context(tenant):
            try:
                reports[tenant] = tick(state, now=now)
            finally:
                state.db.session.rollback()  # nothing of one tenant's reads leaks to the next
    return reports


def tick_answer(reports: dict[str, TickReport]) -> dict[str, Any]:
    """What the CLI prints and the cron endpoint answers: one tenant's report as it always
    was (with its tenant named), several under ``tenants``."""
    if len(reports) == 1:
        [(tenant, report)] = reports.items()
        return {**report.as_dict(), "tenant": tenant}
    return {"tenants": {tenant: report.as_dict() for tenant, report in reports.items()}}


def tick(state: ZohoSyncState, *, now: Callable[[], datetime] | None = None) -> TickReport:
    """What a scheduler calls every few minutes: a due pull, a stuck outbox, nothing else.

    Safe to call as often as wanted: it schedules only what is due and not already pending.
    """
    moment = (now or (lambda: datetime.now(timezone.utc)))()
    session = state.db.session
    settings = session.scalars(sa.select(SyncSettings)).first()
    report = TickReport(auto_sync=bool(settings and settings.auto_sync))
    # Whatever else is due: an incident is news even while automatic sync is off.
    report.alerts_scheduled = schedule_alert_delivery(state)
    if settings is None or not settings.module:
        report.message = "Nothing to do: no Zoho module is chosen yet."
        return report
    if not settings.auto_sync:
        report.message = "Automatic sync is off; changes are kept and sent once it is on."
        return report
    refusal = sync_readiness(session, state.adapter).automatic_refusal()
    if refusal:
        report.message = refusal
        report.outbox_pending = int(pending_outbox_summary(session)[0])
        return report
    paused = paused_until(state)
    if paused:
        # The budget is the org's: say so when other sites spent some of it.
        by_others = org_credits_spent_since(session, moment - CREDIT_WINDOW).by_other_tenants
        report.message = (
            f"Paused until {paused}: the sync's daily credit budget is spent, or Zoho's "
            "credits for the org are down to ZOHO_SYNC_CREDIT_RESERVE. It resumes by itself; "
            "pending changes are kept."
            + (
                f" Other sites on this Zoho org, which share its budget, spent {by_others} "
                "of the credits of the last 24 hours."
                if by_others
                else ""
            )
        )
        report.outbox_pending = int(pending_outbox_summary(session)[0])
        return report
    interval = timedelta(seconds=state.config.pull_interval)
    due = (settings.last_pull_at + interval) if settings.last_pull_at else moment
    report.pull_due_at = due.isoformat()
    connection = state.redis()
    if due <= moment and connection.set(_key(state, "pull-pending"), "1", nx=True, ex=3600):
        report.pull_scheduled = schedule_sync(state, mode="since_last", trigger="schedule")
    # Pending changes with no push pending (Redis was down at commit, a job was lost) get
    # one now; rows that already waited longer than the delay go without further delay.
    # Batches capture wrote and per-contact rows alike: a worker expands the former.
    pending, oldest = pending_outbox_summary(session)
    try:
        report.notifications = ensure_channel(state, session, settings, now=moment)
    except ZohoError as exc:
        # Notifications only speed things up; the scheduled pull still runs without them.
        report.notifications = f"failed: {exc.message}"
        if isinstance(exc, ZohoReconnectRequired) and has_app_context():
            # Found by the tick, between runs: the admin hears of it before the next run.
            send(connection_lost, current_app._get_current_object(), reason=str(exc), error=exc)  # type: ignore[attr-defined]
    if pending:
        report.outbox_pending = int(pending)
        waited = oldest is not None and _as_utc(oldest) < moment - timedelta(
            seconds=state.config.push_delay
        )
        report.push_scheduled = schedule_push(state, delay=0 if waited else None)
    return report


def _as_utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
