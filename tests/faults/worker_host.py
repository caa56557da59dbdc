"""The test host app as a separate worker process loads it, with a switch that kills it.

A real worker dies by SIGKILL, power loss or OOM: no ``finally`` runs, no transaction
commits. To kill one at an exact step, this app counts the steps of its own run as it goes
and sends itself SIGKILL at the chosen one:

- ``commit:N``: just before the N-th database commit (that transaction is lost);
- ``answer:N``: just after the N-th Zoho CRM answer arrived, before it is read (Zoho did
  the work; the worker never learns the outcome).

``FLASK_APP=tests.faults.worker_host:create_app``; the parent passes the host's settings in
``ZOHO_SYNC_FAULT_HOST`` (JSON) and the kill point in ``ZOHO_SYNC_FAULT_KILL``. Every step
the worker got through is appended to ``ZOHO_SYNC_FAULT_STEPS`` (a file), so the parent can
tell whether the kill point was reached.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import Session

from flask_zoho_sync import jobs
from flask_zoho_sync.sync import push
from tests.hostapp import make_host_app


class _Steps:
    def __init__(self, kill: str | None, log_path: str | None) -> None:
        kind, _, number = (kill or "").partition(":")
        self.kill_kind = kind or None
        self.kill_at = int(number) if number else 0
        self.counts = {"commit": 0, "answer": 0}
        self.log = Path(log_path) if log_path else None

    def passed(self, kind: str) -> None:
        self.counts[kind] += 1
        if self.log is not None:
            with self.log.open("a", encoding="utf-8") as handle:
                handle.write(f"{kind}:{self.counts[kind]}\n")
        if kind == self.kill_kind and self.counts[kind] == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)


def _install_kill_switch(steps: _Steps) -> None:
    def before_commit(_session: Session) -> None:
        steps.passed("commit")

    sa.event.listen(Session, "before_commit", before_commit)
    real_request = requests.Session.request

    def request(self: requests.Session, method: str, url: str, *args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        response = real_request(self, method, url, *args, **kwargs)
        if "/crm/" in url:
            steps.passed("answer")
        return response

    requests.Session.request = request  # type: ignore[method-assign]


def create_app() -> Flask:
    settings = json.loads(os.environ["ZOHO_SYNC_FAULT_HOST"])
    # A dead worker's lock frees itself after this long; tests wait that long, not 90 s.
    jobs.RUN_LOCK_SECONDS = float(settings.get("run_lock_seconds", jobs.RUN_LOCK_SECONDS))
    # Small write batches give a handful of records several batches, so there is a kill
    # point between batches without a test that needs hundreds of records.
    push.BATCH = int(settings.get("push_batch", push.BATCH))
    host = make_host_app(settings["database_url"], fresh_tables=False, **settings["config"])
    _install_kill_switch(
        _Steps(os.environ.get("ZOHO_SYNC_FAULT_KILL"), os.environ.get("ZOHO_SYNC_FAULT_STEPS"))
    )
    return host.app
