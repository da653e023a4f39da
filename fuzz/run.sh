#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 30) and fails on the
# first crash, printing the fuzzer's report and the input that caused it
# (saved under fuzz/artifacts/TARGET/: commit it to fuzz/regressions/TARGET/
# with the fix). Inputs saved in fuzz/regressions/ run first, every time,
# and so do those in fuzz/seeds/ (valid inputs a target could not find on
# its own, such as a signed storage block, for the fuzzer to mutate).
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and a nightly toolchain;
# without one, the stable toolchain is told to allow nightly flags
# (RUSTC_BOOTSTRAP=1), which cargo-fuzz needs for its instrumentation.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-30}
if cargo +nightly --version >/dev/null 2>&1; then
  fuzz=(cargo +nightly fuzz)
else
  export RUSTC_BOOTSTRAP=1
  fuzz=(cargo fuzz)
fi
"${fuzz[@]}" build -O
for target in $("${fuzz[@]}" list); do
  mkdir -p "corpus/$target"
  seeds=()
  for dir in regressions seeds; do
    [ -d "$dir/$target" ] && seeds+=("$dir/$target")
  done
  log=$(mktemp)
  if "${fuzz[@]}" run -O "$target" "corpus/$target" "${seeds[@]}" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 >"$log" 2>&1; then
    echo "fuzz $target: $(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$log" | tail -1)"
  else
    echo "fuzz $target: CRASH" >&2
    tail -n 60 "$log" >&2
    exit 1
  fi
  rm -f "$log"
done
