"""Zoho's Bulk Read and Bulk Write APIs, for first syncs too large for REST (reference §6).

A REST read moves 200 records per call and a REST write 100; a bulk read job moves 200,000
and a bulk write job 25,000, as a zipped CSV. The price is that a bulk call is a *job*: it
is created, then polled until Zoho has run it, and its result is a file to download. This
module turns that into two calls the engine can use like the REST ones:

* :meth:`BulkClient.iter_rows` exports a module and yields its CSV rows one at a time,
  following ``next_page_token`` past 200,000 rows, so memory stays flat however large the
  export (the zip goes to a temporary file and the CSV is read straight out of it);
* :meth:`BulkClient.write` streams the caller's records into a zipped CSV on disk, uploads
  it, runs the job, and maps each row of Zoho's result file back to the caller's record,
  with Zoho's per-row error codes (``MANDATORY_NOT_FOUND-Last_Name``, ...).

Every HTTP exchange goes through the :class:`~.client.ZohoClient`'s session, token manager,
meter and backoff, and its errors are the client's exception tree, so a bulk sync is
metered, refreshed and retried exactly like a REST one. Creating a write job is never
repeated after an ambiguous failure: a second job would import the file twice.
"""

from __future__ import annotations

import csv
import io
import itertools
import logging
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import requests

from .auth import TokenSet
from .client import Reply, ZohoClient, read_reply
from .credits import endpoint_key
from .errors import (
    ZohoError,
    ZohoMalformedResponse,
    ZohoReconnectRequired,
    ZohoRetryLater,
)
from .timefmt import format_datetime

__all__ = [
    "BulkClient",
    "BulkReadPage",
    "BulkRowResult",
    "ZohoBulkJobFailed",
    "ZohoBulkTimeout",
    "upload_domain_for",
]

logger = logging.getLogger(__name__)

#: Zoho's bulk limits (reference §6.1, §6.2, §4.3).
READ_PAGE_SIZE = 200_000
WRITE_MAX_RECORDS = 25_000
WRITE_MAX_MAPPED_FIELDS = 200
UPLOAD_MAX_BYTES = 25 * 1024 * 1024
#: Ten result downloads per minute: after a 429 on a download, wait at least this long.
DOWNLOAD_RETRY_SECONDS = 60 / 10

_JOB_DONE = "COMPLETED"
_JOB_FAILED = frozenset({"FAILURE", "FAILED"})
_CHUNK = 1024 * 256


class ZohoBulkJobFailed(ZohoError):
    """Zoho ran the job and it ended in FAILURE/FAILED: nothing to download."""

    advice = (
        "Zoho could not run the bulk job; check the module and fields, then run the sync "
        "again (it falls back to the REST API below the bulk threshold)."
    )


class ZohoBulkTimeout(ZohoRetryLater):
    """The job did not finish within the wait the caller allowed; it may still finish."""

    advice = (
        "Zoho is still working on the bulk job; the sync will try again later. Raise the "
        "bulk timeout if large jobs regularly take longer."
    )


@dataclass(frozen=True)
class BulkReadPage:
    """What a completed read job says about its page of the export."""

    job_id: str
    page: int
    count: int
    more_records: bool
    next_page_token: str | None
    download_url: str


@dataclass(frozen=True)
class BulkRowResult:
    """Zoho's verdict on one input record of a bulk write, matched back by position.

    ``index`` is the record's position in the caller's iterable (across all the jobs the
    records were split into). ``errors`` holds ``(code, column)`` pairs read from Zoho's
    ``ERRORS`` column, e.g. ``[("MANDATORY_NOT_FOUND", "Last_Name")]``.
    """

    index: int
    status: str  # "added" | "updated" | "skipped" | "unprocessed"
    record_id: str | None
    errors: tuple[tuple[str, str | None], ...] = field(default_factory=tuple)
    job_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("added", "updated") and not self.errors

    @property
    def code(self) -> str | None:
        """The first error code (what a REST error's ``code`` would be)."""
        return self.errors[0][0] if self.errors else None

    @property
    def message(self) -> str | None:
        if not self.errors:
            return None
        return "; ".join(f"{code} ({col})" if col else code for code, col in self.errors)

    @property
    def action(self) -> str | None:
        return {"added": "insert", "updated": "update"}.get(self.status)


def upload_domain_for(api_domain: str) -> str:
    """Zoho takes bulk-write uploads on a file host of the data centre (reference §1.3).

    Any other API domain (a sandbox or test server) is assumed to take uploads itself.
    """
    host = urlsplit(api_domain).hostname or ""
    special = {
        "www.zohoapis.ca": "https://upload.zohocloud.ca",
        "www.zohoapis.sa": "https://files.zoho.sa",
    }
    if host in special:
        return special[host]
    for prefix in ("www.zohoapis.", "sandbox.zohoapis.", "developer.zohoapis."):
        if host.startswith(prefix):
            return f"https://content.zohoapis.{host[len(prefix) :]}"
    return api_domain.rstrip("/")


def criteria_modified_since(moment: datetime) -> dict[str, Any]:
    """Criteria for "changed at or after ``moment``" (ISO-8601, no milliseconds, §6.1)."""
    return {
        "field": {"api_name": "Modified_Time"},
        "comparator": "greater_equal",
        "value": format_datetime(moment),
    }


class BulkClient:
    """Bulk Read and Bulk Write for one Zoho connection, on top of a :class:`ZohoClient`.

    ``poll_interval`` is the first wait between status polls; it grows by half each poll up
    to ``max_poll_interval``, and a job not done within ``timeout`` seconds raises
    :class:`ZohoBulkTimeout`. ``work_dir`` is where the zip files are spooled.
    """

    def __init__(
        self,
        client: ZohoClient,
        *,
        poll_interval: float = 5.0,
        max_poll_interval: float = 60.0,
        timeout: float = 3600.0,
        work_dir: str | Path | None = None,
        upload_domain: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if poll_interval <= 0 or max_poll_interval < poll_interval or timeout <= 0:
            raise ValueError(
                "poll_interval must be positive, max_poll_interval at least poll_interval "
                "and timeout positive"
            )
        self.client = client
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.timeout = timeout
        self.work_dir = str(work_dir) if work_dir is not None else None
        self.upload_domain = upload_domain
        self._clock = clock
        self._zgid: str | None = None

    # -- Bulk Read ----------------------------------------------------------------------------

    def start_read(
        self,
        module: str,
        fields: Sequence[str] = (),
        *,
        criteria: Mapping[str, Any] | None = None,
        page: int | None = None,
        page_token: str | None = None,
    ) -> str:
        """Create an export job; returns its id. Empty ``fields`` exports every field."""
        if isinstance(fields, str):
            raise ValueError("fields must be a list of field API names, not one string")
        query: dict[str, Any] = {"module": {"api_name": module}}
        wanted = [name for name in dict.fromkeys(fields) if name != "id"]  # always exported
        if wanted:
            query["fields"] = wanted
        if criteria is not None:
            query["criteria"] = dict(criteria)
        if page_token is not None:
            query["page_token"] = page_token
        elif page is not None:
            query["page"] = page
        reply = self._call("POST", self._bulk_path("/read"), json_body={"query": query})
        data = _element_list(reply, "POST /bulk/read")
        job_id = (data[0].get("details") or {}).get("id")
        if not job_id:
            raise ZohoMalformedResponse(
                "Zoho's reply to a bulk read had no job id", endpoint="POST /bulk/read"
            )
        return str(job_id)

    def read_job(self, job_id: str) -> dict[str, Any]:
        reply = self._call("GET", self._bulk_path(f"/read/{job_id}"))
        return _element_list(reply, "GET /bulk/read/{id}")[0]

    def wait_for_read(self, job_id: str) -> BulkReadPage:
        """Poll until the export is done; its page details, or an error on failure."""
        job = self._wait(lambda: self.read_job(job_id), "state", "GET /bulk/read/{id}", job_id)
        result = job.get("result")
        if not isinstance(result, dict) or not result.get("download_url"):
            raise ZohoMalformedResponse(
                "A completed bulk read had no result download_url", endpoint="GET /bulk/read/{id}"
            )
        return BulkReadPage(
            job_id=job_id,
            page=int(result.get("page") or 1),
            count=int(result.get("count") or 0),
            more_records=bool(result.get("more_records")),
            next_page_token=result.get("next_page_token") or None,
            download_url=str(result["download_url"]),
        )

    def iter_result_rows(self, page: BulkReadPage) -> Iterator[dict[str, str]]:
        """The rows of one completed export, read from a spooled zip one row at a time."""
        with self._download(page.download_url, "GET /bulk/read/{id}/result") as spool:
            yield from _iter_zipped_csv(spool, "GET /bulk/read/{id}/result")

    def iter_rows(
        self,
        module: str,
        fields: Sequence[str] = (),
        *,
        modified_since: datetime | None = None,
        criteria: Mapping[str, Any] | None = None,
    ) -> Iterator[dict[str, str]]:
        """Every row of an export of ``module``, page after page (200,000 rows per job).

        Values are Zoho's CSV text: ISO-8601 date-times, ``true``/``false``, ids for
        lookups, empty strings for empty fields; every row has an ``id``.
        """
        if modified_since is not None and criteria is not None:
            raise ValueError("give modified_since or criteria, not both")
        if modified_since is not None:
            criteria = criteria_modified_since(modified_since)
        page_token: str | None = None
        page_number = 1
        while True:
            job_id = self.start_read(
                module,
                fields,
                criteria=criteria,
                page=None if page_token else page_number,
                page_token=page_token,
            )
            page = self.wait_for_read(job_id)
            yield from self.iter_result_rows(page)
            if not page.more_records or page.count == 0:
                return
            page_token = page.next_page_token
            page_number = page.page + 1

    # -- Bulk Write ---------------------------------------------------------------------------

    def write(
        self,
        module: str,
        operation: str,
        records: Iterable[Mapping[str, Any]],
        *,
        fields: Sequence[str],
        find_by: str | None = None,
        field_formats: Mapping[str, str] | None = None,
        ignore_empty: bool = False,
        on_job_created: Callable[[str, int], None] | None = None,
    ) -> Iterator[BulkRowResult]:
        """Insert, update or upsert ``records``, 25,000 per job; one result per record.

        ``fields`` are the CSV columns (API names, ``id`` allowed); ``find_by`` is mandatory
        for update and upsert and must be ``id`` or a unique field. Results come in input
        order, job by job; ``on_job_created(job_id, rows)`` lets a caller note a job as soon
        as it exists, since a job is never created twice. Arguments are checked here; the
        uploads and jobs happen as the results are iterated.
        """
        if operation not in ("insert", "update", "upsert"):
            raise ValueError("operation must be insert, update or upsert")
        if isinstance(fields, str) or not fields:
            raise ValueError("fields must be a non-empty list of field API names")
        columns = list(dict.fromkeys(fields))
        if len(columns) > WRITE_MAX_MAPPED_FIELDS:
            raise ValueError(f"Zoho maps at most {WRITE_MAX_MAPPED_FIELDS} fields per job")
        if operation != "insert" and find_by is None:
            raise ValueError("find_by is required for update and upsert (id or a unique field)")
        if find_by is not None and find_by not in columns:
            raise ValueError(f"find_by {find_by!r} must be one of the fields written")
        return self._write_jobs(
            module, operation, iter(records), columns, find_by, field_formats,
            ignore_empty, on_job_created,
        )  # fmt: skip

    def upload(self, zip_path: str | Path, org_id: str) -> str:
        """Upload a zipped CSV for a write job; returns Zoho's ``file_id``."""
        size = Path(zip_path).stat().st_size
        if size > UPLOAD_MAX_BYTES:
            raise ValueError(
                f"the zip is {size} bytes; Zoho takes at most 25 MB per upload, "
                "so write fewer records per job"
            )
        base = self.upload_domain or upload_domain_for(self._api_domain())
        headers = {"feature": "bulk-write", "X-CRM-ORG": str(org_id)}
        reply = self._call(
            "POST",
            f"/crm/{self.client.api_version}/upload",
            base=base,
            headers=headers,
            upload=Path(zip_path),
        )
        details = reply.body.get("details") if isinstance(reply.body, dict) else None
        file_id = details.get("file_id") if isinstance(details, dict) else None
        if not file_id:
            raise ZohoMalformedResponse(
                "Zoho's reply to an upload had no file_id", endpoint="POST /upload"
            )
        return str(file_id)

    def create_write_job(
        self,
        module: str,
        operation: str,
        file_id: str,
        columns: Sequence[str],
        *,
        find_by: str | None = None,
        field_formats: Mapping[str, str] | None = None,
        ignore_empty: bool = False,
    ) -> str:
        """Create the job (500 credits). Never retried after a possibly-applied failure."""
        mappings: list[dict[str, Any]] = []
        for index, name in enumerate(columns):
            mapping: dict[str, Any] = {"api_name": name, "index": index}
            if field_formats and name in field_formats:
                mapping["format"] = field_formats[name]
            mappings.append(mapping)
        resource: dict[str, Any] = {
            "type": "data",
            "module": {"api_name": module},
            "file_id": file_id,
            "field_mappings": mappings,
        }
        if find_by is not None:
            resource["find_by"] = find_by
        body = {
            "operation": operation,
            "ignore_empty": ignore_empty,
            "character_encoding": "UTF-8",
            "resource": [resource],
        }
        reply = self._call("POST", self._bulk_path("/write"), json_body=body, idempotent=False)
        details = reply.body.get("details") if isinstance(reply.body, dict) else None
        job_id = details.get("id") if isinstance(details, dict) else None
        if not job_id:
            raise ZohoMalformedResponse(
                "Zoho's reply to a bulk write had no job id", endpoint="POST /bulk/write"
            )
        return str(job_id)

    def write_job(self, job_id: str) -> dict[str, Any]:
        reply = self._call("GET", self._bulk_path(f"/write/{job_id}"))
        if not isinstance(reply.body, dict):
            raise ZohoMalformedResponse(
                "Zoho's bulk write status was empty", endpoint="GET /bulk/write/{id}"
            )
        return reply.body

    def wait_for_write(self, job_id: str) -> dict[str, Any]:
        return self._wait(lambda: self.write_job(job_id), "status", "GET /bulk/write/{id}", job_id)

    def iter_write_results(
        self, job: Mapping[str, Any], offset: int, expected: int
    ) -> Iterator[BulkRowResult]:
        """Zoho's result file, one row per input row in input order (reference §6.2)."""
        result = job.get("result")
        url = result.get("download_url") if isinstance(result, dict) else None
        endpoint = "GET /bulk/write/{id}/result"
        if not url:
            raise ZohoMalformedResponse(
                "A completed bulk write had no download_url", endpoint=endpoint
            )
        seen = 0
        with self._download(str(url), endpoint) as spool:
            for position, row in enumerate(_iter_zipped_csv(spool, endpoint)):
                if position >= expected:
                    break
                seen += 1
                yield _row_result(offset + position, row, str(job.get("id") or ""))
        if seen != expected:
            raise ZohoMalformedResponse(
                f"Zoho's bulk write result had {seen} rows for {expected} records, so they "
                "cannot be matched to the records sent",
                endpoint=endpoint,
            )

    # -- internals ----------------------------------------------------------------------------

    def _write_jobs(
        self,
        module: str,
        operation: str,
        records: Iterator[Mapping[str, Any]],
        columns: list[str],
        find_by: str | None,
        field_formats: Mapping[str, str] | None,
        ignore_empty: bool,
        on_job_created: Callable[[str, int], None] | None,
    ) -> Iterator[BulkRowResult]:
        """One job per 25,000 records; each job's CSV is written straight from the
        caller's records into a zip on disk, so no job's rows are held in memory."""
        offset = 0
        while True:
            with tempfile.TemporaryDirectory(dir=self.work_dir, prefix="zoho-bulk-") as folder:
                zip_path = Path(folder) / f"{module}.zip"
                rows = itertools.islice(records, WRITE_MAX_RECORDS)
                count = write_zipped_csv(zip_path, f"{module}.csv", columns, rows)
                if count == 0:
                    return
                file_id = self.upload(zip_path, self._org_id())
            job_id = self.create_write_job(
                module,
                operation,
                file_id,
                columns,
                find_by=find_by,
                field_formats=field_formats,
                ignore_empty=ignore_empty,
            )
            if on_job_created is not None:
                on_job_created(job_id, count)
            job = self.wait_for_write(job_id)
            yield from self.iter_write_results(job, offset, count)
            offset += count
            if count < WRITE_MAX_RECORDS:
                return

    def _org_id(self) -> str:
        """The org's ``zgid``, which the upload needs in ``X-CRM-ORG`` (reference §6.2)."""
        if self._zgid is None:
            zgid = self.client.org().get("zgid")
            if not zgid:
                raise ZohoMalformedResponse("Zoho's org had no zgid", endpoint="GET /org")
            self._zgid = str(zgid)
        return self._zgid

    def _api_domain(self) -> str:
        tokens = self.client.tokens.current()
        if not tokens.api_domain:
            raise ZohoReconnectRequired("The stored Zoho connection has no API domain")
        return tokens.api_domain

    def _bulk_path(self, path: str) -> str:
        return f"/crm/bulk/{self.client.api_version}{path}"

    def _wait(
        self, fetch: Callable[[], dict[str, Any]], key: str, endpoint: str, job_id: str
    ) -> dict[str, Any]:
        # A job Zoho has just accepted is never done yet, so the first poll waits too: each
        # status call costs a credit.
        deadline = self._clock() + self.timeout
        interval = self.poll_interval
        state = "ADDED"
        while True:
            if self._clock() + interval > deadline:
                raise ZohoBulkTimeout(
                    f"Zoho's bulk job {job_id} was still {state or 'unknown'} after "
                    f"{self.timeout:.0f} s",
                    endpoint=endpoint,
                )
            self.client._sleep(interval)
            job = fetch()
            state = str(job.get(key) or "")
            if state == _JOB_DONE:
                return job
            if state in _JOB_FAILED:
                raise ZohoBulkJobFailed(
                    f"Zoho's bulk job {job_id} ended in {state}",
                    code=state,
                    endpoint=endpoint,
                )
            interval = min(self.max_poll_interval, interval * 1.5)

    @contextmanager
    def _download(self, url: str, endpoint: str) -> Iterator[IO[bytes]]:
        """Fetch a result zip into a temporary file, deleted when the ``with`` ends."""
        if url.startswith("/"):
            base, path = self._api_domain(), url
        else:
            parts = urlsplit(url)
            base, path = f"{parts.scheme}://{parts.netloc}", parts.path
        with tempfile.TemporaryFile(dir=self.work_dir) as spool:
            self._call("GET", path, base=base, into=spool, endpoint_name=endpoint)
            spool.seek(0)
            yield spool

    def _call(
        self,
        method: str,
        path: str,
        *,
        base: str | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        upload: Path | None = None,
        into: IO[bytes] | None = None,
        idempotent: bool = True,
        endpoint_name: str | None = None,
    ) -> Reply:
        """One logical request through the client's :meth:`ZohoClient.exchange` (token,
        budget, meter, retries); ``base`` replaces the API domain (the upload host).

        ``upload`` sends a file as the multipart field ``file``; ``into`` receives a zip
        body (any JSON answer is read as an error reply, as Zoho sends errors as JSON).
        """
        endpoint = endpoint_name or endpoint_key(method, path)
        client = self.client

        def send(tokens: TokenSet) -> requests.Response:
            url = (base or tokens.api_domain).rstrip("/") + path
            accept = "application/zip, application/json" if into is not None else ""
            send_headers = client.auth_headers(tokens, headers, accept=accept)
            if upload is not None:
                with upload.open("rb") as handle:
                    return client._session.request(
                        method,
                        url,
                        files={"file": (upload.name, handle, "application/zip")},
                        headers=send_headers,
                        timeout=client.timeout,
                        allow_redirects=False,
                    )
            response = client._session.request(
                method,
                url,
                json=json_body,
                headers=send_headers,
                timeout=client.timeout,
                allow_redirects=False,
                stream=into is not None,
            )
            if into is not None and response.status_code == 200 and not _is_json(response):
                into.seek(0)
                into.truncate()
                for chunk in response.iter_content(_CHUNK):
                    into.write(chunk)
            return response

        def read(response: requests.Response) -> Reply | ZohoError:
            if into is not None and response.status_code == 200 and not _is_json(response):
                return Reply(200, None, response.headers)
            outcome = read_reply(response, endpoint, False)
            if isinstance(outcome, Reply) and into is not None:
                raise ZohoMalformedResponse(
                    "Zoho answered a result download with JSON instead of a zip",
                    http_status=outcome.status,
                    endpoint=endpoint,
                )
            return outcome

        return client.exchange(
            method,
            path,
            send,
            read=read,
            idempotent=idempotent,
            rate_limit_wait=DOWNLOAD_RETRY_SECONDS if into is not None else 0.0,
        )


def _is_json(response: requests.Response) -> bool:
    return "json" in response.headers.get("Content-Type", "").lower()


def _element_list(reply: Reply, endpoint: str) -> list[dict[str, Any]]:
    data = reply.body.get("data") if isinstance(reply.body, dict) else None
    if not isinstance(data, list) or not data or not isinstance(data[0], dict):
        raise ZohoMalformedResponse(
            "Zoho's bulk reply had no data[] element", http_status=reply.status, endpoint=endpoint
        )
    return data


def _iter_zipped_csv(spool: IO[bytes], endpoint: str) -> Iterator[dict[str, str]]:
    try:
        archive = zipfile.ZipFile(spool)
    except zipfile.BadZipFile:
        raise ZohoMalformedResponse(
            "Zoho's bulk result was not a zip file", endpoint=endpoint
        ) from None
    with archive:
        members = [m for m in archive.infolist() if m.filename.lower().endswith(".csv")]
        if len(members) != 1:
            raise ZohoMalformedResponse(
                f"Zoho's bulk result zip held {len(members)} CSV files instead of one",
                endpoint=endpoint,
            )
        with archive.open(members[0]) as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
            yield from csv.DictReader(text)


def _row_result(index: int, row: Mapping[str, str], job_id: str) -> BulkRowResult:
    status = (row.get("STATUS") or "").strip().lower() or "unprocessed"
    errors: list[tuple[str, str | None]] = []
    for part in (row.get("ERRORS") or "").split(":"):
        part = part.strip()
        if not part:
            continue
        code, _, column = part.partition("-")
        errors.append((code, column or None))
    record_id = (row.get("RECORD_ID") or "").strip() or None
    return BulkRowResult(
        index=index, status=status, record_id=record_id, errors=tuple(errors), job_id=job_id
    )


def csv_cell(value: Any) -> str:
    """A Python value as Bulk Write reads it: lists as ``a;b``, lookups by id, ISO dates."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return ";".join(csv_cell(item) for item in value)
    if isinstance(value, Mapping):
        return str(value.get("id") or value.get("name") or "")
    return str(value)


def write_zipped_csv(
    path: Path, name: str, columns: Sequence[str], records: Iterable[Mapping[str, Any]]
) -> int:
    """Stream ``records`` as CSV straight into a zip file on disk; returns the row count."""
    count = 0
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open(name, "w") as raw,
    ):
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        writer = csv.writer(text)
        writer.writerow(columns)
        for record in records:
            writer.writerow([csv_cell(record.get(column)) for column in columns])
            count += 1
        text.flush()
        text.detach()
    return count
