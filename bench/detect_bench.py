#!/usr/bin/env python3
"""Local detection (issue 13): the agent against fail2ban and sshguard, on the
same journal input, each started fresh for every measure in a network
namespace of its own (whose ruleset it manages) and a private mount namespace
with a journald of its own (tmpfs on /run/systemd, /run/log and
/var/log/journal; rate limits off, so no line is dropped on any side). The
host's ruleset and journal are never touched.

The peers, as Debian 12 ships them:
  - fail2ban 1.0.2: Debian's /etc/fail2ban copied to a temp dir, plus a
    jail.local: sshd jail, backend = systemd (journalmatch _COMM=sshd),
    banaction = nftables-allports, maxretry = 5, findtime = 60,
    bantime = 3600; socket, pid file, sqlite db and log in the temp dir; run
    as `fail2ban-server -xf -c DIR ...` in the foreground;
  - sshguard 2.4.2: /usr/sbin/sshguard with a config bind-mounted over
    /etc/sshguard/sshguard.conf inside the private mount namespace (the
    script reads no other path): Debian's LOGREADER="LANG=C /bin/journalctl
    -afb -p info -n1 -t sshd -o cat" and BACKEND sshg-fw-nft-sets,
    THRESHOLD=50 (each "Failed password" scores 10: blocked at the 5th),
    DETECTION_TIME=60, BLOCK_TIME=3600;
  - cloudviz-agent run with policy/examples/cloudviz-node.json and
    "detect": {"sources": ["sshd"], "max_failures": 5, "window": 60,
    "ttl": 3600, "escalate": 2, "max_ttl": 86400, "max_tracked": 65536}.

The input, the same for all three, written the same way: one writer process
(this file, --write), uid 0, whose comm is "sshd" (prctl PR_SET_NAME) sends
syslog datagrams "<38>TIMESTAMP sshd[PID]: MESSAGE" (LOG_AUTH|LOG_INFO, as
OpenSSH's syslog() call makes them) to journald's /dev/log socket
(/run/systemd/journal/dev-log, which /dev/log links to), each MESSAGE
exactly as OpenSSH 9.2 logs a failed password:
    Failed password for root from A port P ssh2
one line per failure, so every tool counts the same thing. Why these lines
count for all three: journald stores them with SYSLOG_IDENTIFIER=sshd (what
sshguard's `journalctl -t sshd` selects), and the trusted fields _COMM=sshd
(fail2ban's journalmatch `_SYSTEMD_UNIT=sshd.service + _COMM=sshd`, an OR)
and _UID=0 (the agent wants _UID=0 and _COMM sshd, sshd-session or
sshd-auth); the text matches fail2ban's sshd filter (mode normal),
sshguard's parser and the agent's. The journal is read back after each run:
every side must have received exactly the lines written.
Before the peer starts, sshd's "Server listening on ..." lines are written
(as sshd logs at its start): sshguard's `journalctl -f -n1` started on a
journal without a line of sshd skips all but the last entry of the first
burst it sees (systemd 252).
Each run then writes 4 failures of a decoy address and 5 of a warm-up
address (so fail2ban creates its table at its first ban, before the
measure); the warm-up must be blocked before the measure starts and the
decoy must never be (all three block at the 5th failure, not the 4th).

Measures:
 1. latency: ATTACKERS addresses (default 200), one every GAP (0.1 s), each
    5 failures written back to back; per attacker, from the 5th failure's
    journal entry (its __REALTIME_TIMESTAMP, journald's receive time) to the
    address being in the peer's set in the kernel; p50, p99, max. The same
    input is also read, in a run of its own (no peer, no kernel), by two
    journal readers under Debian's python3 (python3-systemd): one sleeping
    in sd_journal_wait() (inotify, as the three read the journal), one
    calling sd_journal_next() every millisecond: how much of a reader's
    latency is the journal's (journald announces appended entries at most
    every 250 ms) rather than its own.
 2. flood: FLOOD addresses (20 000) x 5 failures = 100 000 lines, interleaved
    (5 rounds over all addresses), paced at RATE lines/s (5 000); the peer's
    CPU (user+sys of its whole process tree, the per-ban shells and nft
    processes included: the peer runs in a cgroup v2 of its own, cpu.stat
    read before the first line and at the end), its memory (the largest sum
    of VmRSS over the cgroup's processes, sampled every 0.2 s, and the main
    process' VmHWM and RssAnon at the end), how many addresses are blocked and when the last was,
    relative to the last line's journal entry. The wait ends when all are
    blocked or CAP seconds (300) after the last line.
 3. memory (the agent only): SINGLES distinct addresses (1 000 000) with one
    failure each (below the threshold: no blocks); the agent's VmRSS, RssAnon,
    RssFile, RssShmem (the mapped journal files), VmHWM and status' "detect"
    object after 10 %, 50 % and 100 % of the lines
    (the writer pauses until the agent is idle: its cgroup used < 2 % of a
    CPU over two 0.5 s intervals).

How "in the kernel" is observed, the same for all three: a thread of this
bench in the peer's namespace dumps the peer's set over netlink
(NFT_MSG_GETSETELEM, answered under RCU: it takes no commit lock) every
POLL_MS (1 ms in 1, 250 ms in 2) and stamps an address with CLOCK_REALTIME
(the clock of __REALTIME_TIMESTAMP) when the dump that first holds it
returned: an upper bound, late by at most one poll period plus one dump
(the achieved period and dump time are printed). No nf_tables event
listener (`nft monitor`) is used: the kernel checks for listeners host-wide
and would build an event per element of any other process' large commit.
The sets: fail2ban inet f2b-table addr-set-sshd, sshguard ip sshguard
attackers, the agent inet cloudviz dynamic_v4. Addresses: 198.18.0.0/15
with odd last octets (no two adjacent: no interval set merges two into one
range), 100.64.0.0/10 for 3.

A peer run fails (exit status 1, its log's tail on stderr, no result line)
when the peer exits early, does not become ready, does not block the
warm-up address, blocks the decoy, logs an error (fail2ban), exits non-zero
on SIGTERM (sshguard's shell: 0 or killed by that SIGTERM), or the journal
lacks lines.

Targets (printed with the ratios of the same run): agent p99 <= 50 ms and
<= 1/10 of sshguard's; all flood addresses blocked within 10 s of the last
line, with at most 1/10 of fail2ban's CPU; memory flat (max_tracked).

usage: bench/detect_bench.py [--quick] [--agent build/cloudviz-agent]
       [--peers agent,fail2ban,sshguard] [--measures latency,flood,memory]
       [--attackers 200] [--gap 0.1] [--flood 20000] [--rate 5000] [--cap 300]
       [--singles 1000000] [--poll-ms 1] [--flood-poll-ms 250]
       [--no-journal-probes] [--json build/bench/detect_bench.json]
--quick: 20 attackers, 2 000 flood addresses, cap 60 s, 20 000 singles.
Runs as root; installs fail2ban, sshguard and python3-systemd through
scripts/install-deps.sh when missing.
"""
import argparse
import ctypes
import errno
import json
import os
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, HERE)
from benchlib import BenchError, check_run, ctl_request, proc_status_kib  # noqa: E402

PEERS = ("agent", "fail2ban", "sshguard")
MEASURES = ("latency", "flood", "memory")
JOURNALD = "/lib/systemd/systemd-journald"
DEV_LOG = "/run/systemd/journal/dev-log"
MESSAGE = "Failed password for root from %s port %d ssh2"
MESSAGE_RE = re.compile(r"^Failed password for root from (\S+) port \d+ ssh2$")
DETECT = {"sources": ["sshd"], "max_failures": 5, "window": 60, "ttl": 3600, "escalate": 2,
          "max_ttl": 86400, "max_tracked": 65536}
FAILURES = 5
WARMUP, DECOY = "198.51.100.7", "198.51.100.9"
SSHGUARD_LOGREADER = "LANG=C /bin/journalctl -afb -p info -n1 -t sshd -o cat"
JOURNALD_CONF = """[Journal]
Storage=volatile
RateLimitIntervalSec=0
RateLimitBurst=0
RuntimeMaxUse=2G
RuntimeMaxFileSize=128M
MaxLevelStore=debug
ForwardToSyslog=no
ForwardToKMsg=no
ForwardToConsole=no
ForwardToWall=no
"""


def attacker(i):
    """198.18.0.0/15, odd last octets: no two adjacent (i < 65 536)."""
    return "198.%d.%d.%d" % (18 + (i >> 15) % 2, (i >> 7) & 255, 2 * (i & 127) + 1)


def attacker_port(i):
    return 1024 + (i * 37) % 64000


def single(i):
    """100.64.0.0/10 (i < 4 194 304)."""
    a = (100 << 24 | 64 << 16) + i
    return "%d.%d.%d.%d" % (a >> 24, a >> 16 & 255, a >> 8 & 255, a & 255)


# -- the writer: a process whose comm is "sshd" ---------------------------------------

class Syslog:
    """Datagrams to journald's /dev/log as glibc's syslog() writes them."""

    def __init__(self):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(15, b"sshd", 0, 0, 0) != 0:  # PR_SET_NAME: /proc/self/comm
            raise SystemExit("writer: prctl: %s" % os.strerror(ctypes.get_errno()))
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.connect(DEV_LOG)
        self.prefix_s, self.prefix = None, b""
        self.pid = os.getpid()
        self.lines = 0

    def line(self, message):
        now = int(time.time())
        if now != self.prefix_s:
            self.prefix_s = now
            self.prefix = ("<38>%s sshd[%d]: " % (time.strftime("%b %e %H:%M:%S",
                                                                time.localtime(now)),
                                                  self.pid)).encode()
        self.sock.send(self.prefix + message.encode())
        self.lines += 1

    def failure(self, addr, port):
        self.line(MESSAGE % (addr, port))


def writer_main(kind, args):
    """--write KIND ARGS: the input of one run (see the header); prints
    {"start", "end", "lines"} (CLOCK_REALTIME) as JSON when done."""
    w = Syslog()
    t0 = time.time()
    if kind == "listening":
        w.line("Server listening on 0.0.0.0 port 22.")
        w.line("Server listening on :: port 22.")
    elif kind == "warmup":
        for _ in range(FAILURES - 1):
            w.failure(DECOY, 50000)
        for _ in range(FAILURES):
            w.failure(WARMUP, 50001)
    elif kind == "latency":
        n, gap = int(args[0]), float(args[1])
        for i in range(n):
            delay = t0 + i * gap - time.time()
            if delay > 0:
                time.sleep(delay)
            for _ in range(FAILURES):
                w.failure(attacker(i), attacker_port(i))
    elif kind == "flood":
        n, rate = int(args[0]), float(args[1])
        k = 0
        for _ in range(FAILURES):
            for i in range(n):
                if k % 50 == 0:
                    delay = t0 + k / rate - time.time()
                    if delay > 0:
                        time.sleep(delay)
                w.failure(attacker(i), attacker_port(i))
                k += 1
    elif kind == "single":
        n = int(args[0])
        stops = {int(x) for x in args[1].split(",")}
        for i in range(n):
            w.failure(single(i), attacker_port(i))
            if i + 1 in stops:
                sys.stdout.write("checkpoint %d\n" % (i + 1))
                sys.stdout.flush()
                if not sys.stdin.readline():
                    break
    else:
        raise SystemExit("writer: unknown kind %r" % kind)
    sys.stdout.write(json.dumps({"start": t0, "end": time.time(), "lines": w.lines}) + "\n")
    sys.stdout.flush()


# -- journal readers without a peer: where a reader's time goes -----------------------

def journal_probe_main(mode, n, limit):
    """--journal-probe wait|poll N LIMIT, under Debian's /usr/bin/python3
    (python3-systemd): reads the sshd lines through sd-journal, waking in
    sd_journal_wait() (inotify: when journald announces a change) or every
    millisecond (sd_journal_next() sees what journald appended to the
    shared mapping); prints the seconds from each attacker's 5th failure's
    __REALTIME_TIMESTAMP to the moment it was read, as JSON, once all N
    were read or after LIMIT seconds."""
    from systemd import journal
    r = journal.Reader()
    r.add_match(_COMM="sshd")
    r.seek_tail()
    r._previous()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    counts, lat = {}, []
    t_end = time.time() + limit
    while len(lat) < n and time.time() < t_end:
        if mode == "wait":
            r.wait(0.5)
        else:
            time.sleep(0.001)
        while r._next():
            t = time.time()
            m = MESSAGE_RE.match(r._get("MESSAGE").decode(errors="replace"))
            if not m:
                continue
            a = m.group(1)
            counts[a] = counts.get(a, 0) + 1
            if counts[a] == FAILURES and a.startswith("198.1"):
                lat.append(t - r._get_realtime() / 1e6)
    sys.stdout.write(json.dumps(lat) + "\n")
    sys.stdout.flush()


# -- the kernel: the peer's set, dumped over netlink ----------------------------------

NETLINK_NETFILTER = 12
NFT_MSG_NEWSETELEM = (10 << 8) | 12   # NFNL_SUBSYS_NFTABLES << 8
NFT_MSG_GETSETELEM = (10 << 8) | 13
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_DUMP_REQUEST = 0x301            # NLM_F_REQUEST | NLM_F_DUMP
NFPROTO_INET, NFPROTO_IPV4 = 1, 2
NFT_SET_ELEM_INTERVAL_END = 1
# An element of a dump starts with its key: NFTA_SET_ELEM_KEY (len 12) >
# NFTA_DATA_VALUE (len 8) > 4 bytes, then NFTA_SET_ELEM_FLAGS when set (the
# kernel's order, nf_tables_fill_setelem). A regular expression over the
# message finds them much faster than walking the attributes in Python (20 ms
# instead of 60 for 20 000 elements); parse_elements() walks them, and every
# run's final dump is checked to give the same keys both ways.
ELEM_RE = re.compile(rb"\x0c\x00\x01\x00\x08\x00\x01\x00(.{4})(\x08\x00\x03\x00(.{4}))?", re.S)
CLONE_NEWNET = 0x40000000


def _nla(ty, payload):
    ln = 4 + len(payload)
    return struct.pack("=HH", ln, ty) + payload + b"\0" * ((4 - ln % 4) % 4)


def _attrs(buf, off, end):
    while off + 4 <= end:
        ln, ty = struct.unpack_from("=HH", buf, off)
        if ln < 4:
            return
        yield ty & 0x3fff, off + 4, off + ln
        off += (ln + 3) & ~3


def parse_elements(data, off, end):
    """The IPv4 keys of the element starts in one NEWSETELEM message, by
    walking its attributes."""
    keys = []
    for ty, a, b in _attrs(data, off, end):
        if ty != 3:                          # NFTA_SET_ELEM_LIST_ELEMENTS
            continue
        for _, ea, eb in _attrs(data, a, b):  # NFTA_LIST_ELEM
            key, flags = None, 0
            for ety, xa, xb in _attrs(data, ea, eb):
                if ety == 1:                 # NFTA_SET_ELEM_KEY > NFTA_DATA_VALUE
                    key = next((bytes(data[va:vb]) for vt, va, vb in _attrs(data, xa, xb)
                                if vt == 1), None)
                elif ety == 3:               # NFTA_SET_ELEM_FLAGS
                    flags = struct.unpack_from(">I", data, xa)[0]
            if key is not None and len(key) == 4 and not flags & NFT_SET_ELEM_INTERVAL_END:
                keys.append(key)
    return keys


def dump_set(sock, family, table, name, seq, walk=None):
    """The element keys of set TABLE NAME, or None when it does not exist;
    walk (a list): gets the keys of the same dump by parse_elements()."""
    body = struct.pack("=BBH", family, 0, 0) + _nla(1, table.encode() + b"\0") + \
        _nla(2, name.encode() + b"\0")
    sock.send(struct.pack("=IHHII", 16 + len(body), NFT_MSG_GETSETELEM, NLM_F_DUMP_REQUEST,
                          seq, 0) + body)
    keys = []
    while True:
        data = sock.recv(1 << 20)
        off = 0
        while off + 16 <= len(data):
            ln, ty = struct.unpack_from("=IH", data, off)
            if ln < 16:
                break
            if ty == NLMSG_DONE:
                return keys
            if ty == NLMSG_ERROR:
                err = struct.unpack_from("=i", data, off + 16)[0]
                if err == -errno.ENOENT:
                    return None
                if err:
                    raise OSError(-err, "dump of set %s %s: %s" % (table, name,
                                                                   os.strerror(-err)))
            elif ty == NFT_MSG_NEWSETELEM:
                keys += [m.group(1) for m in ELEM_RE.finditer(data, off + 20, off + ln)
                         if not (m.group(3) and struct.unpack(">I", m.group(3))[0]
                                 & NFT_SET_ELEM_INTERVAL_END)]
                if walk is not None:
                    walk += parse_elements(data, off + 20, off + ln)
            off += (ln + 3) & ~3


class SetPoller(threading.Thread):
    """Dumps the peer's sets every interval seconds from inside namespace
    ns; seen[address] is the CLOCK_REALTIME at which the first dump holding
    it returned."""

    def __init__(self, ns, sets, interval):
        super().__init__(daemon=True)
        self.ns, self.sets, self.interval = ns, sets, interval
        self.seen = {}
        self.present = False      # every set exists
        self.periods, self.dump_s = [], []
        self.error = None
        self.cv = threading.Condition()
        self.stopping = False
        self.sock = None

    def run(self):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open("/run/netns/" + self.ns, os.O_RDONLY)
            if libc.setns(fd, CLONE_NEWNET) != 0:  # this thread only
                raise OSError(ctypes.get_errno(), "setns " + self.ns)
            os.close(fd)
            self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
            self.sock.bind((0, 0))
            seq, last = 0, None
            while not self.stopping:
                t0 = time.time()
                found, present = [], True
                for fam, table, name in self.sets:
                    seq += 1
                    keys = dump_set(self.sock, fam, table, name, seq)
                    present = present and keys is not None
                    found += keys or []
                t1 = time.time()
                with self.cv:
                    for k in found:
                        if k not in self.seen:
                            self.seen[k] = t1
                    self.present = present
                    self.cv.notify_all()
                self.dump_s.append(t1 - t0)
                if last is not None:
                    self.periods.append(t0 - last)
                last = t0
                time.sleep(self.interval)
        except Exception as e:  # reported by wait()/stop()
            self.error = "set poller: %r" % e
            with self.cv:
                self.cv.notify_all()

    def wait(self, pred, timeout):
        """Waits until pred() (called under the lock) or timeout; its value."""
        with self.cv:
            ok = self.cv.wait_for(lambda: self.error or pred(), timeout)
        if self.error:
            raise BenchError(self.error)
        return ok

    def stop(self):
        self.stopping = True
        self.join(10)
        if self.error:
            raise BenchError(self.error)

    def final_check(self):
        """Both ways of reading the final dump give the same keys."""
        fast, walked = [], []
        for i, (fam, table, name) in enumerate(self.sets):
            fast += dump_set(self.sock, fam, table, name, 1000 + i, walked) or []
        if sorted(fast) != sorted(walked):
            raise BenchError("set poller: the fast scan found %d keys, the attribute walk %d"
                             % (len(fast), len(walked)))
        return {socket.inet_ntoa(k) for k in walked}

    def stats(self):
        return {"period_ms": statistics.median(self.periods) * 1000 if self.periods else None,
                "dump_ms": statistics.median(self.dump_s) * 1000 if self.dump_s else None,
                "polls": len(self.dump_s)}

    def seen_addr(self):
        with self.cv:
            return {socket.inet_ntoa(k): t for k, t in self.seen.items()}


# -- a peer in its cgroup -------------------------------------------------------------

def cgroup2_root():
    """The mount point of the cgroup v2 hierarchy (/sys/fs/cgroup or, on a
    hybrid host, /sys/fs/cgroup/unified)."""
    with open("/proc/self/mounts") as f:
        for line in f:
            parts = line.split()
            if parts[2] == "cgroup2":
                return parts[1]
    raise BenchError("no cgroup v2 hierarchy mounted: the peers' CPU is read from one")


class Cgroup:
    """A cgroup v2 of our own: its processes and their CPU (cpu.stat counts
    exited processes too)."""

    def __init__(self, name):
        self.path = os.path.join(cgroup2_root(), name)
        os.mkdir(self.path)

    def enter(self):
        """preexec_fn of a peer: its own session (sshguard's shell ends with
        `kill 0`), then into the cgroup."""
        os.setsid()
        with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))

    def pids(self):
        try:
            with open(os.path.join(self.path, "cgroup.procs")) as f:
                return [int(x) for x in f.read().split()]
        except OSError:
            return []

    def cpu(self):
        with open(os.path.join(self.path, "cpu.stat")) as f:
            st = dict(line.split() for line in f if line.strip())
        return {k: int(st[k + "_usec"]) / 1e6 for k in ("usage", "user", "system")}

    def rss_kib(self):
        total = 0
        for pid in self.pids():
            try:
                total += proc_status_kib(pid, "VmRSS") or 0
            except OSError:
                pass
        return total

    def comms(self):
        out = []
        for pid in self.pids():
            try:
                with open("/proc/%d/comm" % pid) as f:
                    out.append(f.read().strip())
            except OSError:
                pass
        return out

    def remove(self):
        """Kills what is left in it (all of it started by this run), by pid."""
        for _ in range(50):
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        try:
            os.rmdir(self.path)
        except OSError:
            pass


class RssSampler(threading.Thread):
    def __init__(self, cg, interval=0.2):
        super().__init__(daemon=True)
        self.cg, self.interval, self.peak_kib, self.stopping = cg, interval, 0, False

    def run(self):
        while not self.stopping:
            self.peak_kib = max(self.peak_kib, self.cg.rss_kib())
            time.sleep(self.interval)

    def stop(self):
        self.stopping = True
        self.join(5)
        return self.peak_kib


class Peer:
    name = ""
    sets = ()
    main_comm = None

    def __init__(self, tmp, ns, cg, opts):
        self.tmp, self.ns, self.cg, self.opts = tmp, ns, cg, opts
        self.log_path = os.path.join(tmp, self.name + ".log")
        self.proc = None

    def command(self):
        raise NotImplementedError

    def start(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(["nsenter", "--net=/run/netns/" + self.ns]
                                         + self.command(), stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         preexec_fn=self.cg.enter)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n=3000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except OSError:
            return "(no log)"

    def fail(self, what):
        rc = self.proc.poll() if self.proc else None
        state = "running" if rc is None else "exited %d" % rc
        raise BenchError("%s: %s (%s); its log:\n%s" % (self.name, what, state,
                                                        self.log_tail().rstrip()))

    def ready(self, poller):
        return True

    def errors(self):
        """What the peer logged as errors so far."""
        return []

    def health(self):
        """Raises BenchError when the peer is not well; returns extra facts."""
        if not self.alive():
            self.fail("not running")
        return {}

    def main_pid(self):
        return self.proc.pid  # nsenter execs the command

    def stop(self):
        """SIGTERM; raises BenchError unless the exit status is acceptable."""
        if not self.alive():
            self.fail("exited before it was stopped")
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            rc = self.proc.wait(180)
        except subprocess.TimeoutExpired:
            self.fail("did not exit within 180 s of SIGTERM")
        if rc not in self.ok_exit:
            self.fail("exit status %d after SIGTERM" % rc)
        return rc

    ok_exit = (0,)


class AgentPeer(Peer):
    name = "agent"
    sets = ((NFPROTO_INET, "cloudviz", "dynamic_v4"),)

    def command(self):
        self.sock = os.path.join(self.tmp, "ctl.sock")
        cfg = os.path.join(self.tmp, "agent.json")
        with open(cfg, "w") as f:
            json.dump({"node_id": "bench", "socket": self.sock,
                       "policy": os.path.join(ROOT, "policy/examples/cloudviz-node.json"),
                       "state_dir": os.path.join(self.tmp, "state"), "detect": DETECT}, f)
        return [self.opts["agent"], "run", "-c", cfg]

    def status(self):
        try:
            r = ctl_request(self.sock, {"cmd": "status"})
        except (OSError, ValueError):
            return None
        return r if r.get("ok") else None

    def ready(self, poller):
        return self.status() is not None

    def health(self):
        super().health()
        st = self.status()
        if st is None:
            self.fail("status does not answer")
        return {"detect": st.get("detect")}


class Fail2banPeer(Peer):
    name = "fail2ban"
    sets = ((NFPROTO_INET, "f2b-table", "addr-set-sshd"),)

    def command(self):
        self.conf = os.path.join(self.tmp, "fail2ban")
        shutil.copytree("/etc/fail2ban", self.conf)
        self.sock = os.path.join(self.tmp, "f2b.sock")
        with open(os.path.join(self.conf, "jail.local"), "w") as f:
            f.write("[DEFAULT]\nbackend = systemd\nbanaction = nftables-allports\n"
                    "banaction_allports = nftables-allports\n\n[sshd]\nenabled = true\n"
                    "maxretry = %d\nfindtime = %d\nbantime = %d\n"
                    % (FAILURES, DETECT["window"], DETECT["ttl"]))
        with open(os.path.join(self.conf, "fail2ban.local"), "w") as f:
            f.write("[Definition]\nloglevel = INFO\nlogtarget = %s\nsocket = %s\npidfile = %s\n"
                    "dbfile = %s\n" % (self.log_path, self.sock,
                                       os.path.join(self.tmp, "f2b.pid"),
                                       os.path.join(self.tmp, "f2b.sqlite3")))
        return ["fail2ban-server", "-xf", "-c", self.conf, "-s", self.sock, "-p",
                os.path.join(self.tmp, "f2b.pid")]

    def client(self, *args):
        return subprocess.run(["fail2ban-client", "-c", self.conf, "-s", self.sock] + list(args),
                              capture_output=True, text=True, timeout=60)

    def ready(self, poller):
        # its log, not `status sshd`: asked before the jail exists, that is
        # an error fail2ban logs
        return "Jail 'sshd' started" in self.log_tail(1 << 20)

    def errors(self):
        return [line for line in self.log_tail(1 << 30).splitlines()
                if " ERROR " in line or " CRITICAL " in line]

    def health(self):
        super().health()
        p = self.client("status", "sshd")
        if p.returncode != 0:
            self.fail("`fail2ban-client status sshd` exited %d: %s" % (p.returncode, p.stderr))
        errors = self.errors()
        if errors:
            self.fail("%d error lines in its log, e.g. %s" % (len(errors), errors[0]))
        m = re.search(r"Total failed:\s*(\d+)", p.stdout)
        return {"total_failed": int(m.group(1)) if m else None}


class SshguardPeer(Peer):
    name = "sshguard"
    sets = ((NFPROTO_IPV4, "sshguard", "attackers"),)
    # the shell exits through its INT/TERM trap (status 0), or the `kill 0`
    # of its EXIT trap reaches it first (killed by SIGTERM)
    ok_exit = (0, -signal.SIGTERM, 128 + signal.SIGTERM)
    PIPELINE = ("journalctl", "sshg-parser", "sshg-blocker", "sshg-fw-nft-set")  # comm: 15 chars

    def command(self):
        white = os.path.join(self.tmp, "whitelist")
        with open(white, "w") as f:
            f.write("127.0.0.0/8\n::1\n")
        conf = os.path.join(self.tmp, "sshguard.conf")
        with open(conf, "w") as f:
            f.write('BACKEND="/usr/libexec/sshguard/sshg-fw-nft-sets"\nLOGREADER="%s"\n'
                    "THRESHOLD=%d\nBLOCK_TIME=%d\nDETECTION_TIME=%d\nWHITELIST_FILE=%s\n"
                    % (SSHGUARD_LOGREADER, 10 * FAILURES, DETECT["ttl"], DETECT["window"], white))
        # only this private mount namespace sees it
        check_run("bind-mount sshguard.conf", ["mount", "--bind", conf,
                                               "/etc/sshguard/sshguard.conf"])
        return ["/usr/sbin/sshguard"]

    def ready(self, poller):
        comms = self.cg.comms()
        return poller.present and all(c in comms for c in self.PIPELINE)

    def health(self):
        super().health()
        comms = self.cg.comms()
        missing = [c for c in self.PIPELINE if c not in comms]
        if missing:
            self.fail("its pipeline lost %s" % ", ".join(missing))
        return {}

    def main_pid(self):
        for pid in self.cg.pids():
            try:
                with open("/proc/%d/comm" % pid) as f:
                    if f.read().strip() == "sshg-blocker":
                        return pid
            except OSError:
                pass
        return self.proc.pid


PEER_CLASSES = {"agent": AgentPeer, "fail2ban": Fail2banPeer, "sshguard": SshguardPeer}


# -- one run: a fresh journald, a fresh peer, one measure -----------------------------

def start_journald(tmp):
    for d in ("/run/systemd", "/run/log", "/var/log/journal"):
        os.makedirs(d, exist_ok=True)
        check_run("mount tmpfs on " + d, ["mount", "-t", "tmpfs", "tmpfs", d])
    os.makedirs("/run/systemd/journal")
    os.makedirs("/run/systemd/journald.conf.d")
    with open("/run/systemd/journald.conf.d/bench.conf", "w") as f:
        f.write(JOURNALD_CONF)
    log = open(os.path.join(tmp, "journald.log"), "wb")
    proc = subprocess.Popen([JOURNALD], stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT)
    for _ in range(200):
        if os.path.exists(DEV_LOG) and os.path.exists("/run/systemd/journal/socket"):
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise BenchError("journald did not start")


def journal_failures(addr_filter=None):
    """{address: [__REALTIME_TIMESTAMP in s, ...]} of the failures in the
    private journal, and the count of all sshd lines."""
    p = subprocess.Popen(["journalctl", "-q", "--no-pager", "-o", "json",
                          "--output-fields=MESSAGE", "_COMM=sshd"], stdout=subprocess.PIPE,
                         text=True)
    out, n = {}, 0
    for line in p.stdout:
        e = json.loads(line)
        n += 1
        m = MESSAGE_RE.match(e.get("MESSAGE", ""))
        if not m:
            continue
        if addr_filter is None or addr_filter(m.group(1)):
            out.setdefault(m.group(1), []).append(int(e["__REALTIME_TIMESTAMP"]) / 1e6)
    if p.wait() != 0:
        raise BenchError("journalctl exited %d" % p.returncode)
    return out, n


def journal_count():
    p = subprocess.Popen(["journalctl", "-q", "--no-pager", "-o", "cat", "_COMM=sshd"],
                         stdout=subprocess.PIPE)
    n = sum(1 for _ in p.stdout)
    if p.wait() != 0:
        raise BenchError("journalctl exited %d" % p.returncode)
    return n


class Writer:
    def __init__(self, kind, *args, interactive=False):
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--write", kind]
                                     + [str(a) for a in args], stdout=subprocess.PIPE,
                                     stdin=subprocess.PIPE if interactive else subprocess.DEVNULL,
                                     text=True)

    def finish(self, timeout=3600):
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise BenchError("the writer did not end within %d s" % timeout)
        if self.proc.returncode != 0:
            raise BenchError("the writer exited %d" % self.proc.returncode)
        return json.loads(out.strip().splitlines()[-1])


def wait_idle(cg, limit=600):
    """Until the cgroup used < 2 % of a CPU over two 0.5 s intervals."""
    t_end, calm = time.time() + limit, 0
    last = cg.cpu()["usage"]
    while time.time() < t_end:
        time.sleep(0.5)
        now = cg.cpu()["usage"]
        calm = calm + 1 if now - last < 0.01 else 0
        last = now
        if calm >= 2:
            return True
    return False


def inner_main(p):
    """--inner JSON, inside `unshare -m`: one peer, one measure; the result
    as JSON to p["out"]. A BenchError is printed and exits 1."""
    tmp, ns, peer_name, measure = p["tmp"], p["ns"], p["peer"], p["measure"]
    cleanups = []
    res = {"peer": peer_name, "measure": measure}
    try:
        jd = start_journald(tmp)
        cleanups.append(lambda: (jd.terminate(), jd.wait(10)))
        cg = Cgroup("cvzb-%d-%s-%s" % (os.getpid(), peer_name, measure))
        cleanups.append(cg.remove)
        if peer_name == "journal":
            Writer("listening").finish(60)
            res.update(run_journal_probes(p))
            with open(p["out"], "w") as f:
                json.dump(res, f)
            return 0
        # sshd's start, before the peer's: sshguard's `journalctl -f -n1`
        # started on a journal without a line of sshd skips all but the last
        # entry of the first burst it sees (systemd 252)
        Writer("listening").finish(60)
        peer = PEER_CLASSES[peer_name](tmp, ns, cg, p)
        poll_s = p["poll_latency"] if measure == "latency" else p["poll_flood"]
        poller = SetPoller(ns, peer.sets, poll_s)
        peer.start()
        poller.start()
        cleanups.append(lambda: poller.stop() if poller.is_alive() else None)
        t0 = time.time()
        while not peer.ready(poller):
            if not peer.alive():
                peer.fail("exited while starting")
            if time.time() - t0 > 60:
                peer.fail("not ready within 60 s (processes: %s; sets present: %s)"
                          % (" ".join(cg.comms()), poller.present))
            time.sleep(0.1)
        res["start_s"] = time.time() - t0
        # the decoy (4 failures) and the warm-up (5): the pipeline works
        Writer("warmup").finish(60)
        t0 = time.time()
        while not poller.wait(lambda: WARMUP in poller.seen_addr(), 0.5):
            if peer.errors():
                peer.fail("logged an error before blocking the warm-up address %s" % WARMUP)
            if time.time() - t0 > 30:
                peer.fail("did not block the warm-up address %s within 30 s of its 5th "
                          "failure" % WARMUP)
        lines_before = 2 + 2 * FAILURES - 1  # listening, decoy, warm-up
        if measure == "latency":
            res.update(run_latency(p, peer, poller))
            expect = lines_before + FAILURES * p["attackers"]
        elif measure == "flood":
            res.update(run_flood(p, peer, poller, cg))
            expect = lines_before + FAILURES * p["flood"]
        else:
            res.update(run_memory(p, peer, cg))
            expect = lines_before + p["singles"]
        res["health"] = peer.health()
        poller.stop()
        final = poller.final_check()
        res["poll"] = poller.stats()
        if DECOY in final:
            peer.fail("blocked the decoy %s after %d failures" % (DECOY, FAILURES - 1))
        res["exit"] = peer.stop()
        res["cpu_total"] = cg.cpu()
        if measure == "latency":
            res.update(latency_figures(p, poller))
        elif measure == "flood":
            res.update(flood_figures(p, poller, final))
        n = journal_count() if measure == "memory" else res.pop("journal_lines")
        if n != expect:
            raise BenchError("%s: the journal holds %d sshd lines, %d were written"
                             % (peer_name, n, expect))
        res["journal_lines"] = n
        with open(p["out"], "w") as f:
            json.dump(res, f)
        return 0
    except BenchError as e:
        print("%s %s: %s" % (peer_name, measure, e), file=sys.stderr)
        return 1
    finally:
        for fn in reversed(cleanups):
            try:
                fn()
            except Exception as e:  # cleanup goes on
                print("cleanup: %r" % e, file=sys.stderr)


def run_journal_probes(p):
    """The latency input read by the two journal probes (no peer, no kernel)."""
    n = p["attackers"]
    limit = n * p["gap"] + 60
    probes = {}
    for mode in ("wait", "poll"):
        probes[mode] = subprocess.Popen(["/usr/bin/python3", os.path.abspath(__file__),
                                         "--journal-probe", mode, str(n), str(limit)],
                                        stdout=subprocess.PIPE, text=True)
        if probes[mode].stdout.readline().strip() != "ready":
            raise BenchError("journal probe (%s) did not start" % mode)
    w = Writer("latency", n, p["gap"]).finish()
    out = {"writer": w}
    for mode, proc in probes.items():
        try:
            text, _ = proc.communicate(timeout=limit + 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise BenchError("journal probe (%s) did not end" % mode)
        if proc.returncode != 0:
            raise BenchError("journal probe (%s) exited %d" % (mode, proc.returncode))
        lat = json.loads(text.strip().splitlines()[-1])
        if len(lat) != n:
            raise BenchError("journal probe (%s) read %d of %d attackers' 5th lines"
                             % (mode, len(lat), n))
        out["read_" + mode + "_s"] = lat
    return out


def run_latency(p, peer, poller):
    n = p["attackers"]
    w = Writer("latency", n, p["gap"]).finish()
    want = {attacker(i) for i in range(n)}
    poller.wait(lambda: want <= set(poller.seen_addr()), 60)
    return {"writer": w}


def latency_figures(p, poller):
    n = p["attackers"]
    lines, total = journal_failures(lambda a: a.startswith("198.1"))
    seen = poller.seen_addr()
    lat, missing = [], 0
    for i in range(n):
        a = attacker(i)
        ts = sorted(lines.get(a, []))
        if len(ts) != FAILURES:
            raise BenchError("the journal holds %d lines of %s, %d were written"
                             % (len(ts), a, FAILURES))
        if a in seen:
            lat.append(seen[a] - ts[-1])
        else:
            missing += 1
    return {"latency_s": lat, "blocked": len(lat), "missing": missing, "journal_lines": total}


def run_flood(p, peer, poller, cg):
    n = p["flood"]
    want = {attacker(i) for i in range(n)}
    sampler = RssSampler(cg)
    sampler.start()
    cpu0 = cg.cpu()
    w = Writer("flood", n, p["rate"]).finish()
    poller.wait(lambda: want <= set(poller.seen_addr()), max(0.0, w["end"] + p["cap"]
                                                                - time.time()))
    cpu1 = cg.cpu()
    peak = sampler.stop()
    hwm = proc_status_kib(peer.main_pid(), "VmHWM")
    anon = proc_status_kib(peer.main_pid(), "RssAnon")
    return {"writer": w, "cpu": {k: cpu1[k] - cpu0[k] for k in cpu0}, "tree_peak_kib": peak,
            "main_hwm_kib": hwm, "main_anon_kib": anon, "waited_until": time.time()}


def flood_figures(p, poller, final):
    n = p["flood"]
    lines, total = journal_failures(lambda a: a.startswith("198.1"))
    last_line = max(max(v) for v in lines.values())
    seen = poller.seen_addr()
    times = [seen[attacker(i)] for i in range(n) if attacker(i) in seen]
    return {"blocked": len(times), "in_kernel_at_end": sum(attacker(i) in final
                                                           for i in range(n)),
            "last_block_after_last_line_s": max(times) - last_line if times else None,
            "last_line": last_line, "journal_lines": total}


def run_memory(p, peer, cg):
    n = p["singles"]
    stops = [n // 10, n // 2, n]
    w = Writer("single", n, ",".join(str(s) for s in stops), interactive=True)
    points = []
    for _ in stops:
        line = w.proc.stdout.readline()
        if not line.startswith("checkpoint"):
            raise BenchError("the writer stopped early: %r" % line)
        k = int(line.split()[1])
        idle = wait_idle(cg)
        st = peer.status() or {}
        pt = {"lines": k, "idle": idle, "detect": st.get("detect")}
        for key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
            pt[key] = proc_status_kib(peer.main_pid(), key)
        points.append(pt)
        w.proc.stdin.write("go\n")
        w.proc.stdin.flush()
    return {"writer": w.finish(), "points": points}


# -- the outer run: one private mount namespace per peer and measure -------------------

def ensure_peers(peers, probes):
    """fail2ban, sshguard and python3-systemd (fail2ban's journal backend
    and the journal readers of 1) from Debian, when one is missing."""
    need = [p for p in peers if p != "agent"]
    tools = {"fail2ban": ["/usr/bin/fail2ban-server"], "sshguard": ["/usr/sbin/sshguard"]}
    if any(not os.path.exists(t) for p in need for t in tools[p]) or \
            (("fail2ban" in need or probes) and
             subprocess.run(["/usr/bin/python3", "-c", "import systemd.journal"],
                            capture_output=True).returncode != 0):
        check_run("install the peers", [os.path.join(ROOT, "scripts/install-deps.sh"),
                                        "fail2ban", "sshguard", "python3-systemd"])


def peer_run(args, tmp, peer, measure):
    ns = "cvzb-%d-%s-%s" % (os.getpid(), peer[:3], measure[:3])
    d = os.path.join(tmp, "%s-%s" % (peer, measure))
    os.makedirs(d)
    out = os.path.join(d, "result.json")
    params = {"tmp": d, "ns": ns, "peer": peer, "measure": measure, "out": out,
              "agent": args.agent, "attackers": args.attackers, "gap": args.gap,
              "flood": args.flood, "rate": args.rate, "cap": args.cap, "singles": args.singles,
              "poll_latency": args.poll_ms / 1000, "poll_flood": args.flood_poll_ms / 1000}
    check_run("ip netns add", ["ip", "netns", "add", ns])
    try:
        check_run("lo up", ["ip", "-n", ns, "link", "set", "lo", "up"])
        print("%s: %s ..." % (measure, peer), flush=True)
        t0 = time.monotonic()
        p = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable,
                            os.path.abspath(__file__), "--inner", json.dumps(params)],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if p.returncode != 0 or not os.path.exists(out):
            raise BenchError("%s %s run exited %d:\n%s" % (peer, measure, p.returncode,
                                                           (p.stderr or p.stdout)[-4000:].rstrip()))
        with open(out) as f:
            r = json.load(f)
        r["run_s"] = time.monotonic() - t0
        return r
    finally:
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)


def pct(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))] if s else None


def ratio(a, b):
    return None if a is None or not b else a / b


def fmt(v, f="%.2f"):
    return "n/a" if v is None else f % v


def mib(kib):
    return "n/a" if kib is None else "%.1f" % (kib / 1024)


def verdict(ok):
    return "n/a" if ok is None else ("met" if ok else "MISSED")


def versions():
    def out(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True).stdout.strip()
        except OSError:
            return "n/a"
    return {"fail2ban": out(["fail2ban-server", "-V"]),
            "sshguard": out(["dpkg-query", "-W", "-f", "${Version}", "sshguard"]),
            "nft": out(["nft", "--version"]), "kernel": os.uname().release,
            "cpus": os.cpu_count()}


def report(args, res):
    v = res["versions"]
    print("\n== input")
    print("machine: kernel %s, %d cpus, %s; fail2ban %s (sshd jail, backend systemd, "
          "nftables-allports); sshguard %s (journalctl LOGREADER, sshg-fw-nft-sets)"
          % (v["kernel"], v["cpus"], v["nft"], v["fail2ban"], v["sshguard"]))
    print('lines: "%s", one per failure, by one uid-0 process with comm sshd, syslog to '
          "journald's dev-log;\n  each peer fresh per measure, in its own netns and private "
          "journald" % (MESSAGE % ("A", 0)).replace(" 0 ", " P "))
    print("kernel arrival: netlink dump of the peer's set every %g ms (latency) / %g ms "
          "(flood), stamped when the first dump holding it returned"
          % (args.poll_ms, args.flood_poll_ms))
    lat = res.get("latency", {})
    if lat:
        print("\n== 1. latency: %d attackers x %d failures, one every %g s; from the 5th "
              "failure's journal entry to the kernel" % (args.attackers, FAILURES, args.gap))
        print("%-12s %9s %9s %9s %9s %9s  %s" % ("peer", "blocked", "p50 ms", "p99 ms", "max ms",
                                                 "poll ms", "dump ms"))
        j = lat.get("journal")
        for mode, what in (("wait", "sd_journal_wait (inotify), read"),
                           ("poll", "sd_journal_next every 1 ms, read")):
            if j:
                ms = [x * 1000 for x in j["read_%s_s" % mode]]
                print("%-12s %9s %9s %9s %9s  (a journal reader, no block: %s)"
                      % ("  journal", "", fmt(pct(ms, 50)), fmt(pct(ms, 99)), fmt(max(ms)), what))
        for peer in PEERS:
            r = lat.get(peer)
            if not r:
                continue
            ms = [x * 1000 for x in r["latency_s"]]
            print("%-12s %5d/%-3d %9s %9s %9s %9s  %s"
                  % (peer, r["blocked"], args.attackers, fmt(pct(ms, 50)), fmt(pct(ms, 99)),
                     fmt(max(ms) if ms else None), fmt(r["poll"]["period_ms"], "%.3f"),
                     fmt(r["poll"]["dump_ms"], "%.3f")))
    fl = res.get("flood", {})
    if fl:
        print("\n== 2. flood: %d lines, %d addresses x %d, interleaved, %d lines/s; wait capped "
              "at %d s after the last line" % (args.flood * FAILURES, args.flood, FAILURES,
                                                args.rate, args.cap))
        print("%-12s %7s %13s %19s %8s %8s %8s %9s %12s %10s %9s"
              % ("peer", "write s", "blocked", "last block - line", "CPU s", "user s",
                 "sys s", "ms/block", "tree peak", "main HWM", "main anon"))
        for peer in PEERS:
            r = fl.get(peer)
            if not r:
                continue
            w = r["writer"]
            print("%-12s %7.1f %7d/%-5d %17s s %8.2f %8.2f %8.2f %9s %8.1f MiB %6.1f MiB %5s MiB"
                  % (peer, w["end"] - w["start"], r["blocked"], args.flood,
                     fmt(r["last_block_after_last_line_s"]), r["cpu"]["usage"], r["cpu"]["user"],
                     r["cpu"]["system"],
                     fmt(r["cpu"]["usage"] * 1000 / r["blocked"] if r["blocked"] else None),
                     r["tree_peak_kib"] / 1024, (r["main_hwm_kib"] or 0) / 1024,
                     mib(r.get("main_anon_kib"))))
        print("(set dumps: %s)" % "; ".join(
            "%s every %s ms, %s ms each" % (peer, fmt(fl[peer]["poll"]["period_ms"], "%.0f"),
                                          fmt(fl[peer]["poll"]["dump_ms"], "%.1f"))
            for peer in PEERS if peer in fl))
    mem = res.get("memory", {}).get("agent")
    if mem:
        print("\n== 3. memory: the agent, %d addresses x 1 failure (below the threshold), "
              "max_tracked %d" % (args.singles, DETECT["max_tracked"]))
        print("%8s %8s %8s %8s %8s %8s %8s %8s %8s %8s %8s" % (
            "lines", "VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM", "read", "tracked",
            "conns", "evicted", "tracker"))
        for pt in mem["points"]:
            d = pt["detect"] or {}
            print("%8d %8s %8s %8s %8s %8s %8s %8s %8s %8s %8s"
                  % (pt["lines"], mib(pt["VmRSS"]), mib(pt["RssAnon"]), mib(pt["RssFile"]),
                     mib(pt["RssShmem"]), mib(pt["VmHWM"]), d.get("lines"), d.get("tracked"),
                     d.get("connections"), d.get("evicted"),
                     mib(d["tracker_bytes"] / 1024 if "tracker_bytes" in d else None)))
        print("(MiB; read: the lines status counts as read, the %d before the measure included; "
              "each point once the agent was idle.\n RssShmem: the journal files sd-journal "
              "maps, on the private journald's tmpfs; on disk they are RssFile)"
              % (2 + 2 * FAILURES - 1))

    print("\n== targets")
    a, s, f = lat.get("agent"), lat.get("sshguard"), lat.get("fail2ban")

    def p99(r):
        return pct([x * 1000 for x in r["latency_s"]], 99) if r and r["latency_s"] else None
    ap99, sp99, fp99 = p99(a), p99(s), p99(f)
    if lat:
        print("latency p99: agent %s ms (target <= 50 ms: %s); agent / sshguard %s "
              "(target <= 0.1: %s); agent / fail2ban %s"
              % (fmt(ap99), verdict(None if ap99 is None else ap99 <= 50 and a["missing"] == 0),
                 fmt(ratio(ap99, sp99), "%.3f"),
                 verdict(None if ratio(ap99, sp99) is None else ratio(ap99, sp99) <= 0.1),
                 fmt(ratio(ap99, fp99), "%.3f")))
    fa, ff, fs = fl.get("agent"), fl.get("fail2ban"), fl.get("sshguard")
    if fl:
        all_in = None if not fa else (fa["blocked"] == args.flood and
                                      fa["last_block_after_last_line_s"] is not None and
                                      fa["last_block_after_last_line_s"] <= 10)
        cr = ratio(fa and fa["cpu"]["usage"], ff and ff["cpu"]["usage"])
        sr = ratio(fa and fa["cpu"]["usage"], fs and fs["cpu"]["usage"])
        print("flood: agent blocked %s/%d, the last %s s after the last line (target: all within "
              "10 s: %s)" % (fa["blocked"] if fa else "n/a", args.flood,
                             fmt(fa and fa["last_block_after_last_line_s"]), verdict(all_in)))
        note = ""
        if ff and ff["blocked"] < args.flood:
            note = " (fail2ban had blocked %d at the cap: its CPU is for that part only)" \
                % ff["blocked"]
        print("flood CPU: agent / fail2ban %s (target <= 0.1: %s)%s; agent / sshguard %s"
              % (fmt(cr, "%.4f"), verdict(None if cr is None else cr <= 0.1), note,
                 fmt(sr, "%.4f")))
    if mem:
        # flat once max_tracked addresses are tracked: the points past it.
        # The agent's own memory is RssAnon; the mapped journal files
        # (RssShmem/RssFile) are sd-journal's cache of the files, bounded by
        # it, not by the addresses
        pts = [pt for pt in mem["points"] if pt["lines"] >= DETECT["max_tracked"]]
        flat = None if len(pts) < 2 else \
            pts[-1]["RssAnon"] <= pts[0]["RssAnon"] * 1.05 + 1024 and \
            all((pt["detect"] or {}).get("tracked", 0) <= DETECT["max_tracked"] for pt in pts)
        print("memory: RssAnon %s, VmRSS %s from %s to %s lines; tracked <= max_tracked (target "
              "flat past max_tracked: %s)"
              % (" -> ".join(mib(pt["RssAnon"]) for pt in pts) or "n/a",
                 " -> ".join(mib(pt["VmRSS"]) for pt in pts) or "n/a",
                 pts[0]["lines"] if pts else "n/a", pts[-1]["lines"] if pts else "n/a",
                 verdict(flat)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agent", default=os.path.join(ROOT, "build/cloudviz-agent"))
    ap.add_argument("--quick", action="store_true", help="smoke run (see the header)")
    ap.add_argument("--peers", default=",".join(PEERS))
    ap.add_argument("--measures", default=",".join(MEASURES))
    ap.add_argument("--attackers", type=int)
    ap.add_argument("--gap", type=float, default=0.1)
    ap.add_argument("--flood", type=int)
    ap.add_argument("--rate", type=float, default=5000)
    ap.add_argument("--cap", type=float)
    ap.add_argument("--singles", type=int)
    ap.add_argument("--poll-ms", type=float, default=1.0)
    ap.add_argument("--flood-poll-ms", type=float, default=250.0)
    ap.add_argument("--no-journal-probes", action="store_true",
                    help="no journal readers without a peer in 1")
    ap.add_argument("--json", default=os.path.join(ROOT, "build", "bench", "detect_bench.json"))
    ap.add_argument("--inner", help=argparse.SUPPRESS)
    ap.add_argument("--write", nargs="+", help=argparse.SUPPRESS)
    ap.add_argument("--journal-probe", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.write:
        return writer_main(args.write[0], args.write[1:])
    if args.journal_probe:
        m, n, limit = args.journal_probe
        return journal_probe_main(m, int(n), float(limit))
    if args.inner:
        return inner_main(json.loads(args.inner))
    for name, quick, full in (("attackers", 20, 200), ("flood", 2000, 20000), ("cap", 60, 300),
                              ("singles", 20000, 1000000)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    if args.attackers > 32768 or args.flood > 32768 or args.singles > 4000000:
        raise SystemExit("bench: at most 32 768 attackers/flood addresses, 4 000 000 singles")
    peers = [p for p in args.peers.split(",") if p]
    measures = [m for m in args.measures.split(",") if m]
    if set(peers) - set(PEERS) or set(measures) - set(MEASURES):
        raise SystemExit("bench: --peers from %s, --measures from %s" % (PEERS, MEASURES))
    if os.geteuid() != 0:
        raise SystemExit("bench: needs root (network and mount namespaces)")
    tmp = tempfile.mkdtemp(prefix="cvz-detectbench-")
    os.chmod(tmp, 0o755)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda s, f: sys.exit(128 + s))
    res = {"input": {k: getattr(args, k) for k in ("attackers", "gap", "flood", "rate", "cap",
                                                   "singles", "poll_ms", "flood_poll_ms",
                                                   "quick")}}
    t0 = time.monotonic()
    try:
        if "agent" in peers:
            if not os.access(args.agent, os.X_OK):
                raise BenchError("no agent binary %s (run make)" % args.agent)
            # a private copy: a rebuild of build/ during the run must not swap it
            args.agent = shutil.copy2(args.agent, os.path.join(tmp, "cloudviz-agent"))
        ensure_peers(peers, "latency" in measures and not args.no_journal_probes)
        res["versions"] = versions()
        for measure in measures:
            for peer in (["journal"] if measure == "latency" and not args.no_journal_probes
                         else []) + peers:
                if measure == "memory" and peer != "agent":
                    continue
                res.setdefault(measure, {})[peer] = peer_run(args, tmp, peer, measure)
    except BenchError as e:
        print("bench: %s" % e, file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res["runtime_s"] = time.monotonic() - t0
    report(args, res)
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    print("\nruntime %.0f s; results in %s" % (res["runtime_s"], os.path.relpath(args.json)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
