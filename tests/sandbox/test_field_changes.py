"""A Zoho admin changes a custom field under a running sync: the sandbox answers as Zoho does
(docs/zoho-api-notes.md, "Field changes")."""

from __future__ import annotations

from typing import Any

import pytest

from flask_zoho_sync.sandbox import SandboxHandle
from flask_zoho_sync.sandbox.handle import SandboxControlError

from .conftest import Api


def _field(api: Api, module: str, api_name: str) -> dict[str, Any] | None:
    fields = api.get("/settings/fields", params={"module": module}).json()["fields"]
    return next((meta for meta in fields if meta["api_name"] == api_name), None)


def _write_one(api: Api, record: dict[str, Any]) -> dict[str, Any]:
    response = api.post("/Leads", json={"data": [record]})
    return response.json()["data"][0]


def test_a_deleted_field_leaves_the_list_and_a_write_naming_it_is_refused_with_its_name(
    sandbox: SandboxHandle, api: Api
) -> None:
    sandbox.add_custom_field("Leads", api_name="Shoe_Size", data_type="text")
    sandbox.delete_field("Leads", "Shoe_Size")

    assert _field(api, "Leads", "Shoe_Size") is None
    answer = _write_one(api, {"Last_Name": "Ng", "Shoe_Size": "42"})
    assert answer["code"] == "INVALID_DATA"
    assert answer["status"] == "error"
    assert answer["details"] == {"api_name": "Shoe_Size", "json_path": "$.data[0].Shoe_Size"}
    # The same record without the field goes through: only that field is refused.
    assert _write_one(api, {"Last_Name": "Ng"})["code"] == "SUCCESS"


def test_a_renamed_field_keeps_its_id_and_its_values(sandbox: SandboxHandle, api: Api) -> None:
    sandbox.add_custom_field("Leads", api_name="Shoe_Size", data_type="text")
    record_id = _write_one(api, {"Last_Name": "Ng", "Shoe_Size": "42"})["details"]["id"]
    before = _field(api, "Leads", "Shoe_Size")
    assert before is not None

    sandbox.change_field("Leads", "Shoe_Size", api_name="Foot_Size")

    after = _field(api, "Leads", "Foot_Size")
    assert after is not None and after["id"] == before["id"]
    assert _field(api, "Leads", "Shoe_Size") is None
    assert sandbox.record("Leads", record_id)["Foot_Size"] == "42"


def test_a_field_made_read_only_says_so_in_its_metadata_and_refuses_writes(
    sandbox: SandboxHandle, api: Api
) -> None:
    sandbox.add_custom_field("Leads", api_name="Shoe_Size", data_type="text")
    sandbox.change_field("Leads", "Shoe_Size", read_only=True)

    meta = _field(api, "Leads", "Shoe_Size")
    assert meta is not None
    assert meta["read_only"] is True
    assert meta["operation_type"]["api_update"] is False
    answer = _write_one(api, {"Last_Name": "Ng", "Shoe_Size": "42"})
    assert answer["code"] == "INVALID_DATA"
    assert answer["details"]["api_name"] == "Shoe_Size"


def test_a_retyped_field_refuses_values_of_its_old_type(sandbox: SandboxHandle, api: Api) -> None:
    sandbox.add_custom_field("Leads", api_name="Shoe_Size", data_type="text")
    sandbox.change_field("Leads", "Shoe_Size", data_type="integer")

    assert _field(api, "Leads", "Shoe_Size")["data_type"] == "integer"  # type: ignore[index]
    answer = _write_one(api, {"Last_Name": "Ng", "Shoe_Size": "forty-two"})
    assert answer["code"] == "INVALID_DATA"
    assert answer["details"]["api_name"] == "Shoe_Size"
    assert answer["details"]["expected_data_type"] == "integer"


def test_a_removed_picklist_value_is_refused_and_gone_from_the_metadata(
    sandbox: SandboxHandle, api: Api
) -> None:
    sandbox.add_custom_field(
        "Leads", api_name="Tier", data_type="picklist", pick_list_values=["Gold", "Silver"]
    )
    sandbox.change_field("Leads", "Tier", remove_pick_list_values=["Silver"])

    values = [entry["actual_value"] for entry in _field(api, "Leads", "Tier")["pick_list_values"]]  # type: ignore[index]
    assert "Silver" not in values and "Gold" in values
    answer = _write_one(api, {"Last_Name": "Ng", "Tier": "Silver"})
    assert answer["code"] == "INVALID_DATA"
    assert answer["details"]["api_name"] == "Tier"
    assert _write_one(api, {"Last_Name": "Ng", "Tier": "Gold"})["code"] == "SUCCESS"


def test_standard_fields_cannot_be_deleted_or_renamed(sandbox: SandboxHandle) -> None:
    with pytest.raises(SandboxControlError, match="standard field"):
        sandbox.delete_field("Leads", "Company")
    with pytest.raises(SandboxControlError, match="standard field"):
        sandbox.change_field("Leads", "Company", api_name="Firm")
