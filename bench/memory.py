"""Peak memory of one whole sync, measured in a process that does nothing else.

Run by ``python -m bench`` once per size (``python -m bench.memory --records N --kind
import``): the process starts a sandbox in a child process, seeds it (import) or the host
(export), runs the sync and prints its own peak RSS (``ru_maxrss``) as JSON. Memory that
stays flat as the data grows is the goal, so the figure that matters is the ratio between
two sizes, not the absolute number (an interpreter with Flask and SQLAlchemy loaded is
already some 60 MB).
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import connected_host, sandbox_process, seed_host, seed_zoho, sqlite_url
from flask_zoho_sync.extension import get_state


def peak_rss_kib() -> int:
    """Peak resident set size of this process, in KiB.

    ``ru_maxrss`` is the portable figure, but Linux carries it across ``execve``: a child
    started by a large parent (the benchmark runner holds 100+ MB) reports at least the
    parent's size. ``VmHWM`` in ``/proc/self/status`` is the same high-water mark for
    this program alone, so it is preferred where it exists.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, required=True)
    parser.add_argument("--kind", choices=("import", "export"), required=True)
    parser.add_argument("--coql", action="store_true", help="pull by COQL (else REST paging)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch, sandbox_process() as zoho:
        if args.kind == "import":
            seed_zoho(zoho, args.records)
        host = connected_host(
            sqlite_url(scratch, "memory"), zoho, ZOHO_SYNC_PULL_WITH_COQL=args.coql
        )
        if args.kind == "export":
            seed_host(host, args.records)
        gc.collect()
        before = peak_rss_kib()
        started = time.perf_counter()
        with host.app.app_context():
            report = get_state().run_sync(mode="all")
        seconds = time.perf_counter() - started
        print(
            json.dumps(
                {
                    "records": args.records,
                    "kind": args.kind,
                    "status": report.status,
                    "peak_rss_kib": peak_rss_kib(),
                    "peak_before_sync_kib": before,
                    "seconds": seconds,
                }
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
