"""The bulk client's protocol with Zoho, against recorded replies (`responses`)."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import date, datetime, timezone
from typing import Any

import pytest
import responses

from flask_zoho_sync.zoho.bulk import (
    DOWNLOAD_RETRY_SECONDS,
    BulkClient,
    ZohoBulkJobFailed,
    csv_cell,
    upload_domain_for,
)
from flask_zoho_sync.zoho.client import ZohoClient
from flask_zoho_sync.zoho.errors import ZohoMalformedResponse, ZohoUnavailable
from flask_zoho_sync.zoho.meter import UsageMeter

from .conftest import API, TOKEN_URL, RecordedSleeps, token_reply

BULK = f"{API}/crm/bulk/v8"
UPLOAD = "https://content.zohoapis.eu/crm/v8/upload"
INVALID_TOKEN = {"code": "INVALID_TOKEN", "details": {}, "message": "x", "status": "error"}
TOO_MANY = {"code": "TOO_MANY_REQUESTS", "details": {}, "message": "x", "status": "error"}
INTERNAL = {"code": "INTERNAL_ERROR", "details": {}, "message": "x", "status": "error"}


def zipped(text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("result.csv", text)
    return buffer.getvalue()


def created(job_id: str) -> dict[str, Any]:
    details = {"id": job_id, "operation": "read", "state": "ADDED"}
    return {"data": [{"status": "success", "code": "ADDED_SUCCESSFULLY", "details": details}]}


def read_state(job_id: str, state: str, **result: Any) -> dict[str, Any]:
    job: dict[str, Any] = {"id": job_id, "operation": "read", "state": state}
    if state == "COMPLETED":
        job["result"] = {
            "page": 1,
            "per_page": 200000,
            "count": 1,
            "download_url": f"/crm/bulk/v8/read/{job_id}/result",
            "more_records": False,
            "next_page_token": None,
            **result,
        }
    return {"data": [job]}


@pytest.fixture
def bulk(client: ZohoClient, tmp_path) -> BulkClient:
    return BulkClient(client, poll_interval=2, max_poll_interval=5, timeout=600, work_dir=tmp_path)


def test_a_read_polls_with_growing_waits_then_streams_the_csv(
    bulk: BulkClient, rsps: responses.RequestsMock, sleeps: RecordedSleeps
) -> None:
    rsps.post(f"{BULK}/read", json=created("11"), status=201)
    for state in ("ADDED", "QUEUED", "IN PROGRESS", "IN PROGRESS", "COMPLETED"):
        rsps.get(f"{BULK}/read/11", json=read_state("11", state))
    rsps.get(
        f"{BULK}/read/11/result",
        body=zipped("id,Last_Name\n1,Ada\n2,Bob\n"),
        content_type="application/zip",
    )
    rows = list(bulk.iter_rows("Contacts", ["Last_Name"]))
    assert rows == [{"id": "1", "Last_Name": "Ada"}, {"id": "2", "Last_Name": "Bob"}]
    assert sleeps == [2, 3, 4.5, 5, 5]  # never polled before a first wait
    sent = json.loads(rsps.calls[0].request.body)
    assert sent == {
        "query": {"module": {"api_name": "Contacts"}, "fields": ["Last_Name"], "page": 1}
    }
    assert rsps.calls[0].request.headers["Content-Type"] == "application/json"


def test_next_pages_are_asked_for_with_the_page_token(
    bulk: BulkClient, rsps: responses.RequestsMock
) -> None:
    rsps.post(f"{BULK}/read", json=created("11"), status=201)
    rsps.get(
        f"{BULK}/read/11",
        json=read_state("11", "COMPLETED", more_records=True, next_page_token="tok"),
    )
    rsps.get(f"{BULK}/read/11/result", body=zipped("id\n1\n"), content_type="application/zip")
    rsps.post(f"{BULK}/read", json=created("12"), status=201)
    rsps.get(f"{BULK}/read/12", json=read_state("12", "COMPLETED", page=2))
    rsps.get(
        f"{BULK}/read/12/result",
        body=zipped("id\n2\n"),
        content_type="application/zip",
    )
    assert [row["id"] for row in bulk.iter_rows("Leads")] == ["1", "2"]
    second = json.loads(rsps.calls[3].request.body)["query"]
    assert second["page_token"] == "tok" and "page" not in second


def test_a_failed_job_raises_with_the_state(bulk: BulkClient, rsps: responses.RequestsMock) -> None:
    rsps.post(f"{BULK}/read", json=created("11"), status=201)
    rsps.get(f"{BULK}/read/11", json=read_state("11", "FAILURE"))
    with pytest.raises(ZohoBulkJobFailed, match="FAILURE"):
        list(bulk.iter_rows("Leads"))


def test_a_download_429_waits_out_the_ten_per_minute_limit(
    bulk: BulkClient, rsps: responses.RequestsMock, sleeps: RecordedSleeps
) -> None:
    rsps.post(f"{BULK}/read", json=created("11"), status=201)
    rsps.get(f"{BULK}/read/11", json=read_state("11", "COMPLETED"))
    rsps.get(f"{BULK}/read/11/result", json=TOO_MANY, status=429)
    rsps.get(f"{BULK}/read/11/result", body=zipped("id\n1\n"), content_type="application/zip")
    assert [row["id"] for row in bulk.iter_rows("Leads")] == ["1"]
    assert sleeps[-1] >= DOWNLOAD_RETRY_SECONDS


def test_an_expired_token_is_refreshed_once_mid_poll(
    bulk: BulkClient, rsps: responses.RequestsMock
) -> None:
    rsps.post(f"{BULK}/read", json=created("11"), status=201)
    rsps.get(f"{BULK}/read/11", json=INVALID_TOKEN, status=401)
    rsps.post(TOKEN_URL, json=token_reply())
    rsps.get(f"{BULK}/read/11", json=read_state("11", "COMPLETED"))
    rsps.get(f"{BULK}/read/11/result", body=zipped("id\n1\n"), content_type="application/zip")
    assert [row["id"] for row in bulk.iter_rows("Leads")] == ["1"]


def test_a_result_that_is_not_a_zip_is_a_malformed_response(
    bulk: BulkClient, rsps: responses.RequestsMock
) -> None:
    rsps.post(f"{BULK}/read", json=created("11"), status=201)
    rsps.get(f"{BULK}/read/11", json=read_state("11", "COMPLETED"))
    rsps.get(f"{BULK}/read/11/result", body=b"<html>oops</html>", content_type="text/html")
    with pytest.raises(ZohoMalformedResponse, match="not a zip"):
        list(bulk.iter_rows("Leads"))


def _write_flow(rsps: responses.RequestsMock, result_csv: str) -> None:
    rsps.get(f"{API}/crm/v8/org", json={"org": [{"id": "9", "zgid": "777"}]})
    rsps.post(UPLOAD, json={"status": "success", "code": "FILE_UPLOAD_SUCCESS",
                            "details": {"file_id": "f1"}})  # fmt: skip
    rsps.post(f"{BULK}/write", json={"status": "success", "details": {"id": "w1"}}, status=201)
    rsps.get(f"{BULK}/write/w1", json={"id": "w1", "status": "IN PROGRESS"})
    rsps.get(
        f"{BULK}/write/w1",
        json={"id": "w1", "status": "COMPLETED",
              "result": {"download_url": "https://download-accl.zoho.eu/v2/crm/777/bulk-write/w1/w1.zip"}},
    )  # fmt: skip
    rsps.get(
        "https://download-accl.zoho.eu/v2/crm/777/bulk-write/w1/w1.zip",
        body=zipped(result_csv),
        content_type="application/zip",
    )


def test_a_write_uploads_a_zipped_csv_and_maps_errors_back(
    bulk: BulkClient, rsps: responses.RequestsMock, meter: UsageMeter
) -> None:
    _write_flow(
        rsps,
        "Contact_Id,Last_Name,Email,RECORD_ID,STATUS,ERRORS\n"
        "c1,Ada,a@x.org,501,added,\n"
        "c2,,b@x.org,,skipped,MANDATORY_NOT_FOUND-Last_Name:DUPLICATE_DATA-Email\n",
    )
    records = [
        {"Contact_Id": "c1", "Last_Name": "Ada", "Email": "a@x.org", "Opt": True},
        {"Contact_Id": "c2", "Email": "b@x.org", "Opt": False},
    ]
    results = list(
        bulk.write(
            "Contacts",
            "upsert",
            records,
            fields=["Contact_Id", "Last_Name", "Email", "Opt"],
            find_by="Contact_Id",
            field_formats={"Birthday": "yyyy-MM-dd"},
        )
    )
    assert [(r.index, r.ok, r.record_id, r.action) for r in results] == [
        (0, True, "501", "insert"),
        (1, False, None, None),
    ]
    assert results[1].errors == (("MANDATORY_NOT_FOUND", "Last_Name"), ("DUPLICATE_DATA", "Email"))
    upload = rsps.calls[1].request
    assert upload.headers["feature"] == "bulk-write" and upload.headers["X-CRM-ORG"] == "777"
    body = upload.body if isinstance(upload.body, bytes) else upload.body.read()
    start = body.index(b"PK")
    with zipfile.ZipFile(io.BytesIO(body[start:])) as archive:
        sent = list(csv.reader(io.StringIO(archive.read("Contacts.csv").decode())))
    assert sent == [
        ["Contact_Id", "Last_Name", "Email", "Opt"],
        ["c1", "Ada", "a@x.org", "true"],
        ["c2", "", "b@x.org", "false"],
    ]
    job = json.loads(rsps.calls[2].request.body)
    assert job["operation"] == "upsert"
    assert job["resource"][0]["find_by"] == "Contact_Id"
    assert job["resource"][0]["field_mappings"][1] == {"api_name": "Last_Name", "index": 1}
    assert meter.snapshot()["credits"]["POST /bulk/write"] == 500


def test_creating_a_write_job_is_not_repeated_after_a_5xx(
    bulk: BulkClient, rsps: responses.RequestsMock
) -> None:
    rsps.get(f"{API}/crm/v8/org", json={"org": [{"id": "9", "zgid": "777"}]})
    rsps.post(UPLOAD, json={"status": "success", "details": {"file_id": "f1"}})
    rsps.post(f"{BULK}/write", json=INTERNAL, status=500)
    with pytest.raises(ZohoUnavailable) as caught:
        list(bulk.write("Leads", "insert", [{"Last_Name": "A"}], fields=["Last_Name"]))
    assert caught.value.maybe_applied
    assert len([c for c in rsps.calls if c.request.url == f"{BULK}/write"]) == 1


def test_a_result_with_missing_rows_cannot_be_matched(
    bulk: BulkClient, rsps: responses.RequestsMock
) -> None:
    _write_flow(rsps, "Last_Name,RECORD_ID,STATUS,ERRORS\nA,1,added,\n")
    with pytest.raises(ZohoMalformedResponse, match="1 rows for 2 records"):
        list(bulk.write("Leads", "insert", [{"Last_Name": "A"}, {"Last_Name": "B"}],
                        fields=["Last_Name"]))  # fmt: skip


def test_bad_arguments_are_refused_before_any_call(bulk: BulkClient) -> None:
    with pytest.raises(ValueError, match="find_by is required"):
        list(bulk.write("Leads", "upsert", [], fields=["Email"]))
    with pytest.raises(ValueError, match="must be one of the fields"):
        list(bulk.write("Leads", "upsert", [], fields=["Email"], find_by="Contact_Id"))
    with pytest.raises(ValueError, match="insert, update or upsert"):
        list(bulk.write("Leads", "delete", [], fields=["Email"]))
    with pytest.raises(ValueError, match="not one string"):
        bulk.start_read("Leads", "Email")


def test_upload_hosts_follow_the_data_centre() -> None:
    assert upload_domain_for("https://www.zohoapis.com") == "https://content.zohoapis.com"
    assert upload_domain_for("https://www.zohoapis.com.au") == "https://content.zohoapis.com.au"
    assert upload_domain_for("https://www.zohoapis.ca") == "https://upload.zohocloud.ca"
    assert upload_domain_for("https://www.zohoapis.sa") == "https://files.zoho.sa"
    assert upload_domain_for("http://127.0.0.1:8765") == "http://127.0.0.1:8765"


def test_csv_cells_use_the_shapes_bulk_write_reads() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert csv_cell(moment) == "2026-01-02T03:04:05+00:00"
    assert csv_cell(date(2026, 1, 2)) == "2026-01-02"
    assert csv_cell(["a", "b"]) == "a;b"
    assert csv_cell({"id": "42", "name": "X"}) == "42"
    assert csv_cell(None) == "" and csv_cell(False) == "false"
