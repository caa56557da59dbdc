"""``bin/demo``: the whole demo in one command, stopped with Ctrl-C.

It starts the Zoho sandbox (unless real Zoho credentials are set), makes sure there is a
Redis (the real one when it answers, otherwise an embedded one), creates the demo database
with seed contacts, and runs an RQ worker and the demo app, then prints where to go.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

import redis

from .seed import ADMIN_EMAIL, ADMIN_PASSWORD

ROOT = Path(__file__).resolve().parent.parent
#: Where the demo keeps its database, secrets and the sandbox's state (DEMO_INSTANCE_PATH).
INSTANCE = Path(os.environ.get("DEMO_INSTANCE_PATH", ROOT / "instance"))


def _say(message: str) -> None:
    print(f"==> {message}", flush=True)


#: The ports the demo listens on, each with the variable that moves it and its default. The
#: embedded Redis (when no Redis answers) takes a port the system picks, so it cannot clash.
PORTS = (
    ("ZOHO_SANDBOX_PORT", 8765, "the Zoho sandbox"),
    ("DEMO_PORT", 5000, "the demo app"),
)


def _port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on ``port``, found by binding, never by connecting:
    whatever listens there may be someone else's and is not to be spoken to.
    SO_REUSEADDR, as the servers themselves set it, so a recently closed port counts as
    free while a listening one does not."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


def check_ports(env: dict[str, str], *, sandbox: bool = True) -> tuple[dict[str, int], str | None]:
    """The ports to use, by variable, and what is wrong with them (None: all free).

    Checked before anything starts, so a taken port stops the demo with the variable to
    change instead of a half-started demo, or one attached to a stranger's server.
    """
    chosen: dict[str, int] = {}
    for variable, default, what in PORTS:
        if variable == "ZOHO_SANDBOX_PORT" and not sandbox:
            continue
        raw = env.get(variable, str(default))
        try:
            port = int(raw)
            if not 1 <= port <= 65535:
                raise ValueError(raw)
        except ValueError:
            return chosen, (
                f"{variable}={raw!r} is not a port number; set it to one between 1 and "
                f"65535 (default {default}) and start again."
            )
        clash = next((name for name, taken in chosen.items() if taken == port), None)
        if clash is not None:
            return chosen, (
                f"{variable} and {clash} both ask for port {port}; give {what} another one, "
                f"for example {variable}={_free_port()} bin/demo."
            )
        if not _port_is_free(port):
            return chosen, (
                f"Port {port}, wanted for {what}, is already in use on 127.0.0.1. Stop the "
                f"program that listens there, or choose another port: {variable}="
                f"{_free_port()} bin/demo (the demo's ports are set by "
                + " and ".join(f"{name} (default {number})" for name, number, _ in PORTS)
                + ")."
            )
        chosen[variable] = port
    return chosen, None


def _free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_http(url: str, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urlopen(url, timeout=1):
                return True
        except URLError as exc:
            if getattr(exc, "code", None):  # an HTTP error still means it is up
                return True
            time.sleep(0.2)
        except OSError:
            time.sleep(0.2)
    return False


def _redis_answers(url: str) -> bool:
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
        return True
    except (redis.RedisError, OSError):
        return False


def _start_embedded_redis() -> tuple[str, object]:
    """An in-process Redis (fakeredis over TCP) for machines without a Redis server."""
    from .embedded_redis import start_embedded_redis

    port = _free_port()
    return f"redis://127.0.0.1:{port}/0", start_embedded_redis(port)


class Launcher:
    def __init__(self) -> None:
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.env = dict(os.environ)

    def spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(args, cwd=ROOT, env=self.env)
        self.children.append((name, process))
        return process

    def stop(self) -> None:
        for _name, process in reversed(self.children):
            if process.poll() is None:
                process.terminate()
        for _name, process in reversed(self.children):
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()

    def run(self) -> int:
        python = sys.executable
        env = self.env
        real_zoho = bool(env.get("ZOHO_SYNC_CLIENT_ID"))
        ports, problem = check_ports(env, sandbox=not real_zoho)
        if problem:
            _say(problem)
            return 1
        INSTANCE.mkdir(exist_ok=True)
        env.setdefault("FLASK_APP", "demo_app")

        redis_url = (
            env.get("ZOHO_SYNC_REDIS_URL") or env.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
        )
        # The package's worker class stops within a second on Ctrl-C (workers.py says why).
        worker_options = ["--worker-class", "flask_zoho_sync.workers.SyncWorker"]
        if _redis_answers(redis_url):
            _say(f"Redis: using the running server at {redis_url}")
        else:
            redis_url, _server = _start_embedded_redis()
            worker_options = ["--worker-class", "demo_app.embedded_redis.EmbeddedRedisWorker"]
            _say(f"Redis: none answered, so using an embedded one at {redis_url} (demo only)")
        env["REDIS_URL"] = redis_url
        env["ZOHO_SYNC_REDIS_URL"] = redis_url

        if real_zoho:
            _say("Zoho: ZOHO_SYNC_CLIENT_ID is set, so the demo connects to real Zoho CRM")
        else:
            port = ports["ZOHO_SANDBOX_PORT"]
            sandbox_url = f"http://127.0.0.1:{port}"
            env["ZOHO_SANDBOX_URL"] = sandbox_url
            self.spawn(
                "sandbox",
                [
                    python,
                    "-m",
                    "flask_zoho_sync.sandbox",
                    "--port",
                    str(port),
                    "--seed",
                    "25",
                    "--state-file",
                    str(INSTANCE / "zoho-sandbox.json"),
                ],
            )
            if not _wait_for_http(f"{sandbox_url}/__sandbox__/stats"):
                _say("The Zoho sandbox did not start; see the messages above.")
                return 1
            _say(f"Zoho sandbox: {sandbox_url} (seed Leads and custom fields)")

        demo_port = ports["DEMO_PORT"]
        # Contact URLs sent to Zoho point back at the demo's contact pages.
        env.setdefault("ZOHO_SYNC_BASE_URL", f"http://127.0.0.1:{demo_port}")
        # Shorter than the product's defaults (600 s and a day) so changes can be watched.
        env.setdefault("ZOHO_SYNC_PUSH_DELAY", "30")
        env.setdefault("ZOHO_SYNC_PULL_INTERVAL", "120")

        subprocess.run([python, "-m", "flask", "demo-init"], cwd=ROOT, env=env, check=True)

        self.spawn(
            "worker",
            [
                python,
                "-m",
                "rq.cli",
                "worker",
                env.get("ZOHO_SYNC_QUEUE", "zoho-sync"),
                "--with-scheduler",
                "--url",
                redis_url,
                *worker_options,
            ],
        )

        self.spawn("app", [python, "-m", "flask", "run", "--port", str(demo_port)])
        demo_url = f"http://127.0.0.1:{demo_port}"
        if not _wait_for_http(f"{demo_url}/login"):
            _say("The demo app did not start; see the messages above.")
            return 1
        self.spawn("scheduler", [python, "-m", "demo_app.launch", "--ticker"])
        print(
            f"\n  Demo contact database: {demo_url}\n"
            f"  Log in as {ADMIN_EMAIL} / {ADMIN_PASSWORD}\n"
            "  Press Ctrl-C to stop everything.\n",
            flush=True,
        )
        while True:
            for name, process in self.children:
                if process.poll() is not None:
                    _say(f"The {name} process stopped (exit code {process.returncode}).")
                    return process.returncode or 1
            time.sleep(0.5)


def tick_forever(every: float = 30.0) -> int:
    """Stands in for the cron job a deployment would have: ``flask zoho-sync tick``."""
    from flask_zoho_sync.extension import get_state
    from flask_zoho_sync.jobs import tick

    from . import create_app

    app = create_app()
    while True:
        with app.app_context():
            try:
                report = tick(get_state())
                if report.pull_scheduled or report.push_scheduled:
                    _say(f"tick: {report.as_dict()}")
            except Exception as exc:  # keep ticking; the next one may succeed
                _say(f"tick failed: {exc}")
        time.sleep(every)


def main() -> int:
    if "--ticker" in sys.argv:
        try:
            return tick_forever()
        except KeyboardInterrupt:
            return 0
    launcher = Launcher()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        return launcher.run()
    except KeyboardInterrupt:
        print()
        _say("Stopping")
        return 0
    finally:
        launcher.stop()


if __name__ == "__main__":
    sys.exit(main())
