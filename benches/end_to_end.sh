#!/usr/bin/env bash
# A big Nmap report end to end, the agent against the least a script could do with it, in the
# same run and to the same local HostedScan stand-in (issue 19, item 2):
#   agent: hostedscan-agent --once on a watch directory holding the report: validated, hashed,
#          durably queued (its own copy, fsynced), uploaded (streamed, checked against the hash
#          as it goes), archived (after_upload = "archive", the default)
#   peer:  openssl dgst -sha256 FILE, then curl -F file=@FILE (no validation, no durable copy,
#          no retry, no record of what was sent), one after the other
# Each round starts from an empty state directory and with the report in the page cache (both
# sides read it from memory), after a `sync` so that one round's writeback does not land in the
# next. The agent and the peer take turns going first. Goal: agent at most 1.5x the peer (the
# median of the rounds' ratios); agent peak RSS printed beside it.
# Usage: benches/end_to_end.sh [MIB] [ROUNDS]   (default 1024 MiB, 3 rounds)
# AGENT_ARGS adds arguments to the agent's command line; AGENT_BIN runs another build of it (a
# before/after comparison in the same run of the machine).
set -euo pipefail
cd "$(dirname "$0")/.."
mib=${1:-1024}
rounds=${2:-3}
for t in openssl curl; do
  command -v $t >/dev/null || { echo "$t is needed (apt-get install -y $t)"; exit 1; }
done
. benches/common.sh
start_standin
python3 benches/gen_nmap.py "$mib" "$work/big.xml"
cat "$work/big.xml" >/dev/null
# The source the peer sends to: the one the agent creates (found again by name each round).
src=""

now() { date +%s.%N; }

run_agent() {
  rm -rf "$work/home"
  mkdir -p "$work/home/inbox"
  agent_config "$work/home/agent.toml" "$work/home/inbox" 'after_upload = "archive"
max_file_size = "8GiB"'
  # The agent takes the file from the watch directory: give it a hard link (same inode and page
  # cache, no copy); it reads it through its own handle and never moves it into custody.
  ln "$work/big.xml" "$work/home/inbox/big.xml"
  touch -d '1 minute ago' "$work/home/inbox/big.xml"
  sync
  local t0 t1
  t0=$(now)
  /usr/bin/time -f '%M' -o "$work/rss" "${AGENT_BIN:-$rel/hostedscan-agent}" -q ${AGENT_ARGS:-} \
    -c "$work/home/agent.toml" --once >"$work/agent.out" 2>"$work/agent.err" || {
    echo "the agent failed:"; cat "$work/agent.err"; exit 1; }
  t1=$(now)
  agent_s=$(python3 -c "print($t1 - $t0)")
  rss_kib=$(tail -n1 "$work/rss")
  ls "$work"/home/state/archive/*/big.xml >/dev/null || { echo "not archived"; exit 1; }
  src=$(python3 -c "import json;print(json.load(open('$work/home/state/source.json'))['id'])")
}

run_peer() {
  sync
  local t0 t1
  t0=$(now)
  openssl dgst -sha256 "$work/big.xml" >/dev/null
  curl -sf -o /dev/null -H "X-HOSTEDSCAN-API-KEY: bench-key" \
    -F "source_id=$src" -F "scan_type=NMAP" -F "file=@$work/big.xml;type=application/xml" \
    "http://127.0.0.1:$port/v1/results"
  t1=$(now)
  peer_s=$(python3 -c "print($t1 - $t0)")
}

echo "$mib MiB Nmap report, end to end to the local stand-in, $rounds rounds"
printf '%6s %10s %10s %8s %12s\n' round "agent s" "peer s" ratio "agent RSS"
ratios=()
for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) = 1 ]; then
    run_agent
    run_peer
  else
    run_peer
    run_agent
  fi
  ratio=$(python3 -c "print(f'{$agent_s / $peer_s:.2f}')")
  ratios+=("$ratio")
  printf '%6s %10.2f %10.2f %7sx %8.1f MiB\n' "$r" "$agent_s" "$peer_s" "$ratio" \
    "$(python3 -c "print($rss_kib / 1024)")"
done
python3 - "${ratios[@]}" <<'PY'
import statistics, sys
r = sorted(map(float, sys.argv[1:]))
print(f"median agent/peer: {statistics.median(r):.2f}x  (goal: at most 1.5x; "
      f"peer = openssl dgst -sha256 + curl -F, one after the other)")
PY
