"""A sync run: pull Zoho's changes, merge, push the host's, and record what happened.

A two-way pass pulls first and pushes second. The pull's three-way merge decides every field
both sides changed (by the per-field policy) and leaves for Zoho only what the merge gave to
Zoho; pushing first instead would overwrite Zoho's side of a conflict before the merge could
see it. The debounced push is the exception (``direction="push"``): it merges the Zoho edits
it meets through the re-read before each update batch (``sync.checked``) and leaves the rest
to the scheduled pull, because a pull in every push would read back what the push before
it wrote.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from typing import Any

from flask_zoho_sync.sync.bulk import BulkPullPass, BulkPushPass, bulk_cost, first_sync
from flask_zoho_sync.sync.context import (
    ContactSource,
    EngineOptions,
    ProgressCallback,
    RunReport,
    SettingsChanged,
)
from flask_zoho_sync.sync.mapping import Mapping
from flask_zoho_sync.sync.notified import NotifiedWrite
from flask_zoho_sync.sync.pull import PullPass
from flask_zoho_sync.sync.push import PushPass
from flask_zoho_sync.sync.scope import ScopeRefused
from flask_zoho_sync.zoho.errors import ZohoBudgetExhausted, ZohoError
from flask_zoho_sync.zoho.timefmt import utc_now

log = logging.getLogger(__name__)

#: ``all``: every record both ways; ``since_last``: what changed since the last sync on
#: either side; ``outbox``: the captured host changes (after an incremental pull, unless the
#: run pushes only, as the debounced push does: its re-reads guard Zoho's edits instead).
MODES = ("all", "since_last", "outbox")
DIRECTIONS = ("both", "push", "pull")


def estimate_cost(
    plan: RunReport, *, extra_updates: int = 0, bulk_threshold: int = 0, reread: bool = False
) -> tuple[int, int]:
    """What the real run would cost in Zoho calls and credits, from a dry run's plan.

    The reads the plan made are the reads the run makes; the writes are priced as the push
    sends them (100 records a call; a write costs a credit per ten records; an update batch
    also re-reads its records first, one call). A plan of a
    bulk first sync (``bulk_threshold`` given) prices the export and the write jobs the run
    will use instead (``sync.bulk.bulk_cost``). A plan that made the push's re-reads itself
    (``reread``: a push-only plan, ``PushPass._plan_reread``) has them in its own calls.
    """
    calls, credits = plan.counts.get("calls", 0), plan.counts.get("credits", 0)
    updates = plan.counts.get("to_zoho.update", 0) + extra_updates
    creates = plan.counts.get("to_zoho.create", 0) + plan.counts.get("to_zoho.link", 0)
    if bulk_threshold:
        job_calls, job_credits, in_jobs_created, in_jobs_updated = bulk_cost(
            plan, extra_updates, bulk_threshold
        )
        calls, credits = calls + job_calls, credits + job_credits
        creates, updates = creates - in_jobs_created, updates - in_jobs_updated
    deletes = plan.counts.get("to_zoho.delete", 0)
    # Each update batch re-reads its records just before writing (``checked.checked_update``):
    # one GET of up to 100 ids, one credit.
    rereads = 0 if reread else math.ceil(updates / 100)
    calls, credits = calls + rereads, credits + rereads
    for records, per_ten in ((updates, True), (creates, True), (deletes, False)):
        batches = math.ceil(records / 100)
        calls += batches
        credits += sum(
            max(1, math.ceil(min(100, records - start) / 10)) if per_ten else 1
            for start in range(0, records, 100)
        )
    return calls, credits


def _partial_message(report: RunReport, *, dry_run: bool) -> str:
    """What a run that synced most records says about the ones it could not: how many and
    the commonest reasons, so the admin knows what to look for in the history."""
    failed = report.counts.get("to_zoho.error", 0) + report.counts.get("to_host.error", 0)
    codes = Counter(
        change.error_code or "ERROR" for change in report.changes if change.action == "error"
    )
    reasons = ", ".join(f"{code} x{count}" for code, count in codes.most_common(3))
    records = "record" if failed == 1 else "records"
    if dry_run:
        return f"{failed} {records} would fail ({reasons}); the plan lists each one with why."
    return (
        f"{failed} {records} could not be synced ({reasons}); everything else was. The run's "
        "history lists each one with Zoho's reason."
    )


def _stopped_message(change: str) -> str:
    return (
        f"Stopped: {change} while this run was going, so it stopped before its next write. "
        "What it did before is recorded; the next sync uses the new settings."
    )


def _paused_message(exc: ZohoBudgetExhausted) -> str:
    when = (
        f"about {exc.resumes_at.strftime('%Y-%m-%d %H:%M')} UTC"
        if exc.resumes_at is not None
        else "when the 24-hour window frees credits"
    )
    return (
        f"Paused: {exc.message}. Everything not yet sent stays queued; the sync resumes "
        f"{when}. {_paused_advice(exc)}"
    )


def _paused_advice(exc: ZohoBudgetExhausted) -> str:
    if exc.setting == "ZOHO_SYNC_DAILY_CREDIT_BUDGET":
        return "Raise ZOHO_SYNC_DAILY_CREDIT_BUDGET to let it spend more."
    return f"Lower {exc.setting} to let it use more of the org's credits."


def _sum_up(report: RunReport, problems: Sequence[str], *, dry_run: bool) -> None:
    """A run that failed some records is partial and says which reasons were commonest;
    mapping rows skipped for problems are named whatever the outcome."""
    if report.status == "succeeded" and report.counts.get("to_zoho.error", 0) + report.counts.get(
        "to_host.error", 0
    ):
        report.status = "partial"
        report.message = _partial_message(report, dry_run=dry_run)
    if problems:
        skipped = "Some mapping rows were skipped: " + "; ".join(problems)
        report.message = skipped if report.message is None else f"{report.message} {skipped}"


class MappingCarriesNoData(ValueError):
    """The mapping has no active pair beyond identity; the run wrote nothing."""


class SyncEngine:
    """Runs one sync with the collaborators it is given.

    :param client: a ``ZohoClient`` (or anything with its record methods).
    :param adapter: the host's contacts (``flask_zoho_sync.adapter.ContactAdapter``).
    :param ledger: the extension's bookkeeping (``flask_zoho_sync.ledger.Ledger``).
    :param mapping: the validated mapping for the chosen module.
    :param host_writes: a context manager factory under which the engine writes Zoho's
        changes into the host, so that change capture does not echo them back.
    :param bulk: Zoho's bulk APIs (a ``zoho.bulk.BulkClient``), for first syncs above
        ``options.bulk_threshold``; without it every sync uses REST.
    """

    def __init__(
        self,
        *,
        client: Any,
        adapter: ContactSource,
        ledger: Any,
        mapping: Mapping,
        options: EngineOptions | None = None,
        host_writes: Callable[[], AbstractContextManager[Any]] | None = None,
        on_progress: ProgressCallback | None = None,
        clock: Callable[[], datetime] = utc_now,
        bulk: Any = None,
    ) -> None:
        self.client = client
        self.bulk = bulk
        self.adapter = adapter
        self.ledger = ledger
        self.mapping = mapping
        self.options = options or EngineOptions()
        self._host_writes = host_writes or nullcontext
        self._on_progress = on_progress
        self.clock = clock
        self.started_at = clock()
        self.run: Any = None
        #: Contacts the pull left changes for Zoho on; the push sends them in the same pass.
        self.push_queue: dict[str, None] = {}
        #: Host contacts linked during this run (before their link rows are flushed).
        self.claimed: set[str] = set()
        #: In a dry run, what the pull's merge would send to Zoho per contact: the push
        #: plans exactly that for them, because the host was not actually updated.
        self.planned_to_zoho: dict[str, dict[str, Any]] = {}
        #: In a dry run, the Zoho records the plan deletes for host deletions, by Zoho id,
        #: with the contact id that was linked to each. The run drops those links before the
        #: pull and the push; the plan must act as if it had, or a contact that reused a
        #: deleted one's id (SQLite does) is planned as an update of the deleted record.
        self.planned_deleted: dict[str, str] = {}
        #: In a dry run, the host contacts the plan deletes because Zoho deleted their
        #: records: the run deletes them in its pull, so its push never sees them.
        self.planned_host_deletes: set[str] = set()
        #: In a dry run, the Zoho version (Modified_Time) the plan's merge took per contact:
        #: the run's merge saves it on the link, and its push's re-read compares with it.
        self.planned_seen: dict[str, datetime | None] = {}
        #: Whether this run's pull ran: a plan without one reads before it plans updates.
        self.pulled = False
        #: Whether this plan made the push's re-reads itself (priced in its own calls).
        self.plan_reread = False
        self._phase_base = 0
        #: Records looked at so far, over both phases (a plan has no run row to hold it).
        self._progress = 0
        #: Whether this dry run planned a bulk first sync (priced as one in its estimate).
        self._bulk_plan = False
        #: What changed in the settings under this run, once noticed (it then stops).
        self.stop_reason: str | None = None

    # -- the collaborators' hooks -----------------------------------------------------------

    def host_writes(self) -> AbstractContextManager[Any]:
        return self._host_writes()

    def progress(self, phase: str, done: int) -> None:
        self._progress = self._phase_base + done
        if self.run is not None and not self.options.dry_run:
            self.run.progress_done = self._progress
        if self._on_progress is not None:
            self._on_progress(self._progress, None)

    def check_settings(self) -> None:
        """Raise ``SettingsChanged`` when the settings this run started with are no longer
        the stored ones; called before each write batch and each commit of a run."""
        if self.options.dry_run:
            return
        if self.stop_reason is None:
            change = getattr(self.ledger, "settings_change", lambda: None)()
            if change is None:
                return
            self.stop_reason = change
        raise SettingsChanged(self.stop_reason)

    def _guard_commits(self, on: bool) -> None:
        if hasattr(self.ledger, "guard"):
            self.ledger.guard = self.check_settings if on and not self.options.dry_run else None

    def _stopped(self, report: RunReport, exc: Exception | None) -> bool:
        """Whether the run ended because its settings changed (then the report says so)."""
        if self.stop_reason is None and not self.options.dry_run:
            try:
                self.stop_reason = getattr(self.ledger, "settings_change", lambda: None)()
            except Exception:  # the database is gone: the run failed for that reason
                return False
        if self.stop_reason is None:
            return False
        report.status = "stopped"
        report.message = _stopped_message(self.stop_reason)
        report.error = exc
        log.info("Zoho sync run stopped: %s", self.stop_reason)
        return True

    def too_many_deletes(self, count: int) -> bool:
        if self.options.confirm_deletes or count <= self.options.mass_delete_floor:
            return False
        linked = self.ledger.linked_count()
        return linked > 0 and count > self.options.mass_delete_share * linked

    # -- running -------------------------------------------------------------------------

    def sync(
        self, *, mode: str = "since_last", direction: str = "both", trigger: str | None = None
    ) -> RunReport:
        """Run a sync; never raises for Zoho trouble: the report says how it ended and why."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}")
        report = self._new_report()
        if self._refuse_blank_mapping(report):
            return report
        problems = self.mapping.problems()
        meter_before = self._meter_totals()
        if not self.options.dry_run:
            self._start_run(
                kind="sync" if direction == "both" else direction, mode=mode, trigger=trigger
            )
        try:
            self._run_passes(report, mode, direction)
        except SettingsChanged as exc:
            self.ledger.rollback()
            self._stopped(report, exc)
        except ZohoBudgetExhausted as exc:
            # What was sent is committed batch by batch; the rest stays queued for the
            # resumed run, which picks up where this one stopped.
            self.ledger.rollback()
            report.status = "paused"
            report.message = _paused_message(exc)
            report.error = exc
            log.info("Zoho sync run paused: %s", exc)
        except ZohoError as exc:
            self.ledger.rollback()
            report.status = "failed"
            report.message = str(exc)
            report.error = exc
            log.warning("Zoho sync run stopped: %s", exc)
        except ScopeRefused as exc:
            # The scope cannot be applied as set (a match key unmapped, a Zoho scope COQL
            # cannot read): nothing is synced rather than something outside it.
            self.ledger.rollback()
            report.status = "failed"
            report.message = f"Nothing was synced: {exc}"
            report.error = exc
            log.warning("Zoho sync refused: %s", exc)
        except Exception as exc:
            # A bug or a host-side failure (database gone, adapter error) must still end the
            # run as failed with its reason, never leave it "running" forever.
            self.ledger.rollback()
            # Rows deleted under the run (a module switch without the run lock) surface as
            # ORM errors: the settings change is the reason to report, not the symptom.
            if not self._stopped(report, exc):
                report.status = "failed"
                report.message = (
                    f"The sync stopped on an unexpected error: {type(exc).__name__}: {exc}"
                )
                report.error = exc
                log.exception("Zoho sync run stopped on an unexpected error")
        if self.options.dry_run:
            # Reading the outbox may have tidied it (captured batches expanded into rows);
            # a plan leaves the database exactly as it found it.
            self.ledger.rollback()
        _sum_up(report, problems, dry_run=self.options.dry_run)
        self._finish(report, meter_before)
        if self.options.dry_run:
            report.estimate = self._plan_estimate(report)
        return report

    def _outbox_slice(
        self, report: RunReport, mode: str, outbox: dict[str, list[Any]]
    ) -> dict[str, list[Any]]:
        """The oldest ``outbox_slice`` contacts of an outbox run; the rest stay pending.

        A worker busy with one tenant's export of 100,000 edits for half an hour would
        keep every other tenant's ten-minute push waiting; in slices, the job that sends
        the next slice is queued behind whatever fell due meanwhile. Other modes read the
        whole outbox: an admin's "all" run is asked to send everything."""
        limit = self.options.outbox_slice
        if mode != "outbox" or not limit or len(outbox) <= limit:
            return outbox
        report.count("outbox.left", len(outbox) - limit)
        return dict(itertools.islice(outbox.items(), limit))

    def _run_passes(self, report: RunReport, mode: str, direction: str) -> None:
        """The run's work, in order: the host's deletions, the pull, the push."""
        # Refresh the Zoho token, if due, before this run writes anything: the refresh
        # is saved on a connection of its own, which SQLite would make wait for this
        # session's write lock.
        tokens = getattr(self.client, "tokens", None)
        if tokens is not None:
            tokens.current()
        outbox = self.ledger.pending_outbox(expand=not self.options.dry_run)
        if not self.options.dry_run:
            self.ledger.commit()
        outbox = self._outbox_slice(report, mode, outbox)
        if not self.options.rules.writes_zoho:
            # Import only: the host's captured changes are never sent. They are let go (a
            # full sync in another mode compares every contact with its link anyway), so
            # the outbox does not age into a health failure.
            self._let_go_outbox(report, outbox)
            outbox = {}
            direction = "pull" if direction == "both" else direction
            if direction == "push":
                return
        if direction in ("both", "push"):
            PushPass(self, report).run_deletions(outbox)
        # A large first sync goes through the bulk APIs (sync.bulk); decided before the
        # pull, because the pull creates the links that make a sync no longer "first".
        scope = self.options.scope
        # Bulk exports read no scope criteria and match on email only: a scoped or
        # otherwise-matched first sync goes by REST and COQL.
        bulk = first_sync(self, mode) and not (
            scope.limits_host or scope.limits_zoho or scope.match_key != "email"
        )
        self._bulk_plan = bulk and self.options.dry_run
        if direction in ("both", "pull") and report.status != "needs_confirmation":
            pull_pass = BulkPullPass if bulk else PullPass
            pull_pass(self, report).run(full=mode == "all")
            self.pulled = True
            self._phase_base = self._progress
        if direction in ("both", "push") and report.status != "needs_confirmation":
            outbox = {cid: entries for cid, entries in outbox.items() if entries}
            push_pass = BulkPushPass if bulk else PushPass
            push_pass(self, report).run(self._push_candidates(mode, outbox), outbox)

    def _let_go_outbox(self, report: RunReport, outbox: dict[str, list[Any]]) -> None:
        """Count the contacts import-only mode does not send, and (in a run) mark their
        outbox rows done."""
        waiting = [entries for entries in outbox.values() if entries]
        if not waiting:
            return
        report.count("to_zoho.skipped_mode", len(waiting))
        if self.options.dry_run:
            return
        for entries in waiting:
            self.ledger.finish_outbox(entries)
        self.ledger.commit()

    def _plan_estimate(self, report: RunReport) -> tuple[int, int]:
        """A plan's price of the real run (``estimate_cost``)."""
        # Contacts the run creates from Zoho records get their Contact Id / URL written
        # back to Zoho by the same run: one update each, which the plan does not list.
        writes_back = any(
            binding.kind == "system" and binding.direction.writes_zoho
            for binding in self.mapping.active_bindings()
        )
        writes_back = writes_back and self.options.rules.writes_zoho
        followups = report.counts.get("to_host.create", 0) if writes_back else 0
        return estimate_cost(
            report,
            extra_updates=followups,
            bulk_threshold=self.options.bulk_threshold if self._bulk_plan else 0,
            reread=self.plan_reread,
        )

    def sync_records(
        self,
        zoho_ids: list[str],
        *,
        trigger: str | None = None,
        notified: Sequence[NotifiedWrite] = (),
    ) -> RunReport:
        """Pull just these Zoho records (a notification named them), then push what the
        merge left for Zoho. Records Zoho no longer has are looked up in its recycle bin.

        ``notified`` is what the notifications said each update wrote: an edit our own
        write overwrote is found from it and settled as a conflict
        (``PullPass.recover_overwritten``), at no extra call."""
        report = self._new_report()
        if self._refuse_blank_mapping(report):
            return report
        meter_before = self._meter_totals()
        self._start_run(kind="pull", mode="ids", trigger=trigger)
        try:
            PullPass(self, report).run_ids(zoho_ids, notified)
            if (
                self.push_queue
                and report.status != "needs_confirmation"
                and self.options.rules.writes_zoho
            ):
                PushPass(self, report).run(list(self.push_queue), {})
        except SettingsChanged as exc:
            self.ledger.rollback()
            self._stopped(report, exc)
        except ZohoBudgetExhausted as exc:
            self.ledger.rollback()
            report.status = "paused"
            report.message = _paused_message(exc)
            report.error = exc
        except ZohoError as exc:
            self.ledger.rollback()
            report.status = "failed"
            report.message = str(exc)
            report.error = exc
        except ScopeRefused as exc:
            self.ledger.rollback()
            report.status = "failed"
            report.message = f"Nothing was synced: {exc}"
            report.error = exc
        self._finish(report, meter_before)
        return report

    def _start_run(self, *, kind: str, mode: str, trigger: str | None) -> None:
        """The run's row in the history, committed before any work, so the run shows as
        running; from here on each commit first checks the settings are still the run's."""
        self.run = self.ledger.start_run(kind=kind, mode=mode, dry_run=False, trigger=trigger)
        self.ledger.commit()
        self._guard_commits(True)

    def _refuse_blank_mapping(self, report: RunReport) -> bool:
        """End ``report`` before anything is read or written when the mapping carries no
        data beyond identity (``Mapping.data_bindings``): every contact the run created on
        either side would be blank, and a plan would call blank contacts "in agreement"."""
        if self.mapping.data_bindings():
            return False
        problems = self.mapping.problems()
        reason = (
            "none of the mapped fields can be synced (" + "; ".join(problems) + ")"
            if problems
            else "no field beyond email is mapped"
        )
        report.status = "failed"
        report.message = (
            f"Nothing was synced: {reason}, so every contact would arrive blank; map the "
            "fields (Field mapping, or flask zoho-sync settings --defaults), then sync again."
        )
        report.error = MappingCarriesNoData(report.message)
        log.warning("Zoho sync refused: %s", report.message)
        return True

    def _new_report(self) -> RunReport:
        """A run lists its first changes, so its memory does not grow with the data: the
        history table has them all. A plan lists what it was asked to (by default all of
        them: that is what it is for)."""
        options = self.options
        keep = options.plan_changes if options.dry_run else options.report_changes
        return RunReport(keep_changes=keep)

    def _push_candidates(self, mode: str, outbox: dict[str, list[Any]]) -> Iterator[str]:
        """Contacts to look at, each once: the outbox, what the pull left, then by mode."""
        seen: set[str] = set()
        for contact_id in [*outbox, *self.push_queue]:
            if contact_id not in seen:
                seen.add(contact_id)
                yield contact_id
        if mode == "outbox":
            return
        if mode == "all":
            # Linked contacts that no longer exist were deleted where capture could not see
            # it (raw SQL, before the extension was installed): their Zoho records go too.
            for contact_id in self.ledger.linked_contact_ids():
                if contact_id not in seen:
                    seen.add(contact_id)
                    yield contact_id
        # Never pushed before: everything counts as "modified since the last sync".
        since = None if mode == "all" else self.ledger.settings.last_push_at
        for batch in self._contact_id_batches(since):
            for contact_id in batch:
                if contact_id not in seen:
                    seen.add(contact_id)
                    yield contact_id

    def _contact_id_batches(self, since: datetime | None) -> Iterator[list[str]]:
        """The host's contacts as ids: the push reads each batch of contacts itself, so
        loading them here as well read every contact twice. Adapters written to the
        ``ContactSource`` protocol alone (no ``iter_contact_ids``) are read as before."""
        size = self.options.batch_size
        iter_ids = getattr(self.adapter, "iter_contact_ids", None)
        if iter_ids is not None:
            yield from iter_ids(modified_since=since, batch_size=size)
            return
        for batch in self.adapter.iter_batches(modified_since=since, batch_size=size):
            yield [self.adapter.contact_id(contact) for contact in batch]

    def _meter_totals(self) -> tuple[int, int]:
        meter = getattr(self.client, "meter", None)
        if meter is None:
            return (0, 0)
        snapshot = meter.snapshot()
        return int(snapshot["total_calls"]), int(snapshot["total_credits"])

    def _finish(self, report: RunReport, meter_before: tuple[int, int]) -> None:
        calls, credits = self._meter_totals()
        report.counts["calls"] = calls - meter_before[0]
        report.counts["credits"] = credits - meter_before[1]
        self._guard_commits(False)
        if self.run is not None:
            self.run.status = report.status
            self.run.counts = dict(report.counts)
            self.run.calls = report.counts["calls"]
            self.run.credits = report.counts["credits"]
            self.run.error = report.message
            self.run.finished_at = self.clock()
            self.ledger.commit()
        # A token refreshed while this run held SQLite's write lock could not be saved then.
        tokens = getattr(self.client, "tokens", None)
        if tokens is not None:
            try:
                tokens.save_unsaved()
            except Exception:  # the run is over and recorded; the next one refreshes anew
                log.warning("Could not save Zoho's refreshed access token", exc_info=True)
