# %post of hostedscan-agent ($1: 1 install, 2 or more upgrade). Enables the daemon on first
# install and starts it only once `check-config` passes; restarts it after an upgrade.
CONF=/etc/hostedscan-agent/agent.toml
KEY=/etc/hostedscan-agent/api-key

if command -v systemd-sysusers >/dev/null 2>&1; then
	systemd-sysusers /usr/lib/sysusers.d/hostedscan-agent.conf || :
fi
# The unit's LoadCredential=api-key:$KEY needs the file to exist. Empty means "no key here"
# (api.key_file or HOSTEDSCAN_API_KEY then apply); root-only, as the key will be.
if [ ! -e "$KEY" ]; then
	install -m 600 -o root -g root /dev/null "$KEY"
fi

if [ "$1" -eq 1 ]; then
	systemctl --no-reload enable hostedscan-agent.service >/dev/null 2>&1 || :
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
	if [ "$1" -ge 2 ]; then
		systemctl try-restart hostedscan-agent.service >/dev/null 2>&1 || :
	elif systemctl --quiet is-enabled hostedscan-agent.service 2>/dev/null \
		&& ! systemctl --quiet is-active hostedscan-agent.service 2>/dev/null; then
		# As the unit will see it: the key from $KEY as the "api-key" credential.
		if problems=$(CREDENTIALS_DIRECTORY=/etc/hostedscan-agent \
			/usr/bin/hostedscan-agent check-config -c "$CONF" 2>&1 >/dev/null); then
			systemctl start hostedscan-agent.service || {
				echo "hostedscan-agent: the service did not start; see: systemctl status hostedscan-agent" >&2
				echo "  and: journalctl -u hostedscan-agent" >&2
			}
		else
			cat >&2 <<MSG
hostedscan-agent is installed and enabled, but not started: it is not configured yet.
$(printf '%s\n' "$problems" | sed 's/^/    /')
  1. Put your HostedScan API key in $KEY (root-only, mode 600); the service
     receives it as a systemd credential, so api.key_file is not needed:
       sudo sh -c 'umask 077; printf "%s\\n" "YOUR-KEY" > $KEY'
  2. Review $CONF (watch directories, scan jobs).
  3. sudo systemctl start hostedscan-agent   (it runs check-config first; problems are in
     journalctl -u hostedscan-agent). More in /usr/share/doc/hostedscan-agent/.
MSG
		fi
	fi
fi
exit 0
