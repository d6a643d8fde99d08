/* Control API replies (docs/control-api.md): the body of a 200 answer to
 * GET .../instructions, parsed and validated. Pure: no I/O, no clock, no
 * daemon state beyond what struct instr_limits passes in.
 *
 * The server is trusted for authority, never for well-formedness. A reply
 * that is unusable as a whole (not JSON, truncated, duplicate keys, wrong
 * types, a missing required key, missing or unknown action, bad id or
 * cursor) is refused whole: instr_parse() fails and nothing of it may be
 * applied. A bad target only rejects that target; it is kept in the batch
 * with its reason so the report can name it.
 *
 * The reply: {"cursor": string, "full": bool, "instructions": [...]}; an
 * instruction: "id" and "action" ("block", "unblock", "lockdown") always;
 * "targets" (non-empty array of strings) for block and unblock; "enabled"
 * (bool) for lockdown; optional "ttl" (integer 0..INSTR_TTL_MAX, 0 or absent
 * = until unblocked), "reason", "incident_id", "severity" (strings) on any
 * action. cursor and id are 1..255 / 1..127 bytes of printable ASCII
 * 0x21-0x7e. A known key with the wrong type (null included) refuses the
 * reply even where it means nothing (ttl on unblock, targets on lockdown:
 * type-checked, not kept).
 *
 * Forward compatibility: keys this agent does not know, at any level, are
 * ignored, so the server may add fields without breaking older agents.
 *
 * The same id twice in one reply is not an error: both are returned, in
 * order; the caller must make the second a no-op (instr_seen). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "blocklist.h"
#include "cvz_limits.h"

#define INSTR_ID_MAX 128       /* with NUL */
#define INSTR_CURSOR_MAX 256   /* with NUL */
#define INSTR_TEXT_MAX 256     /* reason, incident, severity, target text: capped;
				* a longer target is rejected */
#define INSTR_WHY_MAX 160      /* a rejected target's reason, with NUL */
/* Longest ttl accepted: CVZ_TTL_MAX (10 years); more is a server bug. */
#define INSTR_TTL_MAX ((uint64_t)CVZ_TTL_MAX)

enum instr_action { INSTR_BLOCK, INSTR_UNBLOCK, INSTR_LOCKDOWN };

/* Pointers, not arrays: a full snapshot holds 100k of these, and inline
 * text[256] + why[160] made that 43 MB to allocate and fault in. */
struct instr_target {
	const char *text;         /* as sent, for reports; owned by the batch.
				   * Accepted: verbatim (address characters only);
				   * rejected: sanitized, capped to INSTR_TEXT_MAX-1 */
	const char *why;          /* "" accepted; otherwise why it was rejected (at
				   * most INSTR_WHY_MAX-1 bytes); owned by the batch */
	struct cvz_prefix prefix; /* valid when why[0] == '\0' */
};

struct instr {
	char id[INSTR_ID_MAX];
	enum instr_action action;
	struct instr_target *targets; /* block, unblock */
	size_t n_targets;
	uint64_t ttl;                 /* block: seconds, 0 = until unblocked */
	bool enabled;                 /* lockdown */
	char *incident, *severity, *reason; /* NULL when absent; sanitized with
					     * audit_sanitize(), capped to
					     * INSTR_TEXT_MAX; freed with the batch */
};

struct instr_batch {
	char cursor[INSTR_CURSOR_MAX];
	bool full;
	struct instr *v;
	size_t n;
};

/* What a target is checked against. The arrays are the caller's and only
 * read during the call. */
struct instr_limits {
	uint8_t min_prefix_v4; /* shorter prefixes are refused (default 8; 0: none) */
	uint8_t min_prefix_v6; /* (default 32; 0: none) */
	const struct cvz_prefix *safelist;
	size_t n_safelist;
	/* never blocked: lockdown.allow_from, the resolvers, the control
	   API's own addresses (see bl_guard) */
	const struct bl_guard *guards;
	size_t n_guards;
};

/* Parses and validates body (len bytes, not NUL-terminated; the size cap
 * is the caller's) against lim (not NULL). Returns 0 and fills *out (free
 * with instr_batch_free), or -EBADMSG with a one-line reason in err naming
 * the JSON path and quoting the value, sanitized and capped
 * ("instructions[3].action: unknown action \"explode\"", "cursor: expected
 * a string, got number"), or -ENOMEM ("out of memory"). *out is written only
 * on success; err only on failure. */
int instr_parse(const char *body, size_t len, const struct instr_limits *lim,
		struct instr_batch *out, char *err, size_t errlen);
/* The scan instr_parse() makes before jansson sees the body: an estimate
 * of the bytes jansson's tree of it would take (cvz_limits.h, measured
 * costs per value) and its nesting. Returns 0 and *cost, or -EBADMSG with
 * the reason in err when the estimate passes CVZ_REPLY_PARSE_BUDGET or the
 * nesting CVZ_REPLY_DEPTH_MAX. Linear in len; allocates nothing. */
int instr_reply_cost(const char *body, size_t len, uint64_t *cost, char *err, size_t errlen);
/* Frees what instr_parse() allocated and zeroes *b; b may be NULL. */
void instr_batch_free(struct instr_batch *b);

/* Checks one target: at most INSTR_TEXT_MAX-1 characters, an address or
 * prefix, host bits clear, not /0, not loopback/unspecified/multicast/
 * link-local, not overlapping the safelist, not shorter than the minimum,
 * not overlapping a guard (the control API's own address, ...). Returns 0 and *p (IPv4-
 * mapped IPv6 comes back as IPv4) with why "", or -EINVAL with one line in
 * why naming the target and the rule ("198.0.0.0/7 is shorter than
 * min_prefix_v4 8"); why is always NUL-terminated when whylen > 0. */
int instr_check_target(const char *s, const struct instr_limits *lim, struct cvz_prefix *p,
		       char *why, size_t whylen);

/* Instruction ids already carried out, so a repeated id changes nothing.
 * Bounded: when full, the oldest id is forgotten first. */
struct instr_seen;
/* Returns a new empty set holding at most cap (>= 1) ids, or NULL with
 * errno ENOMEM, or EINVAL for cap 0. Lookups are O(1) on average. Free with
 * instr_seen_free (NULL is fine); the set owns copies of its ids. */
struct instr_seen *instr_seen_new(size_t cap);
void instr_seen_free(struct instr_seen *s);
bool instr_seen_has(const struct instr_seen *s, const char *id);
/* Adds a copy of id (a no-op when present; when full, the oldest id is
 * dropped). Returns 0, -ENOMEM (set unchanged) or -EINVAL (id NULL). */
int instr_seen_add(struct instr_seen *s, const char *id);
size_t instr_seen_count(const struct instr_seen *s);
/* The i-th id, oldest first (0 <= i < count; else NULL), for persisting in
 * order and re-adding in that order on start. Valid until the next add. */
const char *instr_seen_at(const struct instr_seen *s, size_t i);
