#!/usr/bin/env python3
"""Control API benchmarks (issue 5), each figure next to a baseline measured in
the same invocation, in throwaway network namespaces (tests/integration).

 1. Propagation: a block instruction published on the control-plane fixture
    (controlplane.py, mutual TLS, long poll wait=60) until its address is in
    the kernel set dynamic_v4, one instruction at a time (each published
    while the agent's poll is parked, each waited for), p50/p99/max.
    Baseline, interleaved with it: the same number of single-address local
    blocks written to the control socket by this process, until the address
    is in the kernel (like the control path: no process starts on either
    side). `cloudviz-agent block ADDR -s SOCKET` runs (a process started per
    block) are timed too and shown without a ratio: process start-up would
    be charged to one side only.
 2. A full snapshot of N targets (default 100 000: 75 000 IPv4 and 25 000 IPv6
    single addresses, controlplane.bulk_targets), made due while the agent's
    poll is parked (N published and the cursors forgotten in one step):
    from then until every target is in the kernel, and until the agent's
    report arrives (the fixture's own time to build the reply is included
    and shown apart); the agent's peak RSS (VmHWM, reset before) against its
    idle RSS. Baselines, taking turns with the agent's runs, each in a fresh
    namespace: a script adding the same addresses to a table with the
    agent's two interval sets, given (a) to a warm libnftables context, a
    helper process started beforehand like the agent (the ratios), and (b)
    to an `nft -f` process started through nsenter (times without a ratio;
    its peak RSS by /usr/bin/time). Both sides' arrival in the kernel is
    stamped by the same prober (below); a failed baseline stops the bench.
 3. Idle CPU while long-polling (wait=60) for IDLE seconds: utime+stime and
    scheduler run time (/proc/PID/task/*/schedstat), wake-ups (voluntary
    context switches) and GETs. Baseline: the same agent and policy without
    control_api, measured over the same seconds (it holds no runtime
    entries; the agent of 1 and 3 holds the 3 x N of 1).

How "in the kernel" is observed, and what that costs:
  - (1) an nf_tables netlink multicast listener (NFNLGRP_NFTABLES, the
    events `nft monitor` prints) in a separate Python process inside the
    node's namespace. Event-driven: no polling, no fork per sample; it stamps
    CLOCK_MONOTONIC right after recv(), so its own delay is one wake-up of an
    idle process (well under a millisecond here), the same for all paths.
  - (2) a separate process asking the kernel, over netlink, for the last IPv4
    and the last IPv6 target of the snapshot (NFT_MSG_GETSETELEM, one element
    each, answered under RCU: it does not take the nf_tables commit lock)
    every millisecond; the agent applies a reply in one transaction, so those
    two being present means all are. Resolution about 1 ms; the full count is
    checked afterwards with `nft -j list set` and `status --json`.
    No event listener runs during (2): the kernel checks for listeners
    host-wide, and with one anywhere it builds an event per set element,
    which slows a 100 000-element commit markedly. Listeners of other
    processes cannot be helped; they are listed with the results.

usage: bench/control_bench.py [--quick] [--agent build/cloudviz-agent]
       [--instructions 200] [--snapshot 100000] [--idle-seconds 30]
       [--repeat 3] [--nft nft] [--json build/bench/control_bench.json]
--quick: 20 instructions, a 10 000-target snapshot, 10 s idle.
Runs as root; never touches the host ruleset.
"""
import argparse
import ipaddress
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (BenchError, NftServer, check_run, ctl_request, in_ns,  # noqa: E402
                      nft_listeners, proc_status_kib, run_timed)
import harness  # noqa: E402
import netns  # noqa: E402
import pki  # noqa: E402
import controlplane  # noqa: E402

WAIT = 60                     # control_api.wait of the agents, seconds
CROWDSEC_POLL_S = 10          # the CrowdSec firewall bouncer's documented default update_frequency
CROWDSEC_100K = "213-225 s and 131 MB"  # issue 5, measured earlier on this machine
NFT = "nft"                   # the nft of the baselines (--nft)

# -- nf_tables over netlink (the watcher and the prober processes) ---------------

NETLINK_NETFILTER = 12
SOL_NETLINK = 270
SO_RCVBUFFORCE = 33
NETLINK_ADD_MEMBERSHIP = 1
NFNLGRP_NFTABLES = 7
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_NEWSETELEM, NFT_MSG_GETSETELEM, NFT_MSG_DELSETELEM = 12, 13, 14
NLMSG_ERROR = 2
NLM_F_REQUEST = 1
NFPROTO_INET = 1
NFT_SET_ELEM_INTERVAL_END = 1
NLA_F_NESTED = 0x8000
NFTA_SET_ELEM_LIST_TABLE, NFTA_SET_ELEM_LIST_SET, NFTA_SET_ELEM_LIST_ELEMENTS = 1, 2, 3
NFTA_LIST_ELEM = 1
NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_FLAGS = 1, 3
NFTA_DATA_VALUE = 1
TABLE = "cloudviz"
SETS = ("dynamic_v4", "dynamic_v6")


def nl_socket(ns):
    """A NETLINK_NETFILTER socket of network namespace ns."""
    with netns.inside(ns):
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    s.bind((0, 0))
    return s


def _attrs(buf, off, end):
    """{type: [(start, end) of the payload]} of the netlink attributes in buf[off:end]."""
    out = {}
    while off + 4 <= end:
        ln, ty = struct.unpack_from("=HH", buf, off)
        if ln < 4:
            break
        out.setdefault(ty & ~NLA_F_NESTED & 0x7fff, []).append((off + 4, off + ln))
        off += (ln + 3) & ~3
    return out


def _attr(ty, payload, nested=False):
    ln = 4 + len(payload)
    return struct.pack("=HH", ln, ty | (NLA_F_NESTED if nested else 0)) + payload + \
        b"\0" * ((4 - ln % 4) % 4)


def _setelem_events(data, off, ln):
    """The (set, address) of each element start in a NEWSETELEM/DELSETELEM
    message of table cloudviz (an interval's end element is skipped)."""
    top = _attrs(data, off + 20, off + ln)  # after nlmsghdr (16) and nfgenmsg (4)

    def name(t):
        return bytes(data[slice(*top[t][0])]).rstrip(b"\0").decode() if t in top else ""
    if name(NFTA_SET_ELEM_LIST_TABLE) != TABLE or name(NFTA_SET_ELEM_LIST_SET) not in SETS:
        return []
    out = []
    for a, b in top.get(NFTA_SET_ELEM_LIST_ELEMENTS, []):
        for ea, eb in _attrs(data, a, b).get(NFTA_LIST_ELEM, []):
            e = _attrs(data, ea, eb)
            flags = struct.unpack_from(">I", data, e[NFTA_SET_ELEM_FLAGS][0][0])[0] \
                if NFTA_SET_ELEM_FLAGS in e else 0
            if flags & NFT_SET_ELEM_INTERVAL_END or NFTA_SET_ELEM_KEY not in e:
                continue
            key = _attrs(data, *e[NFTA_SET_ELEM_KEY][0]).get(NFTA_DATA_VALUE)
            if key:
                raw = bytes(data[key[0][0]:key[0][1]])
                out.append((name(NFTA_SET_ELEM_LIST_SET), str(ipaddress.ip_address(raw))))
    return out


def watch_main(ns):
    """--watch NS: prints "STAMP add|del SET ADDR" for every element start
    added to or deleted from dynamic_v4/_v6 in ns, STAMP = CLOCK_MONOTONIC at
    recv(). Runs until killed."""
    s = nl_socket(ns)
    s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)  # no lost events
    s.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, NFNLGRP_NFTABLES)
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    while True:
        try:
            data = s.recv(1 << 20)
        except OSError as e:  # ENOBUFS: events were lost
            out.write("%.9f overflow %s\n" % (time.monotonic(), e.errno))
            out.flush()
            continue
        t = time.monotonic()
        off, lines = 0, []
        while off + 16 <= len(data):
            ln, ty = struct.unpack_from("=IH", data, off)
            if ln < 16:
                break
            if ty >> 8 == NFNL_SUBSYS_NFTABLES and ty & 255 in (NFT_MSG_NEWSETELEM,
                                                                 NFT_MSG_DELSETELEM):
                kind = "add" if ty & 255 == NFT_MSG_NEWSETELEM else "del"
                lines += ["%.9f %s %s %s\n" % (t, kind, st, a)
                          for st, a in _setelem_events(data, off, ln)]
            off += (ln + 3) & ~3
        if lines:
            out.write("".join(lines))
            out.flush()


def _getelem_request(seq, set_name, addr):
    """NFT_MSG_GETSETELEM for one element: the kernel answers with the
    element or with an NLMSG_ERROR (ENOENT when it is not in the set)."""
    key = ipaddress.ip_address(addr).packed
    elem = _attr(NFTA_LIST_ELEM, _attr(NFTA_SET_ELEM_KEY, _attr(NFTA_DATA_VALUE, key), True), True)
    body = struct.pack("=BBH", NFPROTO_INET, 0, 0) + \
        _attr(NFTA_SET_ELEM_LIST_TABLE, TABLE.encode() + b"\0") + \
        _attr(NFTA_SET_ELEM_LIST_SET, set_name.encode() + b"\0") + \
        _attr(NFTA_SET_ELEM_LIST_ELEMENTS, elem, True)
    return struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETSETELEM,
                       NLM_F_REQUEST, seq, 0) + body


def probe_main(ns, interval, addrs):
    """--probe NS INTERVAL ADDR...: asks the kernel every INTERVAL seconds
    whether each ADDR is in dynamic_v4/_v6 of ns; prints "ready", then
    "STAMP present" once all are, and exits. STAMP = CLOCK_MONOTONIC after
    the answer that completed the set."""
    s = nl_socket(ns)
    reqs = [_getelem_request(i + 1, "dynamic_v6" if ":" in a else "dynamic_v4", a)
            for i, a in enumerate(addrs)]
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    missing = set(range(len(reqs)))
    polls = 0
    while missing:
        for i in sorted(missing):
            s.send(reqs[i])
            data = s.recv(65536)
            ty = struct.unpack_from("=H", data, 4)[0]
            if ty != NLMSG_ERROR or struct.unpack_from("=i", data, 16)[0] == 0:
                missing.discard(i)
        polls += 1
        if missing:
            time.sleep(interval)
    sys.stdout.write("%.9f present %d\n" % (time.monotonic(), polls))
    sys.stdout.flush()


class Watch:
    """The watcher process (watch_main) of a namespace, read by a thread:
    first_add(addr, timeout) is when addr was first seen added."""

    def __init__(self, cleanups, ns):
        self.added = {}
        self.overflows = 0
        self.cv = threading.Condition()
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--watch", ns],
                                     stdout=subprocess.PIPE, text=True)
        cleanups.add(self.stop)
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("kernel watcher did not start")
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            parts = line.split()
            with self.cv:
                if parts[1] == "overflow":
                    self.overflows += 1
                elif parts[1] == "add":
                    self.added.setdefault(parts[3], float(parts[0]))
                self.cv.notify_all()

    def first_add(self, addr, timeout):
        with self.cv:
            self.cv.wait_for(lambda: addr in self.added, timeout)
            return self.added.get(addr)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class Probe:
    """The prober process (probe_main); result() is the stamp at which every
    address was present, or None."""

    def __init__(self, cleanups, ns, addrs, interval=0.001):
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--probe", ns,
                                      str(interval)] + list(addrs),
                                     stdout=subprocess.PIPE, text=True)
        cleanups.add(self.stop)
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("kernel prober did not start")

    def result(self, timeout):
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            return None, 0
        parts = out.split()
        return (float(parts[0]), int(parts[2])) if len(parts) == 3 else (None, 0)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


# -- the agent ---------------------------------------------------------------------

class Agent(harness.Daemon):
    """harness.Daemon whose stdout/stderr is read by a thread that stamps
    every line on arrival (CLOCK_MONOTONIC), so the agent's own log lines
    (control_applied) can be placed between the fixture's and the kernel's
    timestamps. The lines also go to agent.log as with harness.Daemon."""

    def start(self, wait=True, prefix=(), timeout=10):
        assert not self.running(), "agent already running"
        self.lines = []
        self.log_offset = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        cmd = list(prefix) + ["ip", "netns", "exec", self.ns, harness.AGENT, "run", "-c",
                              self.config_path]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()
        return self.wait_ready(timeout) if wait else True

    def _read(self, pipe):
        with open(self.log_path, "ab") as log:
            for line in pipe:
                self.lines.append((time.monotonic(), line.decode(errors="replace")))
                log.write(line)
                log.flush()

    def line_time(self, event, cursor):
        """When the agent printed its `event` line with CLOUDVIZ_CURSOR cursor."""
        pat = 'cloudviz_event="%s"' % event
        for t, line in list(self.lines):
            if pat in line and 'cloudviz_cursor="%s"' % cursor in line:
                return t
        return None


def cpu_sample(pid):
    """(utime+stime ticks, on-CPU ns of every thread, voluntary context
    switches of every thread, thread count) of process pid."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    run_ns = vcs = 0
    tasks = os.listdir("/proc/%d/task" % pid)
    for t in tasks:
        with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
            run_ns += int(f.read().split()[0])
        with open("/proc/%d/task/%s/status" % (pid, t)) as f:
            for line in f:
                if line.startswith("voluntary_ctxt_switches:"):
                    vcs += int(line.split()[1])
    return ticks, run_ns, vcs, len(tasks)


def cpu_split(pid):
    """(user, system) CPU seconds of process pid so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    hz = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / hz, int(fields[12]) / hz


class RssSampler:
    """VmRSS of pid every `interval` seconds in a thread, until stop()."""

    def __init__(self, pid, interval=0.005):
        self.pid, self.interval = pid, interval
        self.samples = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.done.is_set():
            self.samples.append((time.monotonic(), proc_status_kib(self.pid, "VmRSS")))
            self.done.wait(self.interval)

    def stop(self):
        self.done.set()
        self.thread.join(5)
        return self.samples


def bench_policy(tmp):
    pol = harness.load_policy("cloudviz-node.json")
    pol["log_dropped"] = False  # stray packets in the namespaces must not cost anything
    return harness.write_policy(tmp, "policy.json", pol)


def start_agent(cleanups, tmp, ns, policy, name, cp=None):
    extra = {"control_api": cp.control_api_config(wait=WAIT)} if cp else {}
    a = Agent(cleanups, tmp, ns, policy, name=name, **extra)
    if not a.start(timeout=20):
        raise RuntimeError("agent %s did not start:\n%s" % (name, a.describe()))
    if cp and cp.wait_report(timeout=20) is None:
        raise RuntimeError("agent %s sent no first report:\n%s" % (name, a.describe()))
    return a


def start_fixture(cleanups, ns, paths):
    cp = controlplane.ControlPlane(ns, netns.A.PUB_203, 0, paths).start()
    cleanups.add(cp.stop)
    return cp


# -- statistics ----------------------------------------------------------------------

def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def summary(values):
    """p50/p99/max/mean in ms of a list of seconds."""
    ms = [v * 1000 for v in values]
    return {"p50_ms": pct(ms, 50), "p99_ms": pct(ms, 99), "max_ms": max(ms),
            "mean_ms": sum(ms) / len(ms), "n": len(ms)}


def addr_of(i, second_octet):
    # odd last octets: no two addresses adjacent, so none merges into a range
    return "45.%d.%d.%d" % (second_octet, i >> 7, 2 * (i & 127) + 1)


def _answer_of(cp, t_from, method="GET"):
    """The first request answered 200 at or after t_from (the parked poll
    that carried it), or None."""
    for r in cp.requests:
        if r.method == method and r.status == 200 and r.answered and r.answered >= t_from:
            return r
    return None


def _report_request(cp, cursor):
    for r in reversed(cp.requests):
        if r.method == "POST" and isinstance(r.body, dict) and r.body.get("cursor") == cursor:
            return r
    return None


# -- 1. propagation -------------------------------------------------------------------

def bench_propagation(cp, agent, watch, n):
    ctl, cli, sock = [], [], []
    parts = {k: [] for k in ("fixture", "agent", "log", "report", "cli_exit", "sock_reply")}
    for i in range(n):
        # the local path without a process spawn: one request on the socket
        a_sock = addr_of(i, 3)
        t0 = time.monotonic()
        r = ctl_request(agent.socket, {"cmd": "block", "addr": a_sock})
        t_reply = time.monotonic()
        seen = watch.first_add(a_sock, 10)
        if not r.get("ok") or seen is None:
            raise RuntimeError("socket block of %s: %s" % (a_sock, r))
        sock.append(seen - t0)
        parts["sock_reply"].append(t_reply - t0)

        # the local path: spawn the CLI, the agent applies, the kernel has it
        a_cli = addr_of(i, 2)
        t0 = time.monotonic()
        p = agent.ctl("block", a_cli)
        seen = watch.first_add(a_cli, 10)
        if p.returncode != 0 or seen is None:
            raise RuntimeError("local block of %s: %s" % (a_cli, harness.describe(p)))
        cli.append(seen - t0)
        parts["cli_exit"].append(p.seconds)

        # the control path: publish while the agent's poll is parked
        if not cp.wait_parked(1, timeout=10):
            raise RuntimeError("the agent's poll is not parked:\n%s" % agent.describe())
        a_ctl = addr_of(i, 1)
        mark = cp.mark()
        [iid] = cp.publish(controlplane.block([a_ctl], reason="control_bench"))
        t_pub = cp.published_at[iid]
        seen = watch.first_add(a_ctl, 10)
        rep = cp.wait_report(lambda r: iid in r["applied"], timeout=10, since=mark)
        if seen is None or rep is None:
            raise RuntimeError("instruction %s for %s: kernel %s, report %s\n%s"
                               % (iid, a_ctl, seen, rep, agent.describe()))
        ctl.append(seen - t_pub)
        get = _answer_of(cp, t_pub)
        post = _report_request(cp, rep["cursor"])
        logged = agent.line_time("control_applied", rep["cursor"])
        if get:
            parts["fixture"].append(get.answered - t_pub)
            parts["agent"].append(seen - get.answered)
        if logged:
            parts["log"].append(logged - seen)
        if post:
            parts["report"].append(post.t - seen)
    return ctl, cli, sock, parts


# -- 2. full snapshot ------------------------------------------------------------------

def nft_count(ns, set_name):
    p = harness.nft_fast(ns, "-j", "list", "set", "inet", TABLE, set_name)
    if p.returncode != 0:
        return None
    for obj in json.loads(p.stdout).get("nftables", []):
        if "set" in obj:
            return len(obj["set"].get("elem", []))
    return None


def snapshot_run(cleanups, tmp, paths, policy, n, tag):
    """One snapshot measurement: its own topology, fixture and fresh agent."""
    topo = harness.topology(cleanups, tag=tag, containers=False)
    try:
        cp = start_fixture(cleanups, topo.ns["pub"], paths)
        agent = start_agent(cleanups, tmp, topo.ns["node"], policy, tag, cp)
        try:
            return bench_snapshot(cleanups, cp, agent, topo.ns["node"], n)
        finally:
            agent.stop()
            cp.stop()
    finally:
        topo.destroy()


def median(vals):
    v = sorted(vals)
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2


def spread3(vals):
    """{"median", "min", "max"} of vals."""
    return {"median": median(vals), "min": min(vals), "max": max(vals)}


def median_run(runs):
    """One dict: the median of each number over runs, the union of lists,
    and the runs themselves under "runs"."""
    out = {}
    for k, v in runs[0].items():
        vals = [r[k] for r in runs]
        if isinstance(v, (int, float)) and not isinstance(v, bool) and None not in vals:
            out[k] = median(vals)
        elif isinstance(v, list):
            out[k] = sorted(set(x for r in runs for x in r[k]))
        else:
            out[k] = v
    out["runs"] = runs
    return out


def bench_snapshot(cleanups, cp, agent, ns, n):
    targets = controlplane.bulk_targets(n)
    last4 = [t for t in targets if ":" not in t][-1:]
    last6 = [t for t in targets if ":" in t][-1:]
    res = {"targets": n, "v4": sum(":" not in t for t in targets),
           "v6": sum(":" in t for t in targets)}
    if not cp.wait_parked(1, timeout=10):
        raise RuntimeError("the agent's poll is not parked:\n%s" % agent.describe())
    time.sleep(1)
    res["idle_rss_kib"] = proc_status_kib(agent.pid, "VmRSS")
    res["hwm_since_start_kib"] = proc_status_kib(agent.pid, "VmHWM")
    before = nft_listeners(exclude=agent.pid)  # it leaves the group during its commits
    with open("/proc/%d/clear_refs" % agent.pid, "w") as f:
        f.write("5")  # resets VmHWM to the current RSS: the peak below is the snapshot's
    probe = Probe(cleanups, ns, last4 + last6)
    rss = RssSampler(agent.pid)
    cpu0 = cpu_split(agent.pid)
    mark = cp.mark()
    # The fixture's condition variable is an RLock: publishing and forgetting
    # the cursors inside one critical section makes the parked poll wake to a
    # full snapshot (unknown cursor) rather than to a 100 000-target delta.
    with cp._cv:
        cp.publish_bulk(n, reason="control_bench")
        cp.forget_cursors()
        t0 = time.monotonic()
    rep = cp.wait_report(timeout=120, since=mark)
    cpu1 = cpu_split(agent.pid)
    samples = rss.stop()
    t_kernel, probes = probe.result(timeout=30)
    if rep is None or t_kernel is None:
        raise RuntimeError("snapshot: report %s, kernel %s\n%s" % (rep is not None, t_kernel,
                                                                   agent.describe()))
    get = _answer_of(cp, t0)
    post = _report_request(cp, rep["cursor"])
    logged = agent.line_time("control_applied", rep["cursor"])
    res.update({
        "peak_rss_kib": proc_status_kib(agent.pid, "VmHWM"),
        "fixture_s": get.answered - t0,           # the fixture builds and starts sending it
        "to_kernel_s": t_kernel - t0,
        "to_report_s": post.t - t0,
        "agent_to_kernel_s": t_kernel - get.answered,
        "agent_to_report_s": post.t - get.answered,
        "logged_after_kernel_s": (logged - t_kernel) if logged else None,
        "rejected": len(rep["rejected"]),
        "probe_rounds": probes,
        "reply_bytes": len(json.dumps({"cursor": rep["cursor"], "full": True,
                                       "instructions": cp.snapshot()}).encode()),
        "agent_user_s": cpu1[0] - cpu0[0],
        "agent_system_s": cpu1[1] - cpu0[1],
        # sampled every few ms: the peak before the kernel had it (parse, apply,
        # the netlink batch) and after (state save, report)
        "rss_max_to_kernel_kib": max([k for t, k in samples if t <= t_kernel], default=None),
        "rss_max_after_kernel_kib": max([k for t, k in samples if t > t_kernel], default=None),
    })
    res["nft_listeners"] = sorted(set(before + nft_listeners(exclude=agent.pid)))
    time.sleep(1)
    res["steady_rss_kib"] = proc_status_kib(agent.pid, "VmRSS")
    st = agent.status() or {}
    res["status_control_entries"] = st.get("entries_by_origin", {}).get("control")
    res["status_dynamic_ranges"] = (st.get("dynamic_ranges_v4", 0) or 0) + \
        (st.get("dynamic_ranges_v6", 0) or 0)
    c4, c6 = nft_count(ns, "dynamic_v4"), nft_count(ns, "dynamic_v6")
    res["kernel_elements"] = None if c4 is None or c6 is None else c4 + c6
    res["report_control_entries"] = rep["status"]["entries_by_origin"].get("control")

    # the same snapshot again (a control plane that lost its cursors): all
    # ids seen, nothing to change in the kernel
    mark = cp.mark()
    with cp._cv:
        cp.forget_cursors()
        t1 = time.monotonic()
    rep2 = cp.wait_report(timeout=120, since=mark)
    post2 = _report_request(cp, rep2["cursor"]) if rep2 else None
    res["repeat_to_report_s"] = (post2.t - t1) if post2 else None
    return res


def nft_baseline_script(tmp, n):
    """An nft script adding the snapshot's targets to a fresh table of the
    agent's name with its two dynamic sets (the same flags), so that the
    same prober observes both sides."""
    targets = controlplane.bulk_targets(n)
    script = os.path.join(tmp, "baseline.nft")
    with open(script, "w") as f:
        f.write("add table inet %s\n"
                "add set inet %s %s { type ipv4_addr; flags interval; }\n"
                "add set inet %s %s { type ipv6_addr; flags interval; }\n"
                % (TABLE, TABLE, SETS[0], TABLE, SETS[1]))
        f.write("add element inet %s %s { " % (TABLE, SETS[0])
                + ", ".join(t for t in targets if ":" not in t) + " }\n")
        f.write("add element inet %s %s { " % (TABLE, SETS[1])
                + ", ".join(t for t in targets if ":" in t) + " }\n")
    return script, [t for t in targets if ":" not in t][-1:] + [t for t in targets if ":" in t][-1:]


def nft_run(cleanups, script, last, role, warm):
    """The baseline of a snapshot in a new namespace: the script given to a
    warm libnftables context (warm: a helper process started beforehand,
    like the agent) or to an `nft -f` process (started through nsenter,
    peak RSS by /usr/bin/time). The same prober as the agent's stamps when
    the last targets are in the kernel. Wall time to the answer (warm) or
    to the exit, the time to the kernel, the event listeners on the host
    around it and the elements made. A failure stops the bench."""
    t = harness.namespaces(cleanups, role)
    ns = t.ns[role]
    server = None
    try:
        if warm:
            server = NftServer(ns)
        before = nft_listeners()
        probe = Probe(cleanups, ns, last)
        peak = None
        t0 = time.monotonic()
        if warm:
            server.timed_file(script)
        else:
            _, peak = run_timed("baseline nft -f", in_ns(ns) + [NFT, "-f", script], 120, rss=True)
        t_done = time.monotonic()
        t_kernel, _ = probe.result(timeout=30)
        if t_kernel is None:
            raise BenchError("baseline %s: the prober did not see %s" % (role, last))
        return {"seconds": t_done - t0, "to_kernel_s": t_kernel - t0,
                "peak_rss_kib": None if peak is None else peak * 1024,
                "nft_listeners": sorted(set(before + nft_listeners())),
                "elements": sum(nft_count_table(ns, s) for s in SETS)}
    finally:
        if server:
            server.stop()
        t.destroy()


def nft_count_table(ns, set_name):
    p = check_run("count %s" % set_name, in_ns(ns) + [NFT, "-j", "list", "set", "inet", TABLE,
                                                      set_name])
    for obj in json.loads(p.stdout).get("nftables", []):
        if "set" in obj:
            return len(obj["set"].get("elem", []))
    return 0


# -- 3. idle ---------------------------------------------------------------------------

def bench_idle(cp, with_api, without_api, seconds):
    if not cp.wait_parked(1, timeout=10):
        raise RuntimeError("the agent's poll is not parked:\n%s" % with_api.describe())
    time.sleep(1)
    mark = cp.mark()
    a0, b0, t0 = cpu_sample(with_api.pid), cpu_sample(without_api.pid), time.monotonic()
    time.sleep(seconds)
    a1, b1, t1 = cpu_sample(with_api.pid), cpu_sample(without_api.pid), time.monotonic()
    reqs = cp.requests[mark.requests:]
    hz = os.sysconf("SC_CLK_TCK")

    def figures(s0, s1):
        cpu_ticks_s = (s1[0] - s0[0]) / hz
        run_s = (s1[1] - s0[1]) / 1e9
        return {"cpu_ticks_s": cpu_ticks_s, "run_s": run_s,
                "cpu_s_per_hour": run_s * 3600 / (t1 - t0),
                "wakeups": s1[2] - s0[2], "threads": s1[3]}
    return {"seconds": t1 - t0, "with_api": figures(a0, a1), "without_api": figures(b0, b1),
            "gets": sum(r.method == "GET" for r in reqs),
            "posts": sum(r.method == "POST" for r in reqs),
            "parked_at_end": cp.parked}


# -- output ------------------------------------------------------------------------------

def ratio(a, b):
    return None if a is None or not b else a / b


def fr(v):
    return "n/a" if v is None else "%.3f" % v


def verdict(ok):
    return "met" if ok else "MISSED"


def ms(v):
    return "n/a" if v is None else "%.2f" % (v * 1000)


def ms2(v):
    return "n/a" if v is None else "%.2f" % v


def mib(kib):
    return "n/a" if kib is None else "%.1f MiB" % (kib / 1024)


def report(res):
    prop, snap, idle, nb = res["propagation"], res["snapshot"], res["idle"], res["nft_baseline"]
    c, cli, sock = prop["control"], prop["local_cli"], prop["local_socket"]
    pp = prop["breakdown_ms"]
    m = res["machine"]
    print("\n== input")
    print("machine: kernel %s, %d cpus; nft %s; %s" % (m["kernel"], m["cpus"], m["nft"],
                                                     m["agent"]))
    print("propagation: %d block instructions of one IPv4 address each, published one at a "
          "time\n  while the agent's poll is parked (control_api.wait=%d); interleaved local "
          "baselines:\n  as many `cloudviz-agent block ADDR -s SOCKET` runs (CLI), and as many "
          "block\n  requests written to the control socket by this process (socket)"
          % (c["n"], WAIT))
    print("snapshot: %d targets (%d IPv4 + %d IPv6 single addresses, 1000 per instruction),\n"
          "  reply %.2f MB; median [min-max] of %d run(s), each with a fresh agent, taking turns\n"
          "  with the baselines, each in a fresh namespace: the same addresses as an nft script\n"
          "  into a table with the agent's two sets, given to a warm libnftables context (a\n"
          "  helper process started beforehand, like the agent: the ratios) and to an `nft -f`\n"
          "  process (started through nsenter; its peak RSS by /usr/bin/time); both sides'\n"
          "  arrival in the kernel stamped by the same prober; ratios: median of the per-run\n"
          "  ratios [min-max]; one agent and one warm run more while a process of ours\n"
          "  listens to nf_tables events in another namespace"
          % (snap["targets"], snap["v4"], snap["v6"], snap["reply_bytes"] / 1e6,
             len(snap["runs"])))
    print("idle: %.0f s, both agents measured over the same seconds" % idle["seconds"])

    print("\n== where the time goes")
    print("propagation (medians, ms): publish -> fixture answers the parked GET %s\n"
          "  -> address in the kernel (agent: read, parse, apply) %s\n"
          "  kernel -> control_applied logged %s; kernel -> report arrives %s"
          % (ms2(pp["fixture"]), ms2(pp["agent"]), ms2(pp["log"]), ms2(pp["report"])))
    print("local (medians, ms): CLI spawn -> kernel %.2f, -> CLI exit %s; "
          "socket request -> kernel %.2f, -> reply %s"
          % (cli["p50_ms"], ms2(pp["cli_exit"]), sock["p50_ms"], ms2(pp["sock_reply"])))
    nw = res["nft_warm"]
    for i, (a, w, b) in enumerate(zip(snap["runs"], nw["runs"], nb["runs"])):
        print("snapshot run %d: -> kernel %.3f s, -> report %.3f s; libnftables -> kernel %.3f s,"
              " -> answer %.3f s; nft -f -> kernel %.3f s, -> exit %.3f s; other event "
              "listeners: %s" % (i + 1, a["to_kernel_s"], a["to_report_s"], w["to_kernel_s"],
                                 w["seconds"], b["to_kernel_s"], b["seconds"],
                                 ", ".join(sorted(set(a["nft_listeners"] + w["nft_listeners"]
                                                      + b["nft_listeners"]))) or "none"))
    print("snapshot (ms): fixture builds it and starts sending %s; -> all in the kernel %s;\n"
          "  kernel -> control_applied logged %s; kernel -> report arrives %s;\n"
          "  agent CPU meanwhile: user %.2f s, system %.2f s (the kernel transaction runs "
          "in system time)\n  RSS: idle %s, sampled max until in the kernel %s,\n  after "
          "(state save, report) %s, peak (VmHWM) %s, steady 1 s later %s"
          % (ms(snap["fixture_s"]), ms(snap["agent_to_kernel_s"]),
             ms(snap["logged_after_kernel_s"]), ms(snap["to_report_s"] - snap["to_kernel_s"]),
             snap["agent_user_s"], snap["agent_system_s"], mib(snap["idle_rss_kib"]),
             mib(snap["rss_max_to_kernel_kib"]), mib(snap["rss_max_after_kernel_kib"]),
             mib(snap["peak_rss_kib"]), mib(snap["steady_rss_kib"])))

    wl, wn = res["snapshot_with_listener"], res["nft_with_listener"]
    print("with an event listener on the host: agent -> kernel %.3f s (x%s the median "
          "without),\n  -> report %.3f s (x%s); libnftables -> kernel %.3f s (x%s)"
          % (wl["to_kernel_s"], fr(ratio(wl["to_kernel_s"], snap["to_kernel_s"])),
             wl["to_report_s"], fr(ratio(wl["to_report_s"], snap["to_report_s"])),
             wn["to_kernel_s"], fr(ratio(wn["to_kernel_s"], nw["to_kernel_s"]))))

    rows = []
    for k, name in (("p50_ms", "p50"), ("p99_ms", "p99"), ("max_ms", "max")):
        target = "< 1000 ms: %s" % verdict(c[k] < 1000) if k == "p99_ms" else ""
        rows.append(("propagation %s vs local socket block" % name, "%.2f ms" % c[k],
                     "%.2f ms" % sock[k], fr(ratio(c[k], sock[k])), target))
    for k, name in (("p50_ms", "p50"), ("p99_ms", "p99")):
        rows.append(("  (local CLI block %s: process start-up, no ratio)" % name, "",
                     "%.2f ms" % cli[k], "", ""))
    k = snap["targets"] // 1000
    sr = res["snapshot_ratio"]

    def sp(key):
        return "%.3f [%.3f-%.3f]" % (sr[key]["median"], sr[key]["min"], sr[key]["max"])

    def spv(runs, key):
        v = [r[key] for r in runs]
        return "%.3f [%.3f-%.3f] s" % (median(v), min(v), max(v))
    for key, bkey, what, target in (
            ("to_kernel_s", "to_kernel_s", "due -> all in kernel", True),
            ("agent_to_kernel_s", "to_kernel_s", "agent only (answer -> kernel)", False),
            ("to_report_s", "seconds", "due -> report received", True),
            ("agent_to_report_s", "seconds", "agent only (answer -> report)", False)):
        rows.append(("snapshot %dk: %s" % (k, what), spv(snap["runs"], key),
                     spv(nw["runs"], bkey), sp(key),
                     "< 2 s: %s" % verdict(snap[key] < 2) if target else ""))
    rows.append(("  (nft -f process: -> kernel, -> exit; no ratio)", "",
                 "%s / %s" % (spv(nb["runs"], "to_kernel_s"), spv(nb["runs"], "seconds")), "", ""))
    rows.append(("snapshot %dk: peak RSS vs idle RSS" % k, mib(snap["peak_rss_kib"]),
                 mib(snap["idle_rss_kib"]), fr(ratio(snap["peak_rss_kib"],
                                                     snap["idle_rss_kib"])), ""))
    rr = res["rss_ratio"]
    rows.append(("snapshot %dk: agent vs nft -f peak RSS" % k, mib(snap["peak_rss_kib"]),
                 mib(nb["peak_rss_kib"]), "%.3f [%.3f-%.3f]" % (rr["median"], rr["min"], rr["max"]),
                 ""))
    for key, bkey, what in (("to_kernel_s", "to_kernel_s", "-> kernel"),
                            ("to_report_s", "seconds", "-> report")):
        rows.append(("snapshot %dk + event listener: %s" % (k, what), "%.3f s" % wl[key],
                     "%.3f s" % wn[bkey], fr(ratio(wl[key], wn[bkey])), ""))
    rows.append(("same snapshot again (no change) -> report", "%.3f s"
                 % snap["repeat_to_report_s"], "", "", ""))
    wa, wo = idle["with_api"], idle["without_api"]
    rows.append(("idle: CPU s/hour (schedstat run time)", "%.3f" % wa["cpu_s_per_hour"],
                 "%.3f" % wo["cpu_s_per_hour"],
                 fr(ratio(wa["cpu_s_per_hour"], wo["cpu_s_per_hour"])), ""))
    rows.append(("idle: utime+stime over %.0f s" % idle["seconds"], "%.2f s" % wa["cpu_ticks_s"],
                 "%.2f s" % wo["cpu_ticks_s"], "", ""))
    rows.append(("idle: wake-ups (voluntary ctx switches)", "%d" % wa["wakeups"],
                 "%d" % wo["wakeups"], fr(ratio(wa["wakeups"], wo["wakeups"])), ""))
    rows.append(("idle: GETs / POSTs over %.0f s" % idle["seconds"],
                 "%d / %d" % (idle["gets"], idle["posts"]), "", "", "wait=%d" % WAIT))
    print("\n== results (baselines: local socket block; warm libnftables, `nft -f`, idle RSS;\n"
          "   agent without control_api)")
    print("%-48s %24s %24s %21s  %s" % ("measure", "control API", "baseline", "ratio",
                                         "target"))
    for r in rows:
        print("%-48s %24s %24s %21s  %s" % r)
    print("\nreference, not measured here: CrowdSec's firewall bouncer polls every %d s by "
          "default\n(propagation up to %d s plus its apply); it took %s to get 100 000 "
          "decisions\ninto the kernel (issue 5, measured earlier on this machine)."
          % (CROWDSEC_POLL_S, CROWDSEC_POLL_S, CROWDSEC_100K))
    print("checks: kernel elements after the snapshot %s; status: %s control entries,\n"
          "  %s dynamic ranges; report: %s control entries, %d rejected; nft -f baseline set "
          "elements %d"
          % (snap["kernel_elements"], snap["status_control_entries"],
             snap["status_dynamic_ranges"], snap["report_control_entries"], snap["rejected"],
             nb["elements"]))
    if prop["watch_overflows"]:
        print("WARNING: the kernel watcher lost events %d times" % prop["watch_overflows"])


def machine(agent_path):
    u = os.uname()
    nft = subprocess.run(["nft", "--version"], capture_output=True, text=True).stdout.strip()
    ver = subprocess.run([agent_path, "--version"], capture_output=True, text=True).stdout.strip()
    return {"kernel": u.release, "cpus": os.cpu_count(), "nft": nft.replace("nftables ", ""),
            "agent": ver}


# -- main ----------------------------------------------------------------------------------

def run(args, cleanups, tmp):
    res = {"machine": machine(harness.AGENT),
           "input": {"instructions": args.instructions, "snapshot_targets": args.snapshot,
                     "idle_seconds": args.idle_seconds, "snapshot_runs": args.repeat,
                     "wait": WAIT, "quick": args.quick}}
    paths = pki.make(os.path.join(tmp, "pki"), server_ips=[netns.A.PUB_203])
    os.chmod(tmp, 0o755)
    policy = bench_policy(tmp)
    # 1 and 3: agent P (control API) and agent B (none), started together
    topo = harness.topology(cleanups, tag="p", containers=False)
    bare = harness.namespaces(cleanups, "idle", "listen")
    cp = start_fixture(cleanups, topo.ns["pub"], paths)
    agent_p = start_agent(cleanups, tmp, topo.ns["node"], policy, "prop", cp)
    agent_b = start_agent(cleanups, tmp, bare.ns["idle"], policy, "local")
    watch = Watch(cleanups, topo.ns["node"])
    print("propagation: %d instructions ..." % args.instructions, flush=True)
    ctl, cli, sock, parts = bench_propagation(cp, agent_p, watch, args.instructions)
    watch.stop()
    res["propagation"] = {"control": summary(ctl), "local_cli": summary(cli),
                          "local_socket": summary(sock),
                          "breakdown_ms": {k: pct(v, 50) * 1000 if v else None
                                           for k, v in parts.items()},
                          "watch_overflows": watch.overflows,
                          "control_s": ctl, "local_cli_s": cli, "local_socket_s": sock}
    print("idle: %d s ..." % args.idle_seconds, flush=True)
    res["idle"] = bench_idle(cp, agent_p, agent_b, args.idle_seconds)
    agent_p.stop()
    agent_b.stop()

    # 2: the agent's, the warm libnftables' and the `nft -f` process' runs
    # take turns (the order rotates), so all see the same host; then one
    # agent and one warm run more with an nf_tables event listener of ours
    print("snapshot: %d targets, %d runs ..." % (args.snapshot, args.repeat), flush=True)
    script, last = nft_baseline_script(tmp, args.snapshot)
    runs = {"agent": [], "warm": [], "proc": []}
    kinds = ("agent", "warm", "proc")
    for i in range(args.repeat):
        for kind in kinds[i % 3:] + kinds[:i % 3]:
            if kind == "agent":
                runs[kind].append(snapshot_run(cleanups, tmp, paths, policy, args.snapshot,
                                               "s%d" % i))
            else:
                runs[kind].append(nft_run(cleanups, script, last, "n%s%d" % (kind[0], i),
                                          kind == "warm"))
    res["snapshot"] = median_run(runs["agent"])
    res["nft_warm"] = median_run(runs["warm"])
    res["nft_baseline"] = median_run(runs["proc"])
    pairs = list(zip(runs["agent"], runs["warm"]))
    res["snapshot_ratio"] = {k: spread3([a[k] / b[bk] for a, b in pairs])
                             for k, bk in (("to_kernel_s", "to_kernel_s"),
                                           ("agent_to_kernel_s", "to_kernel_s"),
                                           ("to_report_s", "seconds"),
                                           ("agent_to_report_s", "seconds"))}
    res["rss_ratio"] = spread3([a["peak_rss_kib"] / b["peak_rss_kib"]
                                for a, b in zip(runs["agent"], runs["proc"])])
    listener = Watch(cleanups, bare.ns["listen"])
    res["snapshot_with_listener"] = snapshot_run(cleanups, tmp, paths, policy, args.snapshot,
                                                 "sl")
    res["nft_with_listener"] = nft_run(cleanups, script, last, "nwl", True)
    listener.stop()
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agent", default=harness.AGENT)
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 20 instructions, 10 000-target snapshot, 10 s idle")
    ap.add_argument("--instructions", type=int)
    ap.add_argument("--snapshot", type=int)
    ap.add_argument("--idle-seconds", type=int)
    ap.add_argument("--repeat", type=int, help="snapshot runs (median reported)")
    ap.add_argument("--json", default=os.path.join(ROOT, "build", "bench", "control_bench.json"))
    ap.add_argument("--nft", default="nft", help="the nft of the baselines (bench/selftest.py "
                    "passes one that fails)")
    ap.add_argument("--watch", help=argparse.SUPPRESS)
    ap.add_argument("--probe", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.watch:
        return watch_main(args.watch)
    if args.probe:
        return probe_main(args.probe[0], float(args.probe[1]), args.probe[2:])
    defaults = (20, 10_000, 10, 1) if args.quick else (200, 100_000, 30, 3)
    for name, d in zip(("instructions", "snapshot", "idle_seconds", "repeat"), defaults):
        if getattr(args, name) is None:
            setattr(args, name, d)
    if os.geteuid() != 0:
        raise SystemExit("bench: needs root (network namespaces)")
    harness.AGENT = os.path.abspath(args.agent)
    if not os.access(harness.AGENT, os.X_OK):
        raise SystemExit("bench: no agent binary %s (run make)" % harness.AGENT)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda s, f: sys.exit(128 + s))
    cleanups = harness.Cleanups()
    tmp = tempfile.mkdtemp(prefix="cvz-ctlbench-")
    cleanups.add(shutil.rmtree, tmp, True)
    # a private copy: a rebuild of build/ during the run must not swap the binary
    harness.AGENT = shutil.copy2(harness.AGENT, os.path.join(tmp, "cloudviz-agent"))
    global NFT
    NFT = args.nft
    t0 = time.monotonic()
    try:
        res = run(args, cleanups, tmp)
    except BenchError as e:
        print("bench: %s" % e, file=sys.stderr)
        return 1
    finally:
        cleanups.run()
    res["runtime_s"] = time.monotonic() - t0
    report(res)
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    print("\nruntime %.0f s; results in %s" % (res["runtime_s"], os.path.relpath(args.json)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
