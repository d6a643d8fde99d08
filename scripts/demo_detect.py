#!/usr/bin/env python3
"""The local detection part of scripts/demo.sh: Debian's real sshd on the
node, a public client that fails to log in 5 times, and the agent, which
reads sshd's lines from the journal, blocks the client on its own and
journals a security_alert.

    tests/integration/with-journald scripts/demo_detect.py AGENT NODE_NS \
        CLIENT_NS CLIENT_ADDR NODE_ADDR WORKDIR

Runs inside with-journald (a private journald in a private mount
namespace), so neither the host's journal nor its sshd is involved; the
namespaces are demo.sh's, and nothing may listen on NODE_ADDR:22 already.
Exits 0 if the client was blocked after its 5th failure and not before,
and its next connect was dropped.
"""
import json
import os
import sys
import time

sys.dont_write_bytecode = True
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))


def main(argv):
    if len(argv) != 6:
        print(__doc__, file=sys.stderr)
        return 2
    agent, node, client_ns, client, node_addr, work = argv
    os.environ["CVZ_AGENT"] = agent
    if os.environ.get("CVZ_IN_JOURNALD_NS") != "1":
        print("demo_detect: run me through tests/integration/with-journald", file=sys.stderr)
        return 2
    import harness
    import jtools
    import sshd
    from netns import DROPPED

    cleanups = harness.Cleanups()
    try:
        s = sshd.Sshd(cleanups, work, node, [node_addr])
        s.start()
        print("   Debian's sshd on %s:22 in the node (UsePAM, passwords), logging to a private "
              "journald" % node_addr)
        detect = {"sources": ["sshd"], "max_failures": 5, "window": 60, "ttl": 600}
        d = harness.Daemon(cleanups, work, node, os.path.join(ROOT, "policy", "examples",
                                                              "cloudviz-node.json"),
                           name="agent-detect", detect=detect)
        if not d.start():
            print("demo: the agent did not start:\n" + d.describe(), file=sys.stderr)
            return 1
        print("   cloudviz-agent run, agent.json with \"detect\": %s" % json.dumps(detect))
        print("   %s -> node:22 before: %s" % (client, sshd.connect_outcome(client_ns, client,
                                                                           node_addr)))

        def counted():
            st = d.status() or {}
            return (st.get("detect") or {}).get("failures")

        def blocked():
            return any(e.get("addr") == client and e.get("origin") == "detect"
                       for e in d.entries() or [])

        print("   the client tries root's password 5 times (sshpass -p wrong ssh root@%s):"
              % node_addr)
        early = False
        for i in range(1, 5):
            got = sshd.failed_logins(client_ns, client, node_addr, "root", 1)[0]
            harness.wait_until(lambda: (counted() or 0) >= i, 5.0)
            early = early or blocked()
            print("     login %d: %-8s  the agent has counted %s failed login(s), blocked: %s"
                  % (i, got, counted(), "yes" if blocked() else "no"))
        # the block can come before sshd's answer to the 5th reaches the client
        fifth = sshd.Logins(client_ns, client, node_addr, "root", 1)
        t0 = time.monotonic()
        ok, _ = harness.wait_until(blocked, 15.0)
        seen = time.monotonic() - t0
        after = sshd.connect_outcome(client_ns, client, node_addr)
        got = fifth.wait(3)[0]
        print("     login 5: %-8s  the agent has counted %s failed login(s), blocked: %s"
              % (got if got != sshd.CUT else "no answer (the block came first)", counted(),
                 "yes" if ok else "no"))
        print("   blocked %.1f s after the 5th login began: as soon as sshd wrote its "
              "\"Failed password\" line" % seen)
        print("   cloudviz-agent list:")
        lst = d.ctl("list")
        for line in lst.stdout.splitlines():
            print("     " + line)
        print("   %s -> node:22 now: %s" % (client, after))
        print("   the journal (journalctl CLOUDVIZ_EVENT=security_alert + "
              "CLOUDVIZ_EVENT=addr_blocked):")
        for e in jtools.journal("CLOUDVIZ_EVENT=security_alert", "+",
                                "CLOUDVIZ_EVENT=addr_blocked"):
            fields = " ".join("%s=%s" % (k, v) for k, v in sorted(e.items())
                              if k.startswith("CLOUDVIZ_") and k != "CLOUDVIZ_EVENT")
            print("     %s: %s  [%s]" % (e.get("CLOUDVIZ_EVENT"), e.get("MESSAGE"), fields))
        d.stop()
        if early or not ok or after != DROPPED:
            print("demo: local detection did not block %s after exactly 5 failures "
                  "(blocked early: %s, blocked: %s, connect: %s)" % (client, early, ok, after),
                  file=sys.stderr)
            return 1
        return 0
    finally:
        cleanups.run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
