#!/usr/bin/env bash
# The public API of the published crates, one checked-in listing per crate
# (docs/api/<crate>.txt), so that an API change shows in review as a diff.
#
#   scripts/public-api.sh          regenerate into a temporary directory and compare
#                                  with docs/api/; fails if they differ
#   scripts/public-api.sh --write  regenerate docs/api/ (then commit the diff)
#
# Needs cargo-public-api 0.52 (`make public-api` installs it):
#   cargo install cargo-public-api --version 0.52.0 --locked
# It reads rustdoc JSON, an unstable rustdoc output: this script builds it with the
# active (stable) toolchain and RUSTC_BOOTSTRAP=1, in a target directory of its own
# (RUSTC_BOOTSTRAP dirties build scripts, so sharing the normal one would rebuild
# both ways), and hands the file to cargo-public-api. cargo-public-api 0.52 reads
# rustdoc JSON format 57 (rustc 1.95); a newer rustc needs a newer cargo-public-api.
#
# The listings are deterministic: default features, blanket impls left out (they
# depend on the versions of dependencies, not on our code), items in the tool's
# sorted order, no paths or versions in them.
set -euo pipefail

cd "$(dirname "$0")/.."

# The crates published to crates.io (the same list as PUBLISHED in the Makefile).
crates=(ldapmux-core ldapmux-driver ldapmux ldapmux-blocking)
api_dir=docs/api
tool_version=0.52

mode=check
case "${1:-}" in
  "") ;;
  --write) mode=write ;;
  *) echo "usage: $0 [--write]" >&2; exit 2 ;;
esac

if ! installed=$(cargo public-api --version 2>/dev/null); then
  echo "cargo-public-api is missing: cargo install cargo-public-api --version ${tool_version}.0 --locked" >&2
  exit 1
fi
case "$installed" in
  "cargo-public-api ${tool_version}."*) ;;
  *) echo "warning: $installed found, the listings are made with ${tool_version}.x" >&2 ;;
esac

target_dir="${CARGO_TARGET_DIR:-target}/public-api"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

for crate in "${crates[@]}"; do
  RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$target_dir" \
    cargo rustdoc --quiet -p "$crate" --lib -- -Z unstable-options --output-format json
  json="$target_dir/doc/${crate//-/_}.json"
  cargo public-api --rustdoc-json "$json" --simplified --color never >"$out/$crate.txt"
  if [ ! -s "$out/$crate.txt" ]; then
    echo "public API of $crate came out empty" >&2
    exit 1
  fi
done

if [ "$mode" = write ]; then
  mkdir -p "$api_dir"
  rm -f "$api_dir"/*.txt
  cp "$out"/*.txt "$api_dir"/
  for crate in "${crates[@]}"; do
    echo "wrote $api_dir/$crate.txt ($(wc -l <"$api_dir/$crate.txt") items)"
  done
  exit 0
fi

# Also catches a listing whose crate is gone (a file only in docs/api).
if ! diff -ru "$api_dir" "$out"; then
  echo "public API changed: run scripts/public-api.sh --write and commit the diff" >&2
  exit 1
fi
echo "public API unchanged (${crates[*]})"
