#!/usr/bin/env bash
# Instructions per call (noise-free, unlike wall time on a shared machine) of one engine function
# while a criterion bench runs under valgrind's callgrind.
#   benches/scripts/callgrind.sh BENCH FILTER [FUNCTION]   (FUNCTION: end of the symbol path)
#   benches/scripts/callgrind.sh decide 'decide/flagbridge/a_experiment/small'            # Decider::decide
#   benches/scripts/callgrind.sh decide_all 'decide_all/flagbridge/large$' Decider::decide_all
#   benches/scripts/callgrind.sh decide 'decide/optimizely_crate/a_experiment/small' UserContext::decide_with_options
# Leaves the profile in target/flagbridge-bench/callgrind.<bench>.out for callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/../.."
bench="$1"; filter="$2"; func="${3:-flagbridge_engine::decide::Decider::decide}"
TARGET="${CARGO_TARGET_DIR:-target}"
exe=$(cargo bench -p flagbridge-benches --bench "$bench" --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and "bench" in m["target"]["kind"] and m["target"]["name"] == sys.argv[1]:
        print(m["executable"])' "$bench")
out="$TARGET/flagbridge-bench/callgrind.$bench.out"
mkdir -p "$(dirname "$out")"
valgrind --tool=callgrind --callgrind-out-file="$out" "$exe" --bench --profile-time 2 "$filter" >/dev/null 2>&1
# "=> file:path::Function (N x)" lines carry inclusive cost and call count per call site.
callgrind_annotate --inclusive=yes "$out" 2>/dev/null \
  | grep -E "=> .*:[A-Za-z_:<>]*${func} \(" \
  | sed -E 's/^ *([0-9,]+) .*\(([0-9,]+)x\).*/\1 \2/' | tr -d ',' \
  | awk -v f="$func" -v b="$filter" '{ir+=$1; n+=$2} END { if (n) printf "%s: %s %.0f instructions per call (%d calls)\n", b, f, ir/n, n; else print "no calls of " f " found" }'
