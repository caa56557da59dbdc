"""429s (concurrency and credits), scripted and random faults, the meter, the clock."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from flask_zoho_sync.sandbox import SandboxHandle
from flask_zoho_sync.sandbox.handle import SandboxControlError
from flask_zoho_sync.zoho.credits import estimate_credits

from .conftest import Api


def test_concurrency_cap_gives_429_to_the_excess(sandbox: SandboxHandle, api: Api) -> None:
    sandbox.faults(latency_ms=400, concurrency_limit=3)

    def call(_: int) -> int:
        return api.get("/org").status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(call, range(8)))
    assert statuses.count(200) >= 3
    assert statuses.count(429) >= 1
    stats = sandbox.stats()
    assert stats["concurrency_peak"] == 3
    assert stats["rejected"]["concurrency"] == statuses.count(429)


def test_429_body_has_zoho_shape(sandbox: SandboxHandle, api: Api) -> None:
    sandbox.faults(daily_credits=3)
    assert api.get("/org").status_code == 200
    assert api.get("/org").headers.get("X-API-CREDITS-REMAINING") == "1"
    api.get("/org")
    exhausted = api.get("/org")
    assert exhausted.status_code == 429
    body = exhausted.json()
    assert (
        body["code"] == "TOO_MANY_REQUESTS" and body["status"] == "error" and body["details"] == {}
    )
    assert "Retry-After" not in exhausted.headers
    sandbox.advance_clock(86_401)  # the window is rolling 24 h
    assert api.get("/org", token=api.refresh()["access_token"]).status_code == 200


def test_credits_header_appears_only_after_half_is_used(sandbox: SandboxHandle, api: Api) -> None:
    sandbox.faults(daily_credits=100)
    assert "X-API-CREDITS-REMAINING" not in api.get("/org").headers
    sandbox.faults(consume_credits=60)
    assert api.get("/org").headers["X-API-CREDITS-REMAINING"] == "38"


def test_fail_next_scripts_a_429_then_success(sandbox: SandboxHandle, api: Api) -> None:
    sandbox.faults(fail_next=[{"status": 429, "path_contains": "/Leads"}])
    assert api.get("/org").status_code == 200  # not matching: untouched
    first = api.get("/Leads", params={"fields": "Last_Name"})
    assert first.status_code == 429 and first.json()["code"] == "TOO_MANY_REQUESTS"
    assert api.get("/Leads", params={"fields": "Last_Name"}).status_code == 204


def test_fail_next_html_page_malformed_json_and_200_error(sandbox: SandboxHandle, api: Api) -> None:
    sandbox.faults(
        fail_next=[
            {"status": 502, "body": "<html><body>Bad Gateway</body></html>"},
            {"status": 200, "body": '{"data": [', "content_type": "application/json"},
            {
                "status": 200,
                "body": {
                    "code": "INTERNAL_ERROR",
                    "details": {},
                    "message": "x",
                    "status": "error",
                },
            },
            {"status": 200, "body": {"error": "invalid_code"}, "path_contains": "/oauth/v2/token"},
        ]
    )
    html = api.get("/org")
    assert html.status_code == 502 and html.headers["Content-Type"].startswith("text/html")
    broken = api.get("/org")
    assert broken.status_code == 200 and broken.text == '{"data": ['
    error_200 = api.get("/org")
    assert error_200.status_code == 200 and error_200.json()["code"] == "INTERNAL_ERROR"
    assert api.refresh() == {"error": "invalid_code"}
    assert api.get("/org").status_code == 200


def test_random_5xx_rate_is_deterministic_with_a_seed(sandbox: SandboxHandle, api: Api) -> None:
    def run() -> list[int]:
        sandbox.faults(rate_5xx=0.5, seed=7)
        return [api.get("/org").status_code for _ in range(12)]

    first, second = run(), run()
    assert first == second
    assert 500 in first and 200 in first
    sandbox.faults(clear=True)
    assert {api.get("/org").status_code for _ in range(5)} == {200}


def test_random_429_rate(sandbox: SandboxHandle, api: Api) -> None:
    sandbox.faults(rate_429=1.0)
    assert api.get("/org").status_code == 429


def test_stats_count_calls_and_credits_by_endpoint(sandbox: SandboxHandle, api: Api) -> None:
    api.insert("Leads", *({"Last_Name": f"N{n}"} for n in range(25)))
    api.get("/Leads", params={"fields": "Last_Name"})
    api.get("/Leads", params={"fields": "Last_Name", "page": "2", "per_page": "10"})
    record_id = sandbox.records("Leads")[0]["id"]
    api.get(f"/Leads/{record_id}")
    stats = sandbox.stats()
    assert stats["calls"]["POST /Leads"] == 1
    assert stats["credits"]["POST /Leads"] == estimate_credits("POST", "/crm/v8/Leads", 25) == 3
    assert stats["calls"]["GET /Leads"] == 2 and stats["credits"]["GET /Leads"] == 2
    assert stats["calls"]["GET /Leads/{id}"] == 1
    assert stats["calls"]["POST /oauth/v2/token"] == 1
    assert stats["credits"].get("POST /oauth/v2/token", 0) == 0
    assert stats["total_credits"] == 6
    assert stats["credits_remaining"] == stats["credits_limit"] - 6


def test_clock_advance_and_set(sandbox: SandboxHandle) -> None:
    start = sandbox.now()
    moved = sandbox.advance_clock(3600)
    assert 3599 <= (moved - start).total_seconds() <= 3610
    fixed = sandbox.set_clock("2026-07-01T12:00:00+00:00")
    assert fixed.isoformat().startswith("2026-07-01T05:00:")  # shown in the org zone (PDT)
    assert fixed.utcoffset().total_seconds() == -7 * 3600


def test_fail_records_refuses_the_given_positions_and_applies_the_rest(
    sandbox: SandboxHandle, api: Api
) -> None:
    sandbox.faults(fail_records=[{"positions": [0, 2, -1], "code": "RECORD_LOCKED"}])
    response = api.post("/Leads", json={"data": [{"Last_Name": f"N{n}"} for n in range(5)]})
    assert response.status_code == 207
    verdicts = [element["status"] for element in response.json()["data"]]
    assert verdicts == ["error", "success", "error", "success", "error"]
    assert response.json()["data"][0]["code"] == "RECORD_LOCKED"
    assert sorted(r["Last_Name"] for r in sandbox.records("Leads")) == ["N1", "N3"]
    # The spec was used up by that one batch.
    assert api.post("/Leads", json={"data": [{"Last_Name": "N9"}]}).status_code == 201


def test_fail_records_all_and_on_deletes(sandbox: SandboxHandle, api: Api) -> None:
    ids = [
        element["details"]["id"]
        for element in api.insert("Leads", *({"Last_Name": f"N{n}"} for n in range(3)))
    ]
    sandbox.faults(fail_records=[{"positions": "all", "method": "DELETE"}])
    assert api.get("/Leads", params={"fields": "Last_Name"}).status_code == 200  # a read
    refused = api.delete("/Leads", params={"ids": ",".join(ids)})
    assert refused.status_code == 400
    assert {e["code"] for e in refused.json()["data"]} == {"INVALID_DATA"}
    assert len(sandbox.records("Leads")) == 3
    assert api.delete("/Leads", params={"ids": ",".join(ids)}).status_code == 200
    assert sandbox.records("Leads") == []


def test_delay_after_does_the_work_then_answers_late(sandbox: SandboxHandle, api: Api) -> None:
    sandbox.faults(delay_next=[{"delay_ms": 1500, "when": "after", "method": "POST"}])
    with pytest.raises(requests.ReadTimeout):
        api.session.post(
            f"{api.base}/crm/v8/Leads",
            json={"data": [{"Last_Name": "Late"}]},
            headers={"Authorization": f"Zoho-oauthtoken {api.token}"},
            timeout=0.5,
        )
    # The answer was lost, but the create happened.
    assert [r["Last_Name"] for r in sandbox.records("Leads")] == ["Late"]


def test_delay_before_holds_the_request(sandbox: SandboxHandle, api: Api) -> None:
    sandbox.faults(delay_next=[{"delay_ms": 300, "path_contains": "/org"}])
    started = time.monotonic()
    assert api.get("/org").status_code == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    assert api.get("/org").status_code == 200
    assert time.monotonic() - started < 0.3


def test_garble_next_cuts_a_successful_answer_short(sandbox: SandboxHandle, api: Api) -> None:
    sandbox.faults(garble_next=[{"method": "POST", "keep": 10}])
    response = api.post("/Leads", json={"data": [{"Last_Name": "Cut"}]})
    assert response.status_code == 201
    assert len(response.content) == 10
    with pytest.raises(ValueError):
        response.json()
    assert [r["Last_Name"] for r in sandbox.records("Leads")] == ["Cut"]


def test_page_token_ttl_expires_tokens_mid_walk(sandbox: SandboxHandle, api: Api) -> None:
    sandbox.generate_records("Leads", 5)
    sandbox.faults(page_token_ttl=0)
    params = {"fields": "Last_Name", "per_page": "2", "sort_by": "id", "sort_order": "asc"}
    first = api.get("/Leads", params=params).json()
    token = first["info"]["next_page_token"]
    assert token
    expired = api.get("/Leads", params={**params, "page_token": token})
    assert expired.status_code == 400
    assert expired.json()["code"] == "EXPIRED_VALUE"
    sandbox.faults(clear=True)
    fresh = api.get("/Leads", params=params).json()["info"]["next_page_token"]
    assert api.get("/Leads", params={**params, "page_token": fresh}).status_code == 200


def test_new_fault_queues_reject_bad_shapes(sandbox: SandboxHandle) -> None:
    for key in ("delay_next", "garble_next", "fail_records"):
        with pytest.raises(SandboxControlError, match=key):
            sandbox.faults(**{key: {"positions": [1]}})
    shown = sandbox.faults(fail_records=[{"positions": [1]}], page_token_ttl=5)
    assert shown["fail_records"] == [{"positions": [1]}] and shown["page_token_ttl"] == 5
    assert sandbox.faults(clear=True)["fail_records"] == []


def test_reset_restores_the_limits_a_test_changed(sandbox: SandboxHandle) -> None:
    configured = sandbox.faults()
    sandbox.faults(daily_credits=3, token_ttl=5, concurrency_limit=1)
    sandbox.reset()
    after = sandbox.faults()
    for key in ("daily_credits", "token_ttl", "concurrency_limit"):
        assert after[key] == configured[key], key
