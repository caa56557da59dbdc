"""A pull writes its new contacts as a set (INSERT statements, a page at a time) and ends
exactly where creating an ORM object per contact ends: same contacts, groups, links,
snapshots, history and report, nothing echoed into the outbox. Adapters that cannot or
do not write sets still import."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from flask_zoho_sync.adapter import SQLAlchemyContactAdapter
from flask_zoho_sync.models import Link, OutboxBatch, OutboxEntry, RecordHistory, Run, Tombstone
from flask_zoho_sync.preferences import get_settings
from tests.engine.conftest import Synced
from tests.hostapp import make_host_app

#: Zoho records of every shape a page can bring: all mapped fields and a group, fewer
#: fields (another set of columns), an opt-out, an email twice in one page (the second
#: is refused as a duplicate), no email, a company longer than the host column (cut, with
#: a warning in the history), and a record with nothing but an email (left out, blank).
RECORDS: list[dict[str, Any]] = [
    {
        "First_Name": "Ann",
        "Last_Name": "Lee",
        "Email": "ann@example.org",
        "Phone": "555 0100",
        "Company": "Acme",
        "VIP": True,
    },
    {"Last_Name": "Kim", "Email": "kim@example.org", "Email_Opt_Out": True},
    {"Last_Name": "Kim Again", "Email": "KIM@example.org"},
    {"Last_Name": "Nomail", "First_Name": "Ned"},
    {"Last_Name": "Ray", "Email": "ray@example.org", "Company": "C" * 150},
    {"Last_Name": "Vip", "Email": "vip@example.org", "VIP": True, "Email_Opt_Out": False},
]


def _seed_zoho(synced: Synced) -> list[str]:
    return [synced.zoho.create_record("Leads", record)["id"] for record in RECORDS]


def _end_state(synced: Synced) -> dict[str, Any]:
    """What a pull left, keyed by Zoho id so that runs giving contacts other ids compare."""
    with synced.host.app.app_context():
        session = synced.host.db.session
        adapter = synced.state.adapter
        links = session.scalars(sa.select(Link)).all()
        zoho_of = {link.contact_id: link.zoho_id for link in links}
        contacts = adapter.get_many(list(zoho_of))
        linked = {
            link.zoho_id: {
                "values": adapter.get_values(contacts[link.contact_id]),
                "groups": adapter.get_groups(contacts[link.contact_id]),
                "subscribed": adapter.is_subscribed(contacts[link.contact_id]),
                "snapshot": link.snapshot,
                "zoho_modified_at": link.zoho_modified_at,
                "last_error": link.last_error,
            }
            for link in links
        }
        history = sorted(
            (
                row.zoho_id or "",
                zoho_of.get(row.contact_id or "", "no contact"),
                row.direction,
                row.action,
                row.error_code or "",
                row.reason or "",
                json.dumps(row.changes, sort_keys=True),
            )
            for row in session.scalars(sa.select(RecordHistory))
        )
        return {
            "contacts": session.scalar(sa.select(sa.func.count()).select_from(synced.host.Contact)),
            "linked": linked,
            "history": history,
            "outbox": session.scalar(sa.select(sa.func.count()).select_from(OutboxEntry))
            + session.scalar(sa.select(sa.func.count()).select_from(OutboxBatch)),
        }


def _forget_the_import(synced: Synced) -> None:
    """Back to before the first pull, Zoho untouched: no contacts, links, runs, history."""
    with synced.host.app.app_context():
        session = synced.host.db.session
        session.execute(sa.text("DELETE FROM contact_groups"))
        wiped = (synced.host.Contact, Link, RecordHistory, Run, Tombstone, OutboxEntry, OutboxBatch)
        for model in wiped:  # contacts first: capture records their deletion in a batch
            session.execute(sa.delete(model))
        settings = get_settings(session)
        settings.pull_watermark = None
        settings.deleted_watermark = None
        settings.last_pull_at = None
        session.commit()


def _import(synced: Synced, *, set_based: bool) -> tuple[dict[str, int], dict[str, Any]]:
    adapter = synced.state.adapter
    assert isinstance(adapter, SQLAlchemyContactAdapter)
    adapter.set_based_creates = set_based
    with synced.host.app.app_context():
        assert (adapter._set_based_creates_refused() is None) is set_based
    report = synced.sync(mode="all", direction="pull")
    assert report.status == "partial", report.message  # the duplicate email fails alone
    return dict(report.counts), _end_state(synced)


def test_set_based_creates_end_where_an_object_per_contact_ends(synced: Synced) -> None:
    zoho_ids = _seed_zoho(synced)
    counts, as_sets = _import(synced, set_based=True)
    _forget_the_import(synced)
    counts_by_objects, as_objects = _import(synced, set_based=False)

    assert counts == counts_by_objects
    assert as_sets == as_objects
    # And that end is the right one, as a user reads it.
    assert as_sets["outbox"] == 0  # the pull's own writes are not sent back to Zoho
    assert as_sets["contacts"] == 5  # all but the second Kim (duplicate) and the blank one
    ann, kim, _, nomail, ray, vip = zoho_ids
    assert as_sets["linked"][ann]["values"]["company"] == "Acme"
    assert as_sets["linked"][ann]["groups"] == {"VIP"}
    assert as_sets["linked"][vip]["groups"] == {"VIP"}
    assert as_sets["linked"][kim]["subscribed"] is False
    assert as_sets["linked"][ann]["subscribed"] is True
    assert as_sets["linked"][nomail]["values"]["first_name"] == "Ned"
    assert as_sets["linked"][ray]["values"]["company"] == "C" * 120
    assert any("cut" in row[5] for row in as_sets["history"] if row[0] == ray)
    assert [row[4] for row in as_sets["history"] if row[3] == "error"] == ["DUPLICATE_IN_ZOHO"]


def test_a_contact_with_no_value_for_a_defaulted_column_gets_the_default(
    synced: Synced,
) -> None:
    """``subscribed`` defaults to True in the host model: a record that says nothing of
    its subscription gets the default, as an object never given the attribute does."""
    synced.zoho.create_record("Leads", {"Last_Name": "Plain", "Email": "plain@example.org"})
    report = synced.sync(mode="all", direction="pull")
    assert report.status == "succeeded", report.message
    contact = synced.contacts()["plain@example.org"]
    assert contact["subscribed"] is True
    assert contact["last_name"] == "Plain"


class _WithoutCreateContacts:
    """A host's own adapter written against the engine's ``ContactSource`` alone: it has
    ``create`` and the setters, and no ``create_contacts``."""

    def __init__(self, inner: SQLAlchemyContactAdapter) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        if name == "create_contacts":
            raise AttributeError(name)
        return getattr(self._inner, name)


def test_an_adapter_without_create_contacts_still_imports(synced: Synced) -> None:
    inner = synced.state.adapter
    synced.state.adapter = _WithoutCreateContacts(inner)  # type: ignore[assignment]
    created: list[Any] = []
    original_create = inner.create

    def counting_create() -> Any:
        contact = original_create()
        created.append(contact)
        return contact

    inner.create = counting_create  # type: ignore[method-assign]
    try:
        zoho_ids = _seed_zoho(synced)
        report = synced.sync(mode="all")
    finally:
        synced.state.adapter = inner
        del inner.create
    assert report.status == "partial", report.message
    assert len(created) == 5  # one object per new contact, through the adapter's create
    state = _end_state(synced)
    assert state["contacts"] == 5
    assert state["linked"][zoho_ids[0]]["groups"] == {"VIP"}
    assert state["linked"][zoho_ids[1]]["subscribed"] is False
    # The two-way run's push then wrote each new contact's id to its Zoho record.
    leads = synced.leads()
    assert leads["ann@example.org"]["Contact_Id"] == str(synced.contacts()["ann@example.org"]["id"])
    assert state["outbox"] == 0


@pytest.fixture
def stamped_model(synced: Synced) -> Any:
    """The host model with a ``before_insert`` hook of the host's, for one test."""
    model = synced.host.Contact

    def stamp(mapper: Any, connection: Any, target: Any) -> None:
        target.company = target.company or "stamped by the host"

    event.listen(model, "before_insert", stamp)
    adapter = synced.state.adapter
    adapter.__dict__.pop("_set_based_refusal", None)
    yield model
    event.remove(model, "before_insert", stamp)
    adapter.__dict__.pop("_set_based_refusal", None)


def test_a_model_with_an_insert_hook_gets_objects_so_the_hook_runs(
    synced: Synced, stamped_model: Any
) -> None:
    synced.zoho.create_record("Leads", {"Last_Name": "Hooked", "Email": "hook@example.org"})
    synced.zoho.create_record(
        "Leads", {"Last_Name": "Owned", "Email": "own@example.org", "Company": "Own Co"}
    )
    with synced.host.app.app_context():
        assert "insert events" in (synced.state.adapter._set_based_creates_refused() or "")
    report = synced.sync(mode="all", direction="pull")
    assert report.status == "succeeded", report.message
    contacts = synced.contacts()
    assert contacts["hook@example.org"]["company"] == "stamped by the host"
    assert contacts["own@example.org"]["company"] == "Own Co"


def test_a_subclass_with_its_own_setters_gets_objects() -> None:
    class Custom(SQLAlchemyContactAdapter):
        def set_values(self, contact: Any, values: dict[str, Any]) -> None:
            super().set_values(contact, values)

    host = make_host_app("sqlite://")
    assert "own set_values" in (Custom(host.Contact)._set_based_creates_refused() or "")
    assert SQLAlchemyContactAdapter(host.Contact)._set_based_creates_refused() is None
    assert (
        SQLAlchemyContactAdapter(host.Contact, set_based_creates=False)._set_based_creates_refused()
        == "set_based_creates=False"
    )


def test_deletions_both_ways_are_settled_together_and_stay_deleted(synced: Synced) -> None:
    """A run that deletes several records each way: the contacts and records go, their
    links go, each gets its tombstone and history row, and none comes back."""
    ids = {
        name: synced.add_contact(last_name=name.title(), email=f"{name}@example.org")
        for name in ("ann", "bob", "cat", "dan", "eve", "fay", "gus", "hal", "ivy", "jay")
    }
    synced.first_manual_sync()
    leads = synced.leads()
    for name in ("ann", "bob", "cat"):
        synced.delete_contact(ids[name])
    for name in ("dan", "eve"):
        synced.zoho.delete_record("Leads", leads[f"{name}@example.org"]["id"])

    report = synced.sync()

    assert report.status == "succeeded", report.message
    assert report.counts["to_zoho.delete"] == 3 and report.counts["to_host.delete"] == 2
    assert set(synced.contacts()) == {
        f"{n}@example.org" for n in ("fay", "gus", "hal", "ivy", "jay")
    }
    assert set(synced.leads()) == set(synced.contacts())
    gone = {
        name: leads[f"{name}@example.org"]["id"] for name in ("ann", "bob", "cat", "dan", "eve")
    }
    with synced.host.app.app_context():
        session = synced.host.db.session
        assert not session.scalars(sa.select(Link).where(Link.zoho_id.in_(gone.values()))).all()
        buried = dict(
            session.execute(
                sa.select(Tombstone.zoho_id, Tombstone.deleted_on).where(
                    Tombstone.zoho_id.in_(gone.values())
                )
            ).all()
        )
        assert buried == {
            zoho_id: "host" if name in ("ann", "bob", "cat") else "zoho"
            for name, zoho_id in gone.items()
        }
        deletes = session.scalars(
            sa.select(RecordHistory.zoho_id).where(RecordHistory.action == "delete")
        ).all()
        assert sorted(deletes) == sorted(gone.values())
        pending = session.scalar(
            sa.select(sa.func.count())
            .select_from(OutboxEntry)
            .where(OutboxEntry.processed_at.is_(None))
        )
        assert pending == 0
    # Nothing comes back, whichever way the next runs go.
    synced.sync(mode="all")
    again = synced.sync(mode="all")
    assert again.counts.get("to_host.create", 0) == 0 and again.counts.get("to_zoho.create", 0) == 0
    assert len(synced.contacts()) == 5


def _contact_inserts(synced: Synced) -> tuple[list[int], Any]:
    """Rows of each INSERT into the host's contact table, as sent, and the listener."""
    sent: list[int] = []

    def count(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: Any):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("INSERT INTO CONTACT "):
            sent.append(statement.count("(?") + statement.count("(%(") or 1)

    with synced.host.app.app_context():
        engine = synced.host.db.engine
    event.listen(engine, "before_cursor_execute", count)
    return sent, lambda: event.remove(engine, "before_cursor_execute", count)


def test_a_page_of_new_contacts_is_a_few_statements_on_either_database(synced: Synced) -> None:
    """300 new records (two REST pages): each page's contacts go in as multi-row INSERTs,
    on SQLite too, where SQLAlchemy alone would send one INSERT per contact."""
    synced.zoho.generate_records("Leads", 300)
    sent, stop = _contact_inserts(synced)
    try:
        report = synced.sync(mode="all", direction="pull")
    finally:
        stop()
    assert report.status == "succeeded", report.message
    assert len(synced.contacts()) == 300
    assert 1 <= len(sent) <= 6, sent  # a statement per page (and per set of columns)
    assert sum(sent) == 300
    # Each contact holds its own record's values: keys went back to the right rows.
    for email, lead in synced.leads().items():
        assert synced.contacts()[email]["last_name"] == lead["Last_Name"]
        assert lead["Contact_Id"] in (None, "") or lead["Contact_Id"] == str(
            synced.contacts()[email]["id"]
        )


# SQLite's rowids alone: PostgreSQL returns keys in order (a sentinel column).
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_on_sqlite_rowids_picked_at_random_fall_back_to_a_row_at_a_time(synced: Synced) -> None:
    """Once a table holds SQLite's largest rowid, new rows get random ones, and keys sorted
    no longer follow the rows: those INSERTs are undone and the rows sent one at a time."""
    with synced.host.app.app_context():
        session = synced.host.db.session
        session.execute(
            sa.insert(synced.host.Contact).values(
                id=2**63 - 1, last_name="Last", email="last@example.org"
            )
        )
        session.commit()
    synced.zoho.generate_records("Leads", 20)  # one set of columns: one INSERT
    report = synced.sync(mode="all", direction="pull")
    assert report.status == "succeeded", report.message
    assert len(synced.contacts()) == 21  # twenty new and the one at the top
    linked = _end_state(synced)["linked"]
    leads = synced.leads()
    assert len(linked) == len(leads) == 20
    for lead in leads.values():  # each record linked to the contact made of it
        assert linked[lead["id"]]["values"]["email"] == lead["Email"]
        assert linked[lead["id"]]["values"]["last_name"] == lead["Last_Name"]
