# %postun of hostedscan-agent ($1: 0 erase, 1 or more upgrade). The state directory
# /var/lib/hostedscan-agent (reports in the agent's custody) and the user are left in place.
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
fi
exit 0
