"""Reading records: where calls go, field batching, paging past 2,000, incremental headers."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import responses

from flask_zoho_sync.zoho.client import ZohoClient
from flask_zoho_sync.zoho.errors import ZohoMalformedResponse, ZohoSettingError

from .conftest import ACCESS_TOKEN, CRM, query_of

IST = timezone(timedelta(hours=5, minutes=30))


def lead(record_id: int, **values: Any) -> dict[str, Any]:
    return {"id": str(record_id), "Modified_Time": "2026-01-15T10:20:30+05:30", **values}


def page(records: list[dict[str, Any]], *, more: bool, token: str | None = None) -> dict:
    return {
        "data": records,
        "info": {
            "per_page": 200,
            "count": len(records),
            "more_records": more,
            "next_page_token": token,
            "page_token_expiry": "2026-01-16T10:20:30+05:30" if token else None,
        },
    }


def test_calls_go_to_the_connections_api_domain_with_the_zoho_oauthtoken_header(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    rsps.get(f"{CRM}/Leads", json=page([lead(1)], more=False))

    list(client.iter_records("Leads", ["Email"]))

    request = rsps.calls[0].request
    assert request.url.startswith("https://www.zohoapis.eu/crm/v8/Leads?")
    assert request.headers["Authorization"] == f"Zoho-oauthtoken {ACCESS_TOKEN}"


def test_listing_asks_for_id_and_modified_time_sorted_oldest_change_first(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    rsps.get(f"{CRM}/Leads", json=page([lead(1, Email="a@example.com")], more=False))

    records = list(client.iter_records("Leads", ["Email", "Last_Name"]))

    assert records == [lead(1, Email="a@example.com")]
    assert query_of(rsps.calls[0]) == {
        "fields": "id,Modified_Time,Email,Last_Name",
        "sort_by": "Modified_Time",
        "sort_order": "asc",
        "per_page": "200",
        "page": "1",
    }


def test_listing_without_fields_is_refused_before_any_call(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    with pytest.raises(ValueError, match="fields"):
        client.iter_records("Leads", [])
    with pytest.raises(ValueError, match="fields"):
        client.iter_records("Leads", "Email")  # type: ignore[arg-type]

    assert len(rsps.calls) == 0


def test_more_than_50_fields_are_fetched_by_id_and_merged(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    wanted = [f"Field_{n}" for n in range(120)]
    ids = [1000 + n for n in range(150)]

    def listing(request: Any) -> tuple[int, dict[str, str], str]:
        import json
        from urllib.parse import parse_qs, urlsplit

        query = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
        fields = query["fields"].split(",")
        wanted_ids = query["ids"].split(",") if "ids" in query else [str(i) for i in ids]
        records = [{f: f"{f}@{rid}" for f in fields} | {"id": rid} for rid in wanted_ids]
        more = False
        return 200, {"Content-Type": "application/json"}, json.dumps(page(records, more=more))

    rsps.add_callback(responses.GET, f"{CRM}/Leads", callback=listing)

    pages = list(client.iter_pages("Leads", wanted))

    assert len(pages) == 1
    records = pages[0]
    assert len(records) == 150
    assert all(len(record) == 122 for record in records)  # id, Modified_Time, 120 fields
    assert records[149]["Field_119"] == "Field_119@1149"
    queries = [query_of(call) for call in rsps.calls]
    assert all(len(q["fields"].split(",")) <= 50 for q in queries)
    assert "ids" not in queries[0]
    # 122 fields = 50 in the listing + 72 more in two batches of ≤49 (+id);
    # 150 ids = two id-calls per batch (≤100 ids each).
    assert len(queries) == 1 + 2 * 2
    assert all(len(q["ids"].split(",")) <= 100 for q in queries[1:])
    assert all(q["fields"].split(",")[0] == "id" for q in queries[1:])


def test_paging_switches_to_page_token_and_never_sends_both(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    """2,500 records: 12 pages of 200 and one of 100; `page` alone would die at 2,000."""
    total = 2500
    pages_sent = 0

    def listing(request: Any) -> tuple[int, dict[str, str], str]:
        import json

        nonlocal pages_sent
        start = pages_sent * 200
        records = [lead(start + n) for n in range(min(200, total - start))]
        pages_sent += 1
        more = start + len(records) < total
        token = f"token-{pages_sent}" if more else None
        body = page(records, more=more, token=token)
        return 200, {"Content-Type": "application/json"}, json.dumps(body)

    rsps.add_callback(responses.GET, f"{CRM}/Leads", callback=listing)

    records = list(client.iter_records("Leads", ["Email"]))

    assert len(records) == total
    assert len({r["id"] for r in records}) == total
    assert len(rsps.calls) == 13
    queries = [query_of(call) for call in rsps.calls]
    assert queries[0]["page"] == "1"
    assert "page_token" not in queries[0]
    for number, query in enumerate(queries[1:], start=1):
        assert "page" not in query
        assert query["page_token"] == f"token-{number}"
        assert query["fields"] == queries[0]["fields"]
        assert query["sort_by"] == "Modified_Time"


def test_paging_falls_back_to_page_numbers_when_zoho_gives_no_token(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    rsps.get(f"{CRM}/Leads", json=page([lead(1)], more=True))
    rsps.get(f"{CRM}/Leads", json=page([lead(2)], more=False))

    assert [r["id"] for r in client.iter_records("Leads", ["Email"])] == ["1", "2"]
    assert [query_of(c).get("page") for c in rsps.calls] == ["1", "2"]


def test_incremental_listing_sends_if_modified_since_with_an_offset(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    rsps.get(f"{CRM}/Leads", json=page([lead(1)], more=False))

    since = datetime(2026, 1, 15, 10, 20, 30, 123456, tzinfo=IST)
    list(client.iter_records("Leads", ["Email"], modified_since=since))

    assert rsps.calls[0].request.headers["If-Modified-Since"] == "2026-01-15T10:20:30+05:30"


def test_incremental_listing_refuses_a_naive_datetime_up_front(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    with pytest.raises(ValueError, match="time zone"):
        client.iter_records("Leads", ["Email"], modified_since=datetime(2026, 1, 15))

    assert len(rsps.calls) == 0


@pytest.mark.parametrize("status", [204, 304])
def test_no_content_and_not_modified_mean_no_records_without_parsing(
    client: ZohoClient, rsps: responses.RequestsMock, status: int
) -> None:
    # An empty body is not JSON, so parsing it would have raised ZohoMalformedResponse.
    for path in ("/Leads", "/Leads/deleted", "/settings/fields"):
        rsps.get(f"{CRM}{path}", body="", status=status)
    since = datetime(2026, 1, 1, tzinfo=timezone.utc)

    assert list(client.iter_records("Leads", ["Email"], modified_since=since)) == []
    assert list(client.iter_deleted("Leads")) == []
    assert client.fields("Leads") == []


def test_converted_leads_filter_is_passed_through(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    rsps.get(f"{CRM}/Leads", json=page([lead(1)], more=False))

    list(client.iter_records("Leads", ["Email"], converted="both"))

    assert query_of(rsps.calls[0])["converted"] == "both"


def test_per_page_above_zohos_maximum_is_refused(client: ZohoClient) -> None:
    with pytest.raises(ValueError, match="per_page"):
        client.iter_pages("Leads", ["Email"], per_page=201)


def test_listing_a_module_zoho_does_not_know_is_a_setting_error(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    rsps.get(
        f"{CRM}/Leeds",
        status=400,
        json={
            "code": "INVALID_MODULE",
            "details": {"resource_path_index": 0},
            "message": "the module name given seems to be invalid",
            "status": "error",
        },
    )

    with pytest.raises(ZohoSettingError):
        list(client.iter_records("Leeds", ["Email"]))


def test_listing_without_data_is_malformed(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    rsps.get(f"{CRM}/Leads", json={"info": {"more_records": False}})

    with pytest.raises(ZohoMalformedResponse):
        list(client.iter_records("Leads", ["Email"]))


def test_get_records_fetches_ids_in_chunks_of_100(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    ids = [str(5000 + n) for n in range(230)]
    for start in (0, 100, 200):
        chunk = ids[start : start + 100]
        rsps.get(f"{CRM}/Contacts", json={"data": [lead(int(i)) for i in chunk]})

    records = client.get_records("Contacts", ids, ["Email"])

    assert [r["id"] for r in records] == ids
    queries = [query_of(call) for call in rsps.calls]
    assert [len(q["ids"].split(",")) for q in queries] == [100, 100, 30]
    assert all(q["fields"] == "id,Modified_Time,Email" for q in queries)


def test_get_record_returns_the_record_or_none(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    rsps.get(f"{CRM}/Leads/5725767000000524157", json={"data": [lead(5725767000000524157)]})
    rsps.get(f"{CRM}/Leads/5725767000000000001", status=204)

    assert client.get_record("Leads", "5725767000000524157") == lead(5725767000000524157)
    assert client.get_record("Leads", "5725767000000000001") is None


def test_deleted_records_are_paged_and_parsed(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    first = {
        "data": [
            {
                "deleted_by": {"name": "Patricia Boyle", "id": "410888000000086001"},
                "id": "410888000000099071",
                "display_name": "Patricia",
                "type": "recycle",
                "created_by": {"name": "Patricia Boyle", "id": "410888000000086001"},
                "deleted_time": "2015-06-19T11:19:38+05:30",
            }
        ],
        "info": {"per_page": 200, "count": 1, "page": 1, "more_records": True},
    }
    second = {
        "data": [
            {
                "deleted_by": None,
                "id": "410888000000680013",
                "display_name": None,
                "type": "permanent",
                "created_by": None,
                "deleted_time": "2016-10-26T11:44:15+05:30",
            }
        ],
        "info": {"per_page": 200, "count": 1, "page": 2, "more_records": False},
    }
    rsps.get(f"{CRM}/Leads/deleted", json=first)
    rsps.get(f"{CRM}/Leads/deleted", json=second)
    since = datetime(2015, 1, 1, tzinfo=timezone.utc)

    deleted = list(client.iter_deleted("Leads", modified_since=since))

    assert [d.id for d in deleted] == ["410888000000099071", "410888000000680013"]
    assert deleted[0].type == "recycle"
    assert deleted[0].deleted_time == datetime(2015, 6, 19, 5, 49, 38, tzinfo=timezone.utc)
    assert deleted[0].display_name == "Patricia"
    assert deleted[0].deleted_by == {"name": "Patricia Boyle", "id": "410888000000086001"}
    assert deleted[1].deleted_by is None
    assert deleted[1].display_name is None
    queries = [query_of(call) for call in rsps.calls]
    assert queries == [
        {"type": "all", "page": "1", "per_page": "200"},
        {"type": "all", "page": "2", "per_page": "200"},
    ]
    assert rsps.calls[0].request.headers["If-Modified-Since"] == "2015-01-01T00:00:00+00:00"


def test_the_record_count_is_one_call_and_a_whole_number(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    rsps.get(f"{CRM}/Leads/actions/count", json={"count": 104_321})
    assert client.count_records("Leads") == 104_321
    assert len(rsps.calls) == 1


@pytest.mark.parametrize("body", [{}, {"count": "12"}, {"count": -1}, {"count": True}, [1]])
def test_a_count_that_is_not_a_whole_number_is_malformed(
    client: ZohoClient, rsps: responses.RequestsMock, body: Any
) -> None:
    rsps.get(f"{CRM}/Leads/actions/count", json=body)
    with pytest.raises(ZohoMalformedResponse, match="record count"):
        client.count_records("Leads")
