"""Writing records: 100 per call, verdicts walked by index whatever the HTTP status."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest
import responses

from flask_zoho_sync.zoho.auth import TokenManager
from flask_zoho_sync.zoho.client import RecordResult, ZohoClient
from flask_zoho_sync.zoho.errors import (
    ZohoMalformedResponse,
    ZohoRequestError,
    ZohoSettingError,
    ZohoUnavailable,
)

from .conftest import CRM, RecordedSleeps, query_of

#: Reference §2.6: the assembled mixed batch (one insert, one missing Last_Name, one
#: duplicate on a unique field).
MIXED_BATCH_REPLY: dict[str, Any] = {
    "data": [
        {
            "code": "SUCCESS",
            "duplicate_field": None,
            "action": "insert",
            "details": {
                "Modified_Time": "2026-01-15T10:20:30+05:30",
                "Modified_By": {"name": "Sync User", "id": "111111000000050001"},
                "Created_Time": "2026-01-15T10:20:30+05:30",
                "id": "111111000000601001",
                "Created_By": {"name": "Sync User", "id": "111111000000050001"},
            },
            "message": "record added",
            "status": "success",
        },
        {
            "code": "MANDATORY_NOT_FOUND",
            "details": {"api_name": "Last_Name", "json_path": "$.data[1].Last_Name"},
            "message": "required field not found",
            "status": "error",
        },
        {
            "code": "DUPLICATE_DATA",
            "details": {
                "api_name": "Mobile",
                "json_path": "$.data[2].Mobile",
                "duplicate_record": {
                    "id": "111111000000500123",
                    "module": {"api_name": "Leads", "id": "111111000000002175"},
                    "Owner": {"name": "Sync User", "id": "111111000000050001"},
                },
                "more_records": False,
            },
            "message": "duplicate data",
            "status": "error",
        },
    ]
}


def success(record_id: str, action: str = "insert", duplicate_field: str | None = None) -> dict:
    return {
        "code": "SUCCESS",
        "duplicate_field": duplicate_field,
        "action": action,
        "details": {
            "Modified_Time": "2020-10-14T10:31:43+05:30",
            "Created_Time": "2019-09-11T16:21:15+05:30",
            "id": record_id,
        },
        "message": "record updated" if action == "update" else "record added",
        "status": "success",
    }


def echo_successes(request: Any) -> tuple[int, dict[str, str], str]:
    """An upsert endpoint that answers one success per record, ids derived from Email."""
    sent = json.loads(request.body)["data"]
    reply = {"data": [success(str(900000 + int(r["Email"].split("@")[0][1:]))) for r in sent]}
    return 202, {"Content-Type": "application/json"}, json.dumps(reply)


def contacts(count: int) -> list[dict[str, str]]:
    return [{"Last_Name": f"Person {n}", "Email": f"p{n}@example.com"} for n in range(count)]


def sent_body(call: Any) -> dict[str, Any]:
    return json.loads(call.request.body)


def test_upsert_of_250_records_takes_3_calls_and_keeps_input_order(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    rsps.add_callback(responses.POST, f"{CRM}/Contacts/upsert", callback=echo_successes)

    results = client.upsert("Contacts", contacts(250))

    assert len(rsps.calls) == 3
    assert [len(sent_body(call)["data"]) for call in rsps.calls] == [100, 100, 50]
    assert [r.index for r in results] == list(range(250))
    assert [r.record_id for r in results] == [str(900000 + n) for n in range(250)]
    assert all(r.ok for r in results)


def test_mixed_batch_is_read_element_by_element(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    rsps.post(f"{CRM}/Leads/upsert", json=MIXED_BATCH_REPLY, status=207)

    first, second, third = client.upsert("Leads", contacts(3))

    assert first == RecordResult(
        index=0,
        ok=True,
        code="SUCCESS",
        status="success",
        message="record added",
        action="insert",
        duplicate_field=None,
        record_id="111111000000601001",
        modified_time=datetime(2026, 1, 15, 4, 50, 30, tzinfo=timezone.utc),
        details=MIXED_BATCH_REPLY["data"][0]["details"],
    )
    assert not second.ok
    assert second.code == "MANDATORY_NOT_FOUND"
    assert second.details["api_name"] == "Last_Name"
    assert second.record_id is None
    assert not third.ok
    assert third.code == "DUPLICATE_DATA"
    assert third.details["duplicate_record"]["id"] == "111111000000500123"


def test_mixed_batch_answered_with_http_400_still_yields_results(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    rsps.post(f"{CRM}/Leads", json=MIXED_BATCH_REPLY, status=400)

    results = client.insert("Leads", contacts(3))

    assert [r.ok for r in results] == [True, False, False]


def test_upsert_reports_whether_it_inserted_or_updated(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    rsps.post(
        f"{CRM}/Leads/upsert",
        json={"data": [success("1", "update", "Email"), success("2", "insert")]},
    )

    updated, inserted = client.upsert("Leads", contacts(2))

    assert (updated.action, updated.duplicate_field) == ("update", "Email")
    assert (inserted.action, inserted.duplicate_field) == ("insert", None)


def test_writes_ask_zoho_to_run_no_workflows_by_default(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    rsps.post(f"{CRM}/Leads/upsert", json={"data": [success("1")]})

    client.upsert("Leads", contacts(1))

    assert sent_body(rsps.calls[0])["trigger"] == []


def test_triggers_come_from_the_constructor_or_the_call(
    manager: TokenManager, sleeps: RecordedSleeps, rsps: responses.RequestsMock
) -> None:
    rsps.put(f"{CRM}/Leads", json={"data": [success("1", "update")]})
    client = ZohoClient(manager, trigger=("workflow", "approval"), sleep=sleeps)

    client.update("Leads", [{"id": "1", "Last_Name": "X"}])
    client.update("Leads", [{"id": "1", "Last_Name": "X"}], trigger=["blueprint"])

    assert sent_body(rsps.calls[0])["trigger"] == ["workflow", "approval"]
    assert sent_body(rsps.calls[1])["trigger"] == ["blueprint"]


def test_upsert_sends_duplicate_check_fields_in_order(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    rsps.post(f"{CRM}/Contacts/upsert", json={"data": [success("1")]})

    client.upsert("Contacts", contacts(1), duplicate_check_fields=["External_Id__c", "Email"])

    body = sent_body(rsps.calls[0])
    assert body["duplicate_check_fields"] == ["External_Id__c", "Email"]
    assert body["data"] == contacts(1)


def test_upsert_without_duplicate_check_fields_leaves_zohos_default(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    rsps.post(f"{CRM}/Contacts/upsert", json={"data": [success("1")]})

    client.upsert("Contacts", contacts(1))

    assert "duplicate_check_fields" not in sent_body(rsps.calls[0])


def test_insert_and_update_use_post_and_put_on_the_module(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    rsps.post(f"{CRM}/Leads", json={"data": [success("7")]}, status=201)
    rsps.put(f"{CRM}/Leads", json={"data": [success("7", "update")]})

    assert client.insert("Leads", contacts(1))[0].record_id == "7"
    assert client.update("Leads", [{"id": "7", "Last_Name": "Y"}])[0].ok

    assert [call.request.method for call in rsps.calls] == ["POST", "PUT"]


def test_request_level_error_without_data_raises(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    rsps.post(
        f"{CRM}/Leads/upsert",
        status=400,
        json={
            "code": "LIMIT_EXCEEDED",
            "details": {"limit": 100},
            "message": "max records exceeded",
            "status": "error",
        },
    )

    with pytest.raises(ZohoRequestError) as caught:
        client.upsert("Leads", contacts(1))

    assert caught.value.code == "LIMIT_EXCEEDED"


def test_no_permission_on_write_is_a_setting_error(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    rsps.post(
        f"{CRM}/Leads/upsert",
        status=403,
        json={
            "code": "NO_PERMISSION",
            "details": {"permissions": ["Crm_Implied_Create_Leads"]},
            "message": "permission denied",
            "status": "error",
        },
    )

    with pytest.raises(ZohoSettingError):
        client.upsert("Leads", contacts(1))


def test_fewer_results_than_records_is_malformed(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    rsps.post(f"{CRM}/Leads/upsert", json={"data": [success("1")]})

    with pytest.raises(ZohoMalformedResponse, match="1 results for 2 records"):
        client.upsert("Leads", contacts(2))


def test_error_in_a_later_chunk_keeps_the_results_of_earlier_chunks(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    calls = {"n": 0}

    def first_ok_then_refused(request: Any) -> tuple[int, dict[str, str], str]:
        calls["n"] += 1
        if calls["n"] == 1:
            return echo_successes(request)
        body = {"code": "INVALID_DATA", "details": {}, "message": "bad", "status": "error"}
        return 400, {"Content-Type": "application/json"}, json.dumps(body)

    rsps.add_callback(responses.POST, f"{CRM}/Contacts/upsert", callback=first_ok_then_refused)

    with pytest.raises(ZohoRequestError) as caught:
        client.upsert("Contacts", contacts(150))

    assert len(caught.value.partial_results) == 100
    assert caught.value.partial_results[-1].index == 99


def test_empty_write_sends_nothing(client: ZohoClient, rsps: responses.RequestsMock) -> None:
    assert client.upsert("Leads", []) == []
    assert len(rsps.calls) == 0


def test_delete_goes_in_chunks_of_100_without_workflows(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    ids = [str(410405000002264000 + n) for n in range(130)]

    def deleted(request: Any) -> tuple[int, dict[str, str], str]:
        from urllib.parse import parse_qs, urlsplit

        chunk = parse_qs(urlsplit(request.url).query)["ids"][0].split(",")
        data = [
            {
                "code": "SUCCESS",
                "details": {"id": i},
                "message": "record deleted",
                "status": "success",
            }
            for i in chunk
        ]
        return 200, {"Content-Type": "application/json"}, json.dumps({"data": data})

    rsps.add_callback(responses.DELETE, f"{CRM}/Leads", callback=deleted)

    results = client.delete("Leads", ids)

    queries = [query_of(call) for call in rsps.calls]
    assert [len(q["ids"].split(",")) for q in queries] == [100, 30]
    assert all(q["wf_trigger"] == "false" for q in queries)
    assert [r.record_id for r in results] == ids
    assert [r.index for r in results] == list(range(130))


def test_deleting_an_already_deleted_record_is_a_per_record_failure(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    rsps.delete(
        f"{CRM}/Leads",
        status=400,
        json={
            "data": [
                {
                    "code": "INVALID_DATA",
                    "details": {"id": "410405000002264040"},
                    "message": "record not deleted",
                    "status": "error",
                }
            ]
        },
    )

    (result,) = client.delete("Leads", ["410405000002264040"])

    assert not result.ok
    assert result.code == "INVALID_DATA"


def test_insert_failing_with_5xx_is_not_repeated(
    client: ZohoClient, rsps: responses.RequestsMock, sleeps: RecordedSleeps
) -> None:
    rsps.post(f"{CRM}/Leads", status=504, body="<html>Gateway Timeout</html>")

    with pytest.raises(ZohoUnavailable) as caught:
        client.insert("Leads", contacts(1))

    assert caught.value.maybe_applied is True
    assert len(rsps.calls) == 1
    assert sleeps == []
