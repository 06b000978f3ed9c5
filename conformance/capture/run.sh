#!/usr/bin/env bash
# Captures real Hot Rod traffic between real clients and the reference server.
#
# For each client run: start a fresh reference server (plain endpoint + SASL endpoint), start the
# recording proxy in front of both, run the driver, stop everything. Outputs, per client run:
#   out/<client>.jsonl        the capture (see proxy.py for the record format)
#   out/<client>.results.txt  the driver's per-operation OK/FAIL list
#   out/<client>.server.log   the reference server's log
#
# Usage: conformance/capture/run.sh [js] [c14] [c15] [c16]     (default: all, in that order)
# Environment: SERVER_PORT (11322) AUTH_PORT (11323) PROXY_PORT (11422) PROXY_AUTH_PORT (11423)
#              CONTROL_PORT (11499) DRIVER_TIMEOUT seconds per client run (900)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CONF="$(cd "$HERE/.." && pwd)"
REF="$CONF/reference-server"
OUT="$HERE/out"
SERVER_PORT="${SERVER_PORT:-11322}"
AUTH_PORT="${AUTH_PORT:-11323}"
PROXY_PORT="${PROXY_PORT:-11422}"
PROXY_AUTH_PORT="${PROXY_AUTH_PORT:-11423}"
CONTROL_PORT="${CONTROL_PORT:-11499}"
DRIVER_TIMEOUT="${DRIVER_TIMEOUT:-900}"
HOST=127.0.0.1
RUNS=("$@")
[ ${#RUNS[@]} -eq 0 ] && RUNS=(js c14 c15 c16)

mkdir -p "$OUT"
SERVER_PID=""
PROXY_PID=""
STATE_DIR=""

log() { echo "[run.sh $(date +%H:%M:%S)] $*" >&2; }

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
  stop_pid "$PROXY_PID"; PROXY_PID=""
  stop_pid "$SERVER_PID"; SERVER_PID=""
  if [ -n "$STATE_DIR" ]; then rm -rf "$STATE_DIR"; STATE_DIR=""; fi
}
trap cleanup EXIT INT TERM

port_free() { ! (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

wait_for_line() { # file pattern seconds pid
  local file="$1" pat="$2" secs="$3" pid="$4"
  for _ in $(seq 1 $((secs * 5))); do
    grep -q "$pat" "$file" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.2
  done
  return 1
}

# ------------------------------------------------------------------ build
build() {
  log "building reference server"
  (cd "$REF" && timeout 900 mvn -q -B compile dependency:build-classpath \
      -Dmdep.outputFile=target/classpath.txt) >&2
  for r in "${RUNS[@]}"; do
    case "$r" in
      c14|c15|c16)
        log "building Java driver ($r)"
        (cd "$HERE/java" && timeout 900 mvn -q -B -P"$r" compile dependency:build-classpath \
            -Dmdep.outputFile="target/$r/classpath.txt") >&2 ;;
      js)
        if [ ! -d "$HERE/js/node_modules/infinispan" ]; then
          log "installing JS client"
          (cd "$HERE/js" && timeout 300 npm ci --no-audit --no-fund) >&2
        fi ;;
      *) log "unknown run '$r'"; exit 2 ;;
    esac
  done
}

# ------------------------------------------------------------------ server and proxy
start_server() { # logfile
  for p in "$SERVER_PORT" "$AUTH_PORT"; do
    port_free "$p" || { log "port $p is busy"; exit 1; }
  done
  STATE_DIR="$(mktemp -d /tmp/ironrod-ref-state.XXXXXX)"
  timeout $((DRIVER_TIMEOUT + 300)) java -cp "$REF/target/classes:$(cat "$REF/target/classpath.txt")" \
      org.ironrod.conformance.ReferenceServer --host "$HOST" --port "$SERVER_PORT" \
      --auth-port "$AUTH_PORT" --state-dir "$STATE_DIR" >"$1.stdout" 2>"$1" &
  SERVER_PID=$!
  wait_for_line "$1.stdout" '^READY-ALL' 120 "$SERVER_PID" || { log "server did not start; see $1"; exit 1; }
  cat "$1.stdout" >>"$1"; rm -f "$1.stdout"
}

start_proxy() { # capture-file label
  for p in "$PROXY_PORT" "$PROXY_AUTH_PORT" "$CONTROL_PORT"; do
    port_free "$p" || { log "port $p is busy"; exit 1; }
  done
  rm -f "$1"
  local plog="$1.proxy.log"
  timeout $((DRIVER_TIMEOUT + 300)) python3 "$HERE/proxy.py" \
      --listen "$HOST:$PROXY_PORT" --target "$HOST:$SERVER_PORT" \
      --listen "$HOST:$PROXY_AUTH_PORT" --target "$HOST:$AUTH_PORT" \
      --control "$HOST:$CONTROL_PORT" --out "$1" --server-label "$2" >"$plog" 2>&1 &
  PROXY_PID=$!
  wait_for_line "$plog" 'PROXY READY' 30 "$PROXY_PID" || { log "proxy did not start"; exit 1; }
  rm -f "$plog"
}

stop_proxy() {
  # "quit" makes the proxy flush and exit; fall back to a signal.
  python3 - "$HOST" "$CONTROL_PORT" <<'EOF' || true
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
    s.sendall(b"sync\nquit\n"); s.settimeout(5); s.recv(64)
except OSError:
    pass
EOF
  sleep 0.5
  stop_pid "$PROXY_PID"; PROXY_PID=""
}

server_label() {
  local jar
  jar="$(tr ':' '\n' <"$REF/target/classpath.txt" | grep -o 'infinispan-server-hotrod-[^/]*\.jar' | head -1)"
  jar="${jar#infinispan-server-hotrod-}"
  echo "infinispan-server-hotrod-${jar%.jar}"
}

# ------------------------------------------------------------------ one client run
run_client() { # run-id
  local r="$1" name cmd=()
  case "$r" in
    js)
      name="js-$(node -p 'require(process.argv[1]).version' "$HERE/js/node_modules/infinispan/package.json")"
      cmd=(node "$HERE/js/capture.js" --host "$HOST" --port "$PROXY_PORT" --auth-port "$PROXY_AUTH_PORT"
           --control "$CONTROL_PORT") ;;
    c14|c15|c16)
      local jar cp versions basic auth authfull xa near newest
      cp="$(cat "$HERE/java/target/$r/classpath.txt")"
      jar="$(tr ':' '\n' <<<"$cp" | grep -o 'infinispan-client-hotrod-[^/]*\.jar' | head -1)"
      jar="${jar#infinispan-client-hotrod-}"; name="java-${jar%.jar}"
      # auth: full mechanism matrix at $authfull, DIGEST-MD5/SCRAM-SHA-512/PLAIN at the others.
      # xa: FULL_XA commit/rollback + XAResource.recover (FETCH_TX_RECOVERY) at these versions.
      # near: near cache with bloom filter (ADD_BLOOM_FILTER_NEAR_CACHE_LISTENER, UPDATE_BLOOM_FILTER).
      # Not at 3.0: the 15.0 client refuses the bloom filter below 3.1; 16.0 sends 0x41 at 3.0 but
      # the reference server never answers it there.
      if [ "$r" = c16 ]; then
        versions=AUTO,3.0,3.1,4.0,4.1; basic=AUTO,3.1; auth=AUTO,3.0; authfull=AUTO,3.0
        xa=AUTO,4.1; near=AUTO,3.1,4.1; newest=4.1
      else
        versions=AUTO,2.0,2.1,2.2,2.3,2.4,2.5,2.6,2.7,2.8,2.9,3.0,3.1,4.0; basic=AUTO,2.9
        auth=AUTO,2.0,2.1,2.2,2.3,2.4,2.5,2.6,2.7,2.9; authfull=AUTO,2.9
        xa=AUTO,2.7,2.8,2.9,3.0,3.1,4.0; newest=4.0
        if [ "$r" = c15 ]; then near=AUTO,3.1,4.0; else near=AUTO,4.0; fi
      fi
      cmd=(java -cp "$HERE/java/target/$r/classes:$cp" org.ironrod.capture.Driver --host "$HOST"
           --port "$PROXY_PORT" --auth-port "$PROXY_AUTH_PORT" --control "$CONTROL_PORT"
           --versions "$versions" --basic-versions "$basic" --auth-versions "$auth"
           --auth-full-versions "$authfull" --xa-versions "$xa" --near-versions "$near"
           --newest "$newest") ;;
  esac
  log "=== $name"
  start_server "$OUT/$name.server.log"
  start_proxy "$OUT/$name.jsonl" "$(server_label)"
  local rc=0
  timeout "$DRIVER_TIMEOUT" "${cmd[@]}" >"$OUT/$name.results.txt" 2>"$OUT/$name.driver.log" || rc=$?
  [ $rc -eq 0 ] || log "$name driver exited with $rc (see $OUT/$name.driver.log)"
  stop_proxy
  stop_pid "$SERVER_PID"; SERVER_PID=""
  rm -rf "$STATE_DIR"; STATE_DIR=""
  log "$name: $(tail -1 "$OUT/$name.results.txt" 2>/dev/null) -> $(wc -c <"$OUT/$name.jsonl") bytes"
}

build
for r in "${RUNS[@]}"; do run_client "$r"; done
log "done; captures in $OUT"
ls -l "$OUT"/*.jsonl >&2
