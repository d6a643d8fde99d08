"""An independent model of what the blocklist sets must hold, for the
blocklist tests: list files and entries parsed with Python's ipaddress
module, merged, minus the safelist and the never-blockable ranges, compared
with what the kernel holds (`nft -j list set`).

Nothing here uses the agent's code or output: the expectation is computed
from the text of the list files and the policy alone, as docs/policy.md
describes them:

  - one address or CIDR per line, `#` starts a comment, blank lines and CRLF
    line ends are fine, host bits must be zero;
  - an IPv4-mapped IPv6 address or prefix (inside ::ffff:0:0/96) is IPv4;
  - overlapping, nested, duplicate and adjacent entries merge;
  - the safelist and loopback (127/8, ::1), unspecified (0.0.0.0, ::) and
    multicast (224/4, ff00::/8) are carved out.

Ranges are (lo, hi) pairs of integers, both included, per family:
{4: [...], 6: [...]}, sorted and disjoint once normalised.
"""

import difflib
import ipaddress
import json

import harness

MAPPED = ipaddress.ip_network("::ffff:0:0/96")
NEVER_BLOCKABLE = ["127.0.0.0/8", "::1/128", "0.0.0.0/32", "::/128", "224.0.0.0/4", "ff00::/8"]


def network(text):
    """text (an address or CIDR as a list file or policy spells it) as an
    ip_network, IPv4-mapped IPv6 turned into IPv4. Raises ValueError when
    the text is not a valid address/CIDR or has host bits set."""
    n = ipaddress.ip_network(text, strict=True)
    if n.version == 6 and n.prefixlen >= 96 and n.network_address in MAPPED:
        n = ipaddress.ip_network((int(n.network_address) & 0xFFFFFFFF, n.prefixlen - 96))
    return n


def parse_list(text):
    """The networks of one list file's text (as the file holds it, CRLF and
    comments included)."""
    nets = []
    for line in text.split("\n"):
        line = line.split("#", 1)[0].strip()
        if line:
            nets.append(network(line))
    return nets


def ranges_of(nets):
    """{4: [(lo, hi)...], 6: [...]} of networks (not yet normalised)."""
    out = {4: [], 6: []}
    for n in nets:
        out[n.version].append((int(n.network_address), int(n.broadcast_address)))
    return out


def merge(ranges):
    """Sorted, disjoint, with overlapping and adjacent ranges merged."""
    out = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def subtract(ranges, holes):
    """ranges minus holes; both normalised."""
    out = []
    j = 0
    for lo, hi in ranges:
        while j < len(holes) and holes[j][1] < lo:
            j += 1
        k = j
        cur = lo
        while k < len(holes) and holes[k][0] <= hi:
            hlo, hhi = holes[k]
            if hlo > cur:
                out.append((cur, hlo - 1))
            cur = max(cur, hhi + 1)
            if hhi >= hi:
                break
            k += 1
        if cur <= hi:
            out.append((cur, hi))
    return out


def expected(texts, entries=(), safelist=()):
    """What blocklist_v4/_v6 must hold for list files with contents texts,
    policy blocklist entries and a safelist: {4: ranges, 6: ranges}. With
    texts empty and runtime blocks as entries: what dynamic_v4/_v6 hold."""
    nets = [network(e) for e in entries]
    for t in texts:
        nets += parse_list(t)
    want = ranges_of(nets)
    holes = ranges_of([network(s) for s in list(safelist) + NEVER_BLOCKABLE])
    return {v: subtract(merge(want[v]), merge(holes[v])) for v in (4, 6)}


def delta_size(old, new):
    """How many ranges a minimal delta between two normalised expectations
    sends: ranges only in old (deleted) plus ranges only in new (added)."""
    n = 0
    for v in (4, 6):
        a, b = set(old[v]), set(new[v])
        n += len(a - b) + len(b - a)
    return n


def contains(ranges, addr):
    """True if the address (text) lies in one of the normalised ranges."""
    a = network(addr)
    x = int(a.network_address)
    return any(lo <= x <= hi for lo, hi in ranges[a.version])


# -- the kernel ---------------------------------------------------------------

def _addr_int(text):
    return int(ipaddress.ip_address(text))


def _element_range(e):
    """One element of `nft -j list set` as (lo, hi)."""
    if isinstance(e, dict) and "elem" in e:  # an element with extras (timeout, counter)
        e = e["elem"]["val"]
    if isinstance(e, str):
        x = _addr_int(e)
        return (x, x)
    if "prefix" in e:
        n = ipaddress.ip_network("%s/%d" % (e["prefix"]["addr"], e["prefix"]["len"]), strict=True)
        return (int(n.network_address), int(n.broadcast_address))
    if "range" in e:
        return (_addr_int(e["range"][0]), _addr_int(e["range"][1]))
    raise ValueError("unexpected set element %r" % (e,))


def kernel_ranges(ns, name):
    """The elements of set `name` of table inet cloudviz in ns as a list of
    (lo, hi), in the order nft prints them; None if the set does not exist."""
    p = harness.nft_fast(ns, "-j", "list", "set", "inet", "cloudviz", name)
    if p.returncode != 0:
        return None
    for obj in json.loads(p.stdout)["nftables"]:
        if "set" in obj:
            return [_element_range(e) for e in obj["set"].get("elem", [])]
    return None


def kernel(ns, pair="blocklist"):
    """{4: blocklist_v4 ranges, 6: blocklist_v6 ranges}, each None if missing;
    pair "dynamic": the runtime blocks' sets dynamic_v4/_v6."""
    return {v: kernel_ranges(ns, "%s_v%d" % (pair, v)) for v in (4, 6)}


def fmt(version, rng):
    lo, hi = rng
    cls = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    return str(cls(lo)) if lo == hi else "%s-%s" % (cls(lo), cls(hi))


def difference(got, want, version, limit=12):
    """Why got (kernel ranges, None if no set) is not want, as text; '' if
    it is exactly want (same ranges, none split or merged differently)."""
    if got is None:
        return "the set does not exist"
    if got == want:
        return ""
    g, w = set(got), set(want)
    lines = ["kernel: %d elements, expected: %d" % (len(got), len(want))]
    if len(g) != len(got):
        lines.append("the kernel lists %d elements more than once" % (len(got) - len(g)))
    extra, missing = sorted(g - w), sorted(w - g)
    for what, items in (("in the kernel, not expected", extra),
                        ("expected, not in the kernel", missing)):
        if items:
            lines.append("%s (%d): %s%s" % (what, len(items),
                                            ", ".join(fmt(version, x) for x in items[:limit]),
                                            ", ..." if len(items) > limit else ""))
    if not extra and not missing:
        lines.append("same elements, in another order")
    return "\n".join(lines)


def check_kernel(r, label, ns, want, pair="blocklist"):
    """Asserts that blocklist_v4 and blocklist_v6 in ns (pair "dynamic":
    dynamic_v4 and dynamic_v6) hold exactly want. Returns the kernel's
    ranges."""
    got = kernel(ns, pair)
    for v in (4, 6):
        r.check(got[v] == want[v], "%s: %s_v%d holds exactly the %d expected ranges"
                % (label, pair, v, len(want[v])), difference(got[v], want[v], v))
    return got


def unchanged_ruleset(r, what, ns, before):
    """Asserts that `nft -s list ruleset` in ns is byte-identical to before
    (taken with harness.ruleset(ns, stateless=True): counters move with
    stray packets such as neighbour probes); a failure shows only the start
    of the diff (the sets are large)."""
    now = harness.ruleset(ns, stateless=True)
    diff = list(difflib.unified_diff(before.splitlines(True), now.splitlines(True),
                                     "before", "after"))
    more = "  ... (%d more diff lines)\n" % (len(diff) - 30) if len(diff) > 30 else ""
    return r.check(now == before, what, "".join(diff[:30]) + more)
