"""Field descriptions and which host/Zoho pairs the mapping editor accepts, with its reasons."""

from __future__ import annotations

import pytest

from flask_zoho_sync.sync import Direction, HostField, ZohoField, check_pair
from tests.sync.conftest import CONTACTS_METADATA, LEADS_METADATA, READ_ONLY, zoho_meta

LEADS = {meta["api_name"]: ZohoField.from_metadata(meta) for meta in LEADS_METADATA}
CONTACTS = {meta["api_name"]: ZohoField.from_metadata(meta) for meta in CONTACTS_METADATA}


# --- reading Zoho's metadata ----------------------------------------------------------------


def test_field_metadata_is_read_from_the_settings_fields_element() -> None:
    email = LEADS["Email"]
    assert (email.api_name, email.label, email.data_type, email.json_type) == (
        "Email",
        "Email",
        "email",
        "string",
    )
    assert email.length == 100
    assert email.unique and email.writable and not email.custom


def test_last_name_is_system_mandatory_and_custom_fields_are_flagged() -> None:
    assert LEADS["Last_Name"].system_mandatory
    assert LEADS["Host_Contact_Id"].custom and LEADS["Host_Contact_Id"].unique


def test_an_empty_unique_object_does_not_make_a_field_unique() -> None:
    assert not LEADS["Phone"].unique


def test_operation_type_decides_writability_even_when_read_only_flags_disagree() -> None:
    # Reference §3.1: Owner has field_read_only true but the API may write it.
    assert LEADS["Owner"].writable
    assert not LEADS["Modified_Time"].writable


def test_read_only_flags_are_the_fallback_when_operation_type_is_absent() -> None:
    meta = zoho_meta("Locked", "text", 10, read_only=True)
    del meta["operation_type"]
    assert not ZohoField.from_metadata(meta).writable
    meta = zoho_meta("Open", "text", 10)
    del meta["operation_type"]
    assert ZohoField.from_metadata(meta).writable


def test_create_only_fields_are_not_writable_by_a_two_way_sync() -> None:
    meta = zoho_meta("Source_Ref", "text", 10, operation_type={**READ_ONLY, "api_create": True})
    field = ZohoField.from_metadata(meta)
    assert field.creatable and not field.updatable and not field.writable


def test_picklist_values_and_lookup_module_are_kept() -> None:
    assert LEADS["Tier"].picklist_values == ("-None-", "Gold", "Silver")
    assert CONTACTS["Account_Name"].lookup_module == "Accounts"
    assert LEADS["Score"].decimal_places == 2


def test_host_field_refuses_an_unknown_type() -> None:
    with pytest.raises(ValueError, match="expected one of"):
        HostField("age", "number")  # type: ignore[arg-type]


# --- pairs that are accepted ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "zoho"),
    [
        (HostField("first_name", "text", max_length=40), "First_Name"),
        (HostField("description", "text", max_length=32000), "Description"),
        (HostField("email", "email", max_length=100), "Email"),
        (HostField("phone", "phone", max_length=30), "Phone"),
        (HostField("website", "url", max_length=255), "Website"),
        (HostField("visits", "integer"), "Visits"),
        (HostField("visits", "integer"), "Big_Number"),
        (HostField("score", "decimal"), "Score"),
        (HostField("score", "decimal"), "Annual_Revenue"),
        (HostField("vip", "boolean"), "Newsletter"),
        (HostField("member_since", "date"), "Member_Since"),
        (HostField("last_visit", "datetime"), "Last_Visit"),
        (HostField("tier", "choice", choices=("Gold", "Silver")), "Tier"),
        (HostField("interests", "multichoice", choices=("Golf", "Tennis", "Chess")), "Interests"),
    ],
)
def test_pairs_that_round_trip_are_accepted_both_ways(host: HostField, zoho: str) -> None:
    verdict = check_pair(host, LEADS[zoho], Direction.BOTH)
    assert verdict.ok and not verdict.lossy, verdict.reason


def test_a_lookup_is_readable_into_host_text() -> None:
    verdict = check_pair(HostField("company", "text"), CONTACTS["Account_Name"], Direction.TO_HOST)
    assert verdict.ok


def test_a_read_only_zoho_field_may_be_read_into_the_host() -> None:
    verdict = check_pair(HostField("seen", "datetime"), LEADS["Modified_Time"], Direction.TO_HOST)
    assert verdict.ok


def test_a_zoho_whole_number_may_be_read_into_a_host_decimal() -> None:
    assert check_pair(HostField("score", "decimal"), LEADS["Visits"], Direction.TO_HOST).ok


# --- pairs that are allowed with a warning -------------------------------------------------------


def test_text_longer_than_zoho_allows_is_accepted_with_a_truncation_warning() -> None:
    verdict = check_pair(HostField("notes", "text"), LEADS["First_Name"], Direction.BOTH)
    assert verdict.ok and verdict.lossy
    assert "longer than 40 characters" in verdict.reason and "cut" in verdict.reason


def test_zoho_picklist_values_the_host_lacks_are_a_warning_when_reading() -> None:
    host = HostField("tier", "choice", choices=("Gold", "Silver", "Bronze"))
    field = ZohoField.from_metadata(
        zoho_meta("Tier", "picklist", 120, pick_list_values=[{"actual_value": "Platinum"}])
    )
    verdict = check_pair(host, field, Direction.TO_HOST)
    assert verdict.ok and verdict.lossy and "'Platinum'" in verdict.reason


def test_a_zoho_decimal_read_into_a_host_integer_warns_about_fractions() -> None:
    verdict = check_pair(HostField("visits", "integer"), LEADS["Score"], Direction.BOTH)
    assert verdict.ok and verdict.lossy and "fraction" in verdict.reason


# --- pairs that are refused, each with its reason ---------------------------------------------


def refusal(host: HostField, zoho: ZohoField, direction: Direction = Direction.BOTH) -> str:
    verdict = check_pair(host, zoho, direction)
    assert not verdict.ok
    assert verdict.reason
    return verdict.reason


def test_a_host_datetime_in_a_zoho_date_is_refused_because_the_time_is_lost() -> None:
    reason = refusal(HostField("last_visit", "datetime"), LEADS["Member_Since"])
    assert "time of day" in reason and "Member_Since" in reason


def test_a_host_date_in_a_zoho_datetime_is_refused() -> None:
    reason = refusal(HostField("member_since", "date"), LEADS["Last_Visit"])
    assert "only a date" in reason


def test_host_text_in_a_zoho_number_is_refused() -> None:
    reason = refusal(HostField("notes", "text"), LEADS["Visits"])
    assert "cannot be stored" in reason and "integer" in reason


def test_a_host_decimal_written_to_a_zoho_integer_is_refused_as_it_drops_the_fraction() -> None:
    reason = refusal(HostField("score", "decimal"), LEADS["Visits"], Direction.TO_ZOHO)
    assert "fraction" in reason


def test_writing_a_field_zoho_keeps_read_only_is_refused() -> None:
    reason = refusal(HostField("seen", "datetime"), LEADS["Modified_Time"], Direction.BOTH)
    assert "does not let the API write Modified_Time" in reason and "'to host'" in reason


def test_writing_a_lookup_is_refused_even_though_the_field_is_writable() -> None:
    reason = refusal(HostField("company", "text"), CONTACTS["Account_Name"], Direction.BOTH)
    assert "links to another record" in reason and "'to host'" in reason


@pytest.mark.parametrize("api_name", ["Lifetime_Value", "Serial", "Attachments"])
def test_computed_and_structured_zoho_fields_are_refused(api_name: str) -> None:
    reason = refusal(HostField("x", "text"), LEADS[api_name], Direction.TO_HOST)
    assert "cannot be synced" in reason


def test_a_tag_list_field_is_refused_although_its_data_type_is_text() -> None:
    assert "list" in refusal(HostField("tags", "text"), LEADS["Tag"], Direction.TO_HOST)


def test_host_choices_missing_from_the_zoho_picklist_are_refused_when_writing_zoho() -> None:
    host = HostField("tier", "choice", choices=("Gold", "Silver", "Bronze"))
    reason = refusal(host, LEADS["Tier"])
    assert "'Bronze'" in reason and "picklist" in reason


def test_a_boolean_pairs_only_with_a_checkbox() -> None:
    assert "cannot be stored" in refusal(HostField("vip", "boolean"), LEADS["First_Name"])
