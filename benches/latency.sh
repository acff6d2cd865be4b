#!/usr/bin/env bash
# Time from a report's close (its rename into the watch directory) to the start of its upload
# (the stand-in's record of the request), for N reports one at a time, with the daemon running
# and `settle = "2s"` (the default is 5 s). Goal: within settle + 100 ms. Usage: benches/latency.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20}
. benches/common.sh
# A minimal HostedScan API that notes when each upload's request line arrives (monotonic).
cat >"$work/api.py" <<'PY'
import http.server, json, sys, time
log = open(sys.argv[2], "a", buffering=1)
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        if self.path.endswith("/results"):
            log.write(f"{time.monotonic()}\n")
        n = int(self.headers.get("content-length", 0))
        while n > 0:
            n -= len(self.rfile.read(min(n, 65536)))
        body = json.dumps({"data": {"id": "r1", "source_id": "src1", "scan_type": "NMAP"}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
python3 "$work/api.py" "$port" "$work/arrivals" &
mkdir -p "$work/inbox"
agent_config "$work/agent.toml" "$work/inbox" 'after_upload = "delete"
settle = "2s"' '[source]
id = "src1"'
sleep 1
"$rel/hostedscan-agent" -q -c "$work/agent.toml" 2>"$work/agent.log" &
sleep 2
python3 - "$n" "$work" <<'PY'
import os, sys, time
n, work = int(sys.argv[1]), sys.argv[2]
fixture = open("tests/fixtures/nmap-tcp-localhost.xml", "rb").read()
arrivals = os.path.join(work, "arrivals")
def seen():
    try:
        return [float(l) for l in open(arrivals)]
    except FileNotFoundError:
        return []
lat = []
for i in range(n):
    before = len(seen())
    tmp = os.path.join(work, "inbox", f".r{i}.part")
    with open(tmp, "wb") as f:
        f.write(fixture + f"<!-- {i} -->\n".encode())
    t0 = time.monotonic()
    os.rename(tmp, os.path.join(work, "inbox", f"r{i}.xml"))
    while len(seen()) == before:
        time.sleep(0.005)
    lat.append(seen()[-1] - t0)
lat.sort()
print(f"close -> upload start over {n} reports (settle 2 s)")
print(f"  median {lat[n//2]*1000:.0f} ms, max {lat[-1]*1000:.0f} ms   (goal: within settle + 100 ms = 2100 ms)")
PY
