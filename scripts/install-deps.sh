#!/bin/sh
# Installs Debian packages that are missing, and only those. Idempotent;
# prints what it installs.
#   scripts/install-deps.sh          what building and testing need (make
#                                    check, make demo); without root it only
#                                    reports what is missing
#   scripts/install-deps.sh PKG...   exactly these (the package builds);
#                                    without root, missing ones are an error
#                                    (bench/detect_bench.py installs its
#                                    peers so: fail2ban sshguard
#                                    python3-systemd)
set -eu

if [ $# -gt 0 ]; then
	PKGS="$*" strict=1
else
	# Everything `make demo` and `make check` need on a Debian 12 minbase
	# (debootstrap --variant=minbase, plus make); `make check-fresh` proves it.
	# build: the compiler and the C library's headers (gcc only recommends
	# libc6-dev), pkg-config and the libraries' -dev packages;
	# unit tests: cmocka; fuzz: clang with its libFuzzer/ASan runtime
	# (libclang-rt-14-dev: clang alone cannot link -fsanitize=fuzzer);
	# integration: nft, ip, ping, ps/sysctl, unshare/nsenter/setpriv,
	# systemd-journald/journalctl/systemd-analyze, strace, openssl (test
	# PKI), man/groff (man page tests), python3, /etc/protocols (netbase:
	# nft and the agent print "tcp", not "6"), Debian's real sshd and
	# sshpass (local detection's tests: failed logins in namespaces);
	# benches: time.
	PKGS="gcc libc6-dev make pkg-config time libnftnl-dev libmnl-dev libjansson-dev libsystemd-dev libssl-dev libcurl4-openssl-dev libseccomp-dev libcmocka-dev
clang libclang-rt-14-dev
nftables iproute2 python3 iputils-ping procps util-linux netbase systemd strace openssl groff-base man-db
openssh-server sshpass"
	strict=0
fi

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	[ "$strict" = 1 ] || echo "deps: all build and test packages present"
	exit 0
fi

if [ "$(id -u)" != 0 ]; then
	echo "deps: missing packages:$missing (run as root to install them)" >&2
	exit "$strict"
fi

echo "deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
# A daemon package (openssh-server, systemd) must never start its service on
# this host: the tests run their own sshd in namespaces, and an sshd on the
# host's port 22 is not ours to start. invoke-rc.d and deb-systemd-invoke ask
# policy-rc.d; where none exists, one that refuses (101) is put in place for
# this install and removed afterwards. An existing one is left alone.
policy_rcd=/usr/sbin/policy-rc.d
if [ ! -e "$policy_rcd" ] && [ ! -L "$policy_rcd" ]; then
	printf '#!/bin/sh\n# install-deps.sh: no service starts during this install\nexit 101\n' >"$policy_rcd.cvz-deps"
	chmod 0755 "$policy_rcd.cvz-deps"
	mv "$policy_rcd.cvz-deps" "$policy_rcd"
	trap 'rm -f "$policy_rcd"' EXIT
	trap 'exit 130' INT TERM
fi
# another apt (a parallel package build) may hold the lock: wait for it
lock="-o DPkg::Lock::Timeout=600"
# shellcheck disable=SC2086
apt-get $lock update -qq >/dev/null
# shellcheck disable=SC2086
apt-get $lock install -y -qq --no-install-recommends $missing >/dev/null
# The benches' peers (bench/detect_bench.py: fail2ban, sshguard) run only
# inside the bench's namespaces, against its private journald: their units
# are disabled too (systemctl works on the unit files without a running
# systemd, and disables the SysV script as well), so that no boot of this
# host starts them on its journal and ruleset.
for p in $missing; do
	case $p in
	fail2ban | sshguard) systemctl disable --quiet "$p.service" 2>/dev/null || true ;;
	esac
done
echo "deps: installed:$missing"
