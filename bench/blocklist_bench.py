#!/usr/bin/env python3
"""Blocklists at scale (issue 4), each figure against a baseline run in the
same invocation, in fresh network namespaces.

Lists are generated deterministically: 1,000,000 IPv4 entries (90% single
addresses, 10% prefixes /16-/31) and 100,000 IPv6 entries.

 1. cold load: `cloudviz-agent apply` vs `nft -f` of the same entries into a
    set with `flags interval; auto-merge;` -- wall time and peak RSS;
 2. with the 1M list loaded in the daemon: one `block` through the socket
    (inside the agent, and the CLI round trip) vs one `nft add element` on the
    same set;
 3. a 10,000-entry delta (adds and deletes) through the daemon (reload of a
    changed list file) vs `nft -f` of the same delta;
 4. reload with unchanged lists: time and elements sent;
 5. daemon steady RSS with the 1M list.

usage: bench/blocklist_bench.py [--agent build/cloudviz-agent] [--v4 1000000]
       [--v6 100000] [--delta 10000] [--baseline-timeout 600]
"""
import argparse
import ipaddress
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import ctl_request, proc_status_kib  # noqa: E402


def run_measured(args, timeout=None, stdin=None):
    """Runs a command; returns (seconds, peak RSS in MiB, returncode).

    The peak comes from /usr/bin/time, which forks from its own small image:
    a child forked from this Python process would count the generated lists
    it inherited (copy-on-write pages are resident) in its own peak."""
    fd, rss_file = tempfile.mkstemp(prefix="cvz-rss-")
    os.close(fd)
    t0 = time.perf_counter()
    p = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", rss_file] + args, stdin=stdin,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _, status, _ = os.wait4(p.pid, 0) if timeout is None else wait4_timeout(p, timeout)
    except TimeoutError:
        os.unlink(rss_file)
        return None, None, None
    elapsed = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    err = p.stderr.read().decode()
    if p.returncode != 0:
        sys.stderr.write(err[-2000:])
    with open(rss_file) as f:
        lines = [l for l in f.read().split() if l.isdigit()]
    os.unlink(rss_file)
    return elapsed, (int(lines[-1]) / 1024 if lines else None), p.returncode


def wait4_timeout(p, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            return pid, status, ru
        time.sleep(0.05)
    p.kill()
    os.wait4(p.pid, 0)
    raise TimeoutError


def gen_v4(n, rnd):
    out = []
    for i in range(n):
        if i % 10 == 9:
            plen = rnd.randint(16, 31)
            a = rnd.getrandbits(32) & (0xFFFFFFFF << (32 - plen))
            out.append(f"{ipaddress.IPv4Address(a)}/{plen}")
        else:
            out.append(str(ipaddress.IPv4Address(rnd.getrandbits(32))))
    return out


def gen_v6(n, rnd):
    out = []
    for i in range(n):
        a = (0x2001_0db8 << 96) | rnd.getrandbits(96)
        if i % 10 == 9:
            plen = rnd.choice([48, 56, 64])
            a &= ((1 << 128) - 1) << (128 - plen)
            out.append(f"{ipaddress.IPv6Address(a)}/{plen}")
        else:
            out.append(str(ipaddress.IPv6Address(a)))
    return out


def ns_add(name):
    subprocess.run(["ip", "netns", "add", name], check=True)


def ns_del(name):
    subprocess.run(["ip", "netns", "del", name], stderr=subprocess.DEVNULL)


def write_policy(path, files):
    with open(os.path.join(ROOT, "policy/examples/cloudviz-node.json")) as f:
        pol = json.load(f)
    pol["blocklist"] = {"entries": [], "files": files}
    pol["log_dropped"] = False
    with open(path, "w") as f:
        json.dump(pol, f)


def nft_script(v4, v6, table="base"):
    lines = [f"table inet {table} {{",
             "  set s4 { type ipv4_addr; flags interval; auto-merge; elements = {"]
    lines.append(",\n".join(v4))
    lines.append("} }")
    lines.append("  set s6 { type ipv6_addr; flags interval; auto-merge; elements = {")
    lines.append(",\n".join(v6))
    lines.append("} }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def fmt(v, unit, width=8, prec=2):
    return f"{'timeout':>{width}}" if v is None else f"{v:{width}.{prec}f} {unit}"


def ratio(a, b):
    return "n/a" if a is None or b is None or b == 0 else f"{a / b:.3f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", default=os.path.join(ROOT, "build/cloudviz-agent"))
    ap.add_argument("--v4", type=int, default=1_000_000)
    ap.add_argument("--v6", type=int, default=100_000)
    ap.add_argument("--delta", type=int, default=10_000)
    ap.add_argument("--blocks", type=int, default=50)
    ap.add_argument("--baseline-timeout", type=int, default=600)
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench: needs root (network namespaces)")
    rnd = random.Random(20261127)
    v4 = gen_v4(a.v4, rnd)
    v6 = gen_v6(a.v6, rnd)
    tag = f"cvzb{os.getpid()}"
    tmp = tempfile.mkdtemp(prefix="cvz-blbench-")
    names = [tag + s for s in ("-apply", "-nft", "-daemon")]
    agent = None
    results = []
    try:
        for n in names:
            ns_add(n)
        l4, l6 = os.path.join(tmp, "v4.netset"), os.path.join(tmp, "v6.netset")
        with open(l4, "w") as f:
            f.write("# generated\n" + "\n".join(v4) + "\n")
        with open(l6, "w") as f:
            f.write("\n".join(v6) + "\n")
        pol = os.path.join(tmp, "policy.json")
        write_policy(pol, [l4, l6])
        script = os.path.join(tmp, "base.nft")
        with open(script, "w") as f:
            f.write(nft_script(v4, v6))

        # 1. cold load
        at, am, arc = run_measured(["ip", "netns", "exec", names[0], a.agent, "apply", pol])
        assert arc == 0, "agent apply failed"
        nt, nm, _ = run_measured(["ip", "netns", "exec", names[1], "nft", "-f", script],
                                 timeout=a.baseline_timeout)
        results.append(("cold load 1M+100k: wall time", fmt(at, "s"), fmt(nt, "s"), ratio(at, nt), "<= 0.333"))
        results.append(("cold load 1M+100k: peak RSS", fmt(am, "MiB"), fmt(nm, "MiB"), ratio(am, nm), "<= 0.100"))

        # the daemon with the same policy
        sock = os.path.join(tmp, "ctl.sock")
        cfg = os.path.join(tmp, "agent.json")
        with open(cfg, "w") as f:
            json.dump({"node_id": "bench", "policy": pol, "state_dir": os.path.join(tmp, "state"),
                       "socket": sock}, f)
        agent = subprocess.Popen(["ip", "netns", "exec", names[2], a.agent, "run", "-c", cfg],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(3000):
            try:
                if ctl_request(sock, {"cmd": "status"}, timeout=600).get("ok"):
                    break
            except OSError:
                time.sleep(0.02)
        time.sleep(1)

        # 2. one block on the loaded set
        inside, cli = [], []
        for i in range(a.blocks):
            addr = f"100.64.{i // 256}.{i % 256}"
            r = ctl_request(sock, {"cmd": "block", "addr": addr}, timeout=600)
            inside.append(r["elapsed_us"] / 1000)
            t0 = time.perf_counter()
            subprocess.run([a.agent, "block", f"100.65.{i // 256}.{i % 256}", "-s", sock],
                           check=True, stdout=subprocess.DEVNULL)
            cli.append((time.perf_counter() - t0) * 1000)
        bt, bm, _ = run_measured(["ip", "netns", "exec", names[1], "nft", "add", "element", "inet",
                                  "base", "s4", "{ 100.66.0.1 }"], timeout=a.baseline_timeout)
        bt_ms = None if bt is None else bt * 1000
        results.append(("one block, inside the agent (median)", fmt(statistics.median(inside), "ms"),
                        fmt(bt_ms, "ms"), ratio(statistics.median(inside), bt_ms), "< 5 ms"))
        results.append(("one block, CLI round trip (median)", fmt(statistics.median(cli), "ms"),
                        fmt(bt_ms, "ms"), ratio(statistics.median(cli), bt_ms), "< 50 ms"))
        results.append(("one nft add element: peak RSS", "", fmt(bm, "MiB"), "", ""))

        # 3. a 10k delta: drop delta/2 entries, add delta/2 new ones
        half = a.delta // 2
        gone, new = v4[:half], [f"100.{80 + i // 65536}.{(i // 256) % 256}.{i % 256}" for i in range(half)]
        with open(l4, "w") as f:
            f.write("\n".join(v4[half:] + new) + "\n")
        sent0 = ctl_request(sock, {"cmd": "status"}, timeout=600)["elements_sent"]
        t0 = time.perf_counter()
        r = ctl_request(sock, {"cmd": "reload"}, timeout=600)
        dt = time.perf_counter() - t0
        assert r.get("ok"), r
        sent1 = ctl_request(sock, {"cmd": "status"}, timeout=600)["elements_sent"]
        delta = os.path.join(tmp, "delta.nft")
        with open(delta, "w") as f:
            f.write("add element inet base s4 { " + ", ".join(new) + " }\n")
            f.write("delete element inet base s4 { " + ", ".join(gone) + " }\n")
        nt2, nm2, _ = run_measured(["ip", "netns", "exec", names[1], "nft", "-f", delta],
                                   timeout=a.baseline_timeout)
        results.append((f"{a.delta} entry delta: wall time", fmt(dt, "s"), fmt(nt2, "s"), ratio(dt, nt2), ""))
        results.append((f"{a.delta} entry delta: ranges sent", f"{sent1 - sent0:>8}", "", "", ""))

        # 4. reload with unchanged lists
        t0 = time.perf_counter()
        r = ctl_request(sock, {"cmd": "reload"}, timeout=600)
        rt = time.perf_counter() - t0
        sent2 = ctl_request(sock, {"cmd": "status"}, timeout=600)["elements_sent"]
        results.append(("reload, lists unchanged: wall time", fmt(rt, "s"), "", "", "< 1 s"))
        results.append(("reload, lists unchanged: elements sent", f"{sent2 - sent1:>8}", "", "", "0"))

        # 5. steady RSS
        time.sleep(1)
        results.append(("daemon steady RSS with the list", fmt(proc_status_kib(agent.pid, "VmRSS") / 1024, "MiB"), "", "", "<= 64 MiB"))

        u = os.uname()
        print(f"machine: {u.release}, {os.cpu_count()} cpus; nft: "
              + subprocess.run(["nft", "--version"], capture_output=True, text=True).stdout.strip())
        print(f"lists: {len(v4)} IPv4 ({sum('/' in e for e in v4)} prefixes), {len(v6)} IPv6")
        print(f"{'measure':42} {'agent':>12} {'baseline':>12} {'ratio':>7}  target")
        for row in results:
            print(f"{row[0]:42} {row[1]:>12} {row[2]:>12} {row[3]:>7}  {row[4]}")
    finally:
        if agent:
            agent.send_signal(signal.SIGTERM)
            agent.wait(timeout=30)
        for n in names:
            ns_del(n)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
