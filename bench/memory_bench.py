#!/usr/bin/env python3
"""Memory at the documented maximum inputs (issue 12 item 4; the bounds are
include/cvz_limits.h), the figures behind the unit's MemoryMax=.

One agent, in throwaway network namespaces, with policy/examples/
cloudviz-node.json plus a list file of LIST entries (single IPv4 addresses,
none adjacent, so each is its own kernel range; default 100 000, and
1 000 000 is the CVZ_LIST_ENTRIES_MAX bound), polling the control-plane fixture (mutual TLS,
default max_response_bytes 16 MiB). Printed, each with its bound:

  1. start: VmHWM after the policy and the list are applied;
  2. CONTROL control entries (default 200 000, CVZ_CONTROL_ENTRIES_MAX) in
     one delta: VmHWM;
  3. the worst reply: 16 MiB of empty objects, refused by the scan before
     jansson: VmHWM growth (reset before through /proc/PID/clear_refs);
  4. the costliest reply the scan lets through (empty objects just under
     CVZ_REPLY_PARSE_BUDGET): VmHWM growth, then the overall VmHWM.

The kernel's memory for the set elements (charged to the service's cgroup
as well) is shown as the growth of SUnreclaim in /proc/meminfo around the
start: a host-wide figure, so other activity on the host shows up in it.

Run --list 1000000 only on a host of your own: while any process listens
for nftables events in the namespace, the kernel builds an event per set
element of a commit, and a million-element commit then takes gigabytes of
kernel slab (agent/nftd.c, PAUSE_MIN_ELEMS). On a shared test VM that ran
the host out of memory. The user-space side of a million-entry list is
measured without the kernel by `/usr/bin/time -f %M cloudviz-agent render`
of the same policy (44 MiB here).

--agent OLD runs the same against another build (e.g. one without the
bounds: step 3 then shows what jansson makes of 16 MiB of "{}").

usage: bench/memory_bench.py [--agent build/cloudviz-agent] [--list 100000]
       [--control 200000] [--json FILE]
Runs as root; never touches the host ruleset.
"""
import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import controlplane  # noqa: E402
import netns  # noqa: E402
import pki  # noqa: E402
from benchlib import proc_status_kib  # noqa: E402

MIB = 1 << 20
PARSE_BUDGET = 192 * MIB      # CVZ_REPLY_PARSE_BUDGET
COST_EMPTY_OBJECT = 232 + 16  # what the scan charges for "{}" in an array
MEMORY_MAX = 1024 * MIB       # systemd/cloudviz-agent.service


def meminfo_kib(key):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def reset_peak(pid):
    with open("/proc/%d/clear_refs" % pid, "w") as f:
        f.write("5")


def empty_objects(n):
    return (b'{"cursor": "mem-1", "full": false, "instructions": ['
            + b",".join([b"{}"] * n) + b"]}")


def list_file(path, n):
    with open(path, "w") as f:
        for i in range(n):
            a = (60 << 24) + 2 * i + 1
            f.write("%d.%d.%d.%d\n" % (a >> 24, a >> 16 & 255, a >> 8 & 255, a & 255))


def run(args, tmp, cleanups):
    topo = harness.topology(cleanups, tag="m", containers=False)
    node, pub = topo.ns["node"], topo.ns["pub"]
    paths = pki.make(os.path.join(tmp, "pki"), server_ips=[netns.A.PUB_203])
    cp = controlplane.ControlPlane(pub, netns.A.PUB_203, 8443, paths)
    cleanups.add(cp.stop)
    cp.start()
    pol = harness.load_policy("cloudviz-node.json")
    if args.list:
        lf = os.path.join(tmp, "million.netset")
        list_file(lf, args.list)
        pol["blocklist"]["files"] = [lf]
    policy = harness.write_policy(tmp, "policy.json", pol)
    d = harness.Daemon(cleanups, tmp, node, policy,
                       control_api=cp.control_api_config(wait=2))
    rows = []

    def row(what, kib, bound):
        rows.append((what, kib, bound))
        print("  %-58s %8.1f MiB   (bound %s)" % (what, kib / 1024, bound), flush=True)

    slab0 = meminfo_kib("SUnreclaim")
    t0 = time.monotonic()
    if not d.start(timeout=600):
        raise SystemExit("agent did not start: %s" % d.describe())
    pid = d.pid
    print("started with %d list entries in %.1f s" % (args.list, time.monotonic() - t0))
    row("1. after start (policy + %d list entries): VmHWM" % args.list,
        proc_status_kib(pid, "VmHWM"), "MemoryMax %d MiB" % (MEMORY_MAX // MIB))
    row("   kernel: SUnreclaim growth (host-wide)", meminfo_kib("SUnreclaim") - slab0,
        "charged to the cgroup too")

    def status():
        return d.status() or {}

    if args.control:
        cp.publish_bulk(args.control)
        ok, secs = harness.wait_until(
            lambda: (status().get("entries_by_origin") or {}).get("control") == args.control,
            600, 0.5)
        print("%d control entries applied: %s (%.1f s)" % (args.control, ok, secs))
        row("2. after %d control entries: VmHWM" % args.control,
            proc_status_kib(pid, "VmHWM"), "MemoryMax %d MiB" % (MEMORY_MAX // MIB))

    def reply(what, payload, bound):
        fails0 = (status().get("control") or {}).get("failures", 0)
        rss0 = proc_status_kib(pid, "VmRSS")
        reset_peak(pid)
        cp.inject(body=payload)
        ok, secs = harness.wait_until(
            lambda: (status().get("control") or {}).get("failures", 0) > fails0, 300, 0.2)
        err = (status().get("control") or {}).get("last_error")
        print("%s (%d bytes): refused=%s after %.1f s: %r" % (what, len(payload), ok, secs, err))
        row("   %s: VmHWM growth" % what, proc_status_kib(pid, "VmHWM") - rss0, bound)

    n = (16 * MIB - 100) // 3
    reply("3. 16 MiB of {}", empty_objects(n), "scan only: ~ the body, 16 MiB")
    n = PARSE_BUDGET // COST_EMPTY_OBJECT - 1000
    reply("4. %.1f MiB of {}" % (n * 3 / MIB), empty_objects(n),
          "parse budget %d MiB + body" % (PARSE_BUDGET // MIB))
    row("   overall VmHWM since start (never reset: steps 3-4 reset it)",
        proc_status_kib(pid, "VmHWM"), "MemoryMax %d MiB" % (MEMORY_MAX // MIB))
    d.stop()
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agent", default=harness.AGENT)
    ap.add_argument("--list", type=int, default=100000)
    ap.add_argument("--control", type=int, default=200000)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    harness.AGENT = os.path.abspath(args.agent)
    if os.geteuid() != 0:
        raise SystemExit("bench: needs root")
    cleanups = harness.Cleanups()
    import tempfile
    tmp = tempfile.mkdtemp(prefix="cvz-membench-")
    try:
        print("memory_bench: agent %s" % harness.AGENT)
        rows = run(args, tmp, cleanups)
        if args.json:
            with open(args.json, "w") as f:
                json.dump([{"what": w, "kib": k, "bound": b} for w, k, b in rows], f, indent=1)
    finally:
        cleanups.run()
        import shutil
        shutil.rmtree(tmp, True)


if __name__ == "__main__":
    main()
