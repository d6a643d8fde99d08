"""Shared plumbing for the integration tests: per-assertion reporting, the
agent and nft wrappers, policy files, kernel-log access.

A test script is

    import harness
    def body(r, tmp, cleanups):  # Report, a private temp dir, Cleanups
        ...
    harness.main("test_name", body)

main() exits 77 (skip) when not root, 1 when an assertion failed or the body
raised, 0 otherwise, and runs every registered cleanup even on failure,
SIGTERM or SIGINT. main(..., journald=True) runs the test under with-journald.

For the daemon tests: Daemon (`cloudviz-agent run` in a namespace, its
control socket, stop/kill by pid) and Journal (the agent's entries in the
private journal, and checks of their fields against docs/audit-events.md).
"""

import contextlib
import copy
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

import netns

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
EXAMPLES = os.path.join(REPO, "policy", "examples")
GOLDEN = os.path.join(HERE, "golden")
AGENT = os.environ.get("CVZ_AGENT") or os.path.join(REPO, "build", "cloudviz-agent")
WITH_JOURNALD = os.path.join(HERE, "with-journald")
JOURNALD = "/lib/systemd/systemd-journald"
SKIP_EXIT = 77


class Report:
    """Prints one line per assertion and counts them."""

    def __init__(self, name):
        self.name = name
        self.passed = self.failed = self.skipped = 0

    def section(self, title):
        print("\n== %s" % title, flush=True)

    def check(self, cond, what, detail=""):
        if cond:
            self.passed += 1
            print("  ok    %s" % what, flush=True)
        else:
            self.failed += 1
            print("  FAIL  %s" % what, flush=True)
            for line in str(detail).rstrip().splitlines():
                print("          %s" % line, flush=True)
        return bool(cond)

    def expect(self, what, got, want):
        shown = "%s: %s" % (what, want) if isinstance(want, str) and want else what
        return self.check(got == want, shown, "expected %r, got %r" % (want, got))

    def equal_text(self, what, got, want):
        """Byte-for-byte text comparison with a unified diff on failure."""
        if got == want:
            return self.check(True, what)
        import difflib
        diff = "".join(difflib.unified_diff(want.splitlines(True), got.splitlines(True),
                                            "expected", "actual"))
        return self.check(False, what, diff or "(differs only in trailing newline)")

    def skip(self, what, why):
        self.skipped += 1
        print("  SKIP  %s: %s" % (what, why), flush=True)

    def summary(self):
        """The human summary, then the line tests/run-all.sh reads: a test
        that exits 0 without it, with zero passed assertions, or (in strict
        mode) with a skipped assertion not on tests/skip-allowlist fails."""
        s = "%s: %d ok, %d failed" % (self.name, self.passed, self.failed)
        if self.skipped:
            s += ", %d skipped" % self.skipped
        print("\n" + s, flush=True)
        print("assertions: %d passed, %d failed, %d skipped"
              % (self.passed, self.failed, self.skipped), flush=True)


class Cleanups:
    """LIFO list of cleanup callables; run() runs each once, ignoring errors."""

    def __init__(self):
        self.fns = []

    def add(self, fn, *args):
        self.fns.append((fn, args))
        return fn

    def run(self):
        while self.fns:
            fn, args = self.fns.pop()
            try:
                fn(*args)
            except Exception:
                traceback.print_exc()


def _raise_exit(signum, frame):
    raise SystemExit(128 + signum)


def main(name, body, journald=False):
    """journald=True: the test reads the journal, so it re-executes itself
    through with-journald (a private mount namespace with its own
    systemd-journald) unless it already runs there."""
    r = Report(name)
    if os.geteuid() != 0:
        print("SKIP %s: needs root (network namespaces, nftables)" % name)
        sys.exit(SKIP_EXIT)
    tools = ("ip", "nft", "ping", "sysctl") + (("journalctl", "unshare") if journald else ())
    for tool in tools:
        if shutil.which(tool) is None:
            print("SKIP %s: %s not installed" % (name, tool))
            sys.exit(SKIP_EXIT)
    if not (os.path.isfile(AGENT) and os.access(AGENT, os.X_OK)):
        print("FAIL %s: agent binary %s not found (run make, or set CVZ_AGENT)" % (name, AGENT))
        sys.exit(1)
    if journald and os.environ.get("CVZ_IN_JOURNALD_NS") != "1":
        if not os.access(JOURNALD, os.X_OK):
            print("SKIP %s: %s not installed" % (name, JOURNALD))
            sys.exit(SKIP_EXIT)
        sys.stdout.flush()
        os.execv(WITH_JOURNALD, [WITH_JOURNALD, sys.executable, os.path.abspath(sys.argv[0])]
                 + sys.argv[1:])
    signal.signal(signal.SIGTERM, _raise_exit)
    signal.signal(signal.SIGHUP, _raise_exit)
    cleanups = Cleanups()
    tmp = tempfile.mkdtemp(prefix="cvz-%s-" % name)
    cleanups.add(shutil.rmtree, tmp, True)
    print("%s: agent %s" % (name, AGENT), flush=True)
    crashed = False
    try:
        body(r, tmp, cleanups)
    except BaseException as e:
        crashed = True
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            print("\n%s: interrupted (%s)" % (name, type(e).__name__))
        else:
            print("\n%s: test raised an exception:" % name)
            traceback.print_exc(file=sys.stdout)
    finally:
        cleanups.run()
    r.summary()
    sys.exit(1 if crashed or r.failed else 0)


def topology(cleanups, tag="", containers=True):
    t = netns.build_topology(tag, containers)
    cleanups.add(t.destroy)
    return t


def namespaces(cleanups, *roles):
    """Bare namespaces (only lo, up) for tests that need no traffic."""
    t = netns.Topology()
    cleanups.add(t.destroy)
    for role in roles:
        t.add_ns(role)
    return t


def netns_etc(cleanups, ns, files):
    """Per-namespace /etc files: writes /etc/netns/NS/NAME for each NAME ->
    text of files; `ip netns exec NS` (how Daemon starts the agent) mounts
    each over /etc/NAME for what it runs (ip-netns(8)), so a test gets its
    own resolv.conf or hosts without touching the host's. Removed by
    cleanups."""
    top = "/etc/netns"
    made_top = not os.path.isdir(top)
    d = os.path.join(top, ns)
    os.makedirs(d, exist_ok=True)

    def remove():
        shutil.rmtree(d, ignore_errors=True)
        if made_top:
            try:
                os.rmdir(top)
            except OSError:
                pass
    cleanups.add(remove)
    for name, text in files.items():
        with open(os.path.join(d, name), "w") as f:
            f.write(text)


def servers(cleanups):
    s = netns.Servers()
    cleanups.add(s.stop)
    return s


# -- the agent and nft -------------------------------------------------------

def agent(*args, ns=None, input=None):
    """Runs the agent (in ns when given); returns the CompletedProcess."""
    return netns.run([AGENT] + [str(a) for a in args], ns=ns, check=False, input=input)


def nft(ns, *args, input=None, check=True):
    return netns.run(["nft"] + list(args), ns=ns, check=check, input=input)


def ruleset(ns, stateless=False):
    """`nft list ruleset` in ns; stateless: without counter values (`nft -s`),
    for comparisons that must not depend on stray packets."""
    return nft(ns, *(("-s",) if stateless else ()), "list", "ruleset").stdout


def table(ns):
    """`nft list table inet cloudviz` in ns, or None if there is none."""
    p = nft(ns, "list", "table", "inet", "cloudviz", check=False)
    return p.stdout if p.returncode == 0 else None


def describe(p):
    """A CompletedProcess as text for a failure message."""
    return "exit %d\nstdout:\n%s\nstderr:\n%s" % (p.returncode, p.stdout, p.stderr)


def example(name):
    return os.path.join(EXAMPLES, name)


def load_policy(name):
    with open(example(name)) as f:
        return json.load(f)


def write_policy(tmp, filename, policy):
    """Writes policy (a dict, or a str written verbatim) to tmp/filename."""
    path = os.path.join(tmp, filename)
    with open(path, "w") as f:
        if isinstance(policy, str):
            f.write(policy)
        else:
            json.dump(policy, f, indent=2)
            f.write("\n")
    return path


def permissive_policy():
    """Accept everything, but track connections (so conntrack is active in the
    namespace). Derived from the node example so it has the same shape."""
    p = copy.deepcopy(load_policy("cloudviz-node.json"))
    del p["log_dropped"]  # nothing is dropped, so nothing to log
    for c in p["chains"].values():
        c["policy"] = "accept"
        c["rules"] = [{"comment": "keep conntrack on", "ct_state": ["established", "related"],
                       "action": "accept"}]
    return p


# -- kernel log ---------------------------------------------------------------

NF_LOG_ALL_NETNS = "/proc/sys/net/netfilter/nf_log_all_netns"
NF_LOG_STATE = "/run/cvzt-nflog"  # holders/<pid>, original, lock


def _live_holders():
    holders = os.path.join(NF_LOG_STATE, "holders")
    alive = []
    for name in os.listdir(holders):
        if name.isdigit() and netns.pid_alive(int(name)):
            alive.append(name)
        else:
            os.unlink(os.path.join(holders, name))  # a run that died without cleaning up
    return alive


@contextlib.contextmanager
def kernel_log_from_netns(r):
    """The kernel only logs packets from non-init namespaces to the ring
    buffer when the global nf_log_all_netns is 1: set it for the body and put
    the old value back afterwards. Parallel test runs share it, so the first
    one in saves the original value and the last one out restores it (a
    holder file per pid under /run/cvzt-nflog, guarded by flock). Yields True
    if logging from namespaces is on."""
    import fcntl
    try:
        os.makedirs(os.path.join(NF_LOG_STATE, "holders"), exist_ok=True)
        lock = open(os.path.join(NF_LOG_STATE, "lock"), "a")
    except OSError as e:
        r.skip("enable nf_log_all_netns", str(e))
        yield False
        return
    original = os.path.join(NF_LOG_STATE, "original")
    me = os.path.join(NF_LOG_STATE, "holders", str(os.getpid()))
    on = False
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(NF_LOG_ALL_NETNS) as f:
                now = f.read().strip()
            if not _live_holders() and not os.path.exists(original):
                with open(original, "w") as f:
                    f.write(now)
            if now != "1":
                with open(NF_LOG_ALL_NETNS, "w") as f:
                    f.write("1")
                print("  (set nf_log_all_netns=1, was %s; restored at the end)" % now, flush=True)
            open(me, "w").close()
            on = True
        except OSError as e:
            r.skip("enable nf_log_all_netns", str(e))
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
        yield on
    finally:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if os.path.exists(me):
                os.unlink(me)
            if not _live_holders() and os.path.exists(original):
                with open(original) as f:
                    old = f.read().strip()
                with open(NF_LOG_ALL_NETNS, "w") as f:
                    f.write(old)
                os.unlink(original)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()


def dmesg():
    """The kernel ring buffer as text, or None if it cannot be read."""
    try:
        p = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return p.stdout if p.returncode == 0 else None


def _stamp(line):
    """The [seconds.micros] timestamp of a dmesg line, or None."""
    if line.startswith("["):
        try:
            return float(line[1:line.index("]")])
        except ValueError:
            return None
    return None


def log_mark():
    """The timestamp of the newest kernel log line now (0.0 if none or
    unreadable): check_logged(since=...) looks only at lines after it, so a
    line from an earlier run can never satisfy an assertion."""
    stamps = [_stamp(l) for l in (dmesg() or "").splitlines()]
    stamps = [s for s in stamps if s is not None]
    return max(stamps) if stamps else 0.0


def log_lines(since, prefix):
    """Kernel log lines newer than since that contain prefix; None if the
    log cannot be read."""
    text = dmesg()
    if text is None:
        return None
    return [l for l in text.splitlines() if prefix in l and (_stamp(l) or 0.0) > since]


def check_logged(r, what, prefix, needles, logging_on, since):
    """Asserts that a kernel log line newer than since contains prefix and
    every string in needles; skips (never passes) if the log cannot be read."""
    if not logging_on:
        r.skip(what, "cannot enable nf_log_all_netns")
        return
    lines = log_lines(since, prefix)
    if lines is None:
        r.skip(what, "dmesg is not readable here")
        return
    hits = [l for l in lines if all(n in l for n in needles)]
    r.check(hits, what, "no new kernel log line with %r and %s; newest lines with the prefix:\n%s"
            % (prefix, needles, "\n".join(lines[-5:]) or "(none)"))


# -- the daemon (cloudviz-agent run) -------------------------------------------

def wait_until(pred, timeout, interval=0.05):
    """Calls pred() until it returns something true or timeout seconds pass.
    Returns (value, seconds waited); value is the last (false) result on
    timeout."""
    t0 = time.monotonic()
    while True:
        v = pred()
        waited = time.monotonic() - t0
        if v or waited >= timeout:
            return v, waited
        time.sleep(interval)


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def set_elements(ns, name):
    """The elements of set `name` of table inet cloudviz, as nft prints them
    ("203.0.113.2", "198.51.100.0/24"); None if the set does not exist."""
    p = nft(ns, "list", "set", "inet", "cloudviz", name, check=False)
    if p.returncode != 0:
        return None
    m = re.search(r"elements = \{([^}]*)\}", p.stdout)
    if not m:
        return []
    return [e.strip() for e in m.group(1).replace("\n", " ").split(",") if e.strip()]


def nft_fast(ns, *args, check=False):
    """nft in ns via nsenter --net: unlike `ip netns exec` no mount namespace
    is created and torn down, which can take a good part of a second; for
    tests that time what happens after an nft command."""
    return netns.run(["nsenter", "--net=/run/netns/" + ns, "nft"] + list(args), check=check)


def normalized_table(ns, fast=False):
    """`nft list table inet cloudviz` with counter values zeroed (packets a
    test sends change them) and without the table's ownership (the
    "# progname ..." comment and the table's own "flags" line change when
    its owner exits), or None if there is no table."""
    p = nft_fast(ns, "list", "table", "inet", "cloudviz") if fast else \
        nft(ns, "list", "table", "inet", "cloudviz", check=False)
    if p.returncode != 0:
        return None
    t = re.sub(r"counter packets \d+ bytes \d+", "counter packets 0 bytes 0", p.stdout)
    t = re.sub(r"^(table inet cloudviz \{) # progname .*$", r"\1", t, flags=re.M)
    return re.sub(r"^\tflags [a-z, ]*\n\n?", "", t, count=1, flags=re.M)


class Daemon:
    """`cloudviz-agent run` inside network namespace ns, a child of this
    process (killed by its pid, never by name). Its files live in tmp/name:
    agent.json, state/, ctl.sock and agent.log (stdout and stderr of every
    start). The directory is mode 0755 so other uids can reach the socket
    (tmp itself must then be traversable too)."""

    def __init__(self, cleanups, tmp, ns, policy, table_owner="off", name="agent", **extra):
        self.ns = ns
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.socket = os.path.join(self.dir, "ctl.sock")
        self.state_dir = os.path.join(self.dir, "state")
        self.state_file = os.path.join(self.state_dir, "state.json")
        self.config_path = os.path.join(self.dir, "agent.json")
        self.log_path = os.path.join(self.dir, "agent.log")
        self.config = {"node_id": "t1", "policy": policy, "state_dir": self.state_dir,
                       "socket": self.socket, "table_owner": table_owner}
        self.config.update(extra)
        self.write_config()
        self.proc = None
        self.log_offset = 0
        cleanups.add(self._reap)

    def write_config(self, **changes):
        """Updates keys (value None removes one) and rewrites agent.json."""
        for k, v in changes.items():
            if v is None:
                self.config.pop(k, None)
            else:
                self.config[k] = v
        with open(self.config_path, "w") as f:
            json.dump(self.config, f, indent=2)
            f.write("\n")

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, wait=True, prefix=(), timeout=10, args=()):
        """Starts the agent (prefix: a wrapper command, e.g. unshare ...;
        args: more `run` options, after those in $CVZ_RUN_ARGS, which
        run-all.sh sets to --no-seccomp for its ASan pass).
        With wait, returns True once `status` answers, False if the agent
        exited or did not answer within timeout."""
        assert not self.running(), "agent already running"
        self.log_offset = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        cmd = list(prefix) + ["ip", "netns", "exec", self.ns, AGENT, "run", "-c", self.config_path]
        cmd += os.environ.get("CVZ_RUN_ARGS", "").split() + list(args)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
        return self.wait_ready(timeout) if wait else True

    def wait_ready(self, timeout=10):
        def ready():
            if self.proc.poll() is not None:
                return "exited"
            return "ready" if self.ctl("status").returncode == 0 else None
        v, _ = wait_until(ready, timeout)
        return v == "ready"

    def output(self):
        """What the agent wrote to stdout/stderr since its last start."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self.log_offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def describe(self):
        rc = self.proc.poll() if self.proc else None
        return "agent pid %s, %s\nits output:\n%s" % (
            self.pid, "running" if rc is None else "exit %s" % rc, self.output() or "(none)")

    def send(self, sig):
        os.kill(self.proc.pid, sig)

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Sends sig and waits; returns the exit status (negative: killed by
        a signal), or None if it did not exit in time (it is then killed)."""
        if not self.running():
            return self.proc.returncode if self.proc else None
        os.kill(self.proc.pid, sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._reap()
            return None

    def kill9(self):
        return self.stop(signal.SIGKILL)

    SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                       "SUMMARY: UndefinedBehaviorSanitizer")

    def stop_ok(self, r, what="SIGTERM: exit 0"):
        """Stops the agent with SIGTERM and asserts exit status 0 and no
        sanitizer report in its output (CVZ_AGENT may be an ASan build)."""
        rc = self.stop()
        out = self.output()
        clean = not any(m in out for m in self.SANITIZER_MARKS)
        return r.check(rc == 0 and clean, what, self.describe())

    def _reap(self):
        if self.running():
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def ctl(self, *args, user=None, socket=None, timeout=30):
        """Runs `cloudviz-agent CMD -s SOCKET ARGS...` (callers put options
        before positional arguments). user: (uid, gid, [groups]) runs it
        through setpriv as that user. Returns a CompletedProcess with two
        extra attributes: pid (of the client process) and seconds (wall
        time)."""
        cmd = [AGENT, args[0], "-s", socket or self.socket] + [str(a) for a in args[1:]]
        if user is not None:
            uid, gid, groups = user
            cmd = ["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid] + \
                (["--groups=" + ",".join(str(g) for g in groups)] if groups else
                 ["--clear-groups"]) + cmd
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        cp = subprocess.CompletedProcess(cmd, p.returncode, out, err)
        cp.pid = p.pid
        cp.seconds = time.monotonic() - t0
        return cp

    def ctl_json(self, *args):
        """`CMD --json ...` parsed, or None (the failure is in .last)."""
        self.last = p = self.ctl(args[0], "--json", *args[1:])
        if p.returncode != 0:
            return None
        try:
            return json.loads(p.stdout)
        except ValueError:
            return None

    def status(self):
        return self.ctl_json("status")

    def entries(self, *args):
        return self.ctl_json("list", *args)


# -- the journal ---------------------------------------------------------------

PRIORITIES = {"emerg": 0, "alert": 1, "crit": 2, "err": 3, "warning": 4, "notice": 5,
              "info": 6, "debug": 7}


def event_table():
    """{event: (MESSAGE_ID, PRIORITY number)} from docs/audit-events.md."""
    table_ = {}
    with open(os.path.join(REPO, "docs", "audit-events.md")) as f:
        for line in f:
            m = re.match(r"^\|\s*`([a-z_]+)`\s*\|\s*`([0-9a-f]{32})`\s*\|\s*([a-z]+)\s*\|", line)
            if m:
                table_[m.group(1)] = (m.group(2), PRIORITIES[m.group(3)])
    return table_


class Journal:
    """The agent's entries in the test's private journal (see with-journald),
    oldest first. mark() and since= select what happened after a point."""

    def __init__(self):
        self.table = event_table()

    def raw(self):
        """All of `journalctl -o json` (every entry, not only the agent's)."""
        return netns.run(["journalctl", "-o", "json", "--no-pager"], check=False).stdout

    def entries(self):
        out = netns.run(["journalctl", "-o", "json", "--no-pager",
                         "SYSLOG_IDENTIFIER=cloudviz-agent"], check=False).stdout
        got = []
        for line in out.splitlines():
            try:
                got.append(json.loads(line))
            except ValueError:
                pass
        return got

    def mark(self):
        return len(self.entries())

    def events(self, event, since=0):
        return [e for e in self.entries()[since:] if e.get("CLOUDVIZ_EVENT") == event]

    def wait(self, event, since=0, timeout=3.0, match=None):
        """The first entry of event after since (that match(e) accepts), waiting
        up to timeout seconds for it; None if none came."""
        def find():
            for e in self.events(event, since):
                if match is None or match(e):
                    return e
            return None
        return wait_until(find, timeout, 0.1)[0]

    def check(self, r, what, e, event, **fields):
        """Asserts that e is an entry of event with every field the docs
        promise (MESSAGE, MESSAGE_ID and PRIORITY of the table,
        SYSLOG_IDENTIFIER, CLOUDVIZ_EVENT, CODE_FILE, CODE_LINE) and with the
        given CLOUDVIZ_* fields (addr="..." checks CLOUDVIZ_ADDR): a value must
        be equal, None must be absent, a callable must return true for it."""
        if e is None:
            return r.check(False, "journal: %s: %s" % (event, what), "no such entry")
        bad = []
        want_id, want_prio = self.table.get(event, (None, None))
        basics = {"MESSAGE_ID": want_id, "PRIORITY": str(want_prio),
                  "SYSLOG_IDENTIFIER": "cloudviz-agent", "CLOUDVIZ_EVENT": event}
        for k, v in basics.items():
            if e.get(k) != v:
                bad.append("%s: expected %r, got %r" % (k, v, e.get(k)))
        if not e.get("MESSAGE"):
            bad.append("MESSAGE is missing or empty")
        if not str(e.get("CODE_FILE", "")).endswith(".c"):
            bad.append("CODE_FILE: %r" % e.get("CODE_FILE"))
        if not str(e.get("CODE_LINE", "")).isdigit() or int(e["CODE_LINE"]) <= 0:
            bad.append("CODE_LINE: %r" % e.get("CODE_LINE"))
        for k, v in fields.items():
            name = "CLOUDVIZ_" + k.upper()
            got = e.get(name)
            if v is None:
                if got is not None:
                    bad.append("%s: expected absent, got %r" % (name, got))
            elif callable(v):
                if got is None or not v(got):
                    bad.append("%s: unexpected value %r" % (name, got))
            elif got != str(v):
                bad.append("%s: expected %r, got %r" % (name, str(v), got))
        shown = ", ".join("%s=%s" % (k, "..." if callable(v) else v) for k, v in fields.items())
        return r.check(not bad, "journal: %s%s: %s" % (event, " (%s)" % shown if shown else "", what),
                       "\n".join(bad) + "\nentry: %s" % json.dumps(
                           {k: v for k, v in e.items() if not k.startswith("_")}, indent=1))
