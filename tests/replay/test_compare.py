"""The comparison the sandbox replay relies on finds the differences a client would hit."""

from __future__ import annotations

from .compare import differences, json_type

ZOHO_FIELD = {"api_name": "Fax", "data_type": "text", "length": 30, "lookup": {}, "profiles": []}


def test_a_missing_key_and_a_wrong_type_are_both_reported() -> None:
    answer = {"api_name": "Fax", "data_type": "text", "length": "30", "lookup": {}}

    assert differences(ZOHO_FIELD, answer) == [
        "$.length: string where Zoho sends number",
        "$.profiles: missing",
    ]


def test_null_for_a_value_zoho_always_sends_is_a_difference_outside_record_data() -> None:
    answer = {**ZOHO_FIELD, "lookup": None}

    assert differences(ZOHO_FIELD, answer) == ["$.lookup: null where Zoho sends object"]
    assert differences({"data": [{"Email": "a@b.c"}]}, {"data": [{"Email": None}]}) == [
        "$.data[0].Email: null where Zoho sends string"
    ]
    assert (
        differences({"data": [{"Email": "a@b.c"}]}, {"data": [{"Email": None}]}, values_vary=True)
        == []
    )


def test_org_specific_keys_are_skipped_wherever_they_appear() -> None:
    recorded = {"data": [{"Lead_Class": "S", "Owner": {"Lead_Class": 1}}]}

    assert differences(recorded, {"data": [{"Owner": {}}]}, skip={"Lead_Class"}) == []


def test_held_values_must_match_and_nullable_keys_may_be_null() -> None:
    recorded = {"code": "INVALID_TOKEN", "next_page_token": "abc", "message": "x"}
    answer = {"code": "AUTHENTICATION_FAILURE", "next_page_token": None, "message": "y"}

    assert differences(recorded, answer, same_values={"code"}, nullable={"next_page_token"}) == [
        "$.code: 'AUTHENTICATION_FAILURE' where Zoho sends 'INVALID_TOKEN'"
    ]


def test_extra_keys_and_numbers_of_either_kind_are_accepted() -> None:
    assert differences({"count": 1}, {"count": 1.0, "new_key": True}) == []
    assert json_type(True) == "boolean" and json_type(0) == "number"
