"""What the test_detect_* tests share: agent.json's "detect" section, the
agent's detection counters (`status --json`, "detect"), waiting for a block
of origin detect, and the journal checks of security_alert and addr_blocked
(docs/detect.md, docs/audit-events.md).

    cfg = detectlib.config(ttl=2, sshd={"uid": 0})
    d = harness.Daemon(cleanups, tmp, node, policy, detect=cfg)
    detectlib.wait_counter(d, "failures", 4)        # the agent counted 4
    e = detectlib.wait_blocked(d, "203.0.113.2")    # its list entry, or None
"""

import harness

COUNTERS = ("lines", "failures", "alerts", "blocks")


def config(sources=("sshd",), **keys):
    """A "detect" section: sources, then any key given (max_failures=5,
    window=60, ttl=..., sshd={...}, **{"cloudviz-api": {...}})."""
    c = {"sources": list(sources), "max_failures": 5, "window": 60, "ttl": 3600}
    c.update(keys)
    return c


def counters(d):
    """status --json's "detect" object, or None (no answer, or none there)."""
    st = d.status()
    if not isinstance(st, dict) or not isinstance(st.get("detect"), dict):
        return None
    return st["detect"]


def counter(d, name):
    c = counters(d)
    v = c.get(name) if c else None
    return v if isinstance(v, int) else None


def wait_counter(d, name, at_least, timeout=10.0):
    """Waits until the counter reaches at_least; returns its last value
    (None: the agent did not answer with it)."""
    harness.wait_until(lambda: (counter(d, name) or 0) >= at_least, timeout, 0.1)
    return counter(d, name)


def detect_entries(d):
    """The list --json entries of origin detect ([] if none or no answer)."""
    return [e for e in (d.entries() or []) if e.get("origin") == "detect"]


def entry_of(d, addr):
    for e in d.entries() or []:
        if e.get("addr") == addr:
            return e
    return None


def wait_blocked(d, addr, timeout=10.0):
    """addr's list entry once the agent holds one of origin detect; None if
    it did not within timeout."""
    def found():
        e = entry_of(d, addr)
        return e if e and e.get("origin") == "detect" else None
    return harness.wait_until(found, timeout, 0.1)[0]


def wait_unblocked(d, addr, timeout=10.0):
    """True once the agent holds no entry for addr."""
    return bool(harness.wait_until(lambda: d.entries() is not None and entry_of(d, addr) is None,
                                   timeout, 0.1)[0])


ANY = object()  # check_alert(user=ANY): the user is not checked


def check_alert(r, j, what, mark, addr, source, user, attempts=None, timeout=5.0):
    """A security_alert about addr after journal mark, with the fields the
    contract promises; attempts None: any number >= 1; user: a value, a
    predicate, or ANY."""
    e = j.wait("security_alert", mark, timeout, match=lambda e: e.get("CLOUDVIZ_ADDR") == addr)
    fields = {"addr": addr, "alert_type": "multiple_failed_logins", "severity": "high",
              "source": source,
              "attempts": (lambda v: v.isdigit() and int(v) >= 1) if attempts is None else attempts}
    if user is not ANY:
        fields["user"] = user
    return j.check(r, what, e, "security_alert", **fields)


def check_block(r, j, what, mark, addr, ttl, timeout=5.0):
    e = j.wait("addr_blocked", mark, timeout, match=lambda e: e.get("CLOUDVIZ_ADDR") == addr)
    return j.check(r, what, e, "addr_blocked", addr=addr, origin="detect", ttl=ttl)
