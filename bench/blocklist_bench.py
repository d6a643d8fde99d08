#!/usr/bin/env python3
"""Blocklists at scale (issue 4), each figure against a baseline run in the
same invocation, in fresh network namespaces.

Lists are generated deterministically: 1,000,000 IPv4 entries (90% single
addresses, 10% prefixes /16-/31) and 100,000 IPv6 entries.

Both sides of every ratio are measured alike: each is a process started by
this script through `nsenter --net=NS` and timed from before the fork to
after the wait (or, for the in-process pair of 2, a request to a warm
process timed by this script from the request to the answer), with the same
input, into sets of the same size. Every baseline's exit status is checked:
a failed baseline stops the bench with its stderr. A measure repeated R times
(--runs) alternates the agent's and the baseline's runs and prints median
[min-max], and the median of the per-pair ratios [min-max].

 1. cold load: `cloudviz-agent apply POLICY` (the lists as files) vs `nft -f`
    of the same entries into sets with `flags interval; auto-merge;` (nft
    merges them), each into a fresh namespace -- wall time and peak RSS
    (/usr/bin/time around both);
 2. one block with the lists loaded in the daemon. The baseline's namespace
    holds the agent's table without the lists (`cloudviz-agent render` of
    the policy without its list files, loaded with `nft -f`) and a table of
    its own, `peer`, with an interval set dyn4, as fail2ban and sshguard
    make theirs. Each address blocked goes into the agent's dynamic_v4 and
    into dyn4, so both sets always hold the same elements (checked after):
      process:    `cloudviz-agent block ADDR -s SOCKET`
                  vs `nft add element inet peer dyn4 { ADDR }`;
      in-process: the block request on the control socket vs the same nft
                  command given to a warm libnftables context (a helper
                  process in the baseline's namespace);
    the agent's own elapsed_us is shown as a breakdown without a ratio.
    Not loading the lists in the baseline's namespace is nft's best case:
    nft 1.0.6 reads the elements of the sets in the ruleset before it adds
    one: with the 1M+100k lists loaded, one warm `add element` had not
    finished after 6 minutes;
 3. a DELTA-entry change (DELTA/2 entries removed from the list file, DELTA/2
    added): `cloudviz-agent reload -s SOCKET` (reads the changed file, sends
    the difference) vs `nft -f` replacing the contents of the loaded
    auto-merge set of 1 (the last baseline namespace, which holds the same
    list) with the new list: flush and add in one transaction, the same
    input and the same outcome; R changes, alternating. (A delta of raw
    entries is no baseline: nft refuses to delete an entry that auto-merge
    folded into a range, and the transaction is lost.) The replacement is
    not run when it would hold too much kernel memory (KMEM_SHARE below);
 4. reload with unchanged lists (`cloudviz-agent reload` as a process): time
    and elements sent;
 5. daemon steady RSS with the lists.

usage: bench/blocklist_bench.py [--agent build/cloudviz-agent] [--v4 1000000]
       [--v6 100000] [--delta 10000] [--blocks 50] [--runs 3]
       [--baseline-timeout 600] [--nft nft]
"""
import argparse
import ipaddress
import json
import os
import random
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


def block_addr(i):
    # 100.64.0.0/10, odd last octets: no two adjacent, so the agent merges
    # none and both dynamic_v4 sets hold one element per address
    return f"100.{64 + (i >> 15) % 64}.{(i >> 7) & 255}.{2 * (i & 127) + 1}"


# the baseline's own set, beside the agent's table: a table of its own, as
# fail2ban and sshguard make theirs
PEER_TABLE = """table inet peer {
	set dyn4 {
		type ipv4_addr
		flags interval
	}
}
"""


# Kernel memory. While any process on the host listens to nf_tables events
# (an agent, `nft monitor`), the kernel builds an event per set element of a
# transaction and holds them until the commit ends: about 10 KiB of
# unreclaimable slab per list entry here (a 100,000-entry nft -f peaked at
# 1 GiB). A 1.1M-entry load then needs about 11 GiB for a moment, and a set
# replaced whole (flush + add) twice that; on a shared 24 GiB machine such a
# commit beside another ran the kernel out of memory and the OOM killer
# ended other users' processes. So a transaction that would need more than
# KMEM_SHARE of MemAvailable while listeners exist is not run.
KMEM_PER_ENTRY_KIB = 10
KMEM_SHARE = 0.6


def kmem_refusal(entries, factor=1):
    """None when a transaction of `entries` list entries (x factor) is safe
    to run now, else why not."""
    listeners = nft_listeners()
    if not listeners:
        return None
    need = entries * factor * KMEM_PER_ENTRY_KIB
    with open("/proc/meminfo") as f:
        avail = next(int(l.split()[1]) for l in f if l.startswith("MemAvailable:"))
    if need <= KMEM_SHARE * avail:
        return None
    return (f"not run: with nf_tables event listeners on the host ({', '.join(listeners)}) it "
            f"would hold about {need / 1048576:.1f} GiB of kernel memory at once, "
            f"MemAvailable is {avail / 1048576:.1f} GiB")


def alternate(i, pair):
    return pair if i % 2 == 0 else pair[::-1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", default=os.path.join(ROOT, "build/cloudviz-agent"))
    ap.add_argument("--v4", type=int, default=1_000_000)
    ap.add_argument("--v6", type=int, default=100_000)
    ap.add_argument("--delta", type=int, default=10_000)
    ap.add_argument("--blocks", type=int, default=50)
    ap.add_argument("--runs", type=int, default=3, help="cold loads and deltas per side")
    ap.add_argument("--baseline-timeout", type=int, default=600)
    ap.add_argument("--nft", default="nft", help="the nft of the baselines (bench/selftest.py "
                    "passes one that fails)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench: needs root (network namespaces)")
    a.agent = os.path.abspath(a.agent)
    rnd = random.Random(20261127)
    v4 = gen_v4(a.v4, rnd)
    v6 = gen_v6(a.v6, rnd)
    tag = f"cvzb{os.getpid()}"
    tmp = tempfile.mkdtemp(prefix="cvz-blbench-")
    made = []
    agent, server = None, None
    T = a.baseline_timeout

    def emit(row):
        print(f"{row[0]:50} {row[1]:>24} {row[2]:>24} {row[3]:>21}  {row[4]}", flush=True)

    def fresh_ns(name):
        ns_add(name)
        made.append(name)
        return name

    def drop_ns(name):
        ns_del(name)
        made.remove(name)

    try:
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
        del v6

        u = os.uname()
        print(f"machine: {u.release}, {os.cpu_count()} cpus, load average "
              f"{' '.join('%.2f' % x for x in os.getloadavg())}; "
              + check_run("nft --version", [a.nft, "--version"]).stdout.strip())
        print(f"lists: {len(v4)} IPv4 ({sum('/' in e for e in v4)} prefixes), {a.v6} IPv6; "
              f"{a.runs} run(s) of 1 and 3, {a.blocks} pairs of each kind in 2")
        print("figures: median [min-max]; ratio: median of the per-pair ratios [min-max]")
        print(f"{'measure':50} {'agent':>24} {'baseline':>24} {'ratio':>21}  target", flush=True)

        def progress(msg):
            print(f"[{time.monotonic() - t_start:7.1f} s] {msg}", file=sys.stderr, flush=True)
        t_start = time.monotonic()
        listeners_before = nft_listeners()

        # 1. cold load, R runs each, alternating, each into a fresh namespace;
        # the last baseline namespace stays for 3.
        cold = {"at": [], "am": [], "nt": [], "nm": []}
        base_ns = None
        for k in range(a.runs):
            for side in alternate(k, ("agent", "nft")):
                why = kmem_refusal(a.v4 + a.v6)
                if why:
                    raise BenchError(f"cold load: {why}")
                progress(f"cold load {k + 1}/{a.runs}: {side}")
                ns = fresh_ns(f"{tag}-{side}{k}")
                if side == "agent":
                    t, m = run_timed("agent apply", in_ns(ns) + [a.agent, "apply", pol], T, rss=True)
                    cold["at"].append(t)
                    cold["am"].append(m)
                    drop_ns(ns)
                else:
                    t, m = run_timed("baseline nft -f", in_ns(ns) + [a.nft, "-f", script], T, rss=True)
                    cold["nt"].append(t)
                    cold["nm"].append(m)
                    if base_ns:
                        drop_ns(base_ns)
                    base_ns = ns
        n = f"cold load {a.v4 // 1000}k+{a.v6 // 1000}k"
        emit((f"{n}: wall time, s", fmt_spread(cold["at"]), fmt_spread(cold["nt"]),
                     ratio_spread(cold["at"], cold["nt"]), "<= 0.333"))
        emit((f"{n}: peak RSS, MiB", fmt_spread(cold["am"], prec=1),
                     fmt_spread(cold["nm"], prec=1), ratio_spread(cold["am"], cold["nm"]),
                     "<= 0.100"))

        # the daemon with the same policy; the baseline's namespace
        progress("daemon and the baseline's namespace")
        dns = fresh_ns(f"{tag}-daemon")
        peer = fresh_ns(f"{tag}-peer")
        sock = os.path.join(tmp, "ctl.sock")
        cfg = os.path.join(tmp, "agent.json")
        with open(cfg, "w") as f:
            json.dump({"node_id": "bench", "policy": pol, "state_dir": os.path.join(tmp, "state"),
                       "socket": sock}, f)
        why = kmem_refusal(a.v4 + a.v6)
        if why:
            raise BenchError(f"daemon start: {why}")
        agent = subprocess.Popen(in_ns(dns) + [a.agent, "run", "-c", cfg],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pol_nolists = os.path.join(tmp, "policy-nolists.json")
        write_policy(pol_nolists, [])
        rendered = os.path.join(tmp, "peer.nft")
        with open(rendered, "w") as f:
            f.write(check_run("agent render", [a.agent, "render", pol_nolists]).stdout)
            f.write(PEER_TABLE)
        run_timed("baseline: load the agent's table without lists, and peer",
                  in_ns(peer) + [a.nft, "-f", rendered], T)
        for _ in range(3000):
            if agent.poll() is not None:
                raise BenchError(f"agent run exited {agent.returncode}")
            try:
                if ctl_request(sock, {"cmd": "status"}, timeout=600).get("ok"):
                    break
            except OSError:
                time.sleep(0.02)
        else:
            raise BenchError("agent did not answer status")
        time.sleep(1)

        # 2. one block with the lists loaded, the same set size on both sides
        progress(f"{a.blocks} block pairs of each kind")
        blk = {k: [] for k in ("proc_agent", "proc_nft", "in_agent", "in_nft", "inside")}
        server = NftServer(peer)
        for i in range(a.blocks):
            ad = block_addr(2 * i)
            pair = (("proc_agent", "agent block", in_ns(dns) + [a.agent, "block", ad, "-s", sock]),
                    ("proc_nft", "baseline nft add element", in_ns(peer) + [
                        a.nft, "add", "element", "inet", "peer", "dyn4", "{ " + ad + " }"]))
            for key, what, cmd in alternate(i, pair):
                blk[key].append(run_timed(what, cmd, T)[0])
            ad = block_addr(2 * i + 1)
            for side in alternate(i, ("agent", "nft")):
                if side == "agent":
                    dt, r = ctl_timed(sock, {"cmd": "block", "addr": ad}, timeout=600)
                    blk["in_agent"].append(dt)
                    blk["inside"].append(r["elapsed_us"] / 1e6)
                else:
                    blk["in_nft"].append(server.timed(
                        f"add element inet peer dyn4 {{ {ad} }}"))
        server.stop()
        server = None
        c_agent = set_count(a.nft, dns, "cloudviz", "dynamic_v4")
        c_peer = set_count(a.nft, peer, "peer", "dyn4")
        if c_agent != c_peer or c_agent != 2 * a.blocks:
            raise BenchError(f"dynamic_v4 holds {c_agent} elements in the daemon's namespace and "
                             f"peer dyn4 {c_peer}; expected {2 * a.blocks} in both")
        ms = 1000
        emit(("one block, process: CLI vs nft add element, ms",
                     fmt_spread(blk["proc_agent"], ms), fmt_spread(blk["proc_nft"], ms),
                     ratio_spread(blk["proc_agent"], blk["proc_nft"]), "< 50 ms"))
        emit(("one block, in-process: socket vs libnftables, ms",
                     fmt_spread(blk["in_agent"], ms), fmt_spread(blk["in_nft"], ms),
                     ratio_spread(blk["in_agent"], blk["in_nft"]), ""))
        emit(("one block, the agent's own elapsed_us, ms", fmt_spread(blk["inside"], ms),
                     "", "", "< 5 ms"))
        drop_ns(peer)
        os.unlink(rendered)

        # 3. DELTA-entry changes: agent reload (process) vs nft -f replacing the
        # set's contents with the new list in one transaction (the same input,
        # the same outcome). A delta of raw entries (add/delete element) is no
        # baseline: nft refuses to delete an entry that auto-merge folded into
        # a range ("element does not exist"), and the transaction is lost.
        half = a.delta // 2
        cur = list(v4)
        dl = {"at": [], "nt": [], "sent": []}
        skipped = None
        for k in range(a.runs):
            new = [f"100.{128 + k}.{(i >> 8) & 255}.{i & 255}" for i in range(half)]
            cur = cur[half:] + new
            with open(l4 + ".new", "w") as f:
                f.write("\n".join(cur) + "\n")
            os.rename(l4 + ".new", l4)
            replace = os.path.join(tmp, "replace.nft")
            with open(replace, "w") as f:
                f.write("flush set inet base s4\n")
                f.write("add element inet base s4 { " + ", ".join(cur) + " }\n")
            s0 = ctl_request(sock, {"cmd": "status"}, timeout=600)["elements_sent"]
            progress(f"change {k + 1}/{a.runs}")
            for side in alternate(k, ("agent", "nft")):
                if side == "agent":
                    dl["at"].append(run_timed("agent reload", in_ns(dns) + [
                        a.agent, "reload", "-s", sock], T)[0])
                else:
                    why = kmem_refusal(a.v4 + a.v6, factor=2)
                    if why:
                        progress(f"baseline nft -f flush + new list: {why}")
                        skipped = why
                        continue
                    dl["nt"].append(run_timed("baseline nft -f flush + new list", in_ns(base_ns) + [
                        a.nft, "-f", replace], T)[0])
            dl["sent"].append(ctl_request(sock, {"cmd": "status"}, timeout=600)["elements_sent"] - s0)
        if len(dl["nt"]) == len(dl["at"]):
            emit((f"{a.delta}-entry change: reload vs nft -f replace, s", fmt_spread(dl["at"]),
                  fmt_spread(dl["nt"]), ratio_spread(dl["at"], dl["nt"]), ""))
        else:
            emit((f"{a.delta}-entry change: reload, s", fmt_spread(dl["at"]), "(see below)", "",
                  ""))
            print(f"  baseline nft -f flush + new list {skipped}", flush=True)
        emit((f"{a.delta}-entry change: ranges sent", " ".join(map(str, dl["sent"])),
                     "", "", ""))

        # 4. reload with unchanged lists
        ru, sent = [], []
        for k in range(a.runs):
            s0 = ctl_request(sock, {"cmd": "status"}, timeout=600)["elements_sent"]
            ru.append(run_timed("agent reload", in_ns(dns) + [a.agent, "reload", "-s", sock], T)[0])
            sent.append(ctl_request(sock, {"cmd": "status"}, timeout=600)["elements_sent"] - s0)
        emit(("reload, lists unchanged: wall time, s", fmt_spread(ru), "", "", "< 1 s"))
        emit(("reload, lists unchanged: elements sent", " ".join(map(str, sent)), "", "",
                     "0"))

        # 5. steady RSS
        time.sleep(1)
        emit(("daemon steady RSS with the lists, MiB",
                     "%.1f" % (proc_status_kib(agent.pid, "VmRSS") / 1024), "", "", "<= 64 MiB"))

        listeners_seen = sorted(set(listeners_before + nft_listeners(exclude=agent.pid)))
        print("nf_tables event listeners on the host during the run (each makes every commit "
              "build an event\n  per element): " + (", ".join(listeners_seen) or "none"))
        print(f"load average at the end: {' '.join('%.2f' % x for x in os.getloadavg())}")
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 1
    finally:
        if server:
            server.stop()
        if agent:
            agent.send_signal(signal.SIGTERM)
            agent.wait(timeout=30)
        for n in list(made):
            ns_del(n)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0

if __name__ == "__main__":
    sys.exit(main())
