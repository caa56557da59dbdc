"""Which of Zoho's per-record refusals name a whole field (pause the row) and which are about
one record's value (that record's error): ``sync.drift``."""

from __future__ import annotations

from typing import Any

import pytest

from flask_zoho_sync.sync import FieldMapping, HostField, Mapping
from flask_zoho_sync.sync.drift import field_refusal, picklist_refusal
from tests.sync.conftest import SYDNEY, picklist, zoho_meta


@pytest.fixture(scope="module")
def mapping() -> Mapping:
    return Mapping(
        module="Leads",
        zone=SYDNEY,
        fields=[
            FieldMapping("email", "Email"),
            FieldMapping("company", "Org_Name"),
            FieldMapping("budget", "Budget"),
            FieldMapping("tier", "Tier"),
        ],
        host_fields=[
            HostField("email", "text"),
            HostField("company", "text"),
            HostField("budget", "decimal"),
            HostField("tier", "text"),
        ],
        zoho_fields=[
            zoho_meta("Email", "email", 100),
            zoho_meta("Org_Name", "text", 100),
            zoho_meta("Budget", "currency", 16),
            zoho_meta("Tier", "picklist", 120, pick_list_values=picklist("Gold", "Silver")),
            zoho_meta("Unmapped", "text", 50),
        ],
    )


@pytest.mark.parametrize(
    ("details", "paused"),
    [
        ({"api_name": "Org_Name", "json_path": "$.data[0].Org_Name"}, True),  # deleted, locked
        ({"api_name": "Org_Name", "expected_data_type": "integer"}, True),  # retyped
        ({"api_name": "Org_Name", "expected_data_type": "text"}, False),  # a bad value
        ({"api_name": "Org_Name", "maximum_length": 100}, False),  # too long
        ({"api_name": "Budget", "expected_data_type": "double"}, False),  # currency's name
        ({"api_name": "Tier", "expected_data_type": "picklist"}, False),  # a value not offered
        ({"api_name": "Email", "json_path": "$.data[0].Email"}, False),  # identity: per record
        ({"api_name": "Unmapped"}, False),  # not ours
        ({"id": "123"}, False),  # a record refused, no field named
    ],
)
def test_a_refusal_pauses_a_row_only_when_it_is_about_the_whole_field(
    mapping: Mapping, details: dict[str, Any], paused: bool
) -> None:
    refusal = field_refusal("INVALID_DATA", details, mapping)
    assert (refusal is not None) is paused
    if refusal is not None:
        assert refusal.api_name == details["api_name"] and "paused" in refusal.reason


def test_other_codes_never_pause(mapping: Mapping) -> None:
    assert field_refusal("DUPLICATE_DATA", {"api_name": "Org_Name"}, mapping) is None


def test_a_picklist_refusal_names_the_value_and_the_choices(mapping: Mapping) -> None:
    words = picklist_refusal(
        {"api_name": "Tier", "expected_data_type": "picklist"}, {"Tier": "Bronze"}, mapping
    )
    assert words is not None
    assert "'Bronze'" in words and "'Gold', 'Silver'" in words and "value map" in words
    assert picklist_refusal({"api_name": "Org_Name", "maximum_length": 5}, {}, mapping) is None
