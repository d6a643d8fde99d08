/* Runtime blocklist entries (operator, control API, CrowdSec, detection): who blocked
 * what, why, until when. Pure data: no netlink, no clock of its own (callers
 * pass `now` in seconds since the epoch). Policy and list-file entries live in
 * struct policy; struct bl_view turns both into what the kernel's sets hold. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "cvz_limits.h"

enum bl_origin {
	ORIGIN_POLICY,
	ORIGIN_FILE,
	ORIGIN_OPERATOR,
	ORIGIN_CONTROL,
	ORIGIN_CROWDSEC,
	ORIGIN_DETECT, /* the agent's own local detection (docs/detect.md) */
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
	size_t by_origin[ORIGIN_COUNT]; /* entries of each origin, kept by add/remove */
};

/* The most entries of one origin a blocklist holds (cvz_limits.h). */
size_t bl_origin_max(enum bl_origin o);

const char *bl_origin_name(enum bl_origin o);
/* Returns 0 and *out, or -ENOENT. */
int bl_origin_lookup(const char *name, enum bl_origin *out);

/* Why p may never be blocked, or NULL when it may: "/0", loopback,
 * unspecified, multicast, or covering or inside a safelisted prefix (then the
 * safelisted prefix is written to why_buf as part of the message). */
const char *bl_refusal(const struct cvz_prefix *p, const struct cvz_prefix *safelist,
		       size_t n_safe, char *why_buf, size_t len);

/* The absolute expiry of a block with ttl seconds (0: none) made at now:
 * 0 and *expires (0 for ttl 0), or -ERANGE when ttl is above CVZ_TTL_MAX or
 * now outside 0..CVZ_TIME_MAX (cvz_limits.h). The one place an expiry is
 * computed, with checked arithmetic. */
int bl_expiry(uint64_t ttl, int64_t now, int64_t *expires);

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
 * Returns 1 new, 0 refreshed, -ERANGE (ttl or now out of range, see
 * bl_expiry(); b untouched), -ENOSPC when a new entry would pass
 * bl_origin_max(origin) (nothing changes; refreshing an entry always works),
 * -ENOMEM. */
int bl_add(struct blocklist *b, const struct cvz_prefix *p, enum bl_origin origin,
	   uint64_t ttl, const char *reason, const char *incident, int64_t now);
/* Puts back an entry as it was (state.json): prefix, origin, created,
 * expires, reason and incident copied exactly, replacing an entry for the
 * same (prefix, origin). Returns 1 new, 0 replaced, -ENOMEM, or -ERANGE (b
 * untouched) when the times are impossible: created outside
 * 0..CVZ_TIME_MAX, expires negative or later than now + CVZ_TTL_MAX. An
 * expiry already past is accepted (bl_expire() removes it). */
int bl_restore(struct blocklist *b, const struct bl_entry *e, int64_t now);
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
/* When the expiry timer must fire (CLOCK_REALTIME, microseconds): the
 * earliest expiry, but not before not_before (seconds). After an expiry run
 * the caller passes now + 1: everything due by now has gone, and a timer
 * armed in the past would fire again at once, in a loop. Returns 0 and
 * *usec, -ENOENT when nothing expires, -ERANGE if out of range. */
int bl_expiry_timer_usec(const struct blocklist *b, int64_t not_before, uint64_t *usec);
void bl_free(struct blocklist *b);

/* A staged change to a blocklist (STYLE.md rule 16: compute, send, swap):
 * the entries a block, unblock, expiry or control API reply adds, refreshes
 * or removes, held beside the live blocklist, which is not touched until the
 * kernel took the change. Its size follows what the change touches, never
 * the size of the live blocklist: nothing of the base is copied.
 *
 * Usage: bl_change_init, then bl_change_add/_remove (reads see the base as
 * changed so far), bl_change_reserve, then either bl_change_commit (the
 * kernel took it) or just bl_change_free (it did not: the base is as it
 * was). */
struct bl_change {
	const struct blocklist *base;
	struct blocklist set;  /* new or refreshed entries, complete */
	struct blocklist gone; /* keys removed from the base (prefix, origin only) */
	size_t n_shadow;       /* entries of set that replace one of the base */
	size_t shadow_by_origin[ORIGIN_COUNT]; /* n_shadow by origin */
};

/* Starts an empty change on base; allocates nothing. */
void bl_change_init(struct bl_change *c, const struct blocklist *base);
/* The entry for (p, origin) as the change would leave it, or NULL. Valid
 * until the next call that modifies c. */
const struct bl_entry *bl_change_find(const struct bl_change *c, const struct cvz_prefix *p,
				      enum bl_origin origin);
/* bl_add() on the base as changed so far, with the same refresh rules.
 * Returns 1 new, 0 refreshed, -ERANGE (ttl or now out of range), -ENOSPC
 * (a new entry would pass bl_origin_max(origin) in the base as changed),
 * -ENOMEM (c is then as before the call or with the entry staged unchanged;
 * either way the base is untouched). */
int bl_change_add(struct bl_change *c, const struct cvz_prefix *p, enum bl_origin origin,
		  uint64_t ttl, const char *reason, const char *incident, int64_t now);
/* Stages the removal of (p, origin). Returns 0, -ENOENT when the base as
 * changed holds no such entry, or -ENOMEM. */
int bl_change_remove(struct bl_change *c, const struct cvz_prefix *p, enum bl_origin origin);
/* True when c changes nothing. */
bool bl_change_empty(const struct bl_change *c);
/* Walks the entries of the base as changed by c, in no meaningful order:
 * *it starts at 0; returns the next entry, or NULL at the end. */
const struct bl_entry *bl_change_next(const struct bl_change *c, size_t *it);
/* Makes room in base (which must be c->base) for what c adds, so that
 * commit cannot fail. Changes no entry. Returns 0 or -ENOMEM. */
int bl_change_reserve(const struct bl_change *c, struct blocklist *base);
/* Moves the change into base (which must be c->base and reserved for it)
 * and leaves c empty. Cannot fail. */
void bl_change_commit(struct bl_change *c, struct blocklist *base);
void bl_change_free(struct bl_change *c);

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
/* The same for the base of c as changed by c, without applying c. */
int bl_view_dynamic_next(const struct bl_view *v, const struct bl_change *c,
			 struct cvz_rangeset *out);
/* Adds the never-blockable ranges (loopback, unspecified, multicast). */
int bl_never_blockable(struct cvz_rangeset *out);

/* The difference between two normalised range sets: ranges of old that are
 * not in new (to delete) and ranges of new that are not in old (to add).
 * Unchanged ranges appear in neither. Returns 0 or -ENOMEM. */
int rangeset_diff(const struct cvz_rangeset *old, const struct cvz_rangeset *new_,
		  struct cvz_rangeset *del, struct cvz_rangeset *add);
