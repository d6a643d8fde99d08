#!/usr/bin/env python3
"""`cloudviz-agent check` on policies full of errors (issue 12 item 9):
error positions come from one scan of the text and at most 100 errors are
printed, so the time grows with the input, not with its square.

For N in --sizes (default 8 000 and 80 000), two inputs:
  entries  a policy whose blocklist.entries holds N bad addresses, each
           reported at its line and column (the old code re-scanned the
           whole text for every one of them: 8 000 took 4.6 s);
  file     a list file of N bad lines, named by the policy.
Printed: wall time (best of --runs), microseconds per error, and the ratio
of the time per error at the largest size to that at the smallest (1.0 is
linear; the old quadratic scan made it the ratio of the sizes, 10).

usage: bench/check_errors_bench.py [--agent build/cloudviz-agent]
       [--sizes 8000,80000] [--runs 3]
"""
import argparse
import json
import os
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_inputs(tmp, n):
    pol = {"version": 1, "chains": {"input": {"policy": "accept"}},
           "blocklist": {"entries": ["bad%d" % i for i in range(n)]}}
    entries = os.path.join(tmp, "entries%d.json" % n)
    with open(entries, "w") as f:
        json.dump(pol, f, indent=1)
    lst = os.path.join(tmp, "bad%d.netset" % n)
    with open(lst, "w") as f:
        f.writelines("bad%d\n" % i for i in range(n))
    files = os.path.join(tmp, "files%d.json" % n)
    with open(files, "w") as f:
        json.dump({"version": 1, "chains": {"input": {"policy": "accept"}},
                   "blocklist": {"files": [lst]}}, f)
    return {"entries": entries, "file": files}


def time_check(agent, policy, n, runs):
    best = None
    for _ in range(runs):
        t0 = time.monotonic()
        p = subprocess.run([agent, "check", policy], capture_output=True, text=True)
        dt = time.monotonic() - t0
        want = "and %d more errors (%d in all)" % (n - 100, n)
        if p.returncode != 1 or want not in p.stderr:
            raise SystemExit("check %s: rc %d, no %r in:\n%s" % (policy, p.returncode, want,
                                                                 p.stderr[-500:]))
        best = dt if best is None else min(best, dt)
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agent", default=os.path.join(ROOT, "build", "cloudviz-agent"))
    ap.add_argument("--sizes", default="8000,80000")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="cvz-checkbench-") as tmp:
        per = {}
        print("%-8s %8s %10s %14s" % ("input", "errors", "time", "per error"))
        for n in sizes:
            for kind, policy in make_inputs(tmp, n).items():
                dt = time_check(args.agent, policy, n, args.runs)
                per[(kind, n)] = dt / n
                print("%-8s %8d %8.3f s %11.2f us" % (kind, n, dt, dt / n * 1e6), flush=True)
        lo, hi = min(sizes), max(sizes)
        for kind in ("entries", "file"):
            print("%s: time per error at %d / at %d = %.2f (linear: 1; quadratic: %.0f)"
                  % (kind, hi, lo, per[(kind, hi)] / per[(kind, lo)], hi / lo))


if __name__ == "__main__":
    main()
