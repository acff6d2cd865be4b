#!/usr/bin/env bash
# Checks the systemd units in this folder, without installing anything on this machine:
#   1. `systemd-analyze verify` of every unit, clean. It is run against a throw-away root
#      (--root) holding this system's own units, the units here and the built agent at
#      /usr/bin/hostedscan-agent, so that "Command /usr/bin/hostedscan-agent is not executable"
#      is a real error rather than an expected one.
#   2. `systemd-analyze security --offline=yes`: exposure at most $MAX_EXPOSURE for each service.
#   3. The sysusers.d file parses and creates the user (systemd-sysusers --root, throw-away).
#   4. The agent accepts the command lines the units run (check-config, and --once as a
#      --dry-run), with the config path pointed at a scratch config.
# The agent binary: $HOSTEDSCAN_AGENT_BIN, else ${CARGO_TARGET_DIR:-target}/release/, built
# (cargo build --release --locked) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

MAX_EXPOSURE=${MAX_EXPOSURE:-2.5}
fail() { echo "systemd/check.sh: FAIL: $*" >&2; exit 1; }

if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "systemd-analyze missing: installing systemd"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq systemd >/dev/null
fi
systemd-analyze --version | head -1

bin=${HOSTEDSCAN_AGENT_BIN:-${CARGO_TARGET_DIR:-target}/release/hostedscan-agent}
if [ ! -x "$bin" ]; then
  echo "building $bin"
  cargo build --release --locked
fi

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
install -m 755 /bin/kill "$root/usr/bin/kill"   # ExecReload=/bin/kill
names=()
for u in "${units[@]}"; do
  install -m 644 "$u" "$root/usr/lib/systemd/system/"
  names+=("$(basename "$u")")
done
echo "== systemd-analyze verify --root=<tmp> ${names[*]}"
out=$(systemd-analyze verify --root="$root" "${names[@]}" 2>&1) || { echo "$out"; fail "systemd-analyze verify"; }
[ -z "$out" ] || { echo "$out"; fail "systemd-analyze verify printed warnings"; }
echo "clean"

# --- 2. security -----------------------------------------------------------------------------
for u in systemd/*.service; do
  line=$(systemd-analyze security --offline=yes "$u" 2>&1 | grep 'Overall exposure level') \
    || fail "systemd-analyze security $u gave no score"
  score=$(sed -E 's/.*: ([0-9.]+) .*/\1/' <<<"$line")
  echo "== security $u: exposure $score (max $MAX_EXPOSURE)"
  awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s <= m) }' \
    || fail "$u: exposure $score is above $MAX_EXPOSURE"
  grep -q "exposure level $score " "$u" \
    || fail "$u: the comment at its top does not record exposure $score"
done

# --- 3. sysusers -----------------------------------------------------------------------------
echo "== systemd-sysusers --root=<tmp> systemd/hostedscan-agent.sysusers"
systemd-sysusers --root="$root" - <systemd/hostedscan-agent.sysusers >/dev/null 2>&1 \
  || fail "systemd-sysusers refused systemd/hostedscan-agent.sysusers"
grep -q '^hostedscan-agent:x:[0-9]*:[0-9]*:HostedScan agent:/var/lib/hostedscan-agent:' "$root/etc/passwd" \
  || fail "systemd-sysusers did not create the user as expected"
echo "ok"

# --- 4. the command lines --------------------------------------------------------------------
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
