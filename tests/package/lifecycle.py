#!/usr/bin/env python3
"""The Debian package's life cycle in a booted Debian 12 (issue 7).

A minimal bookworm root (debootstrap, cached outside the tree) is unpacked
into a throwaway directory and booted with systemd-nspawn on a private
network (no internet inside). Commands run inside with nsenter. The runtime
libraries come from a local apt repository made on the host from exactly
what the container lacks, so `apt install ./cloudviz-agent_*.deb` pulls
them the way it would from a mirror. Then, each step asserted:

  1 install   apt install ./deb: enabled, active (running), the agent's
              STATUS line, agent_started in the journal, the default policy
              in `table inet cloudviz`, the process as user cloudviz-agent
              with CAP_NET_ADMIN only, no_new_privs and seccomp
  2 block     `cloudviz-agent block` as root; `systemctl reload` and
              `systemctl restart` keep the block
  3 kill -9   systemd restarts the agent; the block is still there
  3b detect   local detection under the unit: agent.json gains a detect
              section (reload); failure lines written by a transient
              ssh.service (trusted: _SYSTEMD_UNIT, _UID 0) block their
              address, read from the journal as user cloudviz-agent (the
              tmpfiles.d ACL) under the seccomp filter; the same lines from
              `logger -t sshd` block nothing; unblock --origin detect
  4 upgrade   a newer build (PKG_RELEASE=2 packaging/deb/build.sh, made in
              the background meanwhile) over an edited conffile: the edit
              stays and is in force, the new version runs, the block stays
  5 remove    apt remove stops the service, config and state stay; apt
              purge removes config, state and the user

usage: tests/package/lifecycle.py        (root; make check-package runs it)

Environment:
  CVZ_DEB=PATH            the package to test (default
                          build/packages/cloudviz-agent_<VERSION>_<arch>.deb)
  CVZ_UPGRADE_DEB=PATH    the newer package (default: built with PKG_RELEASE=2)
  CVZ_ROOTFS_CACHE=DIR    where the root file system is cached
                          (default /var/cache/cloudviz-agent-test)
  CVZ_ROOTFS_REBUILD=1    debootstrap again even if the cache is fresh
  CVZ_DEBIAN_MIRROR=URL   for debootstrap (default http://deb.debian.org/debian)
  CVZ_KEEP=1              keep the container's root directory afterwards

Exit status: 0 all passed, 1 a check failed or the harness broke, 77 not root.
"""

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402  (its Report)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SKIP_EXIT = 77

SUITE = "bookworm"
MIRROR = os.environ.get("CVZ_DEBIAN_MIRROR", "http://deb.debian.org/debian")
CACHE_DIR = os.environ.get("CVZ_ROOTFS_CACHE", "/var/cache/cloudviz-agent-test")
ROOTFS_TAR = os.path.join(CACHE_DIR, "%s-rootfs.tar.zst" % SUITE)
# What the cache was built from: a change here rebuilds it.
ROOTFS_STAMP = ROOTFS_TAR + ".stamp"
ROOTFS_MAX_AGE = 30 * 86400
INCLUDE = ("systemd", "systemd-sysv", "dbus", "iproute2", "nftables", "procps")
HOST_TOOLS = {"debootstrap": "debootstrap", "systemd-nspawn": "systemd-container",
              "zstd": "zstd", "dpkg-scanpackages": "dpkg-dev", "nsenter": "util-linux"}

# The agent's runtime libraries: what ${shlibs:Depends} must bring.
RUNTIME_LIBS = ("libnftnl11", "libmnl0", "libjansson4", "libsystemd0", "libssl3",
                "libcurl4", "libseccomp2")
UNIT = "cloudviz-agent"
USER = "cloudviz-agent"
BLOCK = "203.0.113.9"
EDITED_NODE_ID = "pkg-lifecycle-edited"
CAP_NET_ADMIN_ONLY = "0000000000001000"
STATUS_RE = re.compile(r"^policy [0-9a-f]{8}, (\d+) blocked, lockdown off$")

# Inside the container: a clean environment, no pagers, no colours, no prompts.
INSIDE_ENV = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
              "HOME=/root", "LANG=C.UTF-8", "TERM=dumb", "SYSTEMD_PAGER=",
              "SYSTEMD_COLORS=0", "DEBIAN_FRONTEND=noninteractive")
APT = ("apt-get -q -y -o Dpkg::Options::=--force-confold -o APT::Install-Recommends=true"
       " -o Dpkg::Use-Pty=0")


class Abort(Exception):
    """A failed step after which the later ones make no sense."""


class Report(harness.Report):
    """harness.Report (one line per assertion, counted), with the duration
    of each section."""

    def __init__(self):
        super().__init__("package lifecycle")
        self.t0 = time.monotonic()
        self.section_t0 = None
        self.section_name = None
        self.timings = []

    def section(self, title):
        self.end_section()
        self.section_name, self.section_t0 = title, time.monotonic()
        super().section(title)

    def end_section(self):
        if self.section_name is not None:
            took = time.monotonic() - self.section_t0
            self.timings.append((self.section_name, took))
            print("   (%.1f s)" % took, flush=True)
            self.section_name = None

    def note(self, text):
        for line in str(text).rstrip("\n").splitlines() or [""]:
            print("   %s" % line, flush=True)

    def require(self, cond, what, detail=""):
        if not self.check(cond, what, detail):
            raise Abort(what)

    def summary(self):
        self.end_section()
        print("\ntimings:", flush=True)
        for name, took in self.timings:
            print("  %6.1f s  %s" % (took, name))
        print("  %6.1f s  total" % (time.monotonic() - self.t0))
        print("\npackage lifecycle: %d ok, %d failed" % (self.passed, self.failed), flush=True)


def host(argv, timeout=600, check=True, **kw):
    """Runs a host command; stdout and stderr together, as text."""
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL, **kw)
    if check and p.returncode != 0:
        raise Abort("%s: exit %d\n%s" % (" ".join(argv), p.returncode, p.stdout[-3000:]))
    return p


def tail(text, n=25):
    lines = text.rstrip("\n").splitlines()
    return "\n".join(lines[-n:])


# ---- host preparation -----------------------------------------------------

def ensure_host_tools(r):
    missing = sorted({pkg for tool, pkg in HOST_TOOLS.items() if shutil.which(tool) is None})
    if not missing:
        return
    r.note("installing on the host: %s" % " ".join(missing))
    lock = ("-o", "DPkg::Lock::Timeout=600")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    host(["apt-get", "-qq", *lock, "update"], env=env)
    host(["apt-get", "-qq", "-y", *lock, "install", "--no-install-recommends", *missing], env=env)


def rootfs_wanted(include=INCLUDE, mirror=MIRROR):
    return "suite=%s mirror=%s variant=minbase include=%s\n" % (SUITE, mirror, ",".join(include))


def ensure_rootfs(r, tar=ROOTFS_TAR, include=INCLUDE, mirror=MIRROR):
    """The cached root file system: reused when present, built with the
    wanted packages and younger than 30 days; rebuilt otherwise. A lock
    keeps two runs from building it at once. tests/fresh/run.py caches
    another root (minbase plus make) with it."""
    stamp_path = tar + ".stamp"
    os.makedirs(CACHE_DIR, mode=0o755, exist_ok=True)
    with open(os.path.join(CACHE_DIR, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        reason = None
        if os.environ.get("CVZ_ROOTFS_REBUILD") == "1":
            reason = "CVZ_ROOTFS_REBUILD=1"
        elif not os.path.isfile(tar):
            reason = "no cached root file system"
        else:
            age = time.time() - os.stat(tar).st_mtime
            stamp = open(stamp_path).read() if os.path.isfile(stamp_path) else ""
            if age > ROOTFS_MAX_AGE:
                reason = "cache is %d days old" % (age // 86400)
            elif stamp != rootfs_wanted(include, mirror):
                reason = "cache was built with other packages"
            else:
                r.note("reusing %s (%.1f days old, %d MB)" % (
                    tar, age / 86400, os.path.getsize(tar) >> 20))
                return
        r.note("building %s: %s" % (tar, reason))
        for old in os.listdir(CACHE_DIR):  # interrupted earlier builds
            if old.startswith("build."):
                host(["rm", "-rf", "--one-file-system", os.path.join(CACHE_DIR, old)])
        work = tempfile.mkdtemp(prefix="build.", dir=CACHE_DIR)
        root = os.path.join(work, "root")
        t = time.monotonic()
        inc = ["--include=" + ",".join(include)] if include else []
        p = host(["debootstrap", "--variant=minbase", *inc, SUITE, root, mirror],
                 timeout=3600, check=False)
        if p.returncode != 0:
            raise Abort("debootstrap failed (exit %d):\n%s" % (p.returncode, tail(p.stdout, 40)))
        r.note("debootstrap took %.0f s" % (time.monotonic() - t))
        # Nothing a run needs: downloaded packages, the mirror's index (the
        # container sees only its local repository), the host's name (the
        # container takes its machine name).
        host(["sh", "-c", "rm -f var/cache/apt/archives/*.deb var/cache/apt/*.bin etc/hostname"
              " && rm -rf var/lib/apt/lists/* && mkdir -p var/lib/apt/lists/partial"], cwd=root)
        tmp_tar = tar + ".tmp"
        host(["tar", "-C", root, "--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls",
              "-I", "zstd -T0 -q", "-cpf", tmp_tar, "."], timeout=1800)
        os.rename(tmp_tar, tar)
        with open(stamp_path, "w") as f:
            f.write(rootfs_wanted(include, mirror))
        host(["rm", "-rf", "--one-file-system", work])
        r.note("cached %s (%d MB)" % (tar, os.path.getsize(tar) >> 20))


def unpack_rootfs(dest, tar=ROOTFS_TAR):
    os.makedirs(dest)
    host(["tar", "-C", dest, "--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls",
          "-I", "zstd", "-xpf", tar], timeout=600)


def find_deb():
    deb = os.environ.get("CVZ_DEB")
    if not deb:
        version = open(os.path.join(REPO, "VERSION")).read().strip()
        arch = host(["dpkg", "--print-architecture"]).stdout.strip()
        deb = os.path.join(REPO, "build", "packages",
                           "cloudviz-agent_%s_%s.deb" % (version, arch))
    return os.path.abspath(deb)


def deb_field(deb, field):
    return host(["dpkg-deb", "-f", deb, field]).stdout.strip()


class UpgradeBuild:
    """PKG_RELEASE=2 packaging/deb/build.sh in the background, while the
    container boots and the first steps run; its package is then moved out of
    build/packages into the run's temporary directory."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.proc = None
        self.log = os.path.join(tmp, "upgrade-build.log")
        self.deb = os.environ.get("CVZ_UPGRADE_DEB")
        self.t0 = time.monotonic()

    def start(self):
        if self.deb:
            return
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                ["packaging/deb/build.sh"], cwd=REPO, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
                env=dict(os.environ, PKG_RELEASE="2"))

    def wait(self, r):
        """The newer package's path, or Abort."""
        if self.deb:
            r.note("newer package from CVZ_UPGRADE_DEB: %s" % self.deb)
            return self.deb
        rc = self.proc.wait()
        took = time.monotonic() - self.t0
        self._sweep()
        out = open(self.log).read()
        m = re.findall(r"^deb: (/\S+\.deb)$", out, re.M)
        r.check(rc == 0 and m, "PKG_RELEASE=2 packaging/deb/build.sh built the newer package "
                "(%.0f s, in the background)" % took, "exit %d\n%s" % (rc, tail(out, 30)))
        if rc != 0 or not m:
            raise Abort("no newer package")
        self.deb = os.path.join(self.tmp, os.path.basename(m[-1]))
        return self.deb

    def _sweep(self):
        """build/packages keeps the release build only: the PKG_RELEASE=2
        files go to the run's directory, whatever became of the build."""
        out = os.path.join(REPO, "build", "packages")
        with contextlib.suppress(FileNotFoundError):
            for f in os.listdir(out):
                if re.match(r"cloudviz-agent_[^_]+-2_[^_]+\.(deb|buildinfo|changes)$", f):
                    shutil.move(os.path.join(out, f), os.path.join(self.tmp, f))

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)  # its own session, by our child's id
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=30)
        if self.proc is not None:
            self._sweep()


def make_local_repo(r, root, debs):
    """Downloads on the host what installing the packages into the
    container's package set needs (the host's apt, pointed at the
    container's dpkg status) into ROOT/var/local-repo, indexes it and makes
    it the container's only source."""
    repo = os.path.join(root, "var", "local-repo")
    os.makedirs(os.path.join(repo, "partial"), mode=0o755)
    state = os.path.join(repo, "partial")
    argv = ["apt-get", "-q", "-y", "install", "--download-only",
            "-o", "Dir::State::status=" + os.path.join(root, "var/lib/dpkg/status"),
            "-o", "Dir::State::extended_states=" + os.path.join(state, "extended_states"),
            "-o", "Dir::Cache::archives=" + repo + "/",
            "-o", "Debug::NoLocking=1", "-o", "APT::Install-Recommends=true", *debs]
    p = host(argv, check=False)
    if p.returncode != 0:  # the host's package lists may be stale
        r.note("download failed, updating the host's package lists once")
        host(["apt-get", "-qq", "-o", "DPkg::Lock::Timeout=600", "update"])
        p = host(argv, check=False)
    if p.returncode != 0:
        raise Abort("downloading the runtime dependencies failed:\n%s" % tail(p.stdout, 30))
    shutil.rmtree(os.path.join(repo, "partial"))
    for f in os.listdir(repo):
        if f.startswith("cloudviz-agent_"):
            os.unlink(os.path.join(repo, f))
    got = sorted(f for f in os.listdir(repo) if f.endswith(".deb"))
    index = subprocess.run(["dpkg-scanpackages", "-m", ".", "/dev/null"], cwd=repo, check=True,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    with open(os.path.join(repo, "Packages"), "w") as f:
        f.write(index)
    for dirpath, dirs, files in os.walk(repo):  # apt reads it as _apt
        os.chmod(dirpath, 0o755)
        for f in files:
            os.chmod(os.path.join(dirpath, f), 0o644)
    with open(os.path.join(root, "etc/apt/sources.list"), "w") as f:
        f.write("# cloudviz-agent package test: no network, only this local repository\n"
                "deb [trusted=yes] file:/var/local-repo ./\n")
    r.note("local repository /var/local-repo (%d packages):" % len(got))
    for name in got:
        r.note("  " + name)


def mounts_under(path):
    prefix = path.rstrip("/") + "/"
    with open("/proc/self/mountinfo") as f:
        return [ln.split()[4] for ln in f
                if ln.split()[4] == path or ln.split()[4].startswith(prefix)]


def pid_start(pid):
    """A process's start time in clock ticks since boot, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


# ---- the container --------------------------------------------------------

class Container:
    """A booted systemd-nspawn container: started, reached with nsenter,
    powered off (then terminated, then killed, by PID) at the end."""

    def __init__(self, root, logpath):
        self.root = root
        self.name = "cvz-pkg-%d" % os.getpid()
        self.logpath = logpath
        self.proc = None
        self.leader = None
        self.leader_start = None

    def boot(self, r):
        with open(self.logpath, "w") as log:
            self.proc = subprocess.Popen(
                ["systemd-nspawn", "--register=no", "--keep-unit", "-D", self.root, "-b",
                 "--private-network", "--machine=" + self.name, "--console=read-only"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        r.note("systemd-nspawn --register=no --keep-unit -D ROOT -b --private-network "
               "--machine=%s   (pid %d)" % (self.name, self.proc.pid))
        deadline = time.monotonic() + 60
        while self.leader is None:
            if self.proc.poll() is not None:
                raise Abort("systemd-nspawn exited (%d):\n%s" % (
                    self.proc.returncode, tail(open(self.logpath).read(), 30)))
            if time.monotonic() > deadline:
                raise Abort("no systemd under systemd-nspawn after 60 s")
            self.leader = self._find_leader()
            time.sleep(0.1)
        self.leader_start = pid_start(self.leader)
        r.note("container's systemd: pid %d on the host" % self.leader)

    def _find_leader(self):
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    stat = f.read()
                with open("/proc/%s/comm" % d) as f:
                    comm = f.read().strip()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == self.proc.pid and comm == "systemd":
                return int(d)
        return None

    def sh(self, script, timeout=120, input=None):
        """Runs a shell script inside; (exit status, stdout+stderr)."""
        argv = ["nsenter", "-t", str(self.leader), "-a", "/usr/bin/env", "-i", *INSIDE_ENV,
                "/bin/sh", "-c", script]
        try:
            p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, timeout=timeout, input=input,
                               stdin=None if input is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else e.stdout
            return 124, (out or "") + "\n(timed out after %d s)" % timeout
        return p.returncode, p.stdout

    def show(self, r, script, timeout=120, shown=None):
        """sh() with the command and its output (all, or the lines shown()
        keeps) in the transcript."""
        rc, out = self.sh(script, timeout)
        print("   # %s" % script, flush=True)
        lines = out.rstrip("\n").splitlines()
        if shown is not None:
            lines = shown(lines)
        for line in lines:
            print("     %s" % line, flush=True)
        if rc != 0:
            print("     (exit %d)" % rc, flush=True)
        return rc, out

    def stop(self, r):
        if self.proc is None or self.proc.poll() is not None:
            return
        t = time.monotonic()
        how = "powered off"
        asked = self.leader is not None and self.sh("systemctl poweroff", timeout=30)[0] == 0
        try:
            self.proc.wait(timeout=60 if asked else 0.1)
        except subprocess.TimeoutExpired:
            how = "terminated (poweroff %s)" % ("hung" if asked else "refused")
            self.proc.terminate()  # nspawn asks the container's systemd to halt
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                how = "killed"
                self.proc.kill()
                self.proc.wait()
        if self.leader is not None and self._still_ours(self.leader):
            os.kill(self.leader, signal.SIGKILL)  # its PID namespace goes with it
            how += ", leader killed"
        r.note("container %s %s in %.1f s" % (self.name, how, time.monotonic() - t))

    def _still_ours(self, pid):
        """The same process as the leader found at boot (PIDs are reused)."""
        return pid_start(pid) == self.leader_start

# ---- helpers on the agent inside ------------------------------------------

def unit_prop(c, prop):
    return c.sh("systemctl show -p %s --value %s" % (prop, UNIT))[1].strip()


def wait_for(fn, timeout, interval=0.25):
    """fn() until truthy or timeout; the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(interval)


def journal_all(c):
    """The agent's audit events (entries with CLOUDVIZ_EVENT), oldest first."""
    rc, out = c.sh("journalctl -u %s -o json --no-pager" % UNIT)
    found = []
    for line in out.splitlines():
        with contextlib.suppress(ValueError):
            e = json.loads(line)
            if "CLOUDVIZ_EVENT" in e:
                found.append(e)
    return found


def journal_events(c, event):
    return [e for e in journal_all(c) if e["CLOUDVIZ_EVENT"] == event]


def show_new_events(r, c, since):
    """Prints the audit events after the first `since` ones; their count."""
    events = journal_all(c)
    for e in events[since:]:
        r.note("journal: %s: %s" % (e["CLOUDVIZ_EVENT"], e.get("MESSAGE", "")))
    return len(events)


def in_dynamic_set(c, addr):
    rc, out = c.sh("nft list set inet cloudviz dynamic_v4")
    return rc == 0 and re.search(r"(?<![\d.])%s(?![\d.])" % re.escape(addr), out) is not None


def agent_lists(c, addr):
    rc, out = c.sh("cloudviz-agent list")
    return rc == 0 and addr in out


def status_blocked(c):
    m = STATUS_RE.match(unit_prop(c, "StatusText"))
    return int(m.group(1)) if m else None


def check_block_kept(r, c, when):
    r.check(in_dynamic_set(c, BLOCK), "%s: %s in set inet cloudviz dynamic_v4" % (when, BLOCK),
            c.sh("nft list set inet cloudviz dynamic_v4")[1])
    r.check(agent_lists(c, BLOCK), "%s: `cloudviz-agent list` shows %s" % (when, BLOCK),
            c.sh("cloudviz-agent list")[1])
    r.check(status_blocked(c) == 1, "%s: STATUS says 1 blocked" % when, unit_prop(c, "StatusText"))


def active_with_new_pid(c, old_pid, timeout):
    def ready():
        pid = unit_prop(c, "MainPID")
        if unit_prop(c, "ActiveState") == "active" and pid not in ("", "0", old_pid):
            return pid
        return None
    return wait_for(ready, timeout)


# ---- the steps ------------------------------------------------------------

def step_boot(r, c):
    r.section("boot Debian 12 under systemd-nspawn (private network)")
    c.boot(r)
    # is-system-running --wait needs the manager's private bus, which comes
    # a moment after PID 1 itself
    r.require(wait_for(lambda: c.sh("test -S /run/systemd/private")[0] == 0, 60),
              "systemd's bus /run/systemd/private is up")
    rc, state = c.sh("systemctl is-system-running --wait", timeout=180)
    state = state.strip()
    r.require(state in ("running", "degraded"), "system is up: %s" % state, state)
    if state == "degraded":
        c.show(r, "systemctl --failed --no-pager --plain")
    c.show(r, "uname -r; . /etc/os-release; echo $PRETTY_NAME; systemctl --version | head -1; "
              "ip -br link")
    c.sh("apt-get -q update", timeout=120)
    rc, out = c.show(r, "apt-cache policy", shown=lambda ls: [l for l in ls if "local-repo" in l])
    r.require(rc == 0 and "local-repo" in out, "apt inside sees only the local repository", out)


def apt_list(out, heading):
    """The package names apt lists under "The following <heading> ...:"."""
    m = re.search(r"^The following %s[^\n]*:\n((?:  .*\n)+)" % re.escape(heading), out, re.M)
    return m.group(1).split() if m else []


def installed(c, pkg):
    return c.sh("dpkg-query -W -f='${Status}' %s" % pkg)[1] == "install ok installed"


def apt_install_lines(lines):
    """Of apt's output: its package lists, summary, our package's setup,
    warnings and errors."""
    keep, in_list = [], False
    for ln in lines:
        if ln.startswith("The following"):
            in_list = True
            keep.append(ln)
        elif in_list and ln.startswith("  "):
            keep.append(ln)
        else:
            in_list = False
            if re.match(r"(\d+ upgraded|Setting up cloudviz|Created symlink|[WE]: |dpkg)", ln):
                keep.append(ln)
    return keep


def step_install(r, c, deb_inside):
    r.section("1. apt install ./%s" % os.path.basename(deb_inside))
    before = {lib for lib in RUNTIME_LIBS if installed(c, lib)}
    r.note("runtime libraries already in the minimal root: %s" % " ".join(sorted(before)))
    rc, out = c.show(r, "cd %s && %s install ./%s" % (
        os.path.dirname(deb_inside), APT, os.path.basename(deb_inside)),
        timeout=600, shown=apt_install_lines)
    r.require(rc == 0, "apt install exit 0", tail(out, 40))
    new, upgraded = apt_list(out, "NEW packages"), apt_list(out, "packages will be upgraded")
    pulled = sorted(p for p in new + upgraded if p != "cloudviz-agent")
    r.note("apt pulled from the local repository: new: %s; upgraded: %s" % (
        " ".join(p for p in new if p != "cloudviz-agent") or "none", " ".join(upgraded) or "none"))
    missing = [lib for lib in RUNTIME_LIBS if not installed(c, lib)]
    r.check(not missing, "runtime libraries installed: %s" % " ".join(RUNTIME_LIBS),
            "missing: %s" % " ".join(missing))
    new_libs = sorted(set(RUNTIME_LIBS) - before)
    r.check(all(lib in pulled for lib in new_libs),
            "apt pulled each runtime library the root lacked (%s)" % " ".join(new_libs),
            "pulled: %s" % " ".join(pulled))
    rc, out = c.sh("ldd /usr/sbin/cloudviz-agent")
    r.check(rc == 0 and "not found" not in out, "ldd /usr/sbin/cloudviz-agent: nothing missing",
            out)
    check_service(r, c)
    check_table(r, c)
    check_confinement(r, c)


def check_service(r, c):
    """Enabled, running, its STATUS= line, agent_started in the journal."""
    r.check(c.sh("systemctl is-enabled %s" % UNIT)[1].strip() == "enabled",
            "systemctl is-enabled: enabled", c.sh("systemctl is-enabled %s" % UNIT)[1])
    active = wait_for(lambda: c.sh("systemctl is-active %s" % UNIT)[1].strip() == "active", 15)
    r.require(active, "systemctl is-active: active",
              c.sh("systemctl status %s --no-pager -l; journalctl -u %s --no-pager -n 40" %
                   (UNIT, UNIT))[1])
    r.check(unit_prop(c, "SubState") == "running", "SubState running", unit_prop(c, "SubState"))
    rc, status = c.show(r, "systemctl status %s --no-pager -l -n 5" % UNIT)
    text = unit_prop(c, "StatusText")
    m = STATUS_RE.match(text)
    r.check(m is not None and ('Status: "%s"' % text) in status,
            "systemctl status shows the STATUS line: %s" % text, text)
    r.check(m is not None and m.group(1) == "0", "STATUS: 0 blocked after install", text)

    started = wait_for(lambda: journal_events(c, "agent_started"), 10)
    r.check(started, "journalctl -u %s -o json: CLOUDVIZ_EVENT=agent_started" % UNIT,
            c.sh("journalctl -u %s --no-pager -n 30" % UNIT)[1])
    if started:
        r.note("MESSAGE=%s" % started[-1].get("MESSAGE"))


def check_table(r, c):
    """The installed default policy: every hook chain accepts."""
    rc, table = c.show(r, "nft list table inet cloudviz")
    r.require(rc == 0, "nft list table inet cloudviz", table)
    for chain in ("input", "forward", "output"):
        r.check(re.search(r"chain %s \{\s*type filter hook %s priority [^;]+; policy accept;"
                          % (chain, chain), table),
                "default policy: %s hook, policy accept" % chain, table)


def check_confinement(r, c):
    """The service's process: its user, CAP_NET_ADMIN alone, no_new_privs,
    a seccomp filter."""
    pid = unit_prop(c, "MainPID")
    rc, st = c.show(r, "grep -E '^(Uid|Gid|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|"
                       "Seccomp):' /proc/%s/status" % pid)
    fields = dict(re.findall(r"^(\w+):\s*(.*)$", st, re.M))
    uid = c.sh("id -u %s" % USER)[1].strip()
    r.check(uid.isdigit() and fields.get("Uid", "").split() == [uid] * 4,
            "Uid: user %s (%s) real, effective, saved, fs" % (USER, uid), fields.get("Uid"))
    for cap in ("CapEff", "CapPrm", "CapBnd"):
        r.check(fields.get(cap) == CAP_NET_ADMIN_ONLY, "%s %s (CAP_NET_ADMIN only)" % (
            cap, CAP_NET_ADMIN_ONLY), fields.get(cap))
    r.check(fields.get("NoNewPrivs") == "1", "NoNewPrivs 1", fields.get("NoNewPrivs"))
    r.check(fields.get("Seccomp") == "2", "Seccomp 2 (filter)", fields.get("Seccomp"))


def step_block(r, c):
    r.section("2. block, reload, restart")
    rc, out = c.show(r, "cloudviz-agent block %s" % BLOCK)
    r.require(rc == 0, "cloudviz-agent block %s as root: exit 0" % BLOCK, out)
    c.show(r, "nft list set inet cloudviz dynamic_v4")
    check_block_kept(r, c, "after block")

    seen = show_new_events(r, c, len(journal_all(c)) - 1)
    pid = unit_prop(c, "MainPID")
    rc, out = c.show(r, "systemctl reload %s" % UNIT)
    r.check(rc == 0, "systemctl reload: exit 0", out)
    r.check(unit_prop(c, "ActiveState") == "active" and unit_prop(c, "MainPID") == pid,
            "still active, same MainPID %s" % pid, unit_prop(c, "MainPID"))
    seen = show_new_events(r, c, seen)
    check_block_kept(r, c, "after reload")

    n_started = len(journal_events(c, "agent_started"))
    rc, out = c.show(r, "systemctl restart %s" % UNIT)
    r.check(rc == 0, "systemctl restart: exit 0", out)
    new = active_with_new_pid(c, pid, 15)
    r.check(new, "active again with a new MainPID (%s -> %s)" % (pid, new),
            c.sh("systemctl status %s --no-pager" % UNIT)[1])
    r.check(wait_for(lambda: len(journal_events(c, "agent_started")) > n_started, 10),
            "a new agent_started in the journal")
    show_new_events(r, c, seen)
    check_block_kept(r, c, "after restart")


def step_kill(r, c):
    r.section("3. kill -9 of the main PID")
    pid = unit_prop(c, "MainPID")
    seen = len(journal_all(c))
    rc, out = c.show(r, "kill -9 %s" % pid)
    r.require(rc == 0, "kill -9 %s" % pid, out)
    new = active_with_new_pid(c, pid, 30)
    r.check(new, "systemd restarted it (Restart=on-failure): active, MainPID %s -> %s"
            % (pid, new), c.sh("systemctl status %s --no-pager" % UNIT)[1])
    c.show(r, "systemctl show -p NRestarts -p Result -p ExecMainStatus %s" % UNIT)
    r.check(int(unit_prop(c, "NRestarts") or 0) >= 1, "NRestarts >= 1",
            unit_prop(c, "NRestarts"))
    r.check(wait_for(lambda: any(e["CLOUDVIZ_EVENT"] == "agent_started"
                                 for e in journal_all(c)[seen:]), 10),
            "a new agent_started in the journal")
    show_new_events(r, c, seen)
    check_block_kept(r, c, "after kill -9")


DETECT_ADDR = "192.0.2.77"
FORGED_ADDR = "192.0.2.78"


def step_detect(r, c):
    r.section("3b. local detection: the journal read under the unit")
    conf = "/etc/cloudviz-agent/agent.json"
    rc, before = c.sh("cat %s" % conf)
    cfg = json.loads(before)
    # the lines come from a transient ssh.service's stdout (no sshd in the
    # container): the journal stream keeps _SYSTEMD_UNIT for the unit's
    # whole life, where a short-lived `logger` could lose it
    cfg["detect"] = {"max_failures": 3, "ttl": 600, "sshd": {"transport": ["syslog", "stdout"]}}
    rc, out = c.sh("cat > %s" % conf, input=json.dumps(cfg, indent=2) + "\n")
    r.require(rc == 0, "agent.json: detect {max_failures 3, ttl 600, sshd transport syslog "
              "and stdout}", out)
    rc, out = c.show(r, "systemctl reload %s" % UNIT)
    r.require(rc == 0, "systemctl reload: exit 0", out)
    c.show(r, "getfacl -p /var/log/journal/$(cat /etc/machine-id) 2>/dev/null | grep cloudviz "
              "|| ls -la /var/log/journal/$(cat /etc/machine-id)")
    seen = len(journal_all(c))
    # forged: logger as root outside any unit (_COMM=logger): counts nothing
    rc, out = c.show(r, "for i in 1 2 3 4 5; do logger -t sshd 'Failed password for root from "
                        "%s port 4%s ssh2'; done" % (FORGED_ADDR, "$i"))
    # trusted: a transient ssh.service (journald's _SYSTEMD_UNIT, _UID=0)
    rc, out = c.show(r, "systemd-run --quiet --wait --unit=ssh -p StandardOutput=journal "
                        "/bin/sh -c 'for i in 1 2 3; do echo \"Failed password for root from "
                        "%s port 5$i ssh2\"; done'" % DETECT_ADDR)
    r.require(rc == 0, "systemd-run --unit=ssh: three failure lines as ssh.service", out)

    def blocked():
        rc, out = c.sh("nft list set inet cloudviz dynamic_v4")
        return rc == 0 and re.search(r"(?<![\d.])%s(?![\d.])" % re.escape(DETECT_ADDR), out)
    r.check(wait_for(blocked, 10), "%s in set inet cloudviz dynamic_v4, blocked by the agent "
            "itself" % DETECT_ADDR, c.sh("nft list set inet cloudviz dynamic_v4; "
                                         "cloudviz-agent status")[1])
    rc, out = c.show(r, "cloudviz-agent list --origin detect")
    r.check(rc == 0 and DETECT_ADDR in out, "cloudviz-agent list --origin detect shows it", out)
    alerts = [e for e in journal_all(c)[seen:] if e["CLOUDVIZ_EVENT"] == "security_alert"]
    r.check(any(e.get("CLOUDVIZ_ADDR") == DETECT_ADDR and e.get("CLOUDVIZ_SOURCE") == "sshd" and
                e.get("CLOUDVIZ_ATTEMPTS") == "3" for e in alerts),
            "security_alert: CLOUDVIZ_ADDR %s, CLOUDVIZ_SOURCE sshd, CLOUDVIZ_ATTEMPTS 3"
            % DETECT_ADDR, "\n".join(json.dumps(e) for e in alerts))
    r.check(not any(e.get("CLOUDVIZ_ADDR") == FORGED_ADDR for e in journal_all(c)[seen:]) and
            not re.search(re.escape(FORGED_ADDR), c.sh("nft list set inet cloudviz dynamic_v4")[1]),
            "logger -t sshd as root (_COMM=logger): %s neither alerted nor blocked" % FORGED_ADDR)
    show_new_events(r, c, seen)
    rc, out = c.show(r, "cloudviz-agent unblock %s --origin detect" % DETECT_ADDR)
    r.check(rc == 0 and not blocked(), "unblock --origin detect: gone from the set", out)
    check_block_kept(r, c, "after the detect step")


def step_upgrade(r, c, root, upgrade):
    r.section("4. upgrade over an edited conffile")
    newdeb = upgrade.wait(r)
    old_v = c.sh("dpkg-query -W -f='${Version}' cloudviz-agent")[1].strip()
    new_v = deb_field(newdeb, "Version")
    r.require(host(["dpkg", "--compare-versions", new_v, "gt", old_v], check=False)
              .returncode == 0, "the newer package's version %s > installed %s" % (new_v, old_v))
    inside_dir = "/var/tmp/cvz-pkg"
    shutil.copy(newdeb, os.path.join(root, inside_dir.lstrip("/")))
    os.chmod(os.path.join(root, inside_dir.lstrip("/"), os.path.basename(newdeb)), 0o644)

    conf = "/etc/cloudviz-agent/agent.json"
    rc, before = c.sh("cat %s" % conf)
    cfg = json.loads(before)
    cfg["node_id"] = EDITED_NODE_ID
    edited = json.dumps(cfg, indent=2) + "\n"
    rc, out = c.sh("cat > %s" % conf, input=edited)  # same inode, owner and mode
    r.require(rc == 0, "edited %s: node_id %s" % (conf, EDITED_NODE_ID), out)
    rc, out = c.show(r, "stat -c '%%A %%U:%%G %%n' %s; cat %s; cloudviz-agent check -c %s" %
                     (conf, conf, conf))
    r.require(rc == 0, "cloudviz-agent check -c %s: the edited config is valid" % conf, out)
    pid = unit_prop(c, "MainPID")
    n_started = len(journal_events(c, "agent_started"))
    seen = len(journal_all(c))

    rc, out = c.show(r, "cd %s && %s install ./%s" % (inside_dir, APT, os.path.basename(newdeb)),
                     timeout=600, shown=lambda ls: [l for l in ls if re.match(
                         r"(\d+ upgraded|Preparing|Unpacking|Setting up|Configuration file|"
                         r"[WE]: |dpkg)", l)])
    r.require(rc == 0, "apt install ./%s: exit 0" % os.path.basename(newdeb), tail(out, 40))
    r.check(c.sh("dpkg-query -W -f='${Version}' cloudviz-agent")[1].strip() == new_v,
            "dpkg-query -W: cloudviz-agent %s" % new_v,
            c.sh("dpkg-query -W cloudviz-agent")[1])
    r.check(c.sh("cat %s" % conf)[1] == edited, "the edited conffile is kept byte for byte",
            c.sh("cat %s" % conf)[1])
    c.show(r, "ls -la /etc/cloudviz-agent/")
    r.check(not c.sh("ls /etc/cloudviz-agent/ | grep -E 'dpkg-(dist|new|old)'")[1].strip(),
            "no .dpkg-dist/.dpkg-new left beside it")
    new = active_with_new_pid(c, pid, 30)
    r.check(new, "the upgrade restarted the service onto the new binary: active, MainPID "
            "%s -> %s" % (pid, new), c.sh("systemctl status %s --no-pager" % UNIT)[1])
    events = wait_for(lambda: [e for e in journal_events(c, "agent_started")[n_started:]
                               if EDITED_NODE_ID in e.get("MESSAGE", "")], 10)
    r.check(events, "the new agent runs with the edited config: agent_started names node %s"
            % EDITED_NODE_ID, "\n".join(e.get("MESSAGE", "") for e in
                                          journal_events(c, "agent_started")))
    show_new_events(r, c, seen)
    check_block_kept(r, c, "after upgrade")


def step_remove_purge(r, c):
    r.section("5. apt remove, then apt purge")
    quiet = lambda ls: [l for l in ls if re.match(r"(\d+ upgraded|Removing|Purging|[WE]: |dpkg|"
                                                 r"cloudviz)", l)]
    rc, out = c.show(r, "%s remove cloudviz-agent" % APT, timeout=300, shown=quiet)
    r.require(rc == 0, "apt remove: exit 0", tail(out, 30))
    state = c.sh("systemctl is-active %s" % UNIT)[1].strip()
    r.check(state != "active", "service stopped: is-active %s" % state)
    r.check(not c.sh("pgrep -x cloudviz-agent")[1].strip(), "no cloudviz-agent process",
            c.sh("pgrep -a cloudviz-agent")[1])
    c.show(r, "dpkg-query -W -f='${db:Status-Abbrev} ${Package} ${Version}\\n' cloudviz-agent; "
              "ls -la /etc/cloudviz-agent /var/lib/cloudviz-agent")
    r.check(c.sh("test -f /etc/cloudviz-agent/agent.json && test -f "
                 "/etc/cloudviz-agent/policy.json")[0] == 0, "config kept after remove")
    r.check(c.sh("test -d /var/lib/cloudviz-agent && test -n \"$(ls -A /var/lib/cloudviz-agent)\"")
            [0] == 0, "state (/var/lib/cloudviz-agent) kept after remove")
    r.check(c.sh("grep -q %s /etc/cloudviz-agent/agent.json" % EDITED_NODE_ID)[0] == 0,
            "the edited conffile kept after remove")
    rc, out = c.sh("nft list tables")
    r.note("kernel tables after remove: %s" % (" ".join(out.split()) or "none"))

    rc, out = c.show(r, "%s purge cloudviz-agent" % APT, timeout=300, shown=quiet)
    r.require(rc == 0, "apt purge: exit 0", tail(out, 30))
    for d in ("/etc/cloudviz-agent", "/var/lib/cloudviz-agent"):
        r.check(c.sh("test -e %s" % d)[0] != 0, "%s gone" % d, c.sh("ls -la %s" % d)[1])
    rc, out = c.sh("getent passwd %s" % USER)
    r.check(rc == 2 and not out.strip(), "getent passwd %s: empty" % USER, out)
    rc, out = c.sh("getent group %s" % USER)
    r.check(rc == 2 and not out.strip(), "getent group %s: empty" % USER, out)
    r.check(not c.sh("dpkg-query -W -f='${db:Status-Abbrev}' cloudviz-agent 2>/dev/null | "
                     "grep -v '^un'")[1].strip(), "dpkg knows no cloudviz-agent any more",
            c.sh("dpkg -l cloudviz-agent")[1])
    rc, out = c.sh("nft list tables")
    r.note("kernel tables after purge: %s (README.Debian: the table stays until reboot or "
           "nft delete table)" % (" ".join(out.split()) or "none"))


def on_failure_dump(r, c):
    if c.leader is None or c.proc is None or c.proc.poll() is not None:
        return
    print("\n== diagnostics", flush=True)
    c.show(r, "systemctl status %s --no-pager -l -n 0" % UNIT)
    c.show(r, "journalctl -u %s --no-pager -n 60" % UNIT)
    c.show(r, "systemctl --failed --no-pager --plain")


def _raise_exit(signum, frame):
    raise SystemExit(128 + signum)


def main():
    if os.geteuid() != 0:
        print("SKIP package lifecycle: needs root (debootstrap, systemd-nspawn, nsenter)")
        return SKIP_EXIT
    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(s, _raise_exit)
    r = Report()
    tmp = tempfile.mkdtemp(prefix="cvz-pkg.", dir="/var/tmp")
    os.chmod(tmp, 0o755)
    root = os.path.join(tmp, "root")
    c = Container(root, os.path.join(tmp, "console.log"))
    upgrade = UpgradeBuild(tmp)
    broke = None
    try:
        r.section("prepare")
        deb = find_deb()
        r.require(os.path.isfile(deb), "package %s" % deb,
                  "not found: run `make deb` (or set CVZ_DEB)")
        r.note("%s %s (%s, %d kB)" % (deb_field(deb, "Package"), deb_field(deb, "Version"),
                                      deb_field(deb, "Architecture"), os.path.getsize(deb) >> 10))
        r.note("Depends: %s" % deb_field(deb, "Depends"))
        ensure_host_tools(r)
        upgrade.start()
        ensure_rootfs(r)
        unpack_rootfs(root)
        r.note("unpacked into %s" % root)
        make_local_repo(r, root, [deb])
        inside_dir = os.path.join(root, "var/tmp/cvz-pkg")
        os.makedirs(inside_dir, mode=0o755)
        shutil.copy(deb, inside_dir)
        os.chmod(os.path.join(inside_dir, os.path.basename(deb)), 0o644)

        step_boot(r, c)
        step_install(r, c, "/var/tmp/cvz-pkg/" + os.path.basename(deb))
        step_block(r, c)
        step_kill(r, c)
        step_detect(r, c)
        step_upgrade(r, c, root, upgrade)
        step_remove_purge(r, c)
    except Abort as e:
        broke = str(e)
    except subprocess.TimeoutExpired as e:
        broke = "timed out: %s" % e
    except SystemExit as e:
        broke = "interrupted (%s)" % e.code
    finally:
        try:
            if broke is not None:
                if "\n" in broke or not r.failed:
                    r.check(False, "harness", broke)
                print("\nstopped early: %s" % broke.splitlines()[0], flush=True)
                on_failure_dump(r, c)
            r.section("shut down")
            upgrade.stop()
            c.stop(r)
        finally:
            if os.environ.get("CVZ_KEEP") == "1":
                r.note("kept %s (CVZ_KEEP=1)" % tmp)
            elif mounts_under(tmp):
                r.check(False, "nothing mounted under %s" % tmp, "\n".join(mounts_under(tmp)))
            else:
                subprocess.run(["rm", "-rf", "--one-file-system", tmp])
    r.summary()
    return 0 if r.failed == 0 and broke is None else 1


if __name__ == "__main__":
    sys.exit(main())
