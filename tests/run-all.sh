#!/bin/bash
# The test runner `make check` calls after building. Tiers, in order:
#   unit         build/tests/test_*             plain unit tests (cmocka)
#   asan         build/asan/tests/test_*        the same under ASan+UBSan+LSan
#   fuzz         make fuzz; each build/fuzz/fuzz_* for $FUZZ_SECONDS (20) s
#   integration  tests/integration/test_*       throwaway netns, real packets (root);
#                the agent runs with its seccomp filter on; then again with
#                the ASan+UBSan agent and --no-seccomp
#
# A green run means everything ran. The rules:
# - Every program must report how much it checked, and at least one check:
#   cmocka's "[  PASSED  ] N test(s).", libFuzzer's "Done N runs", and for
#   the integration tests and shell selftests a last line
#   "assertions: N passed, M failed, K skipped" (harness.Report prints it).
#   Exit 0 with no count, with zero assertions or with failed ones is a FAIL.
# - Exit 0 passes, 77 with a "SKIP ..." line skips, anything else fails.
# - A skip is a whole test (exit 77, "needs root", clang missing, LeakSanitizer
#   unable to run) or one assertion inside a test ("  SKIP  what: why" lines,
#   cmocka's "[  SKIPPED ]"). Each is printed as a SKIP line and counted.
# - Strict mode (the default as root on Debian 12, i.e. `make check` in CI):
#   a skip is a FAILURE unless it matches tests/skip-allowlist (one glob per
#   line, each with its reason). Lenient mode (not root, another distro, or
#   CVZ_STRICT=0): skips are reported and counted, and do not fail the run.
#   CVZ_STRICT=1 forces strict mode.
# - A test_* file without its exec bit is a FAILURE (it would never run);
#   a unit test source without its binary, or an empty tier, too.
# - LeakSanitizer: if a deliberate leak goes unreported (ptrace denied, as in
#   some containers), the asan and fuzz tiers would pass without leak checks:
#   strict mode fails unless CVZ_ALLOW_NO_LSAN=1, which makes it a SKIP line.
# Each program's whole output is kept in $CVZ_TEST_LOGS/TIER/NAME.log
# (default build/test-logs); a FAIL also prints its last 200 lines.
# The last line is always "N passed, N failed, N skipped" (CI parses it):
# passed and failed count programs (and the two host checks), skipped counts
# SKIP lines; the exit status is non-zero if anything failed.
#
# usage: tests/run-all.sh [unit] [asan] [fuzz] [integration]    (default: all)
#        BUILD=build FUZZ_SECONDS=20 CVZ_AGENT=... tests/run-all.sh
# Test directories (for the runner's own self-test, tests/integration/test_runner_selftest):
#   CVZ_UNIT_DIR ($BUILD/tests), CVZ_ASAN_DIR ($BUILD/asan/tests),
#   CVZ_UNIT_SRC (tests/unit: every test_*.c there must have been built),
#   CVZ_INTEGRATION_DIR (tests/integration), CVZ_SKIP_ALLOWLIST
#   (tests/skip-allowlist), CVZ_TEST_LOGS ($BUILD/test-logs).
set -u

cd "$(dirname "$0")/.." || exit 2
BUILD=${BUILD:-build}
export PYTHONDONTWRITEBYTECODE=1
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
TIERS=${*:-unit asan fuzz integration}
UNIT_DIR=${CVZ_UNIT_DIR:-$BUILD/tests}
ASAN_DIR=${CVZ_ASAN_DIR:-$BUILD/asan/tests}
UNIT_SRC=${CVZ_UNIT_SRC:-tests/unit}
INTEGRATION_DIR=${CVZ_INTEGRATION_DIR:-tests/integration}
ALLOWLIST=${CVZ_SKIP_ALLOWLIST:-tests/skip-allowlist}
LOGS=${CVZ_TEST_LOGS:-$BUILD/test-logs}
passed=0 failed=0 skipped=0
if ! mkdir -p "$LOGS" || [ ! -w "$LOGS" ]; then
	echo "run-all.sh: cannot write the test logs to $LOGS (set CVZ_TEST_LOGS)" >&2
	exit 2
fi
work=$(mktemp -d /tmp/cvz-run-all.XXXXXX) || exit 2
trap 'rm -rf "$work"' EXIT

is_debian12() {
	# shellcheck source=/dev/null
	[ -r /etc/os-release ] && (. /etc/os-release && [ "${ID:-}" = debian ] && [ "${VERSION_ID:-}" = 12 ])
}
case ${CVZ_STRICT:-} in
1) STRICT=1 MODE="strict (CVZ_STRICT=1): a skip not on $ALLOWLIST fails" ;;
0) STRICT=0 MODE="lenient (CVZ_STRICT=0): skips are reported, not failed" ;;
"")
	if [ "$(id -u)" = 0 ] && is_debian12; then
		STRICT=1 MODE="strict (root on Debian 12): a skip not on $ALLOWLIST fails"
	else
		STRICT=0 MODE="lenient (not root on Debian 12): skips are reported, not failed"
	fi
	;;
*) echo "run-all.sh: CVZ_STRICT must be 0 or 1, not '$CVZ_STRICT'" >&2; exit 2 ;;
esac

# The allowlist: "GLOB | REASON" per line, '#' comments. GLOB (bash pattern)
# is matched against "TEST: WHAT", e.g. "integration/test_x: some check: why"
# for an assertion, "integration/test_x: (whole test): why" for a whole test.
ALLOW_GLOBS=()
if [ -e "$ALLOWLIST" ]; then
	lineno=0
	while IFS= read -r line || [ -n "$line" ]; do
		lineno=$((lineno + 1))
		case $line in '' | '#'*) continue ;; esac
		glob=${line%%|*} reason=${line#*|}
		glob=$(sed -E 's/^[[:space:]]+|[[:space:]]+$//g' <<<"$glob")
		reason=$(sed -E 's/^[[:space:]]+|[[:space:]]+$//g' <<<"$reason")
		if [ "$line" = "${line#*|}" ] || [ -z "$glob" ] || [ -z "$reason" ]; then
			echo "$ALLOWLIST:$lineno: error: expected 'GLOB | REASON', got '$line'" >&2
			exit 2
		fi
		ALLOW_GLOBS+=("$glob")
	done <"$ALLOWLIST"
fi
allowed() { # "TEST: WHAT" -> 0 if an allowlist entry matches
	local g
	for g in "${ALLOW_GLOBS[@]}"; do
		# shellcheck disable=SC2053  # the glob is meant to match
		[[ $1 == $g ]] && return 0
	done
	return 1
}

pass() { passed=$((passed + 1)); echo "PASS $1"; }
show() { # a file with a program's output: the end of it, and where the rest is
	[ -n "${1:-}" ] && [ -s "$1" ] || return 0
	# passing assertions ("  ok ...") are noise here; of the rest, a
	# fuzzer or sanitizer can be chatty and the end is what matters
	grep -v -e '^  ok  ' -e '^\[       OK \]' -e '^\[ RUN      \]' "$1" >"$work/shown"
	if [ "$(wc -l <"$work/shown")" -gt 200 ]; then
		echo "    ... (last 200 of $(wc -l <"$work/shown") lines; all of it: $1)"
	fi
	tail -n 200 "$work/shown" | sed 's/^/    /'
}
fail() { # name, why, [file with the output]
	failed=$((failed + 1))
	echo "FAIL $1 ($2)"
	show "${3:-}"
}
# skip NAME WHAT WHY: a SKIP line, counted, if the allowlist allows it or
# in lenient mode; otherwise (strict mode) nothing is printed and it returns
# 1: the caller fails the test. WHAT is "(whole test)" or the assertion.
skip() {
	local name=$1 what=$2 why=$3
	if allowed "${name%% \[*}: $what: $why"; then
		skipped=$((skipped + 1))
		echo "SKIP $name: $what: $why (allowed by $ALLOWLIST)"
	elif [ "$STRICT" = 0 ]; then
		skipped=$((skipped + 1))
		echo "SKIP $name: $what: $why"
	else
		return 1
	fi
}
STRICT_WHY="a skip fails in strict mode unless $ALLOWLIST allows it"
skip_or_fail() { # NAME WHAT WHY
	skip "$@" || fail "$1" "skipped: $2: $3; $STRICT_WHY"
}

# assertions KIND LOG: prints "PASSED FAILED SKIPPED" as the program reported
# them, nothing if it did not; the names of skipped assertions go to
# $work/skips, one per line.
assertions() {
	local kind=$1 log=$2 line n
	: >"$work/skips"
	case $kind in
	cmocka)
		line=$(grep -E '^\[  PASSED  \] [0-9]+ test\(s\)\.' "$log" | tail -n1)
		[ -n "$line" ] || return 0
		n=$(sed -E 's/^\[  PASSED  \] ([0-9]+).*/\1/' <<<"$line")
		grep -E '^\[  SKIPPED \] [A-Za-z_][A-Za-z0-9_]*$' "$log" | sed -E 's/^\[  SKIPPED \] //' |
			sort -u | sed 's/$/: cmocka skip()/' >"$work/skips"
		local f s
		f=$(grep -E '^\[  FAILED  \] [0-9]+ test\(s\)' "$log" | tail -n1 | sed -E 's/^\[  FAILED  \] ([0-9]+).*/\1/')
		s=$(wc -l <"$work/skips")
		echo "$n ${f:-0} $s"
		;;
	fuzz)
		line=$(grep -E '^Done [0-9]+ runs' "$log" | tail -n1)
		[ -n "$line" ] && echo "$(sed -E 's/^Done ([0-9]+).*/\1/' <<<"$line") 0 0"
		;;
	script)
		line=$(grep -E '^assertions: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$log" | tail -n1)
		[ -n "$line" ] || return 0
		grep -E '^  SKIP  ' "$log" | sed -E 's/^  SKIP  //' >"$work/skips"
		sed -E 's/^assertions: ([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped$/\1 \2 \3/' <<<"$line"
		;;
	esac
}

# run_one TIER NAME KIND SECONDS CMD...: runs CMD with its output in
# $LOGS/TIER/NAME.log and judges it by the rules above.
run_one() {
	local tier=$1 name=$2 kind=$3 secs=$4 rc log counts p f s unit
	shift 4
	mkdir -p "$LOGS/$tier"
	log="$LOGS/$tier/$(tr -c 'A-Za-z0-9_.\n-' '_' <<<"$name" | sed 's/_*$//').log"
	local t0=$SECONDS
	timeout -k 10 "$secs" "$@" >"$log" 2>&1
	rc=$?
	name="$tier/$name [$((SECONDS - t0)) s]"
	# 77 is a skip only with a "SKIP ..." line: libFuzzer also exits 77 on a leak
	if [ $rc = 77 ] && grep -q '^SKIP' "$log"; then
		skip_or_fail "$name" "(whole test)" "$(grep -m1 '^SKIP' "$log" | sed -E 's/^SKIP [^:]*: //')"
		return
	fi
	case $rc in
	0) ;;
	124) fail "$name" "timed out after ${secs}s" "$log"; return ;;
	*)
		if [ $rc = 137 ] && [ $((SECONDS - t0)) -ge "$secs" ]; then
			fail "$name" "timed out after ${secs}s" "$log"
		elif [ $rc -gt 128 ]; then # killed (by the OOM killer, for one: see dmesg)
			fail "$name" "exit $rc: killed by SIG$(kill -l $((rc - 128)) 2>/dev/null || echo $((rc - 128)))" "$log"
		else
			fail "$name" "exit $rc" "$log"
		fi
		return
		;;
	esac
	counts=$(assertions "$kind" "$log")
	case $kind in cmocka) unit="cmocka tests" ;; fuzz) unit=runs ;; *) unit=assertions ;; esac
	if [ -z "$counts" ]; then
		fail "$name" "exit 0 but no count of $unit in its output" "$log"
		return
	fi
	read -r p f s <<<"$counts"
	if [ "$f" -gt 0 ]; then
		fail "$name" "exit 0 but $f failed $unit" "$log"
		return
	elif [ "$p" -eq 0 ]; then
		fail "$name" "exit 0 with zero $unit passed ($s skipped): it tested nothing" "$log"
		return
	fi
	if [ "$s" -gt 0 ] && [ ! -s "$work/skips" ]; then
		echo "$s assertions: skipped but not named in the output" >"$work/skips"
	fi
	local what refused=()
	while IFS= read -r what; do
		skip "$name" "${what%%: *}" "${what#*: }" || refused+=("$what")
	done <"$work/skips"
	if [ ${#refused[@]} -gt 0 ]; then
		fail "$name" "${#refused[@]} of its assertions skipped; $STRICT_WHY"
		printf '    skipped: %s\n' "${refused[@]}"
		echo "    ($p $unit passed; all of its output: $log)"
	elif [ "$s" -gt 0 ]; then
		pass "$name ($p $unit, $s skipped)"
	else
		pass "$name ($p $unit)"
	fi
}

want() { case " $TIERS " in *" $1 "*) return 0 ;; esac; return 1; }

# LeakSanitizer needs ptrace-like access to the process; some containers and
# debuggers deny it, and then it either dies with "LeakSanitizer has
# encountered a fatal error" or reports nothing. Find out once with a program
# that leaks on purpose.
lsan_verdict() {
	local cc src="$work/leak.c" bin="$work/leak"
	cc=$(command -v clang || command -v gcc || command -v cc) || {
		echo "0 no C compiler to probe LeakSanitizer"; return; }
	printf '#include <stdlib.h>\nvoid *volatile p;\nint main(void) { p = malloc(7); p = 0; return 0; }\n' >"$src"
	if ! "$cc" -g -fsanitize=address -o "$bin" "$src" 2>"$work/leak.err"; then
		echo "0 cannot build an ASan probe: $(head -n1 "$work/leak.err")"; return
	fi
	ASAN_OPTIONS=detect_leaks=1 "$bin" >"$work/leak.out" 2>&1
	if grep -q "detected memory leaks" "$work/leak.out"; then
		echo "1 LeakSanitizer works here"
	else
		echo "0 LeakSanitizer does not work here ($(grep -m1 -i -E 'error|ptrace' "$work/leak.out" || echo 'a deliberate leak went unreported'))"
	fi
}

# unit_tier TIER DIR: every test_* there (no extension) must be executable;
# every $UNIT_SRC/test_*.c must have its binary; an empty tier fails.
unit_tier() {
	local tier=$1 dir=$2 n=0 t src
	for t in "$dir"/test_*; do
		[ -e "$t" ] || continue
		case $(basename "$t") in *.*) continue ;; esac # build/tests/test_x.d
		if [ -d "$t" ]; then continue; fi
		if [ ! -x "$t" ]; then
			fail "$tier/$(basename "$t")" "not executable: it would never run"
			continue
		fi
		n=$((n + 1))
		run_one "$tier" "$(basename "$t")" cmocka 120 "$t"
	done
	for src in "$UNIT_SRC"/test_*.c; do
		[ -e "$src" ] || continue
		t="$dir/$(basename "$src" .c)"
		[ -e "$t" ] || fail "$tier/$(basename "$t")" "$src has no binary $t: not built"
	done
	[ $n -gt 0 ] || fail "$tier" "no tests in $dir: not built? (make unit asan)"
}

# The sanitizer options of the asan and fuzz tiers (and of the sanitized
# agent in the integration tier), with LeakSanitizer only where it works.
lsan_checked=0
lsan_check() {
	[ $lsan_checked = 1 ] && return
	lsan_checked=1
	read -r LSAN LSAN_WHY <<<"$(lsan_verdict)"
	export ASAN_OPTIONS="detect_leaks=$LSAN:halt_on_error=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1"
	export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
	[ "$LSAN" = 1 ] && return
	if [ "${CVZ_ALLOW_NO_LSAN:-0}" = 1 ]; then
		skipped=$((skipped + 1))
		echo "SKIP LeakSanitizer: leak checks off: $LSAN_WHY (allowed by CVZ_ALLOW_NO_LSAN=1)"
	else
		skip_or_fail "LeakSanitizer" "leak checks off" "$LSAN_WHY (CVZ_ALLOW_NO_LSAN=1 allows it where ptrace is denied)"
	fi
}

echo "mode: $MODE; logs in $LOGS/"

if want unit; then
	echo "== unit"
	rm -rf "$LOGS/unit"
	unit_tier unit "$UNIT_DIR"
fi

if want asan; then
	lsan_check
	echo "== asan (ASAN_OPTIONS=$ASAN_OPTIONS; $LSAN_WHY)"
	rm -rf "$LOGS/asan"
	unit_tier asan "$ASAN_DIR"
fi

if want fuzz; then
	echo "== fuzz"
	rm -rf "$LOGS/fuzz"
	mkdir -p "$LOGS/fuzz"
	if ! command -v clang >/dev/null; then
		skip_or_fail fuzz "(whole tier)" "clang not installed"
	elif ! make --no-print-directory fuzz >"$LOGS/fuzz/build.log" 2>&1; then
		fail fuzz "make fuzz failed" "$LOGS/fuzz/build.log"
	else
		lsan_check
		# Each target runs FUZZ_SECONDS. New inputs go to a scratch corpus
		# (the first directory), so the checked-in seeds stay as they are;
		# crashes land in build/fuzz/artifacts/.
		mkdir -p "$BUILD/fuzz/artifacts"
		nf=0
		for src in tests/fuzz/fuzz_*.c; do
			[ -e "$src" ] || continue
			nf=$((nf + 1))
			name=$(basename "$src" .c)
			case $name in
			fuzz_policy) seeds=(tests/fuzz/corpus policy/examples) ;;
			*) seeds=("tests/fuzz/corpus_${name#fuzz_}") ;;
			esac
			mkdir -p "$work/corpus_$name"
			existing=()
			for s in "${seeds[@]}"; do [ -d "$s" ] && existing+=("$s"); done
			run_one fuzz "$name (${FUZZ_SECONDS}s)" fuzz $((FUZZ_SECONDS + 120)) \
				"$BUILD/fuzz/$name" -max_total_time="$FUZZ_SECONDS" -detect_leaks="$LSAN" \
				-error_exitcode=99 -timeout_exitcode=98 \
				-artifact_prefix="$BUILD/fuzz/artifacts/" "$work/corpus_$name" "${existing[@]}"
		done
		[ $nf -gt 0 ] || fail fuzz "no tests/fuzz/fuzz_*.c"
	fi
fi

# integration_tests: the executable test_* of INTEGRATION_DIR; a file that
# lost its exec bit fails here (once) instead of vanishing.
integration_tests() {
	local t
	INTEGRATION=()
	for t in "$INTEGRATION_DIR"/test_*; do
		[ -e "$t" ] || continue
		if [ ! -f "$t" ] || [ ! -x "$t" ]; then
			fail "integration/$(basename "$t")" "not executable: it would never run"
			continue
		fi
		INTEGRATION+=("$t")
	done
	[ ${#INTEGRATION[@]} -gt 0 ] || fail integration "no test_* in $INTEGRATION_DIR"
}

if want integration; then
	echo "== integration"
	rm -rf "$LOGS/integration"
	integration_tests
	if [ "$(id -u)" != 0 ]; then
		for t in "${INTEGRATION[@]}"; do
			skip_or_fail "integration/$(basename "$t")" "(whole test)" "needs root"
		done
	else
		host_before=$(nft list ruleset 2>&1)
		ns_before=$(ip netns list 2>/dev/null | awk '{print $1}' | grep '^cvzt-' | sort)
		# CVZ_AGENT from the caller wins; otherwise the agent of this BUILD
		agent=${CVZ_AGENT:-$(realpath -m "$BUILD/cloudviz-agent")}
		# 600 s: test_nft_selftest's million-range tables took 295 s on the
		# 2-core VM at load average 11
		for t in "${INTEGRATION[@]}"; do
			CVZ_AGENT=$agent run_one integration "$(basename "$t")" script 600 "$t"
		done
		# Once more with the sanitized agent, if it was built: every test
		# that runs the agent, with the seccomp filter off (ASan's own
		# system calls are not the daemon's). Not the kernel-only
		# selftests, the fixture's, the runner's own, or the 200k-entry live
		# reload, which test no agent code the others do not.
		if [ -x "$BUILD/asan/cloudviz-agent" ] && [ -z "${CVZ_AGENT:-}" ]; then
			lsan_check
			for t in "${INTEGRATION[@]}"; do
				case $(basename "$t") in
				test_nft_selftest | test_nftd_selftest | test_fixture_selftest | test_runner_selftest | test_blocklist_live) continue ;;
				esac
				CVZ_AGENT=$(realpath "$BUILD/asan/cloudviz-agent") CVZ_RUN_ARGS=--no-seccomp \
					run_one integration "$(basename "$t") (asan agent, no seccomp)" script 600 "$t"
			done
		fi
		if [ "$(nft list ruleset 2>&1)" = "$host_before" ]; then
			pass "integration: host ruleset untouched"
		else
			echo "$host_before" >"$work/host"
			nft list ruleset 2>&1 | diff -u "$work/host" - >"$work/hostdiff"
			fail "integration: host ruleset untouched" "it changed during the run" "$work/hostdiff"
		fi
		# namespaces of finished tests must be gone (live ones belong to parallel runs)
		leaked=""
		for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^cvzt-' | sort); do
			pid=${ns#cvzt-}; pid=${pid%%-*}
			grep -qx "$ns" <<<"$ns_before" && continue
			kill -0 "$pid" 2>/dev/null || leaked="$leaked $ns"
		done
		if [ -z "$leaked" ]; then
			pass "integration: no namespaces left behind"
		else
			echo "left behind:$leaked" >"$work/leaked"
			fail "integration: no namespaces left behind" "cleanup missed" "$work/leaked"
		fi
	fi
fi

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
