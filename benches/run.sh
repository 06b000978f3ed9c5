#!/usr/bin/env bash
# Ironrod's throughput, latency, memory and start-up benchmarks, in one run.
#
#   benches/run.sh            # the full run: 24 load runs of ~12 s, about 6 minutes
#   DURATION=3s WARMUP=1s FILL_COUNT=100000 benches/run.sh   # a quick look
#
# Ironrod, the Hot Rod echo responder (`loadgen echo`: the loopback bound) and redis-server
# (persistence off) run side by side, each pinned to CPU $SERVER_CPU; the load generator runs on
# CPU $CLIENT_CPU. Every workload runs against the three servers back to back, so a change in
# the machine's background load hits them alike. Only loopback addresses are used.
#
# Prints a Markdown report (also written to $OUT/report.md, with the raw JSON lines in
# $OUT/results.jsonl). Needs redis-server on PATH (Debian: apt-get install -y redis-server).
set -euo pipefail

cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNECTIONS=${CONNECTIONS:-50}
KEYS=${KEYS:-10000}
PIPELINES=${PIPELINES:-"1 16"}
SIZES=${SIZES:-"100 1024"}
RATIOS=${RATIOS:-"1.0 0.0"}
FILL_COUNT=${FILL_COUNT:-1000000}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PORT=${PORT:-31222}
OUT=${OUT:-target/bench}

IRONROD=target/release/ironrod
LOADGEN=target/release/loadgen
HOST=127.0.0.1
IRONROD_PORT=$PORT
ECHO_PORT=$((PORT + 1))      # one echo responder per value size: ECHO_PORT + index of the size
REDIS_PORT=$((PORT + 10))
FILL_PORT=$((PORT + 11))
STARTUP_PORT=$((PORT + 12))

log() { echo "run.sh: $*" >&2; }
die() { log "$*"; exit 1; }

command -v redis-server >/dev/null || die "redis-server not found (apt-get install -y redis-server)"
command -v taskset >/dev/null || die "taskset not found (util-linux)"

log "building release binaries"
cargo build --release --quiet -p ironrod-server -p ironrod-loadgen

mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
REPORT=$OUT/report.md
: >"$RESULTS"

PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

wait_port() {
    local i
    for i in $(seq 1 200); do
        port_open "$1" && return 0
        sleep 0.05
    done
    die "nothing accepts connections on $HOST:$1"
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# What else is using the machine: load average and the busiest other processes.
machine_load() {
    echo "- \`uptime\`: $(uptime | sed 's/^ *//')"
    echo "- busiest other processes (%CPU, command):"
    ps -eo pid=,pcpu=,comm= --sort=-pcpu |
        awk -v self=$$ '$1 != self && $3 !~ /^(ps|awk|head|run\.sh|loadgen|ironrod|redis-server)$/' |
        head -n 4 | awk '{ printf "  - %s%% %s (pid %s)\n", $2, $3, $1 }'
}

for p in "$IRONROD_PORT" "$REDIS_PORT" "$FILL_PORT" "$STARTUP_PORT"; do
    port_open "$p" && die "port $p is already in use (set PORT=...)"
done

# --- servers -------------------------------------------------------------------------------
log "starting ironrod, the echo responders and redis-server on CPU $SERVER_CPU"
taskset -c "$SERVER_CPU" "$IRONROD" --bind "$HOST:$IRONROD_PORT" --log warn &
IRONROD_PID=$!
PIDS+=("$IRONROD_PID")
declare -A ECHO_PIDS ECHO_PORTS
i=0
for size in $SIZES; do
    port=$((ECHO_PORT + i))
    port_open "$port" && die "port $port is already in use (set PORT=...)"
    taskset -c "$SERVER_CPU" "$LOADGEN" echo --bind "$HOST:$port" --value-size "$size" 2>/dev/null &
    ECHO_PIDS[$size]=$!
    ECHO_PORTS[$size]=$port
    PIDS+=("$!")
    i=$((i + 1))
done
taskset -c "$SERVER_CPU" redis-server --bind "$HOST" --port "$REDIS_PORT" --save "" \
    --appendonly no --daemonize no --loglevel warning --logfile "" >/dev/null &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
wait_port "$IRONROD_PORT"
for size in $SIZES; do wait_port "${ECHO_PORTS[$size]}"; done
wait_port "$REDIS_PORT"

LOAD_BEFORE=$(machine_load)

# --- throughput and latency ----------------------------------------------------------------
run_load() { # server protocol port pid size pipeline ratio
    local server=$1 protocol=$2 port=$3 pid=$4 size=$5 pipeline=$6 ratio=$7 line
    line=$(taskset -c "$CLIENT_CPU" "$LOADGEN" "$protocol" --addr "$HOST:$port" \
        --connections "$CONNECTIONS" --pipeline "$pipeline" --get-ratio "$ratio" \
        --keys "$KEYS" --value-size "$size" --duration "$DURATION" --warmup "$WARMUP" \
        --label "$server" --server-pid "$pid") || die "loadgen failed against $server"
    echo "$line" | grep '^{' >>"$RESULTS"
    echo "$line" | grep '^|' >&2
}

for size in $SIZES; do
    for pipeline in $PIPELINES; do
        for ratio in $RATIOS; do
            run_load ironrod hotrod "$IRONROD_PORT" "$IRONROD_PID" "$size" "$pipeline" "$ratio"
            run_load echo hotrod "${ECHO_PORTS[$size]}" "${ECHO_PIDS[$size]}" "$size" "$pipeline" "$ratio"
            run_load redis resp "$REDIS_PORT" "$REDIS_PID" "$size" "$pipeline" "$ratio"
        done
    done
done

LOAD_AFTER=$(machine_load)
cleanup
PIDS=()

# --- memory per entry ----------------------------------------------------------------------
log "memory: filling a fresh ironrod with $FILL_COUNT entries (16 B keys, 100 B values)"
taskset -c "$SERVER_CPU" "$IRONROD" --bind "$HOST:$FILL_PORT" --log warn &
FILL_PID=$!
PIDS+=("$FILL_PID")
wait_port "$FILL_PORT"
sleep 0.5
RSS_BEFORE=$(rss_kib "$FILL_PID")
FILL_LINE=$(taskset -c "$CLIENT_CPU" "$LOADGEN" fill --addr "$HOST:$FILL_PORT" \
    --count "$FILL_COUNT" --key-size 16 --value-size 100)
sleep 0.5
RSS_AFTER=$(rss_kib "$FILL_PID")
cleanup
PIDS=()
OVERHEAD=$(awk -v a="$RSS_BEFORE" -v b="$RSS_AFTER" -v n="$FILL_COUNT" \
    'BEGIN { printf "%.1f", (b - a) * 1024 / n - (16 + 100) }')
FILL_RATE=$(echo "$FILL_LINE" | sed -n 's/.*"ops_per_s":\([0-9.]*\).*/\1/p' | awk '{ printf "%.0f", $1 }')

# --- start-up time and idle memory ---------------------------------------------------------
log "start-up: 5 starts of ironrod"
STARTUP_LINE=$(taskset -c "$CLIENT_CPU" "$LOADGEN" startup --addr "$HOST:$STARTUP_PORT" \
    --runs 5 --idle 1s -- taskset -c "$SERVER_CPU" "$IRONROD" --bind "$HOST:$STARTUP_PORT")
json_field() { echo "$STARTUP_LINE" | sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }
STARTUP_MS=$(json_field startup_ms_median | awk '{ printf "%.1f", $1 }')
STARTUP_MIN=$(json_field startup_ms_min | awk '{ printf "%.1f", $1 }')
STARTUP_MAX=$(json_field startup_ms_max | awk '{ printf "%.1f", $1 }')
IDLE_KIB=$(json_field idle_rss_kib_median)
IDLE_MB=$(awk -v k="$IDLE_KIB" 'BEGIN { printf "%.1f", k * 1024 / 1e6 }')

LOAD_END=$(machine_load)

met() { awk -v v="$1" -v t="$3" -v op="$2" 'BEGIN {
    ok = (op == "<=") ? v <= t : v < t; print ok ? "yes" : "**no**" }'; }

# --- report --------------------------------------------------------------------------------
{
    echo "# Ironrod benchmarks"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')" \
        "$(git diff --quiet HEAD 2>/dev/null || echo '(with local changes)'), $(nproc) CPUs:" \
        "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)."
    echo "Servers on CPU $SERVER_CPU, load generator on CPU $CLIENT_CPU; $CONNECTIONS connections," \
        "$KEYS keys of 16 B, $WARMUP warm-up + $DURATION measured per row;" \
        "redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') with persistence off."
    echo "Latencies from send to answer, per request; CPU is the share of one CPU each process used."
    echo
    echo "Machine load before the load runs:"
    echo
    echo "$LOAD_BEFORE"
    echo
    echo "and after them:"
    echo
    echo "$LOAD_AFTER"
    echo
    echo "and after the memory and start-up measurements:"
    echo
    echo "$LOAD_END"
    echo
    "$LOADGEN" report "$RESULTS"
    echo
    echo "| measurement | value | target | met |"
    echo "|---|---:|---|---|"
    echo "| memory overhead per entry ($FILL_COUNT × 16 B key + 100 B value; RSS $RSS_BEFORE → $RSS_AFTER KiB, fill at $FILL_RATE ops/s) | $OVERHEAD B | ≤ 64 B | $(met "$OVERHEAD" "<=" 64) |"
    echo "| start to accepting connections (median of 5; min $STARTUP_MIN, max $STARTUP_MAX) | $STARTUP_MS ms | < 50 ms | $(met "$STARTUP_MS" "<" 50) |"
    echo "| idle RSS 1 s after start (median of 5) | $IDLE_MB MB | < 20 MB | $(met "$IDLE_MB" "<" 20) |"
} | tee "$REPORT"
