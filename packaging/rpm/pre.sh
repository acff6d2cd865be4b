# %pre of hostedscan-agent ($1: 1 install, 2 upgrade). The user and group must exist before
# the files are laid down: /etc/hostedscan-agent/agent.toml is root:hostedscan-agent 0640.
# Same line as /usr/lib/sysusers.d/hostedscan-agent.conf (not installed yet at this point).
if command -v systemd-sysusers >/dev/null 2>&1; then
	systemd-sysusers --replace=/usr/lib/sysusers.d/hostedscan-agent.conf - <<'SYSUSERS' || :
u hostedscan-agent - "hostedscan-agent" /var/lib/hostedscan-agent
SYSUSERS
fi
if ! getent passwd hostedscan-agent >/dev/null 2>&1; then
	getent group hostedscan-agent >/dev/null 2>&1 || groupadd -r hostedscan-agent
	useradd -r -g hostedscan-agent -d /var/lib/hostedscan-agent -s /sbin/nologin \
		-c "hostedscan-agent" hostedscan-agent
fi
exit 0
