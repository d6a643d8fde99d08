"""What the benches share: a request on the agent's control socket (what
the CLI sends, without the CLI's process start), /proc readings, and the
one way every timed process is run, so that both sides of a ratio are
measured alike:

  - a process on either side is started by run_timed() from this Python
    process, in its network namespace through `nsenter --net=...` (the same
    launcher for the agent's CLI and for nft), timed with the same clock
    (time.perf_counter() from before the fork to after the wait), and its
    exit status is checked: a failed or timed-out run raises BenchError
    with its stderr, and the bench stops (no ratio against a failure);
  - an in-process request on either side goes to a warm process that does
    the work: the agent's control socket (ctl_timed) or a helper process
    holding a libnftables context in the baseline namespace (NftServer),
    timed by this process around the request and the answer.

`python3 bench/benchlib.py --nft-server NS` is that helper (internal)."""

import ctypes
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time


class BenchError(RuntimeError):
    """A side of a measurement failed: the bench stops with this message."""


def ctl_request(path, req, timeout=10):
    """One JSON request on the control socket at path; the parsed reply."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        s.sendall((json.dumps(req) + "\n").encode())
        data = b""
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    return json.loads(data)


def ctl_timed(path, req, timeout=60):
    """(seconds, reply) of one control-socket request; a reply without
    "ok": true raises BenchError."""
    t0 = time.perf_counter()
    r = ctl_request(path, req, timeout)
    dt = time.perf_counter() - t0
    if not r.get("ok"):
        raise BenchError("agent: %s failed: %s" % (json.dumps(req), json.dumps(r)[:2000]))
    return dt, r


def proc_status_kib(pid, key):
    """A /proc/PID/status value in KiB (VmRSS, VmHWM), or None."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def in_ns(ns):
    """The launcher of every timed process of namespace ns (nsenter execs
    the command: no extra process stays, no mount namespace is made)."""
    return ["nsenter", "--net=/run/netns/" + ns]


def run_timed(what, args, timeout=None, rss=False, stdin=None):
    """Runs args; returns (seconds, peak RSS in MiB or None).

    Raises BenchError naming `what` with the tail of stderr when the process
    exits non-zero or does not end within timeout seconds.

    rss=True wraps args in /usr/bin/time: a child forked from this Python
    process would count the pages of this image it inherited (the generated
    inputs) in its own peak. The wrapper then runs on every side alike."""
    rss_file = None
    if rss:
        fd, rss_file = tempfile.mkstemp(prefix="cvz-rss-")
        os.close(fd)
        args = ["/usr/bin/time", "-f", "%M", "-o", rss_file] + list(args)
    try:
        with tempfile.TemporaryFile() as err:
            t0 = time.perf_counter()
            p = subprocess.Popen(args, stdin=stdin if stdin is not None else subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=err)
            try:
                rc = p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                rc = None
            dt = time.perf_counter() - t0
            if rc != 0:
                err.seek(0)
                tail = err.read()[-2000:].decode(errors="replace").rstrip()
                state = "did not end within %s s" % timeout if rc is None else "exited %d" % rc
                raise BenchError("%s: `%s` %s:\n%s" % (what, " ".join(args), state, tail))
        peak = None
        if rss_file:
            with open(rss_file) as f:
                nums = [w for w in f.read().split() if w.isdigit()]
            peak = int(nums[-1]) / 1024 if nums else None
        return dt, peak
    finally:
        if rss_file:
            os.unlink(rss_file)


def check_run(what, args, **kw):
    """subprocess.run(args) that raises BenchError with stderr on failure."""
    p = subprocess.run(args, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise BenchError("%s: `%s` exited %d:\n%s" % (what, " ".join(args), p.returncode,
                                                       p.stderr[-2000:].rstrip()))
    return p


def set_count(nft, ns, table, name):
    """Elements of set inet TABLE NAME in namespace NS, as nft lists them."""
    p = check_run(f"count {table} {name}", in_ns(ns) + [nft, "-j", "list", "set", "inet", table,
                                                        name])
    for obj in json.loads(p.stdout).get("nftables", []):
        if "set" in obj:
            return len(obj["set"].get("elem", []))
    return 0


def nft_listeners(exclude=None):
    """Processes anywhere on the host subscribed to nf_tables events
    (NFNLGRP_NFTABLES), as "comm[pid]". The kernel checks for listeners
    host-wide, not per namespace: while there is one, every transaction
    builds an event per set element, which makes a 100 000-element commit
    markedly slower. The agent leaves the group during its own large commits."""
    inodes, seen = set(), set()
    group = 1 << (7 - 1)  # NFNLGRP_NFTABLES
    pids = [p for p in os.listdir("/proc") if p.isdigit()]
    for pid in pids:
        try:
            ns = os.stat("/proc/%s/ns/net" % pid).st_ino
            if ns in seen:
                continue
            seen.add(ns)
            with open("/proc/%s/net/netlink" % pid) as f:
                next(f)
                for line in f:
                    p = line.split()  # sk Eth Pid Groups ... Inode
                    if p[1] == "12" and int(p[3], 16) & group:  # NETLINK_NETFILTER
                        inodes.add("socket:[%s]" % p[-1])
        except (OSError, StopIteration, IndexError, ValueError):
            continue
    owners = set()
    for pid in pids if inodes else ():
        if pid == str(exclude):
            continue
        try:
            for fd in os.listdir("/proc/%s/fd" % pid):
                if os.readlink("/proc/%s/fd/%s" % (pid, fd)) in inodes:
                    with open("/proc/%s/comm" % pid) as f:
                        owners.add("%s[%s]" % (f.read().strip(), pid))
        except OSError:
            continue
    return sorted(owners)


# -- a warm libnftables context in a namespace ---------------------------------------

CLONE_NEWNET = 0x40000000


def _nft_server(ns):
    """--nft-server NS: enters NS, holds one libnftables context, and runs
    each line of stdin as an nft command ("@file PATH": the script at PATH,
    as `nft -f PATH`); answers "rc<TAB>error" per line."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open("/run/netns/" + ns, os.O_RDONLY)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise SystemExit("setns %s: %s" % (ns, os.strerror(ctypes.get_errno())))
    os.close(fd)
    nft = ctypes.CDLL("libnftables.so.1")
    nft.nft_ctx_new.restype = ctypes.c_void_p
    nft.nft_ctx_new.argtypes = [ctypes.c_uint32]
    nft.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
    nft.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
    nft.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
    nft.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
    nft.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    ctx = nft.nft_ctx_new(0)
    nft.nft_ctx_buffer_error(ctx)
    nft.nft_ctx_buffer_output(ctx)
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    nft.nft_run_cmd_from_filename.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    for line in sys.stdin:
        line = line.strip()
        if line.startswith("@file "):
            rc = nft.nft_run_cmd_from_filename(ctx, line[6:].encode())
        else:
            rc = nft.nft_run_cmd_from_buffer(ctx, line.encode())
        errtext = (nft.nft_ctx_get_error_buffer(ctx) or b"").decode(errors="replace")
        out.write("%d\t%s\n" % (rc, errtext.replace("\n", " ").strip()))
        out.flush()


class NftServer:
    """The --nft-server helper of namespace ns, a child of this process;
    timed(cmd) is (seconds) of one nft command sent to it and answered
    (timed_file(path): of the script at path), raising BenchError when
    libnftables reports a failure."""

    def __init__(self, ns):
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--nft-server",
                                      ns], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1)
        if self.proc.stdout.readline().strip() != "ready":
            self.stop()
            raise BenchError("libnftables helper in %s did not start" % ns)

    def timed(self, cmd):
        t0 = time.perf_counter()
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        dt = time.perf_counter() - t0
        rc, _, errtext = line.rstrip("\n").partition("\t")
        if rc != "0":
            raise BenchError("baseline libnftables `%s` failed (%s): %s"
                             % (cmd, rc or "helper died", errtext))
        return dt

    def timed_file(self, path):
        return self.timed("@file " + path)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- statistics -----------------------------------------------------------------------

def spread(values):
    """(min, median, max) of values."""
    return min(values), statistics.median(values), max(values)


def fmt_spread(values, scale=1.0, prec=2):
    lo, med, hi = spread(values)
    return "%.*f [%.*f-%.*f]" % (prec, med * scale, prec, lo * scale, prec, hi * scale)


def ratio_spread(agent, base):
    """(median of the per-pair ratios agent[i]/base[i], min, max) of
    interleaved pairs, as "r [min-max]"."""
    rs = [a / b for a, b in zip(agent, base)]
    lo, med, hi = spread(rs)
    return "%.3f [%.3f-%.3f]" % (med, lo, hi)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--nft-server":
        _nft_server(sys.argv[2])
    else:
        raise SystemExit("usage: benchlib.py --nft-server NS (internal to the benches)")
