"""The Zoho CRM REST client the sync engine talks to.

It hides four things the engine should not have to know (reference §2, §4):

* where to call: the connection's ``api_domain``, with a ``Zoho-oauthtoken`` header, and a
  token refreshed once when Zoho says it is no longer valid;
* when to retry: 429 and outages are retried with capped, jittered backoff, except a create
  whose answer was lost, which could otherwise be applied twice;
* Zoho's size limits: 50 fields per read, 100 records per write or delete, and the
  2,000-record wall beyond which only ``page_token`` paging works;
* Zoho's reply shapes: 204/304 mean "nothing", per-record verdicts live in ``data[]`` whatever
  the HTTP status, and errors come in several JSON shapes.

Nothing here logs or raises with tokens, secrets or request bodies: record data holds
people's emails, and these messages end up in logs and on admin pages.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests
import requests.adapters
from urllib3.exceptions import NewConnectionError

from .auth import TokenManager, TokenSet
from .coql import (
    MAX_LIMIT,
    MAX_OFFSET_RECORDS,
    AnyOf,
    Criterion,
    OffsetReader,
    OneOf,
    limit_of,
)
from .credits import CreditBudget, endpoint_key
from .errors import (
    ZohoError,
    ZohoMalformedResponse,
    ZohoRateLimited,
    ZohoReconnectRequired,
    ZohoRequestError,
    ZohoRetryLater,
    ZohoTokenRejected,
    ZohoUnavailable,
    body_excerpt,
    error_from_response,
)
from .meter import UsageMeter, parse_credits_remaining
from .results import DeletedRecord, RecordResult
from .slots import CallSlots
from .timefmt import format_datetime

__all__ = ["DeletedRecord", "RecordResult", "ZohoClient"]

logger = logging.getLogger(__name__)

#: Zoho's per-call limits (reference §2.1, §2.4, §2.7).
MAX_FIELDS_PER_CALL = 50
MAX_IDS_PER_CALL = 100
MAX_RECORDS_PER_WRITE = 100
MAX_PER_PAGE = 200

#: Fields every listing carries: ``id`` to merge and link, ``Modified_Time`` as the
#: incremental watermark.
ALWAYS_FIELDS = ("id", "Modified_Time")


#: Failures where no complete HTTP answer arrived.
_NO_ANSWER = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any  # parsed JSON, or None for 204/304
    headers: Mapping[str, str]


class ZohoClient:
    """Records, metadata and notifications of one Zoho CRM connection.

    One client may be used from several threads at once (the push sends batches in
    parallel): it keeps no per-request state on itself; the meter and the token manager
    lock what they share; the jitter generator is locked; and the ``requests.Session`` is
    only read per request, over urllib3's thread-safe pool (sized by ``max_connections``
    so parallel calls keep their connections) and a cookie jar that locks itself.
    """

    #: Records a COQL page asks for (Zoho's most, 2,000: 3 credits) and the records its
    #: LIMIT/OFFSET reach before reading on by id (Zoho: 100,000).
    coql_page_size = MAX_LIMIT
    coql_offset_records = MAX_OFFSET_RECORDS

    def __init__(
        self,
        tokens: TokenManager,
        *,
        api_version: str = "v8",
        timeout: float | tuple[float, float] = (5.0, 30.0),
        max_retries: int = 4,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        trigger: Sequence[str] = (),
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
        meter: UsageMeter | None = None,
        budget: CreditBudget | None = None,
        max_connections: int = 10,
        call_slots: CallSlots | None = None,
    ) -> None:
        self.tokens = tokens
        #: The org's limit of simultaneous calls, shared with every other client of the org
        #: (``slots.RedisCallSlots``); None: only the caller's own parallelism limits them.
        self.call_slots = call_slots
        #: The host's own daily ceiling; every call is priced against it before it is sent.
        self.budget = budget
        self.api_version = api_version
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        #: Zoho runs every workflow, approval and blueprint when ``trigger`` is omitted, so
        #: the default is an explicit empty list (reference §2.6).
        self.trigger = tuple(trigger)
        self._sleep = sleep
        self._session = session or _pooled_session(max_connections)
        self._meter = meter if meter is not None else UsageMeter()
        self._random = random.Random()
        self._random_lock = threading.Lock()

    @property
    def meter(self) -> UsageMeter:
        return self._meter

    # -- reading records ------------------------------------------------------------------

    def iter_records(
        self,
        module: str,
        fields: Sequence[str],
        *,
        modified_since: datetime | None = None,
        sort_by: str = "Modified_Time",
        sort_order: str = "asc",
        converted: str | None = None,
        per_page: int = MAX_PER_PAGE,
    ) -> Iterator[dict[str, Any]]:
        """Every record of ``module`` (modified since ``modified_since``), oldest change first."""
        pages = self.iter_pages(
            module,
            fields,
            modified_since=modified_since,
            sort_by=sort_by,
            sort_order=sort_order,
            converted=converted,
            per_page=per_page,
        )
        return (record for page in pages for record in page)

    def iter_pages(
        self,
        module: str,
        fields: Sequence[str],
        *,
        modified_since: datetime | None = None,
        sort_by: str = "Modified_Time",
        sort_order: str = "asc",
        converted: str | None = None,
        per_page: int = MAX_PER_PAGE,
    ) -> Iterator[list[dict[str, Any]]]:
        """The listing one page (≤200 records, all asked-for fields) at a time, so the
        engine can checkpoint and report progress per page.

        Arguments are checked here, before the first page is fetched, so a naive
        ``modified_since`` fails at the call rather than somewhere inside a loop.
        """
        if not 1 <= per_page <= MAX_PER_PAGE:
            raise ValueError(f"per_page must be between 1 and {MAX_PER_PAGE}")
        field_batches = _field_batches(fields)
        headers = {}
        if modified_since is not None:
            headers["If-Modified-Since"] = format_datetime(modified_since)
        params: dict[str, Any] = {
            "fields": ",".join(field_batches[0]),
            "sort_by": sort_by,
            "sort_order": sort_order,
            "per_page": per_page,
        }
        if converted is not None:
            params["converted"] = converted
        return self._pages(module, params, headers, field_batches[1:], converted)

    def _pages(
        self,
        module: str,
        params: dict[str, Any],
        headers: dict[str, str],
        extra_field_batches: list[list[str]],
        converted: str | None,
    ) -> Iterator[list[dict[str, Any]]]:
        """Page with ``page`` until Zoho hands out ``next_page_token``, then only with the
        token: ``page`` stops working at record 2,000 and sending both is an error
        (reference §2.1). Zoho binds the token to the other parameters, so they stay fixed."""
        page_number = 1
        page_token: str | None = None
        while True:
            paging = {"page_token": page_token} if page_token else {"page": page_number}
            reply = self._request("GET", f"/{module}", params={**params, **paging}, headers=headers)
            if reply.body is None:
                return
            records = _records_of(reply, f"GET /{module}")
            if records and extra_field_batches:
                self._merge_extra_fields(module, records, extra_field_batches, converted)
            if records:
                yield records
            info = reply.body.get("info") if isinstance(reply.body.get("info"), dict) else {}
            if not info.get("more_records") or not records:
                return
            page_token = info.get("next_page_token") or None
            page_number += 1

    def _merge_extra_fields(
        self,
        module: str,
        records: list[dict[str, Any]],
        field_batches: list[list[str]],
        converted: str | None,
    ) -> None:
        """Fill in fields beyond the first 50 by fetching the same ids again, 50 fields and
        100 ids at a time; a record gone in between simply keeps what it has."""
        by_id = {str(record.get("id")): record for record in records}
        for batch in field_batches:
            for extra in self._get_by_ids(module, list(by_id), batch, converted):
                target = by_id.get(str(extra.get("id")))
                if target is not None:
                    target.update(extra)

    def get_records(
        self,
        module: str,
        ids: Sequence[str],
        fields: Sequence[str],
        *,
        converted: str | None = None,
    ) -> list[dict[str, Any]]:
        """The given records with the given fields (any number of either); missing ids are
        simply absent from the result. ``converted`` as for listings (Leads: converted
        leads are left out unless it is "true" or "both")."""
        field_batches = _field_batches(fields)
        records = self._get_by_ids(module, [str(i) for i in ids], field_batches[0], converted)
        if records and len(field_batches) > 1:
            self._merge_extra_fields(module, records, field_batches[1:], converted)
        return records

    def _get_by_ids(
        self, module: str, ids: list[str], fields: list[str], converted: str | None
    ) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for start in range(0, len(ids), MAX_IDS_PER_CALL):
            params: dict[str, Any] = {
                "ids": ",".join(ids[start : start + MAX_IDS_PER_CALL]),
                "fields": ",".join(fields),
            }
            if converted is not None:
                params["converted"] = converted
            reply = self._request("GET", f"/{module}", params=params)
            if reply.body is not None:
                found.extend(_records_of(reply, f"GET /{module}"))
        return found

    def search_in(
        self,
        module: str,
        values_by_field: Mapping[str, Sequence[str]],
        fields: Sequence[str],
        converted: str | None = None,
    ) -> list[dict[str, Any]]:
        """Records whose field holds one of the given values: ``GET /{module}/search`` with
        ``((F:in:a,b)or(G:in:c))``, 100 values an ``in`` and 10 conditions a call
        (reference §2.9), so a few hundred values cost one call a page. Search reads an
        index that can lag a write by a moment; callers must not rely on it for records
        written just now. ``converted`` as for listings: search too leaves converted leads
        out unless asked (the SDKs' ``SearchRecordsParam`` carries ``converted``).
        """
        conditions = [
            f"({name}:in:{','.join(_criteria_value(v) for v in values[start : start + 100])})"
            for name, values in values_by_field.items()
            for start in range(0, len(values), 100)
            if values
        ]
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(conditions), 10):
            chunk = conditions[start : start + 10]
            criteria = chunk[0] if len(chunk) == 1 else "(" + "or".join(chunk) + ")"
            page = 1
            while True:
                params = {"criteria": criteria, "fields": ",".join(fields), "page": page}
                params["per_page"] = MAX_PER_PAGE
                if converted is not None:
                    params["converted"] = converted
                reply = self._request("GET", f"/{module}/search", params=params)
                if reply.body is None:
                    break
                for record in _records_of(reply, f"GET /{module}/search"):
                    found[str(record.get("id"))] = record
                info = reply.body.get("info") if isinstance(reply.body.get("info"), dict) else {}
                if not info.get("more_records"):
                    break
                page += 1
        return list(found.values())

    def get_record(self, module: str, record_id: str) -> dict[str, Any] | None:
        """One record with every field (subforms and multi-lookups come only this way), or
        None if Zoho has no such record."""
        try:
            reply = self._request("GET", f"/{module}/{record_id}")
        except ZohoRequestError as exc:
            if exc.code == "INVALID_DATA":  # "the id given seems to be invalid"
                return None
            raise
        if reply.body is None:
            return None
        records = _records_of(reply, f"GET /{module}/{{id}}")
        return records[0] if records else None

    # -- writing records ------------------------------------------------------------------

    def insert(
        self,
        module: str,
        records: Sequence[Mapping[str, Any]],
        *,
        trigger: Sequence[str] | None = None,
    ) -> list[RecordResult]:
        """Create records. Not retried once sent (a lost answer may hide applied creates);
        prefer :meth:`upsert` where a duplicate-check field exists."""
        return self._write("POST", f"/{module}", records, trigger=trigger, idempotent=False)

    def update(
        self,
        module: str,
        records: Sequence[Mapping[str, Any]],
        *,
        trigger: Sequence[str] | None = None,
        if_unmodified_since: datetime | None = None,
    ) -> list[RecordResult]:
        """Update records by their ``id``.

        ``if_unmodified_since`` makes the write conditional (reference §2.3): a record
        changed after that moment is refused with ``ALREADY_MODIFIED`` instead of being
        overwritten, so an edit that lands while the write is on its way is not lost.
        """
        return self._write(
            "PUT",
            f"/{module}",
            records,
            trigger=trigger,
            idempotent=True,
            if_unmodified_since=if_unmodified_since,
        )

    def upsert(
        self,
        module: str,
        records: Sequence[Mapping[str, Any]],
        *,
        duplicate_check_fields: Sequence[str] | None = None,
        trigger: Sequence[str] | None = None,
    ) -> list[RecordResult]:
        """Insert or update by duplicate-check fields: safe to repeat, so it is retried."""
        extra = (
            {"duplicate_check_fields": list(duplicate_check_fields)}
            if duplicate_check_fields
            else {}
        )
        return self._write(
            "POST", f"/{module}/upsert", records, trigger=trigger, idempotent=True, extra=extra
        )

    def _write(
        self,
        method: str,
        path: str,
        records: Sequence[Mapping[str, Any]],
        *,
        trigger: Sequence[str] | None,
        idempotent: bool,
        extra: Mapping[str, Any] | None = None,
        if_unmodified_since: datetime | None = None,
    ) -> list[RecordResult]:
        triggers = list(self.trigger if trigger is None else trigger)
        headers = (
            {"If-Unmodified-Since": format_datetime(if_unmodified_since)}
            if if_unmodified_since is not None
            else None
        )
        results: list[RecordResult] = []
        for offset in range(0, len(records), MAX_RECORDS_PER_WRITE):
            chunk = [dict(record) for record in records[offset : offset + MAX_RECORDS_PER_WRITE]]
            body = {"data": chunk, "trigger": triggers, **(extra or {})}
            try:
                reply = self._request(
                    method,
                    path,
                    json_body=body,
                    headers=headers,
                    records=len(chunk),
                    idempotent=idempotent,
                    per_record_errors=True,
                )
                results.extend(_results_of(reply, offset, len(chunk), f"{method} {path}"))
            except ZohoError as exc:
                exc.partial_results = list(results)
                raise
        return results

    def delete(
        self, module: str, ids: Sequence[str], *, wf_trigger: bool = False
    ) -> list[RecordResult]:
        """Delete records (into Zoho's recycle bin), without running workflows by default
        so a delete synced from the app does not bounce back as a workflow action."""
        id_list = [str(record_id) for record_id in ids]
        results: list[RecordResult] = []
        for offset in range(0, len(id_list), MAX_IDS_PER_CALL):
            chunk = id_list[offset : offset + MAX_IDS_PER_CALL]
            params = {"ids": ",".join(chunk), "wf_trigger": "true" if wf_trigger else "false"}
            try:
                reply = self._request("DELETE", f"/{module}", params=params, per_record_errors=True)
                results.extend(_results_of(reply, offset, len(chunk), f"DELETE /{module}"))
            except ZohoError as exc:
                exc.partial_results = list(results)
                raise
        return results

    def iter_deleted(
        self,
        module: str,
        *,
        modified_since: datetime | None = None,
        type: str = "all",  # Zoho's parameter name
    ) -> Iterator[DeletedRecord]:
        """Records deleted from ``module`` (recycle bin: 60 days; permanent: 120 days)."""
        headers = {}
        if modified_since is not None:
            headers["If-Modified-Since"] = format_datetime(modified_since)
        return self._deleted_pages(module, type, headers)

    def _deleted_pages(
        self, module: str, kind: str, headers: dict[str, str]
    ) -> Iterator[DeletedRecord]:
        page = 1
        while True:
            params = {"type": kind, "page": page, "per_page": MAX_PER_PAGE}
            reply = self._request("GET", f"/{module}/deleted", params=params, headers=headers)
            if reply.body is None:
                return
            elements = _records_of(reply, f"GET /{module}/deleted")
            try:
                entries = [DeletedRecord.from_element(element) for element in elements]
            except (KeyError, TypeError) as exc:
                raise ZohoMalformedResponse(
                    "A deleted-records entry had no id", endpoint=f"GET /{module}/deleted"
                ) from exc
            yield from entries
            info = reply.body.get("info") if isinstance(reply.body.get("info"), dict) else {}
            if not info.get("more_records") or not entries:
                return
            page += 1

    def count_records(self, module: str) -> int:
        """How many records ``module`` holds (converted Leads excluded, as in listings).

        One credit tells whether a first sync is large enough for Bulk Read, where reading
        on until the threshold would have cost a call per 200 records (reference §2.11).
        """
        endpoint = f"GET /{module}/actions/count"
        reply = self._request("GET", f"/{module}/actions/count")
        count = reply.body.get("count") if isinstance(reply.body, dict) else None
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ZohoMalformedResponse(
                f"Zoho's record count was {count!r}, not a whole number", endpoint=endpoint
            )
        return count

    # -- COQL -------------------------------------------------------------------------------

    def coql(self, query: str) -> tuple[list[dict[str, Any]], bool]:
        """One COQL query's records, and whether more match past its LIMIT (Zoho's
        ``info.more_records``). Build ``query`` with ``zoho.coql.select`` so no value can
        change its shape. A refused query raises the client's usual errors
        (``SYNTAX_ERROR``, ``INVALID_QUERY``, ``LIMIT_EXCEEDED``: ``ZohoRequestError``)."""
        reply = self._request(
            "POST", "/coql", json_body={"select_query": query}, records=limit_of(query)
        )
        if reply.body is None:
            return [], False  # 204: nothing matched
        records = _records_of(reply, "POST /coql")
        info = reply.body.get("info") if isinstance(reply.body.get("info"), dict) else {}
        return records, bool(info.get("more_records"))

    def iter_coql_pages(
        self,
        module: str,
        fields: Sequence[str],
        *,
        modified_since: datetime | None = None,
        concurrency: int = 1,
        keep_converted: bool = False,
        criteria: Sequence[Criterion | AnyOf | OneOf] = (),
        page_size: int | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """Like :meth:`iter_pages`, by COQL: 2,000 records a call (a since-last read's first
        call 200), ``concurrency`` offsets read at once, each batch after the last id read
        (``coql.OffsetReader``); pages in id order, but for a last page of records that
        deletions during the walk moved between two pages read at once, found through the
        deleted-records list (one more call, only after a walk that read pages at once).
        ``keep_converted`` is REST's ``converted=both``: converted leads stay in the pages.
        ``criteria`` are added to every query's WHERE; ``page_size`` (a divisor of the
        window) prices a read expected to find few records at 200 a call, one credit."""

        def deleted_since(moment: datetime) -> list[str]:
            return [entry.id for entry in self.iter_deleted(module, modified_since=moment)]

        reader = OffsetReader(
            self.coql,
            module,
            fields,
            modified_since=modified_since,
            concurrency=concurrency,
            keep_converted=keep_converted,
            criteria=criteria,
            page_size=page_size or self.coql_page_size,
            window=self.coql_offset_records,
            deleted_since=deleted_since,
        )
        return reader.pages()

    # -- metadata ---------------------------------------------------------------------------

    def fields(self, module: str) -> list[dict[str, Any]]:
        """Field metadata of ``module`` across all layouts (reference §3.1)."""
        reply = self._request("GET", "/settings/fields", params={"module": module})
        return _list_under(reply, "fields", "GET /settings/fields")

    def org(self) -> dict[str, Any]:
        """The organisation, including ``time_zone`` (IANA) and ``zgid``."""
        reply = self._request("GET", "/org")
        return _first_under(reply, "org", "GET /org")

    def current_user(self) -> dict[str, Any]:
        """The connected user: whose time zone Zoho writes datetimes in, and whose edits
        are the sync's own."""
        reply = self._request("GET", "/users", params={"type": "CurrentUser"})
        return _first_under(reply, "users", "GET /users")

    # -- recycle bin ------------------------------------------------------------------------

    def restore_from_recycle_bin(self, record_id: str) -> RecordResult:
        """Bring one deleted record back from Zoho's recycle bin, under its own id, with its
        notes and attachments (v8; needs the scope ``ZohoCRM.settings.recycle_bin.UPDATE``;
        docs/zoho-api-notes.md, "Recycle bin"). Zoho's verdict comes back like a record
        write's: ``SUCCESS``, or ``SCHEDULED`` when Zoho restores it in the background, or an
        error (``INVALID_DATA`` for an id not in the bin). Not retried once sent: a lost
        answer to a restore that happened would be retried into ``INVALID_DATA``."""
        endpoint = "POST /settings/recycle_bin/{id}/actions/restore"
        reply = self._request(
            "POST",
            f"/settings/recycle_bin/{record_id}/actions/restore",
            idempotent=False,
            per_record_errors=True,
        )
        return RecordResult.from_element(0, _first_under(reply, "recycle_bin", endpoint))

    # -- notifications ----------------------------------------------------------------------

    def watch(self, channels: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Subscribe (or re-subscribe) notification channels; returns Zoho's per-channel
        verdicts, which the caller must check like record results."""
        body = {"watch": [dict(channel) for channel in channels]}
        reply = self._request("POST", "/actions/watch", json_body=body, per_record_errors=True)
        return _list_under(reply, "watch", "POST /actions/watch")

    def watch_details(self) -> list[dict[str, Any]]:
        reply = self._request("GET", "/actions/watch")
        return _list_under(reply, "watch", "GET /actions/watch")

    def unwatch(self, channel_ids: Sequence[str | int]) -> list[dict[str, Any]]:
        params = {"channel_ids": ",".join(str(channel) for channel in channel_ids)}
        reply = self._request("DELETE", "/actions/watch", params=params, per_record_errors=True)
        return _list_under(reply, "watch", "DELETE /actions/watch")

    # -- the one place that does HTTP -------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        records: int = 0,
        idempotent: bool = True,
        per_record_errors: bool = False,
    ) -> Reply:
        """A CRM API call under ``/crm/{version}``, through :meth:`exchange`."""
        full_path = f"/crm/{self.api_version}{path}"
        endpoint = endpoint_key(method, full_path)

        def send(tokens: TokenSet) -> requests.Response:
            return self._session.request(
                method,
                tokens.api_domain + full_path,
                params=params,
                json=json_body,
                headers=self.auth_headers(tokens, headers),
                timeout=self.timeout,
                allow_redirects=False,
            )

        return self.exchange(
            method,
            full_path,
            send,
            read=lambda response: read_reply(response, endpoint, per_record_errors),
            records=records,
            idempotent=idempotent,
        )

    def auth_headers(
        self, tokens: TokenSet, extra: Mapping[str, str] | None = None, *, accept: str = ""
    ) -> dict[str, str]:
        return {
            "Authorization": f"Zoho-oauthtoken {tokens.access_token}",
            "Accept": accept or "application/json",
            **(extra or {}),
        }

    def exchange(
        self,
        method: str,
        path: str,
        send: Callable[[TokenSet], requests.Response],
        *,
        read: Callable[[requests.Response], Reply | ZohoError],
        records: int = 0,
        idempotent: bool = True,
        rate_limit_wait: float = 0.0,
    ) -> Reply:
        """One logical request, retrying what is safe to retry: the one place where the
        token, the credit budget, the meter and the retry rules apply, for REST calls and
        the bulk APIs' uploads and downloads alike.

        ``send`` makes the HTTP exchange with the current tokens; ``read`` turns its
        response into a reply or the error it stands for. A rejected access token
        (:class:`ZohoTokenRejected`, ``AUTHENTICATION_FAILURE`` included) is replaced once
        and the call repeated once, metered like any call; a scope mismatch is not, since a
        refresh keeps the grant's scopes. 429s are always retried (Zoho did not process the
        call), waiting at least ``rate_limit_wait``; outages and garbled replies are retried
        unless the request is a create that Zoho may already have applied
        (``idempotent=False``).
        """
        endpoint = endpoint_key(method, path)
        attempt = 0
        replaced_token = False
        while True:
            tokens = self.tokens.current()
            failure: ZohoError
            try:
                response = self._metered(method, path, tokens, send, records)
            except _NO_ANSWER as exc:
                failure = ZohoUnavailable(
                    f"Zoho CRM did not answer ({type(exc).__name__})", endpoint=endpoint
                )
                if not idempotent and _may_have_reached_zoho(exc):
                    raise _maybe_applied(failure) from exc
            else:
                outcome = read(response)
                if isinstance(outcome, Reply):
                    return outcome
                failure = outcome
                if isinstance(failure, ZohoTokenRejected) and not replaced_token:
                    # Repeating any call here, a create included, is safe: a 401 means the
                    # request was not applied (RFC 9110 §15.5.2, "the request has not been
                    # applied because it lacks valid authentication credentials",
                    # https://www.rfc-editor.org/rfc/rfc9110#name-401-unauthorized), and
                    # Zoho answers a bad token with one request-level error object, not
                    # per-record verdicts (reference §4.4, §4.5). The refresh goes through
                    # the token manager, so concurrent callers refresh once between them;
                    # if it fails (a revoked refresh token gives ``invalid_code``) that
                    # error is raised as it is, and a second 401 is raised below: never a
                    # loop.
                    self.tokens.invalidate(tokens.access_token)
                    replaced_token = True
                    continue
                if not isinstance(failure, ZohoRetryLater):
                    raise failure
                if not idempotent and not isinstance(failure, ZohoRateLimited):
                    # Zoho got the create and failed somewhere; it may have been applied.
                    raise _maybe_applied(failure)
            if attempt >= self.max_retries:
                raise failure
            delay = self._backoff(attempt)
            if isinstance(failure, ZohoRateLimited):
                delay = max(delay, rate_limit_wait)
            logger.debug(
                "Zoho %s: %s; retry %d of %d in %.2fs",
                endpoint,
                type(failure).__name__,
                attempt + 1,
                self.max_retries,
                delay,
            )
            self._sleep(delay)
            attempt += 1

    def _metered(
        self,
        method: str,
        path: str,
        tokens: TokenSet,
        send: Callable[[TokenSet], requests.Response],
        records: int,
    ) -> requests.Response:
        """One HTTP exchange in one of the org's call slots, priced against the budget
        before it is sent, then metered and logged whether or not an answer arrives.

        The slot comes first, so a call that waits for one has not yet spent credits, and
        the clock starts after it, so the meter's durations are Zoho's time, not the wait.
        """
        if not tokens.api_domain:
            raise ZohoReconnectRequired("The stored Zoho connection has no API domain")
        with self._call_slot():
            return self._send_metered(method, path, tokens, send, records)

    def _call_slot(self) -> AbstractContextManager[None]:
        return self.call_slots.hold() if self.call_slots is not None else nullcontext()

    def _send_metered(
        self,
        method: str,
        path: str,
        tokens: TokenSet,
        send: Callable[[TokenSet], requests.Response],
        records: int,
    ) -> requests.Response:
        if self.budget is not None:
            self.budget.reserve(method, path, records)
        started = time.monotonic()
        status: int | None = None
        credits_remaining: int | None = None
        try:
            response = send(tokens)
            status = response.status_code
            credits_remaining = parse_credits_remaining(response.headers)
            if credits_remaining is not None and self.budget is not None:
                self.budget.zoho_reports(credits_remaining)
            return response
        finally:
            duration = time.monotonic() - started
            logger.debug(
                "Zoho %s -> %s in %.3fs",
                endpoint_key(method, path),
                status if status is not None else "no answer",
                duration,
            )
            self._meter.record(
                method,
                path,
                status=status,
                records=records,
                duration_s=duration,
                credits_remaining=credits_remaining,
            )

    def _backoff(self, attempt: int) -> float:
        """Full jitter: Zoho sends no Retry-After, and workers that back off in lockstep
        would hit the concurrency limit together again."""
        ceiling = min(self.backoff_cap, self.backoff_base * (2**attempt))
        with self._random_lock:
            return self._random.uniform(0, ceiling)


# -- helpers --------------------------------------------------------------------------------


def _pooled_session(max_connections: int) -> requests.Session:
    """A session whose pool keeps a connection per parallel call (requests keeps 10 per
    host by default and drops, with a warning, connections beyond that)."""
    session = requests.Session()
    size = max(10, max_connections)
    adapter = requests.adapters.HTTPAdapter(pool_connections=10, pool_maxsize=size)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _field_batches(fields: Sequence[str]) -> list[list[str]]:
    """Split the wanted fields into Zoho's 50-per-call batches: the first carries ``id`` and
    ``Modified_Time``, each later one carries ``id`` so its rows can be merged."""
    if isinstance(fields, str) or not fields:
        raise ValueError("fields must be a non-empty list of field API names")
    ordered = list(dict.fromkeys([*ALWAYS_FIELDS, *fields]))
    first, rest = ordered[:MAX_FIELDS_PER_CALL], ordered[MAX_FIELDS_PER_CALL:]
    step = MAX_FIELDS_PER_CALL - 1
    return [first] + [["id", *rest[start : start + step]] for start in range(0, len(rest), step)]


def _may_have_reached_zoho(exc: requests.RequestException) -> bool:
    """False only when the connection was never established, so the request cannot have
    been processed; anything else (read timeout, reset mid-reply) might have been."""
    if isinstance(exc, requests.ConnectTimeout):
        return False
    cause: BaseException | None = exc
    seen = 0
    while cause is not None and seen < 10:
        if isinstance(cause, NewConnectionError):
            return False
        reason = getattr(cause, "reason", None)
        if isinstance(reason, BaseException):
            cause = reason
        elif cause.args and isinstance(cause.args[0], BaseException):
            cause = cause.args[0]
        else:
            cause = cause.__cause__ or cause.__context__
        seen += 1
    return True


def _parse_json(response: requests.Response, endpoint: str) -> tuple[Any, ZohoError | None]:
    """The body as JSON, or the error to raise if a JSON body was expected and is not there.

    Only bodies not labelled JSON (error pages) get an excerpt: a truncated JSON body is
    record data, and excerpts end up in logs.
    """
    try:
        return response.json(), None
    except ValueError:
        content_type = response.headers.get("Content-Type", "")
        excerpt = "" if "json" in content_type.lower() else body_excerpt(response.text)
        return None, ZohoMalformedResponse(
            f"Zoho answered HTTP {response.status_code} with a body that is not valid JSON "
            f"({content_type or 'no content type'}, {len(response.content)} bytes)",
            http_status=response.status_code,
            endpoint=endpoint,
            excerpt=excerpt,
        )


def read_reply(
    response: requests.Response, endpoint: str, per_record_errors: bool
) -> Reply | ZohoError:
    """The usable reply, or the error it amounts to (raised or retried by the caller).

    ``per_record_errors``: a 4xx whose body carries a ``data[]``/``watch[]`` array is a batch
    with refused elements (Zoho may answer a mixed batch with 400), so it is a reply for the
    caller to walk, not an error.
    """
    status = response.status_code
    if status in (204, 304):
        return Reply(status, None, response.headers)
    body, parse_failure = _parse_json(response, endpoint)
    if status == 429 or status >= 500:
        return error_from_response(status, body, endpoint)
    if parse_failure is not None:
        return parse_failure
    if per_record_errors and _has_element_array(body):
        return Reply(status, body, response.headers)
    if status < 300 and not _is_error_body(body):
        return Reply(status, body, response.headers)
    return error_from_response(status, body, endpoint)


def _is_error_body(body: Any) -> bool:
    """Zoho's request-level error shape, whatever the HTTP status: a 200 carrying
    ``{"status": "error", "code": ...}`` (seen from Zoho and from proxies during incidents) is
    an error to retry or report, not an empty answer."""
    return (
        isinstance(body, dict)
        and body.get("status") == "error"
        and isinstance(body.get("code"), str)
        and not _has_element_array(body)
    )


def _maybe_applied(failure: ZohoError) -> ZohoUnavailable:
    return ZohoUnavailable(
        failure.message,
        code=failure.code,
        http_status=failure.http_status,
        endpoint=failure.endpoint,
        maybe_applied=True,
    )


def _has_element_array(body: Any) -> bool:
    return isinstance(body, dict) and any(
        isinstance(body.get(key), list) and body.get(key)
        for key in ("data", "watch", "recycle_bin")
    )


def _records_of(reply: Reply, endpoint: str) -> list[dict[str, Any]]:
    body = reply.body
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise ZohoMalformedResponse(
            "Zoho's reply had no data[] list of records",
            http_status=reply.status,
            endpoint=endpoint,
        )
    return data


def _results_of(reply: Reply, offset: int, expected: int, endpoint: str) -> list[RecordResult]:
    """Per-record verdicts, matched to the input by position (Zoho keeps input order)."""
    body = reply.body
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise ZohoMalformedResponse(
            "Zoho's reply to a write had no data[] list",
            http_status=reply.status,
            endpoint=endpoint,
        )
    if len(data) != expected:
        raise ZohoMalformedResponse(
            f"Zoho returned {len(data)} results for {expected} records, so they cannot be "
            "matched to the records sent",
            http_status=reply.status,
            endpoint=endpoint,
        )
    return [RecordResult.from_element(offset + i, element) for i, element in enumerate(data)]


def _list_under(reply: Reply, key: str, endpoint: str) -> list[dict[str, Any]]:
    if reply.body is None:
        return []
    items = reply.body.get(key) if isinstance(reply.body, dict) else None
    if not isinstance(items, list):
        raise ZohoMalformedResponse(
            f"Zoho's reply had no {key}[] list", http_status=reply.status, endpoint=endpoint
        )
    return items


def _first_under(reply: Reply, key: str, endpoint: str) -> dict[str, Any]:
    items = _list_under(reply, key, endpoint)
    if not items or not isinstance(items[0], dict):
        raise ZohoMalformedResponse(
            f"Zoho's reply had an empty {key}[] list", http_status=reply.status, endpoint=endpoint
        )
    return items[0]


def _criteria_value(value: str) -> str:
    """A value inside a search criteria: backslash escapes ``\\``, ``,``, ``(`` and ``)``."""
    for char in ("\\", ",", "(", ")"):
        value = value.replace(char, "\\" + char)
    return value
