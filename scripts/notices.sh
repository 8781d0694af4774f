#!/usr/bin/env bash
# THIRD-PARTY-NOTICES.md: the licenses of every crate in the `flagbridge` binary (flagbridge-sync
# with its default features, normal dependencies, the platforms listed in about.toml), with their
# texts, as shipped next to a release binary. Uses cargo-about (about.toml, about.hbs); offline:
# license texts come from the crates in ~/.cargo/registry (no clearlydefined.io look-ups).
#
# usage: scripts/notices.sh          regenerate THIRD-PARTY-NOTICES.md
#        scripts/notices.sh --check  fail if THIRD-PARTY-NOTICES.md is not what the lock file gives
# Rerun after any change to Cargo.lock and commit the result.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-about >/dev/null || cargo install --locked cargo-about --features cli
out=THIRD-PARTY-NOTICES.md
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
cargo about generate --frozen --fail --manifest-path sync/Cargo.toml --config about.toml \
    --output-file "$tmp" about.hbs
if [ "${1:-}" = "--check" ]; then
    diff -u "$out" "$tmp" >/dev/null || {
        echo "$out is stale: run scripts/notices.sh and commit it" >&2
        exit 1
    }
else
    cat "$tmp" > "$out"
fi
