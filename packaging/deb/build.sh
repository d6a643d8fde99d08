#!/bin/bash
# Builds the Debian package of cloudviz-agent with Debian's own tooling
# (debhelper, dpkg-buildpackage) and checks it with lintian.
#
# usage: packaging/deb/build.sh                  (make deb; as root on Debian 12
#                                                 it installs missing tools)
#        PKG_RELEASE=2 packaging/deb/build.sh    version VERSION-2 (upgrade tests)
#        LINTIAN_FAIL_ON=error,warning ...       also fail on warnings
#
# The package is built from a clean copy of the tree: the files git knows
# (committed or changed) plus new files not ignored, so build/ leftovers
# never get in. The copy lives in its own directory under $TMPDIR, not in
# build/: the top Makefile would read the copy's build/*.d files, and two
# builds (VERSION and VERSION-2 for the upgrade test) may run at once. It is
# removed after a successful build and kept for a look after a failed one.
# packaging/deb/debian/ becomes its debian/ and the top changelog entry is
# written here from VERSION, the one place the version is set.
# Output: build/packages/cloudviz-agent_<version>_<arch>.deb with its
# .buildinfo and .changes.
set -euo pipefail

cd "$(dirname "$0")/../.."
top=$PWD
version=$(cat VERSION)
if [ -n "${PKG_RELEASE:-}" ]; then
	version="$version-$PKG_RELEASE"
fi
if ! [[ $version =~ ^[0-9][A-Za-z0-9.+~]*(-[A-Za-z0-9.+~]+)?$ ]]; then
	echo "deb: bad version \"$version\" (VERSION, PKG_RELEASE)" >&2
	exit 1
fi
out=$top/build/packages

# Installs the packages named that are not installed yet (root only).
need() {
	"$top/scripts/install-deps.sh" "$@"
}

updated=
apt_update_once() {
	[ -n "$updated" ] && return 0
	apt-get update -qq
	updated=1
}

keep_on_failure() {
	local rc=$?
	if [ "$rc" != 0 ] && [ -d "$work" ]; then
		echo "deb: failed; the build tree is kept in $work" >&2
	fi
}

# The clean copy: without git (an unpacked tarball), everything but build/.
copy_tree() {
	mkdir -p "$tree"
	if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		# --cached lists tracked files deleted in the work tree too: skip those
		git ls-files -z --cached --others --exclude-standard |
			while IFS= read -r -d '' f; do
				if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
			done |
			tar --null -T - -c | tar -x -C "$tree"
	else
		tar --exclude=./build --exclude=./.git -c . | tar -x -C "$tree"
	fi
	cp -a "$tree/packaging/deb/debian" "$tree/debian"
}

# One entry for this build, dated by the last commit so that two builds of
# the same tree produce the same package.
write_changelog() {
	local when rev maint
	when=$(git -C "$top" log -1 --format=%ct 2>/dev/null || date +%s)
	rev=$(git -C "$top" describe --always --dirty 2>/dev/null || echo unknown)
	maint=$(sed -n 's/^Maintainer: //p' "$tree/debian/control")
	cat >"$tree/debian/changelog" <<-EOF
	cloudviz-agent ($version) bookworm; urgency=medium

	  * cloudviz-agent $version, built from the project's tree ($rev).

	 -- $maint  $(LC_ALL=C date -u -R -d "@$when")
	EOF
}

need dpkg-dev debhelper fakeroot lintian
work=$(mktemp -d "${TMPDIR:-/tmp}/cloudviz-agent-deb.XXXXXX")
tree=$work/cloudviz-agent-$version
trap keep_on_failure EXIT
copy_tree
write_changelog
cd "$tree"
if ! dpkg-checkbuilddeps 2>/dev/null; then
	if [ "$(id -u)" != 0 ]; then
		dpkg-checkbuilddeps || exit 1
	fi
	echo "deb: installing the build dependencies"
	apt_update_once
	DEBIAN_FRONTEND=noninteractive apt-get build-dep -y -qq --no-install-recommends ./ >/dev/null
fi

dpkg-buildpackage -us -uc -b

arch=$(dpkg-architecture -qDEB_HOST_ARCH)
base=cloudviz-agent_${version}_$arch
mkdir -p "$out"
for f in "$base.deb" "$base.buildinfo" "$base.changes"; do
	mv -f "$work/$f" "$out/$f"
done
cd "$top"
rm -rf "$work"
echo "deb: $out/$base.deb"

# lintian's exit status says whether a tag of the --fail-on severities was
# emitted; overrides (debian/cloudviz-agent.lintian-overrides) silence the
# tags that stay, each with its reason. It advises against running as root:
# use nobody where nobody can read the files.
as_user=()
if [ "$(id -u)" = 0 ] && runuser -u nobody -- test -r "$out/$base.changes" 2>/dev/null; then
	as_user=(runuser -u nobody -- env HOME=/tmp TMPDIR=/tmp)
fi
echo "deb: lintian $out/$base.changes"
status=0
"${as_user[@]}" lintian --display-info --fail-on "${LINTIAN_FAIL_ON:-error}" \
	"$out/$base.changes" || status=$?
if [ "$status" != 0 ]; then
	echo "deb: lintian failed (exit $status)" >&2
	exit 1
fi
echo "deb: lintian passed"
