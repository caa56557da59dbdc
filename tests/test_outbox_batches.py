"""The batch form of the outbox: capture writes one row per flush and operation, workers
expand batches into per-contact rows, and every count of pending changes sees both forms."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from flask_zoho_sync.capture import mark_dirty
from flask_zoho_sync.ledger import Ledger, pending_outbox_summary
from flask_zoho_sync.models import Link, OutboxBatch, OutboxEntry, SyncSettings
from flask_zoho_sync.preferences import get_settings
from flask_zoho_sync.status import sync_status

ZOHO_ID = "5725767000000524157"


@pytest.fixture
def app_context(host) -> Iterator[None]:
    with host.app.app_context():
        yield


def add_contact(host, **values: Any) -> Any:
    contact = host.Contact(**values)
    host.db.session.add(contact)
    host.db.session.commit()
    return contact


def ledger(session: Session) -> Ledger:
    """A ledger for expansion only: its settings object is never added to the session, so
    a second worker's session makes no write of its own."""
    return Ledger(session, SyncSettings(module="Leads"))


def count(host, model: type[Any]) -> int:
    with host.db.engine.connect() as connection:
        return int(connection.scalar(sa.select(sa.func.count()).select_from(model)) or 0)


def entries(session: Session) -> list[tuple[str, str, str | None]]:
    rows = session.scalars(sa.select(OutboxEntry).order_by(OutboxEntry.id))
    return [(row.contact_id, row.operation, row.zoho_id) for row in rows]


def test_one_flush_writes_one_row_per_operation_with_zoho_ids_only_on_deletes(
    host, app_context
) -> None:
    session = host.db.session
    ann = add_contact(host, last_name="Lee")
    bob = add_contact(host, last_name="Ray")
    session.add(Link(module="Leads", contact_id=str(ann.id), zoho_id=ZOHO_ID))
    session.execute(sa.delete(OutboxBatch))
    session.commit()
    session.delete(ann)
    bob.company = "Harbour Bakery"
    cid = add_contact(host, last_name="Cid")  # the same flush: the commit flushes once
    with host.db.engine.connect() as connection:
        batches = connection.execute(
            sa.select(OutboxBatch.operation, OutboxBatch.contact_ids, OutboxBatch.zoho_ids)
            .order_by(OutboxBatch.id)
            .where(OutboxBatch.zoho_ids.is_(None))  # SQL NULL, not JSON null, on upserts
        ).all()
        deletes = connection.execute(
            sa.select(OutboxBatch.contact_ids, OutboxBatch.zoho_ids).where(
                OutboxBatch.operation == "delete"
            )
        ).all()
    assert [(op, sorted(ids), zoho) for op, ids, zoho in batches] == [
        ("upsert", sorted([str(bob.id), str(cid.id)]), None)
    ]
    assert [tuple(row) for row in deletes] == [([str(ann.id)], {str(ann.id): ZOHO_ID})]


def test_the_worker_expands_batches_in_capture_order_with_deleted_zoho_ids(
    host, app_context
) -> None:
    session = host.db.session
    ann = add_contact(host, first_name="Ann", last_name="Lee")
    session.add(Link(module="Leads", contact_id=str(ann.id), zoho_id=ZOHO_ID))
    session.commit()
    bob = add_contact(host, last_name="Ray")
    ann.company = "Harbour Bakery"
    session.commit()
    session.delete(ann)
    session.commit()
    with host.db.engine.connect() as connection:
        stamps = {
            (op, tuple(ids)): created_at
            for op, ids, created_at in connection.execute(
                sa.select(OutboxBatch.operation, OutboxBatch.contact_ids, OutboxBatch.created_at)
            )
        }
    assert count(host, OutboxEntry) == 0

    grouped = Ledger(session, get_settings(session)).pending_outbox()
    session.commit()

    assert [(e.operation, e.zoho_id) for e in grouped[str(ann.id)]] == [
        ("upsert", None),  # created
        ("upsert", None),  # edited in a later transaction
        ("delete", ZOHO_ID),
    ]
    assert [e.operation for e in grouped[str(bob.id)]] == ["upsert"]
    for entry in [*grouped[str(ann.id)], *grouped[str(bob.id)]]:
        assert entry.attempts == 0 and entry.processed_at is None and entry.last_error is None
    # Each row keeps the moment its change was captured, not the moment it was expanded.
    assert grouped[str(ann.id)][-1].created_at == stamps[("delete", (str(ann.id),))]
    assert grouped[str(bob.id)][0].created_at == stamps[("upsert", (str(bob.id),))]
    assert count(host, OutboxBatch) == 0


def test_expanding_again_adds_nothing_and_older_rows_stay_first(host, app_context) -> None:
    session = host.db.session
    ann = add_contact(host, last_name="Lee")
    worker = ledger(session)
    assert worker.expand_outbox_batches() == 1
    session.commit()
    (first,) = session.scalars(sa.select(OutboxEntry)).all()
    worker.retry_outbox_later([first], "Zoho said later")  # still pending, one attempt
    session.commit()
    mark_dirty(session, [ann.id], operation="delete")
    session.commit()

    grouped = worker.pending_outbox()
    session.commit()
    again = worker.pending_outbox()
    session.commit()

    assert [(e.operation, e.attempts) for e in grouped[str(ann.id)]] == [
        ("upsert", 1),
        ("delete", 0),
    ]
    assert [e.id for e in again[str(ann.id)]] == [e.id for e in grouped[str(ann.id)]]
    assert worker.expand_outbox_batches() == 0
    assert count(host, OutboxEntry) == 2


def test_a_rolled_back_expansion_puts_the_batches_back(host, app_context) -> None:
    session = host.db.session
    add_contact(host, last_name="Lee")
    add_contact(host, last_name="Ray")
    worker = ledger(session)
    assert worker.expand_outbox_batches() == 2
    session.rollback()  # the run failed before its first commit
    assert (count(host, OutboxBatch), count(host, OutboxEntry)) == (2, 0)
    assert worker.expand_outbox_batches() == 2
    session.commit()
    assert (count(host, OutboxBatch), count(host, OutboxEntry)) == (0, 2)


def second_engine(host) -> sa.Engine:
    """A second worker's engine; on SQLite it gives up on a locked database at once."""
    url = host.db.engine.url
    if url.get_backend_name() == "sqlite":
        return sa.create_engine(url, connect_args={"timeout": 0.1}, poolclass=sa.NullPool)
    return sa.create_engine(url, poolclass=sa.NullPool)


def test_two_workers_expanding_at_once_never_double_a_batch(host, app_context) -> None:
    """The first worker's expansion is not committed yet when the second one expands.

    PostgreSQL: the second skips the rows the first has claimed (``SKIP LOCKED``) without
    waiting for it. SQLite: one writer at a time, so the second is refused ("database is
    locked") and its run is retried. Either way each change becomes exactly one row.
    """
    for index in range(3):
        add_contact(host, last_name=f"L{index}")
    mark_dirty(host.db.session, ["900", "901"], operation="delete")
    host.db.session.commit()
    engine = second_engine(host)
    try:
        with Session(host.db.engine) as first, Session(engine) as second:
            assert ledger(first).expand_outbox_batches() == 5
            try:
                taken = ledger(second).expand_outbox_batches()
            except sa.exc.OperationalError as exc:
                assert host.db.engine.dialect.name == "sqlite", exc
                assert "locked" in str(exc)
                second.rollback()
            else:
                assert host.db.engine.dialect.name == "postgresql"
                assert taken == 0
            first.commit()
            assert ledger(second).expand_outbox_batches() == 0  # the batches are gone
            second.commit()
    finally:
        engine.dispose()
    with Session(host.db.engine) as reader:
        assert sorted(entries(reader)) == sorted(
            [(str(i), "upsert", None) for i in range(1, 4)]
            + [("900", "delete", None), ("901", "delete", None)]
        )
    assert count(host, OutboxBatch) == 0


def test_a_worker_takes_what_another_left_after_its_rollback(host, app_context) -> None:
    add_contact(host, last_name="Lee")
    engine = second_engine(host)
    try:
        with Session(host.db.engine) as first, Session(engine) as second:
            assert ledger(first).expand_outbox_batches() == 1
            first.rollback()
            assert ledger(second).expand_outbox_batches() == 1
            second.commit()
    finally:
        engine.dispose()
    assert (count(host, OutboxBatch), count(host, OutboxEntry)) == (0, 1)


def test_a_worker_with_nothing_to_expand_does_not_hold_up_host_writes(host, app_context) -> None:
    """On SQLite a write statement, even one that deletes nothing, locks the database until
    commit; a worker reading an outbox with no batches must leave the host free to write."""
    engine = second_engine(host)
    try:
        with Session(host.db.engine) as worker, Session(engine) as other_host:
            assert ledger(worker).pending_outbox() == {}
            other_host.execute(sa.insert(host.Contact.__table__).values(last_name="Lee"))
            other_host.commit()  # would fail with "database is locked" if the worker held it
            worker.commit()
    finally:
        engine.dispose()


def test_expansion_without_delete_returning_locks_then_deletes(
    host, app_context, monkeypatch
) -> None:
    """MySQL, and SQLite before 3.35, have no ``DELETE ... RETURNING``."""
    session = host.db.session
    ann = add_contact(host, last_name="Lee")
    session.add(Link(module="Leads", contact_id=str(ann.id), zoho_id=ZOHO_ID))
    session.commit()
    session.delete(ann)
    session.commit()
    monkeypatch.setattr(host.db.engine.dialect, "delete_returning", False)
    assert ledger(session).expand_outbox_batches() == 2
    session.commit()
    assert entries(session) == [(str(ann.id), "upsert", None), (str(ann.id), "delete", ZOHO_ID)]
    assert count(host, OutboxBatch) == 0


def test_pending_counts_see_batches_and_rows_each_contact_once(host, app_context) -> None:
    session = host.db.session
    assert pending_outbox_summary(session) == (0, None)
    ann = add_contact(host, last_name="Lee")
    ledger(session).expand_outbox_batches()  # ann: a per-contact row
    session.commit()
    ann.company = "Harbour Bakery"  # ann again, now in a batch
    session.commit()
    add_contact(host, last_name="Ray")  # bob: a batch only
    mark_dirty(session, ["77"], operation="delete")  # a deleted contact: a batch only
    session.commit()
    with host.db.engine.connect() as connection:
        oldest_row = connection.scalar(sa.select(sa.func.min(OutboxEntry.created_at)))
    assert (count(host, OutboxEntry), count(host, OutboxBatch)) == (1, 3)

    summary = pending_outbox_summary(session)

    assert summary.contacts == 3
    assert summary.oldest is not None and summary.oldest == oldest_row
    assert sync_status(session)["counts"]["pending"] == 3
    # The same counts once a worker has expanded everything...
    ledger(session).expand_outbox_batches()
    session.commit()
    assert pending_outbox_summary(session) == (3, oldest_row)
    # ...and processed rows no longer count.
    ledger(session).finish_outbox(session.scalars(sa.select(OutboxEntry)))
    session.commit()
    assert pending_outbox_summary(session) == (0, None)
    assert sync_status(session)["counts"]["pending"] == 0


def test_pending_counts_without_sql_json_functions(host, app_context, monkeypatch) -> None:
    """Other databases count in Python, with the same result."""
    session = host.db.session
    add_contact(host, last_name="Lee")
    mark_dirty(session, ["1", "77"])
    session.commit()
    monkeypatch.setattr("flask_zoho_sync.ledger._batched_contact_ids", lambda dialect: None)
    assert pending_outbox_summary(session).contacts == 2
