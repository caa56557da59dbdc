"""Delivering Zoho's "watch" notifications to subscribers, off the request thread.

Zoho posts the §5 payload to each channel's ``notify_url`` after a record changes. The
sandbox does the same from one background thread, so an API call never waits on (or fails
because of) a slow receiver, and it keeps a log of every delivery so tests can assert on
what was sent and what the receiver answered.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests

from .records import render_record
from .state import SandboxState

DELIVERY_TIMEOUT = 3.0
_OPERATION_EVENTS = {"insert": "create", "update": "edit", "delete": "delete"}


class Notifier:
    """A queue of pending deliveries and the thread that sends them."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._log: list[dict[str, Any]] = []
        self._log_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    # ---------------------------------------------------------------- producing
    def publish(
        self, module: str, operation: str, ids: list[str], affected: dict[str, list[str]]
    ) -> None:
        """Queue one notification per matching channel (caller holds ``state.lock``).

        All ids changed by one request go in one payload, as Zoho batches them. Every payload
        has ``affected_fields`` (empty but for an update). A channel with
        ``return_affected_field_values`` gets, for an update, the changed fields of each
        record in ``affected_fields``, and for an insert or an update the values written
        (``affected_values``, as recorded Zoho payloads carry them for both), read now, under
        the lock the write still holds: what this change wrote, not what a later one did
        (reference §5).
        """
        event = _OPERATION_EVENTS[operation]
        now = self.state.timestamp()
        for channel in self.state.data["channels"].values():
            if channel["expires_at"] <= now:
                continue
            events = channel["events"]
            if f"{module}.{event}" not in events and f"{module}.all" not in events:
                continue
            affected_fields: list[dict[str, list[str]]] = []
            with_values = bool(channel.get("return_affected_field_values"))
            if with_values and operation == "update":
                affected_fields = [{rid: affected.get(rid, [])} for rid in ids]
            payload: dict[str, Any] = {
                "server_time": int(now * 1000),
                "query_params": dict(parse_qsl(urlsplit(channel["notify_url"]).query)),
                "module": module,
                "resource_uri": f"{channel['base_url']}/crm/v2/{module}",
                "ids": list(ids),
                "affected_fields": affected_fields,
                "operation": operation,
                "channel_id": str(channel["channel_id"]),
                "token": channel.get("token"),
            }
            if with_values and operation in ("insert", "update"):
                payload["affected_values"] = [
                    {"record_id": rid, "values": self._values(module, rid, affected.get(rid, []))}
                    for rid in ids
                ]
            self._ensure_thread()
            self._queue.put({"url": channel["notify_url"], "payload": payload})

    def _values(self, module: str, record_id: str, names: list[str]) -> dict[str, Any]:
        """The changed fields' values as the API renders them (caller holds the lock)."""
        record = self.state.data["records"][module].get(record_id)
        if record is None or not names:
            return {}
        rendered = render_record(self.state, module, record, only=names)
        rendered.pop("id", None)
        return rendered

    def _ensure_thread(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="zoho-sandbox-notifier", daemon=True
                )
                self._thread.start()

    # ---------------------------------------------------------------- consuming
    def _run(self) -> None:
        with requests.Session() as session:
            while True:
                job = self._queue.get()
                try:
                    if job is None:
                        return
                    self._deliver(session, job)
                finally:
                    self._queue.task_done()

    def _deliver(self, session: requests.Session, job: dict[str, Any]) -> None:
        payload = job["payload"]
        entry: dict[str, Any] = {
            "channel_id": payload["channel_id"],
            "notify_url": job["url"],
            "module": payload["module"],
            "operation": payload["operation"],
            "ids": payload["ids"],
            "payload": payload,
            "status_code": None,
            "error": None,
        }
        try:
            response = session.post(job["url"], json=payload, timeout=DELIVERY_TIMEOUT)
            entry["status_code"] = response.status_code
            response.close()
        except requests.RequestException as exc:
            entry["error"] = f"{type(exc).__name__}: {exc}"
        entry["delivered_at"] = self.state.show_now()
        with self._log_lock:
            self._log.append(entry)

    # ------------------------------------------------------------- inspection
    def drain(self, timeout: float = 5.0) -> bool:
        """Wait until every queued delivery was attempted (tests read the log after)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def log(self) -> list[dict[str, Any]]:
        with self._log_lock:
            return list(self._log)

    def clear_log(self) -> None:
        with self._log_lock:
            self._log.clear()

    def stop(self) -> None:
        with self._start_lock:
            thread = self._thread
            self._thread = None
        if thread is not None and thread.is_alive():
            self._queue.put(None)
            thread.join(timeout=DELIVERY_TIMEOUT + 2)


def attach(state: SandboxState) -> Notifier:
    """Give ``state`` its notifier once (several apps may share one state)."""
    if state.notifier is None:
        state.notifier = Notifier(state)
    return state.notifier
