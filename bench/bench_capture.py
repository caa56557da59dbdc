"""How much change capture adds to a host's commit.

Times ``session.commit()`` of N contact updates made through a host-style scoped session,
without and with :func:`flask_zoho_sync.capture.install_capture`, on the same data and a
fresh schema for every measurement, and prints the medians and their ratio against the goal
(capture makes such a commit at most 10% slower).

Two scenarios, because capture's cost depends on what the session knows:

* ``loaded``: the contacts were read in this transaction, so attribute history holds the old
  values and capture only compares them.
* ``expired``: the contacts were committed and then assigned without being read again
  (``expire_on_commit``): history has no old values, and capture reads them in one batched
  SELECT before the flush to tell real changes from same-value assignments.

With capture, the timed commit also judges each dirty contact (``before_flush`` and
``after_flush``) and writes the outbox in the same transaction: one
``zoho_sync_outbox_batch`` row per flush and operation, holding the contact ids. Expanding
batches into per-contact rows is the worker's job, off the host's commit path, and is not
timed here. After each captured commit the benchmark checks that every update was captured.

Run: ``python bench/bench_capture.py [--rows 1000] [--repeat 5] [--db sqlite|postgresql]``.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    mapped_column,
    relationship,
    scoped_session,
    sessionmaker,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask_zoho_sync.capture import install_capture
from flask_zoho_sync.models import OutboxBatch, attach_tables

#: A database of its own: the benchmark drops and creates tables, which must not race the
#: test suite's database.
POSTGRES_URL = os.environ.get(
    "ZOHO_SYNC_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/zoho_sync_bench"
)
GOAL = 1.10


class Base(DeclarativeBase):
    pass


contact_groups = sa.Table(
    "bench_contact_groups",
    Base.metadata,
    sa.Column(
        "contact_id", sa.ForeignKey("bench_contact.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("group_id", sa.ForeignKey("bench_group.id", ondelete="CASCADE"), primary_key=True),
)


class Group(Base):
    __tablename__ = "bench_group"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(80), unique=True)


class Contact(Base):
    """Shaped like a typical host contact: a handful of text fields, a flag, groups."""

    __tablename__ = "bench_contact"
    id: Mapped[int] = mapped_column(primary_key=True)
    first_name: Mapped[str | None] = mapped_column(sa.String(40))
    last_name: Mapped[str | None] = mapped_column(sa.String(80))
    email: Mapped[str | None] = mapped_column(sa.String(120))
    phone: Mapped[str | None] = mapped_column(sa.String(30))
    company: Mapped[str | None] = mapped_column(sa.String(120))
    subscribed: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    groups: Mapped[list[Group]] = relationship(secondary=contact_groups)


attach_tables(Base.metadata)

WATCHED = frozenset(
    {"first_name", "last_name", "email", "phone", "company", "subscribed", "groups"}
)


def ensure_postgres_database(url: str) -> None:
    target = sa.engine.make_url(url)
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        exists = connection.scalar(
            sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": target.database}
        )
        if not exists:
            connection.execute(sa.text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()


def fresh_schema(engine: sa.Engine) -> None:
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)


def seed(session: Any, rows: int) -> None:
    session.execute(
        sa.insert(Contact),
        [
            {
                "first_name": f"First{i}",
                "last_name": f"Last{i}",
                "email": f"person{i}@example.org",
                "company": f"Company {i}",
            }
            for i in range(rows)
        ],
    )
    session.commit()


def measure(engine: sa.Engine, rows: int, *, captured: bool, scenario: str) -> float:
    """Seconds for one ``commit()`` of ``rows`` contact updates, on a fresh schema."""
    fresh_schema(engine)
    session = scoped_session(sessionmaker(engine))
    handle = None
    try:
        seed(session, rows)
        # A long-running app has the outbox table, its indexes and its id sequence in its
        # caches (PostgreSQL's relcache is per connection, and a fresh schema empties it):
        # write and remove one row first, in both modes alike.
        session.add(OutboxBatch(operation="upsert", contact_ids=["warm-up"]))
        session.flush()
        session.execute(sa.delete(OutboxBatch))
        session.commit()
        contacts = list(session.scalars(sa.select(Contact).order_by(Contact.id)))
        if scenario == "expired":
            session.commit()  # expire everything; the assignments below load nothing
        if captured:
            handle = install_capture(
                session,
                model=Contact,
                watched_attributes=lambda: WATCHED,
                on_commit=lambda ids: None,
            )
        for contact in contacts:
            contact.company = f"Company {contact.id} renamed" if scenario == "loaded" else "New"
        gc.collect()
        started = time.perf_counter()
        session.commit()
        elapsed = time.perf_counter() - started
        if captured:
            written = sum(len(ids) for ids in session.scalars(sa.select(OutboxBatch.contact_ids)))
            assert written == rows, f"expected {rows} captured changes, found {written}"
        return elapsed
    finally:
        if handle is not None:
            handle.remove()
        session.remove()


def run(engine: sa.Engine, rows: int, repeat: int, scenario: str) -> tuple[float, float]:
    """Median seconds without and with capture; the order alternates to spread drift."""
    plain: list[float] = []
    with_capture: list[float] = []
    measure(engine, rows, captured=True, scenario=scenario)  # warm caches and compiled SQL
    measure(engine, rows, captured=False, scenario=scenario)
    for index in range(repeat):
        order: list[tuple[bool, list[float]]] = [(False, plain), (True, with_capture)]
        if index % 2:
            order.reverse()
        for captured, bucket in order:
            bucket.append(measure(engine, rows, captured=captured, scenario=scenario))
    return statistics.median(plain), statistics.median(with_capture)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--scenario", choices=("loaded", "expired", "both"), default="both")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{directory}/bench.sqlite3" if args.db == "sqlite" else POSTGRES_URL
        if args.db == "postgresql":
            ensure_postgres_database(url)
        engine = sa.create_engine(url)
        scenarios = ("loaded", "expired") if args.scenario == "both" else (args.scenario,)
        print(
            f"host commit of {args.rows} contact updates, {args.db}, "
            f"median of {args.repeat} (goal: ratio <= {GOAL:.2f})"
        )
        header = f"{'scenario':<10}{'without':>12}{'with':>12}{'ratio':>8}  verdict"
        print(header)
        print("-" * len(header))
        ok = True
        report: Callable[[str], None] = print
        for scenario in scenarios:
            plain, captured = run(engine, args.rows, args.repeat, scenario)
            ratio = captured / plain
            ok = ok and ratio <= GOAL
            report(
                f"{scenario:<10}{plain * 1000:>10.1f}ms{captured * 1000:>10.1f}ms{ratio:>8.3f}  "
                f"{'ok' if ratio <= GOAL else 'over goal'}"
            )
        Base.metadata.drop_all(engine)
        engine.dispose()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
