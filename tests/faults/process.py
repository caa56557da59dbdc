"""Tools for the process-fault scenarios: a worker in its own process, and the final audit.

The audit is the point of every scenario: after the fault and the recovery, host and Zoho
are compared record by record and field by field, and every difference is counted as the
report counts it (lost, duplicated, brought back from deletion).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import redis
import sqlalchemy as sa

from flask_zoho_sync import jobs
from flask_zoho_sync.models import OutboxBatch, OutboxEntry, Run
from tests.engine.conftest import Synced
from tests.faults.report import ScenarioResult
from tests.servers import redis_server_binary

ROOT = Path(__file__).resolve().parents[2]
#: How long a killed worker's run lock outlives it in these tests (90 s in production).
LOCK_SECONDS = 0.6


def worker_settings(synced: Synced, **extra: Any) -> dict[str, Any]:
    config = {
        key: value
        for key, value in synced.host.app.config.items()
        if key.startswith("ZOHO_SYNC_") and isinstance(value, str | int | float | bool)
    }
    return {
        "database_url": synced.host.app.config["SQLALCHEMY_DATABASE_URI"],
        "config": config,
        "run_lock_seconds": LOCK_SECONDS,
        **extra,
    }


def run_worker(
    synced: Synced,
    steps_file: Path,
    *,
    kill: str | None = None,
    timeout: float = 120,
    allowed_exits: tuple[int, ...] = (),
    **settings: Any,
) -> int:
    """Run ``flask zoho-sync worker --burst --simple`` in its own process; its exit code.

    -9 means the kill switch fired (SIGKILL); 0 means the queue was worked to the end.
    """
    env = {
        **os.environ,
        "FLASK_APP": "tests.faults.worker_host:create_app",
        "ZOHO_SYNC_FAULT_HOST": json.dumps(worker_settings(synced, **settings)),
        "ZOHO_SYNC_FAULT_STEPS": str(steps_file),
    }
    env.pop("ZOHO_SYNC_FAULT_KILL", None)
    if kill:
        env["ZOHO_SYNC_FAULT_KILL"] = kill
    completed = subprocess.run(
        [sys.executable, "-m", "flask", "zoho-sync", "worker", "--burst", "--simple"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if completed.returncode not in (0, -9, *allowed_exits):
        raise AssertionError(
            f"the worker exited with {completed.returncode}:\n{completed.stderr[-3000:]}"
        )
    return completed.returncode


def push_now(synced: Synced) -> None:
    synced.state.config = replace(synced.state.config, push_delay=0)


def work_in_process(synced: Synced) -> None:
    """A restarted worker: run every due job here (the scheduler moves due jobs first)."""
    from flask_zoho_sync.workers import SimpleSyncWorker

    with synced.host.app.app_context():
        queue = jobs.queue_for(synced.state)
        worker = SimpleSyncWorker([queue], connection=synced.state.redis())
        worker.work(burst=True, with_scheduler=True)


def pending_changes(synced: Synced) -> int:
    with synced.host.app.app_context():
        session = synced.host.db.session
        entries = session.scalar(
            sa.select(sa.func.count())
            .select_from(OutboxEntry)
            .where(OutboxEntry.processed_at.is_(None))
        )
        batches = session.scalar(sa.select(sa.func.count()).select_from(OutboxBatch))
        return int(entries or 0) + int(batches or 0)


def run_statuses(synced: Synced) -> list[str]:
    with synced.host.app.app_context():
        return list(
            synced.host.db.session.scalars(
                sa.select(Run.status).where(Run.dry_run.is_(False)).order_by(Run.id)
            )
        )


@dataclass
class Audit:
    records_checked: int = 0
    lost: int = 0
    duplicated: int = 0
    resurrected: int = 0
    differences: list[str] = field(default_factory=list)

    def into(self, result: ScenarioResult) -> None:
        result.records_checked += self.records_checked
        result.lost += self.lost
        result.duplicated += self.duplicated
        result.resurrected += self.resurrected
        if self.differences:
            result.note = "; ".join(self.differences[:5])


def _host_rows(synced: Synced) -> list[dict[str, Any]]:
    with synced.host.app.app_context():
        db = synced.host.db
        rows = []
        for contact in db.session.scalars(db.select(synced.host.Contact)):
            rows.append(
                {
                    "id": str(contact.id),
                    "email": (contact.email or "").lower(),
                    "first_name": contact.first_name,
                    "last_name": contact.last_name,
                    "phone": contact.phone,
                    "vip": any(group.name == "VIP" for group in contact.groups),
                }
            )
        return rows


def audit(synced: Synced, *, expected: dict[str, dict[str, Any]], deleted: set[str]) -> Audit:
    """Compare both sides with what they should hold (by email) and with each other.

    ``expected`` maps each email that must exist to its fields (first_name, last_name,
    phone, vip); ``deleted`` holds emails that must exist on neither side. A missing record
    or a field that lost its edit counts as lost.
    """
    found = Audit()
    host = _host_rows(synced)
    zoho = synced.zoho.records("Leads")
    host_count = Counter(row["email"] for row in host)
    zoho_count = Counter((record.get("Email") or "").lower() for record in zoho)
    contact_ids = Counter(record.get("Contact_Id") for record in zoho if record.get("Contact_Id"))
    for email, count in [*host_count.items(), *zoho_count.items()]:
        if count > 1:
            found.duplicated += count - 1
            found.differences.append(f"{email} x{count}")
    for contact_id, count in contact_ids.items():
        if count > 1:
            found.duplicated += count - 1
            found.differences.append(f"Contact_Id {contact_id} x{count}")
    for email in deleted:
        for side, counts in (("host", host_count), ("Zoho", zoho_count)):
            if counts.get(email):
                found.resurrected += 1
                found.differences.append(f"{email} came back in {side}")
    host_by_email = {row["email"]: row for row in host}
    zoho_by_email = {(record.get("Email") or "").lower(): record for record in zoho}
    for email in set(host_by_email) | set(zoho_by_email):
        if email not in expected and email not in deleted:
            found.duplicated += 1
            found.differences.append(f"{email} appeared from nowhere")
    for email, fields in expected.items():
        found.records_checked += 1
        row, record = host_by_email.get(email), zoho_by_email.get(email)
        if row is None or record is None:
            found.lost += 1
            found.differences.append(f"{email} missing in {'host' if row is None else 'Zoho'}")
            continue
        wanted = {
            "host first_name": (row["first_name"], fields["first_name"]),
            "host last_name": (row["last_name"], fields["last_name"]),
            "host phone": (row["phone"], fields["phone"]),
            "host VIP": (row["vip"], fields["vip"]),
            "Zoho First_Name": (record.get("First_Name"), fields["first_name"]),
            "Zoho Last_Name": (record.get("Last_Name"), fields["last_name"]),
            "Zoho Phone": (record.get("Phone"), fields["phone"]),
            "Zoho VIP": (bool(record.get("VIP")), fields["vip"]),
            "Zoho Contact_Id": (record.get("Contact_Id"), row["id"]),
        }
        wrong = [name for name, (have, want) in wanted.items() if have != want]
        if wrong:
            found.lost += 1
            found.differences.append(f"{email}: {', '.join(wrong)} differ")
    return found


# -- infrastructure that a test may break -----------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivateRedis:
    """A Redis server of the test's own, so it can be stopped without touching the shared one.

    Like the machine's, it keeps nothing on disk: a restart comes back empty, which is the
    hard case (every scheduled job and gate is gone; only the database remembers).
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            [
                redis_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        connection = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                connection.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        connection.close()

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=10)
            self._process = None


def use_redis(synced: Synced, url: str) -> None:
    """Point the host (and any worker started from it) at another Redis."""
    synced.host.app.config["ZOHO_SYNC_REDIS_URL"] = url
    synced.state.config = replace(synced.state.config, redis_url=url)
    synced.state._redis = None


class CuttableProxy:
    """A TCP forwarder to a database that the test can cut, as a network or server failure
    would: open connections are reset and new ones refused until it is restored."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._cut = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.2)
        self._stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                continue
            if self._cut.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self._cut.set()
        with self._lock:
            for end in self._open:
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                    end.close()
            self._open.clear()

    def restore(self) -> None:
        self._cut.clear()

    def close(self) -> None:
        self.cut()
        self._stopped.set()
        self._listener.close()
