"""Fixtures shared by the whole suite: the real Redis, and the databases to run against."""

from __future__ import annotations

import functools
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from sqlalchemy import event
from sqlalchemy.engine import Engine

from tests.tables import release_tables, remove_templates

#: Tests empty their Redis database, so each test session claims one of databases 4-15 for
#: itself (a key holding its pid, set with NX and an expiry): a developer's data in db 0 is
#: never touched and two suites on one server never empty each other's. The variable
#: ZOHO_SYNC_TEST_REDIS_URL names a database to use instead (and the server to claim on).
#: Under pytest-xdist every worker is a session of its own: the first worker (gw0) takes the
#: named database, the others claim theirs on the same server, since two workers emptying
#: one database would wipe each other's queues mid-test.
_CLAIM_KEY = "zoho_sync_test:claimed_by"
_CLAIM_SECONDS = 7200


def _claim_redis_database() -> tuple[str, bool]:
    """The session's Redis URL, and whether this process claimed it (and so may flush it)."""
    explicit = os.environ.get("ZOHO_SYNC_TEST_REDIS_URL")
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if explicit and (not worker or worker == "gw0"):
        return explicit, False
    base, named = "redis://127.0.0.1:6379", None
    if explicit:
        parts = urlsplit(explicit)
        base = f"{parts.scheme}://{parts.netloc}"
        named = int(parts.path.strip("/") or 0)
    for number in range(15, 3, -1):
        if number == named:
            continue  # gw0's
        connection = redis.Redis.from_url(f"{base}/{number}", socket_connect_timeout=2)
        try:
            if connection.set(_CLAIM_KEY, os.getpid(), nx=True, ex=_CLAIM_SECONDS):
                return f"{base}/{number}", True
        except redis.RedisError:
            return f"{base}/15", False  # Redis is down: the redis_client fixture says so clearly
        finally:
            connection.close()
    return f"{base}/15", False


@functools.cache
def _session_redis() -> tuple[str, bool]:
    return _claim_redis_database()


def __getattr__(name: str) -> str:
    """``TEST_REDIS_URL``, claimed on first use: an xdist controller, which runs no test,
    never reads it and so holds no database that the suites around it could use."""
    if name == "TEST_REDIS_URL":
        return _session_redis()[0]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _reclaim(connection: redis.Redis) -> None:
    """Put the claim back after a flush (prefer :func:`_empty_and_reclaim`, which has no gap)."""
    if _session_redis()[1]:
        connection.set(_CLAIM_KEY, os.getpid(), ex=_CLAIM_SECONDS)


def _empty_and_reclaim(connection: redis.Redis) -> None:
    """Empty the database and put the claim back in one MULTI/EXEC: between a bare FLUSHDB
    and the SET, another suite (or xdist worker) could find the database unclaimed, take
    it, and the two would then empty each other's queues mid-test."""
    with connection.pipeline(transaction=True) as pipe:
        pipe.flushdb()
        if _session_redis()[1]:
            pipe.set(_CLAIM_KEY, os.getpid(), ex=_CLAIM_SECONDS)
        pipe.execute()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _hand_fault_report_to_controller(session.config)
    remove_templates()
    if _session_redis.cache_info().currsize == 0:
        return  # this process never used Redis, so it claimed nothing
    try:
        connection = redis.Redis.from_url(_session_redis()[0], socket_connect_timeout=2)
        if connection.get(_CLAIM_KEY) == str(os.getpid()).encode():
            connection.flushdb()
        connection.close()
    except redis.RedisError:
        pass


# -- the fault report (tests/faults), whole even when pytest-xdist spreads the scenarios ------

FAULT_REPORT_ARTIFACT = Path(__file__).resolve().parents[1] / "test-artifacts" / "fault-report.json"


def _hand_fault_report_to_controller(config: pytest.Config) -> None:
    """An xdist worker's scenarios go back to the controller, which prints the report."""
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is None:
        return
    from tests.faults.report import REPORT

    workeroutput["fault_scenarios"] = [asdict(result) for result in REPORT.results]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """The controller's side: add the scenarios a finished xdist worker ran."""
    from tests.faults.report import REPORT, ScenarioResult

    scenarios = getattr(node, "workeroutput", {}).get("fault_scenarios", [])
    REPORT.results.extend(ScenarioResult(**scenario) for scenario in scenarios)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if hasattr(terminalreporter.config, "workeroutput"):
        return  # a worker: the controller prints the whole report
    from tests.faults.report import REPORT

    if not REPORT.results:
        return
    terminalreporter.section("Zoho sync fault report (#9)")
    for line in REPORT.lines():
        terminalreporter.write_line(line)
    REPORT.write_json(FAULT_REPORT_ARTIFACT)
    shown = FAULT_REPORT_ARTIFACT.relative_to(FAULT_REPORT_ARTIFACT.parents[1])
    terminalreporter.write_line(f"(written to {shown})")


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    """A connection to the real Redis, on this session's emptied test database."""
    connection = redis.Redis.from_url(_session_redis()[0])
    try:
        connection.ping()
    except redis.ConnectionError as exc:  # pragma: no cover - environment problem
        pytest.fail(
            f"Redis is not answering at {_session_redis()[0]}: start it (see README, 'Running the "
            f"tests') or point ZOHO_SYNC_TEST_REDIS_URL at one. ({exc})"
        )
    _empty_and_reclaim(connection)
    yield connection
    _empty_and_reclaim(connection)
    connection.close()


#: PostgreSQL is the database that matters in production, so every database test runs on it
#: as well as on SQLite. Each test session gets its own database (named after the process),
#: created here and dropped at the end, so two suites on one server never collide.
TEST_POSTGRES_URL = os.environ.get(
    "ZOHO_SYNC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/zoho_sync_test"
)


def _admin_engine(url: str):  # type: ignore[no-untyped-def]
    import sqlalchemy as sa

    return sa.create_engine(
        sa.engine.make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    import sqlalchemy as sa

    target = sa.engine.make_url(TEST_POSTGRES_URL)
    target = target.set(database=f"{target.database}_{os.getpid()}")
    admin = _admin_engine(TEST_POSTGRES_URL)
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{target.database}"'))
            connection.execute(sa.text(f'CREATE DATABASE "{target.database}"'))
            # A commit need not wait for the disk here: the database is thrown away at the
            # end, and nothing a test asserts depends on surviving a power cut. Waiting for
            # the flush made every commit ~10x slower (5 ms instead of 0.5 ms on CI's disk).
            connection.execute(
                sa.text(f'ALTER DATABASE "{target.database}" SET synchronous_commit = off')
            )
    except sa.exc.OperationalError as exc:  # pragma: no cover - environment problem
        admin.dispose()
        pytest.fail(
            f"PostgreSQL is not answering at {target.render_as_string(hide_password=True)}: "
            f"start it (see README, 'Running the tests') or set ZOHO_SYNC_TEST_POSTGRES_URL. "
            f"({exc})"
        )
    yield target.render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
    admin.dispose()


@event.listens_for(Engine, "connect")
def _sqlite_without_flushes(dbapi_connection: Any, _record: Any) -> None:
    """SQLite test files live in tmp_path and die with the test, so they skip the flush to
    disk after every write (``synchronous=OFF``): creating a host's tables went from ~0.35 s
    to ~0.2 s. Locking and transactions, what the tests exercise, are unchanged; only a
    power cut could lose data, and the files do not outlive the test anyway."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous = OFF")
        cursor.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """Each database test runs twice: on a fresh SQLite file and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'host.sqlite3'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def host(database_url: str, redis_client):
    """A host app with the extension registered, on a fresh database."""
    from tests.hostapp import make_host_app

    built = make_host_app(database_url, ZOHO_SYNC_REDIS_URL=_session_redis()[0])
    yield built
    with built.app.app_context():
        release_tables(built.db)
