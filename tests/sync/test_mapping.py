"""The mapping as a whole: defaults per module, validation, and the canonical conversions."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest

from flask_zoho_sync.sync import (
    ConflictPolicy,
    Direction,
    FieldMapping,
    GroupMapping,
    HostField,
    Mapping,
    SystemFieldMapping,
    default_field_mappings,
)
from flask_zoho_sync.sync.coercion import comparable
from tests.sync.conftest import HOST_FIELDS, LEADS_METADATA, SYDNEY, build_mapping

STANDARD_HOST_FIELDS = [field.name for field in HOST_FIELDS]


def pairs(mappings: list[FieldMapping]) -> dict[str, tuple[str, Direction]]:
    return {item.host_field: (item.zoho_field, item.direction) for item in mappings}


# --- defaults -------------------------------------------------------------------------------


def test_leads_defaults_use_the_leads_names() -> None:
    leads = pairs(default_field_mappings("Leads", STANDARD_HOST_FIELDS))
    assert leads["postcode"] == ("Zip_Code", Direction.BOTH)
    assert leads["company"] == ("Company", Direction.BOTH)
    assert leads["job_title"] == ("Designation", Direction.BOTH)
    assert leads["street"] == ("Street", Direction.BOTH)
    assert leads["website"] == ("Website", Direction.BOTH)
    assert len(leads) == 14


def test_contacts_defaults_use_mailing_fields_and_read_the_account_name() -> None:
    contacts = pairs(default_field_mappings("Contacts", STANDARD_HOST_FIELDS))
    assert contacts["postcode"] == ("Mailing_Zip", Direction.BOTH)
    assert contacts["company"] == ("Account_Name", Direction.TO_HOST)
    assert contacts["job_title"] == ("Title", Direction.BOTH)
    assert contacts["street"] == ("Mailing_Street", Direction.BOTH)
    assert "website" not in contacts  # Contacts have no standard Website field


def test_defaults_only_cover_host_fields_that_exist() -> None:
    assert pairs(default_field_mappings("Leads", ["email", "nickname"])) == {
        "email": ("Email", Direction.BOTH)
    }


def test_defaults_refuse_an_unknown_module() -> None:
    with pytest.raises(ValueError, match="Leads, Contacts"):
        default_field_mappings("Deals", STANDARD_HOST_FIELDS)  # type: ignore[arg-type]


def test_the_default_mappings_are_valid_for_their_module(
    leads_mapping: Mapping, contacts_mapping: Mapping
) -> None:
    assert leads_mapping.problems() == []
    assert contacts_mapping.problems() == []


# --- problems -------------------------------------------------------------------------------


def test_a_zoho_field_mapped_twice_is_a_problem_and_only_the_first_is_synced() -> None:
    mapping = build_mapping(
        "Leads",
        fields=[FieldMapping("first_name", "First_Name"), FieldMapping("company", "First_Name")],
    )
    [problem] = mapping.problems()
    assert "First_Name is already mapped by field:first_name" in problem
    assert mapping.sync_keys() == ["field:first_name"]


def test_unknown_host_and_zoho_fields_are_problems() -> None:
    mapping = build_mapping(
        "Leads",
        fields=[FieldMapping("nickname", "First_Name"), FieldMapping("email", "Emial")],
    )
    problems = mapping.problems()
    assert any("unknown host field" in problem for problem in problems)
    assert any("no field Emial (unknown Zoho field)" in problem for problem in problems)
    assert mapping.sync_keys() == []


def test_an_incompatible_pair_is_a_problem_with_the_pairs_reason() -> None:
    mapping = build_mapping("Leads", fields=[FieldMapping("last_visit", "Member_Since")])
    [problem] = mapping.problems()
    assert problem.startswith("host field 'last_visit' -> Member_Since: ")
    assert "time of day" in problem


@pytest.mark.parametrize(
    ("module", "zoho_field", "hint"),
    [
        ("Contacts", "Zip_Code", "Zip_Code is a Leads field; in Contacts use Mailing_Zip"),
        ("Contacts", "Website", "Website is a Leads field; Contacts has no such standard field"),
        ("Leads", "Mailing_Zip", "Mailing_Zip is a Contacts field; in Leads use Zip_Code"),
        ("Leads", "Title", "Title is a Contacts field; in Leads use Designation"),
    ],
)
def test_a_field_of_the_other_module_is_a_problem_with_a_hint(
    module: str, zoho_field: str, hint: str
) -> None:
    mapping = build_mapping(module, fields=[FieldMapping("postcode", zoho_field)])
    [problem] = mapping.problems()
    assert hint in problem


def test_fields_cannot_be_checked_before_zoho_metadata_is_loaded() -> None:
    mapping = build_mapping("Leads", zoho_fields=[], fields=[FieldMapping("email", "Email")])
    assert "fields are not loaded" in mapping.problems()[0]


def test_a_group_must_map_to_a_checkbox() -> None:
    mapping = build_mapping("Leads", fields=[], groups=[GroupMapping("vip", "First_Name")])
    [problem] = mapping.problems()
    assert problem.startswith("group 'vip' -> First_Name")


def test_more_than_fifty_pulled_fields_is_a_problem() -> None:
    metadata = [
        *LEADS_METADATA,
        *({"api_name": f"Flag_{n}", "data_type": "boolean"} for n in range(50)),
    ]
    groups = [GroupMapping(f"g{n}", f"Flag_{n}") for n in range(50)]
    mapping = build_mapping("Leads", zoho_fields=metadata, groups=groups)
    assert any("at most 50 per call" in problem for problem in mapping.problems())


def test_lossy_pairs_are_listed_as_warnings_not_problems() -> None:
    mapping = build_mapping("Leads", fields=[FieldMapping("description", "First_Name")])
    assert mapping.problems() == []
    [warning] = mapping.warnings()
    assert "longer than 40 characters" in warning


def test_a_field_without_its_own_policy_follows_the_default_policy() -> None:
    mapping = build_mapping(
        "Leads",
        fields=[
            FieldMapping("email", "Email"),
            FieldMapping("phone", "Phone", policy=ConflictPolicy.ZOHO_WINS),
        ],
        default_policy=ConflictPolicy.HOST_WINS,
    )
    assert mapping.binding("field:email").policy is ConflictPolicy.HOST_WINS
    assert mapping.binding("field:phone").policy is ConflictPolicy.ZOHO_WINS


def test_directions_and_policies_may_be_given_as_stored_strings() -> None:
    item = FieldMapping("email", "Email", direction="to_zoho", policy="zoho_wins")  # type: ignore[arg-type]
    assert (item.direction, item.policy) == (Direction.TO_ZOHO, ConflictPolicy.ZOHO_WINS)


# --- system fields and what the pull asks for ----------------------------------------------------


def test_a_unique_contact_id_field_is_the_upsert_duplicate_check() -> None:
    mapping = build_mapping("Leads", system=[SystemFieldMapping("contact_id", "Host_Contact_Id")])
    assert mapping.duplicate_check_fields() == ["Host_Contact_Id"]


def test_without_a_unique_contact_id_field_email_is_the_duplicate_check() -> None:
    metadata = [
        {**meta, "unique": {}} if meta["api_name"] == "Host_Contact_Id" else meta
        for meta in LEADS_METADATA
    ]
    mapping = build_mapping(
        "Leads",
        zoho_fields=metadata,
        system=[SystemFieldMapping("contact_id", "Host_Contact_Id")],
    )
    assert mapping.duplicate_check_fields() == ["Email"]
    assert build_mapping("Leads").duplicate_check_fields() == ["Email"]


def test_contact_id_and_url_only_flow_to_zoho() -> None:
    mapping = build_mapping(
        "Leads",
        system=[
            SystemFieldMapping("contact_id", "Host_Contact_Id"),
            SystemFieldMapping("contact_url", "Host_Contact_URL"),
        ],
    )
    assert mapping.binding("system:contact_id").direction is Direction.TO_ZOHO
    canonical = mapping.host_to_canonical(
        {}, contact_id=42, contact_url="https://host.example/contacts/42"
    )
    assert mapping.canonical_to_zoho(canonical) == {
        "Host_Contact_Id": "42",
        "Host_Contact_URL": "https://host.example/contacts/42",
    }
    assert not mapping.canonical_to_host(canonical)


def test_the_pull_requests_mapped_fields_and_the_ones_the_engine_needs() -> None:
    mapping = build_mapping(
        "Leads",
        fields=[FieldMapping("first_name", "First_Name")],
        system=[SystemFieldMapping("subscription", "Email_Opt_Out", inverted=True)],
    )
    assert mapping.zoho_api_names() == [
        "First_Name",
        "Email_Opt_Out",
        "Email",
        "Last_Name",
        "Modified_Time",
    ]


# --- canonical conversions --------------------------------------------------------------------


def test_host_and_zoho_values_meet_in_one_canonical_shape(leads_mapping: Mapping) -> None:
    host = leads_mapping.host_to_canonical(
        {
            "email": "Ada@Example.com ",
            "score": Decimal("7.5"),
            "last_visit": datetime(2026, 4, 6, 9, 0),
            "member_since": date(2026, 1, 2),
            "interests": ["Tennis", "Golf"],
        }
    )
    zoho = leads_mapping.zoho_to_canonical(
        {
            "Email": "Ada@Example.com",
            "Score": 7.5,
            "Last_Visit": "2026-04-05T23:00:00+00:00",
            "Member_Since": "2026-01-02",
            "Interests": ["Golf", "Tennis"],
        }
    )
    assert (
        host
        == zoho
        == {
            "field:email": "Ada@Example.com",
            "field:score": "7.50",
            "field:last_visit": "2026-04-05T23:00:00+00:00",
            "field:member_since": "2026-01-02",
            "field:interests": ["Golf", "Tennis"],
        }
    )


def test_fields_a_side_did_not_report_are_left_out_of_its_canonical_view(
    leads_mapping: Mapping,
) -> None:
    assert leads_mapping.host_to_canonical({"email": None}) == {"field:email": None}
    assert leads_mapping.zoho_to_canonical({"id": "1", "Email": None}) == {"field:email": None}


def test_canonical_changes_become_a_zoho_payload_and_host_changes(
    leads_mapping: Mapping,
) -> None:
    changes = {"field:last_visit": "2026-04-05T23:00:00+00:00", "field:score": "7.50"}
    assert leads_mapping.canonical_to_zoho(changes) == {
        "Last_Visit": "2026-04-06T09:00:00+10:00",
        "Score": 7.5,
    }
    host = leads_mapping.canonical_to_host(changes)
    assert host.fields == {"last_visit": datetime(2026, 4, 6, 9, 0), "score": Decimal("7.50")}


def test_a_read_only_lookup_reaches_the_host_but_never_zoho(contacts_mapping: Mapping) -> None:
    canonical = contacts_mapping.zoho_to_canonical(
        {"Account_Name": {"name": "Acme Pty Ltd", "id": "4150868000000224005"}}
    )
    assert canonical == {"field:company": "Acme Pty Ltd"}
    assert contacts_mapping.canonical_to_host(canonical).fields == {"company": "Acme Pty Ltd"}
    assert contacts_mapping.canonical_to_zoho({"field:company": "Other Ltd"}) == {}


def test_a_one_way_to_zoho_field_is_never_written_to_the_host() -> None:
    mapping = build_mapping(
        "Leads", fields=[FieldMapping("phone", "Phone", direction=Direction.TO_ZOHO)]
    )
    assert mapping.canonical_to_host({"field:phone": "123"}).fields == {}
    assert mapping.canonical_to_zoho({"field:phone": "123"}) == {"Phone": "123"}


# --- groups and subscription ------------------------------------------------------------------


def test_group_membership_becomes_zoho_checkboxes_and_back() -> None:
    mapping = build_mapping(
        "Leads",
        fields=[],
        groups=[GroupMapping("newsletter", "Newsletter"), GroupMapping("members", "Members_Only")],
    )
    canonical = mapping.host_to_canonical({}, groups={"newsletter", "staff"})
    assert canonical == {"group:newsletter": True, "group:members": False}
    assert mapping.canonical_to_zoho(canonical) == {"Newsletter": True, "Members_Only": False}
    from_zoho = mapping.zoho_to_canonical({"Newsletter": False, "Members_Only": None})
    assert from_zoho == {"group:newsletter": False, "group:members": False}
    changes = mapping.canonical_to_host({"group:newsletter": False, "group:members": True})
    assert changes.groups_add == {"members"}
    assert changes.groups_remove == {"newsletter"}


def test_subscription_maps_inverted_to_email_opt_out() -> None:
    mapping = build_mapping(
        "Leads",
        fields=[],
        system=[SystemFieldMapping("subscription", "Email_Opt_Out", inverted=True)],
    )
    assert mapping.host_to_canonical({}, subscribed=False) == {"system:subscription": False}
    assert mapping.canonical_to_zoho({"system:subscription": False}) == {"Email_Opt_Out": True}
    assert mapping.canonical_to_zoho({"system:subscription": True}) == {"Email_Opt_Out": False}
    assert mapping.zoho_to_canonical({"Email_Opt_Out": True}) == {"system:subscription": False}
    assert mapping.zoho_to_canonical({"Email_Opt_Out": None}) == {"system:subscription": True}
    assert mapping.canonical_to_host({"system:subscription": False}).subscribed is False


def test_an_unknown_subscription_status_is_not_sent() -> None:
    mapping = build_mapping(
        "Leads", fields=[], system=[SystemFieldMapping("subscription", "Newsletter")]
    )
    assert mapping.host_to_canonical({}, subscribed=None) == {}
    assert mapping.canonical_to_zoho({"system:subscription": None}) == {}


def test_only_a_checkbox_can_be_inverted() -> None:
    mapping = build_mapping(
        "Leads",
        fields=[],
        system=[SystemFieldMapping("subscription", "First_Name", inverted=True)],
    )
    assert "only a Zoho checkbox" in mapping.problems()[0]


# --- outgoing fallbacks ------------------------------------------------------------------------


def test_a_create_without_a_last_name_takes_the_emails_local_part(leads_mapping: Mapping) -> None:
    payload, warnings, errors = leads_mapping.prepare_outgoing(
        {"Email": "jane.doe@example.com", "Last_Name": None}, is_create=True
    )
    assert payload["Last_Name"] == "jane.doe"
    assert errors == []
    assert "Last_Name" in warnings[0] and "'jane.doe'" in warnings[0]


def test_a_create_without_name_or_email_is_filed_under_unknown(leads_mapping: Mapping) -> None:
    payload, warnings, _ = leads_mapping.prepare_outgoing({"Phone": "123"}, is_create=True)
    assert payload["Last_Name"] == "Unknown"
    assert warnings


def test_an_update_blanking_the_last_name_uses_the_contacts_email(
    leads_mapping: Mapping,
) -> None:
    payload, _, _ = leads_mapping.prepare_outgoing(
        {"Last_Name": " "}, is_create=False, fallback_email="sam@example.com"
    )
    assert payload["Last_Name"] == "sam"


def test_an_update_that_does_not_touch_the_last_name_leaves_it_alone(
    leads_mapping: Mapping,
) -> None:
    payload, warnings, errors = leads_mapping.prepare_outgoing({"Phone": "1"}, is_create=False)
    assert payload == {"Phone": "1"}
    assert (warnings, errors) == ([], [])


def test_outgoing_text_is_cut_with_a_warning(leads_mapping: Mapping) -> None:
    payload, warnings, errors = leads_mapping.prepare_outgoing(
        {"Last_Name": "Smith", "City": "y" * 120}, is_create=True
    )
    assert payload["City"] == "y" * 100
    assert warnings == ["City: value cut from 120 to 100 characters to fit Zoho"]
    assert errors == []


def test_impossible_values_are_per_record_errors_not_exceptions(leads_mapping: Mapping) -> None:
    _, _, errors = leads_mapping.prepare_outgoing(
        {
            "Last_Name": "Smith",
            "Email": "not-an-email",
            "Tier": "Bronze",
            "Modified_Time": "2026-01-01T00:00:00+00:00",
        },
        is_create=False,
    )
    assert len(errors) == 3
    assert any(error.startswith("Email: ") for error in errors)
    assert any(error.startswith("Tier: ") for error in errors)
    assert any("Modified_Time: Zoho does not let the API write" in error for error in errors)


# --- equality -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "a", "b"),
    [
        ("field:first_name", None, ""),
        ("field:first_name", " Ada ", "Ada"),
        ("field:email", "ADA@example.com", "ada@EXAMPLE.com"),
        ("field:score", "7.5", "7.50"),
        ("field:score", Decimal("7.499"), 7.5),
        ("field:last_visit", "2026-04-05T23:00:00+00:00", "2026-04-06T09:00:00.400+10:00"),
        ("field:last_visit", datetime(2026, 4, 6, 9, 0), "2026-04-05T23:00:00+00:00"),
        ("field:interests", ["Golf", "Tennis"], ["Tennis", "Golf"]),
        ("field:member_since", date(2026, 1, 2), "2026-01-02"),
    ],
)
def test_values_that_only_differ_in_form_are_equal(
    leads_mapping: Mapping, key: str, a: object, b: object
) -> None:
    assert leads_mapping.values_equal(key, a, b)


@pytest.mark.parametrize(
    ("key", "a", "b"),
    [
        ("field:first_name", "Ada", "Eda"),
        ("field:first_name", None, "Ada"),
        ("field:score", "7.5", "7.51"),
        ("field:last_visit", "2026-04-05T23:00:00+00:00", "2026-04-05T23:00:01+00:00"),
        ("field:interests", ["Golf"], ["Golf", "Tennis"]),
    ],
)
def test_values_that_differ_are_not_equal(
    leads_mapping: Mapping, key: str, a: object, b: object
) -> None:
    assert not leads_mapping.values_equal(key, a, b)


@pytest.mark.parametrize(
    "text",
    ["", "   ", "-None-", " -None- ", "Ada", " Ada ", "x", "\t\n", "ADA@EXAMPLE.COM", "s" * 300],
)
def test_text_against_a_blank_is_equal_exactly_when_the_text_is_blank(
    leads_mapping: Mapping, text: str
) -> None:
    # values_equal answers text against None without reducing the text (an import asks it
    # of every value); the answer must be the one comparing the reduced values gives.
    for key in ("field:first_name", "field:email", "field:phone", "field:website"):
        binding = leads_mapping.binding(key)
        reduced = comparable(text, binding.host, binding.zoho, leads_mapping.zone)
        blank = comparable(None, binding.host, binding.zoho, leads_mapping.zone)
        assert leads_mapping.values_equal(key, None, text) is (reduced == blank), key
        assert leads_mapping.values_equal(key, text, None) is (reduced == blank), key


def test_text_beyond_what_zoho_can_hold_is_not_a_difference() -> None:
    # The host keeps 300 characters; Zoho got the first 250. That is not a Zoho-side edit.
    mapping = build_mapping("Leads", fields=[FieldMapping("street", "Street")])
    assert mapping.values_equal("field:street", "s" * 300, "s" * 250)
    assert not mapping.values_equal("field:street", "s" * 249, "s" * 250)


def test_a_blank_checkbox_equals_false_but_an_unknown_subscription_does_not() -> None:
    mapping = build_mapping(
        "Leads",
        fields=[],
        groups=[GroupMapping("newsletter", "Newsletter")],
        system=[SystemFieldMapping("subscription", "Email_Opt_Out", inverted=True)],
    )
    assert mapping.values_equal("group:newsletter", None, False)
    assert not mapping.values_equal("system:subscription", None, False)


def test_host_field_types_are_described_for_conversions() -> None:
    naive = HostField("seen", "datetime")
    assert naive.label == "Seen" and not naive.datetime_aware
    mapping = Mapping(
        module="Leads",
        zone=SYDNEY,
        fields=[FieldMapping("seen", "Last_Visit")],
        host_fields=[naive],
        zoho_fields=LEADS_METADATA,
    )
    assert mapping.problems() == []


def test_an_outgoing_datetime_without_an_offset_is_a_per_record_error(
    leads_mapping: Mapping,
) -> None:
    _, _, errors = leads_mapping.prepare_outgoing(
        {"Last_Name": "Smith", "Last_Visit": "2026-01-15T10:00:00"}, is_create=True
    )
    assert errors and errors[0].startswith("Last_Visit: ") and "offset" in errors[0]
