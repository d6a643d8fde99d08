"""The test's private journal (tests/integration/with-journald): read it,
write to it as a process of one's choosing, restart its journald. For local
detection's tests (docs/detect.md) and bench/detect_bench.py.

    journal(*matches, after=None)  `journalctl -o json` entries (dicts)
    journal_cursor()               the cursor of the newest entry ("" if none)
    Writer(cleanups, tmp, comm="sshd", uid=None, exe=None)
        a process that stays alive and writes what it is told:
        .syslog(msg, ident="sshd")   one syslog datagram to /dev/log's socket,
                                     the way glibc's syslog(3) sends it
        .native(fields)              one entry over journald's native protocol
        .stdout(msg, ident="sshd")   one line on a stream to journald, as a
                                     service's stdout (_TRANSPORT=stdout)
        .pid, .stop()
    journald_pid()                 the private journald's pid
    paused_journald(cleanups)      a context: journald stopped for its body
    restart_journald(cleanups, sig=signal.SIGTERM)
                                   ends it by pid and starts it again

What journald records as the writer's trusted fields comes from the kernel:
_PID and _UID from the socket's credentials, _COMM from /proc/PID/comm
(Writer sets it with prctl(PR_SET_NAME)), _EXE from /proc/PID/exe (with
exe=PATH the writer is a copy of the Python interpreter at PATH, so _EXE is
PATH and _COMM its base name). journald reads /proc when a pid's
datagram arrives and reuses what it read for that pid for 5 s
(journald-context.c), which is why a Writer stays alive: a line that
arrives after its process exited, as the pid's first or past those 5 s,
gets neither _COMM nor _EXE (paused_journald() arranges that).

Everything here must run inside with-journald's mount namespace (the test
scripts' harness.main(..., journald=True) puts them there): the sockets
under /run/systemd/journal are then the private journald's.
"""

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

JOURNALD = "/lib/systemd/systemd-journald"
DEV_LOG = "/run/systemd/journal/dev-log"
NATIVE = "/run/systemd/journal/socket"
STDOUT = "/run/systemd/journal/stdout"
SYSTEM_PYTHON = "/usr/bin/python3"
PR_SET_NAME, PR_SET_PDEATHSIG = 15, 1
LOG_AUTH, LOG_INFO = 4, 6


def _in_private_journal():
    if os.environ.get("CVZ_IN_JOURNALD_NS") != "1":
        raise RuntimeError("not inside with-journald: this would be the host's journal")


def journal(*matches, after=None):
    """`journalctl -o json` entries (dicts, oldest first) that match every
    FIELD=VALUE in matches ("+" between them: either side), after the
    cursor `after` when given."""
    cmd = ["journalctl", "-o", "json", "--no-pager", "-q"]
    if after:
        # not --after-cursor: journalctl 252 skips one entry after seeking,
        # the first match when the cursor's own entry does not match
        cmd += ["--cursor", after]
    p = subprocess.run(cmd + list(matches), capture_output=True, text=True, timeout=60)
    got = []
    for line in p.stdout.splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("__CURSOR") != after:
            got.append(e)
    return got


def journal_cursor():
    """The cursor of the newest entry ("" when the journal is empty)."""
    p = subprocess.run(["journalctl", "-n", "1", "-o", "json", "--no-pager", "-q"],
                       capture_output=True, text=True, timeout=60)
    try:
        return json.loads(p.stdout.splitlines()[-1])["__CURSOR"]
    except (ValueError, IndexError, KeyError):
        return ""


def _native_datagram(fields):
    out = b""
    for k, v in fields.items():
        v = v.encode() if isinstance(v, str) else bytes(v)
        if b"\n" in v:
            out += k.encode() + b"\n" + struct.pack("<Q", len(v)) + v + b"\n"
        else:
            out += k.encode() + b"=" + v + b"\n"
    return out


def _syslog_datagram(msg, ident, facility, priority, pid):
    stamp = time.strftime("%b %e %H:%M:%S", time.localtime())
    tag = "%s[%d]" % (ident, pid) if pid else ident
    return ("<%d>%s %s: " % (facility * 8 + priority, stamp, tag)).encode() + \
        (msg.encode() if isinstance(msg, str) else msg)


class Writer:
    """A long-lived process whose journal lines carry the trusted fields
    chosen here: comm (its /proc comm, at most 15 bytes), uid (setpriv;
    None: root), exe (a path: the writer runs as a copy of this Python made
    there). Each call returns once the datagram is sent."""

    def __init__(self, cleanups, tmp, comm="sshd", uid=None, exe=None):
        _in_private_journal()
        # Debian's own Python: one in a root-only place (pyenv under /root)
        # cannot run as another uid
        python = SYSTEM_PYTHON if os.access(SYSTEM_PYTHON, os.X_OK) else sys.executable
        if exe:
            os.makedirs(os.path.dirname(exe), exist_ok=True)
            shutil.copy2(os.path.realpath(python), exe)
            os.chmod(exe, 0o755)
            python = exe
        script = os.path.abspath(__file__)
        if uid is not None:
            # the tree may be where that uid cannot read (a clone in /root):
            # a copy in the test's directory, which other uids can traverse
            copy = os.path.join(tmp, "jtools-writer.py")
            if not os.path.exists(copy):
                shutil.copy(script, copy)
                os.chmod(copy, 0o644)
            script = copy
        cmd = [python, "-B", script, "writer", comm or ""]
        if uid is not None:
            cmd = ["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid, "--clear-groups"] + cmd
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, cwd="/")
        cleanups.add(self.stop)
        ready = self.proc.stdout.readline()
        if not ready.startswith("ready"):
            self.stop()
            raise RuntimeError("journal writer did not start: %r" % ready)
        self.pid = self.proc.pid

    def _ask(self, req):
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        got = self.proc.stdout.readline()
        if got.strip() != "ok":
            raise RuntimeError("journal writer: %r" % got)

    def syslog(self, msg, ident="sshd", facility=LOG_AUTH, priority=LOG_INFO, with_pid=True):
        """msg as "<PRI>TIME IDENT[PID]: MSG" to /dev/log's socket."""
        self._ask({"syslog": msg, "ident": ident, "facility": facility,
                   "priority": priority, "with_pid": with_pid})

    def native(self, fields):
        """One entry with these fields (MESSAGE, SYSLOG_IDENTIFIER, ...)."""
        self._ask({"native": fields})

    def stdout(self, msg, ident="sshd"):
        """msg as one line on a stream to journald's stdout socket (what a
        service's stdout is under systemd: _TRANSPORT=stdout); the stream
        is opened at the first call, with ident, and kept."""
        self._ask({"stdout": msg, "ident": ident})

    def stop(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _writer_main(comm):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if comm:
        libc.prctl(PR_SET_NAME, comm.encode()[:15], 0, 0, 0)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    stream = None
    print("ready", flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        if "stdout" in req:
            if stream is None:
                stream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                stream.connect(STDOUT)
                # identifier, unit, priority, level prefix, forward to
                # syslog, kmsg, console (journald-stream.c)
                stream.sendall(("%s\n\n%d\n0\n0\n0\n0\n" % (req["ident"], LOG_INFO)).encode())
            stream.sendall(req["stdout"].encode() + b"\n")
        elif "native" in req:
            s.sendto(_native_datagram(req["native"]), NATIVE)
        else:
            s.sendto(_syslog_datagram(req["syslog"], req["ident"], req["facility"],
                                      req["priority"], os.getpid() if req["with_pid"] else 0),
                     DEV_LOG)
        print("ok", flush=True)


# -- the private journald ------------------------------------------------------

_restarted = None  # the journald this module started, if any


def _state(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def _exe(pid):
    try:
        return os.readlink("/proc/%d/exe" % pid)
    except OSError:
        return None


def journald_pid():
    """The pid of the private journald: the one restart_journald() started
    last, else the one with-journald started (a child of with-journald's
    shell, which is this test's parent). None if there is none."""
    _in_private_journal()
    if _restarted is not None and _restarted.poll() is None:
        return _restarted.pid
    want = os.path.realpath(JOURNALD)
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getppid() and _exe(int(name)) == want and _state(int(name)) != "Z":
            return int(name)
    return None


@contextlib.contextmanager
def paused_journald(cleanups):
    """Stops the private journald (SIGSTOP) for the body and lets it go on
    (SIGCONT) after it, also when the body raises or the test is
    interrupted: what is sent meanwhile waits in its sockets, and a sender
    that exits before journald goes on leaves lines without _COMM and
    _EXE, as a process that exits right after logging does on a busy
    host."""
    pid = journald_pid()
    if pid is None:
        raise RuntimeError("no private journald to pause")

    def resume():
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
    cleanups.add(resume)
    os.kill(pid, signal.SIGSTOP)
    try:
        yield pid
    finally:
        resume()


def wait_journald(timeout=10):
    """Waits until the journal shows an entry sent now over the native
    socket: journald is up and writing. Returns True if it did."""
    mark = "cvzt-journald-probe-%d-%f" % (os.getpid(), time.time())
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    deadline = time.monotonic() + timeout
    sent = False
    try:
        while time.monotonic() < deadline:
            if not sent:
                try:
                    s.sendto(_native_datagram({"MESSAGE": mark,
                                               "SYSLOG_IDENTIFIER": "cvzt-probe"}), NATIVE)
                    sent = True
                except OSError:
                    pass
            if sent and journal("MESSAGE=" + mark):
                return True
            time.sleep(0.05)
    finally:
        s.close()
    return False


def restart_journald(cleanups, sig=signal.SIGTERM, timeout=10):
    """Ends the private journald by its pid with sig, waits until it is
    gone, starts /lib/systemd/systemd-journald again in this mount
    namespace (a child of this process, ended by pid at cleanup or when
    this process dies) and waits until it writes. Returns the new pid."""
    global _restarted
    old = journald_pid()
    if old is None:
        raise RuntimeError("no private journald to restart")
    os.kill(old, sig)
    if _restarted is not None and _restarted.pid == old:
        _restarted.wait(timeout)
    else:  # with-journald's shell reaps it only at the end: a zombie is gone
        deadline = time.monotonic() + timeout
        while _state(old) not in (None, "Z"):
            if time.monotonic() > deadline:
                raise RuntimeError("journald %d did not exit on signal %d" % (old, sig))
            time.sleep(0.02)
    libc = ctypes.CDLL(None, use_errno=True)
    _restarted = subprocess.Popen(
        [JOURNALD], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0))
    proc = _restarted

    def stop():
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
    cleanups.add(stop)
    if not wait_journald(timeout):
        raise RuntimeError("the restarted journald (pid %d) does not write" % proc.pid)
    return proc.pid


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "writer":
        _writer_main(sys.argv[2])
    else:
        print("usage: jtools.py writer COMM  (Writer's child; not for direct use)",
              file=sys.stderr)
        sys.exit(2)
