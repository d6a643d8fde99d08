"""Shared plumbing for the integration tests: per-assertion reporting, the
agent and nft wrappers, policy files, kernel-log access.

A test script is

    import harness
    def body(r, tmp, cleanups):  # Report, a private temp dir, Cleanups
        ...
    harness.main("test_name", body)

main() exits 77 (skip) when not root, 1 when an assertion failed or the body
raised, 0 otherwise, and runs every registered cleanup even on failure,
SIGTERM or SIGINT.
"""

import contextlib
import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import traceback

import netns

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
EXAMPLES = os.path.join(REPO, "policy", "examples")
GOLDEN = os.path.join(HERE, "golden")
AGENT = os.environ.get("CVZ_AGENT") or os.path.join(REPO, "build", "cloudviz-agent")
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
        s = "%s: %d ok, %d failed" % (self.name, self.passed, self.failed)
        if self.skipped:
            s += ", %d skipped" % self.skipped
        print("\n" + s, flush=True)


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


def main(name, body):
    r = Report(name)
    if os.geteuid() != 0:
        print("SKIP %s: needs root (network namespaces, nftables)" % name)
        sys.exit(SKIP_EXIT)
    for tool in ("ip", "nft", "ping", "sysctl"):
        if shutil.which(tool) is None:
            print("SKIP %s: %s not installed" % (name, tool))
            sys.exit(SKIP_EXIT)
    if not (os.path.isfile(AGENT) and os.access(AGENT, os.X_OK)):
        print("FAIL %s: agent binary %s not found (run make, or set CVZ_AGENT)" % (name, AGENT))
        sys.exit(1)
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


def ruleset(ns):
    return nft(ns, "list", "ruleset").stdout


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
