"""The preview tells the truth: for random data on both sides, the dry-run plan lists exactly
what the run then does (records, fields, directions, creates, deletes, conflict winners)."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flask_zoho_sync.sync.context import RunReport
from tests.engine.conftest import Synced
from tests.engine.test_convergence import Person, apply_step, step, wipe

#: Edits made after the history's last sync, which the plan and the run both see.
unsynced_step = step.filter(lambda s: s[0] != "sync")


def _frozen(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((str(k), _frozen(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


def _entries(report: RunReport) -> list[tuple[Any, ...]]:
    """The report's changes, comparable between a plan and a run.

    A record the run creates has no id on its new side yet in the plan; the run's Contact Id
    write-back to contacts it creates is priced in the plan's estimate, not listed.
    """
    created = {
        change.contact_id
        for change in report.changes
        if change.direction == "to_host" and change.action == "create"
    }
    entries = []
    for change in report.changes:
        contact_id, zoho_id = change.contact_id, change.zoho_id
        if change.action == "create":
            if change.direction == "to_host":
                contact_id = None
            else:
                zoho_id = None
        if (
            change.direction == "to_zoho"
            and change.action == "update"
            and change.contact_id in created
            and all(label.startswith("Contact Id") for label in change.changes)
        ):
            continue
        entries.append(
            (
                change.direction,
                change.action,
                contact_id,
                zoho_id,
                _frozen(change.changes),
                _frozen(change.conflicts),
                change.error_code,
            )
        )
    return sorted(entries, key=repr)


def assert_plan_is_run(plan: RunReport, run: RunReport) -> None:
    assert plan.status == run.status, (plan.status, plan.message, run.status, run.message)
    planned, done = _entries(plan), _entries(run)
    assert planned == done, {
        "planned, not done": [e for e in planned if e not in done],
        "done, not planned": [e for e in done if e not in planned],
    }


@settings(
    # About five seconds per database; ZOHO_SYNC_TEST_HISTORIES=300 for a deeper look.
    max_examples=int(os.environ.get("ZOHO_SYNC_TEST_HISTORIES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    history=st.lists(step, min_size=2, max_size=10),
    since=st.lists(unsynced_step, min_size=1, max_size=8),
    mode=st.sampled_from(["since_last", "all"]),
    direction=st.sampled_from(["both", "push", "pull"]),
)
def test_the_plan_lists_exactly_what_the_run_then_does(
    synced: Synced,
    history: list[tuple[Any, ...]],
    since: list[tuple[Any, ...]],
    mode: str,
    direction: str,
) -> None:
    wipe(synced)
    people: list[Person] = []
    serial = [0]
    for item in history:
        apply_step(synced, people, item, serial)
    # Zoho's times have whole seconds: edits made in the second of the last sync's writes
    # look to the run's re-read like the versions it wrote. A later second makes them edits.
    synced.zoho.advance_clock(2)
    for item in since:
        apply_step(synced, people, item, serial)
    plan = synced.sync(mode=mode, direction=direction, dry_run=True, confirm_deletes=True)
    run = synced.sync(mode=mode, direction=direction, confirm_deletes=True)
    assert_plan_is_run(plan, run)


def test_a_new_contact_reusing_a_deleted_ones_id_is_planned_as_a_create(synced: Synced) -> None:
    """SQLite gives a new contact the id of the highest deleted one. The run deletes the old
    Zoho record first and creates a new one; the plan said "update the deleted record"."""
    old_id = synced.add_contact(last_name="L", email="old@example.org", first_name="Ann")
    assert synced.sync(mode="since_last").status == "succeeded"
    old_zoho_id = synced.leads()["old@example.org"]["id"]
    synced.delete_contact(old_id)
    synced.add_contact(last_name="L", email="new@example.org", first_name="Bo")

    plan = synced.sync(mode="since_last", dry_run=True, confirm_deletes=True)
    run = synced.sync(mode="since_last", confirm_deletes=True)

    assert_plan_is_run(plan, run)
    actions = sorted((c.direction, c.action) for c in plan.changes)
    assert actions == [("to_zoho", "create"), ("to_zoho", "delete")]
    assert next(c for c in plan.changes if c.action == "delete").zoho_id == old_zoho_id
    assert set(synced.leads()) == {"new@example.org"}


def test_a_pull_only_run_creating_a_contact_in_a_deleted_ones_id_succeeds_as_planned(
    synced: Synced,
) -> None:
    """A pull-only run leaves the host's deletions for the push; the contact it creates may
    get a deleted contact's id (SQLite reuses it). The plan said "create"; the run failed on
    the deleted contact's link. Now it creates, and the next push still deletes the record."""
    old_id = synced.add_contact(last_name="L", email="old@example.org", first_name="Ann")
    assert synced.sync(mode="since_last").status == "succeeded"
    synced.delete_contact(old_id)
    synced.zoho.create_record("Leads", {"Last_Name": "L", "Email": "new@example.org"})

    plan = synced.sync(mode="since_last", direction="pull", dry_run=True)
    run = synced.sync(mode="since_last", direction="pull")

    assert_plan_is_run(plan, run)
    assert set(synced.contacts()) == {"new@example.org"}
    assert synced.sync(mode="since_last", confirm_deletes=True).status == "succeeded"
    assert set(synced.leads()) == {"new@example.org"}
    assert set(synced.contacts()) == {"new@example.org"}


def test_a_contact_whose_record_zoho_deleted_is_not_also_planned_as_a_zoho_update(
    synced: Synced,
) -> None:
    """The run's pull deletes the contact, so its push has nothing to send; the plan listed
    both the host delete and a Zoho update of the record Zoho no longer has."""
    contact_id = synced.add_contact(last_name="L", email="a@example.org", first_name="Ann")
    assert synced.sync(mode="since_last").status == "succeeded"
    synced.edit_contact(contact_id, first_name="Bo")
    synced.zoho.delete_record("Leads", synced.leads()["a@example.org"]["id"])

    plan = synced.sync(mode="since_last", dry_run=True, confirm_deletes=True)
    run = synced.sync(mode="since_last", confirm_deletes=True)

    assert_plan_is_run(plan, run)
    assert [(c.direction, c.action) for c in plan.changes] == [("to_host", "delete")]


def test_a_push_only_plan_foresees_an_update_of_a_record_zoho_deleted(synced: Synced) -> None:
    """A push-only plan reads nothing of Zoho before its push; the run's re-read before the
    write finds the record gone. The plan said "update"; the run failed the record. Now the
    plan makes the run's re-read (the same one call) and both say why, at the same cost."""
    synced.add_contact(last_name="L", email="a@example.org", first_name="Ann", phone="111")
    assert synced.sync(mode="since_last").status == "succeeded"
    synced.zoho.delete_record("Leads", synced.leads()["a@example.org"]["id"])

    before = synced.zoho.stats()["calls"].get("GET /Leads", 0)
    plan = synced.sync(mode="all", direction="push", dry_run=True)
    planned_reads = synced.zoho.stats()["calls"].get("GET /Leads", 0) - before
    run = synced.sync(mode="all", direction="push")

    assert_plan_is_run(plan, run)
    assert plan.status == "partial"
    assert [(c.action, c.error_code) for c in plan.changes] == [("error", "INVALID_DATA")]
    assert "no longer in Zoho" in (plan.changes[0].reason or "")
    assert planned_reads == 1
    assert plan.estimate == (run.counts["calls"], run.counts["credits"]) == (1, 1)
    assert "PUT /Leads" not in synced.zoho.stats()["calls"], "an update of a deleted record"


def test_a_push_only_plan_foresees_the_merge_of_a_record_a_zoho_user_changed(
    synced: Synced,
) -> None:
    """The run's re-read finds the record changed in Zoho and merges it before it sends
    (so the Zoho edit reaches the host); the plan listed the host's update alone."""
    contact_id = synced.add_contact(last_name="L", email="a@example.org", first_name="Ann")
    assert synced.sync(mode="since_last").status == "succeeded"
    synced.edit_contact(contact_id, first_name="Bo")
    synced.zoho.advance_clock(5)  # Zoho's times have whole seconds: a later one
    synced.zoho.update_record("Leads", synced.leads()["a@example.org"]["id"], {"Phone": "222"})

    plan = synced.sync(mode="since_last", direction="push", dry_run=True)
    run = synced.sync(mode="since_last", direction="push")

    assert_plan_is_run(plan, run)
    assert sorted((c.direction, c.action) for c in plan.changes) == [
        ("to_host", "update"),
        ("to_zoho", "update"),
    ]
    assert synced.contacts()["a@example.org"]["phone"] == "222"
    assert synced.leads()["a@example.org"]["First_Name"] == "Bo"
