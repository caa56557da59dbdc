"""Serving the sandbox: in a background thread for tests, in the foreground for the demo."""

from __future__ import annotations

import socket
import threading
from functools import cache
from types import TracebackType
from typing import Any
from zoneinfo import available_timezones

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from .app import create_sandbox_app
from .seed import seeded_state
from .state import DEFAULT_TIMEZONE, SandboxState


class _QuietHandler(WSGIRequestHandler):
    """No per-request access log: test output should show test failures, not traffic."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class SandboxServer:
    """A sandbox on a free local port, served by a threaded werkzeug server.

    Threaded because the concurrency cap and notification tests need parallel requests;
    a context manager because tests must close the socket (warnings are errors here).
    """

    def __init__(
        self,
        state: SandboxState | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        **options: Any,
    ) -> None:
        self.state = state if state is not None else seeded_state(**options)
        self.host = host
        self.port = port
        self.app = create_sandbox_app(self.state)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the sandbox server is not running; call start() first")
        return f"http://{self.host}:{self._server.server_port}"

    def start(self) -> SandboxServer:
        if self._server is not None:
            return self
        self._server = make_server(
            self.host, self.port, self.app, threaded=True, request_handler=_QuietHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="zoho-sandbox", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self.state.close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


#: The ports ``--port`` accepts; 0 asks the system for a free one (printed at start).
PORT_RANGE = (0, 65535)
#: Demo leads ``--seed`` may create: enough for any demo, few enough to start in seconds.
SEED_RANGE = (0, 10000)


class PortUnavailable(OSError):
    """The sandbox's port is taken (or not on this machine); the message names it."""


def _probe_port(host: str, port: int) -> None:
    """PortUnavailable naming the port if the sandbox could not listen on it.

    Werkzeug prints its own advice and exits with status 1 on a taken port; probing first
    (as werkzeug binds: SO_REUSEADDR) gives the CLIs one sentence and their own status.
    """
    if port == 0:
        return
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise PortUnavailable(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}): another program holds "
            "that port, or the address is not this machine's. Choose another --port, or "
            "--port 0 for a free one."
        ) from None


@cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def check_org_timezone(name: str) -> str:
    """``name`` if it is an IANA zone name, or ValueError saying what one looks like.

    Only names from the zone database: ``ZoneInfo`` also opens paths and odd spellings,
    and the org's zone is copied into every record time the sandbox renders.
    """
    if name not in _zone_names():
        raise ValueError(
            f"{name!r} is not an IANA time zone name; use one such as 'Australia/Sydney' or 'UTC'."
        )
    return name


def run_sandbox(
    host: str = "127.0.0.1",
    port: int = 8765,
    org_timezone: str = DEFAULT_TIMEZONE,
    seed: int = 0,
    state_file: str | None = None,
    *,
    client_id: str | None = None,
    client_secret: str | None = None,
    echo: Any = print,
    **options: Any,
) -> None:
    """Serve the sandbox in the foreground until interrupted (used by the CLIs).

    Prints the URL and client credentials first, because the person starting it needs
    them to configure the app under test.
    """
    if client_id:
        options["client_id"] = client_id
    if client_secret:
        options["client_secret"] = client_secret
    state = seeded_state(org_timezone=org_timezone, seed=seed, state_file=state_file, **options)
    app = create_sandbox_app(state)
    try:
        _probe_port(host, port)
    except OSError:
        state.close()
        raise
    server = make_server(host, port, app, threaded=True)
    url = f"http://{host}:{server.server_port}"
    echo(f"Zoho CRM sandbox running at {url}")
    echo(f"  accounts server / api domain: {url}")
    echo(f"  client id:     {state.client_id}")
    echo(f"  client secret: {state.client_secret}")
    echo(f"  org time zone: {state.data['org']['time_zone']}")
    echo(f"  mint a refresh token: curl -X POST {url}/__sandbox__/tokens")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        state.close()
