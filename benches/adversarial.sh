#!/usr/bin/env bash
# Peak memory and verdict of `hostedscan-agent validate` on hostile inputs (issue 3 item 3:
# memory stays flat whatever the file holds). Each case is written to a temporary file, then
# validated once under /usr/bin/time; prints the verdict line, seconds and peak RSS.
# Usage: benches/adversarial.sh [SIZE_MIB]   (size of the big token, default 512)
set -euo pipefail
cd "$(dirname "$0")/.."
mib=${1:-512}
if [ ! -x /usr/bin/time ]; then
  echo "/usr/bin/time is missing: install it with apt-get install -y time" >&2
  exit 1
fi
cargo build --release --quiet --bin hostedscan-agent
bin=$(realpath "${CARGO_TARGET_DIR:-target}/release/hostedscan-agent")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

head='<?xml version="1.0" encoding="UTF-8"?><nmaprun scanner="nmap" args="nmap" start="1" version="7.93" xmloutputversion="1.05"><scaninfo type="syn" protocol="tcp" numservices="1" services="1"/>'
tail='<runstats><finished time="2" timestr="x" summary="done" elapsed="1" exit="success"/><hosts up="0" down="0" total="0"/></runstats></nmaprun>'
# big N: N MiB of 'a' characters on stdout.
big() { head -c "$(($1 * 1024 * 1024))" /dev/zero | tr '\0' 'a'; }

make_case() {
  local name=$1 file=$work/$1
  case $name in
  text-node) { printf '%s<host><script id="x">' "$head"; big "$mib"; printf '</script></host>%s' "$tail"; } >"$file" ;;
  cdata) { printf '%s<host><script id="x"><![CDATA[' "$head"; big "$mib"; printf ']]></script></host>%s' "$tail"; } >"$file" ;;
  comment) { printf '%s<!-- ' "$head"; big "$mib"; printf ' -->%s' "$tail"; } >"$file" ;;
  attribute) { printf '%s<host comment="' "$head"; big "$mib"; printf '"/>%s' "$tail"; } >"$file" ;;
  nested-100k) python3 -c "
import sys
sys.stdout.write('$head' + '<a>' * 100000 + '</a>' * 100000 + '$tail')" >"$file" ;;
  entity-bomb) python3 -c "
lol = ['<!ENTITY lol0 \"lol\">'] + ['<!ENTITY lol%d \"%s\">' % (i, '&lol%d;' % (i - 1) * 10) for i in range(1, 10)]
print('<?xml version=\"1.0\"?><!DOCTYPE nmaprun [' + ''.join(lol) + ']><nmaprun scanner=\"nmap\">&lol9;</nmaprun>')" >"$file" ;;
  json-string) { printf '{"@version":"2.14.0","site":[{"@name":"https://a.example","alerts":[{"evidence":"'; big "$mib"; printf '"}]}]}'; } >"$file" ;;
  json-key) { printf '{"'; big "$mib"; printf '":1}'; } >"$file" ;;
  json-nested) python3 -c "print('{\"site\":' + '[' * 100000 + ']' * 100000 + '}')" >"$file" ;;
  esac
}

printf '%-12s %10s %8s %12s  %s\n' case size seconds "peak RSS" verdict
for c in text-node cdata comment attribute nested-100k entity-bomb json-string json-key json-nested; do
  make_case "$c"
  size=$(stat -c %s "$work/$c")
  /usr/bin/time -f '%e %M' -o "$work/time" "$bin" validate "$work/$c" >"$work/out" 2>&1 || true
  read -r secs kib < <(tail -n 1 "$work/time")
  printf '%-12s %9dM %8s %9d KiB  %s\n' "$c" $((size / 1024 / 1024)) "$secs" "$kib" \
    "$(head -c 160 "$work/out" | tr -s ' \n' ' ')"
  rm -f "$work/$c"
done
