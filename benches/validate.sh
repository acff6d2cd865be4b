#!/usr/bin/env bash
# Throughput and peak memory of `hostedscan-agent validate` against the named peers of issue 19
# item 1, in one run: a generated Nmap report (benches/gen_nmap.py) against
# `xmllint --stream --noout` (goal >= 10x at <= 32 MiB peak RSS) and a generated ZAP JSON
# report (benches/gen_zap_json.py) against `jq empty` (goal >= 5x; jq holds the whole document
# in memory: about 3.5 GiB for 1 GiB), with `sha256sum` on each file as the machine's raw read
# speed. Three rounds, each running every tool once on the same warm files, so each round's
# ratios compare runs made moments apart; the goal is judged on the median of the three.
# Usage: benches/validate.sh [SIZE_MIB]   (default 1024; each file is about that size)
set -euo pipefail
cd "$(dirname "$0")/.."
mib=${1:-1024}
rounds=3
for tool in xmllint:libxml2-utils jq:jq /usr/bin/time:time; do
  if ! command -v "${tool%%:*}" >/dev/null; then
    echo "${tool%%:*} is missing: install it with apt-get install -y ${tool#*:}" >&2
    exit 1
  fi
done
cargo build --release --quiet --bin hostedscan-agent
bin=${CARGO_TARGET_DIR:-target}/release/hostedscan-agent
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
xml=$work/big.xml
json=$work/big.json
python3 benches/gen_nmap.py "$mib" "$xml"
python3 benches/gen_zap_json.py "$mib" "$json"
echo "Nmap XML: $(stat -c %s "$xml") bytes (benches/gen_nmap.py $mib)"
echo "ZAP JSON: $(stat -c %s "$json") bytes (benches/gen_zap_json.py $mib)"

# run KEY FILE CMD...: runs CMD on the warm FILE, prints a line and sets ${KEY}_secs, ${KEY}_kib.
run() {
  local key=$1 file=$2 start end secs kib
  shift 2
  cat "$file" >/dev/null # in the page cache, so no tool pays for a cold read
  start=$(date +%s%N)
  /usr/bin/time -f '%M' -o "$work/time" "$@" "$file" >"$work/out" 2>&1 || {
    echo "$key failed:" >&2
    cat "$work/out" >&2
    exit 1
  }
  end=$(date +%s%N)
  secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
  kib=$(tail -n 1 "$work/time")
  printf '  %-26s %8.3f s %8.1f MB/s %9d KiB peak RSS\n' "${*/#$bin/hostedscan-agent}" "$secs" \
    "$(awk -v b="$(stat -c %s "$file")" -v s="$secs" 'BEGIN { print (s > 0 ? b / 1e6 / s : 0) }')" "$kib"
  printf -v "${key}_secs" '%s' "$secs"
  printf -v "${key}_kib" '%s' "$kib"
}

ratio() { awk -v p="$1" -v a="$2" 'BEGIN { printf "%.2f", (a > 0 ? p / a : 0) }'; }
median() { printf '%s\n' "$@" | sort -g | sed -n "$((($# + 1) / 2))p"; }

xml_ratios=() json_ratios=() agent_kib=0
for round in $(seq 1 "$rounds"); do
  echo "round $round of $rounds:"
  run agent_xml "$xml" "$bin" validate
  grep -q '^ok ' "$work/out" || { echo "validate refused the Nmap report:" >&2; cat "$work/out" >&2; exit 1; }
  agent_kib=$((agent_xml_kib > agent_kib ? agent_xml_kib : agent_kib))
  run xmllint "$xml" xmllint --stream --noout
  run sha_xml "$xml" sha256sum
  run agent_json "$json" "$bin" validate
  grep -q '^ok ' "$work/out" || { echo "validate refused the ZAP report:" >&2; cat "$work/out" >&2; exit 1; }
  agent_kib=$((agent_json_kib > agent_kib ? agent_json_kib : agent_kib))
  run jq "$json" jq empty
  run sha_json "$json" sha256sum
  xml_ratios+=("$(ratio "$xmllint_secs" "$agent_xml_secs")")
  json_ratios+=("$(ratio "$jq_secs" "$agent_json_secs")")
  echo "  ratios: xmllint / agent ${xml_ratios[-1]}x, jq / agent ${json_ratios[-1]}x;" \
    "agent speed / sha256sum speed: XML $(ratio "$sha_xml_secs" "$agent_xml_secs")x," \
    "JSON $(ratio "$sha_json_secs" "$agent_json_secs")x"
done
echo "XML  vs xmllint --stream --noout: ${xml_ratios[*]} -> median $(median "${xml_ratios[@]}")x (goal >= 10x)"
echo "JSON vs jq empty:                 ${json_ratios[*]} -> median $(median "${json_ratios[@]}")x (goal >= 5x)"
echo "agent peak RSS: $agent_kib KiB (goal <= 32768 KiB)"
