/* Local detection's memory (see detect_track.h).
 *
 * Three tables share one shape: records in an array that grows by doubling
 * up to max_tracked and is then recycled, an intrusive doubly linked LRU
 * list through them (head: most recently seen), a free list, and (for
 * addresses and offenders) an open-addressing index, linear probing, load at
 * most 1/2, backward-shift deletion (no tombstones). Indices are uint32_t:
 * DETECT_TRACKED_MAX is 2^20.
 *
 * - addresses, keyed (source, address): the address's recent failure times,
 *   newest first, and its sshd connections;
 * - connections: hang off their address record in a circular list (most
 *   recent first), so a line finds its connection by walking that list,
 *   which CONN_PER_ADDR_MAX keeps short; there is no index of their own;
 * - offenders, keyed by address: detection's last block of each.
 *
 * The failure times of an address live in an array of its source's
 * max_failures (1..100) times, allocated with the record: 8 bytes per
 * failure that can count, not 800 for every address. A record forgotten to
 * make room is reused with its array, which is grown only when the new
 * owner's source counts more failures; so with one max_failures in use the
 * memory stays flat once the table is full, and with several it grows only
 * until every array is as large as the largest in use.
 *
 * Keeping the newest max_failures times of an address is enough to decide
 * "max_failures within window": when that many fall in the window, the
 * newest max_failures are all among them. */
#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "detect_track.h"
#include "safe_math.h"

#define NIL UINT32_MAX
/* The limits' ranges (detect_track.h, struct detect_limits). */
#define WINDOW_MAX_S 86400u
#define ESCALATE_MAX 100u
/* A connection no line has mentioned for this long (or for the source's
 * window, when longer) is over: sshd's LoginGraceTime is 120 s by default,
 * so a later line with the same pid and port belongs to a new connection. */
#define CONN_IDLE_S 600
/* Connections kept per address and source: beyond it the address's least
 * recently seen one is forgotten. Above sshd's default MaxStartups (100
 * unauthenticated connections at most), and it bounds the walk a line
 * without a port makes to find its connection. */
#define CONN_PER_ADDR_MAX 128u
#define USEC_PER_SEC INT64_C(1000000)

/* At the start of every record: its links and its key's hash. */
struct hdr {
	uint32_t prev, next; /* the LRU list, or (next) the free list */
	uint32_t hash;
};

struct slot {
	uint32_t idx; /* NIL: empty */
	uint32_t hash;
};

struct pool {
	char *rec;   /* cap records of size bytes */
	size_t size;
	uint32_t cap, used, n, max; /* [0, used) have been handed out; n live */
	uint32_t head, tail, free;
	bool indexed;
	struct slot *slot; /* mask + 1 slots, a power of two, >= 2 * cap */
	uint32_t mask;
};

struct addr_key {
	uint8_t source;
	struct cvz_prefix addr; /* canonical: bytes past the family's zero */
};

struct addr_rec {
	struct hdr h;
	struct addr_key key;
	uint8_t n, cap;   /* times[0..n), newest first; cap allocated */
	uint16_t nconn;
	uint32_t conns;   /* its most recent connection, NIL for none */
	int64_t *times;   /* failure times, microseconds */
};

struct conn_rec {
	struct hdr h;
	uint32_t owner;        /* its address record */
	uint32_t oprev, onext; /* the owner's circular list */
	uint32_t pid;
	int64_t expires_us;    /* no line after this: the connection is over */
	uint32_t attempts;     /* the sum over its lines (saturating) */
	uint32_t floor;        /* the largest floor of its lines */
	uint16_t port;
	bool has_port;
};

struct off_rec {
	struct hdr h;
	struct cvz_prefix addr;
	uint32_t offences;
	int64_t blocked_at;
	uint64_t ttl;
};

struct detect_tracker {
	struct pool addrs, conns, offs;
	uint8_t key[16];      /* SipHash key, random per tracker */
	int64_t newest_us;    /* the latest journal time seen */
	uint64_t evicted;
	size_t bytes;
};

/* ---- allocation --------------------------------------------------------- */

/* Every allocation of the tracker goes through here (reallocarray, which
 * the unit test can make fail), so that bytes is exact. */
static void *track_realloc(struct detect_tracker *t, void *p, size_t old_bytes, size_t n,
			   size_t size)
{
	void *q = reallocarray(p, n, size);
	if (q && t)
		t->bytes = t->bytes - old_bytes + n * size;
	return q;
}

static void track_free(struct detect_tracker *t, void *p, size_t bytes)
{
	free(p);
	if (p)
		t->bytes -= bytes;
}

/* ---- SipHash-2-4 -------------------------------------------------------- */

/* Addresses are chosen by whoever sends the packets: a keyed hash keeps a
 * spray from being aimed at one probe run. */
static inline uint64_t rotl(uint64_t x, int b)
{
	return (x << b) | (x >> (64 - b));
}

#define SIPROUND                                                               \
	do {                                                                   \
		v0 += v1, v1 = rotl(v1, 13), v1 ^= v0, v0 = rotl(v0, 32);      \
		v2 += v3, v3 = rotl(v3, 16), v3 ^= v2;                         \
		v0 += v3, v3 = rotl(v3, 21), v3 ^= v0;                         \
		v2 += v1, v1 = rotl(v1, 17), v1 ^= v2, v2 = rotl(v2, 32);      \
	} while (0)

static uint64_t load_le64(const uint8_t *p)
{
	uint64_t x;
	memcpy(&x, p, 8);
	return le64toh(x);
}

static uint64_t siphash24(const uint8_t key[16], const uint8_t *in, size_t len)
{
	uint64_t k0 = load_le64(key), k1 = load_le64(key + 8);
	uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
	uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
	size_t whole = len & ~(size_t)7;
	for (size_t i = 0; i < whole; i += 8) {
		uint64_t m = load_le64(in + i);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	uint64_t b = (uint64_t)len << 56;
	for (size_t i = 0; i < (len & 7); i++)
		b |= (uint64_t)in[whole + i] << (8 * i);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

static uint32_t prefix_hash(const struct detect_tracker *t, uint8_t tag,
			    const struct cvz_prefix *p)
{
	uint8_t b[19] = { tag, p->family, p->len };
	memcpy(b + 3, p->addr, 16);
	uint64_t h = siphash24(t->key, b, sizeof(b));
	return (uint32_t)(h ^ (h >> 32));
}

/* The key to hash and compare: only the family's bytes of the address, so
 * that stray bytes past an IPv4 address make no second record. */
static struct cvz_prefix canonical(const struct cvz_prefix *p)
{
	struct cvz_prefix c = { .family = p->family, .len = p->len };
	memcpy(c.addr, p->addr, p->family == AF_INET ? 4 : 16);
	return c;
}

static bool same_prefix(const struct cvz_prefix *a, const struct cvz_prefix *b)
{
	return a->family == b->family && a->len == b->len && memcmp(a->addr, b->addr, 16) == 0;
}

static void random_key(uint8_t key[16])
{
	if (getrandom(key, 16, GRND_NONBLOCK) == 16)
		return;
	/* No entropy yet (early boot): the firewall must start all the same.
	 * A key from the clock and where the loader put things is weaker, but
	 * a collision only makes a probe run longer. */
	struct timespec ts = { 0 };
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t mix[4] = { (uint64_t)ts.tv_sec, (uint64_t)ts.tv_nsec, (uint64_t)getpid(),
			    (uint64_t)(uintptr_t)key };
	static const uint8_t fixed[16] = "cloudviz-detect";
	uint64_t a = siphash24(fixed, (const uint8_t *)mix, sizeof(mix));
	mix[0] ^= a;
	uint64_t b = siphash24(fixed, (const uint8_t *)mix, sizeof(mix));
	memcpy(key, &a, 8);
	memcpy(key + 8, &b, 8);
}

/* ---- pools: records, LRU, free list ------------------------------------- */

static inline struct hdr *H(const struct pool *p, uint32_t i)
{
	return (struct hdr *)(p->rec + (size_t)i * p->size);
}

static void pool_init(struct pool *p, size_t size, uint32_t max, bool indexed)
{
	*p = (struct pool){ .size = size, .max = max, .indexed = indexed,
			    .head = NIL, .tail = NIL, .free = NIL };
}

static void lru_unlink(struct pool *p, uint32_t i)
{
	struct hdr *e = H(p, i);
	if (e->prev != NIL)
		H(p, e->prev)->next = e->next;
	else
		p->head = e->next;
	if (e->next != NIL)
		H(p, e->next)->prev = e->prev;
	else
		p->tail = e->prev;
}

static void lru_push(struct pool *p, uint32_t i)
{
	struct hdr *e = H(p, i);
	e->prev = NIL;
	e->next = p->head;
	if (p->head != NIL)
		H(p, p->head)->prev = i;
	else
		p->tail = i;
	p->head = i;
}

static void lru_touch(struct pool *p, uint32_t i)
{
	if (p->head == i)
		return;
	lru_unlink(p, i);
	lru_push(p, i);
}

/* The record pool_take() will hand out: a free one, a never used one, or
 * (the pool full) the least recently seen. */
static uint32_t pool_peek(const struct pool *p)
{
	if (p->free != NIL)
		return p->free;
	if (p->used < p->cap)
		return p->used;
	return p->tail;
}

/* The slot holding record idx (present). */
static uint32_t index_slot_of(const struct pool *p, uint32_t idx)
{
	uint32_t s = H(p, idx)->hash & p->mask;
	while (p->slot[s].idx != idx)
		s = (s + 1) & p->mask;
	return s;
}

static void index_delete(struct pool *p, uint32_t i)
{
	for (uint32_t j = (i + 1) & p->mask; p->slot[j].idx != NIL; j = (j + 1) & p->mask) {
		uint32_t home = p->slot[j].hash & p->mask;
		/* j's entry may move to i unless its home lies in (i, j] */
		bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
		if (stays)
			continue;
		p->slot[i] = p->slot[j];
		i = j;
	}
	p->slot[i].idx = NIL;
}

static void index_insert(struct pool *p, uint32_t idx)
{
	uint32_t h = H(p, idx)->hash, s = h & p->mask;
	while (p->slot[s].idx != NIL)
		s = (s + 1) & p->mask;
	p->slot[s] = (struct slot){ idx, h };
}

/* Makes sure pool_take() needs no memory: grows the records (and index)
 * while the pool is below its max. Returns 0 or -ENOMEM; the pool's
 * contents are the same either way. */
static int pool_reserve(struct detect_tracker *t, struct pool *p)
{
	if (p->free != NIL || p->used < p->cap || p->cap == p->max)
		return 0;
	uint32_t cap = !p->cap ? 32 : p->cap > p->max / 2 ? p->max : p->cap * 2;
	if (cap > p->max)
		cap = p->max;
	if (p->indexed && (size_t)p->mask + 1 < 2 * (size_t)cap) {
		size_t ns = 64;
		while (ns < 2 * (size_t)cap)
			ns *= 2;
		struct slot *slot = track_realloc(t, NULL, 0, ns, sizeof(*slot));
		if (!slot)
			return -ENOMEM;
		for (size_t i = 0; i < ns; i++)
			slot[i].idx = NIL;
		size_t old = p->slot ? ((size_t)p->mask + 1) * sizeof(*slot) : 0;
		track_free(t, p->slot, old);
		p->slot = slot;
		p->mask = (uint32_t)(ns - 1);
		for (uint32_t i = p->head; i != NIL; i = H(p, i)->next)
			index_insert(p, i);
	}
	char *rec = track_realloc(t, p->rec, (size_t)p->cap * p->size, cap, p->size);
	if (!rec)
		return -ENOMEM;
	/* records past used are never read before pool_take() fills them */
	p->rec = rec;
	p->cap = cap;
	return 0;
}

/* A record for a new entry, at the head of the LRU list, its contents the
 * caller's to set (a reused record keeps what forget() left in it). Needs
 * pool_reserve() first. A full pool forgets its least recently seen entry,
 * by forget(), which unindexes it and lets go of what hangs off it. */
static uint32_t pool_take(struct detect_tracker *t, struct pool *p,
			  void (*forget)(struct detect_tracker *, uint32_t))
{
	uint32_t i;
	if (p->free != NIL) {
		i = p->free;
		p->free = H(p, i)->next;
		p->n++;
	} else if (p->used < p->cap) {
		i = p->used++;
		memset(H(p, i), 0, p->size);
		p->n++;
	} else {
		i = p->tail;
		forget(t, i);
		lru_unlink(p, i);
	}
	lru_push(p, i);
	return i;
}

static void pool_put(struct pool *p, uint32_t i)
{
	lru_unlink(p, i);
	H(p, i)->next = p->free;
	p->free = i;
	p->n--;
}

static void pool_free(struct detect_tracker *t, struct pool *p)
{
	track_free(t, p->rec, (size_t)p->cap * p->size);
	if (p->slot)
		track_free(t, p->slot, ((size_t)p->mask + 1) * sizeof(*p->slot));
}

/* ---- records ------------------------------------------------------------ */

static inline struct addr_rec *A(const struct detect_tracker *t, uint32_t i)
{
	return (struct addr_rec *)H(&t->addrs, i);
}

static inline struct conn_rec *C(const struct detect_tracker *t, uint32_t i)
{
	return (struct conn_rec *)H(&t->conns, i);
}

static inline struct off_rec *O(const struct detect_tracker *t, uint32_t i)
{
	return (struct off_rec *)H(&t->offs, i);
}

static uint32_t addr_find(const struct detect_tracker *t, const struct addr_key *k, uint32_t h)
{
	const struct pool *p = &t->addrs;
	if (!p->slot)
		return NIL;
	for (uint32_t s = h & p->mask; p->slot[s].idx != NIL; s = (s + 1) & p->mask) {
		if (p->slot[s].hash != h)
			continue;
		const struct addr_rec *a = A(t, p->slot[s].idx);
		if (a->key.source == k->source && same_prefix(&a->key.addr, &k->addr))
			return p->slot[s].idx;
	}
	return NIL;
}

static uint32_t off_find(const struct detect_tracker *t, const struct cvz_prefix *addr, uint32_t h)
{
	const struct pool *p = &t->offs;
	if (!p->slot)
		return NIL;
	for (uint32_t s = h & p->mask; p->slot[s].idx != NIL; s = (s + 1) & p->mask)
		if (p->slot[s].hash == h && same_prefix(&O(t, p->slot[s].idx)->addr, addr))
			return p->slot[s].idx;
	return NIL;
}

/* Takes connection ci out of its address's list. */
static void conn_unlink(struct detect_tracker *t, uint32_t ci)
{
	struct conn_rec *c = C(t, ci);
	struct addr_rec *a = A(t, c->owner);
	if (c->onext == ci) {
		a->conns = NIL;
	} else {
		C(t, c->oprev)->onext = c->onext;
		C(t, c->onext)->oprev = c->oprev;
		if (a->conns == ci)
			a->conns = c->onext;
	}
	a->nconn--;
}

/* Puts connection ci first in address ai's list. */
static void conn_link(struct detect_tracker *t, uint32_t ai, uint32_t ci)
{
	struct conn_rec *c = C(t, ci);
	struct addr_rec *a = A(t, ai);
	c->owner = ai;
	if (a->conns == NIL) {
		c->oprev = c->onext = ci;
	} else {
		uint32_t head = a->conns, tail = C(t, head)->oprev;
		c->onext = head;
		c->oprev = tail;
		C(t, tail)->onext = ci;
		C(t, head)->oprev = ci;
	}
	a->conns = ci;
	a->nconn++;
}

static void conn_release(struct detect_tracker *t, uint32_t ci)
{
	conn_unlink(t, ci);
	pool_put(&t->conns, ci);
}

/* pool_take()'s forget for a connection. */
static void conn_forget(struct detect_tracker *t, uint32_t ci)
{
	conn_unlink(t, ci);
}

/* pool_take()'s forget for an address: its connections go with it; its
 * times array stays, for the next owner of the record. */
static void addr_forget(struct detect_tracker *t, uint32_t ai)
{
	while (A(t, ai)->conns != NIL)
		conn_release(t, A(t, ai)->conns);
	index_delete(&t->addrs, index_slot_of(&t->addrs, ai));
	A(t, ai)->n = 0;
	t->evicted++;
}

static void off_forget(struct detect_tracker *t, uint32_t oi)
{
	index_delete(&t->offs, index_slot_of(&t->offs, oi));
}

/* Drops the connections that no line can belong to any more, oldest seen
 * first; lazily, so only from the end of the list, O(1) amortized. */
static void conns_expire(struct detect_tracker *t)
{
	struct pool *p = &t->conns;
	while (p->tail != NIL && C(t, p->tail)->expires_us < t->newest_us)
		conn_release(t, p->tail);
}

/* ---- tracker ------------------------------------------------------------ */

struct detect_tracker *detect_track_new(size_t max_tracked)
{
	if (max_tracked < 1 || max_tracked > DETECT_TRACKED_MAX) {
		errno = EINVAL;
		return NULL;
	}
	struct detect_tracker *t = track_realloc(NULL, NULL, 0, 1, sizeof(*t));
	if (!t)
		return NULL;
	memset(t, 0, sizeof(*t));
	t->bytes = sizeof(*t);
	pool_init(&t->addrs, sizeof(struct addr_rec), (uint32_t)max_tracked, true);
	pool_init(&t->conns, sizeof(struct conn_rec), (uint32_t)max_tracked, false);
	pool_init(&t->offs, sizeof(struct off_rec), (uint32_t)max_tracked, true);
	t->newest_us = INT64_MIN;
	random_key(t->key);
	return t;
}

void detect_track_free(struct detect_tracker *t)
{
	if (!t)
		return;
	for (uint32_t i = 0; i < t->addrs.used; i++)
		track_free(t, A(t, i)->times, (size_t)A(t, i)->cap * sizeof(int64_t));
	pool_free(t, &t->addrs);
	pool_free(t, &t->conns);
	pool_free(t, &t->offs);
	free(t);
}

static bool limits_ok(const struct detect_limits *l)
{
	return l->max_failures >= 1 && l->max_failures <= DETECT_MAX_FAILURES_MAX &&
	       l->window >= 1 && l->window <= WINDOW_MAX_S && l->escalate >= 1 &&
	       l->escalate <= ESCALATE_MAX && l->ttl >= 1 && l->max_ttl >= l->ttl;
}

static bool host_ok(const struct cvz_prefix *p)
{
	return (p->family == AF_INET && p->len <= 32) || (p->family == AF_INET6 && p->len <= 128);
}

static int64_t add_sat(int64_t a, int64_t b)
{
	int64_t r;
	if (__builtin_add_overflow(a, b, &r))
		return b > 0 ? INT64_MAX : INT64_MIN;
	return r;
}

/* The connection o's line belongs to among address ai's, or NIL. A line
 * with a port: the connection of the same pid and port; else the one a
 * line without a port started (PAM logs before "Failed password" for an
 * existing user), which the line then names (*adopt). There is at most one
 * such: a line without a port starts a connection only when the address
 * has none. A line without a port (PAM): the most recent connection of the
 * same pid, else the most recent (PAM's keyboard-interactive child has a
 * pid of its own). A connection whose time is over is never matched. */
static uint32_t conn_find(const struct detect_tracker *t, uint32_t ai, const struct detect_obs *o,
			  bool *adopt)
{
	const struct addr_rec *a = A(t, ai);
	uint32_t portless = NIL, any = NIL;
	*adopt = false;
	uint32_t ci = a->conns;
	for (unsigned k = 0; k < a->nconn; k++, ci = C(t, ci)->onext) {
		const struct conn_rec *c = C(t, ci);
		if (c->expires_us < o->when_us)
			continue;
		if (o->has_port) {
			if (c->has_port && c->pid == o->pid && c->port == o->port)
				return ci;
			if (!c->has_port && portless == NIL)
				portless = ci;
		} else {
			if (c->pid == o->pid)
				return ci;
			if (any == NIL)
				any = ci;
		}
	}
	if (!o->has_port)
		return any;
	*adopt = portless != NIL;
	return portless;
}

/* Applies line o to connection ci: the growth of its failures. */
static unsigned conn_apply(struct conn_rec *c, const struct detect_obs *o, bool adopt,
			   int64_t life_us)
{
	uint32_t before = c->attempts > c->floor ? c->attempts : c->floor;
	if (adopt) {
		c->pid = o->pid;
		c->has_port = true;
		c->port = o->port;
	}
	uint32_t sum = UINT32_MAX; /* saturates: ADD_SAFE writes only what fits */
	(void)ADD_SAFE(&sum, c->attempts, o->attempts);
	c->attempts = sum;
	uint32_t fl = o->floor > UINT32_MAX ? UINT32_MAX : (uint32_t)o->floor;
	if (fl > c->floor)
		c->floor = fl;
	int64_t expires = add_sat(o->when_us, life_us);
	if (expires > c->expires_us)
		c->expires_us = expires;
	uint32_t after = c->attempts > c->floor ? c->attempts : c->floor;
	return after - before;
}

/* Adds k failures at when to a's times (newest first, at most max kept)
 * and returns how many fall within window_us of the newest failure (or of
 * when, if later). A late entry older than that counts nowhere; times out
 * of the window are dropped. */
static unsigned times_add(struct addr_rec *a, int64_t when, unsigned k, uint32_t max,
			  int64_t window_us)
{
	if (a->n > max)
		a->n = (uint8_t)max;
	int64_t newest = a->n && a->times[0] > when ? a->times[0] : when;
	int64_t cutoff = add_sat(newest, -window_us);
	unsigned n = 0, pos = 0;
	while (n < a->n && a->times[n] >= cutoff)
		n++;
	if (k == 0 || when < cutoff) {
		a->n = (uint8_t)n;
		return n;
	}
	while (pos < n && a->times[pos] >= when)
		pos++;
	/* no room (copies 0) only when max times are in the window already,
	   which happens when max was lowered since: they trigger all the same */
	unsigned copies = k < max - pos ? k : max - pos;
	unsigned total = n + copies < max ? n + copies : max;
	memmove(a->times + pos + copies, a->times + pos,
		(total - pos - copies) * sizeof(*a->times));
	for (unsigned i = 0; i < copies; i++)
		a->times[pos + i] = when;
	a->n = (uint8_t)total;
	return n + k < n ? UINT_MAX : n + k;
}

/* Forgets the failures of addr for every source. */
static void reset_all(struct detect_tracker *t, const struct cvz_prefix *addr)
{
	for (unsigned s = 0; s < DETECT_SOURCES_MAX; s++) {
		struct addr_key k = { .source = (uint8_t)s, .addr = *addr };
		uint32_t ai = addr_find(t, &k, prefix_hash(t, k.source, &k.addr));
		if (ai != NIL)
			A(t, ai)->n = 0;
	}
}

int detect_track_feed(struct detect_tracker *t, const struct detect_obs *o,
		      const struct detect_limits *lim, struct detect_verdict *v)
{
	if (!t || !o || !lim || !v || o->source >= DETECT_SOURCES_MAX || !limits_ok(lim) ||
	    !host_ok(&o->addr))
		return -EINVAL;
	if (o->when_us > t->newest_us)
		t->newest_us = o->when_us;
	conns_expire(t); /* no line can match them: not a change */

	/* plan: find what exists, allocate what is missing */
	struct addr_key key = { .source = (uint8_t)o->source, .addr = canonical(&o->addr) };
	uint32_t h = prefix_hash(t, key.source, &key.addr);
	uint32_t ai = addr_find(t, &key, h), ci = NIL;
	bool adopt = false;
	if (o->pid && ai != NIL)
		ci = conn_find(t, ai, o, &adopt);
	uint32_t max = lim->max_failures;
	if (ai == NIL && pool_reserve(t, &t->addrs) < 0)
		return -ENOMEM;
	if (o->pid && ci == NIL && pool_reserve(t, &t->conns) < 0)
		return -ENOMEM;
	/* the record that will hold the times: ai, or the one pool_take()
	   hands out (a never used one has no times yet) */
	uint32_t target = ai != NIL ? ai : pool_peek(&t->addrs);
	uint8_t have = target >= t->addrs.used ? 0 : A(t, target)->cap;
	int64_t *times = NULL;
	if (have < max && !(times = track_realloc(t, NULL, 0, max, sizeof(*times))))
		return -ENOMEM;

	/* apply: nothing below fails */
	if (ai == NIL) {
		ai = pool_take(t, &t->addrs, addr_forget);
		struct addr_rec *a = A(t, ai);
		a->h.hash = h;
		a->key = key;
		a->n = 0;
		a->nconn = 0;
		a->conns = NIL;
		index_insert(&t->addrs, ai);
	} else {
		lru_touch(&t->addrs, ai);
	}
	struct addr_rec *a = A(t, ai);
	if (times) {
		if (a->n)
			memcpy(times, a->times, a->n * sizeof(*times));
		track_free(t, a->times, (size_t)a->cap * sizeof(*times));
		a->times = times;
		a->cap = (uint8_t)max;
	}

	unsigned added;
	if (!o->pid) {
		added = o->attempts > o->floor ? o->attempts : o->floor;
	} else {
		if (ci == NIL) {
			if (a->nconn >= CONN_PER_ADDR_MAX)
				conn_release(t, C(t, a->conns)->oprev);
			ci = pool_take(t, &t->conns, conn_forget);
			struct conn_rec *c = C(t, ci);
			*c = (struct conn_rec){ .h = c->h, .pid = o->pid, .has_port = o->has_port,
						.port = o->has_port ? o->port : 0,
						.expires_us = INT64_MIN };
			conn_link(t, ai, ci);
		} else {
			lru_touch(&t->conns, ci);
			conn_unlink(t, ci);
			conn_link(t, ai, ci);
		}
		int64_t life_s = lim->window > CONN_IDLE_S ? lim->window : CONN_IDLE_S;
		added = conn_apply(C(t, ci), o, adopt, life_s * USEC_PER_SEC);
		if (o->ends_connection)
			conn_release(t, ci);
	}

	unsigned in_window = times_add(a, o->when_us, added, max,
				       (int64_t)lim->window * USEC_PER_SEC);
	*v = (struct detect_verdict){ .added = added, .in_window = in_window,
				      .trigger = in_window >= max };
	if (v->trigger)
		reset_all(t, &key.addr);
	return 0;
}

void detect_track_reset(struct detect_tracker *t, const struct cvz_prefix *addr)
{
	if (!t || !addr)
		return;
	struct cvz_prefix c = canonical(addr);
	reset_all(t, &c);
}

/* ---- offenders ---------------------------------------------------------- */

/* True when a block made at blocked_at for ttl seconds has not ended, or
 * ended less than max_ttl seconds before now. */
static bool in_reach(int64_t blocked_at, uint64_t ttl, int64_t now, uint64_t max_ttl)
{
	int64_t end = INT64_MAX, horizon = INT64_MAX;
	if (!ADD_SAFE(&end, blocked_at, ttl) || !ADD_SAFE(&horizon, end, max_ttl))
		return true; /* beyond any time */
	return now < horizon;
}

uint64_t detect_track_next_ttl(const struct detect_tracker *t, const struct cvz_prefix *addr,
			       int64_t now, const struct detect_limits *lim, uint32_t *offences)
{
	uint32_t oi = NIL;
	if (t && addr) {
		struct cvz_prefix c = canonical(addr);
		oi = off_find(t, &c, prefix_hash(t, 0, &c));
	}
	if (oi == NIL || !in_reach(O(t, oi)->blocked_at, O(t, oi)->ttl, now, lim->max_ttl)) {
		if (offences)
			*offences = 1;
		return lim->ttl;
	}
	const struct off_rec *r = O(t, oi);
	uint64_t ttl = lim->max_ttl;
	if (!MUL_SAFE(&ttl, r->ttl, (uint64_t)lim->escalate) || ttl > lim->max_ttl)
		ttl = lim->max_ttl;
	if (ttl < lim->ttl) /* a repeat never gets less than a first offence */
		ttl = lim->ttl;
	if (offences)
		*offences = r->offences == UINT32_MAX ? UINT32_MAX : r->offences + 1;
	return ttl;
}

int detect_track_offender(struct detect_tracker *t, const struct detect_offender *o)
{
	if (!t || !o)
		return -EINVAL;
	struct cvz_prefix addr = canonical(&o->addr);
	uint32_t h = prefix_hash(t, 0, &addr);
	uint32_t oi = off_find(t, &addr, h);
	if (oi == NIL) {
		if (pool_reserve(t, &t->offs) < 0)
			return -ENOMEM;
		oi = pool_take(t, &t->offs, off_forget);
		O(t, oi)->h.hash = h;
		O(t, oi)->addr = addr;
		index_insert(&t->offs, oi);
	} else {
		lru_touch(&t->offs, oi);
	}
	struct off_rec *r = O(t, oi);
	r->blocked_at = o->blocked_at;
	r->ttl = o->ttl;
	r->offences = o->offences;
	return 0;
}

static int addr_cmp(const struct cvz_prefix *a, const struct cvz_prefix *b)
{
	if (a->family != b->family)
		return a->family < b->family ? -1 : 1;
	int c = memcmp(a->addr, b->addr, 16);
	if (c)
		return c;
	return (a->len > b->len) - (a->len < b->len);
}

/* The listing's order: the latest block first, then the longer, then by
 * address (unique in the table), so that the order is total. */
static int listed_cmp(const void *pa, const void *pb)
{
	const struct detect_offender *a = pa, *b = pb;
	if (a->blocked_at != b->blocked_at)
		return a->blocked_at > b->blocked_at ? -1 : 1;
	if (a->ttl != b->ttl)
		return a->ttl > b->ttl ? -1 : 1;
	return addr_cmp(&a->addr, &b->addr);
}

/* out[0..n) as a heap whose root is listed last of them. */
static void heap_down(struct detect_offender *h, size_t n, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < n && listed_cmp(&h[l], &h[m]) > 0)
			m = l;
		if (r < n && listed_cmp(&h[r], &h[m]) > 0)
			m = r;
		if (m == i)
			return;
		struct detect_offender x = h[i];
		h[i] = h[m];
		h[m] = x;
		i = m;
	}
}

static void heap_up(struct detect_offender *h, size_t i)
{
	while (i > 0) {
		size_t up = (i - 1) / 2;
		if (listed_cmp(&h[i], &h[up]) <= 0)
			return;
		struct detect_offender x = h[i];
		h[i] = h[up];
		h[up] = x;
		i = up;
	}
}

size_t detect_track_offenders(const struct detect_tracker *t, int64_t now, uint64_t max_ttl,
			      struct detect_offender *out, size_t max)
{
	if (!t || !out || max == 0)
		return 0;
	size_t n = 0;
	for (uint32_t i = t->offs.head; i != NIL; i = O(t, i)->h.next) {
		const struct off_rec *r = O(t, i);
		if (!in_reach(r->blocked_at, r->ttl, now, max_ttl))
			continue;
		struct detect_offender d = { .addr = r->addr, .blocked_at = r->blocked_at,
					     .ttl = r->ttl, .offences = r->offences };
		if (n < max) {
			out[n] = d;
			heap_up(out, n++);
		} else if (listed_cmp(&d, &out[0]) < 0) {
			out[0] = d;
			heap_down(out, n, 0);
		}
	}
	qsort(out, n, sizeof(*out), listed_cmp);
	return n;
}

void detect_track_stats(const struct detect_tracker *t, struct detect_track_stats *s)
{
	if (!s)
		return;
	*s = (struct detect_track_stats){ 0 };
	if (!t)
		return;
	s->addresses = t->addrs.n;
	s->connections = t->conns.n;
	s->offenders = t->offs.n;
	s->evicted = t->evicted;
	s->bytes = t->bytes;
}
