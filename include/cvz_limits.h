/* Limits on the time values the agent takes from any source: the control
 * socket, the control API, state.json. Defined once here; the blocklist
 * enforces them (bl_add, bl_restore), so no origin can bypass them, and the
 * parsers in front of it only refuse earlier with a better message.
 * (Not "limits.h": -Iinclude would shadow the C library's.) */
#pragma once
#include <stdint.h>

/* Longest TTL: 10 years of seconds. More is a typo or a server bug. */
#define CVZ_TTL_MAX ((int64_t)10 * 365 * 24 * 3600)
/* Latest second since the epoch the agent believes, as "now" or as the
 * creation time of an entry: 9999-12-31T23:59:59Z. An expiry is at most
 * CVZ_TIME_MAX + CVZ_TTL_MAX, and that in microseconds (the expiry timer)
 * still fits an int64_t with room to spare. */
#define CVZ_TIME_MAX ((int64_t)253402300799)
#define CVZ_USEC_PER_SEC ((uint64_t)1000000)
