# Sourced by the benchmark scripts that run the agent against a local API: the release build,
# a scratch directory removed on exit (with every background process), a free port, the
# HostedScan stand-in, and the agent's config. The binaries are in $rel (CARGO_TARGET_DIR is
# honoured). The scratch directory (and so the agent's state directory and watch directories) is
# made under $BENCH_DIR when it is set (default /tmp): point it at a mount of the file system to
# measure. A script with more to undo calls bench_cleanup from its own EXIT trap.
cargo build --release --quiet --bins --examples
rel=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d -p "${BENCH_DIR:-/tmp}")
bench_cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  rm -rf "$work"
}
trap bench_cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

# The stand-in on $port (key "bench-key"), keeping only sizes and hashes of what it receives;
# every request and upload goes to $work/standin.log.
start_standin() {
  STANDIN_KEEP_BYTES=0 "$rel/examples/standin" "$port" bench-key >"$work/standin.log" 2>&1 &
  sleep 1
}

# agent_config FILE WATCH_DIR [AGENT_KEY_LINES] [EXTRA_SECTIONS]: a config for the API on $port
# with its state beside FILE (in state/), mode 600.
agent_config() {
  cat >"$1" <<TOML
[api]
url = "http://127.0.0.1:$port/v1"
key = "bench-key"
timeout = "10m"
${4:-}
[agent]
state_dir = "$(dirname "$1")/state"
${3:-}
[[watch]]
path = "$2"
TOML
  chmod 600 "$1"
}
