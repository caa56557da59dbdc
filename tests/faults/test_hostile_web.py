"""Issue 25's attacks on the running demo, as rows of the fault report: each scenario feeds
every hostile input of one finding and survives only if none is a 500, an off-site redirect,
an unbounded read or a stored spelling. tests/web/ holds the detailed tests of each; these
count the inputs so the report shows what was tried."""

from __future__ import annotations

import html
from typing import Any

import pytest
from flask import Flask

from flask_zoho_sync.web.hooks import MAX_NOTIFICATION_BYTES
from tests import test_demo_app
from tests.faults.report import ScenarioResult
from tests.test_demo_app import OFF_SITE_NEXT, login_to
from tests.web import conftest as web_fixtures
from tests.web import test_public_bodies
from tests.web.conftest import PREFIX, Admin
from tests.web.test_accounts_server_spellings import REFUSED, callback_with, spelled, stored
from tests.web.test_public_bodies import (
    SIXTY_FOUR_MIB,
    Served,
    post_chunked,
    queued_jobs,
    register_channel,
)
from tests.web.test_url_bounds import OUT_OF_RANGE, id_rules, url_with

# The fixtures these scenarios share with the tests they summarise.
make_admin = web_fixtures.make_admin
admin = web_fixtures.admin
sandbox_admin = web_fixtures.sandbox_admin
served = test_public_bodies.served
demo = test_demo_app.demo

pytestmark = pytest.mark.redis


@pytest.mark.fault_category("hostile web input: nested JSON to /notify")
def test_nested_json_to_notify_is_refused_as_400(
    admin: Admin,
    fault_scenario: ScenarioResult,
) -> None:
    register_channel(admin)
    for opener in (b"[", b'{"a":', b'{"ids":[', b'["\\"",'):
        body = (opener * (MAX_NOTIFICATION_BYTES // len(opener)))[:MAX_NOTIFICATION_BYTES]
        response = admin.client.post(f"{PREFIX}/notify", data=body, content_type="application/json")
        fault_scenario.inputs += 1
        assert response.status_code == 400, (opener, response.status_code)
        assert "nests" in response.get_json()["error"]
    assert queued_jobs(admin) == 0


@pytest.mark.fault_category("hostile web input: 64 MiB chunked bodies")
def test_chunked_uploads_to_public_endpoints_are_read_no_further_than_the_cap(
    served: Served, admin: Admin, fault_scenario: ScenarioResult
) -> None:
    register_channel(admin)
    for path, expected, cap in (("/notify", 413, MAX_NOTIFICATION_BYTES + 1), ("/cron", 403, 0)):
        before = served.bytes_read
        status, _, _ = post_chunked(served.port, path, b"[" * 65536, SIXTY_FOUR_MIB)
        fault_scenario.inputs += 1
        assert status == expected, path
        assert served.bytes_read - before <= cap, (path, served.bytes_read - before)
    fault_scenario.note = f"at most {MAX_NOTIFICATION_BYTES + 1} bytes read of 64 MiB"


@pytest.mark.fault_category("hostile web input: out-of-range URL ids")
def test_out_of_range_ids_and_pages_are_never_a_server_error(
    admin: Admin, fault_scenario: ScenarioResult
) -> None:
    for value in OUT_OF_RANGE:
        for rule in id_rules(admin):
            path = url_with(rule, value).removeprefix(PREFIX)
            response = admin.post(path) if "POST" in (rule.methods or ()) else admin.get(path)
            fault_scenario.inputs += 1
            assert response.status_code == 404, (rule.rule, value)
        for path in (f"/history/contacts/{value}", f"/history?page={value}"):
            fault_scenario.inputs += 1
            assert admin.get(path).status_code in (200, 400), (path, value)


@pytest.mark.fault_category("hostile web input: login next redirects")
def test_the_demo_login_never_redirects_off_the_site(
    demo: Flask, fault_scenario: ScenarioResult
) -> None:
    for raw_next in OFF_SITE_NEXT:
        fault_scenario.inputs += 1
        assert login_to(demo, raw_next) == "/", raw_next


@pytest.mark.fault_category("hostile web input: accounts-server spellings")
def test_accounts_server_spellings_that_could_hide_a_host_store_nothing(
    sandbox_admin: Admin, zoho_sandbox: Any, fault_scenario: ScenarioResult
) -> None:
    for template, reason in REFUSED:
        server = spelled(zoho_sandbox.accounts_server, template)
        response = callback_with(sandbox_admin, **{"accounts-server": server})
        fault_scenario.inputs += 1
        assert response.status_code == 400, server
        assert reason in html.unescape(response.get_data(as_text=True))
    assert stored(sandbox_admin) == []
