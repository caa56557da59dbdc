"""The command line fed hostile input: never a traceback, always a message, nothing changed.

An operator types these commands by hand or pastes them from a ticket; a mistyped zone, a
half-copied token or a mapping with stray characters must be refused with a sentence that
says what is wrong, and must leave the settings, the mapping and the connection as they
were.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flask_zoho_sync.models import Connection, FieldMap, SyncSettings
from tests.engine.conftest import Synced
from tests.faults.report import ScenarioResult

pytestmark = pytest.mark.slow

#: Text an operator might paste: control characters, quotes, markup, SQL, very long runs.
hostile_text = st.one_of(
    st.text(min_size=0, max_size=40),
    st.sampled_from(
        [
            "",
            " ",
            "Mars/Base",
            "../../etc/passwd",
            "'; DROP TABLE contact; --",
            "<script>alert(1)</script>",
            "email=",
            "=Email",
            "group:=VIP",
            "system:nope=Contact_Id",
            "system:contact_id=!",
            "phone=Phone=Mobile",
            "x" * 5000,
            "\x00\x01\x02",
            "Leads\nContacts",
            "\u210c\U0001d52c\U0001d530t=\U0001d53d\U0001d55aeld",  # look-alike letters
        ]
    ),
)


def commands() -> st.SearchStrategy[list[str]]:
    return st.one_of(
        st.tuples(st.just("settings"), st.just("--timezone"), hostile_text),
        st.tuples(st.just("settings"), st.just("--module"), hostile_text),
        st.tuples(st.just("settings"), st.just("--map"), hostile_text),
        st.tuples(st.just("settings"), st.just("--conflict-policy"), hostile_text),
        st.tuples(st.just("settings"), st.just("--auto-sync"), hostile_text),
        st.tuples(st.just("sync"), st.just("--direction"), hostile_text),
        st.tuples(st.just("connect"), st.just("--refresh-token"), hostile_text),
        st.tuples(
            st.just("connect"),
            st.just("--refresh-token"),
            st.just("1000.abc"),
            st.just("--accounts-server"),
            hostile_text,
        ),
    ).map(list)


def snapshot(synced: Synced) -> tuple[Any, ...]:
    with synced.host.app.app_context():
        session = synced.host.db.session
        row = session.scalars(sa.select(SyncSettings)).one()
        maps = sorted(
            (m.kind, m.host_key, m.zoho_field, m.direction)
            for m in session.scalars(sa.select(FieldMap))
        )
        connection = session.scalars(sa.select(Connection)).one()
        values = (
            row.module,
            row.time_zone,
            row.auto_sync,
            row.conflict_policy,
            tuple(maps),
            connection.refresh_token_encrypted,
            connection.accounts_server,
        )
        session.remove()
        return values


@pytest.mark.fault_category("hostile CLI input")
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(arguments=commands())
def test_hostile_command_lines_are_refused_clearly_and_change_nothing(
    synced: Synced, fault_scenario: ScenarioResult, arguments: list[str]
) -> None:
    before = snapshot(synced)
    result = synced.host.app.test_cli_runner().invoke(args=["zoho-sync", *arguments])
    fault_scenario.inputs += 1
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{arguments!r} raised {result.exception!r}"
    )
    assert "Traceback" not in result.output
    if result.exit_code != 0:
        assert result.output.strip(), f"{arguments!r} failed without saying why"
        assert snapshot(synced) == before, f"{arguments!r} failed but changed the settings"


#: Bad ``--map`` rows, with the add form the mapping editor gets for the same row.
BAD_MAPS = {
    "unknown host field": ("nickname=Mobile", "field", "nickname", "Mobile"),
    "unknown Zoho field": ("last_seen=No_Such_Field", "field", "last_seen", "No_Such_Field"),
    "group to a text field": ("group:Newsletter=City", "group", "Newsletter", "City"),
    "system field to --help": ("system:contact_url=--help", "system", "contact_url", "--help"),
    "system field ill-typed": (
        "system:contact_url=No_of_Employees",
        "system",
        "contact_url",
        "No_of_Employees",
    ),
    "unknown system field": ("system:nope=Contact_Id", "system", "nope", "Contact_Id"),
    "two host fields to one Zoho field": ("last_seen=Email", "field", "last_seen", "Email"),
    "incompatible types": ("last_seen=No_of_Employees", "field", "last_seen", "No_of_Employees"),
}


@pytest.fixture
def editor_on_synced(synced: Synced) -> Synced:
    """The synced host with a group nobody maps yet and the editor's Zoho fields loaded."""
    from flask_zoho_sync.preferences import get_settings, refresh_zoho_fields

    synced.add_contact(last_name="Lee", email="ann@example.org", groups=["Newsletter"])
    synced.state.admin_check = lambda: True
    synced.host.app.config["SECRET_KEY"] = "cli-input-tests"
    with synced.host.app.app_context():
        session = synced.host.db.session
        refresh_zoho_fields(session, synced.state.client(), get_settings(session))
        session.commit()
    return synced


def _editor_refusal(synced: Synced, kind: str, host_key: str, zoho_field: str) -> str:
    from tests.web.conftest import Admin

    admin = Admin(host=synced.host, client=synced.host.app.test_client())
    response = admin.post(
        f"/mapping/{kind}/add",
        {"host_key": host_key, "zoho_field": zoho_field, "direction": "both", "policy": ""},
    )
    assert response.status_code == 400
    return response.get_data(as_text=True)


@pytest.mark.fault_category("hostile CLI input")
@pytest.mark.parametrize("case", sorted(BAD_MAPS))
def test_a_bad_map_is_refused_by_the_cli_with_the_editors_words(
    editor_on_synced: Synced, fault_scenario: ScenarioResult, case: str
) -> None:
    import json
    import os
    import subprocess
    import sys

    from markupsafe import escape

    from tests.faults.process import ROOT, worker_settings

    synced = editor_on_synced
    spec, kind, host_key, zoho_field = BAD_MAPS[case]
    before = snapshot(synced)
    env = {**os.environ, "ZOHO_SYNC_FAULT_HOST": json.dumps(worker_settings(synced))}
    env.pop("ZOHO_SYNC_FAULT_KILL", None)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "flask",
            "--app",
            "tests.faults.worker_host:create_app",
            "zoho-sync",
            "settings",
            "--map",
            spec,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    fault_scenario.inputs += 1
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    prefix, suffix = f"Error: --map {spec}: ", " Nothing was changed."
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(prefix) and line.endswith(suffix), line
    message = line[len(prefix) : -len(suffix)]
    assert snapshot(synced) == before, f"{spec!r} was refused but changed the settings"
    page = _editor_refusal(synced, kind, host_key, zoho_field)
    assert f"Not added: {escape(message)}" in page, message
    assert snapshot(synced) == before
