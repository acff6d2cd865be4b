#!/usr/bin/env bash
# Peak memory of one `hostedscan-agent --once` pass (validate, hash, queue copy, streamed upload
# to the local HostedScan stand-in) as the report grows: the upload streams from disk, so the
# agent's peak RSS should stay flat. Usage: benches/upload_memory.sh [SIZES_MIB...]
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("${@:-16 256 1024}")
. benches/common.sh
start_standin
printf '%8s %10s %10s %12s\n' "MiB" "seconds" "MB/s" "peak RSS"
for mib in ${sizes[@]}; do
  rm -rf "$work/home"; mkdir -p "$work/home/inbox"
  python3 benches/gen_nmap.py "$mib" "$work/home/inbox/big.xml"
  touch -d '1 minute ago' "$work/home/inbox/big.xml"
  agent_config "$work/home/agent.toml" "$work/home/inbox" 'after_upload = "delete"
max_file_size = "8GiB"'
  start=$(date +%s.%N)
  /usr/bin/time -f '%M' -o "$work/rss" "$rel/hostedscan-agent" -q -c "$work/home/agent.toml" --once >/dev/null
  end=$(date +%s.%N)
  secs=$(python3 -c "print(f'{$end-$start:.2f}')")
  printf '%8s %10s %10s %9s KiB\n' "$mib" "$secs" "$(python3 -c "print(f'{$mib*1.048576/($end-$start):.0f}')")" "$(cat "$work/rss")"
done
