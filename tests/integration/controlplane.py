"""A CloudViz control plane for the tests: the server side of
docs/control-api.md, over mutual TLS, inside a network namespace.

Python 3 standard library only (http.server, ssl, threading). Certificates
come from pki.make().

    import controlplane, pki
    paths = pki.make(tmp + "/pki", server_ips=["10.9.0.1"])
    cp = controlplane.ControlPlane(ns, "10.9.0.1", 8443, paths)
    cp.start()
    agent_json["control_api"] = cp.control_api_config()
    cp.publish(controlplane.block(["203.0.113.7"], ttl=60, reason="test"))
    rep = cp.wait_report(lambda r: r["applied"], timeout=5)
    cp.stop()

State model. The fixture keeps an append-only log of instructions;
publish() appends to it and wakes every parked long poll. A cursor is
"<instance>-<n>": the client has seen the first n entries of the log of this
fixture instance (forget_cursors() draws a new instance, so every cursor
handed out before becomes unknown, as after a server's data loss).

  GET .../instructions without cursor, or with an unknown one:
      200 {"cursor", "full": true, "instructions": snapshot}
      snapshot = one block instruction per original block instruction that
      still has live targets (not unblocked, TTL not run out since it was
      published), carrying only those targets and its original id, ttl,
      reason, incident_id and severity; then the latest lockdown instruction
      (on or off), if there ever was one.
  GET with a known cursor:
      the log entries after it at once if there are any; otherwise the
      request is parked for up to `wait` seconds (capped at 600) and
      answered 200 with what was published meanwhile, or 204.
  POST .../reports: the JSON body is kept (reports, wait_report()); 204.

Authentication: `Authorization: Bearer <token>` must carry one of the
accepted tokens (401 otherwise); the node id in the path must be node_id
(404 otherwise); with require_client_cert the TLS handshake fails for a
client without a certificate from pki ca.pem (handshake_failures).

Faults (inject(), fail_reports()) are one-shot and consumed in order by the
next GETs of instructions (reports: by the next POSTs).

Every request is recorded (requests, wait_request()) as a Request with its
arrival time (time.monotonic()), the connection it came on, the answer's
status, and the headers in RECORDED_HEADERS including Authorization, so a
test can assert what the agent sent.

Run as a script for manual runs and the demo:

    python3 tests/integration/controlplane.py --ns NS --addr A --port P --pki DIR

uses the PKI in DIR (made by pki.make() for A if there is none), prints
"ready URL", publishes every JSON line read from stdin (an instruction
object, or an array of them) and prints "published ID...", prints each
report it receives as "report JSON", and serves until SIGTERM/SIGINT.
"""

import collections
import http.server
import ipaddress
import itertools
import json
import os
import secrets
import signal
import socket
import socketserver
import ssl
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Optional

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netns  # noqa: E402
import pki  # noqa: E402

API = "/api/v1/agents/"
MAX_WAIT = 600            # seconds a long poll may be held, whatever the client asks
HANDSHAKE_TIMEOUT = 10    # seconds for the TLS handshake of a new connection
IDLE_TIMEOUT = 900        # a keep-alive connection idle this long is closed
RECORDED_HEADERS = ("Authorization", "Accept", "User-Agent", "Content-Type", "Content-Length",
                    "Transfer-Encoding", "Connection", "Expect", "Accept-Encoding")
SERVER_CERTS = ("server", "server_expired", "server_wrongname", "server_otherca")
TLS_VERSIONS = {"TLSv1_1": ssl.TLSVersion.TLSv1_1, "TLSv1_2": ssl.TLSVersion.TLSv1_2,
                "TLSv1_3": ssl.TLSVersion.TLSv1_3}

_next_id = itertools.count(1)


# -- instructions ----------------------------------------------------------------

def new_id():
    """A fresh instruction id, unique within this process ("ins-<n>")."""
    return "ins-%d" % next(_next_id)


def _without_none(d):
    return {k: v for k, v in d.items() if v is not None}


def block(targets, ttl=None, id=None, reason=None, incident_id=None, severity=None, **extra):
    """A block instruction (a dict). Fields left None are omitted; extra keys
    are added as given (e.g. an unknown key, to test forward compatibility)."""
    return _without_none(dict(id=id or new_id(), action="block", targets=list(targets), ttl=ttl,
                              reason=reason, incident_id=incident_id, severity=severity, **extra))


def unblock(targets, id=None, **extra):
    """An unblock instruction."""
    return _without_none(dict(id=id or new_id(), action="unblock", targets=list(targets),
                              **extra))


def lockdown(enabled, id=None, incident_id=None, **extra):
    """A lockdown instruction switching lockdown on (True) or off (False)."""
    return _without_none(dict(id=id or new_id(), action="lockdown", enabled=enabled,
                              incident_id=incident_id, **extra))


def bulk_targets(n, v6_every=4):
    """n distinct single-address targets that pass every check of the agent:
    public-looking IPv4 from 45.0.0.0/8 and IPv6 from 2a00::/16 (every
    v6_every-th one; 0: IPv4 only). No two are adjacent, so each stays its
    own element in the kernel's interval sets. Returns the list of strings,
    canonical as Python's ipaddress prints them."""
    out = []
    v4 = v6 = 0
    for i in range(n):
        if v6_every and i % v6_every == v6_every - 1:
            out.append("2a00:%x:%x::1" % (1 + v6 // 0xffff, 1 + v6 % 0xffff))
            v6 += 1
        else:
            a = (45 << 24) + 2 * v4 + 1
            out.append("%d.%d.%d.%d" % (a >> 24, a >> 16 & 255, a >> 8 & 255, a & 255))
            v4 += 1
    if v4 > (1 << 23):
        raise ValueError("bulk_targets: more than 8M IPv4 targets")
    return out


def _target_key(t):
    """What makes two targets the same prefix (the fixture's unblock and
    snapshot work on these): the normalised network, or the raw value for
    something that is no address (the agent rejects those)."""
    try:
        return str(ipaddress.ip_network(t))
    except (ValueError, TypeError):
        return repr(t)


def _bulk_key(t):
    # bulk_targets() output is canonical: the same key as _target_key, fast
    return t + ("/128" if ":" in t else "/32")


# -- recorded traffic ----------------------------------------------------------------

@dataclass
class Request:
    """One HTTP request as the fixture saw it."""
    t: float                       # time.monotonic() when its headers had arrived
    method: str
    path: str                      # without the query
    query: dict                    # {"cursor": ..., "wait": ...}: first value of each key
    headers: dict                  # the RECORDED_HEADERS present, by those names
    client_subject: Optional[str]  # "CN=t1" of the client certificate, None without one
    conn: int                      # connection number: equal for requests on one connection
    status: Optional[int] = None   # the answer's status once sent; 0: closed without answer
    fault: Optional[str] = None    # the injected fault that answered it, if any
    body: object = None            # POST: the parsed JSON (or the raw bytes if not JSON)
    answered: Optional[float] = None  # time.monotonic() when the answer was written


@dataclass
class HandshakeFailure:
    t: float
    peer: tuple
    error: str


@dataclass
class Fault:
    """One injected misbehaviour; see ControlPlane.inject()."""
    status: Optional[int] = None
    body: Optional[bytes] = None
    content_type: str = "application/json"
    delay: float = 0.0
    truncate: bool = False
    oversize: Optional[int] = None
    close: bool = False
    chunked: bool = False
    hold: bool = False

    def kind(self):
        parts = [k for k in ("close", "truncate", "chunked", "hold") if getattr(self, k)]
        if self.delay:
            parts.append("delay=%g" % self.delay)
        if self.oversize is not None:
            parts.append("oversize=%d" % self.oversize)
        if self.body is not None:
            parts.append("body")
        if self.status is not None:
            parts.append("status=%d" % self.status)
        return ",".join(parts)


@dataclass
class Mark:
    """Positions in the request and report lists (ControlPlane.mark())."""
    requests: int = 0
    reports: int = 0


@dataclass
class _Entry:
    instr: dict
    keys: list = field(default_factory=list)  # _target_key of each target, in order
    t: float = 0.0                             # time.monotonic() of publication


# -- the HTTPS server -------------------------------------------------------------------

_RDN_NAMES = {"commonName": "CN", "organizationName": "O"}


def _subject(cert):
    """getpeercert()'s subject as "CN=t1" ("O=...,CN=..."), or None."""
    if not cert:
        return None
    return ",".join("%s=%s" % (_RDN_NAMES.get(k, k), v)
                    for rdn in cert.get("subject", ()) for k, v in rdn)


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() shuts the connections down itself
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, cp, ctx, addr, port):
        self.address_family = netns.family_of(addr)
        self.cp, self.ctx = cp, ctx
        self.stopped = threading.Event()
        self.conns = set()
        self.conns_lock = threading.Lock()
        super().__init__((addr, port), _Handler, bind_and_activate=False)

    def server_bind(self):
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        # not HTTPServer.server_bind: its getfqdn() is a reverse DNS lookup
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def finish_request(self, request, client_address):
        """The TLS handshake runs here, in the connection's own thread, so a
        slow or failing client never holds up accept()."""
        request.settimeout(HANDSHAKE_TIMEOUT)
        try:
            conn = self.ctx.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
        except OSError:
            request.close()
            return
        with self.conns_lock:
            if self.stopped.is_set():
                conn.close()
                return
            self.conns.add(conn)
        try:
            try:
                conn.do_handshake()
            except (OSError, ValueError) as e:
                self.cp._handshake_failed(client_address, e)
                return
            conn.settimeout(IDLE_TIMEOUT)
            _Handler(conn, client_address, self)
        except (OSError, ValueError):
            pass  # the client went away, or stop() shut the connection down
        finally:
            with self.conns_lock:
                self.conns.discard(conn)
            conn.close()

    def drop_connections(self):
        """Shuts every open connection down (no TLS close_notify), so their
        peers see the server go away at once."""
        with self.conns_lock:
            conns = list(self.conns)
        for c in conns:
            _shutdown(c)


def _shutdown(sock):
    # the plain socket's shutdown: SSLSocket.shutdown() would also unhook the
    # TLS state under the feet of the thread that serves the connection
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive
    server_version = "cvz-control-fixture/1"
    sys_version = ""
    disable_nagle_algorithm = True  # answers leave at once: latency is measured

    req = None  # the Request being answered

    def setup(self):
        super().setup()
        self.cp = self.server.cp
        self.conn_id = self.cp._new_conn_id()
        self.subject = _subject(self.request.getpeercert())

    def version_string(self):
        return self.server_version

    def do_GET(self):
        self.cp._serve(self, "GET")

    def do_POST(self):
        self.cp._serve(self, "POST")

    def log_message(self, fmt, *args):
        if self.cp.verbose:
            sys.stderr.write("controlplane: %s %s\n" % (self.address_string(), fmt % args))


# -- the control plane ----------------------------------------------------------------

class ControlPlane:
    """The fixture. All methods are thread-safe.

    ns: network namespace name (None: this process's own); addr, port: where
    to listen (IPv4 or IPv6 literal; port 0 picks one, kept across
    restart()); pki_paths: pki.make()'s dict; node_id: the only node id
    served; token: the accepted bearer token(s), a str or a list (default:
    the content of pki_paths["token"]); server_cert: which certificate of
    the PKI the server presents, one of SERVER_CERTS; require_client_cert:
    mutual TLS against pki ca.pem; tls_max_version: None, "TLSv1_1" (a
    TLS 1.0/1.1-only server), "TLSv1_2" or "TLSv1_3"; ciphers: an OpenSSL
    cipher string for TLS <= 1.2 (TLS 1.3 suites are unaffected: combine
    with tls_max_version="TLSv1_2" to offer only these); prefix: a path
    prefix before /api/v1 (as in a control_api.url with a path); verbose:
    log each request to stderr.

    Changing server_cert, require_client_cert, tls_max_version or ciphers
    takes effect at the next start() or restart(**changes).
    """

    def __init__(self, ns, addr, port, pki_paths, node_id="t1", token=None, server_cert="server",
                 require_client_cert=True, tls_max_version=None, ciphers=None, prefix="",
                 verbose=False):
        self.ns, self.addr, self.port = ns, addr, port
        self.pki = pki_paths
        self.node_id = node_id
        if token is None:
            token = pki.read_token(pki_paths["token"])
        self.tokens = [token] if isinstance(token, str) else list(token)
        self.server_cert = server_cert
        self.require_client_cert = require_client_cert
        self.tls_max_version = tls_max_version
        self.ciphers = ciphers
        self.prefix = prefix.rstrip("/")
        self.verbose = verbose
        self.instance = secrets.token_hex(4)
        self.published_at = {}   # instruction id -> time.monotonic() of its publication
        self._cv = threading.Condition()
        self._log = []
        self._requests = []
        self._reports = []
        self._handshake_failures = []
        self._faults = collections.deque()
        self._report_failures = 0
        self._parked = 0
        self._held = 0
        self._releases = 0
        self._conn_ids = itertools.count(1)
        self._server = None
        self._thread = None

    # -- lifecycle

    @property
    def url(self):
        """The control_api.url for the agent: https://ADDR:PORT[prefix]."""
        host = "[%s]" % self.addr if ":" in self.addr else self.addr
        return "https://%s:%d%s" % (host, self.port, self.prefix)

    def control_api_config(self, **overrides):
        """The agent.json "control_api" object for this fixture and its PKI
        (client cert, key, token); overrides are added or replace keys."""
        c = {"url": self.url, "ca_file": self.pki["ca"], "cert_file": self.pki["client"],
             "key_file": self.pki["client_key"], "token_file": self.pki["token"]}
        c.update(overrides)
        return c

    def _context(self):
        if self.server_cert not in SERVER_CERTS:
            raise ValueError("server_cert must be one of %s" % (SERVER_CERTS,))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.pki[self.server_cert], self.pki[self.server_cert + "_key"])
        if self.require_client_cert:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(self.pki["ca"])
        if self.tls_max_version == "TLSv1_1":
            # OpenSSL 3 refuses TLS < 1.2 at its default security level
            ctx.set_ciphers("ALL:@SECLEVEL=0")
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        elif self.tls_max_version is not None:
            ctx.maximum_version = TLS_VERSIONS[self.tls_max_version]
        if self.ciphers:
            ctx.set_ciphers(self.ciphers)
        return ctx

    def start(self):
        """Listens and serves in a background thread; returns self."""
        assert self._server is None, "already started"
        ctx = self._context()
        if self.ns is None:
            srv = _Server(self, ctx, self.addr, self.port)
        else:
            with netns.inside(self.ns):
                srv = _Server(self, ctx, self.addr, self.port)
        try:
            srv.server_bind()
            srv.server_activate()
        except BaseException:
            srv.server_close()
            raise
        self.port = srv.server_address[1]
        self._server = srv
        self._thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="controlplane-%d" % self.port, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Closes the listener and every open connection (without answering
        parked long polls), so the agent sees the server go down. The state
        (log, cursors, reports, requests) is kept for restart()."""
        srv, self._server = self._server, None
        if srv is None:
            return
        with self._cv:
            srv.stopped.set()
            self._cv.notify_all()
        srv.shutdown()
        srv.drop_connections()
        srv.server_close()
        deadline = time.monotonic() + 5
        while srv.conns and time.monotonic() < deadline:
            time.sleep(0.01)
        self._thread.join(5)
        self._thread = None

    def restart(self, **changes):
        """stop(), apply changes (server_cert=..., require_client_cert=...,
        tls_max_version=..., ciphers=..., tokens=[...]), start() on the same
        port."""
        self.stop()
        for k, v in changes.items():
            if not hasattr(self, k):
                raise AttributeError(k)
            setattr(self, k, v)
        return self.start()

    @property
    def running(self):
        return self._server is not None

    def set_tokens(self, *tokens):
        """Replaces the accepted bearer tokens (rotation), effective at once."""
        with self._cv:
            self.tokens = list(tokens)

    # -- the instruction log

    def publish(self, *instrs):
        """Appends instructions (dicts, sent as given) to the log, stamps each
        id in published_at, wakes parked long polls. Returns the ids."""
        return self._append([(dict(i), [_target_key(t) for t in i["targets"]]
                              if isinstance(i.get("targets"), list) else []) for i in instrs])

    def publish_bulk(self, n_targets, per_instruction=1000, v6_every=4, **fields):
        """Publishes block instructions covering bulk_targets(n_targets),
        per_instruction targets each (fields: ttl, reason, ... as for
        block()). Returns the ids."""
        targets = bulk_targets(n_targets, v6_every)
        batch = []
        for i in range(0, len(targets), per_instruction):
            chunk = targets[i:i + per_instruction]
            batch.append((block(chunk, **fields), [_bulk_key(t) for t in chunk]))
        return self._append(batch)

    def _append(self, batch):
        now = time.monotonic()
        with self._cv:
            for instr, keys in batch:
                self._log.append(_Entry(instr, keys, now))
                if "id" in instr:
                    self.published_at[instr["id"]] = now
            self._cv.notify_all()
        return [instr.get("id") for instr, _ in batch]

    def forget_cursors(self):
        """Every cursor handed out so far becomes unknown: the next GET of
        each client gets a full snapshot (a server that lost its state)."""
        with self._cv:
            self.instance = secrets.token_hex(4)
            self._cv.notify_all()

    @property
    def cursor(self):
        """The cursor a client holds once it has seen everything published."""
        with self._cv:
            return "%s-%d" % (self.instance, len(self._log))

    def _position(self, cursor):
        """How many log entries a client holding cursor has seen, or None if
        the cursor is not one of this instance (caller holds _cv)."""
        inst, _, n = (cursor or "").rpartition("-")
        if inst != self.instance or not n.isdigit():
            return None
        n = int(n)
        return n if n <= len(self._log) else None

    def snapshot(self):
        """The instructions of a full answer now (see the module docstring)."""
        with self._cv:
            return self._snapshot_locked()

    def _snapshot_locked(self):
        now = time.monotonic()
        active = {}      # target key -> (expiry, log index of the block that holds it)
        last_lockdown = None
        for i, e in enumerate(self._log):
            action = e.instr.get("action")
            if action == "block":
                ttl = e.instr.get("ttl") or 0
                expiry = e.t + ttl if isinstance(ttl, (int, float)) and ttl > 0 else float("inf")
                for k in e.keys:
                    # a later block never shortens an entry, as in the agent
                    if k not in active or active[k][0] <= expiry:
                        active[k] = (expiry, i)
            elif action == "unblock":
                for k in e.keys:
                    active.pop(k, None)
            elif action == "lockdown":
                last_lockdown = e.instr
        holders = collections.defaultdict(list)
        for k, (expiry, i) in active.items():
            if expiry > now:
                holders[i].append(k)
        out = []
        for i in sorted(holders):
            e = self._log[i]
            live = set(holders[i])
            instr = dict(e.instr)
            instr["targets"] = [t for t, k in zip(e.instr["targets"], e.keys) if k in live]
            out.append(instr)
        if last_lockdown is not None:
            out.append(dict(last_lockdown))
        return out

    def active_targets(self):
        """The keys (normalised "addr/len") of the targets a snapshot holds."""
        return sorted(_target_key(t) for i in self.snapshot() if i.get("action") == "block"
                      for t in i["targets"])

    @property
    def lockdown(self):
        """Whether the latest lockdown instruction in the log enabled it."""
        with self._cv:
            for e in reversed(self._log):
                if e.instr.get("action") == "lockdown":
                    return bool(e.instr.get("enabled"))
        return False

    def snapshot_payload(self, n_targets, cursor="bench-0", per_instruction=1000, v6_every=4,
                         **fields):
        """The bytes of a full answer holding bulk_targets(n_targets) in
        block instructions of per_instruction targets, independent of the
        log (to time parsing, or to serve with inject(body=...))."""
        targets = bulk_targets(n_targets, v6_every)
        instrs = [block(targets[i:i + per_instruction], **fields)
                  for i in range(0, len(targets), per_instruction)]
        return json.dumps({"cursor": cursor, "full": True, "instructions": instrs}).encode()

    # -- faults

    def inject(self, status=None, body=None, content_type="application/json", delay=0.0,
               truncate=False, oversize=None, close=False, chunked=False, hold=False, times=1):
        """Queues a fault for the next GET of instructions (times: for that
        many GETs). One of:
          status=500             that status, a short JSON error body
          body=b"...", status=200, content_type=...   exactly that answer
          delay=seconds          hold the request, then answer normally
                                 (combines with the others: delay, then fault)
          truncate=True          the normal answer's headers with the full
                                 Content-Length, half its body, then close
          oversize=n             200 with a valid-looking JSON body of exactly n
                                 bytes (an empty delta padded by an unknown key)
          close=True             close the connection without answering
          hold=True              hold the request until release_held() (or
                                 stop()), then answer normally: what a test
                                 checks stays still as long as it needs, not
                                 for a delay that a slow machine outlasts
        chunked=True sends the body with Transfer-Encoding: chunked instead of
        Content-Length (the client cannot know its size in advance)."""
        f = Fault(status, body.encode() if isinstance(body, str) else body, content_type, delay,
                  truncate, oversize, close, chunked, hold)
        with self._cv:
            self._faults.extend([f] * times)

    @property
    def held(self):
        """How many GETs a hold fault is holding right now."""
        with self._cv:
            return self._held

    def wait_held(self, n=1, timeout=5.0):
        """Waits until at least n GETs are held; True then."""
        with self._cv:
            return self._cv.wait_for(lambda: self._held >= n, timeout)

    def release_held(self):
        """Lets every GET held by a hold fault go on (to its normal answer)."""
        with self._cv:
            self._releases += 1
            self._cv.notify_all()

    def clear_faults(self):
        with self._cv:
            self._faults.clear()
            self._report_failures = 0

    def fail_reports(self, n):
        """The next n POSTs of reports are answered 500 (and not kept)."""
        with self._cv:
            self._report_failures = n

    # -- what was received

    def mark(self):
        """The current ends of the request and report lists, for since=."""
        with self._cv:
            return Mark(len(self._requests), len(self._reports))

    @property
    def requests(self):
        with self._cv:
            return list(self._requests)

    @property
    def reports(self):
        """The parsed bodies of the reports accepted so far, in order."""
        with self._cv:
            return list(self._reports)

    @property
    def handshake_failures(self):
        """HandshakeFailure records: TLS handshakes the server refused or lost."""
        with self._cv:
            return list(self._handshake_failures)

    @property
    def unauthorized(self):
        """The requests answered 401."""
        return [r for r in self.requests if r.status == 401]

    @property
    def parked(self):
        """How many GETs are parked in a long poll right now."""
        with self._cv:
            return self._parked

    def _wait_for(self, seq_name, start, pred, timeout):
        deadline = time.monotonic() + timeout
        with self._cv:
            i = start
            while True:
                seq = getattr(self, seq_name)
                for item in seq[i:]:
                    if pred is None or pred(item):
                        return item
                i = len(seq) if seq_name == "_reports" else i  # requests change status
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cv.wait(left)

    def wait_report(self, pred=None, timeout=5.0, since=None):
        """The first report (parsed JSON) after mark since (default: the
        first ever) for which pred(report) is true (None: any), waiting up
        to timeout seconds for it; None on timeout."""
        return self._wait_for("_reports", since.reports if since else 0, pred, timeout)

    def wait_request(self, pred=None, timeout=5.0, since=None):
        """Like wait_report() over Request records. A request is recorded
        when its headers have arrived and updated when answered: wait for
        lambda r: r.status is not None to see the answer."""
        return self._wait_for("_requests", since.requests if since else 0, pred, timeout)

    def wait_parked(self, n=1, timeout=5.0):
        """Waits until at least n GETs are parked in a long poll; True then."""
        with self._cv:
            return self._cv.wait_for(lambda: self._parked >= n, timeout)

    # -- serving (called from the connection threads)

    def _new_conn_id(self):
        return next(self._conn_ids)

    def _handshake_failed(self, peer, err):
        with self._cv:
            self._handshake_failures.append(HandshakeFailure(time.monotonic(), peer, str(err)))
            self._cv.notify_all()

    def _serve(self, h, method):
        url = urllib.parse.urlsplit(h.path)
        query = {k: v[0] for k, v in
                 urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        req = Request(time.monotonic(), method, url.path, query,
                      {k: h.headers[k] for k in RECORDED_HEADERS if k in h.headers},
                      h.subject, h.conn_id)
        with self._cv:
            self._requests.append(req)
            self._cv.notify_all()
        h.req = req
        try:
            self._route(h, req, method, url.path)
        finally:
            h.req = None
            if req.status is None:  # closed without an answer
                self._answered(req, 0)

    def _answered(self, req, status):
        with self._cv:
            req.status = status
            req.answered = time.monotonic()
            self._cv.notify_all()

    def _route(self, h, req, method, path):
        body = None
        if method == "POST":
            body = _read_body(h)
            if body is None:
                return _send(h, 411, b'{"error":"Content-Length required"}')
        if h.headers.get("Authorization") not in ["Bearer " + t for t in self.tokens]:
            return _send(h, 401, b'{"error":"unauthorized"}',
                         headers=[("WWW-Authenticate", 'Bearer realm="cloudviz"')])
        base = self.prefix + API
        node, _, what = path[len(base):].partition("/") if path.startswith(base) else ("", "", "")
        if what not in ("instructions", "reports") or urllib.parse.unquote(node) != self.node_id:
            return _send(h, 404, b'{"error":"not found"}')
        if (what, method) == ("instructions", "GET"):
            return self._instructions(h, req)
        if (what, method) == ("reports", "POST"):
            return self._report(h, req, body)
        return _send(h, 405, b'{"error":"method not allowed"}',
                     headers=[("Allow", "GET" if what == "instructions" else "POST")])

    def _instructions(self, h, req):
        with self._cv:
            fault = self._faults.popleft() if self._faults else None
        if fault:
            req.fault = fault.kind()
            if fault.delay and h.server.stopped.wait(fault.delay):
                return _drop(h)
            if fault.close:
                return _drop(h)
            if fault.hold:
                with self._cv:
                    gen = self._releases
                    self._held += 1
                    self._cv.notify_all()
                    try:
                        self._cv.wait_for(lambda: h.server.stopped.is_set()
                                          or self._releases != gen)
                    finally:
                        self._held -= 1
                if h.server.stopped.is_set():
                    return _drop(h)
            if fault.oversize is not None:
                return _send(h, 200, _padded(fault.oversize, self.cursor), chunked=fault.chunked)
            if fault.body is not None:
                return _send(h, fault.status or 200, fault.body, fault.content_type,
                             chunked=fault.chunked)
            if fault.status is not None:
                return _send(h, fault.status, b'{"error":"injected"}', chunked=fault.chunked)
        try:
            wait = min(max(float(req.query.get("wait", "0")), 0.0), MAX_WAIT)
        except ValueError:
            return _send(h, 400, b'{"error":"bad wait"}')
        answer = self._answer(h.server, req.query.get("cursor"), wait)
        if answer is None:
            return _drop(h)
        if answer is False:
            return _send(h, 204)
        body = json.dumps(answer).encode()
        if fault and fault.truncate:
            _send(h, 200, body[:len(body) // 2], length=len(body))
            return _drop(h)
        return _send(h, 200, body, chunked=bool(fault and fault.chunked))

    def _answer(self, srv, cursor, wait):
        """The reply object, False for 204, None when the server is stopping."""
        with self._cv:
            n = self._position(cursor)
            if n is not None and n == len(self._log) and wait > 0:
                self._parked += 1
                try:
                    self._cv.wait_for(lambda: srv.stopped.is_set() or len(self._log) > n
                                      or self._position(cursor) is None, wait)
                finally:
                    self._parked -= 1
            if srv.stopped.is_set():
                return None
            n = self._position(cursor)
            cur = "%s-%d" % (self.instance, len(self._log))
            if n is None:
                return {"cursor": cur, "full": True, "instructions": self._snapshot_locked()}
            if n == len(self._log):
                return False
            return {"cursor": cur, "full": False,
                    "instructions": [dict(e.instr) for e in self._log[n:]]}

    def _report(self, h, req, body):
        try:
            req.body = json.loads(body)
        except ValueError:
            req.body = body
        with self._cv:
            if self._report_failures > 0:
                self._report_failures -= 1
                req.fault = "report failure"
                fail = True
            else:
                fail = False
                if not isinstance(req.body, bytes):
                    self._reports.append(req.body)
                    self._cv.notify_all()
        if fail:
            return _send(h, 500, b'{"error":"injected"}')
        if isinstance(req.body, bytes):
            return _send(h, 400, b'{"error":"not JSON"}')
        return _send(h, 204)


def _read_body(h):
    n = h.headers.get("Content-Length")
    if n is None or not n.isdigit():
        return None
    n = int(n)
    chunks = []
    while n > 0:
        c = h.rfile.read(min(n, 1 << 16))
        if not c:
            raise ConnectionError("client closed in the body")
        chunks.append(c)
        n -= len(c)
    return b"".join(chunks)


def _send(h, status, body=b"", content_type="application/json", chunked=False, length=None,
          headers=()):
    """Writes one answer; returns status. length overrides Content-Length.
    The request's record shows the status before the client can see it."""
    if h.req is not None:
        h.cp._answered(h.req, status)
    h.send_response(status)
    if status != 204:
        h.send_header("Content-Type", content_type)
        if chunked:
            h.send_header("Transfer-Encoding", "chunked")
        else:
            h.send_header("Content-Length", str(len(body) if length is None else length))
    for k, v in headers:
        h.send_header(k, v)
    h.end_headers()
    if status == 204:
        return status
    if chunked:
        for i in range(0, len(body), 1 << 16):
            piece = body[i:i + (1 << 16)]
            h.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        h.wfile.write(b"0\r\n\r\n")
    else:
        h.wfile.write(body)
    return status


def _drop(h):
    """Closes the connection without (the rest of) an answer; status 0."""
    h.close_connection = True
    try:
        h.wfile.flush()
    except OSError:
        pass
    _shutdown(h.request)
    return 0


def _padded(size, cursor):
    """A well-formed empty delta of exactly size bytes (at least 80)."""
    head = '{"cursor":"%s","full":false,"instructions":[],"padding":"' % cursor
    tail = '"}'
    pad = size - len(head) - len(tail)
    if pad < 0:
        raise ValueError("oversize: at least %d bytes" % (len(head) + len(tail)))
    return (head + "x" * pad + tail).encode()


# -- as a script --------------------------------------------------------------------

def _main(argv):
    import argparse
    ap = argparse.ArgumentParser(description="CloudViz control-plane test fixture: serves "
                                 "until SIGTERM, publishes JSON instruction lines from stdin")
    ap.add_argument("--ns", help="network namespace to listen in (default: this one)")
    ap.add_argument("--addr", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pki", required=True, help="PKI directory (made if missing)")
    ap.add_argument("--node-id", default="t1")
    ap.add_argument("--prefix", default="")
    ap.add_argument("--server-cert", default="server", choices=SERVER_CERTS)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)

    # sigwait needs the signals blocked in every thread, before any starts
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    paths = pki.load(args.pki) or pki.make(args.pki, [args.addr], args.node_id)
    cp = ControlPlane(args.ns, args.addr, args.port, paths, node_id=args.node_id,
                      server_cert=args.server_cert, prefix=args.prefix, verbose=args.verbose)
    cp.start()
    out_lock = threading.Lock()

    def say(*words):
        with out_lock:
            print(*words, flush=True)

    def read_stdin():
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                v = json.loads(line)
                ids = cp.publish(*(v if isinstance(v, list) else [v]))
                say("published", " ".join(str(i) for i in ids))
            except (ValueError, AttributeError) as e:
                say("error: not an instruction or a JSON array of them: %s" % e)

    def print_reports():
        n = 0
        while True:
            rep = cp.wait_report(timeout=3600, since=Mark(0, n))
            if rep is not None:
                n += 1
                say("report", json.dumps(rep, separators=(",", ":")))

    threading.Thread(target=read_stdin, daemon=True).start()
    threading.Thread(target=print_reports, daemon=True).start()
    say("ready", cp.url)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    cp.stop()
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
