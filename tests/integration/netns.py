"""Throwaway network namespaces and real-packet probes for the integration tests.

Python 3 standard library only; everything here must run as root.

Nothing in this module touches the host's own network namespace beyond
creating and deleting namespaces named cvzt-<pid>-<role>: veth pairs are
created directly inside their namespaces (`ip -n NS link add ... peer ...
netns OTHER`), and every socket is opened inside a namespace with setns(2)
on the calling thread only, so traffic never leaves the test topology.

The standard topology (build_topology()):

        priv (10.1.0.2, 172.16.5.2, 172.18.5.2, 192.168.5.2,
          |    fd00:1::2, fc00:5::2)
          | eth0 -- priv0
          |
        node ---- br-test (172.20.0.1, fd20::1) -- ctr0 -- eth0  ctr  (172.20.0.2, fd20::2)
          |  \--- docker0 (172.17.0.1, fd17::1) -- dock0 - eth0 dock (172.17.0.2, fd17::2)
          | pub0 -- eth0
          |
        pub  (203.0.113.2, 198.51.100.2, 172.32.0.2, 11.0.0.2, 192.169.0.2,
              2001:db8:2::2, 2001:db8:3::2, fbff::2)

priv holds one source address inside each private range of the node policy,
pub holds addresses outside every range, some just past a range's edge
(172.32/16 after 172.16/12, 11/8 after 10/8, 192.169/16 after 192.168/16,
fbff:: just below fc00::/7). The node forwards between all links, so
priv<->pub is the "forward between two ordinary links" path and anything
to or from ctr/dock crosses a br-*/docker0 bridge.
"""

import contextlib
import ctypes
import errno
import json
import os
import re
import selectors
import socket
import subprocess
import threading
import time
from dataclasses import dataclass

CLONE_NEWNET = 0x40000000
NS_PREFIX = "cvzt"

ACCEPTED = "accepted"   # TCP handshake completed / UDP echo came back / ping answered
DROPPED = "dropped"     # no answer within the timeout (or EPERM from a local output drop)
REFUSED = "refused"     # RST or ICMP port unreachable: the packet got through, nobody listened
UNREACHABLE = "unreachable"

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "setns: " + os.strerror(e))


@contextlib.contextmanager
def inside(ns):
    """Run the body with this thread in network namespace ns (a name under
    /run/netns). Sockets created inside stay in ns after the body ends."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open("/run/netns/" + ns, os.O_RDONLY)
        try:
            _setns(target)
            try:
                yield
            finally:
                _setns(home)
        finally:
            os.close(target)
    finally:
        os.close(home)


def run(cmd, ns=None, check=True, input=None, timeout=60):
    """Run cmd (a list), inside ns via `ip netns exec` when given. Returns the
    CompletedProcess (text mode, output captured)."""
    if ns is not None:
        cmd = ["ip", "netns", "exec", ns] + list(cmd)
    p = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError("command failed (%d): %s\n%s%s" % (
            p.returncode, " ".join(cmd), p.stdout, p.stderr))
    return p


def ip(ns, *args, check=True):
    return run(["ip", "-n", ns] + [str(a) for a in args], check=check)


def family_of(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_stale():
    """Delete namespaces left behind by earlier runs that were SIGKILLed:
    cvzt-<pid>-* whose pid no longer exists. Never touches a live run's."""
    try:
        names = os.listdir("/run/netns")
    except FileNotFoundError:
        return
    for name in names:
        m = re.match(r"^%s-(\d+)-" % NS_PREFIX, name)
        if m and not pid_alive(int(m.group(1))):
            run(["ip", "netns", "del", name], check=False)


class Topology:
    """A set of namespaces owned by this process. destroy() is idempotent."""

    def __init__(self, tag=""):
        reap_stale()
        self.base = "%s-%d-%s" % (NS_PREFIX, os.getpid(), tag) if tag else \
            "%s-%d" % (NS_PREFIX, os.getpid())
        self.ns = {}

    def add_ns(self, role):
        name = "%s-%s" % (self.base, role)
        run(["ip", "netns", "add", name])
        self.ns[role] = name
        # No DAD: addresses must be usable the moment they are added. No
        # router solicitations, and MLD report retransmissions within a
        # millisecond of the join instead of up to a second later: stray
        # ICMPv6 that a policy drops is logged too, and uses up the log rate
        # limit the tests measure.
        run(["sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0",
             "net.ipv6.conf.default.accept_dad=0",
             "net.ipv6.conf.default.router_solicitations=0",
             "net.ipv6.conf.default.mldv1_unsolicited_report_interval=1",
             "net.ipv6.conf.default.mldv2_unsolicited_report_interval=1"], ns=name)
        ip(name, "link", "set", "lo", "up")
        return name

    def veth(self, a, a_if, b, b_if):
        """veth pair with a_if in role a and b_if in role b, both up."""
        ip(self.ns[a], "link", "add", a_if, "type", "veth", "peer", "name", b_if,
           "netns", self.ns[b])
        ip(self.ns[a], "link", "set", a_if, "up")
        ip(self.ns[b], "link", "set", b_if, "up")

    def bridge(self, role, name):
        ip(self.ns[role], "link", "add", name, "type", "bridge", "forward_delay", "0")
        ip(self.ns[role], "link", "set", name, "up")

    def enslave(self, role, port, bridge):
        ip(self.ns[role], "link", "set", port, "master", bridge)

    def addr(self, role, dev, cidr):
        extra = ["nodad"] if ":" in cidr else []
        ip(self.ns[role], "addr", "add", cidr, "dev", dev, *extra)

    def route(self, role, dst, via):
        fam = "-6" if ":" in via else "-4"
        ip(self.ns[role], fam, "route", "add", dst, "via", via)

    def sysctl(self, role, *settings):
        run(["sysctl", "-qw"] + list(settings), ns=self.ns[role])

    def flush_neigh(self, role):
        ip(self.ns[role], "-6", "neigh", "flush", "all", check=False)
        ip(self.ns[role], "-4", "neigh", "flush", "all", check=False)

    def mac(self, role, dev):
        """The link-layer address of dev, as the kernel log prints it."""
        out = ip(self.ns[role], "-j", "link", "show", "dev", dev).stdout
        return json.loads(out)[0]["address"]

    def neigh(self, role, dev, addr):
        """The neighbour-cache line for addr on dev, or '' if none."""
        out = ip(self.ns[role], "neigh", "show", "dev", dev, "to", addr, check=False).stdout
        return out.strip()

    def destroy(self):
        for name in list(self.ns.values())[::-1]:
            run(["ip", "netns", "del", name], check=False)
        self.ns.clear()


class A:
    """Addresses of the standard topology."""
    NODE_PRIV4, NODE_PRIV6 = "10.1.0.1", "fd00:1::1"
    NODE_PUB4, NODE_PUB6 = "203.0.113.1", "2001:db8:2::1"
    BR4, BR6 = "172.20.0.1", "fd20::1"
    DOCKER4, DOCKER6 = "172.17.0.1", "fd17::1"
    # private client: one source inside each range of the node policy
    PRIV_10, PRIV_172_16, PRIV_172_18, PRIV_192_168 = \
        "10.1.0.2", "172.16.5.2", "172.18.5.2", "192.168.5.2"
    PRIV_FD, PRIV_FC = "fd00:1::2", "fc00:5::2"
    # public client: outside every range, some just past an edge
    PUB_203, PUB_198, PUB_172_32, PUB_11, PUB_192_169 = \
        "203.0.113.2", "198.51.100.2", "172.32.0.2", "11.0.0.2", "192.169.0.2"
    PUB_V6, PUB_V6B, PUB_FBFF = "2001:db8:2::2", "2001:db8:3::2", "fbff::2"
    CTR4, CTR6 = "172.20.0.2", "fd20::2"
    DOCK4, DOCK6 = "172.17.0.2", "fd17::2"


PRIV_EXTRA = [A.PRIV_172_16, A.PRIV_172_18, A.PRIV_192_168, A.PRIV_FC]
PUB_EXTRA = [A.PUB_198, A.PUB_172_32, A.PUB_11, A.PUB_192_169, A.PUB_V6B, A.PUB_FBFF]


def build_topology(tag="", containers=True):
    """Create the standard topology (see module doc). Returns the Topology;
    the caller must destroy() it. Roles: node, priv, pub, and with
    containers=True also ctr (behind br-test) and dock (behind docker0)."""
    t = Topology(tag)
    try:
        for role in ("node", "priv", "pub") + (("ctr", "dock") if containers else ()):
            t.add_ns(role)
        t.sysctl("node", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")

        t.veth("node", "priv0", "priv", "eth0")
        t.addr("node", "priv0", A.NODE_PRIV4 + "/24")
        t.addr("node", "priv0", A.NODE_PRIV6 + "/64")
        t.addr("priv", "eth0", A.PRIV_10 + "/24")
        t.addr("priv", "eth0", A.PRIV_FD + "/64")
        for a in PRIV_EXTRA:
            t.addr("priv", "eth0", a + ("/128" if ":" in a else "/32"))
            t.route("node", a, A.PRIV_FD if ":" in a else A.PRIV_10)
        t.route("priv", "default", A.NODE_PRIV4)
        t.route("priv", "default", A.NODE_PRIV6)

        t.veth("node", "pub0", "pub", "eth0")
        t.addr("node", "pub0", A.NODE_PUB4 + "/24")
        t.addr("node", "pub0", A.NODE_PUB6 + "/64")
        t.addr("pub", "eth0", A.PUB_203 + "/24")
        t.addr("pub", "eth0", A.PUB_V6 + "/64")
        for a in PUB_EXTRA:
            t.addr("pub", "eth0", a + ("/128" if ":" in a else "/32"))
            t.route("node", a, A.PUB_V6 if ":" in a else A.PUB_203)
        t.route("pub", "default", A.NODE_PUB4)
        t.route("pub", "default", A.NODE_PUB6)

        if containers:
            for role, br, port, gw4, gw6, c4, c6 in (
                    ("ctr", "br-test", "ctr0", A.BR4, A.BR6, A.CTR4, A.CTR6),
                    ("dock", "docker0", "dock0", A.DOCKER4, A.DOCKER6, A.DOCK4, A.DOCK6)):
                t.bridge("node", br)
                t.veth("node", port, role, "eth0")
                t.enslave("node", port, br)
                t.addr("node", br, gw4 + "/16")
                t.addr("node", br, gw6 + "/64")
                t.addr(role, "eth0", c4 + "/16")
                t.addr(role, "eth0", c6 + "/64")
                t.route(role, "default", gw4)
                t.route(role, "default", gw6)
    except BaseException:
        t.destroy()
        raise
    return t


class Servers:
    """TCP echo listeners and UDP echo sockets in any namespace, served by one
    background thread. Each listens on [::] dual-stack, so one port answers
    over IPv4 and IPv6. Add everything, then start()."""

    def __init__(self):
        self.sel = selectors.DefaultSelector()
        self.socks = []
        self.rd, self.wr = os.pipe()
        self.sel.register(self.rd, selectors.EVENT_READ, ("wake", None))
        self.thread = None
        self.stopping = False

    def _sock(self, ns, kind, port):
        with inside(ns):
            s = socket.socket(socket.AF_INET6, kind)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("::", port))
        s.setblocking(False)
        self.socks.append(s)
        return s

    def tcp(self, ns, *ports):
        for port in ports:
            s = self._sock(ns, socket.SOCK_STREAM, port)
            s.listen(128)
            self.sel.register(s, selectors.EVENT_READ, ("listen", None))
        return self

    def udp(self, ns, *ports):
        for port in ports:
            s = self._sock(ns, socket.SOCK_DGRAM, port)
            self.sel.register(s, selectors.EVENT_READ, ("udp", None))
        return self

    def start(self):
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()
        return self

    def _loop(self):
        while not self.stopping:
            for key, _ in self.sel.select(1.0):
                kind = key.data[0]
                try:
                    if kind == "listen":
                        c, _ = key.fileobj.accept()
                        c.setblocking(False)
                        self.sel.register(c, selectors.EVENT_READ, ("conn", None))
                    elif kind == "conn":
                        data = key.fileobj.recv(4096)
                        if data:
                            key.fileobj.send(data)
                        else:
                            self.sel.unregister(key.fileobj)
                            key.fileobj.close()
                    elif kind == "udp":
                        data, peer = key.fileobj.recvfrom(4096)
                        key.fileobj.sendto(data, peer)
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    if kind == "conn":
                        self.sel.unregister(key.fileobj)
                        key.fileobj.close()

    def stop(self):
        self.stopping = True
        os.write(self.wr, b"x")
        if self.thread:
            self.thread.join(5)
        for key in list(self.sel.get_map().values()):
            if key.data[0] != "wake":
                key.fileobj.close()
        self.sel.close()
        os.close(self.rd)
        os.close(self.wr)


@dataclass
class Probe:
    """One flow: from namespace ns, source address src (and port sport, 0 =
    any), to dst:port over proto ("tcp" or "udp")."""
    ns: str
    src: str
    dst: str
    port: int
    proto: str = "tcp"
    sport: int = 0

    def __str__(self):
        s = "%s %s" % (self.proto, self.src)
        if self.sport:
            s += " sport %d" % self.sport
        d = "[%s]" % self.dst if ":" in self.dst else self.dst
        return "%s -> %s:%d" % (s, d, self.port)


def _classify(err):
    if err == 0:
        return ACCEPTED
    if err == errno.ECONNREFUSED:
        return REFUSED
    if err in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return UNREACHABLE
    if err in (errno.ETIMEDOUT, errno.EPERM):
        return DROPPED
    return "error " + errno.errorcode.get(err, str(err))


def _open_probe_socket(p):
    kind = socket.SOCK_STREAM if p.proto == "tcp" else socket.SOCK_DGRAM
    with inside(p.ns):
        s = socket.socket(family_of(p.dst), kind)
    s.setblocking(False)
    if p.sport:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((p.src, p.sport))
    return s


def probe(probes, timeout=1.0):
    """Runs all probes at once, returns one outcome per probe (ACCEPTED,
    DROPPED, REFUSED, UNREACHABLE or 'error ...'). TCP: a real handshake;
    UDP: a datagram that the far end must echo back. Nothing answering
    within timeout seconds counts as DROPPED."""
    sel = selectors.DefaultSelector()
    out = [None] * len(probes)
    socks = []
    try:
        for i, p in enumerate(probes):
            s = _open_probe_socket(p)
            socks.append(s)
            if p.proto == "tcp":
                err = s.connect_ex((p.dst, p.port))
                if err in (errno.EINPROGRESS, errno.EAGAIN):
                    sel.register(s, selectors.EVENT_WRITE, i)
                else:
                    out[i] = _classify(err)
            else:
                try:
                    s.connect((p.dst, p.port))
                    s.send(b"cloudviz-probe")
                    sel.register(s, selectors.EVENT_READ, i)
                except OSError as e:
                    out[i] = _classify(e.errno)
        deadline = time.monotonic() + timeout
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for key, _ in sel.select(left):
                i, s = key.data, key.fileobj
                sel.unregister(s)
                if probes[i].proto == "tcp":
                    out[i] = _classify(s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
                else:
                    try:
                        out[i] = ACCEPTED if s.recv(4096) == b"cloudviz-probe" else "error bad echo"
                    except OSError as e:
                        out[i] = _classify(e.errno)
        return [o if o is not None else DROPPED for o in out]
    finally:
        sel.close()
        for s in socks:
            s.close()


def connect(ns, src, dst, port, timeout=1.0):
    """An open TCP connection (blocking socket with timeout) or an OSError."""
    with inside(ns):
        s = socket.socket(family_of(dst), socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.bind((src, 0))
        s.connect((dst, port))
        return s
    except BaseException:
        s.close()
        raise


def echo_works(sock, payload=b"still-there", timeout=1.0):
    """True if payload sent on sock comes back from the echo server."""
    sock.settimeout(timeout)
    try:
        sock.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = sock.recv(len(payload) - len(got))
            if not chunk:
                return False
            got += chunk
        return got == payload
    except OSError:
        return False


def ping(flows, timeout=1):
    """flows: list of (ns, src, dst). Sends one ICMP/ICMPv6 echo request per
    flow, all at once. Returns ACCEPTED or DROPPED for each."""
    procs = [subprocess.Popen(["ip", "netns", "exec", ns, "ping", "-n", "-q", "-c", "1",
                               "-W", str(timeout), "-I", src, dst],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for ns, src, dst in flows]
    return [ACCEPTED if p.wait(timeout + 10) == 0 else DROPPED for p in procs]


# -- command line, for scripts/demo.sh ---------------------------------------

def _main(argv):
    import argparse
    import signal
    import sys
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sv = sub.add_parser("serve", help="TCP/UDP echo listeners in NS until killed")
    sv.add_argument("ns")
    sv.add_argument("--tcp", default="", help="comma-separated ports")
    sv.add_argument("--udp", default="", help="comma-separated ports")
    pr = sub.add_parser("probe", help="read 'NS SRC DST PORT [tcp|udp]' lines on "
                        "stdin, print each line followed by its outcome")
    pr.add_argument("--timeout", type=float, default=1.0)
    args = ap.parse_args(argv)

    if args.cmd == "serve":
        # sigwait needs the signals blocked in every thread, before any starts
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        srv = Servers()
        srv.tcp(args.ns, *[int(p) for p in args.tcp.split(",") if p])
        srv.udp(args.ns, *[int(p) for p in args.udp.split(",") if p])
        srv.start()
        print("ready", flush=True)
        signal.sigwait({signal.SIGTERM, signal.SIGINT})
        srv.stop()
        return 0
    lines = [l.split() for l in sys.stdin if l.strip()]
    probes = [Probe(l[0], l[1], l[2], int(l[3]), l[4] if len(l) > 4 else "tcp") for l in lines]
    for l, r in zip(lines, probe(probes, args.timeout)):
        print(" ".join(l[:5]), r)
    return 0


if __name__ == "__main__":
    import sys
    sys.exit(_main(sys.argv[1:]))
