#!/usr/bin/env bash
# Peak memory of one `hostedscan-agent --once` pass (validate, hash, queue copy, streamed upload
# to the local HostedScan stand-in) as the report grows: the upload streams from disk, so the
# agent's peak RSS should stay flat. Usage: benches/upload_memory.sh [SIZES_MIB...]
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("${@:-16 256 1024}")
cargo build --release --quiet --bins --examples
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
STANDIN_KEEP_BYTES=0 target/release/examples/standin "$port" bench-key >"$work/standin.log" 2>&1 &
sleep 1
printf '%8s %10s %10s %12s\n' "MiB" "seconds" "MB/s" "peak RSS"
for mib in ${sizes[@]}; do
  rm -rf "$work/home"; mkdir -p "$work/home/inbox"
  python3 benches/gen_nmap.py "$mib" "$work/home/inbox/big.xml"
  touch -d '1 minute ago' "$work/home/inbox/big.xml"
  cat >"$work/home/agent.toml" <<TOML
[api]
url = "http://127.0.0.1:$port/v1"
key = "bench-key"
[agent]
state_dir = "$work/home/state"
after_upload = "delete"
max_file_size = "8GiB"
[[watch]]
path = "$work/home/inbox"
TOML
  chmod 600 "$work/home/agent.toml"
  start=$(date +%s.%N)
  /usr/bin/time -f '%M' -o "$work/rss" target/release/hostedscan-agent -q -c "$work/home/agent.toml" --once >/dev/null
  end=$(date +%s.%N)
  secs=$(python3 -c "print(f'{$end-$start:.2f}')")
  printf '%8s %10s %10s %9s KiB\n' "$mib" "$secs" "$(python3 -c "print(f'{$mib*1.048576/($end-$start):.0f}')")" "$(cat "$work/rss")"
done
