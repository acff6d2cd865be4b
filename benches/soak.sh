#!/usr/bin/env bash
# Soak (issue 7, "Volume"): a steady stream of distinct small Nmap reports into the running
# daemon for MINUTES (a whole number, default 10) while the local stand-in fails a share of
# uploads (503, 500, 429 with Retry-After: 1, dropped connections) and has short outages (503 to
# everything for 15 s every 90 s; 5 s every 30 s in runs under 3 minutes); bursts of several
# hundred files at once, with the daemon's inotify queue made tiny (as root) so that it
# overflows. Then a drain against a healthy API, and a verdict: every file uploaded exactly
# once, nothing left behind, RSS flat, overflow survived. On demand, not part of the tests.
# Usage: benches/soak.sh [MINUTES]
# Environment: SOAK_RATE=20 (files/s), SOAK_FAIL_RATE=0.05, SOAK_OUTAGE=90/15 (every/lasting in
# seconds, "" for none), SOAK_BURST=500 (files), SOAK_BURST_EVERY=150 (s), SOAK_INOTIFY_EVENTS=32
# (the daemon's event queue; "" leaves the sysctl alone), SOAK_DRAIN=300 (s at most), SOAK_SEED=1,
# SOAK_KEEP=1 (keep the scratch directory with the logs).
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-10}
rate=${SOAK_RATE:-20}
fail_rate=${SOAK_FAIL_RATE:-0.05}
if [ "$minutes" -lt 3 ]; then outage=${SOAK_OUTAGE-30/5}; else outage=${SOAK_OUTAGE-90/15}; fi
burst=${SOAK_BURST:-500}
burst_every=${SOAK_BURST_EVERY:-150}
small_queue=${SOAK_INOTIFY_EVENTS-32}
drain_max=${SOAK_DRAIN:-300}
seed=${SOAK_SEED:-1}
. benches/common.sh

sysctl_path=/proc/sys/fs/inotify/max_queued_events
sysctl_old=""
restore_sysctl() {
  if [ -n "$sysctl_old" ]; then
    echo "$sysctl_old" >"$sysctl_path" && sysctl_old=""
  fi
}
soak_cleanup() {
  restore_sysctl
  if [ -n "${pid:-}" ]; then kill -CONT "$pid" 2>/dev/null || true; fi # stopped in a burst?
  if [ "${SOAK_KEEP:-}" = 1 ]; then
    kill $(jobs -p) 2>/dev/null || true
    echo "scratch directory kept: $work"
  else
    bench_cleanup
  fi
}
trap soak_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

export STANDIN_FAIL_RATE=$fail_rate STANDIN_OUTAGE=$outage STANDIN_SEED=$seed
start_standin
standin_pid=$!
mkdir -p "$work/inbox" "$work/stage"
touch "$work/handed.txt"
agent_config "$work/agent.toml" "$work/inbox" 'settle = "2s"'

# The kernel gives an inotify instance the max_queued_events of the moment it is created: lower
# it just for the daemon's start, until its inotify descriptor exists.
forced=no
if [ -n "$small_queue" ]; then
  if [ -w "$sysctl_path" ] && sysctl_old=$(cat "$sysctl_path") && echo "$small_queue" >"$sysctl_path" 2>/dev/null; then
    forced=yes
  else
    sysctl_old=""
    echo "note: cannot set fs.inotify.max_queued_events (not root?); no forced overflow"
  fi
fi
"$rel/hostedscan-agent" -c "$work/agent.toml" 2>"$work/agent.log" &
pid=$!
if [ "$forced" = yes ]; then
  for _ in $(seq 100); do
    ls -l "/proc/$pid/fd" 2>/dev/null | grep -q 'anon_inode:inotify' && break
    sleep 0.1
  done
  ls -l "/proc/$pid/fd" 2>/dev/null | grep -q 'anon_inode:inotify' || forced="no (the daemon made no inotify instance within 10 s)"
  restore_sysctl
  echo "fs.inotify.max_queued_events was $small_queue while the daemon started, now $(cat "$sysctl_path") again"
fi
sleep 2
kill -0 "$pid" 2>/dev/null || { cat "$work/agent.log"; exit 1; }

# RSS, inbox and queue depth every 10 s, until the end of the drain.
t_start=$(date +%s.%N)
(
  while kill -0 "$pid" 2>/dev/null; do
    t=$(python3 -c "import time; print(f'{time.time() - $t_start:.0f}')")
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    inbox=$(find "$work/inbox" -maxdepth 1 -type f | wc -l)
    queue=$(find "$work/state/queue" -maxdepth 1 -type f ! -name '*.meta.json' 2>/dev/null | wc -l)
    handed=$(wc -l <"$work/handed.txt")
    uploaded=$(grep -c '^  upload ' "$work/standin.log" || true)
    echo "$t $rss $handed $uploaded $inbox $queue" >>"$work/samples.txt"
    sleep 10
  done
) &

# The feeder: RATE files/s for MINUTES, each a distinct report (the fixture plus a comment),
# written as scanners do: most to a temporary name in the inbox (.part) then renamed, some
# written elsewhere and moved in, some written in place in three pieces over 0.4 s. Every
# BURST_EVERY s, BURST files are staged and renamed in at once; every second burst while the
# daemon is stopped (SIGSTOP, 0.3 s), as on a machine too busy to run it: its reader cannot
# keep up then, so a small event queue overflows for certain. The SHA-256 of every file handed
# in goes to handed.txt.
python3 - "$work" "$minutes" "$rate" "$burst" "$burst_every" "$seed" "$pid" <<'PY'
import hashlib, os, random, signal, sys, threading, time
work, minutes, rate, burst, burst_every, seed = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
daemon = int(sys.argv[7])
bursts = 0
inbox, stage = f"{work}/inbox", f"{work}/stage"
base = open("tests/fixtures/nmap-tcp-localhost.xml", "rb").read()
rnd = random.Random(seed)
handed = open(f"{work}/handed.txt", "a", buffering=1)
lock = threading.Lock()
n = 0
def report():
    global n
    with lock:
        i = n
        n += 1
    data = base + f"<!-- soak {i} {rnd.getrandbits(64):016x} -->\n".encode()
    return i, data
def note(i, data):
    with lock:
        handed.write(f"{hashlib.sha256(data).hexdigest()} soak-{i}.xml\n")
def slow_in_place(i, data):
    with open(f"{inbox}/soak-{i}.xml", "wb") as f:
        third = len(data) // 3
        for k, piece in enumerate((data[:third], data[third:2 * third], data[2 * third:])):
            if k:
                time.sleep(0.2)
            f.write(piece)
            f.flush()
    note(i, data)
def one():
    i, data = report()
    kind = i % 10
    if kind == 9:
        threading.Thread(target=slow_in_place, args=(i, data)).start()
        return
    tmp = f"{inbox}/soak-{i}.xml.part" if kind < 6 else f"{stage}/soak-{i}.xml"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, f"{inbox}/soak-{i}.xml")
    note(i, data)
def burst_in():
    global bursts
    bursts += 1
    stopped = bursts % 2 == 0
    staged = []
    for _ in range(burst):
        i, data = report()
        with open(f"{stage}/soak-{i}.xml", "wb") as f:
            f.write(data)
        staged.append((i, data))
    if stopped:
        os.kill(daemon, signal.SIGSTOP)
    t0 = time.monotonic()
    for i, _ in staged:
        os.rename(f"{stage}/soak-{i}.xml", f"{inbox}/soak-{i}.xml")
    t1 = time.monotonic()
    if stopped:
        time.sleep(max(0.0, 0.3 - (t1 - t0)))
        os.kill(daemon, signal.SIGCONT)
    for i, data in staged:
        note(i, data)
    print(f"  burst: {burst} files renamed in at once ({t1 - t0:.2f} s{', daemon stopped 0.3 s' if stopped else ''}) at {time.monotonic() - start:.0f} s", flush=True)
start = time.monotonic()
end = start + minutes * 60
period = min(burst_every, minutes * 60 / 2)
next_burst = start + period / 2 if burst > 0 else float("inf")
k = 0
while True:
    t = start + k / rate
    if t >= end:
        break
    now = time.monotonic()
    if now >= next_burst:
        burst_in()
        next_burst += period
        continue
    if t > now:
        time.sleep(t - now)
    one()
    k += 1
for th in threading.enumerate():
    if th is not threading.current_thread():
        th.join()
late = time.monotonic() - end
print(f"  fed {n} files in {minutes:g} min ({k} steady at {rate:g}/s, the rest in bursts; finished {late:.1f} s late)", flush=True)
PY
t_fed=$(date +%s.%N)

# Drain: a healthy API from now on, until every file is uploaded and inbox and queue are empty.
kill -USR1 "$standin_pid"
handed=$(wc -l <"$work/handed.txt")
deadline=$(($(date +%s) + drain_max))
while [ "$(date +%s)" -lt "$deadline" ]; do
  uploaded=$(grep '^  upload ' "$work/standin.log" | awk '{print $7}' | sort -u | wc -l)
  inbox=$(find "$work/inbox" -maxdepth 1 -type f | wc -l)
  queue=$(find "$work/state/queue" -maxdepth 1 -type f | wc -l)
  [ "$uploaded" -ge "$handed" ] && [ "$inbox" -eq 0 ] && [ "$queue" -eq 0 ] && break
  sleep 1
done
t_drained=$(date +%s.%N)
sleep 3 # anything late (a second upload of the same file) would show now
alive=yes
kill -0 "$pid" 2>/dev/null || alive=no
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
kill -TERM "$pid"
code=0
wait "$pid" || code=$?
sleep 0.5 # the stand-in prints each 200 ms

python3 - "$work" "$minutes" "$rate" "$fail_rate" "$outage" "$forced" "$small_queue" \
  "$t_start" "$t_fed" "$t_drained" "$hwm" "$alive" "$code" <<'PY'
import collections, os, re, sys
work, minutes, rate, fail_rate, outage, forced, small_queue = sys.argv[1:8]
t_start, t_fed, t_drained = map(float, sys.argv[8:11])
hwm, alive, code = int(sys.argv[11]), sys.argv[12], int(sys.argv[13])
minutes = float(minutes)
mib = lambda kb: kb / 1024

handed = {}
for line in open(f"{work}/handed.txt"):
    sha, name = line.split()
    handed[sha] = name
uploads = collections.Counter()
requests = collections.Counter()
for line in open(f"{work}/standin.log"):
    if line.startswith("  upload "):
        uploads[line.split()[6]] += 1
    elif m := re.match(r"POST /v1/results -> (no answer|\d+)(?: \((.*)\))?$", line.rstrip("\n")):
        answer, fault = m.groups()
        requests[f"answered {answer}" if fault is None else fault.replace("injected ", "")] += 1
agent = open(f"{work}/agent.log", errors="replace").read().splitlines()
lost = [l for l in agent if "file notifications were lost" in l]
lost_by = collections.Counter(re.search(r'reason="([^"]*)"', l).group(1) if 'reason="' in l else "?" for l in lost)
retries = sum("upload failed, will retry" in l for l in agent)
errors = [l for l in agent if " ERROR " in l or "panicked" in l]

def files(sub, skip_meta=True):
    d = f"{work}/{sub}"
    if not os.path.isdir(d):
        return 0
    return sum(1 for f in os.listdir(d) if not (skip_meta and f.endswith(".json")) and os.path.isfile(f"{d}/{f}"))
left = {"inbox": files("inbox", False), "queue": files("state/queue"), "failed": files("state/failed"), "rejected": files("state/rejected")}
archived = 0
for root, _, fs in os.walk(f"{work}/state/archive"):
    archived += len(fs)

samples = [tuple(map(int, l.split())) for l in open(f"{work}/samples.txt")]
fed_s = t_fed - t_start
print()
print("   t  RSS MiB  handed in  uploaded  inbox  queue")
for t, rss, h, u, i, q in samples:
    print(f"{t:4d}  {mib(rss):7.1f}  {h:9d}  {u:8d}  {i:5d}  {q:5d}" + ("   (drain)" if t > fed_s else ""))
run = minutes * 60
warm = window = min(60.0, run / 3)
first = [s[1] for s in samples if warm <= s[0] < warm + window]
last = [s[1] for s in samples if run - window <= s[0] <= run]
avg = lambda xs: sum(xs) / len(xs) if xs else 0
rss_first, rss_last, rss_max = avg(first), avg(last), max(s[1] for s in samples)

missing = [h for h in handed if uploads[h] == 0]
extra = [h for h in uploads if h not in handed]
dups = {h: c for h, c in uploads.items() if c > 1}
injected = {k: v for k, v in requests.items() if not k.startswith("answered ")}
print()
print(f"soak: {minutes:g} min at {rate} files/s, fail rate {fail_rate}, outage every/lasting {outage or 'none'} s")
print(f"  files handed in        {len(handed)}")
print(f"  uploaded (distinct)    {len(handed) - len(missing)} of them, {len(extra)} unknown; all uploaded {t_drained - t_fed:.0f} s after the feed ended")
print(f"  uploaded twice or more {len(dups)}")
print(f"  left at the end        inbox {left['inbox']}, queue {left['queue']}, failed {left['failed']}, rejected {left['rejected']} (archive holds {archived})")
print(f"  /v1/results requests   {sum(requests.values())}: " + ", ".join(f"{k} {v}" for k, v in sorted(requests.items())))
print(f"  refused by the faults  {sum(injected.values())}; the agent logged {retries} retries")
print(f"  RSS                    {mib(rss_first):.1f} MiB in [{warm:.0f} s, {warm + window:.0f} s), {mib(rss_last):.1f} MiB in the last {window:.0f} s of the feed, {mib(rss_max):.1f} MiB max sampled (VmHWM {mib(hwm):.1f} MiB)")
print(f"  event queue            {'max_queued_events ' + small_queue + ' for the daemon' if forced == 'yes' else 'not made small: ' + forced}; lost notifications (each followed by a rescan): {len(lost)}" + "".join(f"\n                           {v} x {k}" for k, v in lost_by.items()))
print(f"  ERROR/panic lines      {len(errors)}" + "".join(f"\n    {l}" for l in errors[:5]))
print(f"  daemon                 {'alive' if alive == 'yes' else 'DEAD'} at the end, exit code {code} after SIGTERM")

checks = [
    ("every file uploaded exactly once", not missing and not extra and not dups),
    ("nothing left in inbox, queue, failed, rejected", sum(left.values()) == 0),
    ("RSS in the last minute within 5 MiB of the first after warm-up", rss_last - rss_first <= 5 * 1024),
    ("an overflow happened and was followed by a rescan", forced != "yes" or any("overflowed" in k for k in lost_by)),
    ("no ERROR or panic in the log, daemon alive, clean exit", not errors and alive == "yes" and code == 0),
]
for what, ok in checks:
    print(f"  {'PASS' if ok else 'FAIL'}  {what}")
print("PASS" if all(ok for _, ok in checks) else "FAIL")
sys.exit(0 if all(ok for _, ok in checks) else 1)
PY
