#!/usr/bin/env bash
# The ledger after N uploads (default 1 000 000; issue 16): records them through the library
# (benches/ledger.rs: on /dev/shm, where 1 M fsyncs take seconds, not minutes), copies the state
# directory to disk, times Ledger::open, lookups and one compaction of the whole index there,
# then starts the release daemon on it and reads its RSS from /proc, next to the RSS of a
# daemon with an empty ledger. Goal: daemon RSS under 32 MiB. Usage: benches/ledger.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}
. benches/common.sh
cargo bench --quiet --bench ledger --no-run
shm=$(mktemp -d /dev/shm/ledger-bench.XXXXXX)
trap 'bench_cleanup; rm -rf "$shm"' EXIT
cargo bench --quiet --bench ledger -- record "$shm/state" "$n"
mkdir -p "$work/inbox" "$work/empty"
cp -a "$shm/state" "$work/state"
rm -rf "$shm"
sync
cargo bench --quiet --bench ledger -- measure "$work/state"
echo "  on disk           : $(du -sh "$work/state/ledger.index" | cut -f1) ledger.index, $(du -sh "$work/state/ledger-history" | cut -f1) ledger-history/"
start_standin
rss_of() { # CONFIG: the daemon's VmRSS and VmHWM in KiB after start-up
  "$rel/hostedscan-agent" -q -c "$1" &
  local pid=$!
  sleep 5
  awk '/VmRSS|VmHWM/ {printf "%s ", $2}' "/proc/$pid/status"
  kill -TERM "$pid"; wait "$pid" || true
}
agent_config "$work/agent.toml" "$work/inbox"
agent_config "$work/empty/agent.toml" "$work/inbox"
full=$(rss_of "$work/agent.toml")
empty=$(rss_of "$work/empty/agent.toml")
python3 - $full $empty <<'PY'
import sys
rss, hwm, rss0, hwm0 = (int(x) / 1024 for x in sys.argv[1:])
print(f"daemon after start-up (release build)")
print(f"  with the ledger   : RSS {rss:.1f} MiB, peak {hwm:.1f} MiB   (goal: under 32 MiB)")
print(f"  empty ledger      : RSS {rss0:.1f} MiB, peak {hwm0:.1f} MiB")
PY
