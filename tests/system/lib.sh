# Sourced by tests/system/run.sh: the helpers of the system test suite. Containers (a real
# systemd booted by systemd-nspawn over an overlay of this machine's root), the HostedScan
# stand-in on 127.0.0.1, waiting, and checks that print what an operator would have seen.
#
# Every container, mount and process started here is undone by `cleanup` (the EXIT trap).

# --- reporting ----------------------------------------------------------------------------
passed=0
section() { printf '\n=== %s\n' "$*"; }
ok() { passed=$((passed + 1)); printf 'ok   %s\n' "$*"; }
fail() {
  printf 'FAIL %s\n' "$*" >&2
  if [ -n "${LEADER:-}" ]; then
    echo "--- journal of hostedscan-agent* in the container (last 60 lines)" >&2
    c journalctl -u 'hostedscan-agent*' --no-pager -n 60 >&2 2>/dev/null || true
  fi
  if [ -n "${standin_log:-}" ] && [ -f "$standin_log" ]; then
    echo "--- stand-in (last 20 lines)" >&2
    tail -n 20 "$standin_log" >&2 || true
  fi
  exit 1
}
# expect DESCRIPTION COMMAND...: the command succeeds, or the suite fails naming it.
expect() {
  local what=$1
  shift
  "$@" || fail "$what"
  ok "$what"
}
# contains DESCRIPTION TEXT PATTERN (grep -E): TEXT matches, or fail showing it.
contains() {
  grep -qE -- "$3" <<<"$2" || { printf '%s\n' "$2" | sed 's/^/    | /' >&2; fail "$1 (no match for /$3/)"; }
  ok "$1"
}
lacks() {
  ! grep -qE -- "$3" <<<"$2" || { printf '%s\n' "$2" | grep -E -- "$3" | sed 's/^/    | /' >&2; fail "$1 (matched /$3/)"; }
  ok "$1"
}
# wait_for DESCRIPTION SECONDS COMMAND...: until the command succeeds (polled every half second).
wait_for() {
  local what=$1 secs=$2
  shift 2
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$end" ] || fail "$what (not within ${secs}s)"
    sleep 0.5
  done
  ok "$what"
}

# --- containers ---------------------------------------------------------------------------
containers=()  # "nspawn-pid:dir" of every container booted
LEADER=        # the init (systemd) of the current container, as seen from here

# boot NAME: a fresh machine: an overlay of / (writable, thrown away) with systemd booted in it,
# sharing this machine's network (so 127.0.0.1 is the stand-in's). Sets LEADER.
boot() {
  local name=$1 dir=$work/$1
  mkdir -p "$dir/upper" "$dir/work" "$dir/root"
  # Registered before anything can fail, so that cleanup unmounts it; the PID comes below.
  containers+=("none:$dir")
  mount -t overlay overlay -o "lowerdir=/,upperdir=$dir/upper,workdir=$dir/work" "$dir/root" \
    || fail "mount an overlay of / for $name"
  # A fresh system: nothing of this machine's own agent state (there should be none), and none
  # of the services or timers enabled on it (a PostgreSQL, apt's timers: slow to start, and
  # they would share its network and ports).
  rm -rf "$dir/root/var/lib/hostedscan-agent" "$dir/root/etc/hostedscan-agent"
  find "$dir/root/etc/systemd/system" -mindepth 2 -maxdepth 2 -path '*.wants/*' -type l -delete
  # Nor a container image's policy-rc.d forbidding maintainer scripts to start or stop services
  # (exit 101, as this machine's has): on a real host deb-systemd-invoke acts.
  rm -f "$dir/root/usr/sbin/policy-rc.d"
  systemd-nspawn -q -D "$dir/root" -M "$name" --register=no --keep-unit -b \
    systemd.firstboot=off >"$dir/console.log" 2>&1 &
  local pid=$!
  containers[-1]="$pid:$dir"
  # 120 s: a boot on a loaded CI machine has been seen to need more than 60.
  local end=$((SECONDS + 120))
  LEADER=
  while [ -z "$LEADER" ]; do
    # The container's init once it has exec'd (a child of nspawn named otherwise may be a
    # short-lived helper, or the init not exec'd yet: nsenter into it would fail for good).
    LEADER=$(pgrep -P "$pid" -x 'systemd|init' | head -n 1 || true)
    [ "$SECONDS" -lt "$end" ] || { cat "$dir/console.log" >&2; fail "boot $name: no init"; }
    [ -n "$LEADER" ] || sleep 0.2
  done
  local state
  # is-system-running exits non-zero when degraded (a unit of the host's own packages that
  # fails in a container, e.g. openipmi): the state it prints is what counts.
  until state=$(c systemctl is-system-running 2>/dev/null || true) && [[ $state =~ ^(running|degraded)$ ]]; do
    [ "$SECONDS" -lt "$end" ] || { cat "$dir/console.log" >&2; fail "boot $name: systemd is '$state'"; }
    sleep 0.5
  done
  ok "booted $name: systemd $(c systemctl --version | head -n 1 | cut -d' ' -f2) is $state (pid $LEADER here)"
}

# c COMMAND...: run it in the current container, as root, with a clean environment.
c() {
  nsenter -t "$LEADER" -a env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 TERM=dumb SYSTEMD_PAGER= SYSTEMD_COLORS=0 "$@"
}
# cfile PATH MODE: write stdin to PATH in the container (truncating: an existing file keeps its
# owner; its mode is set to MODE).
cfile() {
  c sh -c 'cat > "$1" && chmod "$2" "$1"' sh "$1" "$2"
}
# croot: the container's root directory as seen from here (for copying files in).
croot() { echo "$work/$1/root"; }

# halt: stop the current container by its PID (SIGTERM to nspawn: a clean poweroff), unmount.
halt() {
  local entry=${containers[-1]}
  stop_container "$entry"
  unset 'containers[-1]'
  LEADER=
}
stop_container() {
  local pid=${1%%:*} dir=${1#*:}
  if [ "$pid" != none ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    local end=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$end" ]; do sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  if mountpoint -q "$dir/root"; then
    umount "$dir/root" 2>/dev/null || umount -l "$dir/root" || true
  fi
  rm -rf "$dir"
}

# --- the stand-in -------------------------------------------------------------------------
standin_pid=
standin_log=
# standin_start [STATUS...]: the HostedScan stand-in on $port (key $key); each STATUS (e.g. 422)
# answers one upload first. Every upload's bytes land in $uploads/<n>-<name>.
standin_start() {
  standin_log=$work/standin.log
  STANDIN_SAVE_DIR=$uploads "$standin_bin" "$port" "$key" "$@" >>"$standin_log" 2>&1 &
  standin_pid=$!
  local end=$((SECONDS + 20))
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    [ "$SECONDS" -lt "$end" ] || fail "the stand-in did not listen on 127.0.0.1:$port"
    sleep 0.2
  done
}
standin_stop() {
  [ -n "$standin_pid" ] || return 0
  kill -INT "$standin_pid" 2>/dev/null || true
  wait "$standin_pid" 2>/dev/null || true
  standin_pid=
}
# received SHA256: the stand-in got an upload with that content.
received() { grep -q "sha256 $1" "$standin_log" 2>/dev/null; }
# upload_named GLOB: the path of the first saved upload whose file name matches.
upload_named() {
  local f
  for f in "$uploads"/*; do
    [ -f "$f" ] || continue
    # shellcheck disable=SC2254
    case ${f##*/} in [0-9]*-$1) echo "$f"; return 0 ;; esac
  done
  return 1
}

# --- reports ------------------------------------------------------------------------------
# report NAME: a real nmap report (made once, of the stand-in's port) with NAME in a comment,
# so that each is new content to the agent's ledger; prints its path here.
report() {
  local out=$work/reports/$1
  mkdir -p "$work/reports"
  { cat "$nmap_report"; printf '<!-- %s -->\n' "$1"; } >"$out"
  echo "$out"
}
sha() { sha256sum "$1" | cut -d' ' -f1; }
# drop FILE DIR: put FILE into DIR in the container as a scanner would (written aside, renamed).
drop() {
  local name=${1##*/}
  c sh -c 'cat > "$2/.$3.part" && chmod 644 "$2/.$3.part" && mv "$2/.$3.part" "$2/$3"' \
    sh - "$2" "$name" <"$1" || fail "cannot drop $name into $2"
}

# --- the service --------------------------------------------------------------------------
prop() { c systemctl show -p "$2" --value "$1"; }
main_pid() { prop hostedscan-agent.service MainPID; }
active() { [ "$(c systemctl is-active "$1")" = active ]; }
# status_json: `hostedscan-agent status --format json` as the service user.
status_json() { c runuser -u hostedscan-agent -- hostedscan-agent status --format json; }
# status_field FIELD: a number from it (queued, failed, rejected, uploaded_total).
status_field() { status_json | python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
status_at_least() { [ "$(status_field "$1")" -ge "$2" ]; }

cleanup() {
  local rc=$?
  standin_stop
  if [ "$rc" != 0 ] && [ "${SYSTEM_TESTS_KEEP:-}" = 1 ] && [ ${#containers[@]} -gt 0 ]; then
    echo "SYSTEM_TESTS_KEEP=1: kept for a look: nsenter -t ${LEADER:-?} -a bash" >&2
    echo "  then: kill ${containers[-1]%%:*}; umount ${containers[-1]#*:}/root; rm -rf $work" >&2
    return $rc
  fi
  local i
  for ((i = ${#containers[@]} - 1; i >= 0; i--)); do stop_container "${containers[i]}"; done
  [ -n "${work:-}" ] && rm -rf "$work"
  return $rc
}
