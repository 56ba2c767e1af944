#!/usr/bin/env bash
# The fleet chaos test in full: three gateways behind HAProxy sharing a private Redis and
# a private PostgreSQL, with load running while a gateway is SIGKILLed and restarted,
# Redis is SIGKILLed and restarted, PostgreSQL is stopped and started, one node reloads,
# a stop and a key revocation are timed across the fleet (crates/rampart/tests/it/chaos.rs).
# The test command runs it with 2-second phases; this runs it with longer ones and prints
# its figures.
#
#   scripts/chaos.sh                 # CHAOS_PHASE_MS=15000 (about 2.5 minutes)
#   CHAOS_PHASE_MS=60000 scripts/chaos.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
export CHAOS_PHASE_MS=${CHAOS_PHASE_MS:-15000}
echo "fleet chaos test, phases of ${CHAOS_PHASE_MS} ms, $(date -u +%Y-%m-%dT%H:%MZ)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if cargo test -q -p rampart --test it chaos:: -- --nocapture >"$log" 2>&1; then
  grep -E "^(chaos|answers|events|test result)" "$log"
else
  sed -n '/panicked/,/stack backtrace/p' "$log"
  tail -5 "$log"
  exit 1
fi
