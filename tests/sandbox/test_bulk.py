"""The sandbox's Bulk Read and Bulk Write endpoints: job states, files, limits (§6)."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from flask_zoho_sync.sandbox import SandboxHandle
from flask_zoho_sync.sandbox.app import create_sandbox_app, sandbox_state
from flask_zoho_sync.sandbox.bulk import READ_PAGE_SIZE, WRITE_MAX_RECORDS

from .conftest import ZOHO_DATETIME, Api
from .test_notifications import Receiver, _subscribe


@pytest.fixture
def notify_receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


def bulk(api: Api, method: str, path: str, **kw: Any) -> requests.Response:
    headers = {"Authorization": f"Zoho-oauthtoken {api.token}", **kw.pop("headers", {})}
    return api.session.request(
        method, f"{api.base}/crm/bulk/v8{path}", headers=headers, timeout=30, **kw
    )


def csv_rows(payload: bytes) -> list[dict[str, str]]:
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        [name] = archive.namelist()
        text = archive.read(name).decode("utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def zip_of(text: str, name: str = "contacts.csv") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, text)
    return buffer.getvalue()


def start_read(api: Api, query: dict[str, Any]) -> str:
    response = bulk(api, "POST", "/read", json={"query": query})
    assert response.status_code == 201, response.text
    [element] = response.json()["data"]
    assert element["code"] == "ADDED_SUCCESSFULLY"
    assert element["details"]["state"] == "ADDED"
    return element["details"]["id"]


def poll(api: Api, kind: str, job_id: str) -> list[dict[str, Any]]:
    """Every status seen until the job ends (bounded: the sandbox moves one step a poll)."""
    seen = []
    for _ in range(10):
        response = bulk(api, "GET", f"/{kind}/{job_id}")
        assert response.status_code == 200, response.text
        body = response.json()
        detail = body["data"][0] if kind == "read" else body
        seen.append(detail)
        if (detail.get("state") or detail.get("status")) in ("COMPLETED", "FAILURE", "FAILED"):
            return seen
    raise AssertionError(f"job never finished: {seen}")


def upload(api: Api, payload: bytes, **headers: str) -> requests.Response:
    sent = {"feature": "bulk-write", "X-CRM-ORG": "4876876", **headers}
    return api.post("/upload", files={"file": ("data.zip", payload)}, headers=sent)


def start_write(api: Api, csv_text: str, **job: Any) -> str:
    response = upload(api, zip_of(csv_text))
    assert response.status_code == 200, response.text
    assert response.json()["code"] == "FILE_UPLOAD_SUCCESS"
    file_id = response.json()["details"]["file_id"]
    resource = {"type": "data", "module": {"api_name": "Contacts"}, "file_id": file_id}
    resource.update(job.pop("resource", {}))
    body = {"operation": job.pop("operation", "insert"), "resource": [resource], **job}
    created = bulk(api, "POST", "/write", json=body)
    assert created.status_code == 201, created.text
    return created.json()["details"]["id"]


# ------------------------------------------------------------------------------ Bulk Read
def test_a_read_job_moves_through_every_state_and_exports_a_zipped_csv(api: Api) -> None:
    api.insert("Contacts", {"Last_Name": "Ada", "Email": "ada@example.org"})
    api.insert("Contacts", {"Last_Name": "Bob", "Email": "bob@example.org"})
    job_id = start_read(api, {"module": {"api_name": "Contacts"}, "fields": ["Last_Name"]})
    early = bulk(api, "GET", f"/read/{job_id}/result")
    assert early.status_code == 400
    states = [detail["state"] for detail in poll(api, "read", job_id)]
    assert states == ["QUEUED", "IN PROGRESS", "COMPLETED"]
    result = poll(api, "read", job_id)[-1]["result"]
    assert result["per_page"] == READ_PAGE_SIZE
    assert result["count"] == 2 and result["more_records"] is False
    assert result["download_url"] == f"/crm/bulk/v8/read/{job_id}/result"
    download = api.session.get(
        api.base + result["download_url"],
        headers={"Authorization": f"Zoho-oauthtoken {api.token}"},
        timeout=30,
    )
    assert download.headers["Content-Type"] == "application/zip"
    rows = csv_rows(download.content)
    assert [r["Last_Name"] for r in rows] == ["Ada", "Bob"]
    assert list(rows[0]) == ["id", "Last_Name"]


def test_an_unpolled_job_completes_with_the_clock(api: Api, sandbox: SandboxHandle) -> None:
    job_id = start_read(api, {"module": {"api_name": "Contacts"}})
    sandbox.advance_clock(60)
    response = bulk(api, "GET", f"/read/{job_id}")
    assert response.json()["data"][0]["state"] == "COMPLETED"


def test_criteria_on_modified_time_selects_later_changes_with_iso_datetimes(
    api: Api, sandbox: SandboxHandle
) -> None:
    sandbox.create_record("Contacts", {"Last_Name": "Old"})
    sandbox.advance_clock(3600)
    new = sandbox.create_record("Contacts", {"Last_Name": "New"})
    cutoff = sandbox.now().replace(microsecond=0).isoformat()
    sandbox.advance_clock(-1)
    query = {
        "module": {"api_name": "Contacts"},
        "fields": ["Last_Name", "Modified_Time"],
        "criteria": {
            "field": {"api_name": "Modified_Time"},
            "comparator": "greater_equal",
            "value": cutoff,
        },
    }
    job_id = start_read(api, query)
    result = poll(api, "read", job_id)[-1]["result"]
    rows = csv_rows(bulk(api, "GET", f"/read/{job_id}/result").content)
    assert result["count"] == 1
    assert [r["id"] for r in rows] == [new["id"]]
    assert ZOHO_DATETIME.match(rows[0]["Modified_Time"])


def test_criteria_refuse_milliseconds_and_unknown_fields(api: Api) -> None:
    base = {"module": {"api_name": "Contacts"}}
    millis = {"field": {"api_name": "Modified_Time"}, "comparator": "greater_than"}
    millis["value"] = "2026-01-01T00:00:00.123+00:00"
    response = bulk(api, "POST", "/read", json={"query": {**base, "criteria": millis}})
    assert response.status_code == 400 and response.json()["code"] == "INVALID_DATA"
    unknown = bulk(api, "POST", "/read", json={"query": {**base, "fields": ["Nope"]}})
    assert unknown.json()["details"]["api_name"] == "Nope"


def test_a_read_job_needs_json_and_the_bulk_scope(api: Api, sandbox: SandboxHandle) -> None:
    form = bulk(api, "POST", "/read", data={"query": "{}"})
    assert form.status_code == 415
    assert form.json()["code"] == "MEDIA_TYPE_NOT_SUPPORTED"
    narrow = Api(sandbox, scope="ZohoCRM.modules.ALL")
    try:
        refused = bulk(narrow, "POST", "/read", json={"query": {"module": {"api_name": "Leads"}}})
        assert refused.status_code == 401
        assert refused.json()["code"] == "OAUTH_SCOPE_MISMATCH"
    finally:
        narrow.close()
    no_module = Api(sandbox, scope="ZohoCRM.bulk.READ")
    try:
        refused = bulk(
            no_module, "POST", "/read", json={"query": {"module": {"api_name": "Leads"}}}
        )
        assert refused.json()["code"] == "OAUTH_SCOPE_MISMATCH"
    finally:
        no_module.close()


def test_the_eleventh_download_in_a_minute_is_a_429(api: Api, sandbox: SandboxHandle) -> None:
    job_id = start_read(api, {"module": {"api_name": "Contacts"}})
    poll(api, "read", job_id)
    statuses = [bulk(api, "GET", f"/read/{job_id}/result").status_code for _ in range(11)]
    assert statuses == [200] * 10 + [429]
    sandbox.advance_clock(61)
    assert bulk(api, "GET", f"/read/{job_id}/result").status_code == 200


def test_a_failed_job_reports_failure() -> None:
    app = create_sandbox_app()
    state = sandbox_state(app)
    client = app.test_client()
    token = _token(client)
    created = client.post(
        "/crm/bulk/v8/read",
        json={"query": {"module": {"api_name": "Leads"}}},
        headers={"Authorization": f"Zoho-oauthtoken {token}"},
    )
    job_id = created.get_json()["data"][0]["details"]["id"]
    state.bulk_jobs["read"][job_id]["fail"] = True
    states = []
    for _ in range(4):
        reply = client.get(
            f"/crm/bulk/v8/read/{job_id}", headers={"Authorization": f"Zoho-oauthtoken {token}"}
        )
        states.append(reply.get_json()["data"][0]["state"])
    assert states[-1] == "FAILURE"
    assert "COMPLETED" not in states


def _token(client: Any) -> str:
    grant = client.post("/__sandbox__/tokens", json={}).get_json()
    reply = client.post(
        "/oauth/v2/token",
        data={
            "grant_type": "refresh_token",
            "client_id": grant["client_id"],
            "client_secret": grant["client_secret"],
            "refresh_token": grant["refresh_token"],
        },
    )
    return reply.get_json()["access_token"]


@pytest.mark.slow
def test_more_than_200000_records_come_in_two_pages_with_a_page_token() -> None:
    app = create_sandbox_app()
    state = sandbox_state(app)
    client = app.test_client()
    token = _token(client)
    auth = {"Authorization": f"Zoho-oauthtoken {token}"}
    with state.lock:
        records = state.data["records"]["Leads"]
        for n in range(READ_PAGE_SIZE + 1):
            record_id = state.new_id()
            records[record_id] = {"id": record_id, "Last_Name": f"L{n}", "Modified_Time": "x"}
    query: dict[str, Any] = {"module": {"api_name": "Leads"}, "fields": ["Last_Name"]}
    seen: list[str] = []
    pages = []
    for _ in range(2):
        created = client.post("/crm/bulk/v8/read", json={"query": query}, headers=auth)
        job_id = created.get_json()["data"][0]["details"]["id"]
        for _ in range(3):
            detail = client.get(f"/crm/bulk/v8/read/{job_id}", headers=auth).get_json()
        result = detail["data"][0]["result"]
        pages.append(result)
        rows = csv_rows(client.get(f"/crm/bulk/v8/read/{job_id}/result", headers=auth).data)
        seen.extend(row["id"] for row in rows)
        query = {**query, "page_token": result["next_page_token"]}
    assert [(p["page"], p["count"], p["more_records"]) for p in pages] == [
        (1, READ_PAGE_SIZE, True),
        (2, 1, False),
    ]
    assert len(set(seen)) == READ_PAGE_SIZE + 1


# ----------------------------------------------------------------------------- Bulk Write
def test_upload_checks_headers_format_and_size(api: Api) -> None:
    assert upload(api, b"not a zip").json()["code"] == "INVALID_FILE_FORMAT"
    missing = api.post("/upload", files={"file": ("d.zip", zip_of("a\n"))})
    assert missing.json()["details"]["param_name"] == "feature"
    wrong_org = upload(api, zip_of("a\n"), **{"X-CRM-ORG": "1"})
    assert wrong_org.status_code == 400
    too_big = upload(api, b"x" * (25 * 1024 * 1024 + 1))
    assert too_big.status_code == 413 and too_big.json()["code"] == "FILE_TOO_LARGE"


def test_upload_needs_the_zoho_files_scope(sandbox: SandboxHandle) -> None:
    crm_only = Api(sandbox, scope="ZohoCRM.modules.ALL,ZohoCRM.bulk.ALL")
    try:
        refused = upload(crm_only, zip_of("Last_Name\nA\n"))
        assert refused.status_code == 401
    finally:
        crm_only.close()


def test_an_insert_job_writes_records_like_rest_and_reports_each_row(
    api: Api, sandbox: SandboxHandle
) -> None:
    sandbox.add_custom_field("Contacts", api_name="Contact_Id", data_type="text", unique=True)
    text = (
        "Contact_Id,Last_Name,Email\n"
        "c1,Ada,ada@example.org\n"
        "c2,,nolast@example.org\n"
        "c1,Dup,dup@example.org\n"
        "c3,Cy,cy@example.org\n"
    )
    mappings = [
        {"api_name": "Contact_Id", "index": 0},
        {"api_name": "Last_Name", "index": 1},
        {"api_name": "Email", "index": 2},
    ]
    job_id = start_write(api, text, resource={"field_mappings": mappings})
    statuses = [detail["status"] for detail in poll(api, "write", job_id)]
    assert statuses == ["IN PROGRESS", "COMPLETED"]
    detail = bulk(api, "GET", f"/write/{job_id}").json()
    counts = detail["resource"][0]["file"]
    assert (counts["added_count"], counts["skipped_count"], counts["total_count"]) == (2, 2, 4)
    download = api.session.get(
        detail["result"]["download_url"],
        headers={"Authorization": f"Zoho-oauthtoken {api.token}"},
        timeout=30,
    )
    rows = csv_rows(download.content)
    assert list(rows[0]) == ["Contact_Id", "Last_Name", "Email", "RECORD_ID", "STATUS", "ERRORS"]
    assert [r["STATUS"] for r in rows] == ["added", "skipped", "skipped", "added"]
    assert rows[1]["ERRORS"] == "MANDATORY_NOT_FOUND-Last_Name"
    assert rows[2]["ERRORS"] == "DUPLICATE_DATA-Contact_Id"
    stored = sandbox.record("Contacts", rows[0]["RECORD_ID"])
    assert stored["Email"] == "ada@example.org"
    assert ZOHO_DATETIME.match(stored["Modified_Time"])
    assert len(sandbox.records("Contacts")) == 2


def test_an_upsert_job_updates_by_find_by_and_inserts_the_rest(
    api: Api, sandbox: SandboxHandle
) -> None:
    existing = sandbox.create_record("Contacts", {"Last_Name": "Old", "Email": "ada@example.org"})
    sandbox.advance_clock(10)
    text = "Last_Name,Email,Date_of_Birth\nAda,ADA@example.org,12/31/1990\nBo,bo@example.org,\n"
    job_id = start_write(
        api, text, operation="upsert", resource={"find_by": "Email"}, ignore_empty=True
    )
    poll(api, "write", job_id)
    rows = csv_rows(bulk(api, "GET", f"/write/{job_id}/result").content)
    assert [(r["STATUS"], r["RECORD_ID"] == existing["id"]) for r in rows] == [
        ("updated", True),
        ("added", False),
    ]
    updated = sandbox.record("Contacts", existing["id"])
    assert updated["Last_Name"] == "Ada"
    assert updated["Date_of_Birth"] == "1990-12-31"
    assert updated["Modified_Time"] > existing["Modified_Time"]


def test_update_needs_find_by_and_skips_unknown_ids(api: Api, sandbox: SandboxHandle) -> None:
    file_id = upload(api, zip_of("id,Last_Name\n1,A\n")).json()["details"]["file_id"]
    body = {
        "operation": "update",
        "resource": [{"module": {"api_name": "Contacts"}, "file_id": file_id}],
    }
    refused = bulk(api, "POST", "/write", json=body)
    assert refused.json()["code"] == "MANDATORY_NOT_FOUND"
    kept = sandbox.create_record("Contacts", {"Last_Name": "Keep"})
    text = f"id,Last_Name\n{kept['id']},Kept\n999999999999,Ghost\n"
    job_id = start_write(api, text, operation="update", resource={"find_by": "id"})
    poll(api, "write", job_id)
    rows = csv_rows(bulk(api, "GET", f"/write/{job_id}/result").content)
    assert [r["STATUS"] for r in rows] == ["updated", "skipped"]
    assert sandbox.record("Contacts", kept["id"])["Last_Name"] == "Kept"


def test_write_limits_records_and_mapped_fields(api: Api) -> None:
    many = "Last_Name\n" + "x\n" * (WRITE_MAX_RECORDS + 1)
    file_id = upload(api, zip_of(many)).json()["details"]["file_id"]
    body = {
        "operation": "insert",
        "resource": [{"module": {"api_name": "Contacts"}, "file_id": file_id}],
    }
    assert bulk(api, "POST", "/write", json=body).json()["code"] == "LIMIT_EXCEEDED"
    header = ",".join(f"c{n}" for n in range(201))
    file_id = upload(api, zip_of(header + "\n")).json()["details"]["file_id"]
    mappings = [{"api_name": "Last_Name", "index": n} for n in range(201)]
    body["resource"][0].update(file_id=file_id, field_mappings=mappings)
    assert bulk(api, "POST", "/write", json=body).json()["code"] == "HEADER_LIMIT_EXCEEDED"


def test_a_write_job_costs_500_credits_and_notifies_like_rest(
    api: Api, sandbox: SandboxHandle, notify_receiver: Receiver
) -> None:
    receiver = notify_receiver
    _subscribe(api, receiver.url, ["Contacts.all"])
    job_id = start_write(api, "Last_Name\nA\nB\n")
    poll(api, "write", job_id)
    deliveries = sandbox.notifications(wait=5)
    assert [d["operation"] for d in deliveries] == ["insert"]
    assert len(receiver.received[0]["ids"]) == 2
    stats = sandbox.stats()
    assert stats["credits"]["POST /bulk/write"] == 500
    assert stats["calls"]["POST /upload"] == 1
    assert stats["calls"]["GET /bulk/write/{id}"] == 2


def test_a_large_write_is_worked_through_over_several_polls(
    api: Api, sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("flask_zoho_sync.sandbox.bulk.WORK_SLICE_SECONDS", 0.0)
    job_id = start_write(api, "Last_Name\nA\nB\nC\n")
    statuses = [detail["status"] for detail in poll(api, "write", job_id)]
    # One row per request here: the job stays IN PROGRESS until its last row is written.
    assert statuses == ["IN PROGRESS", "IN PROGRESS", "IN PROGRESS", "COMPLETED"]
    rows = csv_rows(bulk(api, "GET", f"/write/{job_id}/result").content)
    assert [r["STATUS"] for r in rows] == ["added"] * 3
    assert len(sandbox.records("Contacts")) == 3
