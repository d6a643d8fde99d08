#!/bin/sh
# Before anything is compiled: is every tool and library the build needs
# here? Exits 0 if so. Otherwise, as root with --install, installs the
# Debian 12 packages that provide what is missing (scripts/install-deps.sh
# PKG...) and checks again; without root (or without --install) names, for
# each one missing, the package to install and exits 1. So a missing -dev
# package is installed or is one clear error, never a compile or link error
# later.
#
# usage: scripts/check-build-deps.sh [--install] [--cc CC] [--fuzzer] PKGCONFIG-MODULE...
#   --install  as root, install what is missing, then check again
#   --cc CC    the compiler must run
#   --fuzzer   CC must link libFuzzer and ASan (clang's runtime libraries)
#
# The Makefile runs it (with --install) before the first object of each
# build (all, unit, asan, fuzz), so `make` and `make install` as root work
# on a machine with none of the packages.
set -u

cc="" fuzzer=0 install=0
while [ $# -gt 0 ]; do
	case $1 in
	--install) install=1; shift ;;
	--cc) cc=$2; shift 2 ;;
	--fuzzer) fuzzer=1; shift ;;
	--) shift; break ;;
	-*) echo "check-build-deps: unknown option \"$1\"" >&2; exit 2 ;;
	*) break ;;
	esac
done

# The Debian package with a pkg-config module's .pc file.
deb_of_module() {
	case $1 in
	libnftnl) echo libnftnl-dev ;;
	libmnl) echo libmnl-dev ;;
	jansson) echo libjansson-dev ;;
	libsystemd) echo libsystemd-dev ;;
	libcrypto | libssl | openssl) echo libssl-dev ;;
	libcurl) echo libcurl4-openssl-dev ;;
	libseccomp) echo libseccomp-dev ;;
	cmocka) echo libcmocka-dev ;;
	*) echo "the package with $1.pc" ;;
	esac
}

add() { # package, what is missing
	case " $missing " in *" $1 "*) ;; *) missing="$missing $1" ;; esac
	what="$what
  $2 (Debian package $1)"
}

# Sets missing (the Debian packages, each once) and what (one line per
# missing piece); the pkg-config modules are the arguments.
collect() {
missing="" what=""
if [ -n "$cc" ] && ! command -v "$cc" >/dev/null 2>&1; then
	case $cc in
	*clang*) add clang "the C compiler \"$cc\"" ;;
	*)	add gcc "the C compiler \"$cc\""
		# gcc only recommends the C library's headers: both, or a second round
		add libc6-dev "the C library's headers and crt files" ;;
	esac
elif [ -n "$cc" ] && ! printf '#include <errno.h>\nint main(void) { return errno; }\n' |
	"$cc" -x c -o /dev/null - >/dev/null 2>&1; then
	# gcc without the C library's headers (Debian's gcc only recommends them)
	add libc6-dev "the C library's headers and crt files (\"$cc\" cannot build <errno.h>)"
fi
if ! command -v pkg-config >/dev/null 2>&1; then
	add pkg-config "pkg-config"
	for m in "$@"; do
		add "$(deb_of_module "$m")" "the pkg-config module $m (not checked: no pkg-config)"
	done
else
	for m in "$@"; do
		pkg-config --exists "$m" 2>/dev/null ||
			add "$(deb_of_module "$m")" "the pkg-config module $m"
	done
fi

# clang is installed without its runtime libraries on Debian: -fsanitize=fuzzer
# then fails only at the link step. The runtime directory names the version.
if [ "$fuzzer" = 1 ] && [ -n "$cc" ] && command -v "$cc" >/dev/null 2>&1; then
	rtdir=$("$cc" -print-runtime-dir 2>/dev/null)
	arch=$(uname -m)
	if [ -z "$rtdir" ]; then
		add clang "clang: \"$cc\" is not clang, and -fsanitize=fuzzer needs it"
	elif [ ! -f "$rtdir/libclang_rt.fuzzer-$arch.a" ] || [ ! -f "$rtdir/libclang_rt.asan-$arch.a" ]; then
		ver=$("$cc" -dumpversion 2>/dev/null | cut -d. -f1)
		add "libclang-rt-${ver:-VERSION}-dev" \
			"clang's libFuzzer and ASan runtime ($rtdir/libclang_rt.fuzzer-$arch.a)"
	fi
fi
}

collect "$@"
[ -z "$missing" ] && exit 0
installed=0
if [ "$install" = 1 ] && [ "$(id -u)" = 0 ]; then
	# shellcheck disable=SC2086
	"$(dirname "$0")/install-deps.sh" $missing || exit 1
	installed=1
	collect "$@"
	[ -z "$missing" ] && exit 0
fi
if [ "$installed" = 1 ]; then
	how="(installed just now, but still missing: is this Debian 12?)"
elif [ "$(id -u)" = 0 ]; then
	# make demo / make check: scripts/install-deps.sh ran and missed these
	how="scripts/install-deps.sh (which make demo and make check run) does not
list them: add them there, or install them with:
  apt-get install$missing"
else
	how="Install them (Debian 12) with:
  sudo apt-get install$missing
(as root, make installs them itself), or everything the build and the tests
need (make demo and make check run it as root) with:
  sudo scripts/install-deps.sh"
fi
cat >&2 <<EOF
build: cannot build, missing:$what
$how
EOF
exit 1
