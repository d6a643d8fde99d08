"""Debian's real sshd in a test network namespace, logging through syslog to
the test's private journald (tests/integration/with-journald), and clients
that fail to log in to it. For local detection's tests (docs/detect.md) and
bench/detect_bench.py.

    import harness, netns, sshd
    t = harness.topology(cleanups, containers=False)
    s = sshd.Sshd(cleanups, tmp, t.ns["node"], [netns.A.NODE_PUB4, netns.A.NODE_PUB6])
    s.start()                                   # listening, and its log reached the journal
    got = sshd.failed_logins(t.ns["pub"], netns.A.PUB_203, netns.A.NODE_PUB4, "root", 5)
    # got == [sshd.REFUSED] * 5: sshd said no to each password
    sshd.connect_outcome(t.ns["pub"], netns.A.PUB_203, netns.A.NODE_PUB4)  # "accepted" / "dropped"
    s.lines()                                   # sshd's journal entries so far

The API, all of it:

  Sshd(cleanups, tmp, ns, addrs, port=22, extra_config=(), users=None)
      .start(timeout=10), .stop(), .pid, .addrs, .port, .user, .password
      .lines(after=None)            its journal entries (every process of it)
  Logins(ns, src, dst, user, n, port=22).wait(timeout=20)    -> [outcome]
      n logins at once, in the background until wait()
  failed_logins(ns, src, dst, user, n, port=22, parallel=10)  -> [outcome]
  login(ns, src, dst, user, password, port=22)                -> outcome
      (REFUSED, LOGGED_IN, CUT or "exit N: ssh's last stderr line")
  connect_outcome(ns, src, dst, port=22, timeout=1.0)         -> netns outcome
  message_form(msg)                 msg with addresses and numbers replaced
  missing_tools()                   what is not installed (a test skips on it)

Reading and writing the private journal, and restarting its journald, are
in jtools.py.

How sshd runs. `ip netns exec NS unshare -m` puts it in a mount namespace
of its own inside the test's (which with-journald made private), where

  - /run is a fresh tmpfs with /run/sshd (the privilege separation chroot,
    compiled into sshd) and the test's /run/systemd moved back onto it, so
    the host's /run is never written and the host's sshd never disturbed;
  - /dev/log reaches the private journald: on Debian with systemd /dev/log
    is a link to /run/systemd/journal/dev-log, which is already the private
    journald's socket; where /dev/log does not lead there (a container
    without it) /dev becomes an overlay of itself with that link added (its
    pts/shm/mqueue mounts bound back), in that mount namespace only;
  - /etc/passwd and /etc/shadow are copies with one more user (`user`,
    `password`, uid >= 60100, no home), so the "authenticating user" forms
    of a known user can be provoked without adding a user to the host.

sshd runs as Debian configures it where it matters for the log: its own
sshd_config in tmp (PasswordAuthentication yes, UsePAM yes with Debian's
/etc/pam.d/sshd, PermitRootLogin prohibit-password, LogLevel INFO, facility
AUTH), host key made fresh in tmp, ListenAddress on each of addrs only, no
pid file. It runs -D (the pid is the listener); it is not started with -e,
so it logs through /dev/log as sshd does under systemd. start() returns only
once sshd's "Server listening on" line of every address is in the journal
(written after listen(2): the proof that it listens and that its syslog
reaches the private journald).
stop() ends the listener and each per-connection process by pid.

What sshd 9.2 (Debian 12) writes per failed password login is in
golden/sshd-9.2-failures.json (recorded by tests/integration/sshd_record).
"""

import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import time

import netns
from jtools import journal, journal_cursor

SSHD = "/usr/sbin/sshd"
REFUSED = "refused"      # sshd said "Permission denied" (wrong password, unknown user)
LOGGED_IN = "logged in"
CUT = "cut"              # no answer in time: killed (a block made while it was in flight)
TOOLS = ("sshd", "ssh", "ssh-keygen", "sshpass", "journalctl", "unshare", "openssl")

# Runs in sshd's own mount namespace; $1 is a private staging directory.
_MOUNTS = r"""
set -eu
stage=$1
mkdir -p "$stage/systemd" "$stage/dev"
need_dev=0
if [ ! -S /dev/log ] || [ "$(readlink -f /dev/log)" != /run/systemd/journal/dev-log ]; then
	need_dev=1
fi
mount --rbind /run/systemd "$stage/systemd"
mount -t tmpfs -o mode=0755 cvzt-sshd-run /run
mkdir -m 0755 /run/systemd /run/sshd
mount --move "$stage/systemd" /run/systemd
if [ $need_dev = 1 ]; then
	mount --rbind /dev "$stage/dev"
	mkdir -p /run/cvzt-dev/upper /run/cvzt-dev/work
	mount -t overlay cvzt-dev -o "lowerdir=$stage/dev,upperdir=/run/cvzt-dev/upper,workdir=/run/cvzt-dev/work" /dev
	for sub in pts shm mqueue hugepages; do
		if mountpoint -q "$stage/dev/$sub"; then
			mount --rbind "$stage/dev/$sub" "/dev/$sub"
		fi
	done
	rm -f /dev/log
	ln -s /run/systemd/journal/dev-log /dev/log
	umount -l "$stage/dev"
fi
mount --bind "$stage/../passwd" /etc/passwd
mount --bind "$stage/../shadow" /etc/shadow
shift
exec "$@"
"""


def missing_tools():
    return [t for t in TOOLS if shutil.which(t) is None and
            not (t == "sshd" and os.access(SSHD, os.X_OK))]


def _children(pid):
    kids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        # the field after the parenthesised comm is the state, then the ppid
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            kids.append(int(name))
    return kids


def descendants(pid):
    """Every living process below pid (found through /proc, by ppid)."""
    out, todo = [], [pid]
    while todo:
        for k in _children(todo.pop()):
            out.append(k)
            todo.append(k)
    return out


class Sshd:
    """Debian's sshd listening on addrs (addresses of network namespace ns)
    at port. See the module doc."""

    def __init__(self, cleanups, tmp, ns, addrs, port=22, extra_config=(), users=None):
        self.ns, self.addrs, self.port = ns, list(addrs), port
        self.dir = os.path.join(tmp, "sshd-%s" % ns)
        self.extra_config = list(extra_config)
        self.user, self.password = "cvztuser", "cvzt-known-password"
        self.users = {self.user: self.password}
        self.users.update(users or {})
        self.proc = None
        self.start_cursor = ""
        cleanups.add(self.stop)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def _write_files(self):
        os.makedirs(os.path.join(self.dir, "stage"), exist_ok=True)
        os.chmod(self.dir, 0o700)
        key = os.path.join(self.dir, "ssh_host_ed25519_key")
        if not os.path.exists(key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "cvzt",
                            "-f", key], check=True, capture_output=True)
        with open("/etc/passwd") as f:
            passwd = f.read().rstrip("\n") + "\n"
        with open("/etc/shadow") as f:
            shadow = f.read().rstrip("\n") + "\n"
        uid = 60100
        for name, password in self.users.items():
            while True:
                try:
                    pwd.getpwuid(uid)
                    uid += 1
                except KeyError:
                    break
            crypt = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password,
                                   capture_output=True, text=True, check=True).stdout.strip()
            passwd += "%s:x:%d:65534:cvzt:/:/bin/sh\n" % (name, uid)
            shadow += "%s:%s:19000:0:99999:7:::\n" % (name, crypt)
            uid += 1
        with open(os.path.join(self.dir, "passwd"), "w") as f:
            f.write(passwd)
        with open(os.path.join(self.dir, "shadow"), "w") as f:
            os.fchmod(f.fileno(), 0o640)
            f.write(shadow)
        lines = ["Port %d" % self.port]
        lines += ["ListenAddress %s" % a for a in self.addrs]
        lines += ["HostKey %s" % key, "PidFile none",
                  # Debian's /etc/ssh/sshd_config sets these
                  "UsePAM yes", "KbdInteractiveAuthentication no", "X11Forwarding no",
                  "PrintMotd no", "AcceptEnv LANG LC_*",
                  # OpenSSH's defaults, written out because the log depends on them
                  "PasswordAuthentication yes", "PermitRootLogin prohibit-password",
                  "SyslogFacility AUTH", "LogLevel INFO", "UseDNS no", "MaxAuthTries 6"]
        lines += self.extra_config
        self.config = os.path.join(self.dir, "sshd_config")
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")

    def _wrapped(self, *cmd):
        """cmd in ns, in a mount namespace of its own set up by _MOUNTS;
        every step execs, so the pid is cmd's."""
        return ["ip", "netns", "exec", self.ns, "unshare", "-m", "--propagation", "private",
                "sh", "-c", _MOUNTS, "sh", os.path.join(self.dir, "stage")] + list(cmd)

    def start(self, timeout=10):
        """Starts sshd; returns once its "Server listening on" line of every
        address is in the journal. Raises RuntimeError (with sshd's stderr)
        otherwise."""
        assert self.proc is None or self.proc.poll() is not None, "sshd already running"
        self._write_files()
        check = subprocess.run(self._wrapped(SSHD, "-t", "-f", self.config),
                               capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError("sshd -t: %s%s" % (check.stdout, check.stderr))
        self.start_cursor = journal_cursor()
        self.log_path = os.path.join(self.dir, "sshd.stderr")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self._wrapped(SSHD, "-D", "-f", self.config),
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        want = set("Server listening on %s port %d." % (a, self.port) for a in self.addrs)
        seen = set()
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            seen |= set(e.get("MESSAGE") for e in journal("SYSLOG_IDENTIFIER=sshd",
                                                            after=self.start_cursor))
            if want <= seen:  # sshd logs it after listen(2) succeeded
                return
            time.sleep(0.1)
        with open(self.log_path, errors="replace") as f:
            err = f.read()
        self.stop()
        raise RuntimeError("sshd did not start (lines seen: %s)\nits stderr:\n%s"
                           % (sorted(seen), err))

    def lines(self, after=None):
        """sshd's journal entries since start() (or after the cursor
        `after`): those journald gave SYSLOG_IDENTIFIER=sshd. Whether
        journald could also name the process (_COMM, _EXE) is up to it."""
        return journal("SYSLOG_IDENTIFIER=sshd", after=after or self.start_cursor)

    def stop(self):
        """Ends the listener and every per-connection sshd, by pid."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            kids = descendants(self.proc.pid)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            for k in kids:
                try:
                    os.kill(k, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def _ssh_cmd(ns, src, dst, user, password, port, timeout):
    return ["ip", "netns", "exec", ns, "sshpass", "-p", password,
            "ssh", "-F", "/dev/null", "-b", src, "-p", str(port), "-l", user,
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "LogLevel=INFO",
            "-o", "PreferredAuthentications=password", "-o", "PubkeyAuthentication=no",
            "-o", "NumberOfPasswordPrompts=1", "-o", "ConnectTimeout=%d" % timeout,
            "-o", "BatchMode=no", dst, "true"]


_ADDR_RE = re.compile(r"(?<![\w:.])(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9a-f]*:[0-9a-f:]*:[0-9a-f]+)(?![\w:.])")


def message_form(msg):
    """msg with each IPv4/IPv6 address replaced by ADDR and each port and
    pid number by N: the form of a line, to compare sshd's lines with those
    recorded in golden/sshd-9.2-failures.json."""
    msg = _ADDR_RE.sub("ADDR", msg)
    return re.sub(r"\b(port|uid|euid)([ =])\d+", r"\1\2N", msg)


def _outcome(code, stderr):
    if "Permission denied" in stderr:
        return REFUSED
    if code == 0:
        return LOGGED_IN
    last = stderr.strip().splitlines()[-1:] or ["(no output)"]
    return "exit %d: %s" % (code, last[0])


class Logins:
    """n logins as user with a wrong password from source address src in
    network namespace ns to dst:port, all at once, each its own ssh
    connection making one password attempt. wait() gives their outcomes."""

    def __init__(self, ns, src, dst, user, n, port=22, password="wrong-password",
                 connect_timeout=10):
        self.procs = [subprocess.Popen(_ssh_cmd(ns, src, dst, user, password, port,
                                                connect_timeout),
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE, text=True)
                      for _ in range(n)]

    def wait(self, timeout=20):
        """One outcome per login: REFUSED (sshd said "Permission denied"),
        LOGGED_IN, CUT (still waiting for sshd's answer after timeout
        seconds: killed; what a block made while a login is in flight does
        to it), or "exit N: ssh's last line"."""
        deadline = time.monotonic() + timeout
        out = []
        for p in self.procs:
            try:
                _, err = p.communicate(timeout=max(0.0, deadline - time.monotonic()))
                out.append(_outcome(p.returncode, err))
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
                out.append(CUT)
        return out


def failed_logins(ns, src, dst, user, n, port=22, parallel=10, password="wrong-password",
                  timeout=20):
    """Logins(...) of n, up to `parallel` at a time (PAM's delay on a
    failure is 2 s, so n in a row would take 2n s); their outcomes."""
    out = []
    step = max(1, parallel)
    for first in range(0, n, step):
        out += Logins(ns, src, dst, user, min(step, n - first), port, password,
                      timeout // 2).wait(timeout)
    return out


def login(ns, src, dst, user, password, port=22, timeout=20):
    """One login running `true`: LOGGED_IN, REFUSED or "exit N: ..."."""
    p = subprocess.run(_ssh_cmd(ns, src, dst, user, password, port, timeout // 2),
                       stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=timeout)
    return _outcome(p.returncode, p.stderr)


def connect_outcome(ns, src, dst, port=22, timeout=1.0):
    """One real TCP connect from src in ns to dst:port: netns.ACCEPTED,
    netns.DROPPED (no answer within timeout), netns.REFUSED (RST), ..."""
    return netns.probe([netns.Probe(ns, src, dst, port)], timeout)[0]
