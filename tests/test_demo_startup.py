"""The README's first command, as a new user runs it: start, log in, open the admin, stop."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
# Both runs start the demo, which uses the machine's Redis database 0 when one answers:
# under pytest-xdist they stay on one worker, one after the other.
pytestmark = pytest.mark.xdist_group("demo-startup")


def free_port() -> int:
    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("redis", ["running", "absent"])
def test_the_demo_starts_serves_its_admin_and_stops_on_ctrl_c(tmp_path: Path, redis: str) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ZOHO_SYNC_", "FLASK_")) and key not in ("DATABASE_URL",)
    }
    env.update(
        DEMO_INSTANCE_PATH=str(tmp_path / "instance"),
        DEMO_PORT=str(free_port()),
        ZOHO_SANDBOX_PORT=str(free_port()),
        PYTHONUNBUFFERED="1",
    )
    if redis == "absent":  # nothing listens on port 1: the demo must bring its own
        env["REDIS_URL"] = "redis://127.0.0.1:1/0"
    process = subprocess.Popen(
        [sys.executable, "-m", "demo_app.launch"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output: list[str] = []
    try:
        deadline = time.monotonic() + 60
        url = None
        while time.monotonic() < deadline and url is None:
            line = process.stdout.readline()  # type: ignore[union-attr]
            if not line:
                break
            output.append(line)
            match = re.search(r"Demo contact database: (http://\S+)", line)
            url = match.group(1) if match else None
        assert url, "the demo never printed its URL:\n" + "".join(output)
        said = next((line for line in output if "Redis:" in line), "")
        expected = "embedded" if redis == "absent" else "running server"
        assert expected in said, "the demo must say which Redis it uses:\n" + "".join(output)

        browser = requests.Session()
        login = browser.get(f"{url}/login", timeout=10).text
        token = re.search(r'name="csrf_token" value="([^"]+)"', login).group(1)  # type: ignore[union-attr]
        response = browser.post(
            f"{url}/login",
            data={"email": "admin@example.com", "password": "zoho-demo", "csrf_token": token},
            timeout=10,
        )
        assert "Contacts" in response.text
        admin = browser.get(f"{url}/admin/zoho/", timeout=10)
        assert admin.status_code == 200
        assert "Zoho" in admin.text
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            if process.stdout:
                process.stdout.close()
    assert process.returncode == 0, "".join(output[-20:])
    # Its children exit just after it; on a busy machine (a parallel run) that can take more
    # than the half second once waited here, so wait for the group to go, up to 10 s.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _group_alive(process.pid):
        time.sleep(0.05)
    with pytest.raises(ProcessLookupError):  # Ctrl-C stopped everything it started
        os.killpg(process.pid, 0)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True
