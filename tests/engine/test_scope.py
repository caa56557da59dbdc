"""What syncs (issue 21): the host scope (groups, a named filter), the Zoho scope sent to
Zoho as COQL criteria, what leaving the scope does, and the first sync's match keys."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from flask_zoho_sync.models import Link, RecordHistory, ScopeExit
from flask_zoho_sync.preferences import get_settings, set_field_map
from flask_zoho_sync.scope import save_scope, unmatched_records
from flask_zoho_sync.zoho.client import ZohoClient
from tests.engine.conftest import Synced


def _scope(synced: Synced, **choices: Any) -> None:
    with synced.host.app.app_context():
        session = synced.host.db.session
        save_scope(
            session, get_settings(session), synced.state.adapter, synced.host.app.config, **choices
        )
        session.commit()


@pytest.fixture
def queries(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every COQL query the client sends, as sent."""
    sent: list[str] = []
    original = ZohoClient.coql

    def recording(self: ZohoClient, query: str) -> tuple[list[dict[str, Any]], bool]:
        sent.append(query)
        return original(self, query)

    monkeypatch.setattr(ZohoClient, "coql", recording)
    yield sent


def _links(synced: Synced) -> dict[str, str]:
    with synced.host.app.app_context():
        rows = synced.host.db.session.scalars(sa.select(Link))
        return {row.contact_id: row.zoho_id for row in rows}


def test_a_contact_outside_the_host_groups_is_not_exported(synced: Synced) -> None:
    synced.add_contact(last_name="Lee", email="ann@example.org", groups=["VIP"])
    synced.add_contact(last_name="Ray", email="bob@example.org")
    _scope(synced, host_groups=["VIP"])
    report = synced.sync(mode="all")
    assert report.status == "succeeded", report.message
    assert set(synced.leads()) == {"ann@example.org"}
    assert report.counts["to_zoho.skipped_out_of_scope"] == 1


def test_a_named_filter_limits_the_export(synced: Synced) -> None:
    contact = synced.host.Contact
    synced.state.adapter.add_scope_filter("Acme staff", contact.company == "Acme")
    synced.state.adapter.add_scope_filter("Has phone", lambda c: bool(c.phone))
    ann = synced.add_contact(last_name="Lee", email="ann@example.org", company="Acme")
    synced.add_contact(last_name="Ray", email="bob@example.org", phone="+64 9 555 0100")
    _scope(synced, host_filter="Acme staff")
    plan = synced.sync(mode="all", dry_run=True)
    assert {c.contact_id for c in plan.changes if c.direction == "to_zoho"} == {str(ann)}
    assert synced.sync(mode="all").status == "succeeded"
    assert set(synced.leads()) == {"ann@example.org"}
    _scope(synced, host_filter="Has phone", on_leave="unlink")
    assert synced.sync(mode="all").status == "succeeded"
    assert set(synced.leads()) == {"ann@example.org", "bob@example.org"}


def test_a_zoho_record_outside_the_zoho_scope_is_never_downloaded(
    synced: Synced, queries: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    listings: list[str] = []
    listing = ZohoClient.iter_pages

    def recording(self: ZohoClient, module: str, *args: Any, **kwargs: Any) -> Any:
        listings.append(module)
        return listing(self, module, *args, **kwargs)

    monkeypatch.setattr(ZohoClient, "iter_pages", recording)
    synced.zoho.create_record(
        "Leads", {"Last_Name": "Kim", "Email": "kim@example.org", "Lead_Status": "Contacted"}
    )
    junk = synced.zoho.create_record(
        "Leads", {"Last_Name": "Spam", "Email": "spam@example.org", "Lead_Status": "Junk Lead"}
    )
    _scope(synced, zoho_conditions="Lead_Status != Junk Lead")
    report = synced.sync(mode="all")
    assert report.status == "succeeded", report.message
    assert set(synced.contacts()) == {"kim@example.org"}
    assert listings == []  # no REST listing: it cannot filter
    reads = [q for q in queries if "Last_Name" in q]
    assert reads and all("Lead_Status != 'Junk Lead'" in q for q in reads)
    # The only query that may name the junk record reads ids of records outside the scope.
    assert all("Last_Name" not in q for q in queries if "Lead_Status = 'Junk Lead'" in q)
    assert junk["id"] not in _links(synced).values()


def _linked_pair(synced: Synced) -> tuple[int, str]:
    ann = synced.add_contact(first_name="Ann", last_name="Lee", email="ann@example.org")
    synced.first_manual_sync()
    return ann, synced.leads()["ann@example.org"]["id"]


@pytest.mark.parametrize("on_leave", ["unlink", "delete"])
def test_a_zoho_record_leaving_the_scope(synced: Synced, on_leave: str) -> None:
    ann, zoho_id = _linked_pair(synced)
    _scope(synced, zoho_conditions="Lead_Status != Junk Lead", on_leave=on_leave)
    assert synced.sync(mode="all").status == "succeeded"
    synced.zoho.update_record("Leads", zoho_id, {"Lead_Status": "Junk Lead"})
    plan = synced.sync(dry_run=True)
    assert ("to_host", on_leave, str(ann), zoho_id) in {
        (c.direction, c.action, c.contact_id, c.zoho_id) for c in plan.changes
    }
    assert str(ann) in _links(synced)  # the plan changed nothing
    report = synced.sync()
    assert report.status == "succeeded", report.message
    assert str(ann) not in _links(synced)
    if on_leave == "unlink":
        assert "ann@example.org" in synced.contacts()
    else:
        assert "ann@example.org" not in synced.contacts()
    # Never resurrected: the Zoho record stays, and nothing links or creates it again.
    synced.edit_contact(ann, first_name="Annie") if on_leave == "unlink" else None
    again = synced.sync(mode="all")
    assert again.status == "succeeded", again.message
    assert str(ann) not in _links(synced)
    assert len(synced.zoho.records("Leads")) == 1
    assert synced.zoho.record("Leads", zoho_id)["First_Name"] == "Ann"


@pytest.mark.parametrize("on_leave", ["unlink", "delete"])
def test_a_contact_leaving_the_host_scope(synced: Synced, on_leave: str) -> None:
    ann = synced.add_contact(last_name="Lee", email="ann@example.org", groups=["VIP"])
    _scope(synced, host_groups=["VIP"], on_leave=on_leave)
    synced.first_manual_sync()
    zoho_id = synced.leads()["ann@example.org"]["id"]
    synced.edit_contact(ann, groups=[], first_name="Ann")
    plan = synced.sync(dry_run=True)
    assert {(c.action, c.zoho_id) for c in plan.changes} >= {
        ("unlink" if on_leave == "unlink" else "delete", zoho_id)
    }
    report = synced.sync()
    assert report.status == "succeeded", report.message
    assert str(ann) not in _links(synced)
    assert "ann@example.org" in synced.contacts()
    if on_leave == "unlink":
        assert synced.zoho.record("Leads", zoho_id)["First_Name"] is None  # not synced
    else:
        assert synced.leads() == {}
    again = synced.sync(mode="all")
    assert again.status == "succeeded", again.message
    assert str(ann) not in _links(synced)
    assert "ann@example.org" in synced.contacts()
    assert len(synced.contacts()) == 1
    assert len(synced.zoho.records("Leads")) == (1 if on_leave == "unlink" else 0)


def test_the_delete_on_leave_goes_through_the_mass_delete_breaker(synced: Synced) -> None:
    ids = [
        synced.add_contact(last_name=f"P{n}", email=f"p{n}@example.org", groups=["VIP"])
        for n in range(12)
    ]
    _scope(synced, host_groups=["VIP"], on_leave="delete")
    synced.first_manual_sync()
    for contact_id in ids:
        synced.edit_contact(contact_id, groups=[])
    report = synced.sync()
    assert report.status == "needs_confirmation"
    assert "leaving the sync's scope (12 of them)" in (report.message or "")
    assert len(synced.zoho.records("Leads")) == 12
    confirmed = synced.sync(confirm_deletes=True)
    assert confirmed.status == "succeeded", confirmed.message
    assert synced.zoho.records("Leads") == []
    assert len(synced.contacts()) == 12


def test_match_on_contact_id(synced: Synced) -> None:
    ann = synced.add_contact(last_name="Lee", email="ann@home.example")
    zoho = synced.zoho.create_record(
        "Leads", {"Last_Name": "Lee", "Email": "ann@work.example", "Contact_Id": str(ann)}
    )
    _scope(synced, match_key="contact_id")
    report = synced.sync(mode="all")
    assert report.status == "succeeded", report.message
    assert _links(synced) == {str(ann): zoho["id"]}
    assert len(synced.zoho.records("Leads")) == 1


def _map_phone_key(synced: Synced, *, unique: bool) -> None:
    synced.zoho.add_custom_field(
        "Leads",
        api_name="Phone_Key",
        field_label="Phone key",
        data_type="text",
        length=30,
        unique=unique,
    )
    with synced.host.app.app_context():
        session = synced.host.db.session
        set_field_map(session, kind="field", host_key="phone", zoho_field="Phone_Key")
        session.commit()


def test_a_match_field_zoho_lets_two_records_share_is_refused(synced: Synced) -> None:
    _map_phone_key(synced, unique=False)
    synced.add_contact(last_name="Lee", email="ann@a.example", phone="111")
    _scope(synced, match_key="field:phone")
    report = synced.sync(mode="all")
    assert report.status == "failed"
    assert "Phone_Key, which allows duplicate values" in (report.message or "")
    assert synced.zoho.records("Leads") == []


def test_a_notified_record_outside_the_zoho_scope_is_not_read(
    synced: Synced, queries: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _ann, zoho_id = _linked_pair(synced)
    spam = synced.zoho.create_record(
        "Leads", {"Last_Name": "Spam", "Email": "spam@example.org", "Lead_Status": "Junk Lead"}
    )
    _scope(synced, zoho_conditions="Lead_Status != Junk Lead")
    by_ids: list[Any] = []
    monkeypatch.setattr(ZohoClient, "get_records", lambda *a, **k: by_ids.append(a) or [])
    synced.zoho.update_record("Leads", zoho_id, {"First_Name": "Annie"})
    queries.clear()  # the first sync's, before the scope (a first sync reads by COQL too)
    with synced.host.app.app_context():
        report = synced.state.sync_records([zoho_id, spam["id"]], trigger="notify", notified=())
    assert report.status == "succeeded", report.message
    assert by_ids == []  # no read by id: it cannot filter
    assert synced.contacts()["ann@example.org"]["first_name"] == "Annie"
    assert "spam@example.org" not in synced.contacts()
    reads = [q for q in queries if "Last_Name" in q]
    assert reads and all("Lead_Status != 'Junk Lead'" in q for q in reads)


def test_match_on_a_custom_field_and_ambiguous_matches_stay_unlinked(synced: Synced) -> None:
    _map_phone_key(synced, unique=True)
    ann = synced.add_contact(last_name="Lee", email="ann@a.example", phone="111")
    synced.add_contact(last_name="Twin", email="t1@a.example", phone="222")
    synced.add_contact(last_name="Twin", email="t2@a.example", phone="222")
    matched = synced.zoho.create_record(
        "Leads", {"Last_Name": "Lee", "Email": "other@b.example", "Phone_Key": "111"}
    )
    twin = synced.zoho.create_record(
        "Leads", {"Last_Name": "Twin", "Email": "x@b.example", "Phone_Key": "222"}
    )
    _scope(synced, match_key="field:phone")
    report = synced.sync(mode="all", direction="pull")
    assert report.status == "partial", report.message
    links = _links(synced)
    assert links[str(ann)] == matched["id"]
    assert twin["id"] not in links.values()
    with synced.host.app.app_context():
        listed = unmatched_records(synced.host.db.session)
        assert [(row.zoho_id, row.error_code) for row in listed] == [
            (twin["id"], "AMBIGUOUS_MATCH")
        ]


def test_changing_the_scope_stops_a_pinned_run_and_forces_a_full_sync(synced: Synced) -> None:
    synced.add_contact(last_name="Lee", email="ann@example.org")
    synced.first_manual_sync()
    with synced.host.app.app_context():
        from flask_zoho_sync.ledger import Ledger

        session = synced.host.db.session
        ledger = Ledger(session, get_settings(session))
        ledger.pin_settings()
        _scope(synced, zoho_conditions="Lead_Status != Junk Lead")
        assert ledger.settings_change() == "what syncs (the scope or the match key) changed"
        session.expire_all()
        assert get_settings(session).pull_watermark is None
        assert session.scalar(sa.select(sa.func.count()).select_from(ScopeExit)) == 0
        assert session.scalar(sa.select(sa.func.count()).select_from(RecordHistory)) >= 1


def _cli(synced: Synced, *args: str):  # type: ignore[no-untyped-def]
    return synced.host.app.test_cli_runner().invoke(args=["zoho-sync", *args])


def test_the_cli_sets_and_shows_what_syncs(synced: Synced) -> None:
    synced.add_contact(last_name="Lee", email="ann@example.org", groups=["VIP"])
    synced.add_contact(last_name="Ray", email="bob@example.org")
    result = _cli(
        synced,
        "settings",
        "--scope-groups",
        "VIP",
        "--zoho-scope",
        "Lead_Status != Junk Lead",
        "--on-leave",
        "delete",
        "--match-key",
        "contact_id",
    )
    assert result.exit_code == 0, result.output
    assert "host contacts in VIP" in result.output
    assert "Lead_Status != Junk Lead" in result.output
    assert "leaving the scope: delete; first sync matches on contact_id" in result.output
    assert synced.sync(mode="all").status == "succeeded"
    assert set(synced.leads()) == {"ann@example.org"}
    refused = _cli(synced, "settings", "--scope-groups", "Nobody")
    assert refused.exit_code == 1
    assert "no group 'Nobody'" in refused.output
    assert "host contacts in VIP" in _cli(synced, "settings").output
    bad = _cli(synced, "settings", "--zoho-scope", "Lead_Status is Junk")
    assert bad.exit_code == 1 and "FIELD = VALUE" in bad.output
    cleared = _cli(synced, "settings", "--scope-groups", "", "--zoho-scope", "").output
    assert "What syncs: every host contact; every Zoho record;" in cleared


def test_an_email_two_contacts_share_is_not_guessed(synced: Synced) -> None:
    first = synced.add_contact(last_name="Lee", email="ann@example.org")
    second = synced.add_contact(last_name="Lee", email=" ANN@example.org")
    record = synced.zoho.create_record("Leads", {"Last_Name": "Lee", "Email": "ann@example.org"})
    report = synced.sync(mode="all", direction="pull")
    assert report.status == "partial", report.message
    assert record["id"] not in _links(synced).values()
    assert {str(first), str(second)}.isdisjoint(_links(synced))
    with synced.host.app.app_context():
        listed = unmatched_records(synced.host.db.session)
        assert [(row.zoho_id, row.error_code) for row in listed] == [
            (record["id"], "AMBIGUOUS_MATCH")
        ]


def test_a_malformed_scope_in_config_stops_the_app_at_start_up(
    database_url: str, redis_client: Any
) -> None:
    from flask_zoho_sync.errors import ConfigurationError
    from tests.conftest import TEST_REDIS_URL
    from tests.hostapp import make_host_app

    with pytest.raises(ConfigurationError) as refused:
        make_host_app(
            database_url, ZOHO_SYNC_REDIS_URL=TEST_REDIS_URL, ZOHO_SYNC_SCOPE_ZOHO="Owner is me"
        )
    assert "FIELD = VALUE" in str(refused.value)
    with pytest.raises(ConfigurationError, match="match key"):
        make_host_app(database_url, ZOHO_SYNC_REDIS_URL=TEST_REDIS_URL, ZOHO_SYNC_MATCH_KEY="name")
