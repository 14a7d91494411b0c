#!/usr/bin/env bash
# Benchmarks on this machine; figures are medians of RUNS runs. Talks only to 127.0.0.1.
# Today: native durable send at 1/16/64/256 clients, and the disk's own fsync rate for comparison.
# (Issue 6 adds refresh latency, idle-connection memory, SMTP against Postfix and the crash test.)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
MESSAGES=${MESSAGES:-20000}
cargo build --release --quiet
JMAIL=$PWD/target/release/jmail
WORK=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "== disk: fsync of a 4 KiB append (python loop, 2000 iterations)"
fsyncs=$(for _ in $(seq "$RUNS"); do
  python3 - "$WORK/fsync.dat" <<'PY'
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
block = b"x" * 4096
n = 2000
t0 = time.perf_counter()
for _ in range(n):
    os.write(fd, block)
    os.fsync(fd)
print(round(n / (time.perf_counter() - t0)))
PY
done | median)
echo "fsyncs/s (median of $RUNS): $fsyncs"

echo "== native durable send, 1 KiB messages, connections reused"
JMAIL_PORT=0 "$JMAIL" serve --bind 127.0.0.1 --data-dir "$WORK/data" --log-level info 2>"$WORK/log" &
SERVER=$!
for _ in $(seq 100); do grep -q "jmail ready" "$WORK/log" 2>/dev/null && break; sleep 0.1; done
ADDR=$(grep -o 'native on [0-9.:]*' "$WORK/log" | cut -d' ' -f3 | tr -d ';')
"$JMAIL" bench --server "$ADDR" --setup-users --data-dir "$WORK/data" --users 64 --clients 1 --messages 10 >/dev/null
for clients in 1 16 64 256; do
  msgs=$MESSAGES
  [ "$clients" = 1 ] && msgs=$((MESSAGES / 4))
  results=$(for _ in $(seq "$RUNS"); do
    "$JMAIL" bench --server "$ADDR" --users 64 --clients "$clients" --messages "$msgs" --reuse-connections --json
  done)
  rate=$(echo "$results" | python3 -c 'import sys,json; [print(json.loads(l)["messages_per_sec"]) for l in sys.stdin]' | median)
  p50=$(echo "$results" | python3 -c 'import sys,json; [print(json.loads(l)["latency_ms"]["p50"]) for l in sys.stdin]' | median)
  p99=$(echo "$results" | python3 -c 'import sys,json; [print(json.loads(l)["latency_ms"]["p99"]) for l in sys.stdin]' | median)
  errors=$(echo "$results" | python3 -c 'import sys,json; print(sum(json.loads(l)["errors"] for l in sys.stdin))')
  printf '%4d clients: %8.0f messages/s (%.1fx the fsync rate)  p50 %.3f ms  p99 %.3f ms  errors %d\n' \
    "$clients" "$rate" "$(python3 -c "print($rate / $fsyncs)")" "$p50" "$p99" "$errors"
done
