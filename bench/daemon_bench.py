#!/usr/bin/env python3
"""Daemon benchmarks (issue 3): idle memory, idle CPU and wake-ups, and the
latency of a block from the control socket to the kernel.

Each figure is printed next to a baseline measured in the same run:
  - RSS with 1,000 runtime entries against the same daemon with none;
  - block latency through the socket against one `nft add element` process
    per address (how fail2ban and sshguard block) on an equivalent set in a
    scratch namespace;
  - idle CPU and wake-ups over IDLE_SECONDS (default 60), counted with strace.

Runs as root in throwaway network namespaces; never touches the host ruleset.
usage: bench/daemon_bench.py [--agent build/cloudviz-agent] [--idle-seconds 60]
                             [--blocks 1000]
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
from benchlib import ctl_request, proc_status_kib  # noqa: E402


def sh(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def addr(i):
    return f"198.{18 + (i >> 16) % 2}.{(i >> 8) & 255}.{i & 255}"


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


class Agent:
    def __init__(self, binary, ns, tmp):
        self.sock = os.path.join(tmp, "ctl.sock")
        cfg = os.path.join(tmp, "agent.json")
        with open(cfg, "w") as f:
            json.dump({"node_id": "bench", "policy": os.path.join(ROOT, "policy/examples/cloudviz-node.json"),
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


def bench_blocks(agent, n):
    rtt, inside = [], []
    for i in range(n):
        t0 = time.perf_counter()
        r = ctl_request(agent.sock, {"cmd": "block", "addr": addr(i)})
        rtt.append((time.perf_counter() - t0) * 1000)
        if not r.get("ok"):
            raise SystemExit(f"block failed: {r}")
        inside.append(r["elapsed_us"] / 1000)
    return rtt, inside


def bench_nft_baseline(ns, n):
    sh("ip", "netns", "exec", ns, "nft", "add table inet base; add set inet base s { type ipv4_addr; flags interval; }")
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        sh("ip", "netns", "exec", ns, "nft", "add", "element", "inet", "base", "s", "{ " + addr(i) + " }")
        times.append((time.perf_counter() - t0) * 1000)
    return times


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
    ap.add_argument("--blocks", type=int, default=1000)
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
        agent = Agent(a.agent, ns, tmp)
        time.sleep(0.5)
        rss0 = proc_status_kib(agent.pid, "VmRSS")
        rtt, inside = bench_blocks(agent, a.blocks)
        time.sleep(0.5)
        rss1 = proc_status_kib(agent.pid, "VmRSS")
        base = bench_nft_baseline(base_ns, a.blocks)
        cpu_ms, counts = idle(agent, a.idle_seconds)
        uname = os.uname()
        print(f"machine: {uname.nodename} {uname.release} {os.cpu_count()} cpus; policy: cloudviz-node.json")
        print(f"idle RSS, no runtime entries          {rss0 / 1024:8.1f} MiB  (baseline)")
        print(f"idle RSS, {a.blocks} runtime entries       {rss1 / 1024:8.1f} MiB  ratio {rss1 / rss0:.2f}")
        print(f"block via socket, round trip     p50 {pct(rtt, 50):7.2f} ms  p99 {pct(rtt, 99):7.2f} ms")
        print(f"block inside the agent           p50 {pct(inside, 50):7.2f} ms  p99 {pct(inside, 99):7.2f} ms")
        print(f"baseline: nft add element, 1 proc p50 {pct(base, 50):7.2f} ms  p99 {pct(base, 99):7.2f} ms")
        print(f"ratio agent round trip / nft      p50 {pct(rtt, 50) / pct(base, 50):7.3f}     p99 {pct(rtt, 99) / pct(base, 99):7.3f}")
        wake = counts.get("epoll_wait", 0) + counts.get("epoll_pwait", 0)
        print(f"idle {a.idle_seconds} s: CPU {cpu_ms:.0f} ms ({cpu_ms / (a.idle_seconds * 10):.4f}% of one core), "
              f"event-loop wake-ups {wake} (timers: 30 s ruleset read-back)")
        if counts:
            print("idle syscalls: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    finally:
        if agent:
            agent.stop()
        for n in (ns, base_ns):
            subprocess.run(["ip", "netns", "del", n], stderr=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
