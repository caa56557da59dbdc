"""Random histories of what Zoho users do to identity (issue 19), with edits on both sides,
syncs and faults in between: leads converted, leads merged, a mapped field deleted or
renamed. Whatever the order, once the faults clear and the syncs settle:

* no host contact is lost: every contact the host ever held is still there (nothing in
  these histories deletes one, and neither a conversion nor a merge is a deletion);
* no duplicate: no two links to one Zoho record, no contact with two links, no two host
  contacts with one email, no two leads the sync made with one email;
* no resurrection: a converted lead's person is never sent again as a new lead.

Merges here are what Zoho users merge: duplicates, a record a sales rep made again for a
person the sync already holds, merged either way round (the master carries the email, so
the link follows it). A merge whose master carries neither the email nor the Contact Id of
the record merged away cannot be told from a deletion, and is one (README).
* no host value blanked: each contact's company (mapped to a custom field that the history
  may delete or rename) is still the value the host gave it.

Counted in the fault report under "identity histories". ``ZOHO_SYNC_TEST_IDENTITY_HISTORIES``
(default 20 per database) sets how many.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from flask_zoho_sync.drift import remapped
from flask_zoho_sync.models import Link, RecordHistory
from flask_zoho_sync.preferences import set_field_map
from flask_zoho_sync.sandbox.state import SALES_REP_ID
from tests.engine.conftest import Synced
from tests.engine.test_convergence import wipe
from tests.faults.report import REPORT, ScenarioResult
from tests.faults.test_random_histories import FAULTS, _clear, _faulty_sync
from tests.faults.world import World, host_rows

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.xdist_group("fault-histories")]

HISTORIES = int(os.environ.get("ZOHO_SYNC_TEST_IDENTITY_HISTORIES", "20"))
#: Histories run so far in this process: each maps a custom field of its own.
_RUN = [0]
NAMES = ["Ann", "Bo", "Cy", "Di"]
#: How a sync may end here: "partial" when a sales rep's unmerged duplicate of a linked
#: person is in Zoho (DUPLICATE_IN_ZOHO: the sync will not guess which record is theirs).
SETTLED = ("succeeded", "partial")

person = st.integers(0, 7)  # an index into the people made so far (modulo their number)
identity_step = st.one_of(
    st.tuples(st.just("host_create"), st.sampled_from(NAMES)),
    st.tuples(st.just("zoho_create"), st.sampled_from(NAMES)),
    st.tuples(st.just("host_edit"), person, st.sampled_from(NAMES)),
    st.tuples(st.just("zoho_edit"), person, st.sampled_from(NAMES)),
    st.tuples(st.just("convert"), person),
    st.tuples(st.just("zoho_duplicate"), person),
    st.tuples(st.just("merge"), person, st.booleans()),
    st.tuples(st.just("duplicate_merged"), person, st.booleans()),
    st.tuples(st.just("field"), st.sampled_from(["delete", "rename"])),
    st.tuples(st.just("sync"), st.sampled_from(["since_last", "all"])),
    st.tuples(st.just("faulty_sync"), st.sampled_from(FAULTS), st.integers(0, 3)),
)
identity_history = st.lists(identity_step, min_size=5, max_size=16)


class Story:
    """What one history made, so that the end state can be judged."""

    def __init__(self, synced: Synced, field: str) -> None:
        self.synced = synced
        self.emails: list[str] = []
        #: The company each host-made contact was given (a Zoho-made one has none).
        self.company: dict[str, str | None] = {}
        #: Host contact ids seen after any sync (none may vanish).
        self.host_ids: set[int] = set()
        #: Emails whose leads were merged: the master's values may differ from the host's.
        self.merged: set[str] = set()
        self.field = field
        self.field_gone = False

    def live_leads(self) -> dict[str, list[dict[str, Any]]]:
        """Leads not converted, by email, oldest first."""
        found: dict[str, list[dict[str, Any]]] = {}
        for lead in sorted(self.synced.zoho.records("Leads"), key=lambda r: int(r["id"])):
            if not lead.get("Converted__s"):
                found.setdefault((lead.get("Email") or "").lower(), []).append(lead)
        return found

    def pick(self, index: int) -> str | None:
        return self.emails[index % len(self.emails)] if self.emails else None

    def apply(self, step: tuple[Any, ...]) -> None:
        kind, synced = step[0], self.synced
        if kind == "host_create":
            email = f"h{len(self.emails)}@example.org"
            self.company[email] = f"Co {len(self.emails)}"
            synced.add_contact(
                first_name=step[1], last_name="Lee", email=email, company=self.company[email]
            )
            self.emails.append(email)
        elif kind == "zoho_create":
            email = f"z{len(self.emails)}@example.org"
            synced.zoho.create_record(
                "Leads",
                {"First_Name": step[1], "Last_Name": "Lee", "Email": email},
                user=SALES_REP_ID,
            )
            self.company[email] = None
            self.emails.append(email)
        elif kind == "host_edit":
            self._host_edit(self.pick(step[1]), step[2])
        elif kind == "zoho_edit":
            for lead in self.live_leads().get(self.pick(step[1]) or "", [])[:1]:
                synced.zoho.update_record(
                    "Leads", lead["id"], {"First_Name": step[2]}, user=SALES_REP_ID
                )
        elif kind in ("zoho_duplicate", "duplicate_merged"):
            email = self.pick(step[1])
            if email in self.live_leads():
                synced.zoho.create_record(
                    "Leads", {"Last_Name": "Lee", "Email": email}, user=SALES_REP_ID
                )
                if kind == "duplicate_merged":  # found and merged before any sync saw it
                    self._merge(email, step[2])
        elif kind == "convert":
            self._convert(self.pick(step[1]))
        elif kind == "merge":
            self._merge(self.pick(step[1]), step[2])
        elif kind == "field":
            self._change_field(step[1])
        elif kind == "sync":
            report = synced.sync(mode=step[1])
            assert report.status in SETTLED, (report.status, report.message)
            self.remember_host()
        else:
            _faulty_sync(synced, step[1], step[2])
            self.remember_host()

    def _host_edit(self, email: str | None, name: str) -> None:
        row = next((r for r in host_rows(self.synced) if r["email"] == email), None)
        if row is not None:
            self.synced.edit_contact(row["id"], first_name=name)

    def _convert(self, email: str | None) -> None:
        for lead in self.live_leads().get(email or "", [])[:1]:
            self.synced.zoho.convert_lead(lead["id"], user=SALES_REP_ID)

    def _merge(self, email: str | None, newer_is_master: bool) -> None:
        """Merge two leads of one person, as a Zoho user merges duplicates."""
        same = self.live_leads().get(email or "", [])
        if len(same) < 2:
            return
        master, child = (same[1], same[0]) if newer_is_master else (same[0], same[1])
        self.synced.zoho.merge_records("Leads", master["id"], [child["id"]], user=SALES_REP_ID)
        self.merged.add(email or "")

    def _change_field(self, change: str) -> None:
        if self.field_gone:
            return
        if change == "delete":
            self.synced.zoho.delete_field("Leads", self.field)
            self.field_gone = True
        else:
            renamed = f"{self.field}_renamed"
            self.synced.zoho.change_field("Leads", self.field, api_name=renamed)
            self.field = renamed

    def remember_host(self) -> None:
        self.host_ids |= {row["id"] for row in host_rows(self.synced)}


def _fresh_start(synced: Synced, field: str) -> None:
    """An empty world with a new custom field mapped to the host's company (each history
    may delete or rename its own)."""
    wipe(synced)
    zoho = synced.zoho
    zoho.add_custom_field("Leads", api_name=field, field_label=field, data_type="text")
    with synced.host.app.app_context():
        session = synced.host.db.session
        row = set_field_map(session, kind="field", host_key="company", zoho_field=field)
        remapped(row)  # the field is new: no id learnt yet, no value held from before
        session.commit()
        grant = zoho.mint_refresh_token()
        synced.state.connect_with_refresh_token(grant["refresh_token"], zoho.accounts_server)


def _settle(synced: Synced) -> None:
    _clear(synced.zoho)
    for _ in range(3):
        report = synced.sync()
        assert report.status in SETTLED, (report.status, report.message)


def _judge(story: Story, result: ScenarioResult) -> list[str]:
    synced = story.synced
    rows = host_rows(synced)
    ids = {row["id"] for row in rows}
    # Nothing here deletes a host contact, so any the sync deleted is lost, even where a
    # new one took its place (SQLite hands a deleted row's id to the next insert).
    with synced.host.app.app_context():
        deleted = synced.host.db.session.scalars(
            sa.select(RecordHistory.contact_id).where(
                RecordHistory.direction == "to_host", RecordHistory.action == "delete"
            )
        )
        deleted_ids = {int(contact_id) for contact_id in deleted if contact_id is not None}
    result.lost += len((story.host_ids - ids) | deleted_ids)
    by_email = Counter((row["email"] or "").lower() for row in rows)
    result.duplicated += sum(n - 1 for n in by_email.values() if n > 1)
    # The leads the sync made (converted ones included): one per person at most. A second
    # one beside a converted lead is that person sent again as a new lead.
    made_by_sync: dict[str, list[bool]] = {}
    for lead in synced.zoho.records("Leads"):
        if lead["Created_By"]["id"] != SALES_REP_ID:
            email = (lead.get("Email") or "").lower()
            made_by_sync.setdefault(email, []).append(bool(lead.get("Converted__s")))
    for converted in made_by_sync.values():
        if len(converted) > 1:
            if any(converted):
                result.resurrected += len(converted) - 1
            else:
                result.duplicated += len(converted) - 1
    with synced.host.app.app_context():
        links = list(synced.host.db.session.scalars(sa.select(Link)))
    for key in ("zoho_id", "contact_id"):
        per_key = Counter(getattr(link, key) for link in links)
        result.duplicated += sum(n - 1 for n in per_key.values() if n > 1)
    problems = []
    for row in rows:
        result.records_checked += 1
        email = (row["email"] or "").lower()
        wanted = story.company.get(email)
        if wanted is not None and email not in story.merged and row.get("company") != wanted:
            problems.append(f"{email}: company {row.get('company')!r}, the host gave {wanted!r}")
    return problems


@settings(
    max_examples=HISTORIES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=identity_history)
# Each kind of identity change at least once, whatever the draw: a duplicate merged into the
# linked lead's place, a conversion then a host edit, a duplicate synced then merged, and the
# mapped field deleted or renamed between edits.
@example(history=[("host_create", "Ann"), ("sync", "since_last"), ("duplicate_merged", 0, True)])
@example(history=[("host_create", "Ann"), ("sync", "all"), ("convert", 0), ("host_edit", 0, "Bo")])
@example(
    history=[
        ("zoho_create", "Ann"),
        ("sync", "since_last"),
        ("zoho_duplicate", 0),
        ("sync", "since_last"),
        ("merge", 0, True),
        ("host_edit", 0, "Cy"),
    ]
)
@example(
    history=[("host_create", "Ann"), ("sync", "all"), ("field", "delete"), ("host_edit", 0, "Di")]
)
@example(
    history=[("host_create", "Ann"), ("sync", "all"), ("field", "rename"), ("zoho_edit", 0, "Bo")]
)
# A lead merged into its duplicate, and the master converted before the next sync: the
# merge follower must find the master among converted leads (CI's draw on PostgreSQL lost the
# contact, the master being left out of the search as converted leads are by default).
@example(
    history=[
        ("host_create", "Ann"),
        ("sync", "all"),
        ("duplicate_merged", 0, True),
        ("convert", 0),
        ("host_edit", 0, "Bo"),
    ]
)
def test_identity_histories_lose_duplicate_and_revive_nothing(
    world: World, history: list[tuple[Any, ...]]
) -> None:
    synced = world.synced
    _RUN[0] += 1
    field = f"Org_{_RUN[0]}"
    _fresh_start(synced, field)
    story = Story(synced, field)
    result = ScenarioResult(
        category="identity histories",
        name=f"identity history {_RUN[0]}",
        inputs=len(history),
    )
    try:
        report = synced.sync(mode="all", trigger="cli")  # the first manual sync
        assert report.status == "succeeded", report.message
        for step in history:
            story.apply(step)
        _settle(synced)
        story.remember_host()
        problems = _judge(story, result)
        kinds = Counter(step[0] for step in history)
        result.note = ", ".join(f"{kind} x{n}" for kind, n in sorted(kinds.items()))
        assert not problems, problems
        assert not (result.lost or result.duplicated or result.resurrected), result
        result.survived = True
    finally:
        REPORT.results.append(result)
