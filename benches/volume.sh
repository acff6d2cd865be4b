#!/usr/bin/env bash
# Volume: N reports (default 10 000) land in the watch directory at once while the daemon runs;
# how long until all are uploaded to the local stand-in, the daemon's peak RSS while it drains,
# and whether the kernel's event queue overflowed (then the rescan must find the rest).
# Goals (issue 7): the queue drains, memory stays flat, overflow is survived.
# Usage: benches/volume.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}
. benches/common.sh
start_standin
mkdir -p "$work/inbox" "$work/stage"
python3 - "$n" "$work/stage" <<'PY'
import sys
n, d = int(sys.argv[1]), sys.argv[2]
base = open("tests/fixtures/nmap-tcp-localhost.xml", "rb").read()
for i in range(n):
    with open(f"{d}/r{i}.xml", "wb") as f:
        f.write(base + f"<!-- {i} -->\n".encode())
PY
agent_config "$work/agent.toml" "$work/inbox" 'after_upload = "delete"
settle = "1s"'
"$rel/hostedscan-agent" -c "$work/agent.toml" 2>"$work/agent.log" &
pid=$!
sleep 2
rss0=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
t0=$(date +%s.%N)
# All at once: renames into the watch directory, as fast as the shell's mv can go.
find "$work/stage" -name '*.xml' -print0 | xargs -0 mv -t "$work/inbox"
t1=$(date +%s.%N)
peak=0
while :; do
  done_n=$(grep -c '^  upload ' "$work/standin.log" || true)
  r=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  [ "$r" -gt "$peak" ] && peak=$r
  [ "$done_n" -ge "$n" ] && break
  sleep 0.2
done
t2=$(date +%s.%N)
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
left=$(find "$work/inbox" -type f | wc -l)
overflow=$(grep -ci 'rescan\|overflow' "$work/agent.log" || true)
kill -TERM "$pid"; wait "$pid" || true
python3 - "$n" "$t0" "$t1" "$t2" "$rss0" "$peak" "$hwm" "$left" "$overflow" <<'PY'
import sys
n, t0, t1, t2 = int(sys.argv[1]), *map(float, sys.argv[2:5])
rss0, peak, hwm, left, overflow = map(int, sys.argv[5:])
print(f"{n} reports at once (moved in {t1-t0:.1f} s)")
print(f"  all uploaded after {t2-t0:.1f} s ({n/(t2-t0):.0f} files/s, settle 1 s), {left} left in the inbox")
print(f"  RSS: {rss0/1024:.1f} MiB idle, {peak/1024:.1f} MiB at most while draining (VmHWM {hwm/1024:.1f} MiB)")
print(f"  log lines about rescans/overflow: {overflow}")
PY
