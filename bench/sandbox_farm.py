"""Several sandbox orgs in one process, each on its own port: ``python -m bench.sandbox_farm``.

The sandbox (``python -m flask_zoho_sync.sandbox``) is one Zoho org: one record store, one
org id. Tenants of a multi-tenant host are different Zoho orgs, and sharing one sandbox org
would not model them: every tenant's incremental pull would read the records the other
tenants pushed (and import them as its own contacts), and every tenant's calls would share
the one org id, so the sync's per-org call slots (``zoho_sync:call-slots:<client>:<org>``)
would make all tenants queue for one org's ``ZOHO_SYNC_ORG_CONCURRENCY``.

So the tenants benchmark runs a few of these processes, each serving ``--orgs`` sandbox
orgs with distinct org ids, and tells each tenant the URL of its own org. Each org is the
sandbox's own app and state (``SandboxState``), served by werkzeug's threaded server as
``python -m flask_zoho_sync.sandbox`` serves it; the process only holds several.

Prints one ``org <index> <org id> <url>`` line per org, then ``ready``; serves until killed.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from werkzeug.serving import BaseWSGIServer, make_server

from flask_zoho_sync.sandbox.app import create_sandbox_app
from flask_zoho_sync.sandbox.seed import seeded_state
from flask_zoho_sync.sandbox.server import _QuietHandler

#: How often an idle server looks at its shutdown flag: a process holds dozens of them, so
#: werkzeug's test default (50 ms) would wake the process a thousand times a second.
POLL_SECONDS = 0.5


def org_id(index: int) -> str:
    """A Zoho-looking org id, different for each org of the benchmark."""
    return f"48768760{index:011d}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sandbox_farm")
    parser.add_argument("--orgs", type=int, required=True, help="orgs this process serves")
    parser.add_argument("--first", type=int, default=0, help="index of the first org")
    parser.add_argument("--concurrency-limit", type=int, default=10)
    parser.add_argument(
        "--one-org-id",
        action="store_true",
        help="give every org the sandbox's own org id, as one sandbox would (their call "
        "slots are then shared)",
    )
    args = parser.parse_args(argv)

    servers: list[BaseWSGIServer] = []
    for index in range(args.first, args.first + args.orgs):
        state = seeded_state(seed=0, concurrency_limit=args.concurrency_limit)
        if not args.one_org_id:
            state.data["org"]["id"] = org_id(index)
        state.data["org"]["company_name"] = f"Tenant org {index}"
        server = make_server(
            "127.0.0.1",
            0,
            create_sandbox_app(state),
            threaded=True,
            request_handler=_QuietHandler,
        )
        servers.append(server)
        shown = state.data["org"]["id"]
        print(f"org {index} {shown} http://127.0.0.1:{server.server_port}", flush=True)
    threads = [
        threading.Thread(target=server.serve_forever, args=(POLL_SECONDS,), daemon=True)
        for server in servers
    ]
    for thread in threads:
        thread.start()
    stop = threading.Event()

    def _stop(_signal: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print("ready", flush=True)
    stop.wait()
    for server in servers:
        server.shutdown()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
