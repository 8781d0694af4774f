#!/usr/bin/env bash
# One sitting of the whole suite: the criterion benches (flagbridge and the `optimizely` crate),
# the swap percentiles, the official JS SDK, the memory probe, then the report tables
# (target/flagbridge-bench/report.md). Extra arguments go to criterion, e.g. a name filter.
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
"$TARGET/release/report" | tee "$TARGET/flagbridge-bench/report.md"
