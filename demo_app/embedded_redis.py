"""The demo's stand-in for Redis on machines without one: fakeredis served over TCP.

Only for the demo (a real deployment runs Redis). RQ's worker asks the server for its own
client address with CLIENT INFO, whose fakeredis answer redis-py cannot parse, so the
worker class below takes the address from the connection instead.
"""

from __future__ import annotations

import threading
from typing import Any

from flask_zoho_sync.workers import SyncWorker


class EmbeddedRedisWorker(SyncWorker):
    """An RQ worker that works against the embedded fakeredis server."""

    def _set_ip_address(self, connection: Any) -> None:
        self.ip_address = "127.0.0.1"


def start_embedded_redis(port: int) -> Any:
    """Serve fakeredis on 127.0.0.1:``port`` in a daemon thread; returns the server."""
    from fakeredis import TcpFakeServer

    server = TcpFakeServer(("127.0.0.1", port), server_type="redis")
    # A client's connection thread (the worker's pub/sub) must not keep the demo from
    # exiting after Ctrl-C: connection threads die with the process.
    server.daemon_threads = True
    server.block_on_close = False
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
