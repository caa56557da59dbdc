"""The Zoho client's whole behaviour against the sandbox, over real HTTP on loopback."""

from __future__ import annotations

from datetime import timedelta

import pytest

from flask_zoho_sync.zoho.client import ZohoClient
from flask_zoho_sync.zoho.errors import ZohoRateLimited, ZohoReconnectRequired
from flask_zoho_sync.zoho.timefmt import parse_datetime


def test_org_user_and_fields_after_connecting(
    zoho_sandbox, zoho_sandbox_client: ZohoClient
) -> None:
    zoho_sandbox.set_org(time_zone="Australia/Sydney")
    assert zoho_sandbox_client.org()["time_zone"] == "Australia/Sydney"
    assert zoho_sandbox_client.current_user()["email"]
    names = {field["api_name"] for field in zoho_sandbox_client.fields("Contacts")}
    assert {"Last_Name", "Email", "Mailing_Zip", "Account_Name"} <= names


def test_a_listing_of_2500_records_crosses_the_page_token_wall(
    zoho_sandbox, zoho_sandbox_client: ZohoClient
) -> None:
    zoho_sandbox.generate_records("Leads", 2500)
    ids = [r["id"] for r in zoho_sandbox_client.iter_records("Leads", ["Last_Name", "Email"])]
    assert len(ids) == len(set(ids)) == 2500
    stats = zoho_sandbox.stats()
    assert stats["calls"]["GET /Leads"] == 13
    assert zoho_sandbox_client.meter.snapshot()["calls"]["GET /Leads"] == 13


def test_if_modified_since_in_a_non_utc_org_returns_only_later_changes(
    zoho_sandbox, zoho_sandbox_client: ZohoClient
) -> None:
    zoho_sandbox.set_org(time_zone="Australia/Sydney")
    old = zoho_sandbox.create_record("Leads", {"Last_Name": "Old"})
    zoho_sandbox.advance_clock(3600)
    new = zoho_sandbox.create_record("Leads", {"Last_Name": "New"})
    cutoff = parse_datetime(new["Modified_Time"]) - timedelta(minutes=1)
    seen = list(zoho_sandbox_client.iter_records("Leads", ["Last_Name"], modified_since=cutoff))
    assert [r["id"] for r in seen] == [new["id"]]
    assert new["Modified_Time"].endswith(("+10:00", "+11:00"))
    later = parse_datetime(new["Modified_Time"]) + timedelta(seconds=1)
    assert (
        list(zoho_sandbox_client.iter_records("Leads", ["Last_Name"], modified_since=later)) == []
    )
    assert old["id"] != new["id"]


def test_a_mixed_batch_keeps_the_good_records(
    zoho_sandbox, zoho_sandbox_client: ZohoClient
) -> None:
    results = zoho_sandbox_client.upsert(
        "Leads",
        [
            {"Last_Name": "Good", "Email": "good@example.org"},
            {"First_Name": "No last name"},
            {"Last_Name": "Also good", "Email": "also@example.org"},
        ],
    )
    assert [r.ok for r in results] == [True, False, True]
    assert results[1].code == "MANDATORY_NOT_FOUND"
    assert len(zoho_sandbox.records("Leads")) == 2


def test_deletes_go_to_the_recycle_bin_and_are_listed(
    zoho_sandbox, zoho_sandbox_client: ZohoClient
) -> None:
    created = zoho_sandbox_client.insert("Leads", [{"Last_Name": "Gone"}])
    [result] = zoho_sandbox_client.delete("Leads", [created[0].record_id])
    assert result.ok
    deleted = list(zoho_sandbox_client.iter_deleted("Leads"))
    assert [entry.id for entry in deleted] == [created[0].record_id]


def test_a_429_is_retried_and_then_succeeds(zoho_sandbox, zoho_sandbox_client: ZohoClient) -> None:
    zoho_sandbox_client.org()  # connect first, so the fault hits the records call
    zoho_sandbox.faults(fail_next=[{"status": 429, "path_contains": "/Leads"}])
    results = zoho_sandbox_client.upsert("Leads", [{"Last_Name": "Patient"}])
    assert results[0].ok
    assert zoho_sandbox.stats()["status_codes"].get("429", 0) >= 1


def test_a_429_storm_ends_in_a_clear_retry_later_error(
    zoho_sandbox, zoho_sandbox_client: ZohoClient
) -> None:
    zoho_sandbox_client.org()
    zoho_sandbox.faults(rate_429=1.0)
    with pytest.raises(ZohoRateLimited, match="will retry later"):
        zoho_sandbox_client.fields("Leads")


def test_an_expired_access_token_is_refreshed_once(
    zoho_sandbox, zoho_sandbox_client: ZohoClient
) -> None:
    zoho_sandbox_client.org()
    zoho_sandbox.faults(expire_access_tokens=True)
    assert zoho_sandbox_client.org()["id"]
    assert zoho_sandbox.stats()["calls"]["POST /oauth/v2/token"] == 2


def test_a_revoked_connection_asks_to_reconnect(
    zoho_sandbox, zoho_sandbox_client: ZohoClient
) -> None:
    zoho_sandbox_client.org()
    zoho_sandbox.faults(revoke_all_tokens=True)
    with pytest.raises(ZohoReconnectRequired):
        zoho_sandbox_client.org()


def test_search_in_finds_records_by_several_fields_in_one_call(
    zoho_sandbox, zoho_sandbox_client: ZohoClient
) -> None:
    """The merge follower's lookup: emails and Contact Ids together, values with the
    criteria's special characters escaped, one call for all of them."""
    zoho_sandbox.add_custom_field("Leads", api_name="Contact_Id", data_type="text", unique=True)
    by_email = zoho_sandbox.create_record("Leads", {"Last_Name": "A", "Email": "a(1)@example.org"})
    by_id = zoho_sandbox.create_record("Leads", {"Last_Name": "B", "Contact_Id": "7,8"})
    zoho_sandbox.create_record("Leads", {"Last_Name": "C", "Email": "c@example.org"})
    before = zoho_sandbox.stats()["calls"].get("GET /Leads/search", 0)
    found = zoho_sandbox_client.search_in(
        "Leads",
        {"Email": ["A(1)@example.org", "nobody@example.org"], "Contact_Id": ["7,8"]},
        ["Last_Name", "Email", "Contact_Id"],
    )
    assert {record["id"] for record in found} == {by_email["id"], by_id["id"]}
    assert zoho_sandbox.stats()["calls"]["GET /Leads/search"] == before + 1
    assert zoho_sandbox_client.search_in("Leads", {"Email": ["x@example.org"]}, ["Email"]) == []
