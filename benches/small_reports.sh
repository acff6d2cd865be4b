#!/usr/bin/env bash
# 1000 small reports: one `hostedscan-agent --once` pass (validate, queue, upload with
# upload_concurrency connections, one source lookup) against what a user would script
# instead, a loop of `curl -F` (one process and one connection per file, no validation), both
# to the local HostedScan stand-in in the same run. Three rounds (each with a fresh state
# directory), each ratio printed, then their median: the machine's noise shows in the spread.
# Goal (issue 19): at least 15x. Usage: benches/small_reports.sh [N] [ROUNDS]; EXTRA_AGENT adds
# lines to the agent's [agent] section (e.g. EXTRA_AGENT='upload_concurrency = 8'); BENCH_DIR
# puts the agent's state and watch directories on another file system (see benches/common.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}
rounds=${2:-3}
command -v curl >/dev/null || { echo "curl is needed (apt-get install -y curl)"; exit 1; }
. benches/common.sh
start_standin
mkdir -p "$work/copy"
for i in $(seq 1 "$n"); do
  sed "s|</nmaprun>|</nmaprun><!-- $i -->|" tests/fixtures/nmap-tcp-localhost.xml >"$work/copy/r$i.xml"
done
echo "$n small reports, $rounds rounds"
ratios=()
for r in $(seq 1 "$rounds"); do
  rm -rf "$work/inbox" "$work/state"
  mkdir -p "$work/inbox"
  cp "$work/copy/"*.xml "$work/inbox/"
  touch -d '1 minute ago' "$work/inbox/"*.xml
  agent_config "$work/agent.toml" "$work/inbox" "after_upload = \"delete\"
${EXTRA_AGENT:-}"
  sync
  t0=$(date +%s.%N)
  "$rel/hostedscan-agent" -q -c "$work/agent.toml" --once >/dev/null
  t1=$(date +%s.%N)
  left=$(find "$work/inbox" "$work/state/queue" -type f | wc -l)
  [ "$left" -eq 0 ] || { echo "round $r: $left files left behind"; exit 1; }
  # The source id the agent made, so curl posts where the agent did.
  src=$(python3 -c "import json;print(json.load(open('$work/state/source.json'))['id'])")
  t2=$(date +%s.%N)
  for f in "$work/copy/"*.xml; do
    curl -s -o /dev/null -H "X-HOSTEDSCAN-API-KEY: bench-key" \
      -F "source_id=$src" -F "scan_type=NMAP" -F "file=@$f;type=application/xml" \
      "http://127.0.0.1:$port/v1/results"
  done
  t3=$(date +%s.%N)
  ratios+=("$(python3 - "$n" "$r" "$t0" "$t1" "$t2" "$t3" <<'PY'
import sys
n, r, t0, t1, t2, t3 = int(sys.argv[1]), int(sys.argv[2]), *map(float, sys.argv[3:])
agent, curl = t1 - t0, t3 - t2
print(f"  round {r}: agent --once {agent:6.2f} s ({n/agent:5.0f} files/s, validated), "
      f"curl -F loop {curl:6.2f} s ({n/curl:4.0f} files/s, not validated): "
      f"ratio {curl/agent:6.2f}x", file=sys.stderr)
print(f"{curl/agent:.3f}")
PY
)")
done
python3 - "${ratios[@]}" <<'PY'
import statistics, sys
r = [float(x) for x in sys.argv[1:]]
print(f"  ratios {', '.join(f'{x:.2f}x' for x in r)}; median {statistics.median(r):.2f}x  (goal: at least 15x)")
PY
