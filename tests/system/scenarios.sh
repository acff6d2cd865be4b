# Sourced by tests/system/run.sh: the scenarios, each on a fresh machine. Every check says
# what an operator would see; `fail` shows the agent's journal and the stand-in's log.

STATE=/var/lib/hostedscan-agent
INBOX=$STATE/inbox
INBOX2=$STATE/inbox-dmz

# A job every 10 s (cron with seconds). $1 name, $2 nmap arguments (TOML array items), $3 more.
nmap_job() {
  cat <<TOML
[[job]]
name = "$1"
scanner = "nmap"
schedule = "*/10 * * * * *"
targets = ["127.0.0.1"]
args = [$2, "-Pn", "-n", "-p", "$port"]
timeout = "2m"
${3:-}
TOML
}
second_watch() { printf '[[watch]]\npath = "%s"\n' "$INBOX2"; }

# reload_to_new_watch PID NAME: agent.toml (written by the caller) adds $INBOX2: `systemctl
# reload` succeeds (the key is a credential ExecReload= cannot read), the same process goes on,
# and a report NAME dropped into the new watch is uploaded.
reload_to_new_watch() {
  local out r
  out=$(c systemctl reload hostedscan-agent 2>&1) || { echo "$out"; fail "systemctl reload (a new watch)"; }
  ok "systemctl reload with a new watch succeeds"
  expect "... in the same process" test "$(main_pid)" = "$1"
  r=$(report "$2")
  drop "$r" "$INBOX2"
  wait_for "a report dropped into the new watch $INBOX2 is uploaded" 30 received "$(sha "$r")"
}
inbox_empty() { [ -z "$(c find "$1" -mindepth 1 -maxdepth 1 -not -name '.*' -print -quit)" ]; }
# nmap_upload JOB SCANTYPE: a saved upload of the job's report showing $port open, scanned as
# SCANTYPE (connect or syn).
nmap_upload() {
  local f
  f=$(upload_named "$1-*.xml") || return 1
  grep -q "portid=\"$port\"><state state=\"open\"" "$f" && grep -q "<scaninfo type=\"$2\"" "$f"
}
exposure() {
  c systemd-analyze security --no-pager hostedscan-agent.service 2>&1 \
    | sed -nE 's/.*Overall exposure level for hostedscan-agent.service: ([0-9.]+).*/\1/p'
}
not() { ! "$@"; }
# The agent's /metrics (it listens on 127.0.0.1 in the container: the same network as here).
metrics_show() {
  local m
  m=$(python3 -c "import urllib.request as u; print(u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:$mport/metrics').read().decode())") || return 1
  grep -qE '^hostedscan_agent_queue_depth [0-9]' <<<"$m" \
    && grep -qE '^hostedscan_agent_uploads_total\{result="uploaded"\} [1-9]' <<<"$m"
}
queue_empty() { [ "$(status_field queued)" = 0 ]; }
at_most() { [[ $1 =~ ^[0-9]+(\.[0-9]+)?$ ]] && awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 <= b + 0) }'; }
# no_process PATTERN: pgrep in the container finds none (exit 1 exactly: not an nsenter failure).
no_process() {
  local rc=0
  c pgrep -f "$1" >/dev/null || rc=$?
  [ "$rc" = 1 ]
}
# once_done: the --once service ran to its end and exited 0.
once_done() {
  [ "$(prop hostedscan-agent-once.service ActiveState)" = inactive ] \
    && [ "$(prop hostedscan-agent-once.service Result)" = success ] \
    && [ "$(prop hostedscan-agent-once.service ExecMainCode)" = 1 ] \
    && [ "$(prop hostedscan-agent-once.service ExecMainStatus)" = 0 ]
}
restarts() { prop hostedscan-agent.service NRestarts; }
# restarted_from PID COUNT: running again under a new main PID, after COUNT restarts or more.
restarted_from() {
  active hostedscan-agent.service && [ "$(main_pid)" != "$1" ] && [ "$(main_pid)" != 0 ] \
    && [ "$(restarts)" -ge "$2" ]
}
all_received() {
  local f
  for f in "$@"; do received "$(sha "$f")" || return 1; done
}

# --- deb: a fresh install, a working service, and what removing it keeps ------------------
scenario_deb() {
  local out st r pid n before
  section "deb: install on a fresh system"
  boot deb
  cp "$deb" "$(croot deb)/root/agent.deb"
  out=$(c dpkg -i /root/agent.deb 2>&1) || { echo "$out"; fail "dpkg -i ${deb##*/}"; }
  ok "dpkg -i ${deb##*/}"
  contains "the install says the agent is not configured yet" "$out" "not configured yet"
  contains "... names the missing key and where to put it" "$out" "no API key found.*|/etc/hostedscan-agent/api-key"
  expect "the daemon is enabled" test "$(c systemctl is-enabled hostedscan-agent.service)" = enabled
  expect "... and not started without a key" test "$(c systemctl is-active hostedscan-agent.service)" = inactive
  expect "the --once timer is left disabled" test "$(c systemctl is-enabled hostedscan-agent-once.timer)" = disabled
  out=$(c stat -c '%a %U:%G %s %n' /etc/hostedscan-agent /etc/hostedscan-agent/agent.toml \
    /etc/hostedscan-agent/api-key /usr/bin/hostedscan-agent /usr/share/hostedscan-agent/raw-sockets.conf)
  contains "agent.toml is root:hostedscan-agent 0640" "$out" '^640 root:hostedscan-agent [0-9]+ /etc/hostedscan-agent/agent.toml$'
  contains "api-key is root-only (0600) and empty" "$out" '^600 root:root 0 /etc/hostedscan-agent/api-key$'
  contains "the raw-sockets drop-in is shipped, inactive" "$out" 'raw-sockets.conf$'
  expect "the system user hostedscan-agent exists" c id hostedscan-agent

  section "deb: configure, check-config, start with the key as a credential"
  { agent_toml; nmap_job tcp-connect '"-sT"'; } | cfile /etc/hostedscan-agent/agent.toml 640
  put_key
  out=$(c sh -c 'CREDENTIALS_DIRECTORY=/etc/hostedscan-agent hostedscan-agent check-config' 2>&1) \
    || { echo "$out"; fail "check-config as README.md says"; }
  contains "check-config passes, the key from the credential" "$out" 'key +from systemd credential /etc/hostedscan-agent/api-key'
  contains "... shows the job's program and argument count only" "$out" 'tcp-connect .*nmap'
  out=$(c sh -c 'CREDENTIALS_DIRECTORY=/etc/hostedscan-agent hostedscan-agent test-connection' 2>&1) \
    || { echo "$out"; fail "test-connection"; }
  ok "test-connection: the stand-in accepts the key"
  test_dropins
  expect "systemctl start hostedscan-agent" c timeout 120 systemctl start hostedscan-agent
  st=$(c systemctl status hostedscan-agent --no-pager 2>&1 || true)
  contains "systemctl status: active, the agent's own status line" "$st" \
    'Status: "queued [0-9]+, failed [0-9]+, rejected [0-9]+; last upload'
  contains "... after ExecStartPre's check-config passed" "$st" 'ExecStartPre=.*check-config.*status=0/SUCCESS'
  out=$(c stat -c '%a %U' "$STATE" "$INBOX")
  contains "the state directory is the service user's, 0750" "$out" '^750 hostedscan-agent$'

  section "deb: a dropped report, and an nmap -sT job"
  r=$(report dropped-1.xml)
  drop "$r" "$INBOX"
  wait_for "a report dropped into $INBOX is uploaded" 30 received "$(sha "$r")"
  wait_for "... and has left the inbox" 10 inbox_empty "$INBOX"
  wait_for "the nmap -sT job (every 10 s) uploads a report showing port $port open" 60 nmap_upload tcp-connect connect

  section "deb: reload with another watch and a SYN job (no capability yet)"
  pid=$(main_pid)
  { agent_toml "$(second_watch)"; nmap_job tcp-syn '"-sS"' 'privileged = true'; } \
    | cfile /etc/hostedscan-agent/agent.toml 640
  reload_to_new_watch "$pid" deb-dmz.xml
  wait_for "the default unit grants no raw socket: the SYN job fails" 60 \
    sh -c "nsenter -t $LEADER -a journalctl -u hostedscan-agent -o cat | grep -q 'job run failed.*raw socket.*job=tcp-syn'"
  expect "... and uploads nothing" test -z "$(upload_named 'tcp-syn-*.xml' || true)"
  n=$(exposure)
  expect "systemd-analyze security of the live unit: $n (at most 2.0)" at_most "$n" 2.0

  section "deb: the shipped raw-sockets drop-in, a SYN scan"
  c install -D -m 644 /usr/share/hostedscan-agent/raw-sockets.conf \
    /etc/systemd/system/hostedscan-agent.service.d/raw-sockets.conf
  c systemctl daemon-reload
  expect "systemctl restart hostedscan-agent (with raw-sockets.conf)" c timeout 120 systemctl restart hostedscan-agent
  out=$(c sh -c 'grep -E "^Cap(Amb|Bnd)" /proc/$(systemctl show -p MainPID --value hostedscan-agent)/status')
  contains "the agent has CAP_NET_RAW (ambient), nothing more" "$out" '^CapAmb:\s+0000000000002000$'
  wait_for "the nmap -sS job (privileged) uploads a SYN scan showing port $port open" 60 nmap_upload tcp-syn syn
  n=$(exposure)
  expect "systemd-analyze security with raw-sockets.conf: $n (at most 2.0)" at_most "$n" 2.0

  section "deb: a broken file is refused by systemctl reload"
  agent_toml "$(second_watch)" | cfile /etc/hostedscan-agent/agent.toml 640
  out=$(c systemctl reload hostedscan-agent 2>&1) || { echo "$out"; fail "systemctl reload (jobs removed)"; }
  pid=$(main_pid)
  { agent_toml "$(second_watch)"; printf '[agent]\nsettle = "soon"\n'; } | cfile /etc/hostedscan-agent/agent.toml 640
  ! c systemctl reload hostedscan-agent >/dev/null 2>&1 || fail "systemctl reload of a broken file succeeded"
  ok "systemctl reload of a broken agent.toml fails"
  out=$(c journalctl -u hostedscan-agent -o cat --no-pager)
  contains "... saying why, and that the agent keeps its configuration" "$out" 'agent.settle.*|not reloaded: the daemon keeps its configuration'
  { agent_toml "$(second_watch)" | sed 's|^\[agent\]$|[agent]\nstate_dir = "/var/lib/hostedscan-agent-elsewhere"|'; } \
    | cfile /etc/hostedscan-agent/agent.toml 640
  ! c systemctl reload hostedscan-agent >/dev/null 2>&1 || fail "systemctl reload with another state_dir succeeded"
  out=$(c journalctl -u hostedscan-agent -o cat --no-pager)
  contains "systemctl reload with another state_dir fails: it needs a restart" "$out" 'agent.state_dir changed\?.*needs a restart'
  expect "... the agent goes on, same process" test "$(main_pid)" = "$pid"
  agent_toml "$(second_watch)" | cfile /etc/hostedscan-agent/agent.toml 640
  r=$(report after-broken-reload.xml)
  drop "$r" "$INBOX"
  wait_for "... and still uploads" 30 received "$(sha "$r")"

  section "deb: SIGKILL, restarted by systemd, nothing lost"
  pid=$(main_pid)
  before=$(restarts)
  local killed=()
  for n in 1 2 3 4 5; do killed+=("$(report killed-$n.xml)"); done
  for r in "${killed[@]}"; do drop "$r" "$INBOX"; done
  c systemctl kill -s KILL --kill-whom=main hostedscan-agent
  wait_for "systemd restarts the agent after SIGKILL" 30 restarted_from "$pid" $((before + 1))
  wait_for "... and the 5 reports dropped just before are all uploaded" 60 all_received "${killed[@]}"

  section "deb: a hung agent (SIGSTOP) past WatchdogSec, restarted, nothing lost"
  pid=$(main_pid)
  before=$(restarts)
  c kill -STOP "$pid"
  local hung=()
  for n in 1 2 3; do hung+=("$(report hung-$n.xml)"); done
  for r in "${hung[@]}"; do drop "$r" "$INBOX"; done
  wait_for "systemd's watchdog restarts the stopped agent" 60 restarted_from "$pid" $((before + 1))
  out=$(c journalctl -u hostedscan-agent -o cat --no-pager)
  contains "... the journal says why" "$out" 'Watchdog timeout'
  wait_for "... and the 3 reports dropped while it hung are uploaded" 60 all_received "${hung[@]}"

  section "deb: hostedscan-agent-once.timer runs --once"
  r=$(report by-the-timer.xml)
  # As README.md says: the daemon disabled, the timer enabled.
  expect "systemctl disable --now hostedscan-agent" c systemctl disable --now hostedscan-agent
  drop "$r" "$INBOX"
  expect "systemctl enable --now hostedscan-agent-once.timer" c systemctl enable --now hostedscan-agent-once.timer
  wait_for "the timer's --once pass uploads the report" 60 received "$(sha "$r")"
  wait_for "... and the pass ends successfully (exited, status 0)" 30 once_done
  out=$(c journalctl -u hostedscan-agent-once -o cat --no-pager)
  contains "... its summary is in the journal" "$out" 'uploaded'
  c systemctl disable --now hostedscan-agent-once.timer
  expect "back to the daemon: systemctl enable --now hostedscan-agent" c timeout 120 systemctl enable --now hostedscan-agent

  section "deb: metrics"
  r=$(report for-the-metrics.xml)
  drop "$r" "$INBOX"
  wait_for "a report dropped after the switch back is uploaded" 30 received "$(sha "$r")"
  wait_for "/metrics (metrics.listen) counts the upload and shows the queue" 15 metrics_show

  section "deb: the journal"
  out=$(c journalctl -u 'hostedscan-agent*' -o cat --no-pager)
  [ -n "$out" ] || fail "the journal holds nothing of the agent"
  lacks "no colours (escape sequences) in the agent's journal" "$out" $'\x1b'
  lacks "no timestamps of its own (journald has them)" "$out" '^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:'
  out=$(c journalctl -o cat --no-pager)
  lacks "the API key appears nowhere in the journal" "$out" "$key"

  section "deb: remove and purge, with reports pending everywhere"
  # A scan still running when the package is removed: its partial report must be kept.
  { agent_toml "$(second_watch)"
    cat <<TOML
[[job]]
name = "slow-scan"
scanner = "nmap"
schedule = "*/5 * * * * *"
targets = ["127.0.0.1"]
args = ["-sT", "-Pn", "-n", "--max-rate", "1", "-p", "1-300"]
timeout = "1h"
TOML
  } | cfile /etc/hostedscan-agent/agent.toml 640
  expect "systemctl reload (a slow scan job)" c systemctl reload hostedscan-agent
  wait_for "a slow nmap scan is running" 30 c pgrep -f 'max-rate 1'
  # failed/: the API refuses one upload (422).
  standin_stop
  standin_start 422
  r=$(report refused.xml)
  drop "$r" "$INBOX"
  wait_for "a report refused by the API (422) is in failed/" 60 status_at_least failed 1
  # rejected/: not a report.
  printf 'not a scanner report\n' >"$work/reports/broken.xml"
  drop "$work/reports/broken.xml" "$INBOX"
  wait_for "a broken file is in rejected/" 30 status_at_least rejected 1
  # queue/: the API is down.
  standin_stop
  r=$(report queued-at-removal.xml)
  drop "$r" "$INBOX"
  wait_for "a report waits in queue/ (the API is down)" 30 status_at_least queued 1
  # inbox/: a report still being written (truncated and recent: left in place).
  head -c 300 "$nmap_report" >"$work/reports/still-writing.xml"
  drop "$work/reports/still-writing.xml" "$INBOX"
  sleep 3
  expect "a report still being written stays in the inbox" c test -f "$INBOX/still-writing.xml"
  out=$(c dpkg -r hostedscan-agent 2>&1) || { echo "$out"; fail "dpkg -r"; }
  ok "dpkg -r hostedscan-agent"
  contains "remove says which files are kept" "$out" 'Files not uploaded yet are kept in /var/lib/hostedscan-agent'
  contains "... queue/" "$out" 'queue/: [1-9]'
  contains "... failed/" "$out" 'failed/: [1-9]'
  contains "... rejected/" "$out" 'rejected/: [1-9]'
  contains "... inbox/" "$out" 'inbox/: 1 file'
  expect "the service is stopped" test "$(c systemctl is-active hostedscan-agent.service)" != active
  expect "the slow scan was stopped with it" no_process 'max-rate 1'
  out=$(c ls "$STATE/rejected")
  contains "the running scan's partial report is kept in rejected/" "$out" '^slow-scan-.*\.xml$'
  out=$(c dpkg --purge hostedscan-agent 2>&1) || { echo "$out"; fail "dpkg --purge"; }
  ok "dpkg --purge hostedscan-agent"
  contains "purge says the state directory is kept, and why" "$out" 'still holds files not uploaded; it is kept'
  expect "... every pending file is still there" c test -f "$INBOX/still-writing.xml" -a -f "$STATE/failed/refused.xml"
  expect "... queue/ too" c sh -c "ls $STATE/queue | grep -q queued-at-removal"
  expect "purge removed the key" c test ! -e /etc/hostedscan-agent/api-key
  standin_start
  halt
}

# --- deb upgrade: the previous version with a report queued ----------------------------------
scenario_deb_upgrade() {
  local out r sum pid
  section "deb-upgrade: the previous version (${prev_deb##*/}), a report queued"
  boot deb-upgrade
  cp "$prev_deb" "$(croot deb-upgrade)/root/previous.deb"
  cp "$deb" "$(croot deb-upgrade)/root/agent.deb"
  c dpkg -i /root/previous.deb >/dev/null 2>&1 || fail "dpkg -i ${prev_deb##*/}"
  ok "dpkg -i ${prev_deb##*/}"
  agent_toml | cfile /etc/hostedscan-agent/agent.toml 640
  put_key
  test_dropins
  expect "systemctl start hostedscan-agent (previous version)" c timeout 120 systemctl start hostedscan-agent
  standin_stop
  r=$(report queued-over-upgrade.xml)
  drop "$r" "$INBOX"
  wait_for "the report waits in queue/ (the API is down)" 30 status_at_least queued 1
  sum=$(c sha256sum /etc/hostedscan-agent/agent.toml)
  pid=$(main_pid)

  section "deb-upgrade: upgrade to ${deb##*/}"
  out=$(c dpkg -i --force-confdef --force-confold /root/agent.deb 2>&1) || { echo "$out"; fail "dpkg -i (upgrade)"; }
  ok "dpkg -i ${deb##*/} over ${prev_deb##*/}"
  expect "the installed version is the new one" test "$(c dpkg-query -W -f '${Version}' hostedscan-agent)" = "$(dpkg-deb -f "$deb" Version)"
  expect "agent.toml is untouched" test "$(c sha256sum /etc/hostedscan-agent/agent.toml)" = "$sum"
  expect "the daemon was restarted on the new binary" sh -c "[ \"\$(nsenter -t $LEADER -a systemctl show -p MainPID --value hostedscan-agent)\" != $pid ]"
  expect "... and runs" active hostedscan-agent.service
  expect "the queued report is still queued" status_at_least queued 1
  standin_start
  wait_for "the API is back: the report queued before the upgrade is uploaded" 60 received "$(sha "$r")"
  wait_for "... and the queue is empty" 30 queue_empty

  section "deb-upgrade: purge with nothing pending"
  out=$(c dpkg --purge hostedscan-agent 2>&1) || { echo "$out"; fail "dpkg --purge"; }
  lacks "purge keeps nothing back" "$out" 'not uploaded'
  expect "the state directory is deleted" c test ! -e "$STATE"
  expect "/etc/hostedscan-agent is gone" c test ! -e /etc/hostedscan-agent
  halt
}

# --- rpm: the same install, with rpm -i --nodeps over this Debian root ----------------------
scenario_rpm() {
  local out r pid
  section "rpm: install on a fresh system (rpm -i --nodeps)"
  boot rpm
  cp "$rpmfile" "$(croot rpm)/root/agent.rpm"
  out=$(c rpm -i --nodeps /root/agent.rpm 2>&1) || { echo "$out"; fail "rpm -i ${rpmfile##*/}"; }
  ok "rpm -i --nodeps ${rpmfile##*/}"
  contains "the install says the agent is not configured yet" "$out" "not configured yet"
  expect "the package owns /etc/hostedscan-agent" sh -c "nsenter -t $LEADER -a rpm -qf /etc/hostedscan-agent | grep -q '^hostedscan-agent-'"
  out=$(c stat -c '%a %U:%G %s %n' /etc/hostedscan-agent/agent.toml /etc/hostedscan-agent/api-key)
  contains "agent.toml is root:hostedscan-agent 0640" "$out" '^640 root:hostedscan-agent [0-9]+ /etc/hostedscan-agent/agent.toml$'
  contains "api-key is root-only (0600) and empty" "$out" '^600 root:root 0 /etc/hostedscan-agent/api-key$'
  expect "the daemon is enabled" test "$(c systemctl is-enabled hostedscan-agent.service)" = enabled

  section "rpm: configure, start, upload, reload"
  agent_toml | cfile /etc/hostedscan-agent/agent.toml 640
  put_key
  test_dropins
  expect "systemctl start hostedscan-agent" c timeout 120 systemctl start hostedscan-agent
  st=$(c systemctl status hostedscan-agent --no-pager 2>&1 || true)
  contains "systemctl status shows the agent's status line" "$st" 'Status: "queued [0-9]+'
  r=$(report rpm-dropped.xml)
  drop "$r" "$INBOX"
  wait_for "a dropped report is uploaded" 30 received "$(sha "$r")"
  pid=$(main_pid)
  agent_toml "$(second_watch)" | cfile /etc/hostedscan-agent/agent.toml 640
  reload_to_new_watch "$pid" rpm-dmz.xml

  section "rpm: erase with a report queued"
  standin_stop
  r=$(report rpm-queued.xml)
  drop "$r" "$INBOX"
  wait_for "a report waits in queue/ (the API is down)" 30 status_at_least queued 1
  out=$(c rpm -e --nodeps hostedscan-agent 2>&1) || { echo "$out"; fail "rpm -e"; }
  ok "rpm -e hostedscan-agent"
  contains "erase says which files are kept" "$out" 'Files not uploaded yet are kept in /var/lib/hostedscan-agent'
  contains "... queue/" "$out" 'queue/: [1-9]'
  expect "the service is stopped" test "$(c systemctl is-active hostedscan-agent.service)" != active
  expect "the queued report is still there" c sh -c "ls $STATE/queue | grep -q rpm-queued"
  standin_start
  halt
}

# --- rpm upgrade --------------------------------------------------------------------------
scenario_rpm_upgrade() {
  local out r sum pid
  section "rpm-upgrade: the previous version (${prev_rpm##*/}), a report queued"
  boot rpm-upgrade
  cp "$prev_rpm" "$(croot rpm-upgrade)/root/previous.rpm"
  cp "$rpmfile" "$(croot rpm-upgrade)/root/agent.rpm"
  c rpm -i --nodeps /root/previous.rpm >/dev/null 2>&1 || fail "rpm -i ${prev_rpm##*/}"
  ok "rpm -i --nodeps ${prev_rpm##*/}"
  agent_toml | cfile /etc/hostedscan-agent/agent.toml 640
  put_key
  test_dropins
  expect "systemctl start hostedscan-agent (previous version)" c timeout 120 systemctl start hostedscan-agent
  standin_stop
  r=$(report rpm-queued-over-upgrade.xml)
  drop "$r" "$INBOX"
  wait_for "the report waits in queue/ (the API is down)" 30 status_at_least queued 1
  sum=$(c sha256sum /etc/hostedscan-agent/agent.toml)
  pid=$(main_pid)
  out=$(c rpm -U --nodeps /root/agent.rpm 2>&1) || { echo "$out"; fail "rpm -U"; }
  ok "rpm -U --nodeps ${rpmfile##*/}"
  expect "the installed version is the new one" sh -c \
    "[ \"\$(nsenter -t $LEADER -a rpm -q --qf '%{VERSION}' hostedscan-agent)\" = \"\$(rpm -qp --qf '%{VERSION}' '$rpmfile' 2>/dev/null)\" ]"
  expect "agent.toml is untouched" test "$(c sha256sum /etc/hostedscan-agent/agent.toml)" = "$sum"
  expect "the daemon was restarted on the new binary" sh -c "[ \"\$(nsenter -t $LEADER -a systemctl show -p MainPID --value hostedscan-agent)\" != $pid ]"
  expect "the queued report is still queued" status_at_least queued 1
  standin_start
  wait_for "the API is back: the report queued before the upgrade is uploaded" 60 received "$(sha "$r")"
  halt
}
