#!/usr/bin/env python3
"""`make check-fresh`: the README's two commands on a pristine Debian 12.

A minimal bookworm root (debootstrap --variant=minbase plus make, nothing
else; cached beside the package test's root in /var/cache/cloudviz-agent-test
and never written: each run unpacks its own copy) gets a clean copy of the
committed tree (git archive) in /root/cloudviz-agent. There, as root, in
systemd-nspawn sharing the host's network (apt inside reaches the same
Debian mirror as the host's apt), run one after the other, exactly as the
README has them:

    make demo
    make check

It passes only if both exit 0, `make demo` printed its final success line,
and the last line of `make check` says "N passed, 0 failed". The transcript
gives each command's time, the packages `scripts/install-deps.sh` installed
(its "deps:" lines), the summary lines, and every failing test's output;
the whole output of each command is kept in build/fresh/.

usage: tests/fresh/run.py        (root; `make check-fresh`)

Environment:
  CVZ_FRESH_REV=REV       the commit to test (default HEAD)
  CVZ_DEBIAN_MIRROR=URL   the mirror for debootstrap and inside (default: the
                          host's apt's Debian mirror, else deb.debian.org)
  CVZ_ROOTFS_CACHE=DIR    where the root file system is cached
                          (default /var/cache/cloudviz-agent-test)
  CVZ_ROOTFS_REBUILD=1    debootstrap again even if the cache is fresh
  CVZ_FRESH_COMMANDS=...  other commands, ";"-separated (trials: "make demo"
                          alone, or "make deb;make rpm"); each must exit 0
  CVZ_KEEP=1              keep the container's root directory afterwards

Exit status: 0 passed, 1 failed, 77 not root.
"""

import contextlib
import glob
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "package"))
import lifecycle  # noqa: E402  (the cached root file system, host tools, Report)
from netns import pid_alive  # noqa: E402  (tests/integration, on the path through lifecycle)

SKIP_EXIT = 77
INCLUDE = ("make",)  # what the README's commands need before they can start
ROOTFS_TAR = os.path.join(lifecycle.CACHE_DIR, "%s-minbase-make-rootfs.tar.zst" % lifecycle.SUITE)
SRC_INSIDE = "/root/cloudviz-agent"
COMMANDS = "make demo;make check"
TIMEOUT = 90 * 60
DEMO_DONE = "demo: the control plane's block and unblock reached the kernel and were reported back"
CHECK_LAST = re.compile(r"^(\d+) passed, (\d+) failed(?:, .*)?$")
# What nspawn itself prints at the end when /run is not a tmpfs; not the
# command's output.
NSPAWN_NOISE = re.compile(r'^Attempted to remove disk file system under "/run/systemd/nspawn/')
LOG_DIR = os.path.join(REPO, "build", "fresh")
RUN_PREFIX = "cvz-fresh."


class Abort(Exception):
    """The check cannot go on."""


class Report(lifecycle.harness.Report):
    def note(self, text):
        for line in str(text).rstrip("\n").splitlines() or [""]:
            print("   %s" % line, flush=True)


def host_mirror():
    """The Debian archive the host's apt uses for bookworm main (one-line
    and deb822 sources), so that a proxied or local mirror is used here too."""
    if os.environ.get("CVZ_DEBIAN_MIRROR"):
        return os.environ["CVZ_DEBIAN_MIRROR"]
    files = ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*"))
    for path in files:
        try:
            text = open(path).read()
        except OSError:
            continue
        if path.endswith(".sources"):
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.M))
                suites = fields.get("Suites", "").split()
                if "deb" in fields.get("Types", "").split() and lifecycle.SUITE in suites \
                        and "main" in fields.get("Components", "").split():
                    return fields.get("URIs", "").split()[0]
        else:
            for line in text.splitlines():
                m = re.match(r"^\s*deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)\s+(.*)$", line)
                if m and m.group(2) == lifecycle.SUITE and "main" in m.group(3).split():
                    return m.group(1)
    return "http://deb.debian.org/debian"


def sweep_leftovers(r):
    """Run directories of earlier runs whose process is gone (killed before
    its cleanup): nspawn's mounts lived in its own mount namespace, so only
    files remain."""
    for d in glob.glob("/var/tmp/%s*" % RUN_PREFIX):
        m = re.match(r"^%s(\d+)\." % re.escape(RUN_PREFIX), os.path.basename(d))
        if not m or pid_alive(int(m.group(1))):
            continue
        # a container that outlived its run (the run was SIGKILLed, e.g. by
        # the OOM killer): its processes have their root in there
        orphans = [pid for pid in _pids() if _root_of(pid).startswith(d + "/")]
        for pid in orphans:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if orphans:
            r.note("killed %d processes of a container left by run %s" % (len(orphans), m.group(1)))
            time.sleep(1)
        if lifecycle.mounts_under(d):
            r.note("leftover %s still has mounts, left alone: %s" % (
                d, " ".join(lifecycle.mounts_under(d))))
            continue
        subprocess.run(["rm", "-rf", "--one-file-system", d])
        r.note("removed the leftover %s" % d)


def _pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _root_of(pid):
    try:
        return os.readlink("/proc/%d/root" % pid)
    except OSError:
        return ""


def dpkg_installed(root):
    """{package: Installed-Size in kB} of what is installed in ROOT (its
    dpkg status)."""
    got = {}
    with open(os.path.join(root, "var/lib/dpkg/status")) as f:
        for stanza in f.read().split("\n\n"):
            fields = dict(re.findall(r"^([\w-]+): (.*)$", stanza, re.M))
            if fields.get("Status", "").endswith(" installed") and "Package" in fields:
                got[fields["Package"]] = int(fields.get("Installed-Size", "0") or 0)
    return got


def copy_tree(r, rev, dest):
    """git archive REV into DEST: the committed tree, nothing of the work
    tree or build/."""
    p = subprocess.run(["git", "-C", REPO, "rev-parse", "--verify", rev + "^{commit}"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        raise Abort("not a commit: %r (CVZ_FRESH_REV): %s" % (rev, p.stdout.strip()))
    commit = p.stdout.strip()
    os.makedirs(dest, mode=0o755)
    archive = subprocess.Popen(["git", "-C", REPO, "archive", "--format=tar", commit],
                               stdout=subprocess.PIPE)
    untar = subprocess.run(["tar", "-x", "-C", dest, "--no-same-owner"], stdin=archive.stdout)
    archive.stdout.close()
    if archive.wait() != 0 or untar.returncode != 0:
        raise Abort("git archive %s | tar -x failed" % commit)
    subject = subprocess.run(["git", "-C", REPO, "log", "-1", "--format=%h %s", commit],
                             stdout=subprocess.PIPE, text=True).stdout.strip()
    r.note("the tree: git archive %s (%s) into %s" % (rev, subject, SRC_INSIDE))


class Nspawn:
    """One command in the container: systemd-nspawn (not booted; a stub
    init as PID 1, the command as PID 2) in the host's network namespace,
    with CAP_NET_ADMIN and a writable /proc/sys/net. Ends with its command;
    stop() kills it (nspawn's kill signal for a non-booted container is
    SIGKILL) and the container's leader by PID."""

    def __init__(self, root, name):
        self.root = root
        self.name = name
        self.proc = None

    def argv(self, command):
        return ["systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "-D", self.root,
                "--machine=" + self.name, "--as-pid2", "--console=pipe",
                "--capability=CAP_NET_ADMIN,CAP_SYSLOG", "--chdir=" + SRC_INSIDE,
                "--setenv=LANG=C.UTF-8", "/bin/sh", "-c", command]

    def run(self, command, log_path, timeout):
        """Runs COMMAND inside, its output to the transcript (indented) and to
        LOG_PATH; (exit status, output, seconds)."""
        env = dict(os.environ, SYSTEMD_NSPAWN_API_VFS_WRITABLE="network")
        for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL"):  # not the outer make's
            env.pop(k, None)
        t0 = time.monotonic()
        lines = []
        with open(log_path, "w") as log:
            self.proc = subprocess.Popen(self.argv(command), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         env=env, text=True, errors="replace",
                                         start_new_session=True)
            timer = threading.Timer(timeout, self._timed_out, (timeout,))
            timer.start()
            try:
                for line in self.proc.stdout:
                    log.write(line)
                    log.flush()
                    lines.append(line.rstrip("\n"))
                    print("   | " + lines[-1], flush=True)
                rc = self.proc.wait()
            finally:
                timer.cancel()
        self.proc = None
        # nspawn leaves this empty directory behind when /run is not a tmpfs
        try:
            os.rmdir("/run/systemd/nspawn/propagate/" + self.name)
        except OSError:
            pass
        return rc, lines, time.monotonic() - t0

    def _timed_out(self, timeout):
        print("   (timed out after %d s: stopping the container)" % timeout, flush=True)
        self.stop()

    def stop(self):
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        leaders = [(int(p), lifecycle.pid_start(int(p))) for p in os.listdir("/proc")
                   if p.isdigit() and _ppid(int(p)) == proc.pid]
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for pid, start in leaders:  # the container's PID 1; its namespace goes with it
            if start is not None and lifecycle.pid_start(pid) == start:
                os.kill(pid, signal.SIGKILL)


def _ppid(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _raise_exit(signum, frame):
    raise SystemExit(128 + signum)


def fmt_time(secs):
    return "%d min %02d s" % (secs // 60, secs % 60)


def main():
    if os.geteuid() != 0:
        print("SKIP fresh: needs root (debootstrap, systemd-nspawn; the README's commands run as root)")
        return SKIP_EXIT
    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(s, _raise_exit)
    r = Report("fresh")
    t_start = time.monotonic()
    commands = [c.strip() for c in os.environ.get("CVZ_FRESH_COMMANDS", COMMANDS).split(";")
                if c.strip()]
    tmp = tempfile.mkdtemp(prefix="%s%d." % (RUN_PREFIX, os.getpid()), dir="/var/tmp")
    os.chmod(tmp, 0o755)
    root = os.path.join(tmp, "root")
    box = Nspawn(root, "cvz-fresh-%d" % os.getpid())
    timings = []
    broke = None
    results = {}
    try:
        r.section("prepare")
        sweep_leftovers(r)
        lifecycle.ensure_host_tools(r)
        mirror = host_mirror()
        r.note("Debian mirror: %s (the host's apt's)" % mirror)
        t = time.monotonic()
        lifecycle.ensure_rootfs(r, tar=ROOTFS_TAR, include=INCLUDE, mirror=mirror)
        timings.append(("root file system (debootstrap when not cached)", time.monotonic() - t))
        t = time.monotonic()
        lifecycle.unpack_rootfs(root, tar=ROOTFS_TAR)
        timings.append(("unpack a copy", time.monotonic() - t))
        have = dpkg_installed(root)
        r.note("a copy in %s: %d packages installed (minbase + make)" % (root, len(have)))
        # Pristine: none of what install-deps.sh installs is there yet, but
        # make (the one addition) is.
        r.check("make" in have and "gcc" not in have and "pkg-config" not in have
                and "libjansson-dev" not in have,
                "the root is pristine: make, but no gcc, pkg-config or -dev package")
        # apt inside uses the host's mirror (debootstrap wrote it already;
        # written again so that the transcript's claim holds for any mirror)
        with open(os.path.join(root, "etc/apt/sources.list"), "w") as f:
            f.write("deb %s %s main\n" % (mirror, lifecycle.SUITE))
        copy_tree(r, os.environ.get("CVZ_FRESH_REV", "HEAD"), root + SRC_INSIDE)
        os.makedirs(LOG_DIR, exist_ok=True)

        for command in commands:
            r.section("# %s    (as root in %s, %s)" % (command, SRC_INSIDE, " ".join(
                box.argv(command)[:-3]).replace(root, "ROOT")))
            log = os.path.join(LOG_DIR, re.sub(r"[^A-Za-z0-9.-]+", "-", command) + ".log")
            rc, lines, took = box.run(command, log, TIMEOUT)
            timings.append((command, took))
            results[command] = (rc, lines, took)
            print("   (exit %d after %s; the whole output in %s)" % (rc, fmt_time(took), log),
                  flush=True)
        now = dpkg_installed(root)
        new = sorted(set(now) - set(have))
        with open(os.path.join(LOG_DIR, "packages-installed.txt"), "w") as f:
            f.write("".join("%s %d\n" % (p, now[p]) for p in new))
        r.note("the commands installed %d packages (with their dependencies), %d MB installed "
               "size; the list in %s" % (len(new), sum(now[p] for p in new) >> 10,
                                         os.path.join(LOG_DIR, "packages-installed.txt")))
    except (Abort, lifecycle.Abort) as e:
        broke = str(e)
    except subprocess.TimeoutExpired as e:
        broke = "timed out: %s" % e
    except SystemExit as e:
        broke = "interrupted (%s)" % e.code
    finally:
        box.stop()
        if os.environ.get("CVZ_KEEP") == "1":
            r.note("kept %s (CVZ_KEEP=1)" % tmp)
        elif lifecycle.mounts_under(tmp):
            r.check(False, "nothing mounted under %s" % tmp, "\n".join(lifecycle.mounts_under(tmp)))
        else:
            subprocess.run(["rm", "-rf", "--one-file-system", tmp])

    r.section("verdict")
    if broke is not None:
        r.check(False, "the check ran to its end", broke)
    deps = [ln for _, (_, lines, _) in results.items() for ln in lines if ln.startswith("deps:")]
    r.note("packages (scripts/install-deps.sh):")
    for ln in deps or ["(no deps: lines)"]:
        r.note("  " + ln)
    if "make demo" in commands and "make demo" in results:
        rc, lines, took = results["make demo"]
        r.expect("make demo: exit status", rc, 0)
        r.check(DEMO_DONE in lines, "make demo printed %r" % DEMO_DONE,
                "its last lines:\n" + "\n".join(lines[-15:]))
    elif "make demo" in commands:
        r.check(False, "make demo ran")
    if "make check" in commands and "make check" in results:
        rc, lines, took = results["make check"]
        own = [ln for ln in lines if not NSPAWN_NOISE.match(ln)]
        last = own[-1] if own else ""
        m = CHECK_LAST.match(last)
        r.note("make check's last line: %s" % last)
        r.expect("make check: exit status", rc, 0)
        r.check(m is not None and m.group(2) == "0",
                "make check's last line says \"N passed, 0 failed\"", "it is %r" % last)
        fails = [ln for ln in lines if ln.startswith("FAIL ")]
        skips = [ln for ln in lines if ln.startswith("SKIP ")]
        for ln in fails:
            r.note("  " + ln)
        for ln in skips:
            r.note("  " + ln)
    elif "make check" in commands:
        r.check(False, "make check ran")
    for command in commands:
        if command not in ("make demo", "make check"):
            rc = results[command][0] if command in results else None
            r.expect("%s: exit status" % command, rc, 0)
    print("\ntimings:")
    for name, took in timings:
        print("  %8s  %s" % (fmt_time(took), name))
    print("  %8s  total" % fmt_time(time.monotonic() - t_start))
    r.summary()
    ok = r.failed == 0 and broke is None
    print("fresh check: %s" % ("PASSED" if ok else "FAILED"), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
