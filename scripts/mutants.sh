#!/usr/bin/env bash
# Mutation testing of the engine with cargo-mutants (https://mutants.rs). Not run in CI: on
# 2 cores it takes minutes per file (figures in engine/MUTANTS.md).
#
# usage: scripts/mutants.sh [FILE...]
#   FILE...        engine source files to mutate (default: bucketing, audiences, decide flow,
#                  forced decisions, variables, events)
#   MUTANTS_OUT    output folder (default target/mutants; results in $MUTANTS_OUT/mutants.out:
#                  caught.txt, missed.txt, timeout.txt, unviable.txt, outcomes.json)
#   MUTANTS_ARGS   more cargo-mutants options, e.g. "--iterate" to rerun only the mutants not
#                  caught by the previous run in the same folder, or "--list"
#
# Every mutant is tested with the engine's own tests (`cargo test -p flagbridge-engine`), one at
# a time (-j 1), each cargo command stopped after MUTANTS_TIMEOUT seconds (default 120).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-mutants >/dev/null || nice -n 10 cargo install cargo-mutants --locked
files=("$@")
if [ ${#files[@]} -eq 0 ]; then
    files=(
        engine/src/bucketing.rs
        engine/src/audience/*.rs
        engine/src/decide/flow.rs engine/src/decide/forced.rs engine/src/decide/mod.rs
        engine/src/decide/decision.rs
        engine/src/variables.rs
        engine/src/events.rs
    )
fi
args=()
for f in "${files[@]}"; do
    args+=(--file "$f")
done
# shellcheck disable=SC2086 # MUTANTS_ARGS is a list of options
exec nice -n 10 cargo mutants --package flagbridge-engine --jobs 1 \
    --timeout "${MUTANTS_TIMEOUT:-120}" --build-timeout 600 \
    --output "${MUTANTS_OUT:-target/mutants}" "${args[@]}" ${MUTANTS_ARGS:-}
