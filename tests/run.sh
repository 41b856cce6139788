#!/usr/bin/env bash
# Install everything the tests need, then run the suite on SQLite and on PostgreSQL.
#
#   ./tests/run.sh               # both passes
#   ./tests/run.sh -k websocket  # extra arguments go to pytest (both passes)
#
# Needs Debian/Ubuntu with Python >= 3.11. System packages come from apt-get (as root or via
# sudo). PostgreSQL is expected at GUICHET_TEST_PG_URL (default: 127.0.0.1:5432, database
# `test`, trust auth); every test makes its own schema there and drops it afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
PG_URL=${GUICHET_TEST_PG_URL:-postgresql://postgres@127.0.0.1:5432/test}
export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}

step() { printf '\n== %s\n' "$*" >&2; }

if [ ! -x "$CHROMIUM" ]; then
  step "installing Chromium (browser tests)"
  SUDO=(); [ "$(id -u)" = 0 ] || SUDO=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" apt-get install -y -qq chromium >/dev/null
fi

step "installing Guichet with its [test] extra into .venv"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'

step "checking PostgreSQL at ${PG_URL%%\?*}"
if ! .venv/bin/python - "$PG_URL" <<'PY'
import asyncio, sys, asyncpg
async def main(url):
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"), timeout=10)
    await conn.close()
asyncio.run(main(sys.argv[1]))
PY
then
  echo "PostgreSQL is not reachable at $PG_URL; start it or set GUICHET_TEST_PG_URL" >&2
  exit 1
fi

step "lint (ruff) and types (mypy)"
.venv/bin/ruff check channels inbox routing web bench tests
.venv/bin/mypy

status=0
run_pass() {
  local name=$1; shift
  step "pytest on $name"
  local rc=0
  "$@" || rc=$?
  if [ "$rc" = 5 ]; then
    echo "pytest collected no tests on $name: that is a failure" >&2
  fi
  if [ "$rc" != 0 ]; then
    echo "pytest on $name failed (exit $rc)" >&2
    status=1
  fi
}
run_pass SQLite env -u GUICHET_TEST_DATABASE_URL .venv/bin/python -m pytest -q "$@"
run_pass PostgreSQL env GUICHET_TEST_DATABASE_URL="$PG_URL" .venv/bin/python -m pytest -q "$@"
exit "$status"
