"""ZOHO_SYNC_ON_LEAD_CONVERSION: its default, its values, and the error for anything else."""

from __future__ import annotations

import pytest

from flask_zoho_sync.config import read_config
from flask_zoho_sync.errors import ConfigurationError
from flask_zoho_sync.sync.conversion import split_converted, to_contact_fields, to_lead_fields

REQUIRED = {
    "ZOHO_SYNC_CLIENT_ID": "id",
    "ZOHO_SYNC_CLIENT_SECRET": "secret",
    "ZOHO_SYNC_ENCRYPTION_KEYS": "k",
}


def test_following_the_new_contact_is_the_default() -> None:
    assert read_config(REQUIRED).on_lead_conversion == "follow"


@pytest.mark.parametrize("value", ["stop", " Stop ", "FOLLOW"])
def test_either_outcome_is_taken_in_any_case(value: str) -> None:
    config = read_config({**REQUIRED, "ZOHO_SYNC_ON_LEAD_CONVERSION": value})
    assert config.on_lead_conversion == value.strip().lower()


def test_another_value_is_refused_with_the_choices() -> None:
    with pytest.raises(ConfigurationError) as refused:
        read_config({**REQUIRED, "ZOHO_SYNC_ON_LEAD_CONVERSION": "delete"})
    assert str(refused.value) == (
        "ZOHO_SYNC_ON_LEAD_CONVERSION must be one of 'follow', 'stop', got 'delete'."
    )


def test_a_followed_contact_gets_the_contacts_field_names_and_no_lead_only_field() -> None:
    payload = {"Designation": "CTO", "Street": "1 Main St", "Company": "Zylker", "Phone": "1"}
    assert to_contact_fields(payload) == {
        "Title": "CTO",
        "Mailing_Street": "1 Main St",
        "Phone": "1",
    }
    assert to_lead_fields({"Title": "CTO", "Mailing_City": "Sydney", "Email": "a@b.test"}) == {
        "Designation": "CTO",
        "City": "Sydney",
        "Email": "a@b.test",
    }


def test_converted_leads_are_set_apart_from_the_records_to_merge() -> None:
    live, converted = split_converted(
        [{"id": "1"}, {"id": "2", "Converted__s": True}, {"id": "3", "Converted__s": False}]
    )
    assert [r["id"] for r in live] == ["1", "3"] and [r["id"] for r in converted] == ["2"]
