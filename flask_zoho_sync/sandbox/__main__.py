"""`python -m flask_zoho_sync.sandbox`: run the Zoho CRM sandbox in the foreground."""

from __future__ import annotations

import argparse
import sys

from .server import run_sandbox
from .state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TIMEZONE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flask_zoho_sync.sandbox",
        description="A local Zoho CRM (OAuth + CRM v8 API) for demos and tests.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--org-timezone", default=DEFAULT_TIMEZONE)
    parser.add_argument("--seed", type=int, default=0, help="number of demo leads to create")
    parser.add_argument("--state-file", default=None, help="JSON file to load and save state")
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
    parser.add_argument(
        "--redirect-uri",
        action="append",
        default=None,
        help="allowed redirect URI (repeatable; default: any)",
    )
    args = parser.parse_args(argv)

    def echo(line: str) -> None:
        print(line, flush=True)

    run_sandbox(
        args.host,
        args.port,
        args.org_timezone,
        args.seed,
        args.state_file,
        client_id=args.client_id,
        client_secret=args.client_secret,
        redirect_uris=args.redirect_uri,
        echo=echo,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
