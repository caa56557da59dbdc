"""A database whose tables were never created, as a new user meets it (issue 16).

Every ``flask zoho-sync`` command and every admin page must say in one sentence which tables
are missing and what to run, never show a traceback, and never call a missing table "busy".
The demo, which owns its database, must simply work on a fresh one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from flask_zoho_sync.connection import DatabaseTokenStore
from flask_zoho_sync.crypto import TokenVault
from flask_zoho_sync.extension import get_state
from flask_zoho_sync.schema import MissingTablesError, forget_checked, missing_tables
from flask_zoho_sync.web import register_admin
from flask_zoho_sync.zoho.auth import TokenSet, TokenStoreBusy
from tests.conftest import TEST_POSTGRES_URL, TEST_REDIS_URL, _admin_engine
from tests.hostapp import TEST_ENCRYPTION_KEY, make_host_app

ROOT = Path(__file__).resolve().parent.parent

#: Every command that reads the sync's tables, with the arguments a user would give it.
COMMANDS = [
    ["connect", "--refresh-token", "1000.fresh"],
    ["settings"],
    ["settings", "--module", "Leads", "--defaults"],
    ["sync"],
    ["sync", "--all"],
    ["status"],
    ["status", "--json"],
    ["tick"],
    ["rotate-keys"],
    ["worker", "--burst"],
]

HOST_MODULE = """
import os
from tests.hostapp import make_host_app

app = make_host_app(
    os.environ["DATABASE_URL"],
    fresh_tables=False,
    ZOHO_SYNC_REDIS_URL=os.environ["ZOHO_SYNC_REDIS_URL"],
).app
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database that exists but holds no table at all: a new SQLite file, or a
    PostgreSQL database created for this test alone."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
        return
    name = f"zoho_sync_fresh_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = _admin_engine(TEST_POSTGRES_URL)
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield (
            sa.engine.make_url(TEST_POSTGRES_URL)
            .set(database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def run_flask(
    app: str, args: list[str], env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", app, "zoho-sync", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ZOHO_SYNC_", "FLASK_", "ZOHO_SANDBOX_"))
        and key not in ("DATABASE_URL", "DEMO_INSTANCE_PATH")
    }
    env.update(extra)
    return env


def table_names(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        return sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_every_command_on_a_fresh_database_names_the_missing_tables(
    fresh_database_url: str, tmp_path: Path
) -> None:
    (tmp_path / "freshhost.py").write_text(HOST_MODULE)
    env = clean_env(
        DATABASE_URL=fresh_database_url,
        ZOHO_SYNC_REDIS_URL=TEST_REDIS_URL,
        PYTHONPATH=os.pathsep.join([str(ROOT), str(tmp_path)]),
    )
    for args in COMMANDS:
        result = run_flask("freshhost", args, env, tmp_path)
        said = result.stdout + result.stderr
        assert result.returncode == 2, f"{args}: exit {result.returncode}\n{said}"
        assert "Traceback" not in said, f"{args}:\n{said}"
        assert "busy" not in said.lower(), f"{args}:\n{said}"
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, f"{args}: one line, not {len(lines)}:\n{said}"
        assert "zoho_sync_connection" in lines[0] and "contact" in lines[0], lines[0]
        assert "flask db upgrade" in lines[0] and "db.create_all()" in lines[0], lines[0]
    # Help still works, and nothing was created behind the user's back.
    assert run_flask("freshhost", ["sync", "--help"], env, tmp_path).returncode == 0
    assert table_names(fresh_database_url) == []


def test_a_database_an_earlier_version_made_names_the_columns_to_add(
    fresh_database_url: str, tmp_path: Path
) -> None:
    """An upgrade: the extension's tables exist from an earlier version without the columns
    this one added. create_all() would not add them, so the commands and the pages say which
    columns are missing and how to add them, instead of failing on the first query."""
    built = make_host_app(fresh_database_url, fresh_tables=False)
    with built.app.app_context():
        built.db.create_all()
        with built.db.engine.begin() as connection:
            connection.execute(sa.text("ALTER TABLE zoho_sync_field_map DROP COLUMN value_map"))
            connection.execute(sa.text("ALTER TABLE zoho_sync_field_map DROP COLUMN paused_reason"))
        built.db.engine.dispose()
    (tmp_path / "freshhost.py").write_text(HOST_MODULE)
    env = clean_env(
        DATABASE_URL=fresh_database_url,
        ZOHO_SYNC_REDIS_URL=TEST_REDIS_URL,
        PYTHONPATH=os.pathsep.join([str(ROOT), str(tmp_path)]),
    )
    for args in (["status"], ["sync"], ["settings"]):
        result = run_flask("freshhost", args, env, tmp_path)
        said = result.stdout + result.stderr
        assert result.returncode == 2, f"{args}: exit {result.returncode}\n{said}"
        assert "Traceback" not in said, f"{args}:\n{said}"
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, f"{args}: one line, not {len(lines)}:\n{said}"
        assert "the columns zoho_sync_field_map.paused_reason, zoho_sync_field_map.value_map" in (
            lines[0]
        ) or "the columns zoho_sync_field_map.value_map, zoho_sync_field_map.paused_reason" in (
            lines[0]
        ), lines[0]
        assert "flask db migrate" in lines[0] and "adds no column" in lines[0], lines[0]
    pages = make_host_app(
        fresh_database_url,
        fresh_tables=False,
        SECRET_KEY="upgrade-secret",
        ZOHO_SYNC_REDIS_URL=TEST_REDIS_URL,
    )
    state = get_state(pages.app)
    state.admin_check = lambda: True
    register_admin(pages.app, state)
    page = pages.app.test_client().get("/admin/zoho/")
    assert page.status_code == 503, page.get_data(as_text=True)
    assert "zoho_sync_field_map.value_map" in page.get_data(as_text=True)
    assert "Traceback" not in page.get_data(as_text=True)
    with pages.app.app_context():
        pages.db.drop_all()
        pages.db.engine.dispose()
    with built.app.app_context():
        built.db.engine.dispose()


def test_the_check_names_only_what_is_missing_and_remembers_a_complete_schema(
    fresh_database_url: str,
) -> None:
    built = make_host_app(fresh_database_url, fresh_tables=False)
    with built.app.app_context():
        engine = built.db.engine
        state = get_state()
        assert "zoho_sync_settings" in missing_tables(engine, state.adapter)
        built.db.create_all()
        with engine.begin() as connection:
            connection.execute(sa.text("DROP TABLE zoho_sync_tombstone"))
        assert missing_tables(engine, state.adapter) == ["zoho_sync_tombstone"]
        built.db.create_all()
        assert missing_tables(engine, state.adapter) == []
        # Once complete, the answer is cached: a healthy app inspects nothing per request.
        with engine.begin() as connection:
            connection.execute(sa.text("DROP TABLE zoho_sync_tombstone"))
        assert missing_tables(engine, state.adapter) == []
        forget_checked(engine)
        assert missing_tables(engine, state.adapter) == ["zoho_sync_tombstone"]
        built.db.drop_all()
        engine.dispose()


def admin_page_urls(app: Any) -> list[tuple[str, str]]:
    """(method, url) of every admin page; routes with parts get a plausible value."""
    pages = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("zoho_sync.") or rule.endpoint == "zoho_sync.static":
            continue
        if getattr(app.view_functions[rule.endpoint], "_zoho_sync_public", False):
            continue  # machine endpoints (cron, notifications) authenticate themselves
        values = {
            name: 1 if type(converter).__name__ == "IntegerConverter" else "1"
            for name, converter in rule._converters.items()
        }
        with app.test_request_context():
            from flask import url_for

            url = url_for(rule.endpoint, **values)
        method = "GET" if "GET" in (rule.methods or ()) else "POST"
        pages.append((method, url))
    return pages


def test_every_admin_page_on_a_fresh_database_answers_503_with_the_sentence(
    fresh_database_url: str,
) -> None:
    built = make_host_app(
        fresh_database_url,
        fresh_tables=False,
        SECRET_KEY="fresh-secret",
        ZOHO_SYNC_REDIS_URL=TEST_REDIS_URL,
    )
    state = get_state(built.app)
    state.admin_check = lambda: True
    register_admin(built.app, state)
    client = built.app.test_client()
    pages = admin_page_urls(built.app)
    assert len(pages) >= 8, pages
    for method, url in pages:
        response = client.open(url, method=method)
        text = response.get_data(as_text=True)
        assert response.status_code == 503, f"{method} {url}: {response.status_code}\n{text}"
        assert "zoho_sync_connection" in text and "flask db upgrade" in text, url
        assert "db.create_all()" in text, url
        assert 'class="zs-body"' in text, f"{url}: the admin layout frames the message"
        assert "Traceback" not in text
    # htmx requests get the same words, in the part htmx shows in the alert box.
    response = client.get("/admin/zoho/settings", headers={"HX-Request": "true"})
    assert response.status_code == 503
    assert 'id="zs-error-message"' in response.get_data(as_text=True)
    # Visitors who are not admins learn nothing about the schema.
    state.admin_check = lambda: False
    refused = client.get("/admin/zoho/")
    assert refused.status_code == 403
    assert "zoho_sync_connection" not in refused.get_data(as_text=True)
    # Once the tables exist, the pages work without a restart.
    state.admin_check = lambda: True
    with built.app.app_context():
        built.db.create_all()
    assert client.get("/admin/zoho/").status_code == 200
    with built.app.app_context():
        built.db.drop_all()
        built.db.engine.dispose()


def test_the_token_store_calls_a_missing_table_missing_not_busy(fresh_database_url: str) -> None:
    engine = sa.create_engine(fresh_database_url)
    store = DatabaseTokenStore(lambda: engine, TokenVault((TEST_ENCRYPTION_KEY,)))
    tokens = TokenSet(
        refresh_token="1000.r",
        access_token="1000.a",
        expires_at=0.0,
        api_domain="https://www.zohoapis.com",
        accounts_server="https://accounts.zoho.com",
    )
    try:
        with pytest.raises(MissingTablesError, match="zoho_sync_connection") as saved:
            store.save(tokens)
        assert not isinstance(saved.value, TokenStoreBusy)
        assert "flask db upgrade" in str(saved.value)
        with pytest.raises(MissingTablesError, match="zoho_sync_connection"):
            store.load()
    finally:
        engine.dispose()


def test_a_locked_sqlite_database_is_still_busy(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'locked.sqlite3'}"
    built = make_host_app(url)
    with built.app.app_context():
        engine = built.db.engine
    locker = sa.create_engine(url)
    waiting = sa.create_engine(url, connect_args={"timeout": 0.1})
    store = DatabaseTokenStore(lambda: waiting, TokenVault((TEST_ENCRYPTION_KEY,)))
    tokens = TokenSet("1000.r", "1000.a", 0.0, "https://www.zohoapis.com", "https://x")
    try:
        with locker.connect() as holder:
            holder.exec_driver_sql("BEGIN IMMEDIATE")
            with pytest.raises(TokenStoreBusy):
                store.save(tokens)
            holder.exec_driver_sql("ROLLBACK")
    finally:
        locker.dispose()
        waiting.dispose()
        engine.dispose()


def test_a_database_that_does_not_answer_is_one_line_too(tmp_path: Path) -> None:
    (tmp_path / "freshhost.py").write_text(HOST_MODULE)
    env = clean_env(
        DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:1/nowhere",
        ZOHO_SYNC_REDIS_URL=TEST_REDIS_URL,
        PYTHONPATH=os.pathsep.join([str(ROOT), str(tmp_path)]),
    )
    result = run_flask("freshhost", ["status"], env, tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    assert "127.0.0.1:1/nowhere did not answer" in line and "SQLALCHEMY_DATABASE_URI" in line


@pytest.mark.slow
def test_the_demo_on_a_fresh_database_connects_syncs_and_reports(
    tmp_path: Path, zoho_sandbox: Any, fresh_database_url: str
) -> None:
    """The README's CLI session, on a DATABASE_URL nobody prepared."""
    zoho_sandbox.generate_records("Leads", 3)
    grant = zoho_sandbox.mint_refresh_token()
    env = clean_env(
        DATABASE_URL=fresh_database_url,
        DEMO_INSTANCE_PATH=str(tmp_path / "instance"),
        ZOHO_SANDBOX_URL=zoho_sandbox.accounts_server,
        ZOHO_SYNC_CLIENT_ID=zoho_sandbox.client_id,
        ZOHO_SYNC_CLIENT_SECRET=zoho_sandbox.client_secret,
        ZOHO_SYNC_ACCOUNTS_URL=zoho_sandbox.accounts_server,
        ZOHO_SYNC_EXTRA_ACCOUNTS_SERVERS=zoho_sandbox.accounts_server,
        ZOHO_SYNC_REDIS_URL=TEST_REDIS_URL,
        PYTHONPATH=str(ROOT),
    )
    session = [
        ["connect", "--refresh-token", grant["refresh_token"]],
        ["settings", "--module", "Leads", "--defaults"],
        ["sync", "--all"],
        ["status", "--json"],
        ["tick"],
    ]
    outputs = {}
    for args in session:
        result = run_flask("demo_app", args, env, ROOT)
        said = result.stdout + result.stderr
        assert result.returncode == 0, f"{args}: exit {result.returncode}\n{said}"
        assert "Traceback" not in said, f"{args}:\n{said}"
        outputs[args[0]] = result.stdout
    assert "Connected to" in outputs["connect"]
    assert "Added" in outputs["settings"] and "mappings" in outputs["settings"]
    status = json.loads(outputs["status"])
    assert status["connected"] is True and status["module"] == "Leads"
    assert status["counts"]["linked"] == 3, "the first sync pulls and links the three Leads"


def test_the_machine_endpoints_on_a_fresh_database_answer_503_with_the_sentence(
    fresh_database_url: str,
) -> None:
    """A platform scheduler's cron call and Zoho's notification are told what to run."""
    built = make_host_app(
        fresh_database_url,
        fresh_tables=False,
        SECRET_KEY="fresh-secret",
        ZOHO_SYNC_REDIS_URL=TEST_REDIS_URL,
        ZOHO_SYNC_CRON_SECRET="cron-secret",
    )
    state = get_state(built.app)
    state.admin_check = lambda: True
    register_admin(built.app, state)
    client = built.app.test_client()
    answers = [
        client.post("/admin/zoho/cron", headers={"X-Zoho-Sync-Secret": "cron-secret"}),
        client.post("/admin/zoho/notify", json={"channel_id": "1", "ids": ["9"], "token": "x"}),
    ]
    for response in answers:
        assert response.status_code == 503, response.get_data(as_text=True)
        error = response.get_json()["error"]
        assert "zoho_sync_connection" in error and "flask db upgrade" in error
    # The secret is still checked first: a caller without it learns nothing of the schema.
    refused = client.post("/admin/zoho/cron", headers={"X-Zoho-Sync-Secret": "wrong"})
    assert refused.status_code == 403
    assert "zoho_sync" not in refused.get_json()["error"]
    with built.app.app_context():
        built.db.engine.dispose()
