"""`POST /crm/v8/coql`: the select subset, paging by LIMIT/OFFSET, Zoho's errors, credits."""

from __future__ import annotations

from typing import Any

import pytest

from flask_zoho_sync.sandbox import SandboxHandle, SandboxServer

from .conftest import ZOHO_DATETIME, Api


def _coql(api: Api, query: str) -> Any:
    return api.post("/coql", json={"select_query": query})


def _leads(sandbox: SandboxHandle) -> dict[str, str]:
    """Three leads; their ids by last name."""
    ids = {}
    for last, email, employees in (
        ("Ng", "ng@x.test", 5),
        ("Ode", "ode@y.test", 50),
        ("Pi", None, 500),
    ):
        fields: dict[str, Any] = {"Last_Name": last, "No_of_Employees": employees}
        if email:
            fields["Email"] = email
        ids[last] = sandbox.create_record("Leads", fields)["id"]
    return ids


def _names(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [record["Last_Name"] for record in response.json()["data"]]


def test_selected_fields_and_id_come_back_with_count_and_more_records(
    sandbox: SandboxHandle, api: Api
) -> None:
    _leads(sandbox)
    body = _coql(
        api, "select Last_Name, Email, Modified_Time from Leads where id is not null limit 2"
    ).json()
    assert [set(r) for r in body["data"]] == [{"Last_Name", "Email", "Modified_Time", "id"}] * 2
    assert ZOHO_DATETIME.match(body["data"][0]["Modified_Time"])
    assert body["info"] == {"count": 2, "more_records": True}
    rest = _coql(api, "SELECT Last_Name FROM Leads where id is not null LIMIT 2 OFFSET 2").json()
    assert rest["info"] == {"count": 1, "more_records": False}


def test_default_order_is_by_id_and_order_by_sorts(sandbox: SandboxHandle, api: Api) -> None:
    ids = _leads(sandbox)
    by_id = sorted(ids, key=lambda last: int(ids[last]))
    assert _names(_coql(api, "select Last_Name from Leads where id is not null")) == by_id
    ordered = _coql(
        api, "select Last_Name from Leads where id is not null order by No_of_Employees desc"
    )
    assert _names(ordered) == ["Pi", "Ode", "Ng"]
    assert (
        _names(_coql(api, "select Last_Name from Leads where id is not null limit 1, 1"))
        == by_id[1:2]
    )


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("No_of_Employees >= 50", ["Ode", "Pi"]),
        ("No_of_Employees between 10 and 100", ["Ode"]),
        ("No_of_Employees not between 10 and 100", ["Ng", "Pi"]),
        ("Email is null", ["Pi"]),
        ("Email like '%.test'", ["Ng", "Ode"]),
        ("Email not like '%y.te%'", ["Ng", "Pi"]),
        ("Last_Name in ('ng', 'Pi')", ["Ng", "Pi"]),
        ("Last_Name not in ('Ng')", ["Ode", "Pi"]),
        ("(Email is not null and No_of_Employees < 50) or Last_Name = 'Pi'", ["Ng", "Pi"]),
        ("Last_Name != 'Ode' and (No_of_Employees > 5 or Email is null)", ["Pi"]),
    ],
)
def test_where_comparators_and_brackets(
    sandbox: SandboxHandle, api: Api, where: str, expected: list[str]
) -> None:
    _leads(sandbox)
    query = f"select Last_Name from Leads where {where} order by Last_Name"
    assert _names(_coql(api, query)) == expected


def test_modified_time_and_id_criteria_read_any_offset(sandbox: SandboxHandle, api: Api) -> None:
    ids = _leads(sandbox)
    first = min(ids.values(), key=int)
    later = _coql(api, f"select Last_Name from Leads where id > '{first}'")
    assert len(_names(later)) == 2
    stamp = _coql(api, "select Modified_Time from Leads where id is not null limit 1").json()[
        "data"
    ][0]
    since = stamp["Modified_Time"]
    assert (
        len(_coql(api, f"select id from Leads where Modified_Time >= '{since}'").json()["data"])
        == 3
    )


def test_quoted_value_with_an_escaped_quote(sandbox: SandboxHandle, api: Api) -> None:
    sandbox.create_record("Leads", {"Last_Name": "O'Hara"})
    assert _names(_coql(api, r"select Last_Name from Leads where Last_Name = 'O\'Hara'")) == [
        "O'Hara"
    ]


def test_nothing_found_is_204(api: Api) -> None:
    response = _coql(api, "select Last_Name from Contacts where id is not null")
    assert response.status_code == 204 and response.content == b""


def _error(response: Any) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == {"code", "details", "message", "status"} and body["status"] == "error"
    return body


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("update Leads set Last_Name = 'x'", "SYNTAX_ERROR"),
        ("select Last_Name Leads", "SYNTAX_ERROR"),
        ("select Last_Name from Leads where (Last_Name = 'a'", "SYNTAX_ERROR"),
        ("select Last_Name from Leads where A_ = 'a' and", "INVALID_QUERY"),
        (
            "select Last_Name from Leads where Email = 'a' and City = 'b' or State = 'c'",
            "SYNTAX_ERROR",
        ),
        ("select Last_Name from Leads where id is not null limit 2001", "LIMIT_EXCEEDED"),
        ("select Nope from Leads where id is not null", "INVALID_QUERY"),
        ("select Last_Name from Deals where id is not null", "INVALID_QUERY"),
        ("select Last_Name from Leads where No_of_Employees = 'many'", "INVALID_QUERY"),
        ("select Last_Name from Leads where Last_Name >= 'a'", "INVALID_QUERY"),
        ("select Last_Name from Leads where Description = 'a'", "INVALID_QUERY"),
        ("select Last_Name, Last_Name from Leads where id is not null", "DUPLICATE_DATA"),
    ],
)
def test_bad_queries_get_zohos_error_bodies(api: Api, query: str, code: str) -> None:
    assert _error(_coql(api, query))["code"] == code


def test_a_query_without_where_is_a_syntax_error(api: Api) -> None:
    """Zoho's error list: a query without "proper criteria ... or the where clause"."""
    body = _error(_coql(api, "select Last_Name from Leads limit 2"))
    assert body["code"] == "SYNTAX_ERROR" and body["details"] == {"clause": "where"}


def test_syntax_error_says_where(api: Api) -> None:
    body = _error(_coql(api, "select Last_Name from Leads where Last_Name ~ 'a'"))
    assert body["code"] == "SYNTAX_ERROR"
    assert body["details"]["line"] == 1 and body["details"]["near"].startswith("~")


def test_more_than_fifty_fields_and_values_are_limit_exceeded(api: Api) -> None:
    fields = ", ".join(f"Field_{n}" for n in range(51))
    assert (
        _error(_coql(api, f"select {fields} from Leads where id is not null"))["code"]
        == "LIMIT_EXCEEDED"
    )
    values = ", ".join(f"'v{n}'" for n in range(51))
    too_many = _coql(api, f"select Last_Name from Leads where Last_Name in ({values})")
    assert _error(too_many)["code"] == "LIMIT_EXCEEDED"


def test_missing_select_query_is_required_param_missing(api: Api) -> None:
    body = _error(api.post("/coql", json={"query": "select id from Leads where id is not null"}))
    assert body["code"] == "REQUIRED_PARAM_MISSING"


def test_offset_past_the_record_limit_is_refused() -> None:
    with SandboxServer(coql_record_limit=300) as server, SandboxHandle(server.url) as handle:
        handle.generate_records("Leads", 5)
        api = Api(handle)
        try:
            assert (
                _coql(
                    api, "select id from Leads where id is not null limit 200 offset 100"
                ).status_code
                == 204
            )
            body = _error(
                _coql(api, "select id from Leads where id is not null limit 200 offset 101")
            )
            assert body["code"] == "LIMIT_EXCEEDED"
            assert body["message"] == "Max records limit exceeded"
        finally:
            api.close()


def test_credits_follow_the_limit(sandbox: SandboxHandle, api: Api) -> None:
    _leads(sandbox)
    before = sandbox.stats()["credits"].get("POST /coql", 0)
    for limit in (200, 201, 1000, 1001, 2000):
        _coql(api, f"select id from Leads where id is not null limit {limit}")
    _coql(api, "select id from Leads where id is not null")  # no LIMIT: 200
    spent = sandbox.stats()["credits"]["POST /coql"] - before
    assert spent == 1 + 2 + 2 + 3 + 3 + 1


def test_converted_leads_are_read_too(sandbox: SandboxHandle, api: Api) -> None:
    ids = _leads(sandbox)
    sandbox.convert_lead(ids["Ng"])
    body = _coql(
        api, "select Last_Name, Converted__s from Leads where id is not null order by Last_Name"
    ).json()
    assert [(r["Last_Name"], r["Converted__s"]) for r in body["data"]] == [
        ("Ng", True), ("Ode", False), ("Pi", False)
    ]  # fmt: skip


def test_coql_needs_its_scope_and_the_modules(sandbox: SandboxHandle) -> None:
    no_coql = Api(sandbox, scope="ZohoCRM.modules.ALL")
    only_coql = Api(sandbox, scope="ZohoCRM.coql.READ,ZohoCRM.modules.contacts.READ")
    try:
        assert _coql(no_coql, "select id from Leads where id is not null").status_code == 401
        refused = _coql(only_coql, "select id from Leads where id is not null")
        assert refused.status_code == 401 and refused.json()["code"] == "OAUTH_SCOPE_MISMATCH"
    finally:
        no_coql.close()
        only_coql.close()
