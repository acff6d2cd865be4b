#!/usr/bin/env bash
# The idle daemon: CPU time used and RSS while nothing arrives (one watch directory, no jobs,
# the default rescan_interval), measured from /proc over SECONDS (default 60).
# Goal: under 0.05 s CPU per 10 s and under 20 MiB RSS. Usage: benches/idle.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
cargo build --release --quiet --bins --examples
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
STANDIN_KEEP_BYTES=0 target/release/examples/standin "$port" bench-key >"$work/standin.log" 2>&1 &
mkdir -p "$work/inbox"
cat >"$work/agent.toml" <<TOML
[api]
url = "http://127.0.0.1:$port/v1"
key = "bench-key"
[agent]
state_dir = "$work/state"
[[watch]]
path = "$work/inbox"
TOML
chmod 600 "$work/agent.toml"
target/release/hostedscan-agent -q -c "$work/agent.toml" &
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
