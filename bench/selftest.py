#!/usr/bin/env python3
"""Self-check of the benches' baseline handling, with small inputs (about
two minutes; as root).

Each bench is run with a wrapper named nft first in its PATH, which runs
the real nft except for the calls whose arguments contain a chosen pattern:
those it fails with a message on stderr. A bench passes a case when it stops with
exit status 1, prints that message, prints no result line for the failed
measure and does not get to the end of its results, and leaves no
namespace of its own behind. The same bench run through the wrapper
without an injected failure must print its table and exit 0 (so the wrapper
itself is no cause of failure). The warm libnftables baseline and the
process runner are checked directly: a failed command and a timeout must
raise BenchError.

usage: bench/selftest.py [--agent build/cloudviz-agent] [--bench-dir bench]
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
from benchlib import BenchError, NftServer, run_timed  # noqa: E402

FAKE_NFT = """#!/bin/sh
# nft, except for a call whose arguments contain $CVZ_SELFTEST_FAIL
if [ -n "$CVZ_SELFTEST_FAIL" ]; then
    case " $* " in
    *"$CVZ_SELFTEST_FAIL"*) echo "selftest: injected nft failure: $*" >&2; exit 1 ;;
    esac
fi
exec @NFT@ "$@"
"""

SMALL = {
    "blocklist_bench.py": ["--v4", "2000", "--v6", "200", "--delta", "200", "--blocks", "2",
                           "--runs", "1"],
    "daemon_bench.py": ["--blocks", "2", "--idle-seconds", "1"],
    "control_bench.py": ["--instructions", "2", "--snapshot", "500", "--idle-seconds", "1",
                         "--repeat", "1"],
    "detect_bench.py": ["--attackers", "5", "--flood", "200", "--cap", "30", "--singles",
                        "2000"],
}
# the last thing each bench prints when it completes
END = {"blocklist_bench.py": "load average at the end", "daemon_bench.py": "ratio, process",
       "control_bench.py": "runtime ", "detect_bench.py": "runtime "}
# (bench, pattern of the baseline call to fail, what it is, the start of a
# result line that must not be printed then)
CASES = [
    ("blocklist_bench.py", None, "no failure injected", None),
    ("blocklist_bench.py", "base.nft", "cold load nft -f", "cold load"),
    ("blocklist_bench.py", "add element inet peer", "one block: nft add element", "one block"),
    ("blocklist_bench.py", "replace.nft", "list change: nft -f", "200-entry change: reload"),
    ("daemon_bench.py", None, "no failure injected", None),
    ("daemon_bench.py", "add element inet peer", "one block: nft add element",
     "process: cloudviz-agent block"),
    ("control_bench.py", None, "no failure injected", None),
    ("control_bench.py", "baseline.nft", "snapshot: nft -f", "snapshot 0k"),
    ("detect_bench.py", None, "no failure injected", None),
    # fail2ban's ban action runs nft from PATH and logs its stderr; sshguard's
    # backend discards nft's stderr, so its failure is no case here
    ("detect_bench.py", "add element inet f2b-table", "fail2ban's ban: nft add element",
     "fail2ban "),
]


def leftover_namespaces(pid):
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines()
            if line and re.match(r"^cvz[bt]-?%d-" % pid, line.split()[0])]


def run_case(bench_dir, agent, fake, tmp, bench, pattern, row):
    env = dict(os.environ, CVZ_SELFTEST_FAIL=pattern or "",
               PATH=os.path.dirname(fake) + ":" + os.environ.get("PATH", "/usr/sbin:/usr/bin"))
    args = [sys.executable, os.path.join(bench_dir, bench), "--agent", agent] + SMALL[bench]
    if bench in ("control_bench.py", "detect_bench.py"):
        args += ["--json", os.path.join(tmp, bench.replace(".py", ".json"))]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                         cwd=tmp)
    try:
        out, err = p.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        return ["did not end within 600 s"]
    problems = []
    complete = END[bench] in out
    if pattern is None:
        if p.returncode != 0 or not complete:
            problems.append("exit %d, results %s" % (p.returncode, "complete" if complete else
                                                     "incomplete"))
    else:
        if p.returncode != 1:
            problems.append("exit %d, expected 1" % p.returncode)
        if "selftest: injected nft failure" not in err:
            problems.append("the baseline's stderr is not shown")
        if complete:
            problems.append("the results were printed to the end")
        if any(line.startswith(row) for line in out.splitlines()):
            problems.append("a result line %r was printed" % row)
    left = leftover_namespaces(p.pid)
    if left:
        problems.append("namespaces left behind: %s" % ", ".join(left))
        for ns in left:
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
    if problems:
        problems.append("stdout:\n%s\nstderr:\n%s" % (out[-1500:], err[-1500:]))
    return problems


def direct_checks():
    """run_timed and NftServer raise BenchError on a failure."""
    problems = []
    for what, fn, needle in (
            ("run_timed, exit 1", lambda: run_timed("x", ["sh", "-c", "echo boom >&2; exit 1"]),
             "boom"),
            ("run_timed, timeout", lambda: run_timed("x", ["sleep", "5"], timeout=0.3),
             "did not end"),
    ):
        try:
            fn()
            problems.append("%s: no BenchError" % what)
        except BenchError as e:
            if needle not in str(e):
                problems.append("%s: %r lacks %r" % (what, str(e), needle))
    ns = "cvzb-%d-selftest" % os.getpid()
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        server = NftServer(ns)
        try:
            server.timed("add element inet nosuch s { 192.0.2.1 }")
            problems.append("NftServer: a failed command raised nothing")
        except BenchError as e:
            if "No such file" not in str(e):
                problems.append("NftServer: %r lacks nft's error" % str(e))
        finally:
            server.stop()
    finally:
        subprocess.run(["ip", "netns", "del", ns])
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", default=os.path.join(ROOT, "build/cloudviz-agent"))
    ap.add_argument("--bench-dir", default=HERE, help="the benches to check")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("selftest: needs root (network namespaces)")
    tmp = tempfile.mkdtemp(prefix="cvz-benchselftest-")
    failed = 0
    try:
        fake = os.path.join(tmp, "nft")
        real = shutil.which("nft")
        if not real:
            raise SystemExit("selftest: no nft")
        with open(fake, "w") as f:
            f.write(FAKE_NFT.replace("@NFT@", real))
        os.chmod(fake, 0o755)
        results = [("benchlib: run_timed, NftServer", direct_checks())]
        for bench, pattern, what, row in CASES:
            results.append(("%s: %s" % (bench, what),
                            run_case(a.bench_dir, os.path.abspath(a.agent), fake, tmp, bench,
                                     pattern, row)))
            name, problems = results[-1]
            print("%s %s" % ("ok  " if not problems else "FAIL", name), flush=True)
            for line in problems:
                print("     " + line.replace("\n", "\n     "))
        name, problems = results[0]
        print("%s %s" % ("ok  " if not problems else "FAIL", name))
        for line in problems:
            print("     " + line)
        failed = sum(1 for _, p in results if p)
        print("%d passed, %d failed" % (len(results) - failed, failed))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
