"""What the public endpoints read from a hostile body (issue 25, items 2 and 3).

``/notify`` and ``/cron`` need no login, so their bodies come from anyone: a chunked upload
with no Content-Length, megabytes of ``[``, bytes that are not text. The real-server tests
count every byte the app takes from ``wsgi.input``, which is what "reads no more than the
cap" means whatever the transfer encoding.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa
from werkzeug.serving import make_server

from flask_zoho_sync import jobs
from flask_zoho_sync.models import SyncSettings
from flask_zoho_sync.web.hooks import MAX_NOTIFICATION_BYTES, MAX_NOTIFICATION_DEPTH
from flask_zoho_sync.web.request_body import json_nesting_depth
from tests.web.conftest import PREFIX, Admin

CHANNEL_ID = "1000000000000042"
CHANNEL_TOKEN = "a-token-we-gave-zoho"
SIXTY_FOUR_MIB = 64 * 1024 * 1024


class CountingInput:
    """``wsgi.input`` that counts what the app reads (``read`` only, as WSGI promises)."""

    def __init__(self, stream: Any, tally: list[int]) -> None:
        self._stream = stream
        self._tally = tally

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self._tally.append(len(data))
        return data

    def readline(self, size: int = -1) -> bytes:
        data = self._stream.readline(size)
        self._tally.append(len(data))
        return data


@dataclass
class Served:
    port: int
    reads: list[int] = field(default_factory=list)

    @property
    def bytes_read(self) -> int:
        return sum(self.reads)


@pytest.fixture
def served(admin: Admin) -> Iterator[Served]:
    """The admin's app on a loopback port, behind a middleware that counts body reads."""
    app = admin.host.app
    record = Served(port=0)

    def counting(environ: dict[str, Any], start_response: Any) -> Any:
        environ["wsgi.input"] = CountingInput(environ["wsgi.input"], record.reads)
        return app(environ, start_response)

    server = make_server("127.0.0.1", 0, counting, threaded=True)
    record.port = server.server_port
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield record
    server.shutdown()
    thread.join(5)


def post_chunked(
    port: int, path: str, chunk: bytes, total: int, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], int]:
    """POST up to ``total`` bytes as chunked transfer encoding over a raw socket.

    Stops sending as soon as the server answers (or drops the connection), as a client
    would; returns the status, the JSON answer and how much was sent.
    """
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = [
        f"POST {PREFIX}{path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Transfer-Encoding: chunked",
        "Content-Type: application/json",
        "Connection: close",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
    sent = 0
    try:
        while sent < total:
            piece = chunk[: total - sent]
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            sent += len(piece)
            if select.select([sock], [], [], 0)[0]:
                break  # the server has answered
        else:
            sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    # Werkzeug's server drains what the app left unread before it closes; end our side so
    # that drain sees the end instead of waiting for bytes that will never come.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
    answer = b""
    try:
        while part := sock.recv(65536):
            answer += part
    except ConnectionResetError:
        pass
    sock.close()
    status_line, _, rest = answer.partition(b"\r\n")
    _, _, body = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), json.loads(body), sent


def register_channel(admin: Admin) -> None:
    with admin.host.app.app_context():
        session = admin.state.db.session
        settings = session.scalars(sa.select(SyncSettings)).first()
        if settings is None:
            settings = SyncSettings()
            session.add(settings)
        settings.module = "Leads"
        settings.notify_channel_id = CHANNEL_ID
        settings.notify_token_encrypted = admin.state.vault.encrypt(CHANNEL_TOKEN)
        session.commit()


def notification(**extra: Any) -> dict[str, Any]:
    return {
        "channel_id": CHANNEL_ID,
        "token": CHANNEL_TOKEN,
        "module": "Leads",
        "operation": "update",
        "ids": ["4150868000000624001"],
        **extra,
    }


def queued_jobs(admin: Admin) -> int:
    with admin.host.app.app_context():
        queue = jobs.queue_for(admin.state)
        return queue.count + queue.scheduled_job_registry.count


# -- nesting ---------------------------------------------------------------------------------


@pytest.mark.parametrize("opener", [b"[", b'{"a":'])
def test_deeply_nested_json_is_a_400_saying_so(admin: Admin, opener: bytes) -> None:
    body = opener * 200_000
    response = admin.client.post(
        f"{PREFIX}/notify", data=body[:MAX_NOTIFICATION_BYTES], content_type="application/json"
    )
    assert response.status_code == 400
    assert f"at most {MAX_NOTIFICATION_DEPTH}" in response.get_json()["error"]
    assert queued_jobs(admin) == 0


def test_nesting_is_counted_without_brackets_inside_strings() -> None:
    assert json_nesting_depth(b'{"ids": ["[[[[", "\\"[[[{"]}') == 2
    assert json_nesting_depth(b"[" * 100_000) == 100_000
    assert json_nesting_depth(b'"unterminated [[[') == 3


def test_a_real_notification_nesting_within_the_limit_still_schedules_its_pull(
    admin: Admin,
) -> None:
    register_channel(admin)
    nested = {"a": {"b": {"c": [[[["deep but fine"]]]]}}}
    response = admin.client.post(f"{PREFIX}/notify", json=notification(query_params=nested))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["ids"] == 1
    assert queued_jobs(admin) == 1


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"", "empty"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b'{"ids": [1,', "not valid JSON"),
        (b"9" * 5000, "not valid JSON"),
    ],
)
def test_a_body_that_is_not_json_is_a_400_saying_what_is_wrong(
    admin: Admin, body: bytes, says: str
) -> None:
    register_channel(admin)
    response = admin.client.post(f"{PREFIX}/notify", data=body, content_type="application/json")
    assert response.status_code == 400
    assert says in response.get_json()["error"]
    assert queued_jobs(admin) == 0


# -- size ------------------------------------------------------------------------------------


def test_a_declared_oversize_body_is_a_413_with_nothing_read(served: Served) -> None:
    sock = socket.create_connection(("127.0.0.1", served.port), timeout=30)
    sock.sendall(
        (
            f"POST {PREFIX}/notify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {SIXTY_FOUR_MIB}\r\nConnection: close\r\n\r\n"
        ).encode()
    )
    answer = b""
    while part := sock.recv(65536):
        answer += part
    sock.close()
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"at most 262144" in answer
    assert served.bytes_read == 0


def test_a_64_mib_chunked_body_is_refused_having_read_no_more_than_the_cap(
    served: Served, admin: Admin
) -> None:
    register_channel(admin)
    status, answer, sent = post_chunked(served.port, "/notify", b"[" * 65536, SIXTY_FOUR_MIB)
    assert status == 413
    assert "larger than the 262144 bytes" in answer["error"]
    assert served.bytes_read <= MAX_NOTIFICATION_BYTES + 1
    assert sent < SIXTY_FOUR_MIB  # refused while the client was still sending
    assert queued_jobs(admin) == 0


def test_a_chunked_notification_within_the_cap_is_accepted(served: Served, admin: Admin) -> None:
    register_channel(admin)
    body = json.dumps(notification()).encode()
    status, answer, _ = post_chunked(served.port, "/notify", body, len(body))
    assert status == 200, answer
    assert answer["ok"] is True and answer["ids"] == 1
    assert queued_jobs(admin) == 1


def test_the_cron_endpoint_reads_nothing_of_a_64_mib_chunked_body(served: Served) -> None:
    status, answer, sent = post_chunked(
        served.port, "/cron", b"x" * 65536, SIXTY_FOUR_MIB, {"X-Zoho-Sync-Secret": "guess"}
    )
    assert status == 403 and "ZOHO_SYNC_CRON_SECRET" in answer["error"]
    assert served.bytes_read == 0
    assert sent < SIXTY_FOUR_MIB
