#!/usr/bin/env bash
# A big Nmap report end to end, the agent against what a user would script instead, in the same
# run and to the same local HostedScan stand-in:
#   agent:  hostedscan-agent --once (validate, hash, durable queue copy, streamed upload)
#   script: xmllint --stream --noout FILE && curl -F file=@FILE (well-formedness only; no
#           format checks, no retry, no record of what was sent)
# Goals (issue 7): at least 2x faster, agent peak RSS at most 64 MiB.
# Usage: benches/end_to_end.sh [MIB]   (default 1024)
set -euo pipefail
cd "$(dirname "$0")/.."
mib=${1:-1024}
command -v xmllint >/dev/null || { echo "xmllint is needed (apt-get install -y libxml2-utils)"; exit 1; }
command -v curl >/dev/null || { echo "curl is needed (apt-get install -y curl)"; exit 1; }
. benches/common.sh
start_standin
mkdir -p "$work/inbox"
python3 benches/gen_nmap.py "$mib" "$work/big.xml"
agent_config "$work/agent.toml" "$work/inbox" 'after_upload = "delete"
max_file_size = "8GiB"'
# The agent consumes its input: give it a hard link (same file, no copy, page cache shared).
ln "$work/big.xml" "$work/inbox/big.xml"
touch -d '1 minute ago' "$work/inbox/big.xml"
t0=$(date +%s.%N)
/usr/bin/time -f '%M' -o "$work/rss" "$rel/hostedscan-agent" -q -c "$work/agent.toml" --once >/dev/null
t1=$(date +%s.%N)
src=$(python3 -c "import json;print(json.load(open('$work/state/source.json'))['id'])")
t2=$(date +%s.%N)
xmllint --stream --noout "$work/big.xml"
curl -s -o /dev/null -H "X-HOSTEDSCAN-API-KEY: bench-key" \
  -F "source_id=$src" -F "scan_type=NMAP" -F "file=@$work/big.xml;type=application/xml" \
  "http://127.0.0.1:$port/v1/results"
t3=$(date +%s.%N)
python3 - "$mib" "$t0" "$t1" "$t2" "$t3" "$(cat "$work/rss")" <<'PY'
import sys
mib, t0, t1, t2, t3, rss = float(sys.argv[1]), *map(float, sys.argv[2:6]), int(sys.argv[6])
agent, script = t1 - t0, t3 - t2
print(f"{mib:.0f} MiB Nmap report, end to end to the local stand-in")
print(f"  hostedscan-agent --once          : {agent:6.2f} s, peak RSS {rss/1024:.1f} MiB")
print(f"  xmllint --stream && curl -F      : {script:6.2f} s")
print(f"  ratio                            : {script/agent:6.2f}x   (goal: at least 2x; RSS at most 64 MiB)")
PY
