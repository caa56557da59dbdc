"""`python -m flask_zoho_sync.sandbox`: run the Zoho CRM sandbox in the foreground."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from .server import PORT_RANGE, SEED_RANGE, PortUnavailable, check_org_timezone, run_sandbox
from .state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TIMEZONE


def _in_range(bounds: tuple[int, int], what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not bounds[0] <= value <= bounds[1]:
            raise argparse.ArgumentTypeError(f"{value} is not {what} ({bounds[0]}..{bounds[1]})")
        return value

    return parse


def _zone(text: str) -> str:
    try:
        return check_org_timezone(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flask_zoho_sync.sandbox",
        description="A local Zoho CRM (OAuth + CRM v8 API) for demos and tests.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port",
        type=_in_range(PORT_RANGE, "a port"),
        default=8765,
        help="0..65535; 0 picks a free port (printed at start)",
    )
    parser.add_argument("--org-timezone", type=_zone, default=DEFAULT_TIMEZONE)
    parser.add_argument(
        "--seed",
        type=_in_range(SEED_RANGE, "a number of leads"),
        default=0,
        help=f"number of demo leads to create ({SEED_RANGE[0]}..{SEED_RANGE[1]})",
    )
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

    try:
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
    except PortUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
