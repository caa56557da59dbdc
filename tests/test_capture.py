"""Change capture writes outbox rows in the host's own transaction, and only for real changes."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.orm import Session, relationship

from flask_zoho_sync.capture import (
    CAPTURE_SUPPRESSED,
    CaptureHandle,
    install_capture,
    mark_dirty,
    suppress_capture,
)
from flask_zoho_sync.extension import _CAPTURES, get_state
from flask_zoho_sync.models import Link, OutboxBatch, OutboxEntry


@dataclass
class Capture:
    """The installed capture, what ``on_commit`` received, and the watched names."""

    handle: CaptureHandle
    watched: set[str]
    commits: list[list[str]] = field(default_factory=list)
    fail_with: Exception | None = None

    def on_commit(self, contact_ids: list[str]) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.commits.append(sorted(contact_ids))


@pytest.fixture
def capture(host) -> Iterator[Capture]:
    """Capture installed on the host's session, watching what the adapter maps, as
    ``init_app`` will."""
    installed_by_init_app = _CAPTURES.pop(host.db, None)
    if installed_by_init_app is not None:
        installed_by_init_app.remove()
    with host.app.app_context():
        adapter = get_state().adapter
        watched = {f.name for f in adapter.fields()}
        watched |= {adapter.groups_attribute, adapter.subscribed_attribute}
        state = Capture(handle=None, watched=watched)  # type: ignore[arg-type]
        state.handle = install_capture(
            host.db.session,
            model=host.Contact,
            watched_attributes=lambda: frozenset(state.watched),
            on_commit=state.on_commit,
        )
        yield state
        state.handle.remove()


def read_outbox(engine: sa.Engine) -> list[tuple[str, str, str | None]]:
    """Committed outbox changes as per-contact ``(contact_id, operation, zoho_id)``, read on a
    connection of its own (so uncommitted ones hide).

    Capture writes batches (one row per flush and operation) and workers expand them into
    per-contact rows; this is the per-contact view of both, without expanding anything (an
    expansion is a write, and on SQLite it would wait for a host transaction left open).
    Per-contact rows come first, then the batches' entries in capture order.
    """
    table, batches = OutboxEntry.__table__, OutboxBatch.__table__
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(table.c.contact_id, table.c.operation, table.c.zoho_id).order_by(table.c.id)
        )
        found: list[tuple[str, str, str | None]] = [tuple(row) for row in rows]  # type: ignore[misc]
        for operation, contact_ids, zoho_ids in connection.execute(
            sa.select(batches.c.operation, batches.c.contact_ids, batches.c.zoho_ids).order_by(
                batches.c.id
            )
        ):
            found.extend((c, operation, (zoho_ids or {}).get(c)) for c in contact_ids)
        return found


def outbox(host) -> list[tuple[str, str, str | None]]:
    """The host's committed outbox changes, per contact (see :func:`read_outbox`)."""
    return read_outbox(host.db.engine)


def add_contact(host, **values: Any) -> Any:
    contact = host.Contact(**values)
    host.db.session.add(contact)
    host.db.session.commit()
    return contact


def clear_outbox(host) -> None:
    host.db.session.execute(sa.delete(OutboxEntry))
    host.db.session.execute(sa.delete(OutboxBatch))
    host.db.session.commit()


@pytest.fixture
def ann(host, capture) -> Any:
    contact = add_contact(host, first_name="Ann", last_name="Lee", email="ann@example.org")
    clear_outbox(host)
    capture.commits.clear()
    return contact


def test_inserting_a_contact_writes_one_upsert_row(host, capture) -> None:
    contact = add_contact(host, first_name="Ann")
    assert outbox(host) == [(str(contact.id), "upsert", None)]
    assert capture.commits == [[str(contact.id)]]


def test_updating_a_watched_field_writes_an_upsert_row(host, capture, ann) -> None:
    ann.company = "Harbour Bakery"
    host.db.session.commit()
    assert outbox(host) == [(str(ann.id), "upsert", None)]


def test_updating_an_unwatched_field_writes_nothing(host, capture, ann) -> None:
    capture.watched.discard("phone")  # the admin mapped no Zoho field to it
    ann.phone = "+44 20 7946 0000"
    host.db.session.commit()
    assert outbox(host) == []
    assert capture.commits == []


def test_assigning_the_value_already_loaded_writes_nothing(host, capture, ann) -> None:
    assert ann.first_name == "Ann"  # loaded: history knows the old value
    ann.first_name = "Ann"
    host.db.session.commit()
    assert outbox(host) == []


def test_assigning_the_same_value_to_an_expired_attribute_writes_nothing(
    host, capture, ann
) -> None:
    # After commit the attributes are expired: history shows added=['Ann'], deleted=[]. The
    # capture reads the pre-flush value from the database and sees no change.
    ann.first_name = "Ann"
    ann.email = "ann@example.org"
    host.db.session.commit()
    assert outbox(host) == []


def test_assigning_a_new_value_to_an_expired_attribute_is_captured(host, capture, ann) -> None:
    bob = add_contact(host, first_name="Bob")
    clear_outbox(host)
    ann.first_name = "Anne"  # expired, really changed
    bob.first_name = "Bob"  # expired, unchanged
    host.db.session.commit()
    assert outbox(host) == [(str(ann.id), "upsert", None)]


def test_deleting_a_contact_writes_a_delete_row_with_its_zoho_id(host, capture, ann) -> None:
    host.db.session.add(Link(module="Contacts", contact_id=str(ann.id), zoho_id="5000000000001"))
    host.db.session.commit()
    contact_id = str(ann.id)
    host.db.session.delete(ann)
    host.db.session.commit()
    assert outbox(host) == [(contact_id, "delete", "5000000000001")]
    assert capture.commits == [[contact_id]]


def test_deleting_an_unlinked_contact_writes_a_delete_row_without_zoho_id(
    host, capture, ann
) -> None:
    host.db.session.delete(ann)
    host.db.session.commit()
    assert outbox(host) == [(str(ann.id), "delete", None)]


def test_adding_and_removing_a_group_writes_an_upsert_row_each_time(host, capture, ann) -> None:
    vip = host.Group(name="VIP")
    host.db.session.add(vip)
    host.db.session.commit()
    ann.groups.append(vip)
    host.db.session.commit()
    assert outbox(host) == [(str(ann.id), "upsert", None)]
    ann.groups.remove(vip)
    host.db.session.commit()
    assert outbox(host) == [(str(ann.id), "upsert", None)] * 2


def test_adding_and_removing_the_same_group_before_flush_writes_nothing(host, capture, ann) -> None:
    vip = host.Group(name="VIP")
    host.db.session.add(vip)
    host.db.session.commit()
    ann.groups.append(vip)
    ann.groups.remove(vip)
    host.db.session.commit()
    assert outbox(host) == []


def test_membership_changed_from_the_group_side_is_captured(host, capture, ann) -> None:
    # A host whose Group model has its own relationship over the association table.
    secondary = host.Contact.__mapper__.relationships["groups"].secondary
    host.Group.contacts = relationship(host.Contact, secondary=secondary, overlaps="groups")
    vip = host.Group(name="VIP")
    host.db.session.add(vip)
    host.db.session.commit()
    vip.contacts.append(ann)
    host.db.session.commit()
    assert outbox(host) == [(str(ann.id), "upsert", None)]


def test_rollback_leaves_no_rows_and_does_not_call_on_commit(host, capture, ann) -> None:
    ann.company = "Harbour Bakery"
    host.db.session.add(host.Contact(first_name="Bob"))
    host.db.session.flush()  # rows are written now, inside the transaction
    host.db.session.rollback()
    assert outbox(host) == []
    assert capture.commits == []
    host.db.session.commit()  # nothing left over for the next transaction
    assert capture.commits == []


def test_rolled_back_savepoint_drops_its_rows_and_keeps_the_outer_ones(host, capture, ann) -> None:
    session = host.db.session
    ann.company = "Harbour Bakery"
    session.flush()
    savepoint = session.begin_nested()
    bob = host.Contact(first_name="Bob")
    session.add(bob)
    session.flush()
    bob_id = str(bob.id)
    savepoint.rollback()
    session.commit()
    assert outbox(host) == [(str(ann.id), "upsert", None)]
    assert capture.commits == [[str(ann.id)]]
    assert bob_id not in {row[0] for row in outbox(host)}


def test_a_contact_captured_before_a_rolled_back_savepoint_is_captured_again_after_it(
    host, capture, ann
) -> None:
    session = host.db.session
    with pytest.raises(RuntimeError), session.begin_nested():
        ann.company = "Harbour Bakery"
        session.flush()
        raise RuntimeError("the host gives up on this step")
    ann.company = "Quay Coffee"
    session.commit()
    assert outbox(host) == [(str(ann.id), "upsert", None)]
    assert capture.commits == [[str(ann.id)]]


def test_released_savepoint_keeps_its_rows_and_reports_them_at_commit(host, capture, ann) -> None:
    session = host.db.session
    with session.begin_nested():
        ann.company = "Harbour Bakery"
    assert capture.commits == []  # releasing a savepoint is not the commit
    ann.company = "Quay Coffee"  # already has a row in this transaction
    session.commit()
    assert outbox(host) == [(str(ann.id), "upsert", None)]
    assert capture.commits == [[str(ann.id)]]


def test_suppressed_writes_are_not_captured(host, capture, ann) -> None:
    session = host.db.session
    with suppress_capture(session):
        ann.company = "From Zoho"
        with suppress_capture(session):
            session.add(host.Contact(first_name="Also from Zoho"))
        assert session.info[CAPTURE_SUPPRESSED]
    assert CAPTURE_SUPPRESSED not in session.info
    session.commit()
    assert outbox(host) == []
    assert capture.commits == []


def test_suppression_flag_set_directly_stops_capture(host, capture, ann) -> None:
    session = host.db.session
    session.info[CAPTURE_SUPPRESSED] = True
    try:
        ann.company = "From Zoho"
        session.commit()
    finally:
        del session.info[CAPTURE_SUPPRESSED]
    assert outbox(host) == []


def test_host_edits_pending_when_suppression_starts_are_still_captured(host, capture, ann) -> None:
    session = host.db.session
    ann.company = "Host edit"
    with suppress_capture(session):
        session.add(host.Contact(first_name="From Zoho"))
    session.commit()
    assert outbox(host) == [(str(ann.id), "upsert", None)]


def test_several_edits_in_one_transaction_write_one_row_per_contact(host, capture, ann) -> None:
    session = host.db.session
    bob = host.Contact(first_name="Bob")
    session.add(bob)
    ann.company = "Harbour Bakery"
    session.flush()
    ann.phone = "+44 20 7946 0000"
    bob.last_name = "Ray"
    session.flush()
    ann.last_name = "Leigh"
    session.commit()
    assert sorted(outbox(host)) == sorted(
        [(str(ann.id), "upsert", None), (str(bob.id), "upsert", None)]
    )
    assert capture.commits == [sorted([str(ann.id), str(bob.id)])]


def test_updating_then_deleting_in_one_transaction_ends_with_the_delete(host, capture, ann) -> None:
    session = host.db.session
    ann.company = "Harbour Bakery"
    session.flush()
    session.delete(ann)
    session.commit()
    assert outbox(host) == [(str(ann.id), "upsert", None), (str(ann.id), "delete", None)]


def test_on_commit_receives_the_ids_only_after_commit(host, capture, ann) -> None:
    ann.company = "Harbour Bakery"
    host.db.session.flush()
    assert capture.commits == []
    host.db.session.commit()
    assert capture.commits == [[str(ann.id)]]
    host.db.session.commit()  # an empty transaction reports nothing
    assert capture.commits == [[str(ann.id)]]


def test_closing_the_session_without_commit_forgets_what_was_captured(host, capture, ann) -> None:
    ann.company = "Harbour Bakery"
    host.db.session.flush()
    host.db.session.close()
    host.db.session.commit()
    assert capture.commits == []
    assert outbox(host) == []


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_commit_succeeds_and_the_row_stays_when_redis_is_down(host, capture, ann, caplog) -> None:
    down = redis.Redis(host="127.0.0.1", port=_closed_port(), socket_connect_timeout=0.5)

    def schedule_push(contact_ids: list[str]) -> None:
        down.set("zoho_sync:pending:push", "1", nx=True, ex=600)

    capture.handle.on_commit = schedule_push
    ann.company = "Harbour Bakery"
    with caplog.at_level(logging.WARNING, logger="flask_zoho_sync.capture"):
        host.db.session.commit()
    down.close()
    assert outbox(host) == [(str(ann.id), "upsert", None)]
    assert "Could not schedule the Zoho push" in caplog.text
    assert "ConnectionError" in caplog.text
    host.db.session.expire_all()
    assert host.db.session.get(host.Contact, ann.id).company == "Harbour Bakery"


def test_on_commit_reaches_a_working_redis(host, capture, ann, redis_client) -> None:
    # Kept to what on_commit itself sees: other test runs may flush the shared test database.
    answers: list[int] = []
    capture.handle.on_commit = lambda ids: answers.append(redis_client.sadd("pending", *ids))
    ann.company = "Harbour Bakery"
    host.db.session.commit()
    assert answers == [1]


def test_a_plain_session_on_the_same_engine_captures_nothing(host, capture) -> None:
    with Session(host.db.engine) as other:
        other.add(host.Contact(first_name="Outsider"))
        other.commit()
    assert outbox(host) == []
    assert capture.commits == []


def test_bulk_update_of_a_watched_column_captures_the_matching_contacts(host, capture, ann) -> None:
    bob = add_contact(host, first_name="Bob", company="Quay Coffee")
    clear_outbox(host)
    host.db.session.execute(
        sa.update(host.Contact)
        .where(host.Contact.company.is_(None))
        .values(company="Harbour Bakery")
    )
    host.db.session.commit()
    assert outbox(host) == [(str(ann.id), "upsert", None)]
    assert str(bob.id) not in {row[0] for row in outbox(host)}


def test_bulk_update_on_the_table_is_captured_like_the_orm_one(host, capture, ann) -> None:
    table = host.Contact.__table__
    host.db.session.execute(sa.update(table).where(table.c.id == ann.id).values(phone="1"))
    host.db.session.commit()
    assert outbox(host) == [(str(ann.id), "upsert", None)]


def test_bulk_update_of_an_unwatched_column_captures_nothing(host, capture, ann) -> None:
    capture.watched.discard("phone")
    host.db.session.execute(sa.update(host.Contact).values(phone="+44 20 7946 0000"))
    host.db.session.commit()
    assert outbox(host) == []


def test_bulk_update_sees_pending_edits_as_the_statement_does(host, capture, ann) -> None:
    ann.email = "ann@harbour.example"  # not flushed yet: the statement autoflushes it
    host.db.session.execute(
        sa.update(host.Contact)
        .where(host.Contact.email == "ann@harbour.example")
        .values(company="Harbour Bakery")
    )
    host.db.session.commit()
    assert outbox(host) == [(str(ann.id), "upsert", None)]


def test_bulk_update_by_primary_key_captures_the_listed_contacts(host, capture, ann) -> None:
    bob = add_contact(host, first_name="Bob")
    clear_outbox(host)
    host.db.session.execute(
        sa.update(host.Contact),
        [{"id": ann.id, "company": "Harbour"}, {"id": bob.id, "company": "Quay"}],
    )
    host.db.session.commit()
    assert sorted(outbox(host)) == sorted(
        [(str(ann.id), "upsert", None), (str(bob.id), "upsert", None)]
    )


def test_bulk_delete_captures_delete_rows_with_zoho_ids(host, capture, ann) -> None:
    bob = add_contact(host, first_name="Bob")
    host.db.session.add(Link(module="Contacts", contact_id=str(ann.id), zoho_id="5000000000001"))
    host.db.session.commit()
    clear_outbox(host)
    ann_id = str(ann.id)
    host.db.session.execute(sa.delete(host.Contact).where(host.Contact.first_name == "Ann"))
    host.db.session.commit()
    assert outbox(host) == [(ann_id, "delete", "5000000000001")]
    assert host.db.session.get(host.Contact, bob.id) is not None


def test_rolled_back_bulk_statement_leaves_no_rows(host, capture, ann) -> None:
    host.db.session.execute(sa.update(host.Contact).values(company="Harbour Bakery"))
    host.db.session.rollback()
    assert outbox(host) == []
    assert capture.commits == []


def test_bulk_insert_with_primary_keys_is_captured(host, capture) -> None:
    host.db.session.execute(sa.insert(host.Contact), [{"id": 41, "first_name": "Cy"}])
    host.db.session.commit()
    assert outbox(host) == [("41", "upsert", None)]


def test_bulk_insert_without_primary_keys_is_reported_not_captured(host, capture, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="flask_zoho_sync.capture"):
        host.db.session.execute(sa.insert(host.Contact), [{"first_name": "Cy"}])
    host.db.session.commit()
    assert outbox(host) == []
    assert "mark_dirty" in caplog.text


def test_core_statements_on_the_group_association_table_are_captured(host, capture, ann) -> None:
    secondary = host.Contact.__mapper__.relationships["groups"].secondary
    vip = host.Group(name="VIP")
    host.db.session.add(vip)
    host.db.session.commit()
    host.db.session.execute(sa.insert(secondary), [{"contact_id": ann.id, "group_id": vip.id}])
    host.db.session.commit()
    assert outbox(host) == [(str(ann.id), "upsert", None)]
    clear_outbox(host)
    host.db.session.execute(sa.delete(secondary).where(secondary.c.group_id == vip.id))
    host.db.session.commit()
    assert outbox(host) == [(str(ann.id), "upsert", None)]


def test_mark_dirty_writes_rows_in_the_current_transaction(host, capture, ann) -> None:
    session = host.db.session
    session.add(Link(module="Contacts", contact_id="77", zoho_id="5000000000077"))
    session.commit()
    session.execute(sa.text("UPDATE contact SET company = 'Raw SQL'"))  # invisible to events
    mark_dirty(session, [ann.id])
    mark_dirty(session, ["77"], operation="delete")
    session.rollback()
    assert outbox(host) == []
    mark_dirty(session, [ann.id])
    mark_dirty(session, ["77"], operation="delete")
    session.commit()
    assert outbox(host) == [(str(ann.id), "upsert", None), ("77", "delete", "5000000000077")]
    assert capture.commits == [sorted([str(ann.id), "77"])]


def test_mark_dirty_works_without_capture_installed(host) -> None:
    with host.app.app_context():
        mark_dirty(host.db.session, [5, 6])
        host.db.session.commit()
        assert outbox(host) == [("5", "upsert", None), ("6", "upsert", None)]


def test_mark_dirty_refuses_an_unknown_operation(host, capture) -> None:
    with pytest.raises(ValueError, match="operation"):
        mark_dirty(host.db.session, [1], operation="merge")


def test_removed_capture_captures_nothing_and_can_be_installed_again(host, capture) -> None:
    capture.handle.remove()
    add_contact(host, first_name="Ann")
    assert outbox(host) == []
    capture.handle.install()
    add_contact(host, first_name="Bob")
    assert len(outbox(host)) == 1


def test_installing_twice_on_one_session_is_refused(host, capture) -> None:
    with pytest.raises(RuntimeError, match="already installed"):
        install_capture(host.db.session, model=host.Contact, watched_attributes=lambda: frozenset())


def test_a_commit_writes_one_small_row_however_many_contacts_changed(host, capture) -> None:
    """The host's commit pays for one INSERT; the worker pays for the per-contact rows."""
    host.db.session.add_all(host.Contact(last_name=f"L{i}") for i in range(300))
    host.db.session.commit()
    with host.db.engine.connect() as connection:
        batches = connection.scalar(sa.select(sa.func.count()).select_from(OutboxBatch))
        rows = connection.scalar(sa.select(sa.func.count()).select_from(OutboxEntry))
    assert (batches, rows) == (1, 0)
    assert len(outbox(host)) == 300
