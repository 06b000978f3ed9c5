#!/usr/bin/env bash
# Differential run: the reference Infinispan Hot Rod server and Ironrod get the same requests; the
# report goes to stdout and to conformance/differential/last-report.txt.
#
# Usage: conformance/differential/run.sh [extra differential args, e.g. --verbose]
# Environment: SKIP_BUILD=1 to reuse existing builds; IRONROD_BIN and DIFFERENTIAL_BIN to use
#              binaries built elsewhere (both set: no cargo build); READY_TIMEOUT seconds to wait
#              for each server (120); RUN_TIMEOUT seconds for the whole comparison (600);
#              FAIL_ON_UNKNOWN=1 to exit 4 when a difference matches no known departure.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
REF="$ROOT/conformance/reference-server"
REPORT="$HERE/last-report.txt"
READY_TIMEOUT="${READY_TIMEOUT:-120}"
RUN_TIMEOUT="${RUN_TIMEOUT:-600}"
HOST=127.0.0.1

log() { echo "[differential $(date +%H:%M:%S)] $*" >&2; }

REF_PID=""
IRON_PID=""
WORK="$(mktemp -d)"

stop_pid() {
  local pid="$1"
  [ -n "$pid" ] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  fi
}
cleanup() {
  stop_pid "$IRON_PID"; IRON_PID=""
  stop_pid "$REF_PID"; REF_PID=""
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_for() { # description seconds pid command...
  local what="$1" secs="$2" pid="$3"; shift 3
  for _ in $(seq 1 $((secs * 5))); do
    "$@" && return 0
    if ! kill -0 "$pid" 2>/dev/null; then log "$what exited early"; return 1; fi
    sleep 0.2
  done
  log "$what not ready after ${secs}s"
  return 1
}
port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# ---------------------------------------------------------------- build (one heavy build at a time)
IRONROD_BIN="${IRONROD_BIN:-}"
DIFFERENTIAL_BIN="${DIFFERENTIAL_BIN:-}"
if [ "${SKIP_BUILD:-0}" != 1 ] && { [ -z "$IRONROD_BIN" ] || [ -z "$DIFFERENTIAL_BIN" ]; }; then
  log "building ironrod and the harness (cargo, release)"
  (cd "$ROOT" && cargo build --release -q -p ironrod-server -p ironrod-differential) >&2
fi
IRONROD_BIN="${IRONROD_BIN:-$ROOT/target/release/ironrod}"
DIFFERENTIAL_BIN="${DIFFERENTIAL_BIN:-$ROOT/target/release/differential}"
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  log "building the reference server (maven)"
  (cd "$REF" && timeout 900 mvn -q -B compile dependency:build-classpath \
      -Dmdep.outputFile=target/classpath.txt) >&2
fi

# ---------------------------------------------------------------- start both servers
REF_PORT="$(free_port)"
IRON_PORT="$(free_port)"
while [ "$IRON_PORT" = "$REF_PORT" ]; do IRON_PORT="$(free_port)"; done

log "starting the reference server on $HOST:$REF_PORT"
java -cp "$REF/target/classes:$(cat "$REF/target/classpath.txt")" \
  org.ironrod.conformance.ReferenceServer --host "$HOST" --port "$REF_PORT" \
  >"$WORK/reference.log" 2>&1 &
REF_PID=$!

log "starting ironrod on $HOST:$IRON_PORT"
"$IRONROD_BIN" --bind "$HOST:$IRON_PORT" >"$WORK/ironrod.log" 2>&1 &
IRON_PID=$!

if ! wait_for "reference server" "$READY_TIMEOUT" "$REF_PID" grep -q READY-ALL "$WORK/reference.log"; then
  tail -40 "$WORK/reference.log" >&2; exit 3
fi
if ! wait_for "ironrod" "$READY_TIMEOUT" "$IRON_PID" port_open "$IRON_PORT"; then
  tail -40 "$WORK/ironrod.log" >&2; exit 3
fi

# ---------------------------------------------------------------- compare
log "running the comparison"
set +e
timeout "$RUN_TIMEOUT" "$DIFFERENTIAL_BIN" \
  --reference "$HOST:$REF_PORT" --ironrod "$HOST:$IRON_PORT" "$@" >"$WORK/report.txt"
RC=$?
set -e
cp "$WORK/report.txt" "$REPORT"
cat "$REPORT"
if [ "$RC" -ne 0 ]; then
  log "differential failed (exit $RC); server logs follow"
  tail -20 "$WORK/reference.log" >&2 || true
  tail -20 "$WORK/ironrod.log" >&2 || true
fi
if [ "$RC" -eq 0 ] && [ "${FAIL_ON_UNKNOWN:-0}" = 1 ] \
   && ! grep -q "(0 not matching a known departure)" "$REPORT"; then
  log "differences that match no known departure:"
  grep "DIFF" "$REPORT" | grep -v "\[known:" >&2 || true
  exit 4
fi
exit "$RC"
