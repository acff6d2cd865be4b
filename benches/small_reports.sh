#!/usr/bin/env bash
# 1000 small reports: one `hostedscan-agent --once` pass (validate, queue, upload with
# upload_concurrency connections, one source lookup) against what a user would script
# instead, a loop of `curl -F` (one process and one connection per file, no validation), both
# to the local HostedScan stand-in in the same run. Usage: benches/small_reports.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}
command -v curl >/dev/null || { echo "curl is needed (apt-get install -y curl)"; exit 1; }
. benches/common.sh
start_standin
mkdir -p "$work/inbox" "$work/copy"
for i in $(seq 1 "$n"); do
  sed "s|</nmaprun>|</nmaprun><!-- $i -->|" tests/fixtures/nmap-tcp-localhost.xml >"$work/copy/r$i.xml"
done
cp "$work/copy/"*.xml "$work/inbox/"
touch -d '1 minute ago' "$work/inbox/"*.xml
agent_config "$work/agent.toml" "$work/inbox" 'after_upload = "delete"'
t0=$(date +%s.%N)
"$rel/hostedscan-agent" -q -c "$work/agent.toml" --once >/dev/null
t1=$(date +%s.%N)
# The source id the agent made, so curl posts where the agent did.
src=$(python3 -c "import json;print(json.load(open('$work/state/source.json'))['id'])")
t2=$(date +%s.%N)
for f in "$work/copy/"*.xml; do
  curl -s -o /dev/null -H "X-HOSTEDSCAN-API-KEY: bench-key" \
    -F "source_id=$src" -F "scan_type=NMAP" -F "file=@$f;type=application/xml" \
    "http://127.0.0.1:$port/v1/results"
done
t3=$(date +%s.%N)
python3 - "$n" "$t0" "$t1" "$t2" "$t3" <<'PY'
import sys
n, t0, t1, t2, t3 = int(sys.argv[1]), *map(float, sys.argv[2:])
agent, curl = t1 - t0, t3 - t2
print(f"{n} small reports")
print(f"  hostedscan-agent --once : {agent:7.2f} s  ({n/agent:6.0f} files/s, validated)")
print(f"  curl -F loop            : {curl:7.2f} s  ({n/curl:6.0f} files/s, not validated)")
print(f"  ratio                   : {curl/agent:7.2f}x  (goal: at least 5x)")
PY
