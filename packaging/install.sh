#!/usr/bin/env bash
# `make install` / `make uninstall` for source builds: the same layout the
# Debian package makes (see packaging/debian/postinst).
#
#   make install [DESTDIR=/staging] [PREFIX=/usr/local]
#
# The config path (/etc/gatehouse/config.toml) is fixed at build time, so
# /etc and /var/log are not moved by PREFIX. As root, the gatehouse account
# and the gatehouse-users group are created when missing (the setuid owner
# must exist); without root, files are installed without owners and without
# the setuid bit, and a note says what to run.
set -euo pipefail

action=${1:-install}
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
BIN_SRC=${BIN_SRC:-target/release/gatehouse}
here=$(cd "$(dirname "$0")" && pwd)

bin="$DESTDIR$PREFIX/bin/gatehouse"
etc="$DESTDIR/etc/gatehouse"
logdir="$DESTDIR/var/log/gatehouse"
snippet="$DESTDIR/etc/ssh/sshd_config.d/gatehouse.conf"
rotate="$DESTDIR/etc/logrotate.d/gatehouse"
man="$DESTDIR$PREFIX/share/man/man1/gatehouse.1"
example="$DESTDIR$PREFIX/share/gatehouse/config.toml.example"

root=false
[ "$(id -u)" -eq 0 ] && root=true

if [ "$action" = uninstall ]; then
	rm -f "$bin" "$snippet" "$rotate" "$man" "$example"
	rmdir "$DESTDIR$PREFIX/share/gatehouse" 2>/dev/null || true
	echo "uninstall: left /etc/gatehouse (config, keys) and /var/log/gatehouse (audit trail) in place"
	exit 0
fi

[ -x "$BIN_SRC" ] || { echo "install: $BIN_SRC missing; run make build" >&2; exit 1; }

if $root; then
	if ! getent passwd gatehouse >/dev/null; then
		if command -v adduser >/dev/null 2>&1; then
			adduser --system --group --no-create-home --home /nonexistent \
				--shell /usr/sbin/nologin --gecos "Gatehouse audit shell" gatehouse
		else
			useradd --system --user-group --no-create-home --home-dir /nonexistent \
				--shell /usr/sbin/nologin gatehouse
		fi
	fi
	getent group gatehouse-users >/dev/null || groupadd --system gatehouse-users
	own() { chown "$@"; }
else
	own() { :; }
	echo "install: not root: no gatehouse account, owners or setuid bit; as root run:" >&2
	echo "  chown gatehouse:gatehouse $bin && chmod 6755 $bin" >&2
fi

install -d -m 0755 "$(dirname "$bin")" "$(dirname "$snippet")" "$(dirname "$rotate")" \
	"$(dirname "$man")" "$(dirname "$example")"
# chown before chmod: chown clears the setuid bit.
install -m 0755 "$BIN_SRC" "$bin"
own gatehouse:gatehouse "$bin"
$root && chmod 6755 "$bin"

sed "s#ForceCommand /usr/bin/gatehouse#ForceCommand $PREFIX/bin/gatehouse#" \
	"$here/sshd_config.d/gatehouse.conf" >"$snippet.tmp"
if [ -e "$snippet" ] && ! cmp -s "$snippet.tmp" "$snippet"; then
	mv "$snippet.tmp" "$snippet.new"
	echo "install: kept your $snippet; the new one is $snippet.new"
else
	mv "$snippet.tmp" "$snippet"
fi
chmod 0644 "$snippet"*
[ -e "$rotate" ] || install -m 0644 "$here/logrotate.d/gatehouse" "$rotate"
install -m 0644 "$here/gatehouse.1" "$man"
install -m 0644 "$here/config.toml.example" "$example"

install -d -m 0750 "$etc"
own root:gatehouse "$etc"
install -d -m 0700 "$etc/keys"
own gatehouse:gatehouse "$etc/keys"
if [ ! -e "$etc/config.toml" ]; then
	install -m 0640 "$here/config.toml.example" "$etc/config.toml"
	own root:gatehouse "$etc/config.toml"
fi
if [ ! -e "$etc/known_hosts" ]; then
	install -m 0644 /dev/null "$etc/known_hosts"
	own root:gatehouse "$etc/known_hosts"
fi
install -d -m 2750 "$logdir"
own gatehouse:adm "$logdir"
# install -d does not always keep the setgid bit on an existing directory.
$root && chmod 2750 "$logdir"
# The forward-secure sealing key's directory (`gatehouse seal --init` puts
# the key in it; the gatehouse account replaces it at every seal).
install -d -m 0755 "$DESTDIR/var/lib/gatehouse"
install -d -m 0700 "$DESTDIR/var/lib/gatehouse/seal"
own gatehouse:gatehouse "$DESTDIR/var/lib/gatehouse/seal"
echo "install: done. Next: edit /etc/gatehouse/config.toml, run gatehouse check, sshd -t"
