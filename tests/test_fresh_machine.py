"""bin/test on a machine whose Redis and PostgreSQL ports hold no such servers (issue 16).

These run bin/_env.sh's provisioning as bin/test does, against addresses where nothing useful
answers, without touching the machine's real servers (other suites use them).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from tests.servers import free_port, postgres_answers, redis_answers

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@pytest.fixture
def not_postgres() -> Iterator[int]:
    """A port held by something that accepts connections and never speaks PostgreSQL."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    accepted: list[socket.socket] = []
    stopping = threading.Event()

    def accept() -> None:
        while not stopping.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    stopping.set()
    thread.join(timeout=5)
    for connection in accepted:
        connection.close()
    listener.close()


def _env_sh(script: str, **variables: str) -> dict[str, str]:
    """Runs `script` after sourcing bin/_env.sh; returns the NAME=value lines it printed."""
    env = {**os.environ, "ZOHO_SYNC_VENV": sys.prefix, **variables}
    done = subprocess.run(
        ["bash", "-c", f'source "{ROOT}/bin/_env.sh"\n{script}'],
        env=env, capture_output=True, text=True, timeout=180, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return dict(
        line.split("=", 1) for line in done.stdout.splitlines() if line.startswith("GOT_")
    )


def test_missing_servers_are_provided_on_free_ports_and_stopped(not_postgres: int) -> None:
    closed_redis_port = free_port()  # bound by nothing: a Redis that is not running
    asked_redis = f"redis://127.0.0.1:{closed_redis_port}/15"
    asked_postgres = f"postgresql+psycopg://postgres@127.0.0.1:{not_postgres}/zoho_sync_test"
    assert not postgres_answers(asked_postgres), "the dummy listener must not pass for PostgreSQL"

    got = _env_sh(
        "provide_test_servers\n"
        'echo "GOT_REDIS=$ZOHO_SYNC_TEST_REDIS_URL"\n'
        'echo "GOT_POSTGRES=$ZOHO_SYNC_TEST_POSTGRES_URL"\n'
        'echo "GOT_DIR=$TEST_SERVERS_DIR"\n',
        ZOHO_SYNC_TEST_REDIS_URL=asked_redis,
        ZOHO_SYNC_TEST_POSTGRES_URL=asked_postgres,
    )
    redis_url, postgres_url, state = got["GOT_REDIS"], got["GOT_POSTGRES"], got["GOT_DIR"]
    try:
        redis_port = urlsplit(redis_url).port
        postgres_port = sa.engine.make_url(postgres_url).port
        assert redis_port not in (closed_redis_port, 6379)
        assert postgres_port not in (not_postgres, 5432)
        assert sa.engine.make_url(postgres_url).host == "127.0.0.1"
        assert redis_url.startswith("redis://127.0.0.1:")
        assert redis_answers(redis_url)
        engine = sa.create_engine(postgres_url.replace("/zoho_sync_test", "/postgres"))
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT 40 + 2")).scalar() == 42
        engine.dispose()
        assert Path(state, "pgdata", "PG_VERSION").exists()
    finally:
        _env_sh(f'TEST_SERVERS_DIR="{state}"\nstop_test_servers')
    assert not redis_answers(redis_url)
    assert not postgres_answers(postgres_url)
    assert not Path(state).exists()


def test_servers_that_answer_are_used_as_they_are(redis_client, postgres_url: str) -> None:
    from tests.conftest import TEST_POSTGRES_URL, TEST_REDIS_URL

    got = _env_sh(
        "provide_test_servers\n"
        'echo "GOT_REDIS=${ZOHO_SYNC_TEST_REDIS_URL:-}"\n'
        'echo "GOT_POSTGRES=${ZOHO_SYNC_TEST_POSTGRES_URL:-}"\n'
        'echo "GOT_LEFT=$(ls -A "$TEST_SERVERS_DIR")"\n'
        "stop_test_servers\n",
        ZOHO_SYNC_TEST_REDIS_URL=TEST_REDIS_URL,
        ZOHO_SYNC_TEST_POSTGRES_URL=TEST_POSTGRES_URL,
    )
    assert got == {
        "GOT_REDIS": TEST_REDIS_URL,
        "GOT_POSTGRES": TEST_POSTGRES_URL,
        "GOT_LEFT": "",
    }


def test_ctrl_c_stops_the_embedded_servers(tmp_path: Path) -> None:
    """bin/test's traps: an interrupted run leaves no server behind."""
    closed_port = free_port()
    script = tmp_path / "run"
    script.write_text(
        f'source "{ROOT}/bin/_env.sh"\n'
        "trap stop_test_servers EXIT\ntrap 'exit 130' INT\n"
        "provide_test_servers\n"
        'echo "$ZOHO_SYNC_TEST_REDIS_URL" > "$0.redis"\n'
        'echo "$ZOHO_SYNC_TEST_POSTGRES_URL" > "$0.postgres"\n'
        "sleep 120 & wait\n"
    )
    process = subprocess.Popen(
        ["bash", str(script)],
        env={
            **os.environ,
            "ZOHO_SYNC_VENV": sys.prefix,
            "ZOHO_SYNC_TEST_REDIS_URL": f"redis://127.0.0.1:{closed_port}/15",
            "ZOHO_SYNC_TEST_POSTGRES_URL": (
                f"postgresql+psycopg://postgres@127.0.0.1:{closed_port}/zoho_sync_test"
            ),
        },
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    redis_file, postgres_file = Path(f"{script}.redis"), Path(f"{script}.postgres")
    try:
        for _ in range(1200):
            if postgres_file.exists() and postgres_file.read_text().strip():
                break
            assert process.poll() is None, "provisioning failed"
            threading.Event().wait(0.1)
        redis_url = redis_file.read_text().strip()
        postgres_url = postgres_file.read_text().strip()
        assert redis_answers(redis_url) and postgres_answers(postgres_url)
        os.killpg(process.pid, 2)  # what Ctrl-C sends to the terminal's process group
        assert process.wait(timeout=60) == 130
    finally:
        if process.poll() is None:
            process.kill()
    assert not redis_answers(redis_url)
    assert not postgres_answers(postgres_url)
