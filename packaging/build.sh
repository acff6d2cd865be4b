#!/usr/bin/env bash
# Builds the .deb (cargo-deb) and the .rpm (rpmbuild, packaging/rpm/hostedscan-agent.spec) of
# hostedscan-agent into ${CARGO_TARGET_DIR:-target}/packages/, then checks what they hold and
# fails loudly if anything expected is missing. Installs cargo-deb (cargo install --locked) and
# the Debian packages it uses (rpm, which brings rpmbuild; binutils, dpkg-dev) when they are
# missing. RPM_VERSION and RPM_RELEASE override the rpm's version (default: Cargo.toml's, with
# "-" made "~") and release (default: 1).
set -euo pipefail
cd "$(dirname "$0")/.."

target=${CARGO_TARGET_DIR:-$PWD/target}
out=$target/packages
errors=0
fail() { echo "packaging/build.sh: MISSING: $*" >&2; errors=$((errors + 1)); }

# --- tools -----------------------------------------------------------------------------------
need=()
{ command -v rpm && command -v rpmbuild; } >/dev/null 2>&1 || need+=(rpm)
command -v strip >/dev/null 2>&1 || need+=(binutils)
command -v dpkg-shlibdeps >/dev/null 2>&1 || need+=(dpkg-dev)
if [ ${#need[@]} -gt 0 ]; then
  echo "== apt-get install ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! command -v cargo-deb >/dev/null 2>&1; then
  echo "== cargo install --locked cargo-deb"
  cargo install --locked cargo-deb
fi

# --- build -----------------------------------------------------------------------------------
echo "== cargo build --release --locked"
cargo build --release --locked
rm -rf "$out"
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== cargo deb"
# --strip: the package gets a stripped copy; target/release keeps its debug info.
cargo deb --no-build --strip --output "$out/"
deb=$(ls "$out"/*.deb)

# The spec packages the files of this checkout and the binary it is given as they are (no
# compiling, no brp strip): give it a stripped copy; target/release keeps its debug info.
# Everything rpmbuild writes but the package stays in $tmp (not ~/rpmbuild, not /var/tmp).
cargo_version=$(cargo pkgid | sed 's/.*[#@]//')
rpm_version=${RPM_VERSION:-${cargo_version//-/\~}}
rpm_release=${RPM_RELEASE:-1}
echo "== rpmbuild (packaging/rpm/hostedscan-agent.spec, $rpm_version-$rpm_release)"
strip -o "$tmp/hostedscan-agent" "$target/release/hostedscan-agent"
mkdir -p "$tmp/rpm/tmp"
rpmbuild -bb packaging/rpm/hostedscan-agent.spec \
  --define "_topdir $tmp/rpm" --define "_tmppath $tmp/rpm/tmp" \
  --define "_repo $PWD" --define "_bin $tmp/hostedscan-agent" \
  --define "pkg_version $rpm_version" --define "pkg_release $rpm_release" \
  --define "_rpmdir $out" --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
  >"$tmp/rpmbuild.log" 2>&1 || { cat "$tmp/rpmbuild.log" >&2; echo "packaging/build.sh: rpmbuild failed" >&2; exit 1; }
rpmfile=$(ls "$out"/*.rpm)

# --- check the .deb --------------------------------------------------------------------------
echo "== check $deb"
contents=$(dpkg-deb -c "$deb")
info=$(dpkg-deb -I "$deb")
ctl=$tmp/deb-control
dpkg-deb -e "$deb" "$ctl"
has_file() { # mode path
  grep -qE -- "^$1 (root/root|0/0) +[0-9]+ [0-9-]+ [0-9:]+ \./$2\$" <<<"$contents" || fail "deb: $1 /$2"
}
has_file -rwxr-xr-x usr/bin/hostedscan-agent
has_file -rw-r--r-- usr/lib/systemd/system/hostedscan-agent.service
has_file -rw-r--r-- usr/lib/systemd/system/hostedscan-agent-once.service
has_file -rw-r--r-- usr/lib/systemd/system/hostedscan-agent-once.timer
has_file -rw-r--r-- usr/lib/sysusers.d/hostedscan-agent.conf
has_file -rw-r----- etc/hostedscan-agent/agent.toml
has_file -rw-r--r-- usr/share/doc/hostedscan-agent/README.md
has_file -rw-r--r-- usr/share/doc/hostedscan-agent/PACKAGING.md
has_file -rw-r--r-- usr/share/hostedscan-agent/raw-sockets.conf
has_file -rw-r--r-- usr/share/hostedscan-agent/prometheus-alerts.yml
has_file -rw-r--r-- usr/share/hostedscan-agent/grafana-dashboard.json
grep -qx /etc/hostedscan-agent/agent.toml "$ctl/conffiles" 2>/dev/null || fail "deb: conffile /etc/hostedscan-agent/agent.toml"
for s in postinst prerm postrm; do
  [ -x "$ctl/$s" ] || { fail "deb: maintainer script $s"; continue; }
  sh -n "$ctl/$s" || fail "deb: $s is not valid sh"
  ! grep -q '#DEBHELPER#' "$ctl/$s" || fail "deb: $s still holds #DEBHELPER# (not filled in)"
done
deb_has() { # script pattern what
  grep -qE -- "$2" "$ctl/$1" 2>/dev/null || fail "deb: $1 $3"
}
deb_has postinst 'systemd-sysusers .*hostedscan-agent\.conf' "creates the user (systemd-sysusers)"
deb_has postinst 'deb-systemd-helper enable hostedscan-agent\.service' "enables hostedscan-agent.service"
deb_has postinst 'try-restart hostedscan-agent\.service' "restarts a running daemon after an upgrade"
deb_has postinst 'hostedscan-agent check-config -c "\$CONF"' "starts only after check-config passes"
deb_has postinst 'dpkg-statoverride --update --add root hostedscan-agent 0640' "makes agent.toml root:hostedscan-agent 0640"
deb_has postinst 'install -m 600 -o root -g root /dev/null "\$KEY"' "creates the api-key credential file"
deb_has prerm 'deb-systemd-invoke stop hostedscan-agent\.service' "stops the daemon on removal"
deb_has postrm 'deb-systemd-helper purge hostedscan-agent\.service' "forgets the daemon on purge"
deb_has postrm 'deb-systemd-helper purge hostedscan-agent-once\.timer' "forgets the timer on purge"
deb_has postrm 'find "\$d" -type f' "counts the files not uploaded before purging the state directory"
if grep -qE 'deb-systemd-invoke (start|restart) .*hostedscan-agent\.service' "$ctl/postinst" \
   && ! grep -q 'deb-systemd-invoke start hostedscan-agent.service ||' "$ctl/postinst"; then
  fail "deb: postinst must not start the daemon unconditionally"
fi
grep -qE '^ Depends:.*libc6.*systemd' <<<"$info" || fail "deb: Depends on libc6 and systemd"

# --- check the .rpm --------------------------------------------------------------------------
echo "== check $rpmfile"
files=$(rpm -qp --qf '[%{FILEMODES:perms} %{FILEUSERNAME} %{FILEGROUPNAME} %{FILENAMES}\n]' "$rpmfile")
has_rpm() { # mode user group path
  grep -qx -- "$1 $2 $3 $4" <<<"$files" || fail "rpm: $1 $2 $3 $4"
}
has_rpm -rwxr-xr-x root root /usr/bin/hostedscan-agent
has_rpm -rw-r--r-- root root /usr/lib/systemd/system/hostedscan-agent.service
has_rpm -rw-r--r-- root root /usr/lib/systemd/system/hostedscan-agent-once.service
has_rpm -rw-r--r-- root root /usr/lib/systemd/system/hostedscan-agent-once.timer
has_rpm -rw-r--r-- root root /usr/lib/sysusers.d/hostedscan-agent.conf
has_rpm -rw-r----- root hostedscan-agent /etc/hostedscan-agent/agent.toml
has_rpm drwxr-xr-x root root /etc/hostedscan-agent
has_rpm -rw-r--r-- root root /usr/share/doc/hostedscan-agent/README.md
has_rpm -rw-r--r-- root root /usr/share/doc/hostedscan-agent/PACKAGING.md
has_rpm drwxr-xr-x root root /usr/share/hostedscan-agent
has_rpm -rw-r--r-- root root /usr/share/hostedscan-agent/raw-sockets.conf
has_rpm -rw-r--r-- root root /usr/share/hostedscan-agent/prometheus-alerts.yml
has_rpm -rw-r--r-- root root /usr/share/hostedscan-agent/grafana-dashboard.json
rpm -qp --configfiles "$rpmfile" | grep -qx /etc/hostedscan-agent/agent.toml || fail "rpm: config file /etc/hostedscan-agent/agent.toml"
rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpmfile" | grep -qE '^c[a-z]*n[a-z]* /etc/hostedscan-agent/agent.toml$' \
  || fail "rpm: agent.toml is %config(noreplace)"
scripts=$(rpm -qp --scripts "$rpmfile")
rpm_has() { # pattern what
  grep -qE -- "$1" <<<"$scripts" || fail "rpm: scriptlets: $2"
}
rpm_has '^preinstall scriptlet' "%pre"
rpm_has '^postinstall scriptlet' "%post"
rpm_has '^preuninstall scriptlet' "%preun"
rpm_has '^postuninstall scriptlet' "%postun"
rpm_has 'systemd-sysusers --replace=/usr/lib/sysusers.d/hostedscan-agent.conf' "%pre creates the user"
rpm_has 'useradd -r -g hostedscan-agent' "%pre falls back to useradd"
rpm_has 'systemctl --no-reload enable hostedscan-agent\.service' "%post enables the daemon"
rpm_has 'hostedscan-agent check-config -c "\$CONF"' "%post starts only after check-config passes"
rpm_has 'systemctl try-restart hostedscan-agent\.service' "%post restarts a running daemon after an upgrade"
rpm_has 'disable --now hostedscan-agent\.service hostedscan-agent-once\.timer' "%preun stops and disables the units"
rpm_has 'find "\$d" -type f' "%postun says which files not uploaded it leaves"
for s in packaging/rpm/*.sh; do sh -n "$s" || fail "rpm: $s is not valid sh"; done
requires=$(rpm -qp --requires "$rpmfile")
grep -qx systemd <<<"$requires" || fail "rpm: Requires systemd"
# Besides systemd: the binary's sonames (rpmbuild's ELF dependency generator), /bin/sh for the
# scriptlets, rpmlib features and the package's own config(); anything else is unexpected.
odd=$(grep -vxE 'systemd|/bin/sh|(ld-linux[-a-z0-9_]*|libc|libgcc_s|libm)\.so\.[0-9]+(\(.*\))?(\(64bit\))?|rtld\(GNU_HASH\)|rpmlib\(.*|config\(hostedscan-agent\) = .*' <<<"$requires" || :)
[ -z "$odd" ] || fail "rpm: only the expected requirements, not: $(tr "\n" " " <<<"$odd")"

if [ "$errors" -gt 0 ]; then
  echo "packaging/build.sh: FAILED: $errors expected item(s) missing (above)" >&2
  exit 1
fi
echo "== packages"
ls -l "$out"
echo "packaging/build.sh: both packages built and checked"
