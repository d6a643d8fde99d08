"""What the benches share: a request on the agent's control socket (what
the CLI sends, without the CLI's process start) and /proc readings."""

import json
import socket


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


def proc_status_kib(pid, key):
    """A /proc/PID/status value in KiB (VmRSS, VmHWM), or None."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None
