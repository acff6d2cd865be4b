#!/usr/bin/env bash
# Flood: JUNK files that are no report (default 100 000) and UNREADABLE valid reports the agent's
# user cannot read (default 10 000, mode 000) land in a watch directory at once, while the
# release daemon runs as an unprivileged user (nobody, via setpriv, as the packaged service is
# not root; root would read mode-000 files). Measured: how long until every junk file is in
# rejected/, the daemon's peak RSS, the WARN lines per unreadable file (over several rescans),
# how often status.json is rewritten (in all, and once nothing changes any more), and the disk
# rejected/ takes. Goals (issue 13): RSS at most 64 MiB, at most one WARN per unreadable file
# until it changes, status.json not rewritten per rescan, disk bounded.
# Usage (root): benches/flood.sh [JUNK] [UNREADABLE]   STATE_TMPFS=1: state dir on a tmpfs
set -euo pipefail
cd "$(dirname "$0")/.."
junk=${1:-100000}
unread=${2:-10000}
[ "$(id -u)" = 0 ] || { echo "run as root (setpriv, chown, mode-000 files)"; exit 1; }
command -v inotifywait >/dev/null || { apt-get update -qq && apt-get install -y -qq inotify-tools >/dev/null; }
. benches/common.sh
mounted=
flood_cleanup() {
  [ -n "$mounted" ] && umount -l "$mounted"
  if [ -n "${KEEP:-}" ]; then cp "$work/agent.log" "$work/status-writes" "$KEEP"/ 2>/dev/null || true; fi
  bench_cleanup
}
trap flood_cleanup EXIT
start_standin
chmod 755 "$work"
mkdir -p "$work/inbox" "$work/stage" "$work/state"
if [ "${STATE_TMPFS:-0}" = 1 ]; then
  mount -t tmpfs -o size=4g,mode=0755 tmpfs "$work/state" && mounted="$work/state"
fi
python3 - "$junk" "$unread" "$work/stage" <<'PY'
import os, sys
junk, unread, d = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
base = open("tests/fixtures/nmap-tcp-localhost.xml", "rb").read()
for i in range(junk):
    with open(f"{d}/junk-{i}.xml", "wb") as f:
        f.write(f"not a report {i}\n".encode() * 8)
for i in range(unread):
    p = f"{d}/locked-{i}.xml"
    with open(p, "wb") as f:
        f.write(base + f"<!-- {i} -->\n".encode())
    os.chmod(p, 0)
old = 1_600_000_000
for n in os.listdir(d):
    os.utime(f"{d}/{n}", (old, old))
PY
agent_config "$work/agent.toml" "$work/inbox" 'after_upload = "delete"
settle = "1s"
rescan_interval = "5s"'
chmod 644 "$work/agent.toml"
chown -R 65534:65534 "$work/inbox" "$work/state"
inotifywait -q -m -e moved_to --format '%f %T' --timefmt '%s' "$work/state" 2>/dev/null \
  | grep --line-buffered '^status.json ' >"$work/status-writes" &
sleep 0.5
env ${FLOOD_ENV:-} setpriv --reuid=65534 --regid=65534 --clear-groups "$rel/hostedscan-agent" -c "$work/agent.toml" \
  2>"$work/agent.log" &
pid=$!
sleep 2
rss0=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
t0=$(date +%s.%N)
find "$work/stage" -name '*.xml' -print0 | xargs -0 mv -t "$work/inbox"
peak=0
while :; do
  r=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  [ "$r" -gt "$peak" ] && peak=$r
  left_junk=$(find "$work/inbox" -name 'junk-*' | wc -l)
  [ "$left_junk" -eq 0 ] && break
  sleep 0.5
done
t1=$(date +%s.%N)
# The last batch of the parked list is written within a second; then three more rescans with
# nothing new: warnings and status.json must stay still.
sleep 2
writes_before=$(wc -l <"$work/status-writes")
warn_before=$(grep -c ' WARN ' "$work/agent.log" || true)
for _ in $(seq 30); do
  r=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  [ "$r" -gt "$peak" ] && peak=$r
  sleep 0.5
done
writes_after=$(wc -l <"$work/status-writes")
warn_after=$(grep -c ' WARN ' "$work/agent.log" || true)
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
status=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$rel/hostedscan-agent" -c "$work/agent.toml" status --format json)
kill -TERM "$pid"; wait "$pid" || true
rejected_n=$(find "$work/state/rejected" -name 'junk-*.xml' ! -name '*.reason.json' | wc -l)
rejected_du=$(du -sk "$work/state/rejected" | cut -f1)
max_warn=$(grep ' WARN ' "$work/agent.log" | grep -o 'locked-[0-9]*\.xml' | sort | uniq -c | awk '$1 > m {m = $1} END {print m + 0}')
warned_files=$(grep ' WARN ' "$work/agent.log" | grep -o 'locked-[0-9]*\.xml' | sort -u | wc -l)
parked=$(printf '%s' "$status" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("parked"))')
python3 - "$junk" "$unread" "$t0" "$t1" "$rss0" "$peak" "$hwm" "$rejected_n" "$rejected_du" \
  "${max_warn:-0}" "$warned_files" "$writes_before" "$writes_after" "$warn_before" "$warn_after" "$parked" <<'PY'
import sys
junk, unread = int(sys.argv[1]), int(sys.argv[2])
t0, t1 = float(sys.argv[3]), float(sys.argv[4])
rss0, peak, hwm, rej_n, rej_kb, max_warn, warned, wb, wa, warnb, warna = map(int, sys.argv[5:16])
parked = sys.argv[16]
print(f"{junk} junk files and {unread} unreadable reports at once, daemon as nobody")
print(f"  every junk file in rejected/ after {t1-t0:.1f} s ({junk/(t1-t0):.0f} files/s): {rej_n} there, {rej_kb/1024:.1f} MiB on disk")
print(f"  RSS: {rss0/1024:.1f} MiB idle, {peak/1024:.1f} MiB at most (VmHWM {hwm/1024:.1f} MiB)  [goal <= 64 MiB]")
print(f"  WARN lines naming an unreadable file: {warned} files, at most {max_warn} each  [goal <= 1]")
print(f"  WARN lines in 15 s (3 rescans) after the flood: {warna-warnb}  [goal 0]")
print(f"  status.json written {wb} times during the flood, {wa-wb} times in the 15 s after  [goal 0]")
print(f"  status: parked {parked}")
ok = peak <= 64*1024 and max_warn <= 1 and wa == wb and warna == warnb and rej_n == junk
print("PASS" if ok else "FAIL")
PY
