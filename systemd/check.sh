#!/usr/bin/env bash
# Checks the systemd units in this folder, without installing anything on this machine:
#   1. `systemd-analyze verify` of every unit, clean. It is run against a throw-away root
#      (--root) holding this system's own units, the units here and the built agent at
#      /usr/bin/hostedscan-agent, so that "Command /usr/bin/hostedscan-agent is not executable"
#      is a real error rather than an expected one; and with the man pages that build.rs
#      generates in that root's MANPATH, since verify runs man(1) for each man: page that a
#      unit's Documentation= names.
#   2. `systemd-analyze security --offline=yes` of each service as shipped, in that root (so that
#      drop-ins on this machine do not count): exposure at most $MAX_EXPOSURE and the figure
#      recorded in the unit's top comment; no capability at all (an empty CapabilityBoundingSet=,
#      no AmbientCapabilities=) and no AF_PACKET.
#   3. The raw-sockets drop-in (systemd/raw-sockets.conf) installed for each service in that
#      root: `verify` still clean; the service gets CAP_NET_RAW (ambient and bounding) and
#      AF_PACKET and nothing more, keeps the rest of its RestrictAddressFamilies= allow-list (a
#      drop-in adds to it), exposure at most $MAX_EXPOSURE and recorded in the drop-in's comment.
#   4. The sysusers.d file parses and creates the user (systemd-sysusers --root, throw-away).
#   5. The agent accepts the command lines the units run (check-config, --once as a --dry-run,
#      reload with no daemon to signal), with the config path pointed at a scratch config.
# The agent binary: $HOSTEDSCAN_AGENT_BIN, else ${CARGO_TARGET_DIR:-target}/release/; the
# release build is brought up to date either way (packaging/generated-dir.sh), for its man pages.
set -euo pipefail
cd "$(dirname "$0")/.."

MAX_EXPOSURE=${MAX_EXPOSURE:-2.0}
fail() { echo "systemd/check.sh: FAIL: $*" >&2; exit 1; }
# `systemd-analyze security` in the C locale marks a passed test "+" and a failed one "-".
security() { LC_ALL=C systemd-analyze security --offline=yes --root="$root" "$@" 2>&1; }
# has <report> <+|-> <test name>: the report has that test with that mark.
has() { awk -v want="$2 $3 " 'index($0, want) == 1 { found = 1 } END { exit !found }' <<<"$1"; }
# The values of every `Key=` line of a unit file, one per line (an empty value as an empty line).
values() { sed -nE "s/^$2=(.*)\$/\\1/p" "$1"; }

need=()
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v man >/dev/null 2>&1 || need+=(man-db)
if [ ${#need[@]} -gt 0 ]; then
  echo "missing: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
systemd-analyze --version | head -1

echo "== cargo build --release --locked (the binary and the man pages)"
gen=$(bash packaging/generated-dir.sh)
bin=${HOSTEDSCAN_AGENT_BIN:-${CARGO_TARGET_DIR:-target}/release/hostedscan-agent}

units=(systemd/*.service systemd/*.timer)
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

# --- 1. verify -------------------------------------------------------------------------------
mkdir -p "$root/usr/bin" "$root/usr/lib/systemd" "$root/etc"
ln -s usr/bin "$root/bin"
ln -s usr/lib "$root/lib"
for d in /usr/lib/systemd/system /lib/systemd/system; do
  [ -d "$d" ] && cp -a "$d" "$root/usr/lib/systemd/" && break
done
[ -f "$root/usr/lib/systemd/system/sysinit.target" ] || fail "no system units found to verify against"
install -m 755 "$bin" "$root/usr/bin/hostedscan-agent"
mkdir -p "$root/usr/share/man/man1"
install -m 644 "$gen"/man/man1/*.1 "$root/usr/share/man/man1/"
export MANPATH=$root/usr/share/man
names=()
for u in "${units[@]}"; do
  install -m 644 "$u" "$root/usr/lib/systemd/system/"
  names+=("$(basename "$u")")
done
echo "== systemd-analyze verify --root=<tmp> ${names[*]}"
out=$(systemd-analyze verify --root="$root" "${names[@]}" 2>&1) || { echo "$out"; fail "systemd-analyze verify"; }
[ -z "$out" ] || { echo "$out"; fail "systemd-analyze verify printed warnings"; }
echo "clean"

# --- 2. security, as shipped -----------------------------------------------------------------
for u in systemd/*.service; do
  name=$(basename "$u")
  report=$(security "$name") || { echo "$report"; fail "systemd-analyze security $name"; }
  line=$(grep 'Overall exposure level' <<<"$report") || fail "systemd-analyze security $u gave no score"
  score=$(sed -E 's/.*: ([0-9.]+) .*/\1/' <<<"$line")
  echo "== security $u: exposure $score (max $MAX_EXPOSURE)"
  # No capability: one CapabilityBoundingSet= line, empty (no line at all would mean every
  # capability), and no AmbientCapabilities=; systemd must read it the same way.
  [ "$(values "$u" CapabilityBoundingSet)" = "" ] && [ "$(grep -c '^CapabilityBoundingSet=' "$u")" = 1 ] \
    || fail "$u: expected exactly one, empty, CapabilityBoundingSet=" \
            "(got: $(grep '^CapabilityBoundingSet=' "$u" | tr '\n' ' '))"
  [ -z "$(values "$u" AmbientCapabilities | tr -d ' ')" ] \
    || fail "$u: grants ambient capabilities: $(grep '^AmbientCapabilities=' "$u" | tr '\n' ' ')"
  ! grep -E '^- CapabilityBoundingSet=' <<<"$report" \
    || fail "$u: systemd-analyze security finds capabilities in its bounding set (above)"
  has "$report" + AmbientCapabilities= || fail "$u: systemd-analyze security finds ambient capabilities"
  has "$report" + 'RestrictAddressFamilies=~AF_PACKET' || fail "$u: allows AF_PACKET sockets"
  echo "ok: no capability, no AF_PACKET"
  awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s <= m) }' \
    || fail "$u: exposure $score is above $MAX_EXPOSURE"
  grep -q "exposure level $score " "$u" \
    || fail "$u: the comment at its top does not record exposure $score"
done

# --- 3. the raw-sockets drop-in ---------------------------------------------------------------
dropin=systemd/raw-sockets.conf
[ -f "$dropin" ] || fail "$dropin missing"
[ "$(values "$dropin" AmbientCapabilities)" = CAP_NET_RAW ] \
  || fail "$dropin: AmbientCapabilities= must be exactly CAP_NET_RAW"
[ "$(values "$dropin" CapabilityBoundingSet)" = CAP_NET_RAW ] \
  || fail "$dropin: CapabilityBoundingSet= must be exactly CAP_NET_RAW"
for u in systemd/*.service; do
  install -D -m 644 "$dropin" "$root/etc/systemd/system/$(basename "$u").d/raw-sockets.conf"
done
echo "== systemd-analyze verify --root=<tmp> ${names[*]}, with $dropin in each service's .d/"
out=$(systemd-analyze verify --root="$root" "${names[@]}" 2>&1) \
  || { echo "$out"; fail "systemd-analyze verify (with $dropin)"; }
[ -z "$out" ] || { echo "$out"; fail "systemd-analyze verify printed warnings (with $dropin)"; }
echo "clean"
for u in systemd/*.service; do
  name=$(basename "$u")
  report=$(security "$name") || { echo "$report"; fail "systemd-analyze security $name (with $dropin)"; }
  score=$(grep 'Overall exposure level' <<<"$report" | sed -E 's/.*: ([0-9.]+) .*/\1/')
  [ -n "$score" ] || fail "systemd-analyze security $name gave no score (with $dropin)"
  echo "== security $u with $dropin: exposure $score (max $MAX_EXPOSURE)"
  has "$report" - AmbientCapabilities= || fail "$u with $dropin: no ambient capability"
  has "$report" - 'CapabilityBoundingSet=~CAP_NET_(BIND_SERVICE|BROADCAST|RAW)' \
    || fail "$u with $dropin: CAP_NET_RAW is not in the bounding set"
  extra=$(grep -E '^- CapabilityBoundingSet=' <<<"$report" \
            | grep -vF 'CAP_NET_(BIND_SERVICE|BROADCAST|RAW)') \
    && { echo "$extra"; fail "$u with $dropin: capabilities beyond CAP_NET_RAW (above)"; }
  has "$report" - 'RestrictAddressFamilies=~AF_PACKET' || fail "$u with $dropin: AF_PACKET is not allowed"
  # The drop-in's RestrictAddressFamilies=AF_PACKET adds to the unit's allow-list: the agent
  # keeps AF_INET/AF_INET6 (the API) and AF_UNIX, and other families stay denied.
  has "$report" - 'RestrictAddressFamilies=~AF_(INET|INET6)' \
    && has "$report" - 'RestrictAddressFamilies=~AF_UNIX' \
    || fail "$u with $dropin: RestrictAddressFamilies= lost AF_INET/AF_UNIX (replaced, not added to)"
  has "$report" + 'RestrictAddressFamilies=~…' || has "$report" + 'RestrictAddressFamilies=~...' \
    || fail "$u with $dropin: exotic address families are no longer denied"
  echo "ok: CAP_NET_RAW (ambient, bounding) and AF_PACKET added, nothing else"
  awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s <= m) }' \
    || fail "$u with $dropin: exposure $score is above $MAX_EXPOSURE"
  grep -q "exposure level $score " "$dropin" \
    || fail "$dropin: the comment at its top does not record exposure $score"
done
rm -r "$root"/etc/systemd/system/*.service.d

# --- 4. sysusers -----------------------------------------------------------------------------
echo "== systemd-sysusers --root=<tmp> systemd/hostedscan-agent.sysusers"
systemd-sysusers --root="$root" - <systemd/hostedscan-agent.sysusers >/dev/null 2>&1 \
  || fail "systemd-sysusers refused systemd/hostedscan-agent.sysusers"
grep -q '^hostedscan-agent:x:[0-9]*:[0-9]*:hostedscan-agent:/var/lib/hostedscan-agent:' "$root/etc/passwd" \
  || fail "systemd-sysusers did not create the user as expected"
echo "ok"

# --- 5. the command lines --------------------------------------------------------------------
echo "== the units' hostedscan-agent command lines"
scratch="$root/scratch"
mkdir -m 700 "$scratch" "$scratch/state" "$scratch/state/inbox"
cat >"$scratch/agent.toml" <<TOML
[api]
key = "test-data-key"
[agent]
state_dir = "$scratch/state"
TOML
chmod 600 "$scratch/agent.toml"
n=0
for u in systemd/*.service; do
  while IFS= read -r cmd; do
    [ -n "$cmd" ] || continue
    args=${cmd#/usr/bin/hostedscan-agent }
    args=${args//\/etc\/hostedscan-agent\/agent.toml/$scratch/agent.toml}
    read -r -a argv <<<"$args"
    case " $args " in
      *" check-config "*) ;;
      *" --once "*) argv+=(--dry-run) ;;
      *" reload "*)
        # ExecReload=: no daemon here, so $MAINPID becomes this shell (not an agent): the
        # command line parses and the config loads, then it refuses to signal (exit 75).
        argv=("${argv[@]//\$MAINPID/$$}")
        rc=0
        "$bin" "${argv[@]}" >"$scratch/out" 2>&1 || rc=$?
        [ "$rc" = 75 ] && grep -q "is not a running hostedscan-agent" "$scratch/out" \
          || { cat "$scratch/out"; fail "$u: \`hostedscan-agent ${argv[*]}\` exited $rc, expected 75 (no agent to reload)"; }
        echo "ok: $u: hostedscan-agent ${argv[*]} (75: no daemon to signal)"
        n=$((n + 1))
        continue
        ;;
      *) continue ;; # the daemon itself: not started here
    esac
    "$bin" "${argv[@]}" >"$scratch/out" 2>&1 \
      || { cat "$scratch/out"; fail "$u: \`hostedscan-agent ${argv[*]}\` failed"; }
    echo "ok: $u: hostedscan-agent ${argv[*]}"
    n=$((n + 1))
  done < <(sed -nE 's/^Exec[A-Za-z]+=[-+!@:]*(\/usr\/bin\/hostedscan-agent .*)$/\1/p' "$u")
done
[ "$n" -ge 3 ] || fail "expected at least 3 hostedscan-agent command lines to check, found $n"
echo "systemd/check.sh: all checks passed"
