#!/bin/bash
# `make check-package` (after `make deb rpm`): the package checks, in order:
#   rpm        tests/package/check-rpm.sh, when present and executable:
#              the rpm's file list and scriptlets
#   lifecycle  tests/package/lifecycle.py: the deb installed, blocked,
#              reloaded, restarted, killed, upgraded, removed and purged in a
#              booted Debian 12 container (root; README.md says how)
# Each prints its own transcript. The last line is "package checks: N
# passed, N failed"; the exit status is 0 only if every check ran and passed.
#
# usage: sudo tests/package/run.sh         (environment: see lifecycle.py)
set -u

cd "$(dirname "$0")/../.." || exit 2
export PYTHONDONTWRITEBYTECODE=1
passed=0 failed=0
start=$SECONDS

run() { # name, command...
	local name=$1 t=$SECONDS rc
	shift
	echo "==== $name: $*"
	"$@"
	rc=$?
	if [ "$rc" = 0 ]; then
		passed=$((passed + 1))
		echo "==== PASS $name ($((SECONDS - t)) s)"
	else
		failed=$((failed + 1))
		echo "==== FAIL $name (exit $rc, $((SECONDS - t)) s)"
	fi
	echo
}

if [ -x tests/package/check-rpm.sh ]; then
	run rpm tests/package/check-rpm.sh
else
	echo "==== rpm: tests/package/check-rpm.sh not present, not run"
	echo
fi
run lifecycle python3 tests/package/lifecycle.py

echo "package checks: $passed passed, $failed failed ($((SECONDS - start)) s)"
[ "$failed" = 0 ]
