/* Every bound on what the agent holds or parses, in one place
 * (STYLE.md 18: every input is bounded, the bounds written once). The
 * blocklist enforces the time and entry limits (bl_add, bl_restore), so no
 * origin can bypass them; the parsers in front of it only refuse earlier
 * with a better message. The docs quote these numbers: docs/config.md
 * ("Limits"), docs/control-api.md ("Limits"), docs/blocklists.md. Change
 * them together. (Not "limits.h": -Iinclude would shadow the C library's.)
 *
 * Memory: at these bounds the agent peaks at about 650 MiB with the kernel's
 * set memory, under the unit's MemoryMax=1G (docs/hardening.md has the
 * figures; bench/memory_bench.py and tests/integration/test_control_bounds
 * measure them). */
#pragma once
#include <stdint.h>

/* ---- times ---------------------------------------------------------------- */

/* Longest TTL: 10 years of seconds. More is a typo or a server bug. */
#define CVZ_TTL_MAX ((int64_t)10 * 365 * 24 * 3600)
/* Latest second since the epoch the agent believes, as "now" or as the
 * creation time of an entry: 9999-12-31T23:59:59Z. An expiry is at most
 * CVZ_TIME_MAX + CVZ_TTL_MAX, and that in microseconds (the expiry timer)
 * still fits an int64_t with room to spare. */
#define CVZ_TIME_MAX ((int64_t)253402300799)
#define CVZ_USEC_PER_SEC ((uint64_t)1000000)


/* ---- entries per origin ---------------------------------------------------- */

/* Policy blocklist.entries and every list file together. More is a policy
 * error ("blocklist: more than ... entries"), like any other: the running
 * firewall stays as it is. */
#define CVZ_LIST_ENTRIES_MAX 1000000u
/* The policy's safelist: each safelisted range may split one blocked range
 * in two, so it adds to what the kernel sets hold. */
#define CVZ_SAFELIST_MAX 10000u
/* Runtime entries by origin (struct blocklist refuses a new entry beyond:
 * -ENOSPC). A control API block target beyond is rejected on its own, in
 * reply order, and reported; the rest of the reply applies
 * (docs/control-api.md, "Limits"). An operator block beyond is refused
 * with an error. 200 000 is twice the snapshot the control API is
 * benchmarked with. */
#define CVZ_CONTROL_ENTRIES_MAX 200000u
#define CVZ_OPERATOR_ENTRIES_MAX 10000u
#define CVZ_CROWDSEC_ENTRIES_MAX 200000u
/* Blocks made by local detection (docs/detect.md): a spray that triggers
 * more is refused per address (journaled) until some expire. */
#define CVZ_DETECT_ENTRIES_MAX 100000u

/* ---- control API replies ----------------------------------------------------- */

/* Targets in one reply, all instructions together: more refuses the reply
 * whole before anything of it is built. */
#define CVZ_REPLY_TARGETS_MAX 200000u
/* Nesting of arrays and objects in a reply (the protocol needs 4; unknown
 * keys may add some). */
#define CVZ_REPLY_DEPTH_MAX 32u
/* What jansson may spend on the tree of one reply, estimated by a scan of
 * the bytes before jansson sees them (instr_parse_cost): a reply costing
 * more is refused whole. jansson 2.14 on x86-64, measured (VmHWM growth per
 * value, 10^6 values): an empty object 232 bytes, an empty array 136, a
 * string 88 (+ its length beyond 16), a number 40, an object member's slot
 * 64; the scan charges these. Without the bound, 16 MiB of "{}," cost 1.2 GB.
 * A 100 000-instruction snapshot with every field (16 MB) is estimated at
 * about 150 MB. */
#define CVZ_REPLY_PARSE_BUDGET (192u << 20)
#define CVZ_JSON_COST_OBJECT 232u
#define CVZ_JSON_COST_ARRAY 136u
#define CVZ_JSON_COST_STRING 88u
#define CVZ_JSON_COST_NUMBER 40u
#define CVZ_JSON_COST_MEMBER 64u
#define CVZ_JSON_COST_ELEMENT 16u /* an array slot, with growth slack */
/* The largest max_response_bytes agent.json accepts (default 16 MiB). */
#define CVZ_MAX_RESPONSE_BYTES_MAX (64u << 20)

/* ---- kernel sets ------------------------------------------------------------- */

/* Ranges that are never blocked and are cut out of every set (loopback,
 * unspecified, multicast, ...): each may split one range. */
#define CVZ_NEVER_RANGES_MAX 16u
/* The `size` of the blocklist sets (one per family, so the bound is per
 * set). A range is an interval; kernels before 6.x count both of its ends as
 * elements, hence twice the ranges, plus one for an interval starting at 0.
 * The agent's own bounds above refuse first: the kernel's refusal (ENFILE,
 * "set is full") is the backstop, not the policy. */
#define CVZ_SET_SIZE(ranges) (2u * ((ranges) + CVZ_SAFELIST_MAX + CVZ_NEVER_RANGES_MAX) + 1u)
#define CVZ_SET_LISTS_SIZE CVZ_SET_SIZE(CVZ_LIST_ENTRIES_MAX)
#define CVZ_SET_DYNAMIC_SIZE \
	CVZ_SET_SIZE(CVZ_CONTROL_ENTRIES_MAX + CVZ_OPERATOR_ENTRIES_MAX + CVZ_CROWDSEC_ENTRIES_MAX + \
		     CVZ_DETECT_ENTRIES_MAX)
