#!/usr/bin/env bash
# Fuzz every validator target for SECONDS each (default 600), two at a time, with corpora
# seeded from ../shared/samples (when present) and tests/fixtures. Crashes, hangs and
# out-of-memory inputs land in fuzz/artifacts/<target>/; copy them into tests/fixtures/fuzz/
# (and a test) when found. Needs cargo-fuzz (`cargo install cargo-fuzz`); runs on stable via
# RUSTC_BOOTSTRAP. Usage: fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(nmap gvm zap_xml zap_json sslyze validate_chunked)
samples=../../shared/samples
fixtures=../tests/fixtures
seed() { # target, globs...
  local t=$1; shift
  mkdir -p "corpus/$t"
  for g in "$@"; do for f in $g; do [ -f "$f" ] && cp "$f" "corpus/$t/" || true; done; done
}
seed nmap "$samples/nmap/*" "$fixtures/nmap-*"
seed gvm "$samples/gvm-xml/*" "$samples/gvm-csv/*" "$fixtures/openvas-*"
seed zap_xml "$samples/zap-xml/*" "$fixtures/zap-*.xml"
seed zap_json "$samples/zap-json/*.json" "$samples/zap-json/*/*.json" "$fixtures/zap-*.json"
seed sslyze "$samples/sslyze-json/*" "$fixtures/sslyze-*"
seed validate_chunked "$samples/*/*" "$fixtures/*"
export RUSTC_BOOTSTRAP=1
cargo fuzz build
run() {
  local t=$1
  cargo fuzz run "$t" "corpus/$t" -- -max_total_time="$secs" -timeout=10 -rss_limit_mb=512 \
    -max_len=262144 -print_final_stats=1 >"fuzz-$t.log" 2>&1 && echo "$t: ok ($(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "fuzz-$t.log"))" \
    || { echo "$t: FAILED, see fuzz/fuzz-$t.log and fuzz/artifacts/$t/"; return 1; }
}
status=0
for ((i = 0; i < ${#targets[@]}; i += 2)); do
  run "${targets[i]}" & a=$!
  b=
  if [ $((i + 1)) -lt ${#targets[@]} ]; then run "${targets[i+1]}" & b=$!; fi
  wait $a || status=1
  [ -z "$b" ] || wait $b || status=1
done
exit $status
