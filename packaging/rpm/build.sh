#!/bin/sh
# Builds the binary RPM of cloudviz-agent from packaging/rpm/cloudviz-agent.spec with
# rpmbuild, on Debian (Debian's `rpm` package) or on Fedora/RHEL alike, into
# build/packages/.
#
#   packaging/rpm/build.sh            (what `make rpm` runs)
#   PKG_RELEASE=2 packaging/rpm/build.sh
#
# The version comes from the file VERSION only (passed with --define); the release
# is 1 unless PKG_RELEASE says otherwise (the same variable the deb takes, for upgrade
# tests). The source tarball is made from the files git knows (tracked, plus new files
# not ignored), so build/ leftovers never enter the package.
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"

version=$(cat VERSION)
release=${PKG_RELEASE:-1}
name=cloudviz-agent
out=build/packages
topdir=$top/build/rpmbuild

# Debian package names: rpmbuild itself, git for the file list, file for brp-strip,
# dpkg-dev for dpkg-buildflags (the hardening flags below), libc6-dev (gcc only
# recommends it),
# and what the %build step compiles against (the Fedora names are the spec's BuildRequires).
NEED="rpm git file dpkg-dev gcc libc6-dev make pkg-config libnftnl-dev libmnl-dev libjansson-dev libsystemd-dev
libssl-dev libcurl4-openssl-dev libseccomp-dev"

install_missing() {
	command -v dpkg-query >/dev/null 2>&1 || return 0	# not Debian: the spec's BuildRequires
	# shellcheck disable=SC2086
	"$top/scripts/install-deps.sh" $NEED
}

# Tracked files plus untracked ones that are not ignored, minus those deleted in the
# work tree: what is committed plus the work tree's changes. Outside a git checkout
# (an unpacked release tarball) every file but build/.
source_files() {
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		git ls-files --cached --others --exclude-standard |
			while IFS= read -r f; do [ -f "$f" ] && printf '%s\n' "$f"; done
	else
		find . -path ./build -prune -o -type f -print | sed 's|^\./||'
	fi
}

make_tarball() {
	list=$topdir/SOURCES/files.txt
	source_files | LC_ALL=C sort -u >"$list"
	# Owned by root whoever builds it.
	tar --create --gzip --file "$topdir/SOURCES/$name-$version.tar.gz" \
		--files-from "$list" --transform "s|^|$name-$version/|" \
		--owner=0 --group=0 --numeric-owner --mode='go-w'
	rm -f "$list"
	# A separate source because %pre inlines it when the spec is parsed, before the
	# tarball is unpacked (%sysusers_create_package reads it at build time).
	cp systemd/$name.sysusers "$topdir/SOURCES/"
}

# One %changelog entry for this build, dated by the last commit (as the deb's
# debian/changelog), so that the version stays in VERSION alone.
write_changelog() {
	when=$(git log -1 --format=%ct 2>/dev/null || date +%s)
	printf '%%changelog\n* %s CloudViz maintainers <maintainers@cloudviz.example> - %s-%s\n' \
		"$(LC_ALL=C date -u -d "@$when" '+%a %b %d %Y')" "$version" "$release"
	printf -- '- Package of cloudviz-agent %s, built from the source tree.\n' "$version"
}

# rpmbuild's work trees go as soon as it is done, failed or not: they hold directories
# named *.d (sysusers.d, tmpfiles.d) and make's dependency files, and the Makefile
# includes every *.d under build/, so a leftover would break the next `make` at parse
# time. The SOURCES, SPECS and RPMS stay for inspection.
cleanup() { rm -rf "$topdir/BUILD" "$topdir/BUILDROOT"; }
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

install_missing
rm -rf "$topdir"
mkdir -p "$topdir/SOURCES" "$topdir/SPECS" "$out"
make_tarball
cp packaging/rpm/$name.spec "$topdir/SPECS/"
write_changelog >>"$topdir/SPECS/$name.spec"

# Debian's rpm has no distribution build flags (%optflags is "-O2 -g"), while
# Fedora's give stack protector, _FORTIFY_SOURCE and full RELRO. On Debian the same
# hardening comes from dpkg-buildflags; the spec's %set_build_flags keeps CFLAGS and
# LDFLAGS from the environment. The Makefile has no CPPFLAGS, so those go into CFLAGS.
if command -v dpkg-buildflags >/dev/null 2>&1 && [ -z "${CFLAGS:-}" ]; then
	export DEB_BUILD_MAINT_OPTIONS=hardening=+all
	CFLAGS="$(dpkg-buildflags --get CPPFLAGS) $(dpkg-buildflags --get CFLAGS)"
	LDFLAGS=$(dpkg-buildflags --get LDFLAGS)
	export CFLAGS LDFLAGS
fi

# --nodeps: the spec's BuildRequires are Fedora/RHEL names (pkgconfig(libnftnl),
# systemd-rpm-macros, ...) that rpm's own database on a Debian host never provides;
# install_missing above has checked the Debian equivalents instead.
# Debian's brp-compress is a bash script (read -d '') that /bin/sh, dash there, cannot
# run, so man pages would stay uncompressed; bash runs it as on Fedora.
compress=""
if command -v dpkg-query >/dev/null 2>&1 && command -v bash >/dev/null 2>&1; then
	compress="bash %{_rpmconfigdir}/brp-compress %{?_prefix}"
fi

rpmbuild -bb --nodeps \
	${compress:+--define "__brp_compress $compress"} \
	--define "_topdir $topdir" \
	--define "version $version" \
	--define "pkg_release $release" \
	"$topdir/SPECS/$name.spec"

rpm=$(find "$topdir/RPMS" -name "$name-$version-$release*.rpm" | head -n 1)
[ -n "$rpm" ] || { echo "rpm: rpmbuild made no $name-$version-$release package" >&2; exit 1; }
arch=$(rpm -qp --queryformat '%{ARCH}' "$rpm")

# An RPM always has a release (rpm -qp shows name-version-release.arch). The file is
# named as issue 7 asks, cloudviz-agent-VERSION.ARCH.rpm, when the release is the
# default 1; a build with PKG_RELEASE keeps the release in the name, since it is then
# the one thing that tells two builds apart. Older builds' files are removed so that
# build/packages/*.rpm is this build only (the .deb files there are not touched).
if [ "$release" = 1 ]; then
	dest=$out/$name-$version.$arch.rpm
else
	dest=$out/$name-$version-$release.$arch.rpm
fi
rm -f "$out"/$name-*.rpm
cp "$rpm" "$dest"
echo "rpm: $dest ($(rpm -qp --queryformat '%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}' "$dest"))"
