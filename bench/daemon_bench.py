#!/usr/bin/env python3
"""Daemon benchmarks (issue 3): idle memory, idle CPU and wake-ups, and the
latency of a block from the control socket to the kernel.

Each figure is printed next to a baseline measured in the same run:
  - RSS with 2 x BLOCKS runtime entries against the same daemon with none;
  - one block, two like-for-like pairs, interleaved, each side into a set
    of the same size: the baseline's namespace holds the agent's table as
    `cloudviz-agent render` prints it and a table of its own, `peer`, with
    an interval set dyn4 (as fail2ban and sshguard make theirs); every
    address the agent blocks in its dynamic_v4 is added to dyn4 too, so both
    sets always hold the same elements (checked after):
      * as a process: `cloudviz-agent block ADDR -s SOCKET` against
        `nft add element inet peer dyn4 { ADDR }` (how fail2ban and sshguard
        block), both started by this process through `nsenter --net=...`
        and timed from before the fork to after the wait;
      * in-process: the block request written to the control socket by this
        process against the same command given to a warm libnftables context
        in a helper process in the baseline's namespace, both timed by this process
        from the request to the answer;
    (the agent's own elapsed_us is shown as a breakdown, with no ratio: no
    baseline has that clock);
  - idle CPU and wake-ups over IDLE_SECONDS (default 60), counted with strace.

Every baseline's exit status is checked: a failed one stops the bench with
its stderr. Ratios are medians of the per-pair ratios, with [min-max].

Runs as root in throwaway network namespaces; never touches the host ruleset.
usage: bench/daemon_bench.py [--agent build/cloudviz-agent] [--idle-seconds 60]
                             [--blocks 500] [--nft nft]
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (BenchError, NftServer, check_run, ctl_request, ctl_timed,  # noqa: E402
                      fmt_spread, in_ns, nft_listeners, proc_status_kib, ratio_spread,
                      run_timed, set_count)


def sh(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def addr(i):
    # odd last octets: no two addresses adjacent, so the agent merges none
    # into a range and both sets hold one element per address
    return f"198.{18 + (i >> 15) % 2}.{(i >> 7) & 255}.{2 * (i & 127) + 1}"


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


class Agent:
    def __init__(self, binary, ns, tmp):
        self.ns = ns
        self.sock = os.path.join(tmp, "ctl.sock")
        self.policy = os.path.join(ROOT, "policy/examples/cloudviz-node.json")
        cfg = os.path.join(tmp, "agent.json")
        with open(cfg, "w") as f:
            json.dump({"node_id": "bench", "policy": self.policy,
                       "state_dir": os.path.join(tmp, "state"), "socket": self.sock}, f)
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, binary, "run", "-c", cfg],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            if os.path.exists(self.sock):
                try:
                    if ctl_request(self.sock, {"cmd": "status"}).get("ok"):
                        break
                except OSError:
                    pass
            time.sleep(0.02)
        else:
            raise SystemExit("agent did not start")
        # ip netns exec execs the agent: same PID
        self.pid = self.proc.pid

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=10)


def load_baseline_ns(agent_bin, nft, policy, ns, tmp):
    """The agent's table, as `render` prints it, and peer in namespace ns."""
    script = os.path.join(tmp, "baseline.nft")
    with open(script, "w") as f:
        f.write(check_run("agent render", [agent_bin, "render", policy]).stdout)
        f.write("table inet peer {\n\tset dyn4 {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t}\n}\n")
    run_timed("baseline: load the agent's table", in_ns(ns) + [nft, "-f", script])


def bench_blocks(agent_bin, nft, agent, base_ns, n):
    """n interleaved pairs of each kind; every address goes to both sides."""
    res = {k: [] for k in ("proc_agent", "proc_nft", "inproc_agent", "inproc_nft", "inside")}
    server = NftServer(base_ns)
    try:
        for i in range(n):
            a = addr(2 * i)
            agent_cmd = in_ns(agent.ns) + [agent_bin, "block", a, "-s", agent.sock]
            nft_cmd = in_ns(base_ns) + [nft, "add", "element", "inet", "peer", "dyn4",
                                        "{ " + a + " }"]
            order = ((agent_cmd, "proc_agent", "agent block"),
                     (nft_cmd, "proc_nft", "baseline nft add element"))
            for cmd, key, what in (order if i % 2 == 0 else order[::-1]):
                res[key].append(run_timed(what, cmd)[0])
            a = addr(2 * i + 1)
            sides = (("agent", lambda: ctl_timed(agent.sock, {"cmd": "block", "addr": a})),
                     ("nft", lambda: (server.timed(
                         "add element inet peer dyn4 { %s }" % a), None)))
            for side, fn in (sides if i % 2 == 0 else sides[::-1]):
                dt, r = fn()
                res["inproc_" + side].append(dt)
                if r is not None:
                    res["inside"].append(r["elapsed_us"] / 1e6)
    finally:
        server.stop()
    return res


def idle(agent, seconds):
    strace = shutil.which("strace")
    c0 = cpu_ticks(agent.pid)
    counts = {}
    if strace:
        out = tempfile.NamedTemporaryFile(delete=False)
        p = subprocess.Popen([strace, "-f", "-qq", "-c", "-o", out.name, "-p", str(agent.pid)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(seconds)
        p.send_signal(signal.SIGINT)
        p.wait(timeout=10)
        with open(out.name) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 5 and parts[-1].isidentifier() and parts[3].isdigit():
                    counts[parts[-1]] = int(parts[3])
        os.unlink(out.name)
    else:
        time.sleep(seconds)
    ticks = cpu_ticks(agent.pid) - c0
    return ticks * 1000 / os.sysconf("SC_CLK_TCK"), counts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", default=os.path.join(ROOT, "build/cloudviz-agent"))
    ap.add_argument("--idle-seconds", type=int, default=60)
    ap.add_argument("--blocks", type=int, default=500,
                    help="pairs of each kind (the agent ends with 2 x BLOCKS entries)")
    ap.add_argument("--nft", default="nft", help="the nft of the baselines (bench/selftest.py "
                    "passes one that fails)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench: needs root (network namespaces)")
    tag = f"cvzb-{os.getpid()}"
    ns, base_ns = tag + "-node", tag + "-base"
    tmp = tempfile.mkdtemp(prefix="cvz-bench-")
    agent = None
    try:
        sh("ip", "netns", "add", ns)
        sh("ip", "netns", "add", base_ns)
        listeners_before = nft_listeners()
        agent = Agent(a.agent, ns, tmp)
        load_baseline_ns(a.agent, a.nft, agent.policy, base_ns, tmp)
        time.sleep(0.5)
        rss0 = proc_status_kib(agent.pid, "VmRSS")
        r = bench_blocks(a.agent, a.nft, agent, base_ns, a.blocks)
        time.sleep(0.5)
        rss1 = proc_status_kib(agent.pid, "VmRSS")
        n_agent = set_count(a.nft, ns, "cloudviz", "dynamic_v4")
        n_base = set_count(a.nft, base_ns, "peer", "dyn4")
        if n_agent != n_base or n_agent != 2 * a.blocks:
            raise BenchError(f"dynamic_v4 holds {n_agent} elements in the agent's namespace and "
                             f"peer dyn4 {n_base}; expected {2 * a.blocks} in both")
        cpu_ms, counts = idle(agent, a.idle_seconds)
        uname = os.uname()
        listeners_seen = sorted(set(listeners_before + nft_listeners(exclude=agent.pid)))
        ms = 1000
        print(f"machine: {uname.nodename} {uname.release} {os.cpu_count()} cpus, load average "
              f"{' '.join('%.2f' % x for x in os.getloadavg())}; policy: cloudviz-node.json; "
              + check_run("nft --version", [a.nft, "--version"]).stdout.strip())
        print(f"blocks: {a.blocks} pairs of each kind, interleaved, order alternating; the agent "
              f"into dynamic_v4, nft into\n  peer dyn4 beside the agent's table (from `render`); "
              f"both sets hold 0 .. {2 * a.blocks - 1} elements alike; ms: median [min-max], p99")
        print("nf_tables event listeners on the host (each makes every commit build an event "
              "per element):\n  " + (", ".join(listeners_seen) or "none"))
        print(f"idle RSS, no runtime entries            {rss0 / 1024:8.1f} MiB  (baseline)")
        print(f"idle RSS, {2 * a.blocks} runtime entries         {rss1 / 1024:8.1f} MiB  "
              f"ratio {rss1 / rss0:.2f}")
        rows = (("process: cloudviz-agent block", r["proc_agent"]),
                ("process: nft add element (baseline)", r["proc_nft"]),
                ("in-process: socket request", r["inproc_agent"]),
                ("in-process: libnftables (baseline)", r["inproc_nft"]),
                ("agent's own elapsed_us (breakdown)", r["inside"]))
        for name, v in rows:
            print(f"{name:40} {fmt_spread(v, ms):>26} ms  p99 {pct(v, 99) * ms:7.2f} ms")
        print(f"ratio, process: agent / nft              {ratio_spread(r['proc_agent'], r['proc_nft'])}")
        print(f"ratio, in-process: agent / libnftables   {ratio_spread(r['inproc_agent'], r['inproc_nft'])}")
        wake = counts.get("epoll_wait", 0) + counts.get("epoll_pwait", 0)
        print(f"idle {a.idle_seconds} s: CPU {cpu_ms:.0f} ms ({cpu_ms / (a.idle_seconds * 10):.4f}% of one core), "
              f"event-loop wake-ups {wake} (timers: 30 s ruleset read-back)")
        if counts:
            print("idle syscalls: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 1
    finally:
        if agent:
            agent.stop()
        for n in (ns, base_ns):
            subprocess.run(["ip", "netns", "del", n], stderr=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
