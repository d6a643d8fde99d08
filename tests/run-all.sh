#!/bin/bash
# The test runner `make check` calls after building. Tiers, in order:
#   unit         build/tests/test_*             plain unit tests
#   asan         build/asan/tests/test_*        the same under ASan+UBSan
#   fuzz         make fuzz; each build/fuzz/fuzz_* for $FUZZ_SECONDS (20) s
#   integration  tests/integration/test_*       throwaway netns, real packets (root);
#                the agent runs with its seccomp filter on; then again with
#                the ASan+UBSan agent and --no-seccomp
# Each program counts once: PASS, FAIL (its output follows) or SKIP (why).
# The last line is always "N passed, N failed[, N skipped]"; the exit status is
# non-zero if anything failed.
#
# usage: tests/run-all.sh [unit] [asan] [fuzz] [integration]    (default: all)
#        BUILD=build FUZZ_SECONDS=20 CVZ_AGENT=... tests/run-all.sh
set -u

cd "$(dirname "$0")/.." || exit 2
BUILD=${BUILD:-build}
export PYTHONDONTWRITEBYTECODE=1
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
TIERS=${*:-unit asan fuzz integration}
passed=0 failed=0 skipped=0
work=$(mktemp -d /tmp/cvz-run-all.XXXXXX) || exit 2
trap 'rm -rf "$work"' EXIT

pass() { passed=$((passed + 1)); echo "PASS $1"; }
skip() { skipped=$((skipped + 1)); echo "SKIP $1: $2"; }
fail() { # name, why, [file with the output]
	failed=$((failed + 1))
	echo "FAIL $1 ($2)"
	if [ -n "${3:-}" ] && [ -s "$3" ]; then
		# passing assertions ("  ok ...") are noise here; of the rest, a
		# fuzzer or sanitizer can be chatty and the end is what matters
		grep -v '^  ok  ' "$3" >"$3.shown"
		if [ "$(wc -l <"$3.shown")" -gt 200 ]; then
			echo "    ... (last 200 of $(wc -l <"$3.shown") lines)"
		fi
		tail -n 200 "$3.shown" | sed 's/^/    /'
	fi
}

# run_one NAME SECONDS CMD...: exit 0 passes, 77 skips, anything else fails.
run_one() {
	local name=$1 secs=$2 out="$work/out" rc
	shift 2
	local t0=$SECONDS
	timeout -k 10 "$secs" "$@" >"$out" 2>&1
	rc=$?
	name="$name [$((SECONDS - t0)) s]"
	# 77 is a skip only with a "SKIP ..." line: libFuzzer also exits 77 on a leak
	if [ $rc = 77 ] && grep -q '^SKIP' "$out"; then
		skip "$name" "$(grep -m1 '^SKIP' "$out" | sed -E 's/^SKIP [^:]*: //')"
		return
	fi
	case $rc in
	0) pass "$name" ;;
	124 | 137) fail "$name" "timed out after ${secs}s" "$out" ;;
	*) fail "$name" "exit $rc" "$out" ;;
	esac
}

want() { case " $TIERS " in *" $1 "*) return 0 ;; esac; return 1; }

# LeakSanitizer needs ptrace-like access to the process; some containers and
# debuggers deny it, and then every sanitized run dies with "LeakSanitizer has
# encountered a fatal error". Find out once with a program that leaks on purpose.
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

run_dir() { # tier-name glob-directory
	local tier=$1 dir=$2 n=0 t
	for t in "$dir"/test_*; do
		if [ ! -f "$t" ] || [ ! -x "$t" ]; then continue; fi
		n=$((n + 1))
		run_one "$tier/$(basename "$t")" 120 "$t"
	done
	[ $n -gt 0 ] || echo "note: no $tier tests in $dir (not built?)"
}

if want unit; then
	echo "== unit"
	run_dir unit "$BUILD/tests"
fi

read -r LSAN LSAN_WHY <<<"$(lsan_verdict)"
export ASAN_OPTIONS="detect_leaks=$LSAN:halt_on_error=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

if want asan; then
	echo "== asan (ASAN_OPTIONS=$ASAN_OPTIONS; $LSAN_WHY)"
	run_dir asan "$BUILD/asan/tests"
fi

if want fuzz; then
	echo "== fuzz"
	if ! command -v clang >/dev/null; then
		skip fuzz "clang not installed"
	elif ! make --no-print-directory fuzz >"$work/fuzzbuild" 2>&1; then
		if [ ! -f tests/fuzz/fuzz_policy.c ]; then
			skip fuzz "no fuzz target yet (tests/fuzz/fuzz_policy.c is missing)"
		else
			fail fuzz "make fuzz failed" "$work/fuzzbuild"
		fi
	else
		# Each target runs FUZZ_SECONDS. New inputs go to a scratch corpus
		# (the first directory), so the checked-in seeds stay as they are;
		# crashes land in build/fuzz/artifacts/.
		mkdir -p "$BUILD/fuzz/artifacts"
		for src in tests/fuzz/fuzz_*.c; do
			name=$(basename "$src" .c)
			case $name in
			fuzz_policy) seeds=(tests/fuzz/corpus policy/examples) ;;
			*) seeds=("tests/fuzz/corpus_${name#fuzz_}") ;;
			esac
			mkdir -p "$work/corpus_$name"
			existing=()
			for s in "${seeds[@]}"; do [ -d "$s" ] && existing+=("$s"); done
			run_one "fuzz/$name (${FUZZ_SECONDS}s)" $((FUZZ_SECONDS + 120)) \
				"$BUILD/fuzz/$name" -max_total_time="$FUZZ_SECONDS" -detect_leaks="$LSAN" \
				-error_exitcode=99 -timeout_exitcode=98 \
				-artifact_prefix="$BUILD/fuzz/artifacts/" "$work/corpus_$name" "${existing[@]}"
		done
	fi
fi

if want integration; then
	echo "== integration"
	if [ "$(id -u)" != 0 ]; then
		for t in tests/integration/test_*; do
			[ -x "$t" ] && skip "integration/$(basename "$t")" "needs root"
		done
	else
		host_before=$(nft list ruleset 2>&1)
		ns_before=$(ip netns list 2>/dev/null | awk '{print $1}' | grep '^cvzt-' | sort)
		# CVZ_AGENT from the caller wins; otherwise the agent of this BUILD
		agent=${CVZ_AGENT:-$(realpath -m "$BUILD/cloudviz-agent")}
		for t in tests/integration/test_*; do
			if [ ! -f "$t" ] || [ ! -x "$t" ]; then continue; fi
			CVZ_AGENT=$agent run_one "integration/$(basename "$t")" 300 "$t"
		done
		# Once more with the sanitized agent, if it was built: every test
		# that runs the agent, with the seccomp filter off (ASan's own
		# system calls are not the daemon's). Not the kernel-only
		# selftests, the fixture's, or the 200k-entry live reload, which
		# test no agent code the others do not.
		if [ -x "$BUILD/asan/cloudviz-agent" ] && [ -z "${CVZ_AGENT:-}" ]; then
			for t in tests/integration/test_*; do
				[ -x "$t" ] || continue
				case $(basename "$t") in
				test_nft_selftest | test_nftd_selftest | test_fixture_selftest | test_blocklist_live) continue ;;
				esac
				CVZ_AGENT=$(realpath "$BUILD/asan/cloudviz-agent") CVZ_RUN_ARGS=--no-seccomp \
					run_one "integration/$(basename "$t") (asan agent, no seccomp)" 600 "$t"
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

summary="$passed passed, $failed failed"
[ "$skipped" -gt 0 ] && summary="$summary, $skipped skipped"
echo "$summary"
[ "$failed" -eq 0 ]
