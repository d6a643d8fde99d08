/* IPv4/IPv6 prefixes and normalised interval sets; see include/addr.h. */
#include "addr.h"
#include "cleanup.h"
#include "utf8.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define V4_MAX UINT32_MAX
#define V6_MAX (~(unsigned __int128)0)

/* ---- prefixes ---------------------------------------------------------- */

static unsigned family_bits(uint8_t family)
{
	switch (family) {
	case AF_INET:
		return 32;
	case AF_INET6:
		return 128;
	default:
		return 0;
	}
}

/* Clears every bit of addr at or after bit position len (network order). */
static void mask_addr(uint8_t addr[16], unsigned len)
{
	for (unsigned i = 0; i < 16; i++) {
		unsigned bit = i * 8;

		if (bit >= len)
			addr[i] = 0;
		else if (len - bit < 8)
			addr[i] &= (uint8_t)(0xff << (8 - (len - bit)));
	}
}

static bool is_v4_mapped(const uint8_t a[16])
{
	static const uint8_t mapped[12] = { [10] = 0xff, [11] = 0xff };

	return memcmp(a, mapped, sizeof(mapped)) == 0;
}

/* Reads the text after '/'. Plain decimal only: no sign, no spaces and no
 * leading zero ("08"), because a length that strtol() would accept with a
 * twist is more likely a typo than an intent in a firewall policy.
 * Returns the length, or -1 for malformed text, or a value above 128 (capped
 * at 999) when the digits are well formed but too large. */
static int parse_len(const char *s)
{
	size_t n = strlen(s);
	int v = 0;

	if (n == 0 || strspn(s, "0123456789") != n || (n > 1 && s[0] == '0'))
		return -1;
	if (n > 3)
		return 999;
	for (size_t i = 0; i < n; i++)
		v = v * 10 + (s[i] - '0');
	return v;
}

static int parse_fail(const char **why, const char *msg)
{
	if (why)
		*why = msg;
	return -EINVAL;
}

/* Formats a message into the caller's buffer when there is one; falls back
 * to the static, less specific text otherwise. */
__attribute__((format(printf, 5, 6))) static int
parse_fail_fmt(const char **why, char *why_buf, size_t why_buf_len,
	       const char *fallback, const char *fmt, ...)
{
	va_list ap;

	if (!why_buf || why_buf_len == 0)
		return parse_fail(why, fallback);
	va_start(ap, fmt);
	utf8_vsnprintf(why_buf, why_buf_len, fmt, ap);
	va_end(ap);
	return parse_fail(why, why_buf);
}

/* Turns ::ffff:a.b.c.d/len (len >= 96) into a.b.c.d/(len - 96): nft matches
 * an IPv4 packet against "ip saddr", never against the mapped form, so a
 * rule written with the mapped form would otherwise silently never match. */
static void unmap_v4(struct cvz_prefix *p)
{
	if (p->family != AF_INET6 || p->len < 96 || !is_v4_mapped(p->addr))
		return;
	memmove(p->addr, p->addr + 12, 4);
	memset(p->addr + 4, 0, 12);
	p->family = AF_INET;
	p->len -= 96;
}

/* Error texts, all with -EINVAL:
 *   "empty address"                         nothing before the '/'
 *   "not an IPv4 or IPv6 address"           inet_pton() refused the text;
 *                                           this includes "1.2.3", "256.0.0.1",
 *                                           leading zeros ("01.2.3.4"),
 *                                           whitespace and scope ids
 *   "bad prefix length"                     "/", "/-1", "/+8", "/08", "/ 8"
 *   "prefix length 33 out of range 0-32"    or 0-128, in why_buf; without
 *                                           why_buf "prefix length out of range"
 *   "host bits set (did you mean %s?)"      in why_buf, with the masked
 *                                           prefix; without it "host bits set" */
int cvz_prefix_parse(const char *s, struct cvz_prefix *out, const char **why,
		     char *why_buf, size_t why_buf_len)
{
	struct cvz_prefix p = { 0 };
	char text[INET6_ADDRSTRLEN];
	const char *slash;
	size_t alen;
	unsigned max;

	if (!s)
		return parse_fail(why, "empty address");
	slash = strchr(s, '/');
	alen = slash ? (size_t)(slash - s) : strlen(s);
	if (alen == 0)
		return parse_fail(why, "empty address");
	if (alen >= sizeof(text))
		return parse_fail(why, "not an IPv4 or IPv6 address");
	memcpy(text, s, alen);
	text[alen] = '\0';

	/* inet_pton() with the family chosen by the text itself: it is strict
	 * (exactly four decimal parts, no leading zeros on glibc and musl),
	 * unlike inet_aton() which reads "010" as octal and "1.2.3" as valid. */
	p.family = strchr(text, ':') ? AF_INET6 : AF_INET;
	if (inet_pton(p.family, text, p.addr) != 1)
		return parse_fail(why, "not an IPv4 or IPv6 address");

	max = family_bits(p.family);
	p.len = (uint8_t)max;
	if (slash) {
		int len = parse_len(slash + 1);

		if (len < 0)
			return parse_fail(why, "bad prefix length");
		if ((unsigned)len > max)
			return parse_fail_fmt(why, why_buf, why_buf_len,
					      "prefix length out of range",
					      "prefix length %s out of range 0-%u",
					      slash + 1, max);
		p.len = (uint8_t)len;
	}

	/* Unmap before checking host bits so the suggestion is in the form the
	 * caller will get back. */
	unmap_v4(&p);
	struct cvz_prefix masked = p;

	mask_addr(masked.addr, masked.len);
	if (memcmp(masked.addr, p.addr, sizeof(p.addr)) != 0) {
		char canon[CVZ_PREFIX_STRLEN];

		/* A host single address never gets here, so canon has a '/'. */
		cvz_prefix_format(&masked, canon, sizeof(canon));
		return parse_fail_fmt(why, why_buf, why_buf_len, "host bits set",
				      "host bits set (did you mean %s?)", canon);
	}
	*out = p;
	return 0;
}

char *cvz_prefix_format(const struct cvz_prefix *p, char *buf, size_t len)
{
	char addr[INET6_ADDRSTRLEN];
	unsigned bits = family_bits(p->family);

	if (len == 0)
		return buf;
	if (bits == 0 || !inet_ntop(p->family, p->addr, addr, sizeof(addr))) {
		snprintf(buf, len, "invalid");
		return buf;
	}
	if (p->len >= bits)
		snprintf(buf, len, "%s", addr);
	else
		snprintf(buf, len, "%s/%u", addr, (unsigned)p->len);
	return buf;
}

bool cvz_prefix_contains(const struct cvz_prefix *outer,
			 const struct cvz_prefix *inner)
{
	uint8_t a[16];

	if (outer->family != inner->family || family_bits(outer->family) == 0)
		return false;
	if (outer->len > inner->len)
		return false;
	memcpy(a, inner->addr, sizeof(a));
	mask_addr(a, outer->len);
	return memcmp(a, outer->addr, sizeof(a)) == 0;
}

/* Two prefixes are either nested or disjoint, never partially overlapping. */
bool cvz_prefix_overlaps(const struct cvz_prefix *a, const struct cvz_prefix *b)
{
	return cvz_prefix_contains(a, b) || cvz_prefix_contains(b, a);
}

/* ---- host-order conversions -------------------------------------------- */

static uint32_t v4_from_bytes(const uint8_t a[16])
{
	return (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 |
	       (uint32_t)a[2] << 8 | a[3];
}

static unsigned __int128 v6_from_bytes(const uint8_t a[16])
{
	unsigned __int128 v = 0;

	for (int i = 0; i < 16; i++)
		v = v << 8 | a[i];
	return v;
}

static void v4_to_prefix(uint32_t v, unsigned len, struct cvz_prefix *p)
{
	*p = (struct cvz_prefix){ .family = AF_INET, .len = (uint8_t)len };
	for (int i = 3; i >= 0; i--, v >>= 8)
		p->addr[i] = (uint8_t)v;
}

static void v6_to_prefix(unsigned __int128 v, unsigned len, struct cvz_prefix *p)
{
	*p = (struct cvz_prefix){ .family = AF_INET6, .len = (uint8_t)len };
	for (int i = 15; i >= 0; i--, v >>= 8)
		p->addr[i] = (uint8_t)v;
}

/* Host-bit masks; a shift by the full width is undefined, hence len 0. */
static uint32_t v4_hostmask(unsigned len)
{
	return len == 0 ? V4_MAX : len >= 32 ? 0 : V4_MAX >> len;
}

static unsigned __int128 v6_hostmask(unsigned len)
{
	return len == 0 ? V6_MAX : len >= 128 ? 0 : V6_MAX >> len;
}

static unsigned v4_popcount(uint32_t x)
{
	return (unsigned)__builtin_popcount(x);
}

static unsigned v6_popcount(unsigned __int128 x)
{
	return (unsigned)(__builtin_popcountll((uint64_t)x) +
			  __builtin_popcountll((uint64_t)(x >> 64)));
}

/* ---- range sets ---------------------------------------------------------
 *
 * The IPv4 and IPv6 halves run the same algorithms on different integer
 * widths. They are generated from one template so that a fix to one cannot
 * miss the other. For each family SFX (v4, v6) this defines:
 *   SFX_push()      append one range, growing the array geometrically
 *   SFX_cmp()       qsort order: by lo, then hi
 *   SFX_merge()     merge a sorted array in place, returns the new count
 *   SFX_carve()     subtract normalised arrays, O(n + m), into a new array
 *   SFX_find()      binary search for an overlap with [lo, hi]
 *   SFX_format()    prefix text when the range is one prefix, else "lo-hi" */
#define DEFINE_RANGE_OPS(SFX, RANGE, ADDR, BITS)                               \
	static int SFX##_push(RANGE **v, size_t *n, size_t *cap, ADDR lo,      \
			      ADDR hi)                                         \
	{                                                                      \
		if (*n == *cap) {                                              \
			size_t ncap = *cap ? *cap * 2 : 16;                    \
			RANGE *nv;                                             \
                                                                               \
			if (ncap < *cap)                                       \
				return -ENOMEM;                                \
			nv = reallocarray(*v, ncap, sizeof(**v));              \
			if (!nv)                                               \
				return -ENOMEM;                                \
			*v = nv;                                               \
			*cap = ncap;                                           \
		}                                                              \
		(*v)[(*n)++] = (RANGE){ .lo = lo, .hi = hi };                  \
		return 0;                                                      \
	}                                                                      \
                                                                               \
	static int SFX##_cmp(const void *pa, const void *pb)                   \
	{                                                                      \
		const RANGE *a = pa, *b = pb;                                  \
                                                                               \
		if (a->lo != b->lo)                                            \
			return a->lo < b->lo ? -1 : 1;                         \
		if (a->hi != b->hi)                                            \
			return a->hi < b->hi ? -1 : 1;                         \
		return 0;                                                      \
	}                                                                      \
                                                                               \
	/* r.lo > cur.hi implies r.lo >= 1, so r.lo - 1 cannot wrap; this is   \
	 * the adjacency test without computing cur.hi + 1, which would wrap   \
	 * at the all-ones address. */                                         \
	static size_t SFX##_merge(RANGE *v, size_t n)                          \
	{                                                                      \
		size_t out = 0;                                                \
                                                                               \
		for (size_t i = 1; i < n; i++) {                               \
			RANGE *cur = &v[out];                                  \
                                                                               \
			if (v[i].lo <= cur->hi || v[i].lo - 1 == cur->hi) {    \
				if (v[i].hi > cur->hi)                         \
					cur->hi = v[i].hi;                     \
			} else {                                               \
				v[++out] = v[i];                               \
			}                                                      \
		}                                                              \
		return n ? out + 1 : 0;                                        \
	}                                                                      \
                                                                               \
	/* Each range of m can split one range of v in two, so the result has  \
	 * at most n + nm ranges (the caller allocates that many). The cursor  \
	 * j only moves forward: a range of m that ends inside v[i] cannot     \
	 * touch v[i + 1]. Returns the number of ranges written to res. */     \
	static size_t SFX##_carve(const RANGE *v, size_t n, const RANGE *m,    \
				  size_t nm, RANGE *res)                       \
	{                                                                      \
		size_t nres = 0, j = 0;                                        \
                                                                               \
		for (size_t i = 0; i < n; i++) {                               \
			ADDR lo = v[i].lo, hi = v[i].hi;                       \
			bool gone = false;                                     \
                                                                               \
			while (j < nm && m[j].hi < lo)                         \
				j++;                                           \
			for (; j < nm && m[j].lo <= hi; j++) {                 \
				if (m[j].lo > lo)                              \
					res[nres++] = (RANGE){ lo, m[j].lo - 1 }; \
				if (m[j].hi >= hi) {                           \
					gone = true;                           \
					break;                                 \
				}                                              \
				lo = m[j].hi + 1;                              \
			}                                                      \
			if (!gone)                                             \
				res[nres++] = (RANGE){ lo, hi };               \
		}                                                              \
		return nres;                                                   \
	}                                                                      \
                                                                               \
	static bool SFX##_find(const RANGE *v, size_t n, ADDR lo, ADDR hi)     \
	{                                                                      \
		size_t a = 0, b = n;                                           \
                                                                               \
		/* first range whose hi >= lo */                               \
		while (a < b) {                                                \
			size_t mid = a + (b - a) / 2;                          \
                                                                               \
			if (v[mid].hi < lo)                                    \
				a = mid + 1;                                   \
			else                                                   \
				b = mid;                                       \
		}                                                              \
		return a < n && v[a].lo <= hi;                                 \
	}                                                                      \
                                                                               \
	static char *SFX##_format(const RANGE *r, char *buf, size_t len)       \
	{                                                                      \
		char a[CVZ_PREFIX_STRLEN], b[CVZ_PREFIX_STRLEN];               \
		struct cvz_prefix p;                                           \
		ADDR span = r->hi - r->lo;                                     \
                                                                               \
		/* One prefix: span is 2^k - 1 and lo is aligned to it. For    \
		 * the whole space span + 1 wraps to 0, which still passes. */ \
		if (r->lo <= r->hi && (span & (span + 1)) == 0 &&              \
		    (r->lo & span) == 0) {                                     \
			SFX##_to_prefix(r->lo, BITS - SFX##_popcount(span), &p); \
			return cvz_prefix_format(&p, buf, len);                \
		}                                                              \
		SFX##_to_prefix(r->lo, BITS, &p);                              \
		cvz_prefix_format(&p, a, sizeof(a));                           \
		SFX##_to_prefix(r->hi, BITS, &p);                              \
		cvz_prefix_format(&p, b, sizeof(b));                           \
		if (len)                                                       \
			snprintf(buf, len, "%s-%s", a, b);                     \
		return buf;                                                    \
	}

DEFINE_RANGE_OPS(v4, struct cvz_range4, uint32_t, 32)
DEFINE_RANGE_OPS(v6, struct cvz_range6, unsigned __int128, 128)

int cvz_rangeset_add4(struct cvz_rangeset *s, uint32_t lo, uint32_t hi)
{
	if (lo > hi)
		return -EINVAL;
	return v4_push(&s->v4, &s->n4, &s->cap4, lo, hi);
}

int cvz_rangeset_add6(struct cvz_rangeset *s, unsigned __int128 lo,
		      unsigned __int128 hi)
{
	if (lo > hi)
		return -EINVAL;
	return v6_push(&s->v6, &s->n6, &s->cap6, lo, hi);
}

int cvz_rangeset_add_prefix(struct cvz_rangeset *s, const struct cvz_prefix *p)
{
	if (p->family == AF_INET && p->len <= 32) {
		uint32_t lo = v4_from_bytes(p->addr) & ~v4_hostmask(p->len);

		return cvz_rangeset_add4(s, lo, lo | v4_hostmask(p->len));
	}
	if (p->family == AF_INET6 && p->len <= 128) {
		unsigned __int128 lo = v6_from_bytes(p->addr) & ~v6_hostmask(p->len);

		return cvz_rangeset_add6(s, lo, lo | v6_hostmask(p->len));
	}
	return -EAFNOSUPPORT;
}

void cvz_rangeset_normalize(struct cvz_rangeset *s)
{
	if (s->n4 > 1)
		qsort(s->v4, s->n4, sizeof(*s->v4), v4_cmp);
	s->n4 = v4_merge(s->v4, s->n4);
	if (s->n6 > 1)
		qsort(s->v6, s->n6, sizeof(*s->v6), v6_cmp);
	s->n6 = v6_merge(s->v6, s->n6);
}

int cvz_rangeset_subtract(struct cvz_rangeset *s, const struct cvz_rangeset *minus)
{
	_cleanup_(freep) struct cvz_range4 *v4 = NULL;
	_cleanup_(freep) struct cvz_range6 *v6 = NULL;
	size_t n4 = 0, n6 = 0;

	/* Carve both families into new arrays before touching s, so that a
	 * failed allocation leaves s exactly as it was. */
	if (s->n4 && minus->n4) {
		v4 = reallocarray(NULL, s->n4 + minus->n4, sizeof(*v4));
		if (!v4)
			return -ENOMEM;
		n4 = v4_carve(s->v4, s->n4, minus->v4, minus->n4, v4);
	}
	if (s->n6 && minus->n6) {
		v6 = reallocarray(NULL, s->n6 + minus->n6, sizeof(*v6));
		if (!v6)
			return -ENOMEM;
		n6 = v6_carve(s->v6, s->n6, minus->v6, minus->n6, v6);
	}

	if (v4) {
		s->cap4 = s->n4 + minus->n4;
		s->n4 = n4;
		free(s->v4);
		s->v4 = TAKE_PTR(v4);
	}
	if (v6) {
		s->cap6 = s->n6 + minus->n6;
		s->n6 = n6;
		free(s->v6);
		s->v6 = TAKE_PTR(v6);
	}
	return 0;
}

bool cvz_rangeset_overlaps_prefix(const struct cvz_rangeset *s,
				  const struct cvz_prefix *p)
{
	if (p->family == AF_INET && p->len <= 32) {
		uint32_t lo = v4_from_bytes(p->addr) & ~v4_hostmask(p->len);

		return v4_find(s->v4, s->n4, lo, lo | v4_hostmask(p->len));
	}
	if (p->family == AF_INET6 && p->len <= 128) {
		unsigned __int128 lo = v6_from_bytes(p->addr) & ~v6_hostmask(p->len);

		return v6_find(s->v6, s->n6, lo, lo | v6_hostmask(p->len));
	}
	return false;
}

char *cvz_range4_format(const struct cvz_range4 *r, char *buf, size_t len)
{
	return v4_format(r, buf, len);
}

char *cvz_range6_format(const struct cvz_range6 *r, char *buf, size_t len)
{
	return v6_format(r, buf, len);
}

void cvz_rangeset_free(struct cvz_rangeset *s)
{
	free(s->v4);
	free(s->v6);
	*s = (struct cvz_rangeset){ 0 };
}
