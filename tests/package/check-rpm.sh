#!/bin/sh
# Checks the RPM that `make rpm` left in build/packages/ (or the RPMs named as
# arguments) by querying it, without installing it: the files it holds, its config
# files, its scriptlets, its runtime requirements and its version.
#
#   tests/package/check-rpm.sh [PACKAGE.rpm ...]
#
# Prints one line per check, "ok" or "FAIL"; exits 1 if any check failed.
# shellcheck disable=SC2317 # the predicates below run through check()
set -u

here=$(pwd)
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
version=$(cat VERSION)
name=cloudviz-agent
failed=0

ok() { printf 'ok    %s\n' "$1"; }
fail() { printf 'FAIL  %s\n' "$1"; failed=1; }
check() {	# check DESCRIPTION COMMAND...: ok when the command succeeds
	desc=$1
	shift
	if "$@" >/dev/null 2>&1; then ok "$desc"; else fail "$desc"; fi
}

# Predicates for check(). has_line FILE LINE: an exact line; lacks FILE ERE: no line
# matches; version_is BINARY VERSION: what --version prints.
has_line() { grep -qxF -- "$2" "$1"; }
lacks() { ! grep -qE -- "$2" "$1"; }
version_is() { "$1" --version 2>&1 | grep -qF -- "$2"; }

# The man pages the issue asks for, plus any other page in docs/man.
man_pages() {
	{
		printf '%s\n' man8/$name.8 man5/$name.json.5 man5/$name-policy.5
		for p in docs/man/*.[0-9]; do
			[ -e "$p" ] && printf 'man%s/%s\n' "${p##*.}" "${p##*/}"
		done
	} | sort -u
}

# Every file the package must hold, one absolute path a line; man pages without
# their compression suffix (brp-compress gzips them on Fedora, not on Debian).
expected_files() {
	printf '%s\n' \
		/usr/sbin/$name \
		/usr/lib/systemd/system/$name.service \
		/usr/lib/sysusers.d/$name.conf \
		/usr/lib/tmpfiles.d/$name.conf \
		/usr/lib/systemd/catalog/$name.catalog \
		/etc/$name \
		/etc/$name/agent.json \
		/etc/$name/policy.json \
		/etc/$name/tls \
		/usr/share/doc/$name/control-api.yaml
	for f in docs/*.md; do printf '/usr/share/doc/%s/%s\n' $name "${f##*/}"; done
	for f in policy/examples/*.json; do
		printf '/usr/share/doc/%s/examples/%s\n' $name "${f##*/}"
	done
}

# The body of one scriptlet (preinstall, postinstall, preuninstall, postuninstall)
# from `rpm -qp --scripts`.
scriptlet() {
	awk -v want="$2" '
		/^[a-z]+ scriptlet \(using / { cur = $1; next }
		cur == want { print }
	' "$1"
}

# grep -E on one scriptlet's body.
scriptlet_has() { scriptlet "$1" "$2" | grep -qE -- "$3"; }

check_rpm() {
	rpm=$1
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT

	echo "== $rpm"
	rpm -qlp "$rpm" >"$tmp/files" 2>/dev/null || fail "rpm -qlp reads $rpm"
	rpm -qcp "$rpm" >"$tmp/config" 2>/dev/null
	rpm -qp --scripts "$rpm" >"$tmp/scripts" 2>/dev/null
	rpm -qp --requires "$rpm" >"$tmp/requires" 2>/dev/null

	check "version is $version (rpm -qp --queryformat %{VERSION})" \
		test "$(rpm -qp --queryformat '%{VERSION}' "$rpm" 2>/dev/null)" = "$version"
	arch=$(rpm -qp --queryformat '%{ARCH}' "$rpm" 2>/dev/null)
	case "${rpm##*/}" in
	"$name-$version.$arch.rpm" | "$name-$version"-*".$arch.rpm")
		ok "file name ${rpm##*/}" ;;
	*) fail "file name ${rpm##*/} is not $name-$version.$arch.rpm" ;;
	esac

	# Files (rpm -qlp).
	expected_files >"$tmp/expected"
	while read -r f; do
		check "holds $f" has_line "$tmp/files" "$f"
	done <"$tmp/expected"
	man_pages >"$tmp/man"
	while read -r m; do
		check "holds man page /usr/share/man/$m" \
			grep -qxE -- "/usr/share/man/$m(\.gz|\.bz2|\.xz|\.zst)?" "$tmp/files"
	done <"$tmp/man"
	check "holds nothing from the build tree" lacks "$tmp/files" '(^|/)build/|\.o$'

	# Config files (rpm -qcp), and that they are %config(noreplace) and readable by
	# the agent's user only.
	for f in /etc/$name/agent.json /etc/$name/policy.json; do
		check "config file $f (rpm -qcp)" has_line "$tmp/config" "$f"
	done
	check "config files are exactly agent.json and policy.json" \
		test "$(sort "$tmp/config" | tr '\n' ' ')" = \
		"/etc/$name/agent.json /etc/$name/policy.json "
	rpm -qp --queryformat \
		'[%{FILEFLAGS:fflags} %{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILENAMES}\n]' \
		"$rpm" >"$tmp/attrs" 2>/dev/null
	for f in /etc/$name/agent.json /etc/$name/policy.json; do
		check "$f is %config(noreplace), -rw-r----- root:$name" \
			grep -qE -- "^c[a-z]*n[a-z]* -rw-r----- root:$name $f\$" "$tmp/attrs"
	done
	check "/etc/$name/tls is drwxr-x--- root:$name" \
		grep -qE -- "^ *drwxr-x--- root:$name /etc/$name/tls\$" "$tmp/attrs"

	# Scriptlets (rpm -qp --scripts). Built with systemd's own macros (Fedora/RHEL)
	# the unit commands go through systemd-update-helper; with the spec's fallbacks
	# (a Debian build host) they call systemctl directly. Either is right.
	check "pre: systemd-sysusers creates the user" \
		scriptlet_has "$tmp/scripts" preinstall "systemd-sysusers"
	check "pre: the sysusers line for user $name" \
		scriptlet_has "$tmp/scripts" preinstall "^u $name "
	check "post: systemd-tmpfiles --create $name.conf" \
		scriptlet_has "$tmp/scripts" postinstall "systemd-tmpfiles --create.*$name\.conf"
	check "post: enabled by preset on first install" \
		scriptlet_has "$tmp/scripts" postinstall \
		"systemctl --no-reload preset $name\.service|install-system-units $name\.service"
	check "post: journalctl --update-catalog" \
		scriptlet_has "$tmp/scripts" postinstall "journalctl --update-catalog"
	check "preun: disabled and stopped on erase" \
		scriptlet_has "$tmp/scripts" preuninstall \
		"systemctl --no-reload disable --now $name\.service|remove-system-units $name\.service"
	check "postun: restarted on upgrade" \
		scriptlet_has "$tmp/scripts" postuninstall \
		"systemctl try-restart $name\.service|mark-restart-system-units $name\.service"
	check "no scriptlet deletes state, config or the user (rpm keeps them)" \
		lacks "$tmp/scripts" "userdel|groupdel|rm -[a-z]*r[a-z]* .*(/var/lib|/etc)/$name"

	# Runtime requirements (rpm -qp --requires): the libraries by soname, as Fedora's
	# libnftnl, libmnl, jansson, systemd-libs, openssl-libs, libcurl, libseccomp
	# provide them, and systemd for the scriptlets.
	for lib in libnftnl.so libmnl.so libjansson.so libsystemd.so libcrypto.so libcurl.so \
		libseccomp.so; do
		check "requires $lib.*" grep -qE -- "^$lib\.[0-9]+\(\)" "$tmp/requires"
	done
	check "requires systemd (scriptlets)" grep -qE -- '^systemd( |$)' "$tmp/requires"

	# The packaged binary reports the same version (one version, set in VERSION).
	# rpm2archive (a tar of the payload) comes with rpm; cpio may be missing.
	if (cd "$tmp" && rpm2archive - <"$rpm" | tar -xzf - ./usr/sbin/$name) 2>/dev/null; then
		check "packaged binary: cloudviz-agent --version shows $version" \
			version_is "$tmp/usr/sbin/$name" "$version"
	else
		fail "packaged binary: extract /usr/sbin/$name with rpm2archive"
	fi

	rm -rf "$tmp"
	trap - EXIT
}

if ! command -v rpm >/dev/null 2>&1; then
	fail "rpm is installed (apt-get install rpm)"
	exit 1
fi

if [ $# -eq 0 ]; then
	here=$top
	set -- build/packages/$name-*.rpm
	[ -e "$1" ] || { fail "an RPM in build/packages/ (make rpm)"; exit 1; }
fi
for r in "$@"; do
	case "$r" in /*) ;; *) r=$here/$r ;; esac
	check_rpm "$r"
done

if [ "$failed" = 0 ]; then echo "check-rpm: all checks passed"; else echo "check-rpm: FAILED"; fi
exit "$failed"
