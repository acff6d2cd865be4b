#!/usr/bin/env bash
# Throughput and peak memory of `hostedscan-agent validate` on a large Nmap report, against
# `xmllint --stream --noout` (a streaming well-formedness check, the yardstick of issue 3 item
# 4: validate must be >= 4x faster than xmllint at <= 32 MiB peak RSS) and `sha256sum` (how
# fast this machine can merely read and hash the same bytes). All three run on the same file
# in the same run, so the ratio means something on a noisy machine.
# Usage: benches/validate.sh [SIZE_MIB]   (default 1024)
set -euo pipefail
cd "$(dirname "$0")/.."
mib=${1:-1024}
if ! command -v xmllint >/dev/null; then
  echo "xmllint is missing: install it with apt-get install -y libxml2-utils" >&2
  exit 1
fi
if [ ! -x /usr/bin/time ]; then
  echo "/usr/bin/time is missing: install it with apt-get install -y time" >&2
  exit 1
fi
cargo build --release --quiet --bin hostedscan-agent
bin=${CARGO_TARGET_DIR:-target}/release/hostedscan-agent
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
file=$work/big.xml
python3 benches/gen_nmap.py "$mib" "$file"
bytes=$(stat -c %s "$file")
cat "$file" >/dev/null # warm the page cache so no tool pays for the first read

# run NAME CMD...: prints "NAME seconds peak-KiB" and leaves the seconds in $secs.
run() {
  local name=$1
  shift
  /usr/bin/time -f '%e %M' -o "$work/time" "$@" >"$work/out" 2>&1 || {
    echo "$name failed:" >&2
    cat "$work/out" >&2
    exit 1
  }
  read -r secs kib <"$work/time"
  printf '%-22s %8.2f s %8.1f MB/s %8d KiB peak RSS\n' "$name" "$secs" \
    "$(awk -v b="$bytes" -v s="$secs" 'BEGIN { print (s > 0 ? b / 1e6 / s : 0) }')" "$kib"
  eval "${name//[^a-z]/}_secs=$secs ${name//[^a-z]/}_kib=$kib"
}

echo "file: $mib MiB ($bytes bytes) written by benches/gen_nmap.py"
run "hostedscan-agent" "$bin" validate "$file"
grep -q '^ok ' "$work/out" || { echo "validate did not accept the report:" >&2; cat "$work/out" >&2; exit 1; }
run "xmllint" xmllint --stream --noout "$file"
run "sha256sum" sha256sum "$file"
printf 'xmllint / hostedscan-agent: %.2fx (goal >= 4x)\n' \
  "$(awk -v x="$xmllint_secs" -v h="$hostedscanagent_secs" 'BEGIN { print (h > 0 ? x / h : 0) }')"
printf 'hostedscan-agent peak RSS: %d KiB (goal <= 32768 KiB)\n' "$hostedscanagent_kib"
