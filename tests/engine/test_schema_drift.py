"""A Zoho admin changes a mapped field under the sync (issue 19): that row pauses with its
reason, everything else syncs, no host value is lost or blanked, and the row resumes when
the admin fixes it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from flask_zoho_sync import signals
from flask_zoho_sync.extension import get_state
from flask_zoho_sync.incidents import open_incidents
from flask_zoho_sync.models import FieldMap
from flask_zoho_sync.preferences import build_mapping, set_field_map
from flask_zoho_sync.sandbox.handle import SandboxHandle
from tests.engine.conftest import Synced, connect_synced, dispose_synced

ORG_FIELD = "Org_Name"


def _map_company_to(synced: Synced, zoho_field: str, **row: Any) -> None:
    with synced.host.app.app_context():
        session = synced.host.db.session
        set_field_map(session, kind="field", host_key="company", zoho_field=zoho_field)
        found = session.query(FieldMap).filter_by(kind="field", host_key="company").one()
        for name, value in row.items():
            setattr(found, name, value)
        session.commit()


def _row(synced: Synced) -> FieldMap:
    with synced.host.app.app_context():
        session = synced.host.db.session
        found = session.query(FieldMap).filter_by(kind="field", host_key="company").one()
        session.expunge(found)
        return found


def _problems(synced: Synced) -> list[str]:
    with synced.host.app.app_context():
        return build_mapping(synced.host.db.session, get_state().adapter).problems()


def _linked(synced: Synced) -> tuple[int, str]:
    contact_id = synced.add_contact(
        first_name="Ann", last_name="Lee", email="ann@example.org", company="Acme"
    )
    synced.first_manual_sync()
    lead = synced.leads()["ann@example.org"]
    assert lead[ORG_FIELD] == "Acme"
    return contact_id, lead["id"]


def _with_org_field(database_url: str, zoho: SandboxHandle, **config: Any) -> Iterator[Synced]:
    built = connect_synced(database_url, zoho, **config)
    zoho.add_custom_field("Leads", api_name=ORG_FIELD, field_label="Org name", data_type="text")
    _map_company_to(built, ORG_FIELD)
    yield built
    dispose_synced(built)


@pytest.fixture
def fresh(database_url: str, redis_client: Any, zoho_sandbox: SandboxHandle) -> Iterator[Synced]:
    """Every run reads Zoho's field list again (``ZOHO_SYNC_FIELDS_MAX_AGE=0``)."""
    yield from _with_org_field(database_url, zoho_sandbox, ZOHO_SYNC_FIELDS_MAX_AGE=0)


@pytest.fixture
def cached(database_url: str, redis_client: Any, zoho_sandbox: SandboxHandle) -> Iterator[Synced]:
    """The field list is trusted for an hour: a change in Zoho is learnt from a refusal."""
    yield from _with_org_field(database_url, zoho_sandbox, ZOHO_SYNC_FIELDS_MAX_AGE=3600)


def _edit_both(synced: Synced, contact_id: int) -> None:
    synced.edit_contact(contact_id, first_name="Annie", company="Acme Ltd")


def _assert_rest_synced_and_company_kept(synced: Synced, zoho_id: str) -> None:
    assert synced.zoho.record("Leads", zoho_id)["First_Name"] == "Annie"
    assert synced.contacts()["ann@example.org"]["company"] == "Acme Ltd"


def test_a_deleted_field_pauses_its_row_before_the_run_and_the_rest_syncs(fresh: Synced) -> None:
    contact_id, zoho_id = _linked(fresh)
    fresh.zoho.delete_field("Leads", ORG_FIELD)
    _edit_both(fresh, contact_id)

    report = fresh.sync()

    assert report.status == "succeeded", report.message
    _assert_rest_synced_and_company_kept(fresh, zoho_id)
    assert any(f"no field {ORG_FIELD}" in problem for problem in _problems(fresh))


def test_a_field_refused_mid_run_is_left_out_of_a_resent_batch_and_its_row_paused(
    cached: Synced,
) -> None:
    contact_id, zoho_id = _linked(cached)
    cached.zoho.delete_field("Leads", ORG_FIELD)
    _edit_both(cached, contact_id)

    report = cached.sync()

    assert report.status == "succeeded", report.message
    _assert_rest_synced_and_company_kept(cached, zoho_id)
    assert report.counts.get("to_zoho.paused_fields") == 1
    assert not [c for c in report.changes if c.action == "error"]
    reason = _row(cached).paused_reason
    assert reason is not None and ORG_FIELD in reason and "deleted or made read-only" in reason
    assert any(ORG_FIELD in problem and "paused" in problem for problem in _problems(cached))
    # The next edit does not try the paused field again.
    cached.edit_contact(contact_id, first_name="Anna")
    again = cached.sync()
    assert again.status == "succeeded", again.message
    assert cached.zoho.record("Leads", zoho_id)["First_Name"] == "Anna"
    assert again.counts.get("to_zoho.paused_fields") is None


def test_a_renamed_field_is_followed_by_its_id(fresh: Synced) -> None:
    contact_id, zoho_id = _linked(fresh)
    fresh.zoho.change_field("Leads", ORG_FIELD, api_name="Company_Name")
    _edit_both(fresh, contact_id)

    report = fresh.sync()

    assert report.status == "succeeded", report.message
    assert _row(fresh).zoho_field == "Company_Name"
    record = fresh.zoho.record("Leads", zoho_id)
    assert record["Company_Name"] == "Acme Ltd" and record["First_Name"] == "Annie"
    assert _problems(fresh) == []


def test_a_field_made_read_only_pauses_the_row_that_writes_it(fresh: Synced) -> None:
    contact_id, zoho_id = _linked(fresh)
    fresh.zoho.change_field("Leads", ORG_FIELD, read_only=True)
    _edit_both(fresh, contact_id)

    report = fresh.sync()

    assert report.status == "succeeded", report.message
    _assert_rest_synced_and_company_kept(fresh, zoho_id)
    assert fresh.zoho.record("Leads", zoho_id)[ORG_FIELD] == "Acme"
    assert any(ORG_FIELD in p and "does not let the API write" in p for p in _problems(fresh))


def test_a_field_retyped_in_zoho_pauses_its_row_whether_seen_before_or_during_the_run(
    fresh: Synced,
) -> None:
    contact_id, zoho_id = _linked(fresh)
    fresh.zoho.change_field("Leads", ORG_FIELD, data_type="integer")
    _edit_both(fresh, contact_id)

    report = fresh.sync()

    assert report.status == "succeeded", report.message
    _assert_rest_synced_and_company_kept(fresh, zoho_id)
    assert any(ORG_FIELD in problem for problem in _problems(fresh))


def test_a_type_change_refused_mid_run_names_the_new_type(cached: Synced) -> None:
    contact_id, zoho_id = _linked(cached)
    cached.zoho.change_field("Leads", ORG_FIELD, data_type="integer")
    _edit_both(cached, contact_id)

    report = cached.sync()

    assert report.status == "succeeded", report.message
    _assert_rest_synced_and_company_kept(cached, zoho_id)
    reason = _row(cached).paused_reason
    assert reason is not None and "expects integer" in reason


def test_a_paused_row_resumes_when_the_admin_fixes_it_and_the_kept_value_is_sent(
    cached: Synced,
) -> None:
    contact_id, zoho_id = _linked(cached)
    cached.zoho.delete_field("Leads", ORG_FIELD)
    _edit_both(cached, contact_id)
    assert cached.sync().status == "succeeded"
    assert _row(cached).paused_reason is not None

    # The admin maps the host field to a field Zoho has, and saves the row.
    cached.zoho.add_custom_field("Leads", api_name="Firm", data_type="text")
    _map_company_to(cached, "Firm")
    report = cached.sync(mode="all")

    assert report.status == "succeeded", report.message
    assert _row(cached).paused_reason is None
    assert cached.zoho.record("Leads", zoho_id)["Firm"] == "Acme Ltd"
    assert _problems(cached) == []


def test_a_picklist_value_zoho_no_longer_offers_fails_that_record_naming_value_and_choices(
    cached: Synced,
) -> None:
    cached.zoho.add_custom_field(
        "Leads", api_name="Tier", data_type="picklist", pick_list_values=["Gold", "Silver"]
    )
    _map_company_to(cached, "Tier")
    cached.add_contact(last_name="Lee", email="ann@example.org", company="Gold")
    cached.first_manual_sync()
    cached.zoho.change_field("Leads", "Tier", remove_pick_list_values=["Silver"])
    cached.add_contact(last_name="Ng", email="bo@example.org", company="Silver")

    report = cached.sync()

    [error] = [c for c in report.changes if c.action == "error"]
    assert "'Silver'" in (error.reason or "") and "Tier" in (error.reason or "")
    assert "'Gold'" in (error.reason or "")
    assert _row(cached).paused_reason is None  # a value problem pauses nothing


def test_a_value_map_translates_host_values_to_zoho_and_back(cached: Synced) -> None:
    cached.zoho.add_custom_field(
        "Leads", api_name="Tier", data_type="picklist", pick_list_values=["Gold", "Silver"]
    )
    _map_company_to(cached, "Tier", value_map={"Acme": "Gold", "Initech": "Silver"})
    contact_id = cached.add_contact(last_name="Lee", email="ann@example.org", company="Acme")
    cached.first_manual_sync()
    zoho_id = cached.leads()["ann@example.org"]["id"]
    assert cached.zoho.record("Leads", zoho_id)["Tier"] == "Gold"

    cached.zoho.update_record("Leads", zoho_id, {"Tier": "Silver"})
    report = cached.sync()

    assert report.status == "succeeded", report.message
    assert cached.contacts()["ann@example.org"]["company"] == "Initech"
    cached.edit_contact(contact_id, first_name="Ann")
    assert cached.sync().status == "succeeded"
    assert cached.zoho.record("Leads", zoho_id)["Tier"] == "Silver"  # no flip-flop


def _cli(synced: Synced, *args: str):  # type: ignore[no-untyped-def]
    return synced.host.app.test_cli_runner().invoke(args=["zoho-sync", *args])


def test_the_cli_sets_a_value_map_checked_against_the_picklist_and_lists_it(
    cached: Synced,
) -> None:
    cached.zoho.add_custom_field(
        "Leads", api_name="Tier", data_type="picklist", pick_list_values=["Gold", "Silver"]
    )
    set_map = _cli(cached, "settings", "--map", "company=Tier", "--value-map", "company:Acme=Gold")
    assert set_map.exit_code == 0, set_map.output
    assert "company <-> Tier [values: Acme=Gold]" in set_map.output
    assert _row(cached).value_map == {"Acme": "Gold"}

    refused = _cli(cached, "settings", "--value-map", "company:Initech=Platinum")
    assert refused.exit_code != 0
    assert "has no 'Platinum'; it offers Gold, Silver" in refused.output
    assert _row(cached).value_map == {"Acme": "Gold"}  # nothing changed


def test_a_field_retyped_and_back_stays_paused_until_saved_and_never_blanks_the_host(
    fresh: Synced,
) -> None:
    contact_id, zoho_id = _linked(fresh)
    fresh.zoho.change_field("Leads", ORG_FIELD, data_type="integer")  # Zoho drops "Acme"
    assert fresh.sync().status == "succeeded"
    fresh.zoho.change_field("Leads", ORG_FIELD, data_type="text")  # back, but empty
    fresh.edit_contact(contact_id, first_name="Annie")

    report = fresh.sync()

    assert report.status == "succeeded", report.message
    assert fresh.contacts()["ann@example.org"]["company"] == "Acme"  # not blanked by Zoho
    assert "save the row to resume it" in (_row(fresh).paused_reason or "")
    assert fresh.zoho.record("Leads", zoho_id)[ORG_FIELD] is None

    _map_company_to(fresh, ORG_FIELD)  # the admin saves the row
    resumed = fresh.sync(mode="all")

    assert resumed.status == "succeeded", resumed.message
    assert fresh.contacts()["ann@example.org"]["company"] == "Acme"
    assert fresh.zoho.record("Leads", zoho_id)[ORG_FIELD] == "Acme"
    assert _row(fresh).paused_reason is None


def test_two_fields_refused_together_are_both_paused_and_the_rest_syncs(cached: Synced) -> None:
    cached.zoho.add_custom_field("Leads", api_name="Direct_Line", data_type="text")
    with cached.host.app.app_context():
        session = cached.host.db.session
        set_field_map(session, kind="field", host_key="phone", zoho_field="Direct_Line")
        session.commit()
    contact_id, zoho_id = _linked(cached)
    cached.zoho.delete_field("Leads", ORG_FIELD)
    cached.zoho.delete_field("Leads", "Direct_Line")
    cached.edit_contact(contact_id, first_name="Annie", company="Acme Ltd", phone="555 0100")

    report = cached.sync()

    assert report.status == "succeeded", report.message
    assert report.counts.get("to_zoho.paused_fields") == 2
    _assert_rest_synced_and_company_kept(cached, zoho_id)
    assert cached.contacts()["ann@example.org"]["phone"] == "555 0100"
    problems = " ".join(_problems(cached))
    assert ORG_FIELD in problems and "Direct_Line" in problems


@pytest.mark.parametrize("learnt", ["from the field list", "from a refusal"])
def test_a_pause_is_announced_once_and_its_resume_clears_the_incident(
    database_url: str, redis_client: Any, zoho_sandbox: SandboxHandle, learnt: str
) -> None:
    """The ``mapping_field_paused`` signal (and so one alert) when a run pauses a row, not
    again on the runs after; ``mapping_field_resumed`` when the admin saves the row again
    (here with the CLI's --map), which clears the incident."""
    max_age = 0 if learnt == "from the field list" else 3600
    built = _with_org_field(database_url, zoho_sandbox, ZOHO_SYNC_FIELDS_MAX_AGE=max_age)
    synced = next(built)
    paused: list[dict[str, Any]] = []
    resumed: list[dict[str, Any]] = []

    def on_paused(sender: Any, **details: Any) -> None:
        paused.append(details)

    def on_resumed(sender: Any, **details: Any) -> None:
        resumed.append(details)

    try:
        with (
            signals.mapping_field_paused.connected_to(on_paused),
            signals.mapping_field_resumed.connected_to(on_resumed),
        ):
            contact_id, _zoho_id = _linked(synced)
            synced.zoho.delete_field("Leads", ORG_FIELD)
            _edit_both(synced, contact_id)
            assert synced.sync().status == "succeeded"
            synced.edit_contact(contact_id, company="Acme Group")
            assert synced.sync().status == "succeeded"
            assert [(p["module"], p["zoho_field"], p["host_field"]) for p in paused] == [
                ("Leads", ORG_FIELD, "company")
            ]
            with synced.host.app.app_context():
                assert [i.subject for i in open_incidents(synced.host.db.session)] == [
                    f"Leads.{ORG_FIELD}"
                ]
            synced.zoho.add_custom_field("Leads", api_name=ORG_FIELD, data_type="text")
            result = synced.host.app.test_cli_runner().invoke(
                args=["zoho-sync", "settings", "--map", f"company={ORG_FIELD}"]
            )
            assert result.exit_code == 0, result.output
            assert [r["zoho_field"] for r in resumed] == [ORG_FIELD]
            with synced.host.app.app_context():
                assert open_incidents(synced.host.db.session) == []
    finally:
        next(built, None)
