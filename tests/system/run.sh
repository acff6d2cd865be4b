#!/usr/bin/env bash
# The system test suite: the .deb and the .rpm installed as users install them, under a real
# systemd (systemd-nspawn booting an overlay of this machine's root, sharing its network), and
# driven from outside as an operator would, against the HostedScan stand-in on 127.0.0.1.
#
#   sudo bash tests/system/run.sh          # about 10 minutes; packaging/README.md says more
#
# Scenarios (each a fresh machine):
#   deb       install, check-config, start with the key as a credential, the status line, a
#             dropped report, nmap -sT and (with the shipped raw-sockets drop-in) -sS jobs,
#             reload (a new watch; a broken file refused), SIGKILL and a hung agent restarted
#             with nothing lost, the --once timer, the live sandbox's exposure, the journal,
#             then remove and purge with reports still pending in every place
#   deb-upgrade  the previous version (a pinned commit, built once and cached) with a report
#             queued, upgraded: queue kept, config untouched, the report uploaded; purge of a
#             state directory with nothing pending deletes it
#   rpm       the same install checks with `rpm -i --nodeps`, the package owning its config
#             directory, upload, reload, erase keeping what is pending
#   rpm-upgrade  `rpm -U` from the previous version with a report queued
#
# Needs root, systemd-nspawn (Debian: systemd-container, installed when missing) and overlayfs.
# Without them it skips with a message, except under CI=true, where it fails.
# Environment: SYSTEM_TESTS_PACKAGES=DIR (the new .deb and .rpm; default: packaging/build.sh
# builds them), SYSTEM_TESTS_CACHE=DIR (the previous version's packages, default
# ~/.cache/hostedscan-agent-system-tests), SYSTEM_TESTS_ONLY="deb rpm ..." (some scenarios),
# SYSTEM_TESTS_KEEP=1 (on failure, leave the container running for a look).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD

# The previous release the upgrade starts from: the last commit landed before this suite
# existed. Move it forward when a release's packaging changes what an upgrade must carry over.
PREVIOUS=b5f25c16595a67b69512aa81628d937e0affcae2
PREVIOUS_VERSION=0.1.0~git.${PREVIOUS:0:7}

skip() {
  if [ "${CI:-}" = true ]; then
    echo "tests/system: FAIL: $* (CI=true: the system tests must run)" >&2
    exit 1
  fi
  echo "tests/system: SKIPPED: $*"
  exit 0
}

# --- what it needs ------------------------------------------------------------------------
[ "$(id -u)" = 0 ] || skip "needs root (systemd-nspawn, mount): sudo bash tests/system/run.sh"
if ! command -v systemd-nspawn >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "== apt-get install systemd-container (systemd-nspawn)"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq systemd-container >/dev/null; } || true
  fi
  command -v systemd-nspawn >/dev/null 2>&1 || skip "systemd-nspawn is not available (Debian: apt-get install systemd-container)"
fi
for tool in nmap rpm python3 nsenter; do
  command -v "$tool" >/dev/null 2>&1 || skip "$tool is missing"
done
[ -x /lib/systemd/systemd ] || [ -x /usr/lib/systemd/systemd ] || skip "no systemd on this machine to boot"
probe=$(mktemp -d /var/tmp/hostedscan-system-probe.XXXXXX)
mkdir -p "$probe/u" "$probe/w" "$probe/m"
if ! mount -t overlay overlay -o "lowerdir=/,upperdir=$probe/u,workdir=$probe/w" "$probe/m" 2>/dev/null; then
  rm -rf "$probe"
  skip "cannot mount an overlay of / (overlayfs unavailable here)"
fi
umount "$probe/m"
rm -rf "$probe"

work=$(mktemp -d /var/tmp/hostedscan-system.XXXXXX)
uploads=$work/uploads
mkdir -p "$uploads"
# shellcheck source=tests/system/lib.sh
source tests/system/lib.sh
trap cleanup EXIT
trap 'exit 130' INT TERM
started=$SECONDS

# --- the packages -------------------------------------------------------------------------
section "packages"
target=${CARGO_TARGET_DIR:-$repo/target}
if [ -n "${SYSTEM_TESTS_PACKAGES:-}" ]; then
  pkgs=$SYSTEM_TESTS_PACKAGES
else
  bash packaging/build.sh >"$work/build.log" 2>&1 || { tail -n 40 "$work/build.log"; fail "packaging/build.sh"; }
  pkgs=$target/packages
fi
debs=("$pkgs"/hostedscan-agent_*.deb)
rpms=("$pkgs"/hostedscan-agent-*.rpm)
deb=${debs[0]}
rpmfile=${rpms[0]}
[ -f "$deb" ] && [ -f "$rpmfile" ] || fail "no .deb and .rpm in $pkgs"
ok "new: ${deb##*/}, ${rpmfile##*/}"

# The previous version, built from its commit once and kept in the cache. Its dependencies come
# from this build's target directory (copied), so only the agent itself is compiled again.
# Keyed by the spec too: the previous rpm is made with this checkout's spec (see below).
spec_sum=$(sha256sum packaging/rpm/hostedscan-agent.spec | cut -c1-12)
cache=${SYSTEM_TESTS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hostedscan-agent-system-tests}/$PREVIOUS-$spec_sum
if ! ls "$cache"/*.deb "$cache"/*.rpm >/dev/null 2>&1; then
  echo "building the previous version ($PREVIOUS_VERSION) into $cache"
  git cat-file -e "$PREVIOUS^{commit}" 2>/dev/null \
    || git fetch -q --unshallow 2>/dev/null || git fetch -q origin "$PREVIOUS" 2>/dev/null || true
  git cat-file -e "$PREVIOUS^{commit}" 2>/dev/null \
    || fail "commit $PREVIOUS (the previous version) is not in this clone: fetch the full history"
  prev=$work/previous
  mkdir -p "$prev/src" "$prev/target/release"
  git archive "$PREVIOUS" | tar -x -C "$prev/src"
  [ -d "$target/release/deps" ] && cp -a --reflink=auto "$target/release/build" "$target/release/deps" \
    "$target/release/.fingerprint" "$prev/target/release/" 2>/dev/null || true
  (
    cd "$prev/src"
    export CARGO_TARGET_DIR=$prev/target
    cargo build --release --locked --quiet
    cargo deb --no-build --strip --deb-version "$PREVIOUS_VERSION-1" --output "$prev/out/" >/dev/null
    # The rpm: this checkout's spec over the old commit's files (binary, units, scriptlets).
    # The files the spec packages that the old commit did not have yet (the alerts and the
    # dashboard; the man pages and completions, generated) are taken from this checkout and
    # its packaging/build.sh: the upgrade starts from an old binary, units and scriptlets.
    for f in packaging/prometheus/alerts.yml packaging/grafana/hostedscan-agent.json; do
      [ -e "$f" ] || install -D -m 644 "$repo/$f" "$f"
    done
    [ -d "$target/release/assets/man" ] \
      || { echo "no $target/release/assets: run packaging/build.sh first" >&2; exit 1; }
    mkdir -p "$prev/rpm"
    strip -o "$prev/rpm/hostedscan-agent" "$prev/target/release/hostedscan-agent"
    rpmbuild -bb "$repo/packaging/rpm/hostedscan-agent.spec" \
      --define "_topdir $prev/rpm/top" --define "_tmppath $prev/rpm" \
      --define "_repo $prev/src" --define "_bin $prev/rpm/hostedscan-agent" \
      --define "_assets $target/release/assets" \
      --define "pkg_version $PREVIOUS_VERSION" --define "_rpmdir $prev/out" \
      --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" >/dev/null
  ) >"$work/previous.log" 2>&1 || { tail -n 40 "$work/previous.log"; fail "build the previous version"; }
  mkdir -p "$cache"
  cp "$prev"/out/*.deb "$prev"/out/*.rpm "$cache/"
  rm -rf "$prev"
fi
prev_debs=("$cache"/*.deb)
prev_rpms=("$cache"/*.rpm)
prev_deb=${prev_debs[0]}
prev_rpm=${prev_rpms[0]}
ok "previous: ${prev_deb##*/}, ${prev_rpm##*/} (commit ${PREVIOUS:0:7})"

# --- the stand-in and a real nmap report -----------------------------------------------------
section "stand-in"
cargo build --release --locked --quiet --example standin
standin_bin=$target/release/examples/standin
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
mport=$(free_port)  # the agent's /metrics
# A key that must never appear in a log.
key=hsk-system-test-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
standin_start
ok "HostedScan stand-in on 127.0.0.1:$port"
nmap_report=$work/nmap.xml
nmap -sT -Pn -n -p "$port" -oX "$nmap_report" 127.0.0.1 >/dev/null
grep -q "portid=\"$port\"><state state=\"open\"" "$nmap_report" || fail "nmap on this machine did not see port $port open"
ok "real nmap report of 127.0.0.1:$port (open) to drop"

# The agent's config as an operator writes it: the stand-in as the API, the key only in the
# credential file, short settle/rescan so that the suite does not wait. $1: more sections.
agent_toml() {
  cat <<TOML
[api]
url = "http://127.0.0.1:$port/v1"
timeout = "30s"
connect_timeout = "2s"

[source]
name = "System tests ({hostname})"

[agent]
settle = "1s"
rescan_interval = "5s"

[retry]
initial_backoff = "500ms"
max_backoff = "2s"

[metrics]
listen = "127.0.0.1:$mport"

[[watch]]
path = "/var/lib/hostedscan-agent/inbox"
${1:-}
TOML
}
# Test-only timings (the shipped units keep theirs): a hung agent is found in 10 s, a restart
# comes after 1 s, and the --once timer fires 3 s after it is started.
test_dropins() {
  c mkdir -p /etc/systemd/system/hostedscan-agent.service.d /etc/systemd/system/hostedscan-agent-once.timer.d
  printf '[Service]\nWatchdogSec=10s\nRestartSec=1s\n' \
    | cfile /etc/systemd/system/hostedscan-agent.service.d/50-system-test.conf 644
  printf '[Timer]\nOnCalendar=\nOnActiveSec=3s\nAccuracySec=1s\nRandomizedDelaySec=0\nPersistent=false\n' \
    | cfile /etc/systemd/system/hostedscan-agent-once.timer.d/50-system-test.conf 644
  c systemctl daemon-reload
}
put_key() {
  printf '%s\n' "$key" | c sh -c 'umask 077; cat > /etc/hostedscan-agent/api-key'
}

want() { [[ " ${SYSTEM_TESTS_ONLY:-deb deb-upgrade rpm rpm-upgrade} " == *" $1 "* ]]; }

# shellcheck source=tests/system/scenarios.sh
source tests/system/scenarios.sh

want deb && scenario_deb
want deb-upgrade && scenario_deb_upgrade
want rpm && scenario_rpm
want rpm-upgrade && scenario_rpm_upgrade

section "done"
echo "tests/system: $passed checks passed in $((SECONDS - started))s"
