#!/usr/bin/env bash
# Runs the Java conformance suite against a freshly started Ironrod server, once per Java Hot Rod
# client line Keycloak bundles.
#
# Usage: conformance/java/run.sh [CLIENT_VERSION ...]
#        (default: 14.0.28.Final 15.0.21.Final 16.0.14)
# Environment:
#   IRONROD_BIN     server binary (default: ../../target/release/ironrod relative to this script)
#   MVN_TIMEOUT     seconds one client line's `mvn test` may take, downloads included (default 900)
#   START_TIMEOUT   seconds the server may take to accept connections (default 30)
#   MVN             maven command (default: mvn)
# Prints one summary line per client line; exits non-zero if any line failed.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
IRONROD_BIN="${IRONROD_BIN:-$HERE/../../target/release/ironrod}"
# Absolute and exported: AuthenticationTest starts its own server with it.
[ -e "$IRONROD_BIN" ] && IRONROD_BIN="$(cd "$(dirname "$IRONROD_BIN")" && pwd)/$(basename "$IRONROD_BIN")"
export IRONROD_BIN
MVN_TIMEOUT="${MVN_TIMEOUT:-900}"
START_TIMEOUT="${START_TIMEOUT:-30}"
MVN="${MVN:-mvn}"
HOST=127.0.0.1
VERSIONS=("$@")
[ ${#VERSIONS[@]} -eq 0 ] && VERSIONS=(14.0.28.Final 15.0.21.Final 16.0.14)

log() { echo "[run.sh $(date +%H:%M:%S)] $*" >&2; }

if [ ! -x "$IRONROD_BIN" ]; then
  log "server binary not found: $IRONROD_BIN (build it: cargo build --release -p ironrod-server)"
  exit 2
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ironrod-java-conformance.XXXXXX")"
SERVER_PID=""
MVN_PID=""

stop_server() {
  local pid="$SERVER_PID"
  SERVER_PID=""
  [ -n "$pid" ] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      log "server did not stop on SIGTERM; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  if [ -n "$MVN_PID" ] && kill -0 "$MVN_PID" 2>/dev/null; then
    kill -TERM "$MVN_PID" 2>/dev/null || true   # timeout(1) passes it on to mvn
    wait "$MVN_PID" 2>/dev/null || true
  fi
  stop_server
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_in_use() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

free_port() {
  local p
  if command -v python3 >/dev/null 2>&1; then
    p="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()' 2>/dev/null)"
    if [ -n "$p" ]; then echo "$p"; return 0; fi
  fi
  for _ in $(seq 1 100); do
    p=$((20000 + RANDOM % 40000))
    port_in_use "$p" || { echo "$p"; return 0; }
  done
  return 1
}

start_server() {
  local attempt
  for attempt in 1 2 3; do
    PORT="$(free_port)" || { log "no free port"; return 1; }
    "$IRONROD_BIN" --bind "$HOST:$PORT" >"$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    local deadline=$((SECONDS + START_TIMEOUT))
    while [ $SECONDS -lt $deadline ]; do
      if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
        break
      fi
      if port_in_use "$PORT"; then
        log "ironrod (pid $SERVER_PID) accepting on $HOST:$PORT"
        return 0
      fi
      sleep 0.2
    done
    if [ -n "$SERVER_PID" ]; then
      log "server did not accept within ${START_TIMEOUT}s"
      stop_server
      tail -20 "$WORK/server.log" >&2
      return 1
    fi
    log "server exited at start (attempt $attempt):"
    tail -5 "$WORK/server.log" >&2
  done
  return 1
}

# Sums the surefire XML reports of one client line: "tests failures errors skipped".
count_results() {
  local dir="$1" t=0 f=0 e=0 s=0 x attrs
  for x in "$dir"/TEST-*.xml; do
    [ -f "$x" ] || continue
    attrs="$(grep -o '<testsuite [^>]*' "$x" | head -1)"
    t=$((t + $(sed -n 's/.* tests="\([0-9]*\)".*/\1/p' <<<"$attrs")))
    f=$((f + $(sed -n 's/.* failures="\([0-9]*\)".*/\1/p' <<<"$attrs")))
    e=$((e + $(sed -n 's/.* errors="\([0-9]*\)".*/\1/p' <<<"$attrs")))
    s=$((s + $(sed -n 's/.* skipped="\([0-9]*\)".*/\1/p' <<<"$attrs")))
  done
  echo "$t $f $e $s"
}

start_server || exit 1

SUMMARY=()
FAILED=0
for v in "${VERSIONS[@]}"; do
  reports="$HERE/target/$v/surefire-reports"
  rm -rf "$reports"
  log "client $v: mvn test"
  start=$SECONDS
  # In the background so a signal to this script is handled at once (wait is interruptible).
  (cd "$HERE" && exec timeout --kill-after=30 "$MVN_TIMEOUT" "$MVN" -q -B -Dstyle.color=never test \
      -Dhotrod.client.version="$v" -Dironrod.host="$HOST" -Dironrod.port="$PORT") >"$WORK/mvn-$v.log" 2>&1 &
  MVN_PID=$!
  wait "$MVN_PID"
  rc=$?
  MVN_PID=""
  took=$((SECONDS - start))
  read -r t f e s <<<"$(count_results "$reports")"
  if [ "$rc" -eq 0 ] && [ "$t" -gt 0 ]; then
    status=PASS
  else
    status=FAIL
    FAILED=1
    [ "$rc" -eq 124 ] && log "client $v: mvn timed out after ${MVN_TIMEOUT}s"
    log "client $v: mvn exit $rc; last output:"
    sed 's/\x1b\[[0-9;]*m//g' "$WORK/mvn-$v.log" | grep -v '^\s*at \|^\[ERROR\] *$' | tail -40 >&2
  fi
  SUMMARY+=("$(printf '%-14s %s  tests=%s failures=%s errors=%s skipped=%s  %ss' "$v" "$status" "$t" "$f" "$e" "$s" "$took")")
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    log "server died during the $v run:"
    tail -20 "$WORK/server.log" >&2
    SERVER_PID=""
    FAILED=1
    start_server || break
  fi
done

stop_server
for line in "${SUMMARY[@]}"; do echo "$line"; done
exit "$FAILED"
