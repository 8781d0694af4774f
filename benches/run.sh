#!/usr/bin/env bash
# One sitting of the whole suite: the criterion benches (flagbridge and the `optimizely` crate),
# the swap percentiles, the official JS SDK, the memory probe, then the report tables
# (target/flagbridge-bench/report.md). Extra arguments go to criterion, e.g. a name filter.
# CALLGRIND=0 skips the instruction counts (about 5 minutes under valgrind).
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET="${CARGO_TARGET_DIR:-target}"

cargo bench -p flagbridge-benches -- --warm-up-time 1 --measurement-time 3 "$@"
(
  cd benches/js
  [ -d node_modules ] || npm ci --no-audit --no-fund
  node bench.js
)
cargo build --release -p flagbridge-benches --bins
"$TARGET/release/memory" flagbridge
"$TARGET/release/memory" optimizely_crate
# Instructions per call under callgrind: not disturbed by the other processes on the machine.
if command -v valgrind >/dev/null && [ "${CALLGRIND:-1}" != 0 ]; then
  cg=benches/scripts/callgrind.sh
  {
    $cg decide 'decide/flagbridge/a_experiment/small'
    $cg decide 'decide/flagbridge/a_experiment/large'
    $cg decide 'decide/optimizely_crate/a_experiment/small' UserContext::decide_with_options
    $cg decide 'decide/optimizely_crate/a_experiment/large' UserContext::decide_with_options
    $cg decide_all 'decide_all/flagbridge/large$' Decider::decide_all
    $cg parse 'parse/flagbridge/large_700' ProjectConfig::from_slice
    $cg parse 'parse/flagbridge/go_100_entities' ProjectConfig::from_slice
  } | tee "$TARGET/flagbridge-bench/callgrind.txt"
fi
"$TARGET/release/report" | tee "$TARGET/flagbridge-bench/report.md"
