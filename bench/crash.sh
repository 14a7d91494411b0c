#!/usr/bin/env bash
# Crash durability (docs/benchmarks.md): SIGKILLs a release `jmail serve` at random moments under native
# and SMTP load, CYCLES times, restarting it each time; then checks that every acknowledged message is
# stored exactly once and whole, that nothing unacknowledged is half there, and PRAGMA integrity_check.
# Prints the counts; exits non-zero if any check fails. Talks only to 127.0.0.1.
#   CYCLES=100 bench/crash.sh
# The load generator and checker are one Rust test (tests/it/crash.rs, ignored in normal runs), so the
# script and `cargo test --test it -- --ignored crash` share one implementation.
set -euo pipefail
cd "$(dirname "$0")/.."
CYCLES=${CYCLES:-100}
JMAIL_CRASH_CYCLES=$CYCLES cargo test --release --quiet --test it -- --ignored --exact \
  crash::sigkill_under_load_loses_and_duplicates_nothing --nocapture
