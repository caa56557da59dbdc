"""Real Zoho answers served to our client: what the sync would make of them.

Each test serves one recording (see README.md for where each came from) with `responses` and
asserts what a user of the client would see: the records and ids it returns, datetimes as
aware UTC instants, the page token it follows, the named error it raises, or the refresh it
does before asking anyone to reconnect.
"""

from __future__ import annotations

import zipfile
from datetime import datetime, timezone
from pathlib import Path

import pytest
import responses

from flask_zoho_sync.zoho.auth import TokenSet, ZohoOAuth
from flask_zoho_sync.zoho.bulk import BulkClient
from flask_zoho_sync.zoho.client import ZohoClient
from flask_zoho_sync.zoho.errors import (
    ZohoRateLimited,
    ZohoReconnectRequired,
    ZohoRequestError,
    ZohoTokenRejected,
    ZohoTokenThrottled,
)
from flask_zoho_sync.zoho.timefmt import parse_datetime
from tests.zoho.conftest import (
    ACCESS_TOKEN,
    ACCOUNTS,
    API,
    TOKEN_URL,
    FakeClock,
    RecordedSleeps,
    query_of,
)

from .recorded import Recording, load

UTC = timezone.utc


def serve(
    rsps: responses.RequestsMock,
    recording: Recording,
    *,
    url: str | None = None,
    status: int | None = None,
) -> None:
    """Answer the recording's request (on v8, at our EU test domain) with its reply."""
    headers = {key: value for key, value in recording.headers.items() if key != "Content-Type"}
    headers.pop("Content-Length", None)
    rsps.add(
        recording.method,
        url or API + recording.v8_path(),
        body=recording.body_text(),
        status=status or recording.status,
        content_type=recording.content_type(),
        headers=headers,
    )


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


# -- OAuth ------------------------------------------------------------------------------------


def test_a_documented_grant_reply_becomes_a_stored_connection(
    oauth: ZohoOAuth, rsps: responses.RequestsMock, clock: FakeClock
) -> None:
    recording = load("oauth_grant")
    serve(rsps, recording, url=TOKEN_URL)

    tokens = oauth.exchange_code("1000.grant", ACCOUNTS)

    body = recording.body
    assert tokens.access_token == body["access_token"]
    assert tokens.refresh_token == body["refresh_token"]
    assert tokens.api_domain == body["api_domain"]
    assert tokens.accounts_server == ACCOUNTS
    assert tokens.expires_at == clock.now + 3600


def test_a_documented_refresh_reply_keeps_the_refresh_token(
    oauth: ZohoOAuth, rsps: responses.RequestsMock, valid_tokens: TokenSet, clock: FakeClock
) -> None:
    recording = load("oauth_refresh")
    serve(rsps, recording, url=TOKEN_URL)

    tokens = oauth.refresh(valid_tokens)

    assert tokens.access_token == recording.body["access_token"]
    assert tokens.refresh_token == valid_tokens.refresh_token  # Zoho sends none back
    assert tokens.api_domain == "https://www.zohoapis.com"
    assert tokens.expires_at == clock.now + 3600


@pytest.mark.parametrize(
    ("name", "code", "advice_part"),
    [
        ("oauth_error_invalid_client", "invalid_client", "data centre"),
        ("oauth_error_invalid_code", "invalid_code", "refresh token was revoked"),
    ],
)
def test_token_errors_sent_with_http_200_ask_to_reconnect(
    name: str,
    code: str,
    advice_part: str,
    oauth: ZohoOAuth,
    rsps: responses.RequestsMock,
    valid_tokens: TokenSet,
) -> None:
    serve(rsps, load(name), url=TOKEN_URL)

    with pytest.raises(ZohoReconnectRequired) as caught:
        oauth.refresh(valid_tokens)

    assert caught.value.code == code
    assert advice_part in str(caught.value)


def test_the_token_throttle_is_a_wait_not_a_reconnect(
    oauth: ZohoOAuth, rsps: responses.RequestsMock, valid_tokens: TokenSet
) -> None:
    serve(rsps, load("oauth_error_access_denied"), url=TOKEN_URL)

    with pytest.raises(ZohoTokenThrottled) as caught:
        oauth.refresh(valid_tokens)

    assert not isinstance(caught.value, ZohoReconnectRequired)
    assert "ten minutes" in str(caught.value)


# -- reading records --------------------------------------------------------------------------


def test_a_listing_page_gives_its_records_and_the_next_page_token_is_followed(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    recording = load("records_list")
    serve(rsps, recording)
    rsps.get(API + recording.v8_path(), status=204)  # the second page: nothing more

    fields = recording.query["fields"].split(",")
    pages = list(client.iter_pages("Leads", fields, converted="true", per_page=5))

    assert len(pages) == 1
    assert [record["id"] for record in pages[0]] == [
        "3652397000009851001",
        "3652397000009850001",
        "3652397000009843012",
        "3652397000009843001",
        "3652397000009836003",
    ]
    assert all(isinstance(record["id"], str) for record in pages[0])
    converted = parse_datetime(pages[0][0]["Converted_Date_Time"])
    assert converted == datetime(2022, 11, 21, 9, 42, 13, tzinfo=UTC)
    first, second = (query_of(call) for call in rsps.calls)
    assert first["page"] == "1" and "page_token" not in first
    assert second["page_token"] == recording.body["info"]["next_page_token"]
    assert "page" not in second  # Zoho refuses page and page_token together


def test_a_full_record_keeps_its_dollar_keys_and_reads_its_times_as_utc(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    recording = load("record_get_one")
    serve(rsps, recording)

    record = client.get_record("Leads", "1306462000000888026")

    assert record is not None
    assert record["id"] == "1306462000000888026"
    assert record["$approval_state"] == "approved"
    assert record["Owner"] == {
        "name": "Patricia Boyle",
        "id": "1306462000000374001",
        "email": "p.boyle@abc.com",
    }
    assert record["Tag"] == []
    modified = parse_datetime(record["Modified_Time"])
    assert modified.utcoffset() == timezone.utc.utcoffset(None)
    assert modified == utc("2022-02-03T10:55:15+05:30")


def test_a_204_that_still_says_json_is_an_empty_answer(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    """Zoho labels its empty 204 answers application/json (recorded in search_no_match);
    the client must not try to read JSON out of them."""
    recording = load("search_no_match")
    assert recording.headers["Content-Type"].startswith("application/json")
    rsps.get(
        f"{API}/crm/v8/Leads",
        status=204,
        body="",
        content_type=recording.headers["Content-Type"],
        headers={"Server": recording.headers["Server"]},
    )

    assert list(client.iter_records("Leads", ["Last_Name"])) == []


def test_deleted_records_read_recycled_and_permanent_entries(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    serve(rsps, load("records_deleted"))

    entries = list(client.iter_deleted("Leads"))

    assert [(entry.id, entry.type) for entry in entries] == [
        ("410888000000099071", "recycle"),
        ("410888000000094004", "recycle"),
        ("410888000000680013", "permanent"),
        ("410888000000680009", "permanent"),
    ]
    assert entries[0].deleted_time == utc("2015-06-19T11:19:38+05:30")
    assert entries[0].deleted_by == {"name": "Patricia Boyle", "id": "410888000000086001"}
    assert entries[2].deleted_by is None and entries[2].display_name is None
    assert len(rsps.calls) == 1  # more_records was false


# -- writing records --------------------------------------------------------------------------


def test_an_insert_reply_gives_each_record_its_id_and_modified_time(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    serve(rsps, load("record_insert"))

    results = client.insert("Leads", [{"Last_Name": "Boyle"}, {"Last_Name": "Smith"}])

    assert [(r.index, r.ok, r.record_id) for r in results] == [
        (0, True, "3652397000006064046"),
        (1, True, "3652397000006064047"),
    ]
    assert results[0].modified_time == utc("2021-10-10T10:30:15+05:30")
    assert results[0].modified_time is not None and results[0].modified_time.tzinfo is not None


def test_a_refused_record_in_a_400_batch_is_a_verdict_not_an_exception(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    serve(rsps, load("record_insert_invalid_phone"))

    [result] = client.insert("Leads", [{"Last_Name": "Boyle", "Phone": "not a phone"}])

    assert not result.ok
    assert result.code == "INVALID_DATA"
    assert result.record_id is None
    assert result.details == {"expected_data_type": "phone", "api_name": "Phone"}


def test_an_update_reply_confirms_the_record(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    serve(rsps, load("record_update"))

    [result] = client.update("Leads", [{"id": "554023000000527003", "City": "Chennai"}])

    assert result.ok and result.record_id == "554023000000527003"
    assert result.modified_time == utc("2021-05-02T11:17:33+05:30")


def test_an_upsert_reply_says_which_record_was_matched_and_which_was_created(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    serve(rsps, load("record_upsert"))

    updated, inserted = client.upsert(
        "Leads",
        [{"Last_Name": "Boyle", "Email": "p@example.com"}, {"Last_Name": "New"}],
        duplicate_check_fields=["Email"],
    )

    assert (updated.action, updated.duplicate_field, updated.record_id) == (
        "update",
        "Email",
        "4150868000000376008",
    )
    assert (inserted.action, inserted.duplicate_field, inserted.record_id) == (
        "insert",
        None,
        "4150868000003194003",
    )
    assert inserted.modified_time == utc("2020-10-14T10:31:43+05:30")


def test_a_delete_reply_confirms_each_id(client: ZohoClient, rsps: responses.RequestsMock) -> None:
    recording = load("record_delete")
    serve(rsps, recording)

    results = client.delete("Leads", recording.query["ids"].split(","))

    assert [(r.ok, r.record_id) for r in results] == [
        (True, "410405000002264040"),
        (True, "410405000002264025"),
    ]
    assert query_of(rsps.calls[0])["wf_trigger"] == "false"


# -- metadata ---------------------------------------------------------------------------------


def test_field_metadata_is_returned_as_zoho_describes_it(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    serve(rsps, load("fields_leads"))

    fields = {field["api_name"]: field for field in client.fields("Leads")}

    assert fields["Fax"]["data_type"] == "text" and fields["Fax"]["length"] == 30
    assert fields["Last_Name"]["system_mandatory"] is True
    assert fields["Email"]["unique"] == {"case_sensitive": False}
    assert fields["Modified_Time"]["operation_type"]["api_update"] is False


def test_the_org_and_current_user_give_their_time_zones(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    serve(rsps, load("org"))
    serve(rsps, load("current_user"))

    org = client.org()
    user = client.current_user()

    assert (org["time_zone"], org["zgid"]) == ("America/Los_Angeles", "808232144")
    assert (user["id"], user["time_zone"]) == ("5725767000000411001", "America/Los_Angeles")
    assert parse_datetime(user["Modified_Time"]) == utc("2024-12-31T01:59:14-08:00")


# -- notifications ----------------------------------------------------------------------------


def test_watch_replies_are_read_as_per_channel_verdicts(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    serve(rsps, load("watch_enable"))
    serve(rsps, load("watch_details"))
    serve(rsps, load("watch_disable"))

    [enabled] = client.watch([{"channel_id": "10000", "events": ["Deals.all"]}])
    [channel] = client.watch_details()
    disabled = client.unwatch(["10000"])

    assert enabled["code"] == "SUCCESS"
    event = enabled["details"]["events"][0]
    assert parse_datetime(event["channel_expiry"]) == utc("2023-08-02T16:59:50-11:00")
    assert channel["channel_id"] == "1000000068001"
    assert channel["events"] == ["Leads.edit", "Leads.create", "Leads.delete"]
    assert [item["code"] for item in disabled] == ["SUCCESS", "SUCCESS"]


# -- bulk -------------------------------------------------------------------------------------


@pytest.fixture
def bulk(client: ZohoClient, tmp_path: Path) -> BulkClient:
    return BulkClient(client, poll_interval=2, max_poll_interval=5, timeout=600, work_dir=tmp_path)


def test_bulk_read_replies_give_the_job_and_its_result_page(
    bulk: BulkClient, rsps: responses.RequestsMock
) -> None:
    created = load("bulk_read_create")
    completed = load("bulk_read_completed")
    serve(rsps, created)
    serve(rsps, completed, url=f"{API}/crm/bulk/v8/read/5725767000000859031")

    job_id = bulk.start_read("Leads", ["Last_Name", "Email"])
    page = bulk.wait_for_read(job_id)

    assert job_id == "5725767000000859031"
    assert (page.page, page.count, page.more_records) == (1, 200000, True)
    assert page.next_page_token == "bca6fba106357ae3b1ecbd63f"
    assert page.download_url == completed.body["data"][0]["result"]["download_url"]


def test_bulk_write_replies_give_the_file_the_job_and_its_counts(
    bulk: BulkClient, rsps: responses.RequestsMock, tmp_path: Path
) -> None:
    serve(rsps, load("bulk_write_upload"), url="https://content.zohoapis.eu/crm/v8/upload")
    serve(rsps, load("bulk_write_create"))
    serve(rsps, load("bulk_write_completed"), url=f"{API}/crm/bulk/v8/write/111111000000541958")
    archive = tmp_path / "Deals.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("Deals.csv", "Deal_Name,Stage\nA,Qualification\n")

    file_id = bulk.upload(archive, "6196138")
    job_id = bulk.create_write_job("Deals", "insert", file_id, ["Deal_Name", "Stage"])
    job = bulk.wait_for_write(job_id)

    assert file_id == "111111000001492610"
    assert job_id == "111111000000541958"
    assert job["resource"][0]["file"]["skipped_count"] == 100
    assert rsps.calls[0].request.headers["X-CRM-ORG"] == "6196138"


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["error_authentication_failure", "error_invalid_token"])
def test_a_rejected_token_is_refreshed_once_and_the_call_repeated(
    name: str, client: ZohoClient, rsps: responses.RequestsMock, sleeps: RecordedSleeps
) -> None:
    refresh = load("oauth_refresh")
    serve(rsps, load(name), url=f"{API}/crm/v8/org")
    serve(rsps, refresh, url=TOKEN_URL)
    # The repeat goes to the api_domain the refresh reply names.
    serve(rsps, load("org"), url=f"{refresh.body['api_domain']}/crm/v8/org")

    assert client.org()["zgid"] == "808232144"

    refreshed = refresh.body["access_token"]
    authorizations = [call.request.headers.get("Authorization") for call in rsps.calls]
    assert authorizations[0] == f"Zoho-oauthtoken {ACCESS_TOKEN}"
    assert authorizations[2] == f"Zoho-oauthtoken {refreshed}"
    assert sleeps == []


@pytest.mark.parametrize("name", ["error_authentication_failure", "error_invalid_token"])
def test_a_token_refused_after_the_refresh_asks_the_admin_to_reconnect(
    name: str, client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    recording = load(name)
    refresh = load("oauth_refresh")
    serve(rsps, recording, url=f"{API}/crm/v8/org")
    serve(rsps, refresh, url=TOKEN_URL)
    serve(rsps, recording, url=f"{refresh.body['api_domain']}/crm/v8/org")

    with pytest.raises(ZohoTokenRejected) as caught:
        client.org()

    assert caught.value.code == recording.body["code"]
    assert caught.value.http_status == 401
    assert "Reconnect Zoho CRM" in str(caught.value)
    assert len(rsps.calls) == 3  # call, one refresh, one repeat: no loop


def test_paging_past_2000_without_a_token_is_a_request_error_with_the_limit(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    recording = load("error_discrete_pagination")
    serve(rsps, recording, url=f"{API}/crm/v8/Leads")

    with pytest.raises(ZohoRequestError) as caught:
        list(client.iter_records("Leads", ["Last_Name"]))

    assert caught.value.code == "DISCRETE_PAGINATION_LIMIT_EXCEEDED"
    assert caught.value.details == {"limit": 2000}


def test_a_429_is_retried_with_backoff_then_reported_as_rate_limited(
    client: ZohoClient, rsps: responses.RequestsMock, sleeps: RecordedSleeps
) -> None:
    serve(rsps, load("error_too_many_requests"), url=f"{API}/crm/v8/org")

    with pytest.raises(ZohoRateLimited) as caught:
        client.org()

    assert caught.value.http_status == 429
    assert len(rsps.calls) == client.max_retries + 1
    assert len(sleeps) == client.max_retries
    assert "API credit" in str(caught.value)


def test_a_documented_coql_reply_gives_its_records_and_whether_more_follow(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    recording = load("coql_select")
    serve(rsps, recording)

    records, more = client.coql(recording.request_body["select_query"])

    assert [(r["id"], r["Full_Name"]) for r in records] == [
        ("554023000000310003", "Patricia Boyle"),
        ("554023000000310012", "Steve Boyle"),
    ]
    assert records[0]["Languages_Known"] == ["English", "German"]
    assert more is False
    assert client.meter.snapshot()["credits"] == {"POST /coql": 1}  # LIMIT 2: the lowest price
