"""The bulk client against the sandbox over loopback: jobs, polling, files, per-row errors."""

from __future__ import annotations

from datetime import timedelta

import pytest

from flask_zoho_sync.sandbox import SandboxHandle
from flask_zoho_sync.zoho.bulk import BulkClient, ZohoBulkTimeout
from flask_zoho_sync.zoho.client import ZohoClient
from flask_zoho_sync.zoho.timefmt import parse_datetime


@pytest.fixture
def bulk(zoho_sandbox_client: ZohoClient, tmp_path) -> BulkClient:
    return BulkClient(
        zoho_sandbox_client, poll_interval=0.01, max_poll_interval=0.05, work_dir=tmp_path
    )


def test_an_export_streams_every_row_with_ids_and_iso_times(
    zoho_sandbox: SandboxHandle, bulk: BulkClient, tmp_path
) -> None:
    ids = zoho_sandbox.generate_records("Contacts", 1200)
    rows = bulk.iter_rows("Contacts", ["Last_Name", "Email", "Modified_Time"])
    first = next(rows)
    assert set(first) == {"id", "Last_Name", "Email", "Modified_Time"}
    assert parse_datetime(first["Modified_Time"]).tzinfo is not None
    rest = list(rows)
    assert sorted([first["id"], *(r["id"] for r in rest)]) == sorted(ids)
    stats = zoho_sandbox.stats()["calls"]
    assert stats["POST /bulk/read"] == 1
    assert stats["GET /bulk/read/{id}/result"] == 1
    assert stats["GET /bulk/read/{id}"] >= 3  # the sandbox makes clients poll
    assert list(tmp_path.iterdir()) == []  # the spooled zip is gone


def test_an_export_since_a_moment_skips_older_records(
    zoho_sandbox: SandboxHandle, bulk: BulkClient
) -> None:
    zoho_sandbox.create_record("Contacts", {"Last_Name": "Old"})
    zoho_sandbox.advance_clock(3600)
    new = zoho_sandbox.create_record("Contacts", {"Last_Name": "New"})
    since = parse_datetime(new["Modified_Time"]) - timedelta(seconds=1)
    rows = list(bulk.iter_rows("Contacts", ["Last_Name"], modified_since=since))
    assert [r["id"] for r in rows] == [new["id"]]


def test_a_write_maps_each_result_row_back_to_its_input(
    zoho_sandbox: SandboxHandle, bulk: BulkClient, zoho_sandbox_client: ZohoClient
) -> None:
    zoho_sandbox.add_custom_field("Contacts", api_name="Contact_Id", data_type="text", unique=True)
    existing = zoho_sandbox.create_record(
        "Contacts", {"Last_Name": "Was", "Contact_Id": "c2", "Email": "was@example.org"}
    )
    records = [
        {"Contact_Id": "c1", "Last_Name": "Ada", "Email": "ada@example.org"},
        {"Contact_Id": "c2", "Last_Name": "Updated", "Email": "was@example.org"},
        {"Contact_Id": "c3", "First_Name": "No last name"},
        {"Contact_Id": "c4", "Last_Name": "Bad mail", "Email": "not-an-email"},
    ]
    results = list(
        bulk.write(
            "Contacts",
            "upsert",
            iter(records),
            fields=["Contact_Id", "First_Name", "Last_Name", "Email"],
            find_by="Contact_Id",
        )
    )
    assert [(r.index, r.status) for r in results] == [
        (0, "added"), (1, "updated"), (2, "skipped"), (3, "skipped"),
    ]  # fmt: skip
    assert results[1].record_id == existing["id"]
    assert results[2].errors == (("MANDATORY_NOT_FOUND", "Last_Name"),)
    assert results[3].code == "INVALID_DATA"
    assert zoho_sandbox.record("Contacts", results[0].record_id)["Contact_Id"] == "c1"
    assert zoho_sandbox.record("Contacts", existing["id"])["Last_Name"] == "Updated"
    stats = zoho_sandbox.stats()
    assert stats["credits"]["POST /bulk/write"] == 500
    client_view = zoho_sandbox_client.meter.snapshot()
    assert client_view["credits"]["POST /bulk/write"] == 500
    assert client_view["calls"]["POST /upload"] == 1


def test_a_job_that_does_not_finish_in_time_raises_a_clear_timeout(
    zoho_sandbox_client: ZohoClient,
) -> None:
    ticks = iter(range(0, 1000, 10))
    impatient = BulkClient(
        zoho_sandbox_client, poll_interval=1, timeout=5, clock=lambda: float(next(ticks))
    )
    job_id = impatient.start_read("Leads")
    with pytest.raises(ZohoBulkTimeout, match="still"):
        impatient.wait_for_read(job_id)


def test_records_beyond_one_job_go_in_several_jobs_and_keep_their_order(
    zoho_sandbox: SandboxHandle, bulk: BulkClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("flask_zoho_sync.zoho.bulk.WRITE_MAX_RECORDS", 2)
    records = ({"Last_Name": f"N{n}"} for n in range(5))
    results = list(bulk.write("Leads", "insert", records, fields=["Last_Name"]))
    assert [r.index for r in results] == [0, 1, 2, 3, 4]
    assert len({r.job_id for r in results}) == 3
    names = {r.record_id: zoho_sandbox.record("Leads", r.record_id)["Last_Name"] for r in results}
    assert [names[r.record_id] for r in results] == ["N0", "N1", "N2", "N3", "N4"]
    assert zoho_sandbox.stats()["calls"]["POST /bulk/write"] == 3
