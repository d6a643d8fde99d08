#!/bin/bash
# Developer self-test for agent/nft.c and agent/render.c. Needs root, nft.
#
# For every hand-built table in nft_selftest.c: install it with
# nft_apply_table() in namespace A, and `nft -f` its render_table() text in
# namespace B; then require A and B to list byte-identically
# (`nft list`, `nft -a list`, `nft -j list`, the bytecode and set elements of
# `nft --debug=netlink list`, and set attributes/userdata from a raw dump),
# and for "canonical" cases the rendered text to equal the listing.
# Finally the kernel refusal and atomicity checks run in namespace A.
#
#   tests/dev/nft_selftest.sh            plain build
#   ASAN=1 tests/dev/nft_selftest.sh     AddressSanitizer + UBSan + leaks
#   VALGRIND=1 tests/dev/nft_selftest.sh apply/render/errors under valgrind
#   NFT_SELFTEST_BIN=path ...            that binary instead of building one
#                                        (the runner's self-test uses a fake
#                                        to show this script can fail)
#
# Ends with "assertions: N passed, M failed, 0 skipped" (tests/run-all.sh
# reads it); exits non-zero on any failure, including a case list that is
# empty or whose command failed, and a basic table that cannot be applied.
set -u
cd "$(dirname "$0")/../.." || exit 1

OUT=build/dev
BIN=$OUT/nft_selftest
TMP=$(mktemp -d)
NSA=cvzA$$
NSB=cvzB$$
mkdir -p "$OUT"

cleanup() {
	ip netns del "$NSA" 2>/dev/null
	ip netns del "$NSB" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT

CFLAGS="-std=gnu11 -O1 -g -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter -D_GNU_SOURCE -Iinclude"
[ "${ASAN:-0}" = 1 ] && CFLAGS="$CFLAGS -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"
if [ -n "${NFT_SELFTEST_BIN:-}" ]; then
	BIN=$NFT_SELFTEST_BIN
else
	# shellcheck disable=SC2046,SC2086
	gcc $CFLAGS $(pkg-config --cflags libnftnl libmnl jansson) -o "$BIN" tests/dev/nft_selftest.c \
		agent/nft.c agent/render.c agent/rule_plan.c agent/addr.c agent/ruleset.c agent/names.c agent/utf8.c \
		$(pkg-config --libs libnftnl libmnl jansson) || exit 1
fi

RUN=("$BIN")
[ "${VALGRIND:-0}" = 1 ] && RUN=(valgrind -q --leak-check=full "--errors-for-leak-kinds=definite,indirect" --error-exitcode=3 "$BIN")

ip netns add "$NSA" && ip netns add "$NSB" || exit 1

pass=0
fail=0
ok() { echo "PASS: $*"; pass=$((pass + 1)); }
ko() { echo "FAIL: $*"; fail=$((fail + 1)); }

# Everything `nft` can tell about the table, one file per view.
snapshot() { # ns dir
	local ns=$1 d=$2
	mkdir -p "$d"
	ip netns exec "$ns" nft list table inet cloudviz >"$d/list"
	ip netns exec "$ns" nft -a list table inet cloudviz >"$d/list-handles"
	ip netns exec "$ns" nft -j list table inet cloudviz >"$d/json"
	ip netns exec "$ns" nft --debug=netlink list table inet cloudviz >"$d/bytecode"
	ip netns exec "$ns" "$BIN" dump >"$d/sets"
}

# Foreign tables in A must survive every apply (B gets them too, so that
# the per-netns table handle counters stay equal).
FOREIGN=$(cat <<'EOF'
table inet other {
	chain c {
		type filter hook input priority 10; policy accept;
	}
}
table ip cloudviz {
	set s {
		type ipv4_addr
	}
}
EOF
)
ip netns exec "$NSA" nft -f - <<<"$FOREIGN" && ip netns exec "$NSB" nft -f - <<<"$FOREIGN" || exit 1

# The case list first: a crash or an empty list must fail, not run zero cases.
if "$BIN" cases >"$TMP/cases" && [ -s "$TMP/cases" ]; then
	ok "case list: $(wc -l <"$TMP/cases") cases"
else
	ko "case list: \"$BIN cases\" failed or printed nothing"
fi
ncases=0
while read -r name kind; do
	ncases=$((ncases + 1))
	ip netns exec "$NSA" nft list table inet cloudviz >/dev/null 2>&1 &&
		echo "(replacing an existing table in A)"
	if ! "${RUN[@]}" render "$name" >"$TMP/$name.nft"; then
		ko "$name: render"
		continue
	fi
	if ! ip netns exec "$NSA" "${RUN[@]}" apply "$name"; then
		ko "$name: nft_apply_table"
		continue
	fi
	if ! ip netns exec "$NSB" nft -f "$TMP/$name.nft"; then
		ko "$name: nft -f of the rendered script"
		continue
	fi
	snapshot "$NSA" "$TMP/$name.A"
	snapshot "$NSB" "$TMP/$name.B"
	for view in list list-handles json bytecode sets; do
		if cmp -s "$TMP/$name.A/$view" "$TMP/$name.B/$view"; then
			ok "$name: $view identical in A and B ($(wc -l <"$TMP/$name.A/$view") lines)"
		else
			ko "$name: $view differs between A (apply) and B (nft -f)"
			diff "$TMP/$name.A/$view" "$TMP/$name.B/$view" | head -20 | cut -c1-300
		fi
	done
	tail -n +3 "$TMP/$name.nft" >"$TMP/$name.rendered"
	if cmp -s "$TMP/$name.rendered" "$TMP/$name.A/list"; then
		ok "$name: render output is what nft lists"
	elif [ "$kind" = noncanonical ]; then
		echo "NOTE: $name: nft lists this table differently from the render (expected):"
		diff "$TMP/$name.rendered" "$TMP/$name.A/list"
	else
		ko "$name: render output differs from nft list"
		diff "$TMP/$name.rendered" "$TMP/$name.A/list" | head -20 | cut -c1-300
	fi
done <"$TMP/cases"

if ip netns exec "$NSA" nft list table inet other >/dev/null &&
	ip netns exec "$NSA" nft list table ip cloudviz >/dev/null; then
	ok "other tables untouched"
else
	ko "other tables untouched"
fi

# Kernel refusals, plan errors and atomicity, on top of the basic table.
# Each step is an assertion of its own: a failed apply must not skip the rest
# silently.
if ! ip netns exec "$NSA" "$BIN" apply basic; then
	ko "error mapping and atomicity: apply basic failed"
elif ! ip netns exec "$NSA" nft list table inet cloudviz >"$TMP/before"; then
	ko "error mapping and atomicity: nft list after apply basic failed"
elif ip netns exec "$NSA" "${RUN[@]}" errors "$TMP/before"; then
	ok "error mapping and atomicity"
else
	ko "error mapping and atomicity"
fi

echo "nft_selftest: $ncases cases, $pass passed, $fail failed"
echo "assertions: $pass passed, $fail failed, 0 skipped"
[ "$fail" = 0 ] && [ "$pass" -gt 0 ]
