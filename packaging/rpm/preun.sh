# %preun of hostedscan-agent ($1: 0 erase, 1 upgrade). On erase: stop and disable every unit.
if [ "$1" -eq 0 ]; then
	systemctl --no-reload disable --now hostedscan-agent.service hostedscan-agent-once.timer \
		hostedscan-agent-once.service >/dev/null 2>&1 || :
fi
exit 0
