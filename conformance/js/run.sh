#!/usr/bin/env bash
# Runs the JavaScript conformance suite (npm `infinispan` 0.16.3) against a fresh Ironrod server.
#
#   IRONROD_BIN=path/to/ironrod ./run.sh [extra node --test options, e.g. --test-name-pattern=4.1]
#
# IRONROD_BIN defaults to ../../target/release/ironrod relative to this script
# (build it with `cargo build --release -p ironrod-server`). IRONROD_SUITE_TIMEOUT bounds the
# whole test run in seconds (default 300). Exits with the tests' status.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="${IRONROD_BIN:-$here/../../target/release/ironrod}"
case "$bin" in /*) ;; *) bin="$PWD/$bin" ;; esac
suite_timeout="${IRONROD_SUITE_TIMEOUT:-300}"
cd "$here"

if [[ ! -x "$bin" ]]; then
  echo "run.sh: no server binary at $bin (build it: cargo build --release -p ironrod-server)" >&2
  exit 2
fi

# Install the pinned client when node_modules is missing or older than the lockfile.
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json \
      || package.json -nt node_modules/.package-lock.json ]]; then
  echo "run.sh: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
fi

log="$(mktemp -t ironrod-js-conformance.XXXXXX.log)"
server_pid=""
status=1

cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [[ "$status" -ne 0 ]]; then
    echo "----- ironrod server log ($log) -----" >&2
    cat "$log" >&2 || true
    echo "----- end of server log -----" >&2
  else
    rm -f "$log"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();});'
}

# Start the server; retry with another port if it dies at once (e.g. someone took the port).
port=""
for attempt in 1 2 3; do
  port="$(free_port)"
  "$bin" --bind "127.0.0.1:$port" >"$log" 2>&1 &
  server_pid=$!
  up=""
  for _ in $(seq 100); do   # at most ~10 s
    if ! kill -0 "$server_pid" 2>/dev/null; then break; fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then up=1; break; fi
    sleep 0.1
  done
  [[ -n "$up" ]] && break
  echo "run.sh: server did not come up on port $port (attempt $attempt)" >&2
  kill -KILL "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
done
if [[ -z "$server_pid" ]]; then
  exit 1
fi
echo "run.sh: ironrod (pid $server_pid) listening on 127.0.0.1:$port" >&2

set +e
IRONROD_BIN="$bin" IRONROD_PORT="$port" timeout --kill-after=10 "$suite_timeout" \
  node --test --test-concurrency=1 --test-reporter=spec "$@" test/*.test.js
status=$?
set -e
if [[ "$status" -eq 124 ]]; then
  echo "run.sh: the test run exceeded ${suite_timeout}s" >&2
fi
if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "run.sh: the server died during the run" >&2
  [[ "$status" -eq 0 ]] && status=1
fi
exit "$status"
