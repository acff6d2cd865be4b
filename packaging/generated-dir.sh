#!/usr/bin/env bash
# Prints the directory where build.rs wrote the man pages (man/man1/*.1) and the shell
# completions (completions/) of the release build, after `cargo build --release --locked` (a
# no-op when the build is up to date): the build script's OUT_DIR, as cargo's JSON
# build-script-executed message names it (cargo sends it for a build script that did not need
# to run again too). Used by packaging/build.sh and systemd/check.sh; the build's own messages
# go to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

json=$(cargo build --release --locked --message-format=json-render-diagnostics)
pkgid=$(cargo pkgid)
gen=$(grep -F '"reason":"build-script-executed"' <<<"$json" | grep -F "\"package_id\":\"$pkgid\"" \
  | sed -nE 's/.*"out_dir":"([^"]*)".*/\1/p' | tail -n 1)
if [ -z "$gen" ] || [ ! -f "$gen/man/man1/hostedscan-agent.1" ]; then
  echo "packaging/generated-dir.sh: build.rs's output (man pages, completions) not found for $pkgid" >&2
  exit 1
fi
echo "$gen"
