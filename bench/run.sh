#!/usr/bin/env bash
# Benchmarks on this machine (docs/benchmarks.md). Every figure is a median of RUNS runs; the Postfix
# comparison runs Postfix and Jmail in the same go and prints the ratio. Talks only to 127.0.0.0/8.
#   RUNS=3 MESSAGES=20000 SMTP_MESSAGES=5000 IMAP_ROUNDS=3000 IDLE_SESSIONS=10000 \
#     QUEUE_MESSAGES=5000 JMAP_SECONDS=5 GROWTH_ROUNDS=5 \
#     SECTIONS="fsync native growth bulk refresh idle smtp imap jmap queue postgres" bench/run.sh
# The smtp section installs Debian's postfix when missing and sets every parameter the comparison needs;
# the imap section installs Debian's dovecot-imapd and runs its own instance on loopback.
# A wait that runs out or a count that falls short prints "FAILED: ..." and exits non-zero, never a figure.
set -euo pipefail
# A failing command inside $(...) stops the script too, instead of feeding a partial result to median.
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
MESSAGES=${MESSAGES:-20000}
SMTP_MESSAGES=${SMTP_MESSAGES:-5000}
IMAP_ROUNDS=${IMAP_ROUNDS:-3000}
IDLE_SESSIONS=${IDLE_SESSIONS:-10000}
QUEUE_MESSAGES=${QUEUE_MESSAGES:-5000}
SECTIONS=${SECTIONS:-"fsync native growth bulk refresh idle smtp imap jmap queue postgres"}
JMAP_SECONDS=${JMAP_SECONDS:-5}
GROWTH_ROUNDS=${GROWTH_ROUNDS:-5}
PG_SESSIONS=${PG_SESSIONS:-1000}
PG_DIR=
cargo build --release --quiet
JMAIL=$PWD/target/release/jmail
WORK=$(mktemp -d)
SERVER=
POSTFIX_UP=
DOVECOT_CONF=
SINK=
cleanup() {
  local rc=$?
  stop_jmail
  [ -z "$SINK" ] || kill "$SINK" 2>/dev/null || true
  [ -z "$POSTFIX_UP" ] || postfix stop >/dev/null 2>&1 || true
  [ -z "$DOVECOT_CONF" ] || doveadm -c "$DOVECOT_CONF" stop >/dev/null 2>&1 || true
  [ -z "$PG_DIR" ] || scripts/throwaway-postgres stop "$PG_DIR" >/dev/null 2>&1 || true
  for pid in ${NODES:-}; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$WORK" ${SHM:+"$SHM"}
  [ "$rc" = 0 ] || echo "FAILED: bench/run.sh stopped (exit $rc); no figures after this point" >&2
}
trap cleanup EXIT

# fail MESSAGE: one FAILED line on stderr and a non-zero exit (inside $(...) it ends the subshell, whose
# status then stops the script through set -e and pipefail).
fail() { echo "FAILED: $*" >&2; exit 1; }

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# field PATH: one value per JSON line on stdin (PATH like latency_ms.p99).
field() { python3 -c 'import sys,json
for l in sys.stdin:
    v = json.loads(l)
    for k in sys.argv[1].split("."): v = v[k]
    print(v)' "$1"; }
want() { [[ " $SECTIONS " == *" $1 "* ]]; }
# start_postfix: the system's Postfix, as configured by the section, started and greeting on port 25.
start_postfix() {
  postfix start >/dev/null 2>&1 || { tail -n 5 /var/log/postfix.log >&2 2>/dev/null || true; fail "postfix did not start"; }
  POSTFIX_UP=1
  for _ in $(seq 100); do
    python3 -c 'import socket; s = socket.create_connection(("127.0.0.1", 25), 1); assert s.recv(4) == b"220 "' \
      2>/dev/null && break
    sleep 0.1
  done
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_jmail DATA_DIR [serve flags...]: starts a release server on 127.0.0.1; sets SERVER and ADDR.
start_jmail() {
  local data=$1; shift
  # Every listener but the native one is off unless the caller names it (25, 110, 465 ... may be taken).
  local off=() flag
  for flag in --smtp-port --submission-port --pop3-port --submissions-port --pop3s-port --native-tls-port \
    --imap-port --imaps-port --https-port --http-port; do
    [[ " $* " == *" $flag "* ]] || off+=("$flag" 0)
  done
  JMAIL_PORT=0 "$JMAIL" serve --bind 127.0.0.1 "${off[@]}" --data-dir "$data" --log-level info "$@" \
    >/dev/null 2>"$WORK/log" &
  SERVER=$!
  for _ in $(seq 200); do grep -q "jmail ready" "$WORK/log" 2>/dev/null && break; sleep 0.1; done
  grep -q "jmail ready" "$WORK/log" || { cat "$WORK/log" >&2; fail "jmail serve was not ready within 20 s"; }
  ADDR=$(grep -o 'native on [0-9.:]*' "$WORK/log" | cut -d' ' -f3 | tr -d ';,' || true)
  [ -n "$ADDR" ] || { cat "$WORK/log" >&2; fail "no native address in jmail's ready line"; }
  RSS_START=$(rss_kib "$SERVER")
}
# Stops the server, first printing its RSS at start and now (a second after the load), on stderr so that
# figures captured for a median stay clean: memory a load leaves behind shows here.
stop_jmail() {
  if [ -n "$SERVER" ] && [ -e "/proc/$SERVER/status" ]; then
    sleep 1
    echo "   server RSS: $((RSS_START / 1024)) MiB at start, $(($(rss_kib "$SERVER") / 1024)) MiB after the load" >&2
  fi
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
  SERVER=
  true
}
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

fsyncs=
if want fsync || want native; then
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
fi

if want native; then
  echo "== native durable send, 1 KiB messages, connections reused"
  start_jmail "$WORK/native"
  "$JMAIL" bench --server "$ADDR" --setup-users --data-dir "$WORK/native" --users 64 --clients 1 --messages 10 >/dev/null
  for clients in 1 16 64 256; do
    msgs=$MESSAGES
    [ "$clients" = 1 ] && msgs=$((MESSAGES / 4))
    results=$(for _ in $(seq "$RUNS"); do
      "$JMAIL" bench --server "$ADDR" --users 64 --clients "$clients" --messages "$msgs" --reuse-connections --json
    done)
    rate=$(echo "$results" | field messages_per_sec | median)
    p50=$(echo "$results" | field latency_ms.p50 | median)
    p99=$(echo "$results" | field latency_ms.p99 | median)
    errors=$(echo "$results" | field errors | awk '{s+=$1} END {print s}')
    printf '%4d clients: %8.0f messages/s (%.1fx the fsync rate)  p50 %.3f ms  p99 %.3f ms  errors %d\n' \
      "$clients" "$rate" "$(python3 -c "print($rate / $fsyncs)")" "$p50" "$p99" "$errors"
  done
  stop_jmail
  # The same build with its data on tmpfs, where an fsync costs nothing: the machine's limit without
  # durability. Group commit should bring the durable figure close to it. Both stores start empty, take
  # one uncounted warm-up run (a running server reuses its WAL's blocks; a new one first grows the file,
  # and each flush then also commits the file's new size), and grow alike; the runs alternate (disk,
  # tmpfs, disk, ...) so that this machine's drift from minute to minute falls on both sides; the ratio is
  # the median of each pair's.
  echo "== durable against tmpfs (/dev/shm), 64 clients, stores warmed alike, runs alternating"
  shm=$(mktemp -d /dev/shm/jmail-bench.XXXXXX)
  pairs=$(for _ in $(seq "$RUNS"); do
    for where in "$WORK/paired" "$shm/paired"; do
      fresh=; [ -d "$where" ] || fresh=1
      start_jmail "$where"
      if [ -n "$fresh" ]; then
        "$JMAIL" bench --server "$ADDR" --setup-users --data-dir "$where" --users 64 --clients 1 --messages 10 >/dev/null
        "$JMAIL" bench --server "$ADDR" --users 64 --clients 64 --messages "$MESSAGES" --reuse-connections >/dev/null
      fi
      "$JMAIL" bench --server "$ADDR" --users 64 --clients 64 --messages "$MESSAGES" --reuse-connections --json \
        | field messages_per_sec | tr '\n' ' '
      stop_jmail
    done
    echo
  done)
  rm -rf "$shm"
  disk_rate=$(echo "$pairs" | awk '{print $1}' | median)
  tmpfs_rate=$(echo "$pairs" | awk '{print $2}' | median)
  ratio=$(echo "$pairs" | awk '{print 100 * $1 / $2}' | median)
  printf '  64 clients: disk %8.0f, tmpfs %8.0f messages/s (medians); durable is %.0f%% of tmpfs (median of %d pairs)\n' \
    "$disk_rate" "$tmpfs_rate" "$ratio" "$RUNS"
fi

if want growth; then
  # Cost must not grow with the store: five rounds of 10,000 sends at 64 clients into one store, on disk
  # and on tmpfs; the last round against the first. A round lasts about half a second here, so one series
  # swings by more than the 10% it is judged by: RUNS series, each on a fresh store, and their medians.
  for where in disk tmpfs; do
    echo "== growth ($where): $GROWTH_ROUNDS rounds of 10,000 native sends at 64 clients into the same store, $RUNS series"
    ratios=()
    rounds=()
    for series in $(seq "$RUNS"); do
      if [ "$where" = disk ]; then base=$WORK/growth-$series; else base=$(mktemp -d /dev/shm/jmail-growth.XXXXXX); fi
      start_jmail "$base/data"
      "$JMAIL" bench --server "$ADDR" --setup-users --data-dir "$base/data" --users 64 --clients 1 --messages 10 >/dev/null
      rates=()
      for _ in $(seq "$GROWTH_ROUNDS"); do
        rates+=("$("$JMAIL" bench --server "$ADDR" --users 64 --clients 64 --messages 10000 --reuse-connections \
          --json | field messages_per_sec)")
      done
      stop_jmail
      rm -rf "$base"
      printf '  series %d: %s messages/s; the last is %.0f%% of the first\n' "$series" \
        "$(printf '%.0f ' "${rates[@]}")" "$(python3 -c "print(100 * ${rates[-1]} / ${rates[0]})")"
      ratios+=("$(python3 -c "print(100 * ${rates[-1]} / ${rates[0]})")")
      rounds+=("${rates[*]}")
    done
    printf '  median of each round: %s messages/s; median of the series: the last is %.0f%% of the first\n' \
      "$(printf '%s\n' "${rounds[@]}" | python3 -c '
import statistics, sys
rows = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
print(" ".join("%.0f" % statistics.median(col) for col in zip(*rows)))')" \
      "$(printf '%s\n' "${ratios[@]}" | median)"
  done
fi

if want bulk; then
  echo "== set operations on 10,000 messages, one store call each (jmail bench --store-ops)"
  results=$(for _ in $(seq "$RUNS"); do
    "$JMAIL" bench --store-ops 10000 --data-dir "$WORK/bulk" --json
  done)
  printf '  flag %.0f ms, copy %.0f ms, move %.0f ms, expunge %.0f ms (medians of %d)\n' \
    "$(echo "$results" | field flag_ms | median)" "$(echo "$results" | field copy_ms | median)" \
    "$(echo "$results" | field move_ms | median)" "$(echo "$results" | field expunge_ms | median)" "$RUNS"
fi

if want refresh; then
  echo "== refresh with nothing new (LIST <current modseq>), one client, mailboxes of 1,000 and 100,000"
  for size in 1000 100000; do
    data="$WORK/refresh-$size"
    echo pw | "$JMAIL" user add bench0 --password-stdin --data-dir "$data" >/dev/null
    python3 - "$WORK/box-$size.mbox" "$size" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        f.write(f"From sender@example.org Mon Nov 30 12:00:00 2026\nFrom: sender@example.org\n"
                f"To: bench0@localhost\nSubject: message {i}\nMessage-ID: <{i}@bench>\n\n{'x' * 200}\n\n")
PY
    "$JMAIL" import --user bench0 --format mbox "$WORK/box-$size.mbox" --data-dir "$data" >/dev/null
    start_jmail "$data"
    results=$(for _ in $(seq "$RUNS"); do
      "$JMAIL" bench --server "$ADDR" --users 1 --user-prefix bench --password pw --clients 1 \
        --messages 20000 --refresh --json
    done)
    printf '%7d messages: p50 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  %8.0f refreshes/s  errors %d\n' "$size" \
      "$(echo "$results" | field latency_ms.p50 | median)" "$(echo "$results" | field latency_ms.p99 | median)" \
      "$(echo "$results" | field latency_ms.p99_9 | median)" "$(echo "$results" | field messages_per_sec | median)" \
      "$(echo "$results" | field errors | awk '{s+=$1} END {print s}')"
    stop_jmail
  done
fi

if want idle; then
  # Every process here, server and holder alike, is held to the hard open-file limit (ulimit -Hn), which
  # root cannot raise in this container; connection counts above it cannot be measured.
  limit=$(ulimit -Hn)
  echo "== idle connections: server RSS per handshaken connection (open-file hard limit $limit)"
  cat >"$WORK/idle.toml" <<TOML
[limits]
connections_per_ip_max = 60000
TOML
  for n in 10000 50000; do
    # The server keeps 256 descriptors for its files and listeners (src/server/fd_limit.rs) and caps
    # connections at the rest; stay under that cap.
    if [ "$n" -ge $((limit - 400)) ]; then
      n_run=$((limit - 400))
      echo "$n connections: not possible here (hard open-file limit $limit); measuring $n_run instead"
    else
      n_run=$n
    fi
    per=$(for _ in $(seq "$RUNS"); do
      start_jmail "$WORK/idle" --config "$WORK/idle.toml"
      before=$(rss_kib "$SERVER")
      mkfifo "$WORK/hold.in"
      python3 bench/hold.py 127.0.0.1 "${ADDR##*:}" "$n_run" <"$WORK/hold.in" >"$WORK/hold.out" &
      holder=$!
      exec 9>"$WORK/hold.in"
      for _ in $(seq 1200); do grep -q ready "$WORK/hold.out" 2>/dev/null && break; sleep 0.1; done
      count=$(awk '/ready/ {print $2}' "$WORK/hold.out")
      [ "$count" = "$n_run" ] || fail "the holder had ${count:-no} connections of $n_run after 120 s"
      after=$(rss_kib "$SERVER")
      python3 -c "print(round(($after - $before) / $count, 2))"
      exec 9>&-
      wait "$holder" 2>/dev/null || true
      rm -f "$WORK/hold.in"
      stop_jmail
    done | median)
    echo "$n_run connections: $per KiB server RSS each (median of $RUNS)"
  done
fi

if want smtp; then
  echo "== SMTP ingest: Postfix (Local only, Maildir) against Jmail, both driven by smtp-source,"
  echo "   $SMTP_MESSAGES messages of 1 KiB, 20 sessions; a message counts once durably in the mailbox"
  if ! command -v smtp-source >/dev/null || ! command -v postconf >/dev/null; then
    echo "postfix postfix/main_mailer_type select Local only" | debconf-set-selections
    echo "postfix postfix/mailname string localhost" | debconf-set-selections
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix >/dev/null
  fi
  PF_WAIT=${PF_WAIT:-300}
  PF_LOG=/var/log/postfix.log
  # Everything delivery depends on is set here, whatever Debian's postinst chose: with procmail installed
  # it sets mailbox_command, which local(8) prefers to home_mailbox.
  postconf -e myhostname=localhost mydestination=localhost inet_interfaces=loopback-only inet_protocols=ipv4 \
    mynetworks=127.0.0.0/8 relay_domains= relayhost= \
    'smtpd_relay_restrictions=permit_mynetworks, reject_unauth_destination' smtpd_recipient_restrictions= \
    alias_maps=hash:/etc/aliases alias_database=hash:/etc/aliases \
    'local_recipient_maps=proxy:unix:passwd.byname $alias_maps' \
    'local_transport=local:$myhostname' mailbox_transport= mailbox_transport_maps= \
    mailbox_command= mailbox_command_maps= home_mailbox=Maildir/ \
    forward_path= luser_relay= fallback_transport= virtual_alias_maps= virtual_alias_domains= \
    virtual_mailbox_domains= defer_transports= master_service_disable= soft_bounce=no biff=no \
    local_destination_concurrency_limit=2 local_destination_recipient_limit=1 default_process_limit=100 \
    in_flow_delay=1s message_size_limit=10240000 smtpd_client_connection_count_limit=50 \
    smtpd_client_connection_rate_limit=0 smtpd_client_message_rate_limit=0 \
    smtpd_client_event_limit_exceptions=127.0.0.0/8 maillog_file=$PF_LOG
  newaliases
  id bench >/dev/null 2>&1 || useradd -m -s /usr/sbin/nologin bench
  home=$(getent passwd bench | cut -d: -f6)
  maildir=$home/Maildir
  # local(8) writes as the recipient: the Maildir must be the bench user's, not root's.
  install -d -o bench -g bench -m 700 "$home" "$maildir" "$maildir/new" "$maildir/cur" "$maildir/tmp"
  pf_fail() { tail -n 5 "$PF_LOG" >&2 2>/dev/null || true; fail "$@"; }
  delivered() { find "$maildir/new" -type f | wc -l; }
  # wait_delivered N SECONDS: true once N messages are in Maildir/new, false when SECONDS run out first.
  wait_delivered() {
    local deadline=$(($(date +%s) + $2))
    while [ "$(delivered)" -lt "$1" ]; do
      [ "$(date +%s)" -lt "$deadline" ] || return 1
      sleep 0.05
    done
  }
  clear_maildir() { find "$maildir/new" "$maildir/cur" "$maildir/tmp" -type f -delete; }
  postfix check || fail "postfix check found problems (above)"
  postfix stop >/dev/null 2>&1 || true
  for _ in $(seq 100); do postfix status >/dev/null 2>&1 || break; sleep 0.1; done
  postsuper -d ALL >/dev/null 2>&1 || true # mail queued by an earlier run would count in this one
  start_postfix
  # One message first: a setup that cannot deliver fails here within 30 s, not after the timed wait.
  clear_maildir
  smtp-source -m 1 -l 1024 -f src@localhost -t bench@localhost 127.0.0.1:25 \
    || pf_fail "smtp-source could not send a test message to Postfix on 127.0.0.1:25"
  wait_delivered 1 30 || pf_fail "Postfix did not deliver a test message to $maildir/new within 30 s"
  # Jmail twice: its data on disk, and the same build with its data on tmpfs (/dev/shm), where a flush
  # costs nothing: the machine's limit for this load with storage but without durability.
  SHM=$(mktemp -d /dev/shm/jmail-bench.XXXXXX)
  for data in "$WORK/smtp" "$SHM/smtp"; do
    echo pw | "$JMAIL" user add bench --password-stdin --data-dir "$data" >/dev/null
  done
  smtp_port=$(free_port)
  # smtp-source is one sender with 20 sessions on one address, like a local relay: let it have every DATA
  # slot (Postfix's side exempts loopback from its per-client limits the same way, mynetworks). Postfix
  # here checks no SPF/DKIM/DMARC, so neither does Jmail (those cost DNS lookups, which a benchmark on
  # loopback cannot make).
  printf 'inbound_auth_checks = false\n[limits]\nsmtp_data_unauth_per_ip_max = 64\n' >"$WORK/smtp.toml"
  sink_port=$(free_port)
  smtp-sink -u nobody "127.0.0.1:$sink_port" 256 &
  SINK=$!
  stored() { "$JMAIL" user list --json --data-dir "$1" | python3 -c 'import sys,json; print(json.load(sys.stdin)[0]["messages"])'; }
  now() { date +%s.%N; }
  # jmail_rates DATA FLAG LABEL: a server on DATA, RUNS timed runs of smtp-source against it, the median
  # in $WORK/rate. Run in this shell, not in $(...), so a failure's cleanup sees the server to stop.
  jmail_rates() {
    start_jmail "$1" --smtp-port "$smtp_port" --config "$WORK/smtp.toml"
    for _ in $(seq "$RUNS"); do
      before=$(stored "$1")
      t0=$(now)
      smtp-source $2 -s 20 -m "$SMTP_MESSAGES" -l 1024 -f src@localhost -t bench@localhost "127.0.0.1:$smtp_port" \
        || fail "smtp-source against Jmail exited with an error ($3)"
      t1=$(now)
      got=$(($(stored "$1") - before))
      [ "$got" = "$SMTP_MESSAGES" ] || fail "Jmail stored $got of $SMTP_MESSAGES messages ($3)"
      python3 -c "print($SMTP_MESSAGES / ($t1 - $t0))"
    done >"$WORK/rates"
    median <"$WORK/rates" >"$WORK/rate"
    stop_jmail
  }
  for mode in "one connection per message:" "connections reused (-d):-d"; do
    label=${mode%%:*}; flag=${mode##*:}
    pf=$(for _ in $(seq "$RUNS"); do
      clear_maildir
      t0=$(now)
      smtp-source $flag -s 20 -m "$SMTP_MESSAGES" -l 1024 -f src@localhost -t bench@localhost 127.0.0.1:25 \
        || pf_fail "smtp-source against Postfix exited with an error ($label)"
      wait_delivered "$SMTP_MESSAGES" "$PF_WAIT" \
        || pf_fail "Postfix delivered $(delivered) of $SMTP_MESSAGES messages to $maildir/new within $PF_WAIT s ($label)"
      python3 -c "print($SMTP_MESSAGES / ($(now) - $t0))"
    done | median)
    jmail_rates "$WORK/smtp" "$flag" "$label"
    jm=$(cat "$WORK/rate")
    jmail_rates "$SHM/smtp" "$flag" "$label, tmpfs"
    jm_tmpfs=$(cat "$WORK/rate")
    printf '%-28s Postfix %7.0f messages/s   Jmail %7.0f messages/s   ratio %.1fx\n' "$label" "$pf" "$jm" \
      "$(python3 -c "print($jm / $pf)")"
    printf '%-28s Jmail with its data on tmpfs %7.0f messages/s: %.1fx Postfix; on disk it is %.0f%% of it\n' "" \
      "$jm_tmpfs" "$(python3 -c "print($jm_tmpfs / $pf)")" "$(python3 -c "print(100 * $jm / $jm_tmpfs)")"
    # The ceiling: the same load against Postfix's smtp-sink, one C process that speaks SMTP and throws
    # every message away (no storage, no fsync). What the machine's two cores can do for this load at all,
    # shared with smtp-source; Jmail's share of it says how much its storing costs.
    sink=$(for _ in $(seq "$RUNS"); do
      t0=$(now)
      smtp-source $flag -s 20 -m "$SMTP_MESSAGES" -l 1024 -f src@localhost -t bench@localhost "127.0.0.1:$sink_port" \
        || fail "smtp-source against smtp-sink exited with an error ($label)"
      python3 -c "print($SMTP_MESSAGES / ($(now) - $t0))"
    done | median)
    printf '%-28s smtp-sink (stores nothing) %7.0f messages/s: Jmail is %.0f%% of it, Postfix %.0f%%\n' "" "$sink" \
      "$(python3 -c "print(100 * $jm / $sink)")" "$(python3 -c "print(100 * $pf / $sink)")"
  done
  kill "$SINK" 2>/dev/null || true
  wait "$SINK" 2>/dev/null || true # its status is the signal's: not a failure
  SINK=
  rm -rf "$SHM"
  SHM=
  postfix stop >/dev/null 2>&1 || true
  POSTFIX_UP=
fi

if want queue; then
  echo "== Relaying: $QUEUE_MESSAGES messages of 1 KiB submitted over 16 reused connections, timed until the"
  echo "   destination (an SMTP sink of jmail bench's own on 127.0.0.9) has said 250 to every one. Postfix"
  echo "   relays from mynetworks to relayhost; Jmail from AUTH submission to relay_host, DKIM-signing each"
  echo "   message twice (Ed25519 and RSA-2048), which Postfix does not. Both reach the sink in clear."
  if ! command -v postconf >/dev/null; then
    echo "postfix postfix/main_mailer_type select Local only" | debconf-set-selections
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix >/dev/null
  fi
  free_port_on() { python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$1"; }
  PF_LOG=/var/log/postfix.log
  postfix stop >/dev/null 2>&1 || true
  for _ in $(seq 100); do postfix status >/dev/null 2>&1 || break; sleep 0.1; done
  postsuper -d ALL >/dev/null 2>&1 || true
  # checked_rate: messages/s relayed from one jmail bench JSON line: those the server took (and the sink
  # then received), over the time until the last arrived. A refused submission is counted out and told
  # on stderr (Postfix now and then drops one of 5,000 here); more than 1% refused is FAILED.
  checked_rate() { python3 -c 'import sys,json
r = json.loads(sys.stdin.read())
want = int(sys.argv[1])
if r["errors"] * 100 > want or r["messages"] + r["errors"] != want:
    sys.exit("FAILED: relaying sent %d of %d messages, %d errors" % (r["messages"], want, r["errors"]))
if r["errors"]:
    print("   (%d of %d submissions refused; the rate counts the %d relayed)" % (r["errors"], want, r["messages"]), file=sys.stderr)
print(r["messages_per_sec"])' "$QUEUE_MESSAGES"; }
  data="$WORK/queue"
  "$JMAIL" bench --setup-users --users 16 --messages 0 --clients 1 --data-dir "$data" >/dev/null
  pf=$(for _ in $(seq "$RUNS"); do
    sink=$(free_port_on 127.0.0.9)
    postconf -e myhostname=localhost mydestination=localhost inet_interfaces=loopback-only inet_protocols=ipv4 \
      mynetworks=127.0.0.0/8 "relayhost=[127.0.0.9]:$sink" smtp_tls_security_level=none \
      default_transport=smtp relay_transport=relay \
      'smtpd_relay_restrictions=permit_mynetworks, reject_unauth_destination' \
      smtpd_client_connection_count_limit=50 smtpd_client_connection_rate_limit=0 \
      smtpd_client_message_rate_limit=0 smtpd_client_event_limit_exceptions=127.0.0.0/8 \
      default_process_limit=100 in_flow_delay=1s maillog_file=$PF_LOG
    start_postfix
    "$JMAIL" bench --protocol smtp --server 127.0.0.1:25 --reuse-connections --clients 16 \
      --messages "$QUEUE_MESSAGES" --domain localhost --to-domain sink.test --sink "127.0.0.9:$sink" --json \
      | checked_rate
    postfix stop >/dev/null 2>&1 || true
    for _ in $(seq 100); do postfix status >/dev/null 2>&1 || break; sleep 0.1; done
    POSTFIX_UP=
  done | median)
  jm=$(for _ in $(seq "$RUNS"); do
    sink=$(free_port_on 127.0.0.9)
    submission=$(free_port_on 127.0.0.1)
    printf 'relay_host = "127.0.0.9:%s"\ninbound_auth_checks = false\n[limits]\noutbound_messages_per_hour_max = 0\noutbound_recipients_per_hour_max = 0\noutbound_connections_per_domain_max = 20\n' \
      "$sink" >"$WORK/queue.toml"
    start_jmail "$data" --submission-port "$submission" --config "$WORK/queue.toml"
    "$JMAIL" bench --protocol smtp --server "127.0.0.1:$submission" --auth --reuse-connections --clients 16 \
      --messages "$QUEUE_MESSAGES" --domain localhost --to-domain sink.test --sink "127.0.0.9:$sink" --json \
      | checked_rate
    stop_jmail
  done | median)
  printf 'relayed end to end          Postfix %7.0f messages/s   Jmail %7.0f messages/s   ratio %.2fx\n' "$pf" "$jm" \
    "$(python3 -c "print($jm / $pf)")"
fi

if want imap; then
  echo "== IMAP: Dovecot (Debian's dovecot-imapd, Maildir) against Jmail, the same users, passwords and mail"
  echo "   16 clients, each on its own INBOX of 100 messages; a round is: FETCH the newest 20 headers, FETCH"
  echo "   one message, STORE a flag, APPEND, UID STORE \\Deleted and UID EXPUNGE it (jmail bench --protocol imap)"
  if ! command -v dovecot >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dovecot-imapd >/dev/null
  fi
  data="$WORK/imap"
  imap_port=$(free_port)
  start_jmail "$data" --imap-port "$imap_port"
  "$JMAIL" bench --server "127.0.0.1:$imap_port" --protocol imap --setup-users --data-dir "$data" --users 16 \
    --clients 1 --messages 1 --fill 100 >/dev/null
  # Dovecot's users are Jmail's, with Jmail's own argon2id hashes ({ARGON2ID}, the same cost), so a login
  # costs the same on both sides.
  dv=$WORK/dovecot
  mkdir -p "$dv/run" "$dv/state" "$dv/mail"
  # Dovecot's auth process runs as its own user: it must reach the passwd file.
  chmod 711 "$WORK" "$dv"
  id dovebench >/dev/null 2>&1 || useradd -M -s /usr/sbin/nologin dovebench
  chown dovebench:dovebench "$dv/mail"
  python3 - "$data/jmail.db" >"$dv/passwd" <<'PY'
import sqlite3, sys
for name, hash in sqlite3.connect(sys.argv[1]).execute("SELECT name, password_hash FROM users ORDER BY name"):
    print(f"{name}:{{ARGON2ID}}{hash}::::::")
PY
  chmod 644 "$dv/passwd"
  dv_port=$(free_port)
  cat >"$dv/dovecot.conf" <<CONF
protocols = imap
listen = 127.0.0.1
base_dir = $dv/run
state_dir = $dv/state
log_path = $dv/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:$dv/mail/%u
first_valid_uid = 1
passdb {
  driver = passwd-file
  args = $dv/passwd
}
userdb {
  driver = static
  args = uid=dovebench gid=dovebench home=$dv/mail/%u
}
service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = $dv_port
  }
  inet_listener imaps {
    port = 0
  }
}
service anvil {
  chroot =
}
protocol imap {
  mail_max_userip_connections = 1000
}
CONF
  dovecot -c "$dv/dovecot.conf" || fail "dovecot did not start (see $dv/dovecot.log)"
  DOVECOT_CONF=$dv/dovecot.conf
  for _ in $(seq 100); do
    python3 -c "import socket; s = socket.create_connection(('127.0.0.1', $dv_port), 1); assert s.recv(4) == b'* OK'" \
      2>/dev/null && break
    sleep 0.1
  done
  # Both sides filled and checked once, untimed: a setup that cannot log in fails here, not after the runs.
  for port in "$dv_port" "$imap_port"; do
    check=$("$JMAIL" bench --server "127.0.0.1:$port" --protocol imap --users 16 --clients 16 --messages 16 \
      --fill 100 --json | field errors)
    [ "$check" = 0 ] || fail "$check IMAP rounds failed against 127.0.0.1:$port (Dovecot's log: $dv/dovecot.log)"
  done
  for mode in "sessions kept open:--reuse-connections:$IMAP_ROUNDS" "one session per round:--no-reuse:$((IMAP_ROUNDS / 8))"; do
    label=${mode%%:*}; rest=${mode#*:}; flag=${rest%%:*}; rounds=${rest##*:}
    [ "$flag" = --no-reuse ] && flag=
    # The runs alternate (Dovecot, Jmail, Dovecot, ...) so that the machine's drift falls on both.
    pairs=$(for _ in $(seq "$RUNS"); do
      for port in "$dv_port" "$imap_port"; do
        "$JMAIL" bench --server "127.0.0.1:$port" --protocol imap --users 16 --clients 16 --messages "$rounds" \
          --fill 100 $flag --json | tee -a "$WORK/imap.json" | field messages_per_sec | tr '\n' ' '
      done
      echo
    done)
    errors=$(field errors <"$WORK/imap.json" | awk '{s+=$1} END {print s}')
    [ "$errors" = 0 ] || fail "$errors IMAP rounds failed ($label)"
    printf '  %-22s Dovecot %6.0f rounds/s   Jmail %6.0f rounds/s   ratio %.2fx (median of %d pairs)\n' "$label" \
      "$(echo "$pairs" | awk '{print $1}' | median)" "$(echo "$pairs" | awk '{print $2}' | median)" \
      "$(echo "$pairs" | awk '{print $2 / $1}' | median)" "$RUNS"
  done
  stop_jmail
  # SEARCH, SORT and THREAD on a mailbox of 100,000 messages in threads of ten, the same on both sides (Jmail: `jmail import` of an mbox;
  # Dovecot: the same messages as Maildir files, indexed by an untimed first SELECT).
  echo "== IMAP SEARCH, SORT and THREAD on a mailbox of 100,000 messages (bench/imap_search.py; median ms of $RUNS, matches)"
  python3 - "$WORK/search.mbox" "$dv/mail/bench15/cur" <<'PY'
import os, sys
os.makedirs(sys.argv[2], exist_ok=True)
with open(sys.argv[1], "w") as mbox:
    for i in range(100000):
        # Threads of ten: each message after the first of its ten replies to the one before it.
        first = i - i % 10
        refs = "".join(f" <{r}@search>" for r in range(first, i))
        threading = f"References:{refs}\nIn-Reply-To: <{i - 1}@search>\n" if refs else ""
        message = (f"From: sender@example.org\nTo: bench15@localhost\nSubject: message {i}\n"
                   f"Date: Tue, 1 Dec 2026 12:00:00 +0000\nMessage-ID: <{i}@search>\n{threading}\n"
                   f"{'x' * 200} {i}\n")
        mbox.write(f"From sender@example.org Tue Dec  1 12:00:00 2026\n{message}\n")
        with open(os.path.join(sys.argv[2], f"1764590400.{i}.bench:2,"), "w") as f:
            f.write(message.replace("\n", "\r\n"))
PY
  chown -R dovebench:dovebench "$dv/mail/bench15"
  "$JMAIL" import --user bench15 --format mbox "$WORK/search.mbox" --data-dir "$data" >/dev/null
  start_jmail "$data" --imap-port "$imap_port"
  python3 bench/imap_search.py 127.0.0.1 "$dv_port" bench15 bench-password 1 >/dev/null # Dovecot indexes
  for side in "Dovecot:$dv_port" "Jmail:$imap_port"; do
    printf '  %-8s %s\n' "${side%%:*}" \
      "$(python3 bench/imap_search.py 127.0.0.1 "${side##*:}" bench15 bench-password "$RUNS")"
  done
  stop_jmail
  doveadm -c "$dv/dovecot.conf" stop >/dev/null 2>&1 || true
  DOVECOT_CONF=
  # IDLE: IDLE_SESSIONS sessions idling over 100 users (each user's INBOX watched by 1/100 of them); 200
  # APPENDs, one user at a time, each timed to every idler of that user hearing EXISTS.
  printf '[limits]\nconnections_per_ip_max = 60000\n' >"$WORK/imap-idle.toml"
  start_jmail "$data" --imap-port "$imap_port" --config "$WORK/imap-idle.toml"
  "$JMAIL" bench --server "127.0.0.1:$imap_port" --protocol imap --setup-users --data-dir "$data" --users 100 \
    --clients 1 --messages 1 >/dev/null
  result=$("$JMAIL" bench --server "127.0.0.1:$imap_port" --protocol imap --users 100 --idle "$IDLE_SESSIONS" \
    --messages 200 --json)
  printf '  IDLE wake-up, %d sessions idling: p50 %.1f ms  p99 %.1f ms  max %.1f ms  (%d wake-ups, %d never came)\n' \
    "$IDLE_SESSIONS" "$(echo "$result" | field latency_ms.p50)" "$(echo "$result" | field latency_ms.p99)" \
    "$(echo "$result" | field latency_ms.max)" "$(echo "$result" | field messages)" "$(echo "$result" | field errors)"
  stop_jmail
fi

if want jmap; then
  echo "== JMAP against Jmail's own IMAP: the same work on the same 2,000-message INBOX in the same run"
  echo "   (bench/jmap_vs_imap.py, 4 client processes, ${JMAP_SECONDS} s per figure): Email/get of 20 against"
  echo "   UID FETCH of 20, Email/query with a text filter against UID SEARCH TEXT, and push latency of an"
  echo "   event source against IDLE (median of $RUNS runs)"
  data="$WORK/jmap"
  http_port=$(free_port)
  imap_port=$(free_port)
  echo bench-password | "$JMAIL" user add benchjmap --password-stdin --data-dir "$data" >/dev/null
  # Both in clear on loopback: JMAP on the plain HTTP port (served to this machine), IMAP on 143's kind.
  start_jmail "$data" --http-port "$http_port" --imap-port "$imap_port"
  for _ in $(seq "$RUNS"); do
    JMAIL_PID=$SERVER python3 bench/jmap_vs_imap.py 127.0.0.1 "$http_port" "$imap_port" benchjmap bench-password "$JMAP_SECONDS" 4 \
      || fail "bench/jmap_vs_imap.py"
  done >"$WORK/jmap.json"
  for op in get query; do
    printf '%-6s JMAP %8s/s   IMAP %8s/s   JMAP/IMAP %s   server CPU per op: JMAP %s ms, IMAP %s ms\n' "$op" \
      "$(field "$op.jmap_per_sec" <"$WORK/jmap.json" | median)" \
      "$(field "$op.imap_per_sec" <"$WORK/jmap.json" | median)" \
      "$(field "$op.jmap_over_imap" <"$WORK/jmap.json" | median)" \
      "$(field "$op.jmap_server_cpu_ms" <"$WORK/jmap.json" | median)" \
      "$(field "$op.imap_server_cpu_ms" <"$WORK/jmap.json" | median)"
  done
  for side in jmap imap; do
    printf 'push %-4s p50 %s ms   p99 %s ms\n' "$side" \
      "$(field "push_ms.$side.p50" <"$WORK/jmap.json" | median)" \
      "$(field "push_ms.$side.p99" <"$WORK/jmap.json" | median)"
  done
  stop_jmail
fi

if want postgres; then
  echo "== PostgreSQL (a throwaway cluster, fsync on): native durable send (64 clients, reused connections)"
  echo "   and SMTP ingest (16 clients, a connection per message), SQLite against PostgreSQL with 1 and 2"
  echo "   nodes, in the same run; then IDLE wake-ups on one node for APPENDs made through the other"
  # Outside $WORK: the server runs as the postgres user, which must reach its directory.
  PG_DIR=$(mktemp -d -u /tmp/jmail-bench-pg.XXXXXX)
  url=$(scripts/throwaway-postgres start "$PG_DIR")
  # node NAME [serve flags...]: a jmail serve on its own data dir; prints "PID NATIVE_ADDR SMTP_PORT IMAP_PORT".
  node() {
    local name=$1; shift
    local smtp imap
    smtp=$(free_port); imap=$(free_port)
    JMAIL_PORT=0 "$JMAIL" serve --bind 127.0.0.1 --submission-port 0 --pop3-port 0 --submissions-port 0 \
      --pop3s-port 0 --native-tls-port 0 --imaps-port 0 --https-port 0 --http-port 0 --smtp-port "$smtp" --imap-port "$imap" \
      --data-dir "$WORK/$name" --log-level info --config "$WORK/pg-bench.toml" "$@" >/dev/null 2>"$WORK/$name.log" &
    local pid=$!
    for _ in $(seq 200); do grep -q "jmail ready" "$WORK/$name.log" 2>/dev/null && break; sleep 0.1; done
    grep -q "jmail ready" "$WORK/$name.log" || { cat "$WORK/$name.log" >&2; fail "node $name was not ready"; }
    echo "$pid $(grep -o 'native on [0-9.:]*' "$WORK/$name.log" | cut -d' ' -f3 | tr -d ';,') $smtp $imap"
  }
  # The inbound checks are off, as in the smtp section; the connection caps allow the load.
  printf 'inbound_auth_checks = false\n[limits]\nconnections_per_ip_max = 60000\nsmtp_data_unauth_per_ip_max = 64\n' >"$WORK/pg-bench.toml"
  # rate FILE...: the combined rate of bench runs made side by side: all messages over the longest run.
  rate() { python3 -c 'import sys,json
runs = [json.load(open(f)) for f in sys.argv[1:]]
for r in runs:
    if r["errors"]: sys.exit("FAILED: %d errors in a bench run" % r["errors"])
print(round(sum(r["messages"] for r in runs) / max(r["messages"] / r["messages_per_sec"] for r in runs)))' "$@"; }
  # measure LABEL STORE_FLAGS NODES: one line of medians for native and SMTP on that setup.
  measure() {
    local label=$1 flags=$2 nodes=$3 i
    local infos=()
    for i in $(seq "$nodes"); do
      infos+=("$(node "$label$i" $flags)")
    done
    NODES=$(for info in "${infos[@]}"; do echo "${info%% *}"; done | tr '\n' ' ')
    "$JMAIL" bench --setup-users --users 64 --clients 1 --messages 0 --data-dir "$WORK/${label}1" $flags >/dev/null
    local native smtp
    native=$(for _ in $(seq "$RUNS"); do
      local runs=()
      for i in $(seq 0 $((nodes - 1))); do
        local n=(${infos[$i]})
        "$JMAIL" bench --server "${n[1]}" --users 64 --clients $((64 / nodes)) --messages $((MESSAGES / nodes)) \
          --reuse-connections --json >"$WORK/run$i.json" &
        runs+=($!)
      done
      wait "${runs[@]}" || fail "a native bench run ($label) failed"
      for i in $(seq 0 $((nodes - 1))); do [ -s "$WORK/run$i.json" ] || fail "a native bench run ($label) failed"; done
      rate $(for i in $(seq 0 $((nodes - 1))); do echo "$WORK/run$i.json"; done)
      rm -f "$WORK"/run*.json
    done | median)
    smtp=$(for _ in $(seq "$RUNS"); do
      local runs=()
      for i in $(seq 0 $((nodes - 1))); do
        local n=(${infos[$i]})
        "$JMAIL" bench --protocol smtp --server "127.0.0.1:${n[2]}" --users 64 --clients $((16 / nodes)) \
          --messages $((SMTP_MESSAGES / nodes)) --json >"$WORK/run$i.json" &
        runs+=($!)
      done
      wait "${runs[@]}" || fail "an SMTP bench run ($label) failed"
      for i in $(seq 0 $((nodes - 1))); do [ -s "$WORK/run$i.json" ] || fail "an SMTP bench run ($label) failed"; done
      rate $(for i in $(seq 0 $((nodes - 1))); do echo "$WORK/run$i.json"; done)
      rm -f "$WORK"/run*.json
    done | median)
    printf '  %-22s native %7.0f messages/s   SMTP %6.0f messages/s\n' "$label" "$native" "$smtp"
    echo "$native $smtp" >"$WORK/$label.rates"
    if [ "$nodes" = 2 ]; then
      local a=(${infos[0]}) b=(${infos[1]})
      local across same
      same=$("$JMAIL" bench --server "127.0.0.1:${b[3]}" --protocol imap --users 64 --idle "$PG_SESSIONS" \
        --messages 200 --json)
      across=$("$JMAIL" bench --server "127.0.0.1:${b[3]}" --append-via "127.0.0.1:${a[3]}" --protocol imap \
        --users 64 --idle "$PG_SESSIONS" --messages 200 --json)
      printf '  IDLE wake-up, %d sessions on node B: APPEND on B p50 %.1f ms p99 %.1f ms; APPEND on A (across nodes) p50 %.1f ms p99 %.1f ms (%d never came)\n' \
        "$PG_SESSIONS" "$(echo "$same" | field latency_ms.p50)" "$(echo "$same" | field latency_ms.p99)" \
        "$(echo "$across" | field latency_ms.p50)" "$(echo "$across" | field latency_ms.p99)" "$(echo "$across" | field errors)"
    fi
    for pid in $NODES; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; done
    NODES=
  }
  measure sqlite "" 1
  measure postgres-1-node "--store $url" 1
  psql "$url" -qc "DROP SCHEMA public CASCADE; CREATE SCHEMA public;" >/dev/null
  measure postgres-2-nodes "--store $url" 2
  read -r sn ss <"$WORK/sqlite.rates"; read -r pn ps <"$WORK/postgres-1-node.rates"; read -r qn qs <"$WORK/postgres-2-nodes.rates"
  printf '  against SQLite: 1 node native %.2fx SMTP %.2fx; 2 nodes native %.2fx SMTP %.2fx\n' \
    "$(python3 -c "print($pn / $sn)")" "$(python3 -c "print($ps / $ss)")" \
    "$(python3 -c "print($qn / $sn)")" "$(python3 -c "print($qs / $ss)")"
fi
