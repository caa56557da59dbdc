"""One exception tree for everything Zoho can answer with.

Callers need to know what to *do*, not which JSON shape Zoho used, so the classes are
grouped by remedy:

* :class:`ZohoRetryLater`: transient (rate limit, outage, garbled reply); the job retries.
* :class:`ZohoBudgetExhausted`: the host's own daily credit budget is spent; the run pauses.
* :class:`ZohoReconnectRequired`: the stored grant is dead; an admin must connect again
  (:class:`ZohoTokenRejected` once a refresh did not help, :class:`ZohoScopeMismatch` when
  the grant lacks a scope).
* :class:`ZohoSettingError`: the configuration (module, permissions, host) is wrong.
* :class:`ZohoRequestError`: Zoho refused this request; retrying it unchanged will not help.
* :class:`ZohoRecordError`: one record was refused (batch calls return results instead).

Every code Zoho documents for the endpoints the sync calls is named in
:data:`DOCUMENTED_CODES` (and :data:`OAUTH_ERRORS` for the accounts server), with the class it
is raised as; ``docs/zoho-errors.md`` is the same table for people, with Zoho's sources, and a
test keeps the two in step.

Messages never contain tokens, secrets or record data: they name the endpoint and Zoho's
code and message only, because they end up in logs and on admin pages.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from .results import RecordResult


class ZohoError(Exception):
    """Root of every error the Zoho client raises."""

    #: What the operator (or the job) should do about it; shown after the message.
    advice: ClassVar[str] = "See the Zoho error code and message for details."

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        http_status: int | None = None,
        details: dict[str, Any] | None = None,
        endpoint: str | None = None,
        advice: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status
        self.details: dict[str, Any] = dict(details or {})
        self.endpoint = endpoint
        if advice is not None:
            self.advice = advice
        #: Results of the chunks a multi-chunk write finished before this error, so a caller
        #: can record what did reach Zoho instead of guessing.
        self.partial_results: list[RecordResult] = []

    def __str__(self) -> str:
        context = [part for part in (self.code, self._status_text(), self.endpoint) if part]
        where = f" ({', '.join(context)})" if context else ""
        return f"{self.message}{where}. {self.advice}"

    def _status_text(self) -> str | None:
        return f"HTTP {self.http_status}" if self.http_status is not None else None


# -- transient ------------------------------------------------------------------------------


class ZohoRetryLater(ZohoError):
    """A transient failure: the same request may well succeed later."""

    advice = "This is temporary; the sync will retry later."


class ZohoRateLimited(ZohoRetryLater):
    """HTTP 429: Zoho's daily credits or the concurrency limit are exhausted.

    Zoho sends no ``Retry-After``, and the status does not say which limit was hit.
    """

    advice = (
        "Zoho's API credit or concurrency limit was reached; the sync will retry later. "
        "If this keeps happening, lower the sync frequency or buy more API credits."
    )


class ZohoUnavailable(ZohoRetryLater):
    """Zoho answered 5xx, or could not be reached, or took too long."""

    advice = "Zoho CRM could not be reached or failed; the sync will retry later."

    def __init__(self, message: str, *, maybe_applied: bool = False, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        #: True when the request may have been carried out before the failure (a write whose
        #: answer was lost): re-sending a create could then duplicate records.
        self.maybe_applied = maybe_applied
        if maybe_applied:
            self.advice = (
                "The request may already have been applied in Zoho, so it was not repeated; "
                "check Zoho before retrying a create."
            )


class ZohoMalformedResponse(ZohoRetryLater):
    """Zoho (or a proxy in front of it) answered with something that is not the JSON we
    expected, typically an HTML error page during an outage."""

    advice = (
        "Zoho's reply was not in the expected format (often an outage page); "
        "the sync will retry later."
    )

    def __init__(self, message: str, *, excerpt: str = "", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        #: A short, scrubbed start of the body, enough to recognise an error page.
        self.excerpt = excerpt

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base} Body began: {self.excerpt!r}" if self.excerpt else base


class ZohoTokenThrottled(ZohoRetryLater):
    """The token endpoint's "Access Denied": more than ten token requests in ten minutes."""

    advice = (
        "Zoho refused to issue more access tokens for now (at most 10 per 10 minutes); "
        "wait about ten minutes. Check that several processes are not refreshing tokens."
    )


class ZohoPageTokenExpired(ZohoRetryLater):
    """``EXPIRED_VALUE`` for a ``page_token``: a listing outlived its token (24 hours).

    Nothing is lost: the pull resumes from its last completed page on the next run.
    """

    advice = (
        "The listing took longer than its page_token lives (Zoho keeps them 24 hours); nothing "
        "is lost: the next sync starts the listing again from the last completed pull."
    )


class ZohoBudgetExhausted(ZohoError):
    """The next call would spend more than the daily budget the host set for the sync.

    Not a "retry later" error: retrying in a minute would find the budget as spent as now.
    The run pauses instead, and resumes when the rolling window frees credits.
    """

    advice = (
        "The sync pauses and resumes by itself when the 24-hour window frees credits; raise "
        "ZOHO_SYNC_DAILY_CREDIT_BUDGET to let it spend more."
    )

    def __init__(
        self,
        message: str,
        *,
        resumes_at: datetime | None = None,
        setting: str = "ZOHO_SYNC_DAILY_CREDIT_BUDGET",
        **kwargs: Any,
    ):
        super().__init__(message, code="BUDGET_EXHAUSTED", **kwargs)
        #: When enough credits leave the window for the sync to go on (None: unknown).
        self.resumes_at = resumes_at
        #: The setting that drew the line, which the admin can change to let it go on.
        self.setting = setting
        if setting != "ZOHO_SYNC_DAILY_CREDIT_BUDGET":
            self.advice = (
                "The sync pauses and tries again later, leaving Zoho's last credits to the "
                f"org's other integrations; lower {setting} to let it use more of them."
            )


# -- the connection is dead -----------------------------------------------------------------


class ZohoReconnectRequired(ZohoError):
    """The stored OAuth grant no longer works; only a new consent can fix it."""

    advice = "Reconnect Zoho CRM from the admin pages (or 'flask zoho-sync connect')."


class ZohoTokenRejected(ZohoReconnectRequired):
    """Zoho refused the access token: ``INVALID_TOKEN``, ``INVALID_OAUTHTOKEN`` or
    ``AUTHENTICATION_FAILURE`` (HTTP 401, reference §4.5).

    Each of these is sometimes fixed by one refresh (an expired token, the 16th active token
    invalidating the oldest, or an AUTHENTICATION_FAILURE Zoho sends for a token a refresh
    cures), so the client replaces the token once and repeats the call before it lets this
    out. A caller that sees it therefore knows a different token was refused too.
    """

    advice = (
        "Zoho refused a freshly refreshed access token as well, so the connection itself is "
        "no longer valid. Reconnect Zoho CRM from the admin pages (or 'flask zoho-sync "
        "connect')."
    )


class ZohoScopeMismatch(ZohoReconnectRequired):
    """``OAUTH_SCOPE_MISMATCH``: the grant lacks a scope this call needs (reference §1.8,
    §4.5). A refresh keeps the grant's scopes, so it cannot help; only a new consent can."""

    advice = (
        "The Zoho connection was granted without a permission (OAuth scope) this call "
        "needs. Reconnect Zoho CRM from the admin pages so the consent grants every scope "
        "the sync asks for."
    )


# -- configuration --------------------------------------------------------------------------


class ZohoSettingError(ZohoError):
    """The sync's configuration does not fit this Zoho account (module, permission, host)."""

    advice = (
        "Check the sync settings (module, API host) and the connected user's Zoho "
        "profile permissions, then try again."
    )


class ZohoPermissionDenied(ZohoSettingError):
    """``NO_PERMISSION``, ``AUTHORIZATION_FAILED``, ``NOT_SUPPORTED``: the connected user's
    Zoho profile may not do this (Zoho names the missing permission in ``details``)."""

    advice = (
        "The connected Zoho user's profile is not allowed to do this. Give that profile the "
        "permission in Zoho (Setup > Users and Control > Profiles), or connect Zoho CRM as a "
        "user who has it."
    )


class ZohoModuleUnavailable(ZohoSettingError):
    """``INVALID_MODULE``, ``MODULE_NOT_AVAILABLE``, ``FEATURE_NOT_SUPPORTED``: the module or
    feature does not exist for this org through the API, or the user has no tab permission."""

    advice = (
        "Check the sync settings: Zoho does not offer this module or feature to the connected "
        "user through the API (a wrong module name, no tab permission for the user, or an "
        "edition without it)."
    )


class ZohoMappingError(ZohoSettingError):
    """``INVALID_FIELD``, ``MANDATORY_FIELDS_NOT_MAPPED``: a Bulk Write job's field mapping
    does not fit the module's fields in Zoho."""

    advice = (
        "The field mapping does not fit the module's fields in Zoho: a mapped field does not "
        "exist there, or a field Zoho requires is not mapped. Check the mapping page."
    )


class UnknownAccountsServer(ZohoSettingError):
    """An accounts server that is neither Zoho's nor explicitly trusted.

    Refused before any request, because the token request carries the client secret.
    """

    advice = (
        "If this server is yours (for example the Zoho sandbox), add it to "
        "ZOHO_SYNC_EXTRA_ACCOUNTS_SERVERS; otherwise ignore the request that named it."
    )


# -- the request or a record was refused ----------------------------------------------------


class ZohoRequestError(ZohoError):
    """Zoho refused the request as a whole (bad parameter, limit, conflict)."""

    advice = (
        "Zoho refused this request; retrying it unchanged will not help. "
        "This usually points to a bug or an unusual record; see the code and details."
    )


class ZohoDataRefused(ZohoRequestError):
    """Zoho refused the record data itself (``INVALID_DATA``, ``DUPLICATE_DATA``,
    ``MANDATORY_NOT_FOUND`` and the like); ``details`` names the field. Batch writes report
    these per record instead, as :class:`~.results.RecordResult` verdicts."""

    advice = (
        "Zoho refused the record's data (the details name the field: a wrong type or length, "
        "a duplicate of a unique field, or a missing required field). Fix the record in the "
        "app or in Zoho, then sync it again."
    )


class ZohoRecordBusy(ZohoRequestError):
    """``RECORD_LOCKED``, ``NOT_APPROVED``, ``ALREADY_MODIFIED``: the record cannot be
    written right now (locked, awaiting approval, or changed in Zoho since it was read)."""

    advice = (
        "The record is locked, awaiting approval, or was changed in Zoho meanwhile; the next "
        "sync reads it again and retries."
    )


class ZohoRecordError(ZohoError):
    """Zoho refused one record; raised only by single-record helpers."""

    advice = "Fix the record's data in the app or in Zoho, then sync it again."

    def __init__(self, result: RecordResult, *, endpoint: str | None = None) -> None:
        super().__init__(
            result.message or "Zoho refused the record",
            code=result.code,
            details=result.details,
            endpoint=endpoint,
        )
        self.result = result


# -- mapping Zoho's error bodies ------------------------------------------------------------

#: 401 codes a new access token may cure; the client refreshes once on these (see
#: :class:`ZohoTokenRejected`).
TOKEN_REJECTED_CODES = frozenset({"INVALID_TOKEN", "INVALID_OAUTHTOKEN", "AUTHENTICATION_FAILURE"})

#: Every CRM error code Zoho documents for the endpoints the sync calls (records, deleted
#: records, search, count, field metadata, org, users, notifications, bulk read and write;
#: reference §4.5 and the "Possible Errors" of each endpoint's page), and what it is raised
#: as. ``docs/zoho-errors.md`` lists the same codes with their sources.
DOCUMENTED_CODES: Mapping[str, type[ZohoError]] = {
    # the token: one refresh, then reconnect
    **dict.fromkeys(TOKEN_REJECTED_CODES, ZohoTokenRejected),
    "OAUTH_SCOPE_MISMATCH": ZohoScopeMismatch,
    # transient
    "TOO_MANY_REQUESTS": ZohoRateLimited,
    "INTERNAL_ERROR": ZohoUnavailable,
    "EXPIRED_VALUE": ZohoPageTokenExpired,  # only for page_token; see error_from_response
    # the configuration or the connected user's rights
    "NO_PERMISSION": ZohoPermissionDenied,
    "AUTHORIZATION_FAILED": ZohoPermissionDenied,
    "NOT_SUPPORTED": ZohoPermissionDenied,
    "INVALID_MODULE": ZohoModuleUnavailable,
    "MODULE_NOT_AVAILABLE": ZohoModuleUnavailable,
    "FEATURE_NOT_SUPPORTED": ZohoModuleUnavailable,
    "INVALID_URL_PATTERN": ZohoSettingError,
    "INVALID_HOST": ZohoSettingError,
    "INVALID_FIELD": ZohoMappingError,
    "MANDATORY_FIELDS_NOT_MAPPED": ZohoMappingError,
    # the record's data
    **dict.fromkeys(
        (
            "INVALID_DATA",
            "DUPLICATE_DATA",
            "MANDATORY_NOT_FOUND",
            "MULTIPLE_OR_MULTI_ERRORS",
            "DEPENDENT_FIELD_MISSING",
            "DEPENDENT_MISMATCH",
            "DEPENDENT_SERVICE_ERROR",
            "EXPECTED_FIELD_MISSING",
            "INVALID_FORMAT",
        ),
        ZohoDataRefused,
    ),
    **dict.fromkeys(("RECORD_LOCKED", "NOT_APPROVED", "ALREADY_MODIFIED"), ZohoRecordBusy),
    # the request itself: a bug or an unusual call on our side
    **dict.fromkeys(
        (
            "REQUIRED_PARAM_MISSING",
            "EXPECTED_PARAM_MISSING",
            "LIMIT_EXCEEDED",
            "LIMIT_REACHED",
            "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
            "PAGINATION_LIMIT_EXCEEDED",
            "TOKEN_BOUND_DATA_MISMATCH",
            "AMBIGUITY_DURING_PROCESSING",
            "INVALID_REQUEST_METHOD",
            "INVALID_QUERY",
            "SYNTAX_ERROR",
            "PATTERN_NOT_MATCHED",
            "UNABLE_TO_PARSE_DATA_TYPE",
            "MEDIA_TYPE_NOT_SUPPORTED",
            "RESOURCE_NOT_FOUND",
            "INVALID_FILE_FORMAT",
            "FILE_TOO_LARGE",
            "INVALID_FILE_ID",
            "HEADER_LIMIT_EXCEEDED",
            "COLUMN_INDEX_NOT_FOUND",
        ),
        ZohoRequestError,
    ),
}

#: Codes Zoho does not document for these endpoints that the client still reads: this
#: spelling has been handled since the client's first version, and is kept so a 200 carrying
#: it stays a retry rather than becoming a refusal.
_UNDOCUMENTED_CODES: Mapping[str, type[ZohoError]] = {"INTERNAL_SERVER_ERROR": ZohoUnavailable}

#: OAuth ``error`` values from the token endpoint (reference §1.6), all sent with HTTP 200.
#: All but the throttle mean the grant or the client credentials are unusable.
OAUTH_ERRORS: Mapping[str, type[ZohoError]] = {
    "invalid_code": ZohoReconnectRequired,
    "invalid_client": ZohoReconnectRequired,
    "invalid_client_secret": ZohoReconnectRequired,
    "Access Denied": ZohoTokenThrottled,
    "access_denied": ZohoTokenThrottled,
}
_OAUTH_THROTTLE = frozenset({"access denied", "access_denied"})
_OAUTH_RECONNECT_ADVICE = {
    "invalid_code": (
        "The grant code is expired or already used, or the refresh token was revoked. "
        "Reconnect Zoho CRM from the admin pages."
    ),
    "invalid_client": (
        "Zoho does not recognise the client ID/secret at this accounts server: check "
        "ZOHO_SYNC_CLIENT_ID/ZOHO_SYNC_CLIENT_SECRET and that the account's data centre is "
        "enabled for the client (Multi-DC in the API console), then reconnect."
    ),
    "invalid_client_secret": (
        "The client secret is wrong for this data centre: check ZOHO_SYNC_CLIENT_SECRET "
        "(Multi-DC clients may have one secret per data centre), then reconnect."
    ),
}


def error_from_response(status: int | None, body: Any, endpoint: str | None) -> ZohoError:
    """Turn a Zoho error reply into the exception for its remedy.

    Understands the three shapes Zoho uses (reference §1.6, §4.3, §4.5): the CRM's
    ``{"code","details","message","status"}``, the older ``{"code": 429, "error": ...}``,
    and the token endpoint's ``{"error": ..., "error_description": ...}``.
    """
    payload: dict[str, Any] = body if isinstance(body, dict) else {}
    code, message, details = _read_error_fields(payload)

    if "error" in payload and "code" not in payload:
        oauth_error = _oauth_error(status, payload, endpoint)
        if oauth_error is not None:
            return oauth_error

    kwargs: dict[str, Any] = {
        "code": code,
        "http_status": status,
        "details": details,
        "endpoint": endpoint,
    }
    text = message or (f"Zoho answered HTTP {status}" if status else "Zoho reported an error")

    if status == 429:
        return ZohoRateLimited(text, **kwargs)
    if code == "EXPIRED_VALUE" and details.get("param_name") != "page_token":
        # Zoho documents EXPIRED_VALUE for page tokens only; another expired value is not
        # cured by starting the listing again.
        return ZohoRequestError(text, **kwargs)
    if status is not None and status >= 500:
        return ZohoUnavailable(text, **kwargs)
    documented = (
        DOCUMENTED_CODES.get(code) or _UNDOCUMENTED_CODES.get(code) if code is not None else None
    )
    if documented is not None:
        return documented(text, **kwargs)
    if code is None and status == 401:
        return ZohoReconnectRequired(text, **kwargs)
    if code is None and status in (403, 404):
        return ZohoSettingError(text, **kwargs)
    return ZohoRequestError(text, **kwargs)


def _read_error_fields(payload: dict[str, Any]) -> tuple[str | None, str, dict[str, Any]]:
    raw_code = payload.get("code")
    if isinstance(raw_code, str):
        code: str | None = raw_code
    elif isinstance(payload.get("error"), str) and raw_code is not None:
        # Older shape: {"code": 429, "error": "TOO_MANY_REQUESTS", "error_info": "..."}
        code = payload["error"]
    else:
        code = None
    message = payload.get("message") or payload.get("error_info") or ""
    details = payload.get("details")
    return code, str(message), details if isinstance(details, dict) else {}


def _oauth_error(
    status: int | None, payload: dict[str, Any], endpoint: str | None
) -> ZohoError | None:
    error = payload.get("error")
    if not isinstance(error, str):
        return None
    description = payload.get("error_description")
    message = f"Zoho's accounts server refused the token request: {error}"
    if isinstance(description, str) and description:
        message = f"{message} ({description})"
    kwargs: dict[str, Any] = {"code": error, "http_status": status, "endpoint": endpoint}
    if error.strip().lower() in _OAUTH_THROTTLE:
        return ZohoTokenThrottled(message, **kwargs)
    if status is not None and status >= 500:
        return ZohoUnavailable(message, **kwargs)
    return ZohoReconnectRequired(message, advice=_OAUTH_RECONNECT_ADVICE.get(error), **kwargs)


# -- keeping bodies out of messages ---------------------------------------------------------

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_TOKEN_LIKE = re.compile(r"\b\d{4}\.[0-9a-f]{16,}(?:\.[0-9a-f]{16,})?\b", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")
EXCERPT_LENGTH = 160


def body_excerpt(text: str, limit: int = EXCERPT_LENGTH) -> str:
    """A short start of a reply body for error messages, with emails and token-shaped
    strings blanked: enough to recognise an outage page, never a record's data."""
    excerpt = _WHITESPACE.sub(" ", text[: limit * 2]).strip()[:limit]
    excerpt = _EMAIL.sub("<email>", excerpt)
    return _TOKEN_LIKE.sub("<token>", excerpt)
