"""docs/zoho-errors.md and errors.py tell the same story: every code in the table is raised
as the class it names, with the advice it quotes, and no documented code is left out."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from flask_zoho_sync.zoho import errors
from flask_zoho_sync.zoho.errors import DOCUMENTED_CODES, OAUTH_ERRORS, error_from_response

TABLE = Path(__file__).resolve().parents[2] / "docs" / "zoho-errors.md"
ROW = re.compile(r"^\| `([^`]+)` \| ([\d/]+) \| (.*?) \| `(\w+)` \| (.*?) \| (.+) \|$")


def rows(section: str) -> list[tuple[str, int, str, str, str, str]]:
    """The table rows under a ``## section`` heading, pipes unescaped."""
    text = TABLE.read_text(encoding="utf-8").split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    found = []
    for line in text.splitlines():
        match = ROW.match(line)
        if match:
            code, http, meaning, error, advice, source = match.groups()
            found.append(
                (
                    code,
                    int(http.split("/")[0]),
                    meaning.replace("\\|", "|"),
                    error,
                    advice.replace("\\|", "|"),
                    source,
                )
            )
    return found


CRM_ROWS = rows("CRM API codes")
OAUTH_ROWS = rows("Accounts server (token endpoint) errors")


def crm_body(code: str, meaning: str) -> dict[str, Any]:
    # The documented EXPIRED_VALUE is the page_token one (get-records), and Zoho names it.
    details = {"param_name": "page_token"} if code == "EXPIRED_VALUE" else {}
    return {"code": code, "details": details, "message": meaning, "status": "error"}


def test_the_table_and_errors_py_list_the_same_codes() -> None:
    assert sorted(row[0] for row in CRM_ROWS) == sorted(DOCUMENTED_CODES)
    assert sorted(row[0] for row in OAUTH_ROWS) == sorted(OAUTH_ERRORS)


@pytest.mark.parametrize(("code", "http", "meaning", "error", "advice", "source"), CRM_ROWS)
def test_each_crm_code_is_raised_as_the_table_says(
    code: str, http: int, meaning: str, error: str, advice: str, source: str
) -> None:
    raised = error_from_response(http, crm_body(code, meaning), "GET /crm/v8/Leads")

    assert type(raised) is getattr(errors, error)
    assert DOCUMENTED_CODES[code] is type(raised)
    assert raised.advice == advice
    assert raised.code == code and raised.message == meaning
    assert "zoho.com" in source or "ref §" in source


@pytest.mark.parametrize(("code", "http", "meaning", "error", "advice", "source"), OAUTH_ROWS)
def test_each_token_endpoint_error_is_raised_as_the_table_says(
    code: str, http: int, meaning: str, error: str, advice: str, source: str
) -> None:
    raised = error_from_response(http, {"error": code}, "POST /oauth/v2/token")

    assert type(raised) is getattr(errors, error) is OAUTH_ERRORS[code]
    assert raised.advice == advice
    assert "ref §" in source


def test_an_expired_value_that_is_not_a_page_token_is_a_plain_refusal() -> None:
    body = {"code": "EXPIRED_VALUE", "details": {"param_name": "code"}, "message": "expired"}

    assert type(error_from_response(400, body, "GET /x")) is errors.ZohoRequestError
