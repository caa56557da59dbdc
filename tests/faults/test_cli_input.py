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
