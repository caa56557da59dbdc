"""The command line a new operator uses: settings, sync, status, tick and the sandbox."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
import requests

from tests.engine.conftest import Synced


def invoke(synced: Synced, *args: str):  # type: ignore[no-untyped-def]
    return synced.host.app.test_cli_runner().invoke(args=["zoho-sync", *args])


def test_settings_refuse_a_bad_time_zone_and_keep_the_old_one(synced: Synced) -> None:
    result = invoke(synced, "settings", "--timezone", "Mars/Base")
    assert result.exit_code == 1
    assert "IANA" in result.output
    assert "Australia/Sydney" in invoke(synced, "settings").output


def test_settings_refuse_a_malformed_mapping(synced: Synced) -> None:
    result = invoke(synced, "settings", "--map", "phone")
    assert result.exit_code == 2
    assert "HOST_FIELD=ZOHO_FIELD" in result.output


def test_switching_module_with_links_needs_relink(synced: Synced) -> None:
    synced.add_contact(last_name="Lee", email="ann@example.org")
    synced.sync(mode="all")
    refused = invoke(synced, "settings", "--module", "Contacts")
    assert refused.exit_code == 2
    assert "--relink" in refused.output
    accepted = invoke(synced, "settings", "--module", "Contacts", "--relink")
    assert accepted.exit_code == 0, accepted.output
    status = json.loads(invoke(synced, "status", "--json").output)
    assert status["counts"]["linked"] == 0
    # The old module's watermarks would make the first pull skip the new module's records.
    assert status["last_pull_at"] is None and status["last_push_at"] is None


def test_sync_dry_run_prints_a_plan_and_changes_nothing(synced: Synced) -> None:
    for index in range(150):
        synced.add_contact(last_name=f"L{index}", email=f"e{index}@example.org")
    synced.zoho.generate_records("Leads", 30)
    result = invoke(synced, "sync", "--all", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "Plan: succeeded" in result.output
    assert "In Zoho it would: 150 created" in result.output
    assert "In this app it would: 30 created" in result.output
    assert len(synced.zoho.records("Leads")) == 30
    # Reads (1 COQL listing of up to 2,000: 3 credits; 1 deleted), 2 upserts of 100 and 50,
    # 1 update writing the Contact Id back to the 30 imported records with its re-read of
    # them just before (1 GET): what the real run then costs, to the credit.
    planned = json.loads(invoke(synced, "sync", "--all", "--dry-run", "--json").output)
    real = json.loads(invoke(synced, "sync", "--all", "--json").output)
    assert planned["estimate"] == {"calls": 6, "credits": 23}
    assert (real["counts"]["calls"], real["counts"]["credits"]) == (6, 23)


def test_sync_prints_what_it_did_and_status_counts_it(synced: Synced) -> None:
    synced.add_contact(last_name="Lee", email="ann@example.org")
    result = invoke(synced, "sync", "--all")
    assert "In Zoho it did: 1 created" in result.output
    status = json.loads(invoke(synced, "status", "--json").output)
    assert status["counts"] == {"linked": 1, "pending": 0, "errors": 0}
    assert status["api_today"]["calls"] >= 3


def test_tick_reports_as_json(synced: Synced) -> None:
    result = invoke(synced, "tick")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["auto_sync"] is False


def test_the_sandbox_command_serves_until_interrupted(tmp_path) -> None:
    env = {**os.environ, "FLASK_APP": "demo_app", "DEMO_INSTANCE_PATH": str(tmp_path)}
    env = {k: v for k, v in env.items() if k not in ("ZOHO_SYNC_CLIENT_ID",)}
    process = subprocess.Popen(
        [sys.executable, "-m", "flask", "zoho-sync", "sandbox", "--port", "0", "--seed", "3"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        line = process.stdout.readline()  # type: ignore[union-attr]
        url = line.strip().rsplit(" ", 1)[-1]
        assert url.startswith("http://127.0.0.1:"), line
        for _ in range(50):
            try:
                records = requests.get(f"{url}/__sandbox__/records/Leads", timeout=2).json()
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        assert len(records["data"]) == 3
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
        process.stdout.close()  # type: ignore[union-attr]


def test_sync_waits_its_turn_while_a_worker_runs_one(synced: Synced) -> None:
    from flask_zoho_sync import jobs

    synced.add_contact(last_name="Lee", email="ann@example.org")
    with synced.host.app.app_context(), jobs.run_lock(synced.state):
        refused = invoke(synced, "sync")
    assert refused.exit_code == 1
    assert "another Zoho sync is running" in refused.output
    assert "Traceback" not in refused.output
    assert synced.leads() == {}
    assert invoke(synced, "sync").exit_code == 0
    assert list(synced.leads()) == ["ann@example.org"]


_SANDBOX_COMMANDS = {
    "flask zoho-sync sandbox": [sys.executable, "-m", "flask", "zoho-sync", "sandbox"],
    "python -m flask_zoho_sync.sandbox": [sys.executable, "-m", "flask_zoho_sync.sandbox"],
}


def _run_sandbox_command(command: str, tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLASK_APP": "demo_app", "DEMO_INSTANCE_PATH": str(tmp_path)}
    return subprocess.run(
        [*_SANDBOX_COMMANDS[command], *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize("command", sorted(_SANDBOX_COMMANDS))
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--port", "-1"), "-1"),
        (("--port", "99999"), "99999"),
        (("--port", "http"), "http"),
        (("--org-timezone", "Mars/Base"), "'Mars/Base' is not an IANA time zone name"),
        (("--org-timezone", "../../etc/passwd"), "is not an IANA time zone name"),
        (("--seed", "-3"), "-3"),
        (("--seed", "10000000"), "10000000"),
    ],
)
def test_the_sandbox_commands_refuse_out_of_range_options(
    command: str, args: tuple[str, ...], says: str, tmp_path
) -> None:
    result = _run_sandbox_command(command, tmp_path, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert says in result.stderr
    assert "running at" not in result.stdout


@pytest.mark.parametrize("command", sorted(_SANDBOX_COMMANDS))
def test_the_sandbox_commands_name_a_taken_port(command: str, tmp_path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run_sandbox_command(command, tmp_path, "--port", str(port))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "--port 0" in result.stderr


def _sync_held_mid_flight(synced: Synced, hold_ms: int) -> tuple[threading.Thread, list[Any]]:
    """A CLI-style run (under the run lock) whose first write Zoho holds for ``hold_ms``."""
    from flask_zoho_sync import jobs

    synced.add_contact(last_name="Lee", email="ann@example.org")
    synced.zoho.faults(delay_next=[{"delay_ms": hold_ms, "method": "POST"}])
    reports: list[Any] = []

    def run() -> None:
        with synced.host.app.app_context(), jobs.exclusive_run(synced.state):
            reports.append(synced.state.run_sync(mode="all", trigger="cli"))

    thread = threading.Thread(target=run)
    thread.start()
    for _ in range(100):  # until the run holds the lock and its write is on the wire
        if synced.zoho.faults()["delay_next"] == []:
            break
        time.sleep(0.05)
    return thread, reports


def test_a_module_switch_while_a_sync_runs_is_refused(synced: Synced, monkeypatch) -> None:
    from flask_zoho_sync import jobs

    monkeypatch.setattr(jobs, "SWITCH_WAIT_SECONDS", 0.2)
    thread, reports = _sync_held_mid_flight(synced, 2500)
    try:
        refused = invoke(synced, "settings", "--module", "Contacts", "--relink")
    finally:
        thread.join(timeout=30)
    assert refused.exit_code == 1
    assert "a sync is running; try again when it finishes" in refused.output
    assert "Traceback" not in refused.output
    assert reports[0].status == "succeeded", reports[0].message
    assert list(synced.leads()) == ["ann@example.org"]
    status = json.loads(invoke(synced, "status", "--json").output)
    assert status["module"] == "Leads" and status["counts"]["linked"] == 1


def test_a_module_switch_waits_for_a_sync_about_to_end(synced: Synced, monkeypatch) -> None:
    from flask_zoho_sync import jobs

    monkeypatch.setattr(jobs, "SWITCH_WAIT_SECONDS", 15.0)
    thread, reports = _sync_held_mid_flight(synced, 1500)
    try:
        switched = invoke(synced, "settings", "--module", "Contacts", "--relink")
    finally:
        thread.join(timeout=30)
    assert switched.exit_code == 0, switched.output
    # The run finished before the switch forgot its links: nothing failed under it.
    assert reports[0].status == "succeeded", reports[0].message
    status = json.loads(invoke(synced, "status", "--json").output)
    assert status["module"] == "Contacts" and status["counts"]["linked"] == 0


def test_a_run_whose_module_is_switched_under_it_stops_before_its_next_write(
    synced: Synced,
) -> None:
    """The switch without the run lock (Redis was down, say): the run notices and stops."""
    from flask_zoho_sync.preferences import get_settings, switch_module

    synced.add_contact(last_name="Lee", email="ann@example.org")
    synced.zoho.faults(delay_next=[{"delay_ms": 1500, "method": "POST"}])
    reports: list[Any] = []

    def run() -> None:
        reports.append(synced.sync(mode="all"))

    thread = threading.Thread(target=run)
    thread.start()
    for _ in range(100):  # until the run's first write is on the wire
        if synced.zoho.faults()["delay_next"] == []:
            break
        time.sleep(0.05)
    with synced.host.app.app_context():
        session = synced.host.db.session
        switch_module(session, get_settings(session), "Contacts")
        session.commit()
        session.remove()
    thread.join(timeout=30)
    report = reports[0]
    assert report.status == "stopped", report.message
    assert "the module was switched from Leads to Contacts" in report.message
    assert "Error" not in report.message
    status = json.loads(invoke(synced, "status", "--json").output)
    # Nothing recorded for the old module after the switch, and the switch's reset stands.
    assert status["module"] == "Contacts" and status["counts"]["linked"] == 0
    assert status["last_push_at"] is None and status["last_pull_at"] is None


def test_sync_refuses_an_email_only_mapping_and_names_settings_defaults(synced: Synced) -> None:
    import sqlalchemy as sa

    from flask_zoho_sync.models import FieldMap

    synced.zoho.create_record("Leads", {"Last_Name": "Zed", "Email": "zed@example.org"})
    with synced.host.app.app_context():
        synced.host.db.session.execute(sa.delete(FieldMap).where(FieldMap.host_key != "email"))
        synced.host.db.session.commit()
    for args in (("sync",), ("sync", "--dry-run"), ("sync", "--all", "--direction", "pull")):
        refused = invoke(synced, *args)
        assert refused.exit_code == 1, args
        assert "no field beyond email is mapped" in refused.output
        assert "flask zoho-sync settings --defaults" in refused.output
        assert "Traceback" not in refused.output
    assert synced.contacts() == {}
    assert invoke(synced, "settings", "--defaults").exit_code == 0
    ran = invoke(synced, "sync", "--all")
    assert ran.exit_code == 0, ran.output
    assert synced.contacts()["zed@example.org"]["last_name"] == "Zed"


def test_status_and_settings_warn_when_the_sync_zone_is_not_the_orgs(synced: Synced) -> None:
    connection = json.loads(invoke(synced, "status", "--json").output)["connection"]
    org_zone = connection["org_time_zone"]
    other = "Europe/Paris" if org_zone != "Europe/Paris" else "Asia/Tokyo"
    changed = invoke(synced, "settings", "--timezone", other)
    assert changed.exit_code == 0, changed.output
    for output in (changed.output, invoke(synced, "status").output):
        assert f"your Zoho organisation uses {org_zone}, but the sync uses {other}" in output
        assert f"settings --timezone {org_zone}" in output
    matched = invoke(synced, "settings", "--timezone", org_zone)
    assert matched.exit_code == 0, matched.output
    for output in (matched.output, invoke(synced, "status").output):
        assert "Warning" not in output
