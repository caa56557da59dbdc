"""Running the sandbox: state-file persistence, the module entry point, seeding, the UI."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import requests

from flask_zoho_sync.sandbox import SandboxHandle, SandboxServer, SandboxState, create_sandbox_app
from flask_zoho_sync.sandbox.seed import reset_seeded, seeded_state

from .conftest import Api


def test_state_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.json"
    with SandboxServer(state_file=path) as server, SandboxHandle(server.url) as handle:
        handle.add_custom_field("Leads", api_name="VIP", data_type="boolean")
        record = handle.create_record("Leads", {"Last_Name": "Kept", "VIP": True})
        handle.advance_clock(600)
        grant = handle.mint_refresh_token()
        handle.set_org(time_zone="Europe/London")
    assert json.loads(path.read_text())["records"]["Leads"][record["id"]]["VIP"] is True
    assert not list(tmp_path.glob(".sandbox-*"))  # atomic writes leave no temp files
    with SandboxServer(state_file=path) as server, SandboxHandle(server.url) as handle:
        (again,) = handle.records("Leads")
        assert again["id"] == record["id"] and again["VIP"] is True
        assert again["Modified_Time"].endswith(("+00:00", "+01:00"))
        api = Api.__new__(Api)
        api.sandbox, api.base, api.session, api.grant = (
            handle,
            handle.url,
            requests.Session(),
            grant,
        )
        assert "access_token" in api.refresh()  # tokens survive a restart
        api.session.close()
        fresh = handle.create_record("Leads", {"Last_Name": "New"})
        assert fresh["id"] > record["id"]  # ids are never reused


def test_seed_is_deterministic_with_demo_fields() -> None:
    first, second = seeded_state(seed=12), seeded_state(seed=12)
    leads = [r["Email"] for r in first.data["records"]["Leads"].values()]
    assert leads == [r["Email"] for r in second.data["records"]["Leads"].values()]
    assert len(leads) == 12 and len(first.data["records"]["Contacts"]) == 3
    names = {s.api_name: s for s in first.fields("Contacts")}
    assert names["Contact_Id"].unique and names["Contact_Id"].length == 50
    assert names["Membership_Level"].pick_list_values == ("-None-", "Bronze", "Silver", "Gold")
    for field in ("Newsletter", "VIP", "Volunteers", "Birthday", "Contact_URL"):
        assert field in names
    reset_seeded(first)  # a reset seeds the same demo again...
    assert len(first.data["records"]["Leads"]) == 12
    reset_seeded(first, seed=0)  # ...unless told otherwise
    assert first.data["records"]["Leads"] == {}


def test_reset_can_keep_custom_fields(sandbox: SandboxHandle) -> None:
    sandbox.add_custom_field("Contacts", api_name="Extra", data_type="text")
    sandbox.reset(keep_custom_fields=True)
    assert any(f["api_name"] == "Extra" for f in sandbox._call("GET", "/fields/Contacts")["fields"])
    sandbox.reset()
    assert not any(
        f["api_name"] == "Extra" for f in sandbox._call("GET", "/fields/Contacts")["fields"]
    )


def test_module_entry_point_serves_and_prints_credentials(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "flask_zoho_sync.sandbox", "--port", "0", "--seed", "3",
         "--org-timezone", "Australia/Sydney", "--client-id", "cli-id",
         "--client-secret", "cli-secret", "--state-file", str(tmp_path / "s.json")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(4)]
        url = re.search(r"http://[\d.]+:\d+", lines[0]).group(0)
        assert "cli-id" in "".join(lines) and "cli-secret" in "".join(lines)
        deadline = time.monotonic() + 10
        while True:
            try:
                info = requests.get(f"{url}/__sandbox__/info", timeout=2).json()
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert info["client_id"] == "cli-id" and info["org_time_zone"] == "Australia/Sydney"
        assert len(requests.get(f"{url}/__sandbox__/records/Leads", timeout=5).json()["data"]) == 3
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout:
            process.stdout.close()


def test_ui_lists_creates_edits_and_escapes() -> None:
    app = create_sandbox_app(SandboxState())
    client = app.test_client()
    assert client.get("/").status_code == 200
    form = {
        "__user": "4876876000000050002",
        "Last_Name": "<script>alert(1)</script>",
        "Email": "ui@example.test",
    }
    created = client.post("/ui/Leads/new", data=form)
    assert created.status_code == 302
    page = client.get("/").get_data(as_text=True)
    assert "&lt;script&gt;" in page and "<script>alert" not in page
    state = app.extensions["zoho_sandbox"]
    (record_id,) = state.data["records"]["Leads"]
    assert client.get(f"/ui/Leads/{record_id}/edit").status_code == 200
    edited = client.post(
        f"/ui/Leads/{record_id}/edit",
        data={**form, "Last_Name": "Renamed", "__user": "4876876000000050003"},
    )
    assert edited.status_code == 302
    record = state.data["records"]["Leads"][record_id]
    assert record["Last_Name"] == "Renamed" and record["Modified_By"] == "4876876000000050003"
    invalid = client.post(f"/ui/Leads/{record_id}/edit", data={**form, "Last_Name": ""})
    assert "MANDATORY_NOT_FOUND" in invalid.get_data(as_text=True)
    assert client.post(f"/ui/Leads/{record_id}/convert").status_code == 302
    assert len(state.data["records"]["Contacts"]) == 1
    (contact_id,) = state.data["records"]["Contacts"]
    assert f"(converted to Contact {contact_id}" in client.get("/").get_data(as_text=True)
    assert client.post(f"/ui/Leads/{record_id}/convert").status_code == 302  # no second one
    assert len(state.data["records"]["Contacts"]) == 1
    assert client.post(f"/ui/Leads/{record_id}/delete").status_code == 302
    assert state.data["records"]["Leads"] == {}
    state.close()


def test_consent_page_escapes_parameters(sandbox: SandboxHandle) -> None:
    page = requests.get(
        f"{sandbox.url}/oauth/v2/auth",
        params={"client_id": sandbox.client_id, "response_type": "code", "redirect_uri": "http://a.test/cb",
                "scope": "ZohoCRM.modules.ALL", "state": '"><script>x</script>'},
        timeout=10,
    )  # fmt: skip
    assert "<script>x" not in page.text
