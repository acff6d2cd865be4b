# %postun of hostedscan-agent ($1: 0 erase, 1 or more upgrade). The state directory
# /var/lib/hostedscan-agent (reports in the agent's custody) and the user are left in place; on
# erase, say what in it is not uploaded yet.
STATE=/var/lib/hostedscan-agent

# The same function as in packaging/debian/postrm: one "  dir/: N file(s)" line per directory of
# the state directory holding files not uploaded yet (all but archive/ and .ZAP/).
pending() {
	for d in "$1"/* "$1"/.[!.]*; do
		if [ ! -d "$d" ] || [ -L "$d" ]; then continue; fi
		case ${d##*/} in archive | .ZAP) continue ;; esac
		# A walk that fails (an unreadable subtree) counts as pending: better kept than lost.
		n=$({ find "$d" -type f 2>/dev/null || echo unreadable; } | wc -l)
		if [ "$n" -gt 0 ]; then echo "  ${d##*/}/: $n file(s)"; fi
	done
	return 0
}

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" -eq 0 ] && [ -d "$STATE" ]; then
	left=$(pending "$STATE")
	if [ -n "$left" ]; then
		cat >&2 <<MSG
hostedscan-agent: erased. Files not uploaded yet are kept in $STATE:
$left
  Installing the package again uploads what is queued; delete the directory by hand once you
  no longer need them (failed/ and rejected/ say why in their .error.json and .reason.json).
MSG
	fi
fi
exit 0
