"""GET {prefix}/health, ``status --check`` and GET {prefix}/metrics on a synced host."""

from __future__ import annotations

import json
import re
import sys
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from flask_zoho_sync.health import health_report
from flask_zoho_sync.preferences import get_settings
from tests.conftest import TEST_REDIS_URL
from tests.engine.conftest import Synced
from tests.hostapp import make_host_app

TOKEN = "health-token-for-tests"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def synced_config() -> dict[str, Any]:
    return {"ZOHO_SYNC_HEALTH_TOKEN": TOKEN}


def cli(synced: Synced, *args: str) -> Any:
    return synced.host.app.test_cli_runner().invoke(args=["zoho-sync", *args])


def _add(synced: Synced, count: int) -> None:
    for number in range(count):
        synced.add_contact(first_name="H", last_name=f"H{number}", email=f"h{number}@x.org")


def test_health_refuses_without_the_token_or_an_admin(synced: Synced) -> None:
    client = synced.host.app.test_client()
    missing = client.get("/admin/zoho/health")
    assert missing.status_code == 401
    assert "Bearer" in missing.headers["WWW-Authenticate"]
    assert "ZOHO_SYNC_HEALTH_TOKEN" in missing.get_json()["error"]
    wrong = client.get("/admin/zoho/health", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403
    assert wrong.get_json() == {
        "ok": False,
        "error": "The bearer token is not ZOHO_SYNC_HEALTH_TOKEN.",
    }
    assert client.get("/admin/zoho/metrics").status_code == 401


def test_a_synced_host_is_healthy_and_says_what_it_measured(synced: Synced) -> None:
    _add(synced, 2)
    synced.first_manual_sync()
    answer = synced.host.app.test_client().get("/admin/zoho/health", headers=BEARER)
    assert answer.status_code == 200, answer.get_json()
    health = answer.get_json()
    assert health["healthy"] is True and health["problems"] == []
    assert health["token_state"] == "ok"
    assert health["last_successful_pull"] and health["last_successful_push"]
    assert health["oldest_unsent_change"] == {"contacts": 0, "since": None, "age_seconds": None}
    assert health["queue"] == {"waiting": 0, "scheduled": 0, "failed": 0}
    assert health["credits"]["used_today"] > 0
    assert health["failed_records"] == 0

    check = cli(synced, "status", "--check")
    assert (check.exit_code, check.output) == (0, "healthy\n")
    status = json.loads(cli(synced, "status", "--json").output)
    assert status["health"]["healthy"] is True
    assert status["counts"]["linked"] == 2  # the status it always printed is still there


def test_an_admin_reads_health_without_a_token_and_no_one_else_does(synced: Synced) -> None:
    synced.first_manual_sync()
    synced.host.app.secret_key = "s3cret"
    admin = {"is": True}
    synced.state.admin_check = lambda: admin["is"]
    answer = synced.host.app.test_client().get("/admin/zoho/health")
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["healthy"] is True
    assert answer.get_json()["token_state"] == "ok"
    admin["is"] = False  # a signed-in user who is not an admin
    refused = synced.host.app.test_client().get("/admin/zoho/health")
    assert refused.status_code == 401
    assert "healthy" not in refused.get_json()


def test_a_lost_connection_makes_health_fail_and_status_check_exit_non_zero(
    synced: Synced,
) -> None:
    synced.first_manual_sync()
    synced.zoho.faults(revoke_all_tokens=True, expire_access_tokens=True)
    assert cli(synced, "sync").exit_code == 1
    answer = synced.host.app.test_client().get("/admin/zoho/health", headers=BEARER)
    assert answer.status_code == 503
    health = answer.get_json()
    assert health["token_state"] == "lost"
    assert health["problems"][0].startswith("The Zoho connection is lost: ")
    check = cli(synced, "status", "--check")
    assert check.exit_code == 1
    assert check.output.startswith("UNHEALTHY: The Zoho connection is lost: ")
    assert len(check.output.splitlines()) == len(health["problems"])


def test_late_pulls_and_waiting_changes_fail_health_past_their_thresholds(
    synced: Synced,
) -> None:
    synced.first_manual_sync()
    with synced.host.app.app_context():
        get_settings(synced.host.db.session).auto_sync = True
        synced.host.db.session.commit()
    synced.add_contact(first_name="Late", last_name="Change", email="late@x.org")
    config = synced.state.config.operations  # defaults: 3 x push delay, 2 x pull interval
    assert (config.max_outbox_age, config.max_pull_age) == (1800, 172800)
    with synced.host.app.app_context():
        now = datetime.now(timezone.utc)
        assert health_report(synced.state, now=now)["healthy"] is True
        later = health_report(synced.state, now=now + timedelta(days=3))
    assert later["healthy"] is False
    assert any(line.startswith("No successful pull for 72.0 hours") for line in later["problems"])
    waiting = [line for line in later["problems"] if "oldest unsent change" in line]
    assert len(waiting) == 1 and "is a worker running" in waiting[0]


def _metric(text: str, name: str, **labels: str) -> float:
    shown = ",".join(f'{key}="{value}"' for key, value in labels.items())
    pattern = re.escape(f"{name}{{{shown}}}" if labels else name) + r" (\S+)"
    found = re.search(rf"^{pattern}$", text, re.MULTILINE)
    assert found, f"{name} {labels} not in:\n{text}"
    return float(found.group(1))


def test_metrics_come_from_the_database_so_every_process_reports_the_same(
    synced: Synced, database_url: str
) -> None:
    _add(synced, 3)
    synced.first_manual_sync()
    first = synced.host.app.test_client().get("/admin/zoho/metrics", headers=BEARER)
    assert first.status_code == 200
    assert first.content_type.startswith("text/plain")
    text = first.get_data(as_text=True)
    assert _metric(text, "zoho_sync_records_total", direction="to_zoho", outcome="create") == 3
    assert _metric(text, "zoho_sync_runs_total", kind="sync", status="succeeded") == 1
    assert _metric(text, "zoho_sync_run_duration_seconds_count", kind="sync") == 1
    assert _metric(text, "zoho_sync_run_duration_seconds_sum", kind="sync") > 0
    calls = sum(
        float(value)
        for value in re.findall(r"^zoho_sync_api_calls_total\{[^}]*\} (\S+)$", text, re.M)
    )
    assert calls >= 2
    assert _metric(text, "zoho_sync_outbox_pending_contacts") == 0
    assert _metric(text, "zoho_sync_last_pull_age_seconds") < 600

    # Another process (a second app on the same database, as the web is to the worker)
    # did none of this work and reports the same counts.
    other = make_host_app(
        database_url,
        fresh_tables=False,
        ZOHO_SYNC_REDIS_URL=TEST_REDIS_URL,
        ZOHO_SYNC_HEALTH_TOKEN=TOKEN,
    )
    try:
        second = other.app.test_client().get("/admin/zoho/metrics", headers=BEARER)
        text2 = second.get_data(as_text=True)
        assert _metric(text2, "zoho_sync_records_total", direction="to_zoho", outcome="create") == 3
        assert _metric(text2, "zoho_sync_runs_total", kind="sync", status="succeeded") == 1
    finally:
        with other.app.app_context():
            other.db.session.remove()
            other.db.engine.dispose()


def test_metrics_say_how_to_install_prometheus_client_when_it_is_missing(
    synced: Synced, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import now fails
    answer = synced.host.app.test_client().get("/admin/zoho/metrics", headers=BEARER)
    assert answer.status_code == 404
    assert "pip install 'Flask-Zoho-Sync[metrics]'" in answer.get_json()["error"]


def test_failed_records_are_counted_and_fail_health_past_the_configured_limit(
    synced: Synced,
) -> None:
    synced.first_manual_sync()
    _add(synced, 3)
    synced.zoho.faults(fail_records=[{"positions": "all", "code": "INVALID_DATA"}])
    assert synced.sync(mode="all", trigger="cli").status == "partial"
    client = synced.host.app.test_client()
    health = client.get("/admin/zoho/health", headers=BEARER).get_json()
    assert health["failed_records"] == 3
    assert health["healthy"] is True  # failed records are History's errors, not an outage
    metrics = client.get("/admin/zoho/metrics", headers=BEARER).get_data(as_text=True)
    assert _metric(metrics, "zoho_sync_failed_records") == 3
    assert _metric(metrics, "zoho_sync_records_total", direction="to_zoho", outcome="error") == 3

    ops = synced.state.config.operations
    synced.state.config = replace(synced.state.config, operations=replace(ops, max_failed=2))
    answer = client.get("/admin/zoho/health", headers=BEARER)
    assert answer.status_code == 503
    assert answer.get_json()["problems"] == [
        "3 records failed to sync (more than ZOHO_SYNC_HEALTH_MAX_FAILED=2): see History's errors."
    ]
    check = cli(synced, "status", "--check")
    assert check.exit_code == 1
    assert check.output.startswith("UNHEALTHY: 3 records failed to sync")
