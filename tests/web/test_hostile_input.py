"""Malformed, oversized, wrong-typed and hostile input to every endpoint of the extension:
never a server error, and a refused request changes nothing."""

from __future__ import annotations

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flask_zoho_sync.models import Connection, FieldMap, SyncSettings
from tests.web.conftest import PREFIX, Admin

HOSTILE_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            "<script>alert(1)</script>",
            "' OR 1=1 --",
            "../../etc/passwd",
            "\x00",
            "9" * 400,
            "Leads\r\nX-Injected: 1",
            "\u202eevil",
            "🙂" * 50,
            "x" * 20000,
        ]
    ),
)
FORMS = st.dictionaries(
    st.sampled_from(
        [
            "module",
            "time_zone",
            "auto_sync",
            "conflict_policy",
            "host_key",
            "zoho_field",
            "direction",
            "policy",
            "inverted",
            "confirm_relink",
            "kind",
            "mode",
        ]
    ),
    HOSTILE_TEXT,
    max_size=6,
)
POSTS = [
    "/settings",
    "/mapping/field/add",
    "/mapping/system/add",
    "/mapping/group/add",
    "/mapping/bogus/add",
    "/mapping/rows/1",
    "/mapping/rows/999999/remove",
    "/mapping/rows/not-a-number",
    "/mapping/defaults",
    "/connect",
    "/disconnect",
    "/cron",
    "/notify",
]


def snapshot(admin: Admin) -> tuple:
    with admin.host.app.app_context():
        session = admin.state.db.session
        rows = session.execute(
            sa.select(FieldMap.kind, FieldMap.host_key, FieldMap.zoho_field, FieldMap.direction)
        ).all()
        stored = session.scalars(sa.select(SyncSettings)).first()
        connections = session.scalar(sa.select(sa.func.count()).select_from(Connection))
        session.remove()
    module = stored.module if stored else None
    return sorted(rows), module, connections


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(path=st.sampled_from(POSTS), form=FORMS, with_token=st.booleans(), as_json=st.booleans())
def test_hostile_posts_never_cause_a_server_error(
    admin: Admin, path: str, form: dict[str, str], with_token: bool, as_json: bool
) -> None:
    if as_json:
        response = admin.client.post(f"{PREFIX}{path}", json=form)
    elif with_token:
        response = admin.post(path, form)
    else:
        response = admin.client.post(f"{PREFIX}{path}", data=form)
    assert response.status_code < 500, (path, form, response.get_data(as_text=True)[:300])


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    params=st.dictionaries(
        st.sampled_from(["code", "state", "location", "accounts-server", "error", "x"]),
        HOSTILE_TEXT,
        max_size=5,
    )
)
def test_a_hostile_oauth_callback_never_errors_and_stores_nothing(
    admin: Admin, params: dict[str, str]
) -> None:
    before = snapshot(admin)
    response = admin.client.get(f"{PREFIX}/oauth/callback", query_string=params)
    assert response.status_code < 500
    assert snapshot(admin) == before


def test_requests_without_a_token_change_nothing(admin: Admin) -> None:
    before = snapshot(admin)
    for path in POSTS[:9]:
        response = admin.client.post(
            f"{PREFIX}{path}",
            data={"module": "Contacts", "host_key": "email", "zoho_field": "Email"},
        )
        assert response.status_code in (400, 403, 404, 405), path
    assert snapshot(admin) == before
