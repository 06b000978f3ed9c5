#!/usr/bin/env bash
# Two Ironrod sites on this machine: SYNC replication, failover when a site dies, and getting it
# back with bring-online + a state push. Needs curl; builds ironrod if IRONROD_BIN is not set.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${IRONROD_BIN:-}"
if [ -z "$bin" ]; then
  cargo build --release -p ironrod-server --manifest-path "$here/../../Cargo.toml" >&2
  bin="$here/../../target/release/ironrod"
fi
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

start() { # start SITE: runs siteN.toml, logs to $work/SITE.log
  "$bin" -c "$here/$1.toml" >"$work/$1.log" 2>&1 &
  pids+=($!)
  eval "pid_$1=$!"
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$2/rest/v2/container/health/status" >/dev/null && return; sleep 0.1; done
  echo "$1 did not start"; cat "$work/$1.log"; exit 1
}
s1=http://127.0.0.1:11222/rest/v2
s2=http://127.0.0.1:11322/rest/v2
site1() { "$bin" site "$@" --server 127.0.0.1:11222; }

start site1 11222
start site2 11322
sleep 1
echo "== sites view of site1: $(curl -s $s1/container | grep -o '"sites_view":[^]]*]')"

echo "== SYNC write on site1, read on site2"
curl -s -X PUT --data "alice's session" $s1/caches/sessions/s-1
echo "site2 sessions/s-1 = $(curl -s $s2/caches/sessions/s-1)"

echo "== ASYNC write on site2, read on site1 (shortly after)"
curl -s -X PUT --data "some work" $s2/caches/work/w-1
sleep 0.5
echo "site1 work/w-1 = $(curl -s $s1/caches/work/w-1)"

echo "== site2 dies: SYNC + FAIL writes fail..."
kill "$pid_site2"; sleep 0.5
curl -s -X PUT --data x $s1/caches/sessions/s-2 || true
echo "== ...until the operator takes site2 offline (or take_offline does it after 3 failures over 10 s)"
site1 take-offline --cache sessions --site site2
curl -s -o /dev/null -w "PUT sessions/s-2 -> %{http_code}\n" -X PUT --data "written while site2 was down" $s1/caches/sessions/s-2
site1 status --all-caches

echo "== site2 is back (empty): bring it online and push site1's state"
start site2 11322
sleep 1
site1 bring-online --cache sessions --site site2
site1 push-site-state --cache sessions --site site2
sleep 1
site1 push-site-status --cache sessions
echo "site2 sessions/s-1 = $(curl -s $s2/caches/sessions/s-1)"
echo "site2 sessions/s-2 = $(curl -s $s2/caches/sessions/s-2)"
