"""Zoho's error shapes map to exceptions grouped by what the caller should do."""

from __future__ import annotations

from typing import Any

import pytest

from flask_zoho_sync.zoho.errors import (
    UnknownAccountsServer,
    ZohoError,
    ZohoMalformedResponse,
    ZohoModuleUnavailable,
    ZohoPermissionDenied,
    ZohoRateLimited,
    ZohoReconnectRequired,
    ZohoRecordBusy,
    ZohoRecordError,
    ZohoRequestError,
    ZohoRetryLater,
    ZohoScopeMismatch,
    ZohoSettingError,
    ZohoTokenRejected,
    ZohoTokenThrottled,
    ZohoUnavailable,
    body_excerpt,
    error_from_response,
)
from flask_zoho_sync.zoho.results import RecordResult


def crm_error(code: str, message: str = "msg", **details: Any) -> dict[str, Any]:
    return {"code": code, "details": details, "message": message, "status": "error"}


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (401, "INVALID_TOKEN", ZohoTokenRejected),
        (401, "INVALID_OAUTHTOKEN", ZohoTokenRejected),
        (401, "AUTHENTICATION_FAILURE", ZohoTokenRejected),
        (401, "OAUTH_SCOPE_MISMATCH", ZohoScopeMismatch),
        (400, "INVALID_MODULE", ZohoModuleUnavailable),
        (403, "NO_PERMISSION", ZohoPermissionDenied),
        (404, "INVALID_URL_PATTERN", ZohoSettingError),
        (400, "INVALID_HOST", ZohoSettingError),
        (400, "AUTHORIZATION_FAILED", ZohoPermissionDenied),
        (400, "FEATURE_NOT_SUPPORTED", ZohoModuleUnavailable),
        (400, "REQUIRED_PARAM_MISSING", ZohoRequestError),
        (400, "LIMIT_EXCEEDED", ZohoRequestError),
        (400, "DISCRETE_PAGINATION_LIMIT_EXCEEDED", ZohoRequestError),
        (400, "TOKEN_BOUND_DATA_MISMATCH", ZohoRequestError),
        (400, "EXPIRED_VALUE", ZohoRequestError),
        (400, "AMBIGUITY_DURING_PROCESSING", ZohoRequestError),
        (400, "PAGINATION_LIMIT_EXCEEDED", ZohoRequestError),
        (412, "ALREADY_MODIFIED", ZohoRecordBusy),
        (429, "TOO_MANY_REQUESTS", ZohoRateLimited),
        (500, "INTERNAL_ERROR", ZohoUnavailable),
    ],
)
def test_crm_error_codes_map_to_their_remedy(
    status: int, code: str, expected: type[ZohoError]
) -> None:
    error = error_from_response(status, crm_error(code, "why"), "GET /Leads")

    assert type(error) is expected
    assert error.code == code
    assert error.http_status == status
    assert error.endpoint == "GET /Leads"
    assert error.message == "why"


def test_pagination_error_keeps_zoho_details() -> None:
    body = {
        "code": "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
        "details": {"limit": 2000},
        "message": "You can only get the first 2000 records without using page_token param",
        "status": "error",
    }

    error = error_from_response(400, body, "GET /Leads")

    assert error.details == {"limit": 2000}


def test_older_numeric_code_shape_is_read_as_rate_limit() -> None:
    body = {
        "code": 429,
        "error": "TOO_MANY_REQUESTS",
        "error_info": "Many requests fired than the allowed limit for the past 24 hours.",
        "details": [],
    }

    error = error_from_response(429, body, "GET /Leads")

    assert isinstance(error, ZohoRateLimited)
    assert error.code == "TOO_MANY_REQUESTS"
    assert "Many requests fired" in error.message
    assert error.details == {}


@pytest.mark.parametrize("oauth_error", ["invalid_code", "invalid_client", "invalid_client_secret"])
def test_token_endpoint_errors_require_reconnecting(oauth_error: str) -> None:
    error = error_from_response(200, {"error": oauth_error}, "POST /oauth/v2/token")

    assert isinstance(error, ZohoReconnectRequired)
    assert error.code == oauth_error


def test_token_throttle_body_is_retry_later() -> None:
    body = {
        "error_description": "You have made too many requests continuously. "
        "Please try again after some time.",
        "error": "Access Denied",
        "status": "failure",
    }

    error = error_from_response(200, body, "POST /oauth/v2/token")

    assert isinstance(error, ZohoTokenThrottled)
    assert isinstance(error, ZohoRetryLater)


@pytest.mark.parametrize(
    ("status", "expected"),
    [(401, ZohoReconnectRequired), (403, ZohoSettingError), (502, ZohoUnavailable)],
)
def test_bodies_without_a_code_fall_back_to_the_status(
    status: int, expected: type[ZohoError]
) -> None:
    assert type(error_from_response(status, None, "GET /org")) is expected


def test_message_says_what_is_wrong_and_what_to_do() -> None:
    error = error_from_response(400, crm_error("INVALID_MODULE", "invalid module"), "GET /Leeds")

    text = str(error)

    assert "invalid module" in text
    assert "INVALID_MODULE" in text
    assert "GET /Leeds" in text
    assert "Check the sync settings" in text


def test_invalid_client_advice_points_at_the_data_centre() -> None:
    text = str(error_from_response(200, {"error": "invalid_client"}, "POST /oauth/v2/token"))

    assert "data centre" in text


def test_unknown_accounts_server_is_a_setting_error() -> None:
    assert issubclass(UnknownAccountsServer, ZohoSettingError)


def test_unavailable_that_may_have_been_applied_says_so() -> None:
    error = ZohoUnavailable("read timed out", maybe_applied=True)

    assert error.maybe_applied is True
    assert "may already have been applied" in str(error)


def test_record_error_carries_the_result() -> None:
    result = RecordResult.from_element(
        3,
        {
            "code": "MANDATORY_NOT_FOUND",
            "details": {"api_name": "Last_Name", "json_path": "$.data[3].Last_Name"},
            "message": "required field not found",
            "status": "error",
        },
    )

    error = ZohoRecordError(result, endpoint="POST /Leads")

    assert error.result is result
    assert error.code == "MANDATORY_NOT_FOUND"
    assert "required field not found" in str(error)


def test_body_excerpt_is_short_and_blanks_emails_and_tokens() -> None:
    page = (
        "<html><body>Bad gateway for ada@example.com token "
        "1000.2deaf8d0c268e3c85daa2a013a843b10.703adef2bb337b8ca36cfc5d7b83cf24"
        + " padding" * 100
        + "</body></html>"
    )

    excerpt = body_excerpt(page)

    assert len(excerpt) <= 160
    assert "ada@example.com" not in excerpt
    assert "2deaf8d0" not in excerpt
    assert excerpt.startswith("<html><body>Bad gateway")


def test_malformed_response_shows_its_excerpt() -> None:
    error = ZohoMalformedResponse("not JSON", excerpt="<html>oops")

    assert "<html>oops" in str(error)
    assert isinstance(error, ZohoRetryLater)
