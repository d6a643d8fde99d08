#!/bin/sh
# Installs the Debian packages that building and testing cloudviz-agent need,
# and only those that are missing. Idempotent; prints what it installs.
# Without root it only reports what is missing.
set -eu

PKGS="gcc make pkg-config time libnftnl-dev libmnl-dev libjansson-dev libsystemd-dev libssl-dev libcurl4-openssl-dev libseccomp-dev libcmocka-dev
nftables iproute2 python3 iputils-ping procps util-linux clang systemd strace openssl groff-base man-db"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	echo "deps: all build and test packages present"
	exit 0
fi

if [ "$(id -u)" != 0 ]; then
	echo "deps: missing packages:$missing (run as root to install them)" >&2
	exit 0
fi

echo "deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "deps: installed:$missing"
