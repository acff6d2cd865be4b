#!/usr/bin/env bash
# The idle daemon: CPU time used and RSS while nothing arrives (one watch directory, no jobs,
# the default rescan_interval), measured from /proc over SECONDS (default 60).
# Goal: under 0.05 s CPU per 10 s and under 20 MiB RSS. Usage: benches/idle.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
. benches/common.sh
start_standin
mkdir -p "$work/inbox"
agent_config "$work/agent.toml" "$work/inbox"
"$rel/hostedscan-agent" -q -c "$work/agent.toml" &
pid=$!
sleep 5 # start-up done
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
c0=$(cpu); sleep "$secs"; c1=$(cpu)
rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
kill -TERM "$pid"; wait "$pid" || true
python3 - "$c0" "$c1" "$ticks" "$secs" "$rss" "$hwm" <<'PY'
import sys
c0, c1, ticks, secs, rss, hwm = map(float, sys.argv[1:])
per10 = (c1 - c0) / ticks * 10 / secs
print(f"idle daemon over {secs:.0f} s")
print(f"  CPU     : {per10:.4f} s per 10 s, measured in clock ticks of {1/ticks:.2f} s over {secs:.0f} s (goal: under 0.05)")
print(f"  RSS     : {rss/1024:.1f} MiB now, {hwm/1024:.1f} MiB peak   (goal: under 20 MiB)")
PY
