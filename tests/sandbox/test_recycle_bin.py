"""The sandbox's recycle-bin restore, through the real client (docs/zoho-api-notes.md)."""

from __future__ import annotations

from typing import Any

import pytest

from flask_zoho_sync.sandbox.handle import SandboxHandle
from flask_zoho_sync.sandbox.pytest_plugin import sandbox_client
from flask_zoho_sync.zoho.errors import ZohoError


def test_a_deleted_record_comes_back_under_its_own_id_with_its_values(
    zoho_sandbox: SandboxHandle, zoho_sandbox_client: Any
) -> None:
    record = zoho_sandbox.create_record("Leads", {"Last_Name": "Lee", "Email": "a@example.org"})
    [deleted] = zoho_sandbox_client.delete("Leads", [record["id"]])
    assert deleted.ok

    restored = zoho_sandbox_client.restore_from_recycle_bin(record["id"])

    assert (restored.ok, restored.code, restored.record_id) == (True, "SUCCESS", record["id"])
    back = zoho_sandbox.record("Leads", record["id"])
    assert (back["Last_Name"], back["Email"]) == ("Lee", "a@example.org")
    assert record["id"] not in {entry["id"] for entry in zoho_sandbox.deleted("Leads")}
    assert zoho_sandbox.stats()["calls"]["POST /settings/recycle_bin/{id}/actions/restore"] == 1


def test_an_id_not_in_the_bin_is_refused_on_that_id(
    zoho_sandbox: SandboxHandle, zoho_sandbox_client: Any
) -> None:
    record = zoho_sandbox.create_record("Leads", {"Last_Name": "Lee"})
    zoho_sandbox.delete_record("Leads", record["id"], permanent=True)

    refused = zoho_sandbox_client.restore_from_recycle_bin(record["id"])

    assert (refused.ok, refused.code, refused.details) == (
        False,
        "INVALID_DATA",
        {"id": record["id"]},
    )


def test_restoring_needs_the_recycle_bin_scope(zoho_sandbox: SandboxHandle) -> None:
    client = sandbox_client(zoho_sandbox, scope="ZohoCRM.modules.ALL")
    with pytest.raises(ZohoError) as refused:
        client.restore_from_recycle_bin("4876876000000099999")
    assert refused.value.code == "OAUTH_SCOPE_MISMATCH"
