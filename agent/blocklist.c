/* Runtime blocklist entries (see blocklist.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blocklist.h"
#include "cleanup.h"
#include "cvz_limits.h"
#include "safe_math.h"

static const char *const origin_names[ORIGIN_COUNT] = {
	[ORIGIN_POLICY] = "policy",     [ORIGIN_FILE] = "file",
	[ORIGIN_OPERATOR] = "operator", [ORIGIN_CONTROL] = "control",
	[ORIGIN_CROWDSEC] = "crowdsec",   [ORIGIN_DETECT] = "detect",
};

static const size_t origin_max[ORIGIN_COUNT] = {
	[ORIGIN_POLICY] = CVZ_LIST_ENTRIES_MAX,       [ORIGIN_FILE] = CVZ_LIST_ENTRIES_MAX,
	[ORIGIN_OPERATOR] = CVZ_OPERATOR_ENTRIES_MAX, [ORIGIN_CONTROL] = CVZ_CONTROL_ENTRIES_MAX,
	[ORIGIN_CROWDSEC] = CVZ_CROWDSEC_ENTRIES_MAX, [ORIGIN_DETECT] = CVZ_DETECT_ENTRIES_MAX,
};

size_t bl_origin_max(enum bl_origin o)
{
	return (unsigned)o < ORIGIN_COUNT ? origin_max[o] : 0;
}

const char *bl_origin_name(enum bl_origin o)
{
	return (unsigned)o < ORIGIN_COUNT ? origin_names[o] : "unknown";
}

int bl_origin_lookup(const char *name, enum bl_origin *out)
{
	for (int i = 0; i < ORIGIN_COUNT; i++)
		if (strcmp(origin_names[i], name) == 0) {
			*out = (enum bl_origin)i;
			return 0;
		}
	return -ENOENT;
}

/* Ranges that are never blockable, whatever any source says: a runtime block
 * of them is refused, and list entries covering them are carved out (published
 * lists such as FireHOL level1 include 0.0.0.0/8, 127.0.0.0/8, 224.0.0.0/3). */
static const struct {
	const char *cidr;
	const char *what;
} special[] = {
	{ "127.0.0.0/8", "loopback" }, { "::1", "loopback" },
	{ "0.0.0.0", "the unspecified address" }, { "::", "the unspecified address" },
	{ "224.0.0.0/4", "multicast" }, { "ff00::/8", "multicast" },
};

static const char *special_range(const struct cvz_prefix *p)
{
	/* parsed once: this runs for every target of a 100k-entry snapshot */
	static struct cvz_prefix parsed[ELEMENTSOF(special)];
	static bool ready;
	if (p->len == 0)
		return "blocking every address (/0) is not allowed";
	if (!ready) {
		for (size_t i = 0; i < ELEMENTSOF(special); i++)
			if (cvz_prefix_parse(special[i].cidr, &parsed[i], NULL, NULL, 0) < 0)
				abort(); /* the table above is wrong */
		ready = true;
	}
	for (size_t i = 0; i < ELEMENTSOF(special); i++)
		if (cvz_prefix_overlaps(&parsed[i], p))
			return special[i].what;
	return NULL;
}

const char *bl_refusal(const struct cvz_prefix *p, const struct cvz_prefix *safelist,
		       size_t n_safe, char *why_buf, size_t len)
{
	const char *what = special_range(p);
	char a[CVZ_PREFIX_STRLEN], s[CVZ_PREFIX_STRLEN];
	if (what && p->len == 0)
		return what;
	if (what) {
		snprintf(why_buf, len, "%s covers %s, which is never blockable",
			 cvz_prefix_format(p, a, sizeof(a)), what);
		return why_buf;
	}
	for (size_t i = 0; i < n_safe; i++) {
		if (!cvz_prefix_overlaps(&safelist[i], p))
			continue;
		snprintf(why_buf, len, "%s %s safelisted %s", cvz_prefix_format(p, a, sizeof(a)),
			 cvz_prefix_contains(&safelist[i], p) ? "is inside the" : "covers the",
			 cvz_prefix_format(&safelist[i], s, sizeof(s)));
		return why_buf;
	}
	return NULL;
}

const char *bl_guard_refusal(const struct cvz_prefix *p, const struct bl_guard *g, size_t n,
			     char *buf, size_t len)
{
	char a[CVZ_PREFIX_STRLEN], b[CVZ_PREFIX_STRLEN];
	for (size_t i = 0; i < n; i++) {
		if (!cvz_prefix_overlaps(&g[i].prefix, p))
			continue;
		/* prefixes that overlap nest: one holds the other */
		snprintf(buf, len, "%s %s the %s %s", cvz_prefix_format(p, a, sizeof(a)),
			 cvz_prefix_contains(p, &g[i].prefix) ? "covers" : "is inside", g[i].what,
			 cvz_prefix_format(&g[i].prefix, b, sizeof(b)));
		return buf;
	}
	return NULL;
}

static bool same_prefix(const struct cvz_prefix *a, const struct cvz_prefix *b)
{
	return a->family == b->family && a->len == b->len && memcmp(a->addr, b->addr, 16) == 0;
}

static uint64_t entry_hash(const struct cvz_prefix *p, enum bl_origin origin)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	const uint8_t head[3] = { p->family, p->len, (uint8_t)origin };
	for (size_t i = 0; i < sizeof(head); i++)
		h = (h ^ head[i]) * 1099511628211ULL;
	for (size_t i = 0; i < sizeof(p->addr); i++)
		h = (h ^ p->addr[i]) * 1099511628211ULL;
	return h ^ (h >> 29);
}

/* The slot holding (p, origin), or the empty slot where it would go. */
static size_t slot_of(const struct blocklist *b, const struct cvz_prefix *p, enum bl_origin origin)
{
	size_t mask = b->nslots - 1, i = entry_hash(p, origin) & mask;
	while (b->slot[i]) {
		const struct bl_entry *e = &b->v[b->slot[i] - 1];
		if (e->origin == origin && same_prefix(&e->prefix, p))
			return i;
		i = (i + 1) & mask;
	}
	return i;
}

static int index_grow(struct blocklist *b, size_t want)
{
	if (want * 2 <= b->nslots)
		return 0;
	size_t n = b->nslots ? b->nslots : 64;
	while (n < want * 2)
		n *= 2;
	uint32_t *ns = calloc(n, sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	free(b->slot);
	b->slot = ns;
	b->nslots = n;
	for (size_t i = 0; i < b->n; i++)
		b->slot[slot_of(b, &b->v[i].prefix, (enum bl_origin)b->v[i].origin)] = (uint32_t)i + 1;
	return 0;
}

/* Empties slot i, moving later entries of its probe run back so lookups
 * never stop early (no tombstones). */
static void index_delete(struct blocklist *b, size_t i)
{
	size_t mask = b->nslots - 1, j = i;
	b->slot[i] = 0;
	for (;;) {
		j = (j + 1) & mask;
		if (!b->slot[j])
			return;
		const struct bl_entry *e = &b->v[b->slot[j] - 1];
		size_t home = entry_hash(&e->prefix, (enum bl_origin)e->origin) & mask;
		/* j's entry may fill the hole unless its home lies in (i, j] */
		bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
		if (stays)
			continue;
		b->slot[i] = b->slot[j];
		b->slot[j] = 0;
		i = j;
	}
}

struct bl_entry *bl_find(struct blocklist *b, const struct cvz_prefix *p, enum bl_origin origin)
{
	if (!b->nslots)
		return NULL;
	uint32_t s = b->slot[slot_of(b, p, origin)];
	return s ? &b->v[s - 1] : NULL;
}

/* Replaces *dst with a copy of src when src is given. */
static int replace_text(char **dst, const char *src)
{
	if (!src)
		return 0;
	char *d = strdup(src);
	if (!d)
		return -ENOMEM;
	free(*dst);
	*dst = d;
	return 0;
}

/* Whether now is a time the agent believes (cvz_limits.h). */
static bool time_ok(int64_t t)
{
	return t >= 0 && t <= CVZ_TIME_MAX;
}

int bl_expiry(uint64_t ttl, int64_t now, int64_t *expires)
{
	int64_t e;
	if (!time_ok(now) || ttl > (uint64_t)CVZ_TTL_MAX)
		return -ERANGE;
	if (ttl == 0)
		e = 0;
	else if (!ADD_SAFE(&e, now, (int64_t)ttl))
		return -ERANGE; /* cannot happen within the limits; checked anyway */
	*expires = e;
	return 0;
}

int bl_add(struct blocklist *b, const struct cvz_prefix *p, enum bl_origin origin,
	   uint64_t ttl, const char *reason, const char *incident, int64_t now)
{
	int64_t expires;
	if (bl_expiry(ttl, now, &expires) < 0)
		return -ERANGE;
	struct bl_entry *e = bl_find(b, p, origin);
	if (e) {
		if (e->expires && (!expires || expires > e->expires))
			e->expires = expires;
		if (replace_text(&e->reason, reason) < 0 || replace_text(&e->incident, incident) < 0)
			return -ENOMEM;
		return 0;
	}
	if ((unsigned)origin >= ORIGIN_COUNT || b->by_origin[origin] >= origin_max[origin])
		return -ENOSPC;
	if (b->n >= UINT32_MAX - 1 || index_grow(b, b->n + 1) < 0)
		return -ENOMEM;
	if (b->n == b->cap) {
		size_t ncap = b->cap ? b->cap * 2 : 16;
		struct bl_entry *nv = reallocarray(b->v, ncap, sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		b->v = nv;
		b->cap = ncap;
	}
	e = &b->v[b->n];
	memset(e, 0, sizeof(*e));
	e->prefix = *p;
	e->origin = (uint8_t)origin;
	e->created = now;
	e->expires = expires;
	if (replace_text(&e->reason, reason) < 0 || replace_text(&e->incident, incident) < 0) {
		free(e->reason);
		e->reason = NULL;
		return -ENOMEM;
	}
	b->slot[slot_of(b, p, origin)] = (uint32_t)b->n + 1;
	b->n++;
	b->by_origin[origin]++;
	return 1;
}

int bl_restore(struct blocklist *b, const struct bl_entry *in, int64_t now)
{
	int64_t latest;
	if (!time_ok(in->created) || bl_expiry((uint64_t)CVZ_TTL_MAX, now, &latest) < 0 ||
	    in->expires < 0 || in->expires > latest || in->origin >= ORIGIN_COUNT)
		return -ERANGE;
	char *reason = in->reason ? strdup(in->reason) : NULL;
	char *incident = in->incident ? strdup(in->incident) : NULL;
	/* added without reason and incident, so nothing after this can fail */
	int r = (in->reason && !reason) || (in->incident && !incident)
			? -ENOMEM
			: bl_add(b, &in->prefix, (enum bl_origin)in->origin, 0, NULL, NULL, in->created);
	if (r < 0) {
		free(reason);
		free(incident);
		return r;
	}
	struct bl_entry *e = bl_find(b, &in->prefix, (enum bl_origin)in->origin);
	e->created = in->created;
	e->expires = in->expires;
	free(e->reason);
	free(e->incident);
	e->reason = reason;
	e->incident = incident;
	return r;
}

static void entry_free(struct bl_entry *e)
{
	free(e->reason);
	free(e->incident);
	e->reason = e->incident = NULL;
}

/* Frees entry i and fills its place with the last entry. */
static void remove_at(struct blocklist *b, size_t i)
{
	struct bl_entry *e = &b->v[i];
	index_delete(b, slot_of(b, &e->prefix, (enum bl_origin)e->origin));
	entry_free(e);
	b->by_origin[e->origin]--;
	b->n--;
	if (i != b->n) {
		struct bl_entry *last = &b->v[b->n];
		b->slot[slot_of(b, &last->prefix, (enum bl_origin)last->origin)] = (uint32_t)i + 1;
		*e = *last;
		memset(last, 0, sizeof(*last));
	}
}

int bl_remove(struct blocklist *b, const struct cvz_prefix *p, enum bl_origin origin)
{
	struct bl_entry *e = bl_find(b, p, origin);
	if (!e)
		return -ENOENT;
	remove_at(b, (size_t)(e - b->v));
	return 0;
}

size_t bl_expire(struct blocklist *b, int64_t now,
		 void (*fn)(const struct bl_entry *e, void *arg), void *arg)
{
	size_t n = 0;
	for (size_t i = 0; i < b->n;) {
		struct bl_entry *e = &b->v[i];
		if (!e->expires || e->expires > now) {
			i++;
			continue;
		}
		if (fn)
			fn(e, arg);
		remove_at(b, i);
		n++;
	}
	return n;
}

int64_t bl_next_expiry(const struct blocklist *b)
{
	int64_t next = 0;
	for (size_t i = 0; i < b->n; i++)
		if (b->v[i].expires && (!next || b->v[i].expires < next))
			next = b->v[i].expires;
	return next;
}

int bl_expiry_timer_usec(const struct blocklist *b, int64_t not_before, uint64_t *usec)
{
	int64_t next = bl_next_expiry(b);
	uint64_t u;
	if (!next)
		return -ENOENT;
	if (next < not_before)
		next = not_before;
	/* entries are bounded (bl_add, bl_restore); not_before is the caller's */
	if (next < 0 || !MUL_SAFE(&u, (uint64_t)next, CVZ_USEC_PER_SEC))
		return -ERANGE;
	*usec = u;
	return 0;
}

void bl_free(struct blocklist *b)
{
	for (size_t i = 0; i < b->n; i++)
		entry_free(&b->v[i]);
	free(b->v);
	free(b->slot);
	memset(b, 0, sizeof(*b));
}

/* ---- staged changes ---------------------------------------------------- */

static const struct bl_entry *find_const(const struct blocklist *b, const struct cvz_prefix *p,
					 enum bl_origin origin)
{
	if (!b->nslots)
		return NULL;
	uint32_t s = b->slot[slot_of(b, p, origin)];
	return s ? &b->v[s - 1] : NULL;
}

void bl_change_init(struct bl_change *c, const struct blocklist *base)
{
	memset(c, 0, sizeof(*c));
	c->base = base;
}

const struct bl_entry *bl_change_find(const struct bl_change *c, const struct cvz_prefix *p,
				      enum bl_origin origin)
{
	const struct bl_entry *e = find_const(&c->set, p, origin);
	if (e)
		return e;
	if (find_const(&c->gone, p, origin))
		return NULL;
	return find_const(c->base, p, origin);
}

int bl_change_add(struct bl_change *c, const struct cvz_prefix *p, enum bl_origin origin,
		  uint64_t ttl, const char *reason, const char *incident, int64_t now)
{
	int64_t expires;
	if (bl_expiry(ttl, now, &expires) < 0) /* checked first: nothing staged */
		return -ERANGE;
	if ((unsigned)origin >= ORIGIN_COUNT)
		return -ENOSPC;
	if (find_const(&c->set, p, origin)) /* staged already: refresh it there */
		return bl_add(&c->set, p, origin, ttl, reason, incident, now) < 0 ? -ENOMEM : 0;
	const struct bl_entry *old = bl_change_find(c, p, origin);
	if (old) {
		/* a copy of the base's entry, then refreshed like bl_add would */
		int r = bl_add(&c->set, p, origin, 0, old->reason, old->incident, old->created);
		if (r < 0)
			return r;
		bl_find(&c->set, p, origin)->expires = old->expires;
		c->n_shadow++;
		c->shadow_by_origin[origin]++;
		return bl_add(&c->set, p, origin, ttl, reason, incident, now) < 0 ? -ENOMEM : 0;
	}
	/* a new entry: the origin's limit holds for the base as changed */
	size_t live = c->base->by_origin[origin] - c->gone.by_origin[origin] +
		      c->set.by_origin[origin] - c->shadow_by_origin[origin];
	if (live >= bl_origin_max(origin))
		return -ENOSPC;
	int r = bl_add(&c->set, p, origin, ttl, reason, incident, now);
	if (r < 0)
		return r;
	/* removed earlier in this change: the new entry replaces the base's */
	if (bl_remove(&c->gone, p, origin) == 0) {
		c->n_shadow++;
		c->shadow_by_origin[origin]++;
	}
	return 1;
}

int bl_change_remove(struct bl_change *c, const struct cvz_prefix *p, enum bl_origin origin)
{
	if (!bl_change_find(c, p, origin))
		return -ENOENT;
	bool in_base = find_const(c->base, p, origin) != NULL;
	if (in_base && bl_add(&c->gone, p, origin, 0, NULL, NULL, 0) < 0)
		return -ENOMEM;
	if (bl_remove(&c->set, p, origin) == 0 && in_base) {
		c->n_shadow--;
		c->shadow_by_origin[origin]--;
	}
	return 0;
}

bool bl_change_empty(const struct bl_change *c)
{
	return c->set.n == 0 && c->gone.n == 0;
}

const struct bl_entry *bl_change_next(const struct bl_change *c, size_t *it)
{
	const struct blocklist *b = c->base;
	while (*it < b->n) {
		const struct bl_entry *e = &b->v[(*it)++];
		/* removed, or replaced by its staged version (walked below); a
		   change of new entries alone costs no lookup per base entry */
		if ((c->gone.n && find_const(&c->gone, &e->prefix, (enum bl_origin)e->origin)) ||
		    (c->n_shadow && find_const(&c->set, &e->prefix, (enum bl_origin)e->origin)))
			continue;
		return e;
	}
	size_t i = *it - b->n;
	if (i >= c->set.n)
		return NULL;
	(*it)++;
	return &c->set.v[i];
}

int bl_change_reserve(const struct bl_change *c, struct blocklist *base)
{
	size_t want = base->n + c->set.n;
	if (want >= UINT32_MAX - 1 || index_grow(base, want) < 0)
		return -ENOMEM;
	if (want > base->cap) { /* doubling, as bl_add: one block must not copy them all */
		size_t ncap = base->cap ? base->cap : 16;
		while (ncap < want)
			ncap *= 2;
		struct bl_entry *nv = reallocarray(base->v, ncap, sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		base->v = nv;
		base->cap = ncap;
	}
	return 0;
}

void bl_change_commit(struct bl_change *c, struct blocklist *base)
{
	for (size_t i = 0; i < c->gone.n; i++)
		bl_remove(base, &c->gone.v[i].prefix, (enum bl_origin)c->gone.v[i].origin);
	for (size_t i = 0; i < c->set.n; i++) {
		struct bl_entry *s = &c->set.v[i];
		struct bl_entry *e = bl_find(base, &s->prefix, (enum bl_origin)s->origin);
		if (e) {
			entry_free(e);
		} else { /* room was reserved: no allocation here */
			if (!base->v || base->n >= base->cap)
				abort(); /* bl_change_reserve() was not called */
			e = &base->v[base->n];
			base->slot[slot_of(base, &s->prefix, (enum bl_origin)s->origin)] =
				(uint32_t)base->n + 1;
			base->n++;
			base->by_origin[s->origin]++;
		}
		*e = *s; /* the strings move */
		s->reason = s->incident = NULL;
	}
	bl_change_free(c);
	c->base = base;
}

void bl_change_free(struct bl_change *c)
{
	bl_free(&c->set);
	bl_free(&c->gone);
	c->n_shadow = 0;
	memset(c->shadow_by_origin, 0, sizeof(c->shadow_by_origin));
}

int bl_never_blockable(struct cvz_rangeset *safe)
{
	int err = 0;
	for (size_t i = 0; !err && i < ELEMENTSOF(special); i++) {
		struct cvz_prefix p;
		err = cvz_prefix_parse(special[i].cidr, &p, NULL, NULL, 0);
		if (!err)
			err = cvz_rangeset_add_prefix(safe, &p);
	}
	return err;
}

/* Walks two sorted arrays of ranges of one family; ranges present in exactly
 * one of them go to the matching output. */
#define DIFF_FAMILY(V, N, ADD)                                                        \
	do {                                                                          \
		size_t i = 0, j = 0;                                                  \
		while (!err && (i < old->N || j < new_->N)) {                         \
			if (i < old->N && j < new_->N && old->V[i].lo == new_->V[j].lo &&  \
			    old->V[i].hi == new_->V[j].hi) {                          \
				i++;                                                  \
				j++;                                                  \
			} else if (j >= new_->N ||                                    \
				   (i < old->N && old->V[i].lo <= new_->V[j].lo)) {   \
				err = ADD(del, old->V[i].lo, old->V[i].hi);           \
				i++;                                                  \
			} else {                                                      \
				err = ADD(add, new_->V[j].lo, new_->V[j].hi);         \
				j++;                                                  \
			}                                                             \
		}                                                                     \
	} while (0)

int rangeset_diff(const struct cvz_rangeset *old, const struct cvz_rangeset *new_,
		  struct cvz_rangeset *del, struct cvz_rangeset *add)
{
	int err = 0;
	memset(del, 0, sizeof(*del));
	memset(add, 0, sizeof(*add));
	DIFF_FAMILY(v4, n4, cvz_rangeset_add4);
	DIFF_FAMILY(v6, n6, cvz_rangeset_add6);
	if (err) {
		cvz_rangeset_free(del);
		cvz_rangeset_free(add);
	}
	return err;
}
