"""A push saves a batch's links in two statements; what they store must be what saving the
links one by one stored, and the session must agree with the database afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from flask_zoho_sync.ledger import Ledger
from flask_zoho_sync.models import Link, SyncSettings

STAMP = datetime(2026, 11, 1, 9, 30, tzinfo=timezone.utc)


@pytest.fixture
def ledger(host) -> Iterator[Ledger]:
    with host.app.app_context():
        yield Ledger(host.db.session, SyncSettings(module="Leads"))


def stored(host) -> dict[str, tuple[str, dict, datetime | None]]:
    with host.db.engine.connect() as connection:
        rows = connection.execute(sa.select(Link.__table__)).mappings()
        return {
            row["contact_id"]: (row["zoho_id"], row["snapshot"], row["zoho_modified_at"])
            for row in rows
        }


def test_new_and_changed_links_are_written_as_save_link_would(host, ledger) -> None:
    kept = ledger.save_link("1", "z1", {"a": 1}, STAMP)
    ledger.commit()
    rows = [
        ledger.new_link_row("2", "z2", {"b": 2}, STAMP, module="Leads"),
        ledger.new_link_row("3", "z3", {"c": 3}, None),
    ]
    changed = ledger.new_link_row("1", "z1", {"a": 5}, None, module="Leads")
    ledger.write_links(rows, [(kept, changed)])
    # The session's object shows the new values, and nothing of it waits to be flushed.
    assert kept.snapshot == {"a": 5}
    assert kept not in ledger.session.dirty
    ledger.commit()
    links = stored(host)
    assert links["1"][:2] == ("z1", {"a": 5})
    # No new modification time: the stored one stays, as save_link keeps it.
    assert links["1"][2] is not None and links["1"][2].replace(tzinfo=None) == datetime(
        2026, 11, 1, 9, 30
    )
    assert links["2"][:2] == ("z2", {"b": 2})
    assert links["3"] == ("z3", {"c": 3}, None)
    assert ledger.links_in_module("Leads", zoho_ids=["z2", "z3"]).keys() == {"z2", "z3"}
    assert ledger.links_in_module("Contacts", zoho_ids=["z2"]) == {}
    assert set(ledger.links_in_module("Leads", contact_ids=["1", "3"])) == {"1", "3"}
