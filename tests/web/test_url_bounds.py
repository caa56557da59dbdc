"""Ids and page numbers in admin URLs: out of range is a 404 (or a 400 for a page), never
a 500 from the database driver (issue 25, item 4), on SQLite and PostgreSQL.

The id routes are found from the app's URL map, so a route added later with a row id in
its path is attacked too, and one added with Werkzeug's unbounded ``int`` converter fails
the first test.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from werkzeug.routing import IntegerConverter, Rule

from flask_zoho_sync.models import FieldMap, RecordHistory, Run
from flask_zoho_sync.web.history_page import PAGE_SIZE
from flask_zoho_sync.web.url_values import MAX_DATABASE_ID, DatabaseIdConverter
from tests.web.conftest import PREFIX, Admin

OUT_OF_RANGE = [
    "9223372036854775807",  # fits SQLite, not PostgreSQL's INTEGER
    "9223372036854775808",  # one past signed 64 bits
    "2147483648",  # one past PostgreSQL's INTEGER
    "-1",
    "0",
    "9" * 5000,  # past Python's int() digit limit
    "1" + "0" * 40,
]


def id_rules(admin: Admin) -> list[Rule]:
    return [
        rule
        for rule in admin.host.app.url_map.iter_rules()
        if rule.endpoint.startswith("zoho_sync.")
        and any(isinstance(c, DatabaseIdConverter) for c in rule._converters.values())
    ]


def url_with(rule: Rule, value: str) -> str:
    (name,) = rule.arguments
    return rule.rule.replace(f"<zoho_sync_id:{name}>", value)


def test_every_admin_id_in_a_path_is_bounded(admin: Admin) -> None:
    rules = id_rules(admin)
    assert {rule.endpoint for rule in rules} >= {
        "zoho_sync.history_run",
        "zoho_sync.history_retry",
        "zoho_sync.mapping_change",
        "zoho_sync.mapping_remove",
    }
    unbounded = [
        rule.rule
        for rule in admin.host.app.url_map.iter_rules()
        if rule.endpoint.startswith("zoho_sync.")
        and any(isinstance(c, IntegerConverter) for c in rule._converters.values())
    ]
    assert unbounded == [], "use <zoho_sync_id:...> for row ids (see web/url_values.py)"


@pytest.mark.parametrize("value", OUT_OF_RANGE)
def test_an_id_no_row_can_have_is_not_found_on_every_route(admin: Admin, value: str) -> None:
    for rule in id_rules(admin):
        path = url_with(rule, value).removeprefix(PREFIX)
        response = admin.post(path) if "POST" in rule.methods else admin.get(path)
        assert response.status_code == 404, (rule.rule, value, response.status_code)


def test_real_ids_still_reach_their_pages(admin: Admin) -> None:
    with admin.host.app.app_context():
        session = admin.state.db.session
        run = Run(kind="sync", mode="all", status="succeeded", trigger="bounded-ids")
        session.add(run)
        session.commit()
        run_id = run.id
    assert "<title>Run of " in admin.text(f"/history/runs/{run_id}")
    assert admin.get(f"/history/runs/{run_id + 1}").status_code == 404


def test_the_largest_id_a_row_could_have_is_a_plain_not_found(admin: Admin) -> None:
    for path in (f"/history/runs/{MAX_DATABASE_ID}", "/history/runs/2147483647"):
        assert admin.get(path).status_code == 404, path
    assert admin.post("/mapping/rows/2147483647/remove").status_code == 404


def test_an_unknown_id_changes_nothing(admin: Admin) -> None:
    with admin.host.app.app_context():
        session = admin.state.db.session
        before = session.scalar(sa.select(sa.func.count()).select_from(FieldMap))
        errors = session.scalar(sa.select(sa.func.count()).select_from(RecordHistory))
        session.remove()
    for value in OUT_OF_RANGE:
        admin.post(f"/mapping/rows/{value}/remove")
        admin.post(f"/history/errors/{value}/retry")
    with admin.host.app.app_context():
        session = admin.state.db.session
        assert session.scalar(sa.select(sa.func.count()).select_from(FieldMap)) == before
        assert session.scalar(sa.select(sa.func.count()).select_from(RecordHistory)) == errors


@pytest.mark.parametrize("value", [*OUT_OF_RANGE, "abc", "1.5", "+2", " ", "1e3"])
def test_a_contact_id_no_contact_can_have_shows_an_empty_history(admin: Admin, value: str) -> None:
    for route in ("contacts", "contact"):
        response = admin.get(f"/history/{route}/{value}")
        assert response.status_code == 200, (route, value, response.status_code)
        assert "History of contact" in response.get_data(as_text=True)


BAD_PAGES = [v for v in OUT_OF_RANGE if v != "2147483648"]


@pytest.mark.parametrize("value", [*BAD_PAGES, "abc", "1.5", str(MAX_DATABASE_ID)])
def test_a_page_number_that_cannot_exist_is_a_400_that_says_so(admin: Admin, value: str) -> None:
    response = admin.get("/history", query_string={"page": value})
    assert response.status_code == 400, (value, response.status_code)
    assert "is not a page number" in response.get_data(as_text=True)


def test_the_last_page_that_could_exist_answers(admin: Admin) -> None:
    last = MAX_DATABASE_ID // PAGE_SIZE + 1
    assert f"No runs on page {last}" in admin.text(f"/history?page={last}")
    assert admin.get(f"/history?page={last + 1}").status_code == 400
    assert admin.get("/history?page=").status_code == 200
    assert "No runs on page 2147483648" in admin.text("/history?page=2147483648")
