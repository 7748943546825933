#!/usr/bin/env bash
# Runs a clang-built libFuzzer binary for a bounded time on a scratch copy of its seed corpus
# (the tree is never modified). Used by the ctest `fuzz.<name>.libfuzzer`.
#
# Usage: run_fuzzer.sh <fuzzer-binary> <seed-corpus-dir> <seconds> [artifact-dir] [dictionary]
# Exits 0 with "skipped: no clang fuzz build" when the binary does not exist (tools/dev test
# builds it with `build_fuzz`; a plain gcc build does not).
set -euo pipefail

fuzzer=$1 seeds=$2 secs=$3
artifacts=${4:-$PWD/fuzz-artifacts}
dict=()
[ -n "${5:-}" ] && [ -f "$5" ] && dict=(-dict="$5")
if [ ! -x "$fuzzer" ]; then
  echo "skipped: no clang fuzz build ($fuzzer not found; run tools/dev fuzz)"
  exit 0
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/atlas-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
# Pinned reproducers (repro_*, crash-*) fail fuzz.<name>.corpus until fixed; leaving them out
# here lets this run look for new bugs instead of stopping at the known one.
find "$seeds" -maxdepth 1 -type f ! -name 'repro_*' ! -name 'crash-*' -exec cp {} "$work/" \;
mkdir -p "$artifacts"
echo "fuzzing $(basename "$fuzzer") for ${secs}s; crash reproducers go to $artifacts/"
"$fuzzer" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
  -artifact_prefix="$artifacts/" "${dict[@]}" "$work"
