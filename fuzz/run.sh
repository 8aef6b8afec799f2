#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60) on the stable toolchain
# (RUSTC_BOOTSTRAP=1 lets stable rustc take the sanitizer flags cargo-fuzz passes).
# Usage: fuzz/run.sh [SECONDS] [TARGET...]     Exit status non-zero if any target finds a crash.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-60}; shift || true
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
status=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" logs
  echo "== fuzz $t for ${secs}s (log: fuzz/logs/$t.log)"
  if cargo fuzz run "$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 > "logs/$t.log" 2>&1; then
    grep -E '^(#[0-9]+ *DONE|Done [0-9]+ runs)' "logs/$t.log" | tail -n 2
  else
    status=1
    echo "!! $t failed:"; tail -n 30 "logs/$t.log"
  fi
done
exit $status
