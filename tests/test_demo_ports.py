"""``bin/demo`` and ports that are already taken: it says which, names the variable that
moves it, stops, and never speaks to the program that holds the port (issue 16)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from demo_app.launch import check_ports

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def taken_port() -> Iterator[socket.socket]:
    """A port some other program listens on (it never accepts anything here)."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as stranger:
        stranger.bind(("127.0.0.1", 0))
        stranger.listen(8)
        stranger.setblocking(False)
        yield stranger


def free_port() -> int:
    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def nobody_called(stranger: socket.socket) -> bool:
    try:
        connection, _ = stranger.accept()
    except BlockingIOError:
        return True
    connection.close()
    return False


@pytest.mark.parametrize(
    ("variable", "what"), [("ZOHO_SANDBOX_PORT", "Zoho sandbox"), ("DEMO_PORT", "demo app")]
)
def test_a_taken_port_is_named_with_the_variable_that_moves_it(
    taken_port: socket.socket, variable: str, what: str
) -> None:
    port = taken_port.getsockname()[1]
    env = {
        "ZOHO_SANDBOX_PORT": str(free_port()),
        "DEMO_PORT": str(free_port()),
        variable: str(port),
    }
    _, problem = check_ports(env)
    assert problem is not None
    assert f"Port {port}" in problem and what in problem
    assert f"{variable}=" in problem and "bin/demo" in problem
    assert "ZOHO_SANDBOX_PORT" in problem and "DEMO_PORT" in problem
    assert nobody_called(taken_port), "the check binds; it never connects to the stranger"


def test_free_ports_pass_and_the_sandbox_port_is_skipped_for_real_zoho(
    taken_port: socket.socket,
) -> None:
    demo = free_port()
    ports, problem = check_ports({"ZOHO_SANDBOX_PORT": str(free_port()), "DEMO_PORT": str(demo)})
    assert problem is None and ports["DEMO_PORT"] == demo
    taken = str(taken_port.getsockname()[1])
    ports, problem = check_ports(
        {"ZOHO_SANDBOX_PORT": taken, "DEMO_PORT": str(demo)}, sandbox=False
    )
    assert problem is None and "ZOHO_SANDBOX_PORT" not in ports


@pytest.mark.parametrize("value", ["eighty", "0", "70000"])
def test_a_port_that_is_no_number_is_refused(value: str) -> None:
    _, problem = check_ports({"DEMO_PORT": value, "ZOHO_SANDBOX_PORT": str(free_port())})
    assert problem is not None and f"DEMO_PORT={value!r}" in problem


def test_one_port_for_both_is_refused() -> None:
    port = str(free_port())
    _, problem = check_ports({"DEMO_PORT": port, "ZOHO_SANDBOX_PORT": port})
    assert problem is not None and "both ask for port" in problem


def test_the_launcher_stops_before_starting_anything(
    taken_port: socket.socket, tmp_path: Path
) -> None:
    port = taken_port.getsockname()[1]
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ZOHO_SYNC_", "FLASK_")) and key != "DATABASE_URL"
    }
    env.update(
        DEMO_INSTANCE_PATH=str(tmp_path / "instance"),
        ZOHO_SANDBOX_PORT=str(port),
        DEMO_PORT=str(free_port()),
        REDIS_URL="redis://127.0.0.1:1/0",  # would start an embedded Redis, if it got there
    )
    result = subprocess.run(
        [sys.executable, "-m", "demo_app.launch"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    said = result.stdout + result.stderr
    assert result.returncode != 0, said
    assert f"Port {port}, wanted for the Zoho sandbox, is already in use" in said
    assert "ZOHO_SANDBOX_PORT=" in said and "DEMO_PORT" in said
    assert "Redis:" not in said, "nothing was started before the check"
    assert "Traceback" not in said
    assert not (tmp_path / "instance").exists()
    assert nobody_called(taken_port)
