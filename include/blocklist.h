/* Runtime blocklist entries (operator, control API, CrowdSec): who blocked
 * what, why, until when. Pure data: no netlink, no clock of its own (callers
 * pass `now` in seconds since the epoch). Policy and list-file entries live in
 * struct policy; struct bl_view turns both into what the kernel's sets hold. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"

enum bl_origin {
	ORIGIN_POLICY,
	ORIGIN_FILE,
	ORIGIN_OPERATOR,
	ORIGIN_CONTROL,
	ORIGIN_CROWDSEC,
	ORIGIN_COUNT
};

#define BL_REASON_MAX 256
#define BL_INCIDENT_MAX 64

struct bl_entry {
	struct cvz_prefix prefix;
	uint8_t origin;  /* enum bl_origin */
	int64_t created; /* seconds since the epoch */
	int64_t expires; /* 0: until unblocked */
	char *reason;    /* sanitized by the caller before logging; may be NULL */
	char *incident;  /* may be NULL */
};

/* Entries in an array (v[0..n), order not meaningful: removal moves the
 * last entry into the hole) with a hash index on (prefix, origin), so that
 * finding, adding and removing stay O(1) with 10^5 control-API entries. */
struct blocklist {
	struct bl_entry *v;
	size_t n, cap;
	uint32_t *slot; /* open addressing, linear probing: index+1, 0 empty */
	size_t nslots;  /* power of two, kept at least twice n */
};

const char *bl_origin_name(enum bl_origin o);
/* Returns 0 and *out, or -ENOENT. */
int bl_origin_lookup(const char *name, enum bl_origin *out);

/* Why p may never be blocked, or NULL when it may: "/0", loopback,
 * unspecified, multicast, or covering or inside a safelisted prefix (then the
 * safelisted prefix is written to why_buf as part of the message). */
const char *bl_refusal(const struct cvz_prefix *p, const struct cvz_prefix *safelist,
		       size_t n_safe, char *why_buf, size_t len);

/* A range no block may cover, and what it is, for the refusal
 * ("lockdown.allow_from range", "resolver", "control API's own address"):
 * a static string. The general form of the safelist: every address the
 * node must keep reaching, or being reached from, is one. */
struct bl_guard {
	struct cvz_prefix prefix;
	const char *what;
};

/* Why p may not be blocked because of a guard (the first of n it overlaps),
 * written to buf ("10.0.0.0/8 covers the resolver 10.0.0.2", "10.1.2.3 is
 * inside the lockdown.allow_from range 10.1.0.0/16"), or NULL when it
 * overlaps none. Checks only the guards: bl_refusal() comes first. */
const char *bl_guard_refusal(const struct cvz_prefix *p, const struct bl_guard *g, size_t n,
			     char *buf, size_t len);

/* Adds or refreshes the entry for (p, origin). A repeated block of the same
 * prefix by the same origin never shortens it: the later expiry wins, and
 * ttl 0 (forever) wins over any. Reason and incident are replaced when given.
 * Returns 1 new, 0 refreshed, -ENOMEM. */
int bl_add(struct blocklist *b, const struct cvz_prefix *p, enum bl_origin origin,
	   uint64_t ttl, const char *reason, const char *incident, int64_t now);
/* Removes the entry for (p, origin). Returns 0 or -ENOENT. */
int bl_remove(struct blocklist *b, const struct cvz_prefix *p, enum bl_origin origin);
/* Finds the entry for (p, origin), or NULL. The pointer is valid until the
 * next add or remove. */
struct bl_entry *bl_find(struct blocklist *b, const struct cvz_prefix *p, enum bl_origin origin);
/* Removes every entry with expires <= now, calling fn (may be NULL) on each
 * before it is freed. Returns how many expired. */
size_t bl_expire(struct blocklist *b, int64_t now,
		 void (*fn)(const struct bl_entry *e, void *arg), void *arg);
/* Earliest expiry among entries, or 0 when none expires. */
int64_t bl_next_expiry(const struct blocklist *b);
void bl_free(struct blocklist *b);

/* The blocklist as the kernel must hold it, in two pairs of sets
 * (docs/blocklists.md): the policy and list entries, large and changed only
 * by a reload, kept here normalised once per policy; and the runtime
 * entries, small and changed by every block. Neither holds what may never
 * be blocked (safelist, loopback, unspecified, multicast). An address may be
 * in both. */
struct bl_view {
	struct cvz_rangeset lists; /* policy and list entries minus safe */
	struct cvz_rangeset safe;
};

/* Builds the view. Returns 0 or -ENOMEM (v untouched). */
int bl_view_init(struct bl_view *v, const struct cvz_prefix *policy_blocked, size_t n_policy,
		 const struct cvz_prefix *safelist, size_t n_safe);
void bl_view_free(struct bl_view *v);
/* The runtime entries of b, normalised, minus v->safe: the contents of the
 * dynamic sets. The cost grows with b, not with the lists. Returns 0 or
 * -ENOMEM (out untouched on error). */
int bl_view_dynamic(const struct bl_view *v, const struct blocklist *b, struct cvz_rangeset *out);
/* Adds the never-blockable ranges (loopback, unspecified, multicast). */
int bl_never_blockable(struct cvz_rangeset *out);

/* The difference between two normalised range sets: ranges of old that are
 * not in new (to delete) and ranges of new that are not in old (to add).
 * Unchanged ranges appear in neither. Returns 0 or -ENOMEM. */
int rangeset_diff(const struct cvz_rangeset *old, const struct cvz_rangeset *new_,
		  struct cvz_rangeset *del, struct cvz_rangeset *add);
