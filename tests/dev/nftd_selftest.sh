#!/bin/bash
# Developer self-test for agent/nftd.c (the daemon's netlink connection, set
# deltas, verify, monitor). Needs root, nft. Everything runs in network
# namespaces created here and deleted on exit.
#
#   suite      nftd_selftest.c's in-process tests (probe, owner+persist
#              against foreign nft commands, re-take, monitor, deltas on
#              both pairs of blocklist sets, verify, overrun, monitor pause)
#              in a fresh namespace
#   processes  the table outliving its owner: a process that exits, one
#              killed with SIGKILL, and new processes taking it over
#   bench      blocklist_v4 of BENCH_N ranges; one range added and deleted
#              in it and in dynamic_v4; one delta of BENCH_D ranges
#              (50000/5000; BENCH=1 for 1000000/10000)
#
#   tests/dev/nftd_selftest.sh            plain build
#   ASAN=1 tests/dev/nftd_selftest.sh     AddressSanitizer + UBSan + leaks
#   VALGRIND=1 tests/dev/nftd_selftest.sh suite and processes under valgrind
#   NFTD_SELFTEST_BIN=path ...            that binary instead of building one
#
# Ends with "assertions: N passed, M failed, 0 skipped" (tests/run-all.sh
# reads it), counting the suite's and the bench's own checks; a suite or
# bench that exits 0 without reporting a passed check fails.
set -u
cd "$(dirname "$0")/../.." || exit 1

OUT=build/dev
BIN=$OUT/nftd_selftest
NS=cvzD$$
NSP=cvzP$$
NSB=cvzB$$
mkdir -p "$OUT"

HOLD_PID=
cleanup() {
	[ -n "$HOLD_PID" ] && kill "$HOLD_PID" 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	ip netns del "$NSP" 2>/dev/null
	ip netns del "$NSB" 2>/dev/null
}
trap cleanup EXIT

CFLAGS="-std=gnu11 -O1 -g -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter -D_GNU_SOURCE -Iinclude"
[ "${ASAN:-0}" = 1 ] && CFLAGS="$CFLAGS -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"
if [ -n "${NFTD_SELFTEST_BIN:-}" ]; then
	BIN=$NFTD_SELFTEST_BIN
else
	# shellcheck disable=SC2046,SC2086
	gcc $CFLAGS $(pkg-config --cflags libnftnl libmnl jansson) -o "$BIN" tests/dev/nftd_selftest.c \
		agent/nftd.c agent/nft.c agent/rule_plan.c agent/addr.c agent/ruleset.c agent/utf8.c \
		$(pkg-config --libs libnftnl libmnl jansson) || exit 1
fi

RUN=("$BIN")
[ "${VALGRIND:-0}" = 1 ] && RUN=(valgrind -q --leak-check=full "--errors-for-leak-kinds=definite,indirect" --error-exitcode=3 "$BIN")

pass=0
fail=0
ok() { echo "PASS: $*"; pass=$((pass + 1)); }
ko() { echo "FAIL: $*"; fail=$((fail + 1)); }
# counted WHAT NS CMD...: runs CMD in NS; it prints "WHAT: N passed, M
# failed" as its last such line. Adds its N checks; fails unless it exited 0
# with N > 0 and M = 0.
counted() {
	local what=$1 ns=$2 out n m
	shift 2
	out=$(mktemp)
	ip netns exec "$ns" "$@" | tee "$out"
	local rc=${PIPESTATUS[0]}
	read -r n m < <(sed -n -E "s/^$what: ([0-9]+) passed, ([0-9]+) failed$/\1 \2/p" "$out" | tail -n1)
	rm -f "$out"
	if [ "$rc" = 0 ] && [ "${n:-0}" -gt 0 ] && [ "${m:-1}" = 0 ]; then
		pass=$((pass + n))
		echo "PASS: $what ($n checks)"
	else
		ko "$what: exit $rc, ${n:-no} checks passed, ${m:-no count of} failed"
	fi
}
check() { # what, command...
	local what=$1
	shift
	if "$@"; then ok "$what"; else ko "$what"; fi
}

# ---- suite -------------------------------------------------------------------
ip netns add "$NS" || exit 1
counted suite "$NS" "${RUN[@]}" suite
ip netns del "$NS"

# ---- processes ----------------------------------------------------------------
ip netns add "$NSP" || exit 1
in_ns() { ip netns exec "$NSP" "$@"; }
body() { in_ns nft list table inet cloudviz | grep -v -e '^table ' -e '^	flags '; }

# hold FLAGS: starts a process that applies and keeps its connection open;
# sets HOLD_PID and PORT, and HOLD_IN (its stdin; closing it ends it).
# A holder that dies at once must fail here, and must not leave HOLD_IN empty
# for release() (an empty "exec >&-" would close this script's stdout).
hold() {
	PORT='' HOLD_IN=''
	coproc HOLDER { in_ns "${RUN[@]}" hold "$1"; }
	HOLD_PID=$HOLDER_PID
	HOLD_IN=${HOLDER[1]:-}
	local from=${HOLDER[0]:-}
	if [ -z "$from" ] || ! read -r _ PORT <&"$from" || [ -z "$PORT" ]; then
		ko "holder (flags $1) did not report its port"
	fi
}
release() { # EOF on the holder's stdin: it closes its connection and exits
	[ -n "$HOLD_IN" ] && eval "exec $HOLD_IN>&-"
	HOLD_IN=
}

hold 6
check "held: table owned by the holder's port $PORT" \
	test "$(in_ns "$BIN" info)" = "flags 6 owner $PORT use 7"
out=$(in_ns nft delete table inet cloudviz 2>&1)
check "held: foreign nft delete table refused ($(echo "$out" | head -1))" \
	grep -q "Operation not permitted" <<<"$out"
before=$(body)
release
wait "$HOLD_PID"
HOLD_PID=
check "holder exited: table stays, persist only, owner cleared ($(in_ns "$BIN" info))" \
	test "$(in_ns "$BIN" info)" = "flags 4 owner 0 use 7"
check "holder exited: contents unchanged" test "$(body)" = "$before"
check "orphan: foreign nft commands may change it again" in_ns nft add rule inet cloudviz input counter
check "a new process takes the orphan over" in_ns "${RUN[@]}" retake

hold 6
kill -9 "$HOLD_PID"
wait "$HOLD_PID" 2>/dev/null
HOLD_PID=
check "holder killed (SIGKILL): table stays, owner cleared ($(in_ns "$BIN" info))" \
	test "$(in_ns "$BIN" info)" = "flags 4 owner 0 use 7"
check "a new process takes it over after SIGKILL" in_ns "${RUN[@]}" retake

hold 0
release
wait "$HOLD_PID"
HOLD_PID=
check "without flags: the table stays after exit ($(in_ns "$BIN" info))" \
	test "$(in_ns "$BIN" info)" = "flags 0 owner 0 use 7"
ip netns del "$NSP"

# ---- bench ----------------------------------------------------------------------
if [ "${VALGRIND:-0}" != 1 ]; then
	if [ "${BENCH:-0}" = 1 ]; then
		N=${BENCH_N:-1000000} D=${BENCH_D:-10000}
	else
		N=${BENCH_N:-50000} D=${BENCH_D:-5000}
	fi
	ip netns add "$NSB" || exit 1
	counted bench "$NSB" "$BIN" bench "$N" "$D"
	ip netns del "$NSB"
fi

echo "nftd_selftest: $pass passed, $fail failed"
echo "assertions: $pass passed, $fail failed, 0 skipped"
[ "$fail" = 0 ] && [ "$pass" -gt 0 ]
