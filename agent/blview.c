/* The blocklist as the kernel must hold it, computed incrementally.
 *
 * A million policy and list entries are normalised once per policy (the
 * view); a block or unblock then recomputes only the window of kernel ranges
 * it touches, so its cost does not grow with the size of the lists. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "blocklist.h"
#include "cleanup.h"

#define V4_MAX UINT32_MAX
#define V6_MAX (~(unsigned __int128)0)

/* The inclusive range of addresses of p. */
static void prefix_range4(const struct cvz_prefix *p, uint32_t *lo, uint32_t *hi)
{
	uint32_t a = (uint32_t)p->addr[0] << 24 | (uint32_t)p->addr[1] << 16 |
		     (uint32_t)p->addr[2] << 8 | p->addr[3];
	uint32_t host = p->len ? (p->len == 32 ? 0 : V4_MAX >> p->len) : V4_MAX;
	*lo = a & ~host;
	*hi = a | host;
}

static void prefix_range6(const struct cvz_prefix *p, unsigned __int128 *lo,
			  unsigned __int128 *hi)
{
	unsigned __int128 a = 0;
	for (int i = 0; i < 16; i++)
		a = a << 8 | p->addr[i];
	unsigned __int128 host = p->len ? (p->len == 128 ? 0 : V6_MAX >> p->len) : V6_MAX;
	*lo = a & ~host;
	*hi = a | host;
}

/* For each family: the first range whose hi is >= x (binary search). */
#define DEFINE_VIEW_OPS(SFX, RANGE, ADDR, MAXV, ARR, N, ADD, FAM, PRANGE)              \
	static size_t SFX##_first_hi_ge(const RANGE *v, size_t n, ADDR x)                \
	{                                                                                \
		size_t lo = 0, hi = n;                                                   \
		while (lo < hi) {                                                        \
			size_t mid = lo + (hi - lo) / 2;                                 \
			if (v[mid].hi < x)                                               \
				lo = mid + 1;                                            \
			else                                                             \
				hi = mid;                                                \
		}                                                                        \
		return lo;                                                               \
	}                                                                                \
                                                                                         \
	/* Adds to out the parts of the ranges of v that lie in [wlo, whi]. */           \
	static int SFX##_clip_into(const RANGE *v, size_t n, ADDR wlo, ADDR whi,         \
				   struct cvz_rangeset *out)                             \
	{                                                                                \
		int err = 0;                                                             \
		for (size_t i = SFX##_first_hi_ge(v, n, wlo); !err && i < n && v[i].lo <= whi; \
		     i++)                                                                \
			err = ADD(out, v[i].lo > wlo ? v[i].lo : wlo,                    \
				  v[i].hi < whi ? v[i].hi : whi);                        \
		return err;                                                              \
	}                                                                                \
                                                                                         \
	/* The delta for family SFX after entries covering [xlo, xhi] changed. */        \
	static int SFX##_window(const struct bl_view *view, const struct blocklist *b,   \
				const struct cvz_rangeset *k, ADDR xlo, ADDR xhi,        \
				struct cvz_rangeset *del, struct cvz_rangeset *add)      \
	{                                                                                \
		/* kernel ranges overlapping or adjacent to X are replaced whole:        \
		   outside them nothing changes and nothing can merge */                 \
		ADDR lo1 = xlo ? xlo - 1 : 0, hi1 = xhi != MAXV ? xhi + 1 : MAXV;        \
		size_t i0 = SFX##_first_hi_ge(k->ARR, k->N, lo1), i1 = i0;               \
		while (i1 < k->N && k->ARR[i1].lo <= hi1)                                \
			i1++;                                                            \
		ADDR wlo = xlo, whi = xhi;                                               \
		if (i1 > i0) {                                                           \
			wlo = k->ARR[i0].lo < wlo ? k->ARR[i0].lo : wlo;                 \
			whi = k->ARR[i1 - 1].hi > whi ? k->ARR[i1 - 1].hi : whi;         \
		}                                                                        \
		struct cvz_rangeset now = { 0 }, old = { 0 };                            \
		int err = SFX##_clip_into(view->policy.ARR, view->policy.N, wlo, whi, &now); \
		for (size_t i = 0; !err && i < b->n; i++) {                              \
			ADDR lo, hi;                                                     \
			if (b->v[i].prefix.family != FAM)                                \
				continue;                                                \
			PRANGE(&b->v[i].prefix, &lo, &hi);                               \
			if (hi >= wlo && lo <= whi)                                      \
				err = ADD(&now, lo > wlo ? lo : wlo, hi < whi ? hi : whi); \
		}                                                                        \
		if (!err) {                                                              \
			cvz_rangeset_normalize(&now);                                    \
			err = cvz_rangeset_subtract(&now, &view->safe);                  \
		}                                                                        \
		for (size_t i = i0; !err && i < i1; i++)                                 \
			err = ADD(&old, k->ARR[i].lo, k->ARR[i].hi);                     \
		if (!err)                                                                \
			err = rangeset_diff(&old, &now, del, add);                       \
		cvz_rangeset_free(&now);                                                 \
		cvz_rangeset_free(&old);                                                 \
		return err;                                                              \
	}                                                                                \
                                                                                         \
	/* k := k - del + add, where del is a run of k and add fills its place. */       \
	static int SFX##_splice(struct cvz_rangeset *k, const RANGE *del, size_t ndel,    \
				const RANGE *add, size_t nadd, size_t *cap)              \
	{                                                                                \
		if (!ndel && !nadd)                                                      \
			return 0;                                                        \
		ADDR key = ndel ? del[0].lo : add[0].lo;                                 \
		size_t at = SFX##_first_hi_ge(k->ARR, k->N, key);                        \
		if (at + ndel > k->N)                                                    \
			return -EINVAL;                                                  \
		for (size_t j = 0; j < ndel; j++)                                        \
			if (k->ARR[at + j].lo != del[j].lo || k->ARR[at + j].hi != del[j].hi) \
				return -EINVAL;                                          \
		size_t n = k->N - ndel + nadd;                                           \
		if (n > *cap) {                                                          \
			RANGE *nv = reallocarray(k->ARR, n, sizeof(*nv));                \
			if (!nv)                                                         \
				return -ENOMEM;                                          \
			k->ARR = nv;                                                     \
			*cap = n;                                                        \
		}                                                                        \
		memmove(&k->ARR[at + nadd], &k->ARR[at + ndel],                          \
			(k->N - at - ndel) * sizeof(*k->ARR));                           \
		if (nadd)                                                                \
			memcpy(&k->ARR[at], add, nadd * sizeof(*add));                   \
		k->N = n;                                                                \
		return 0;                                                                \
	}                                                                                \
                                                                                         \
	/* The same in one pass for a del that is not one run of k. */                  \
	static int SFX##_merge_delta(struct cvz_rangeset *k, const RANGE *del, size_t ndel, \
				     const RANGE *add, size_t nadd, size_t *cap)         \
	{                                                                                \
		RANGE *out = calloc(k->N + nadd + 1, sizeof(*out));                      \
		size_t n = 0, d = 0, a = 0;                                              \
		if (!out)                                                                \
			return -ENOMEM;                                                  \
		for (size_t i = 0; i <= k->N; i++) {                                     \
			while (a < nadd && (i == k->N || add[a].lo < k->ARR[i].lo))     \
				out[n++] = add[a++];                                     \
			if (i == k->N)                                                   \
				break;                                                   \
			if (d < ndel && del[d].lo == k->ARR[i].lo && del[d].hi == k->ARR[i].hi) \
				d++;                                                     \
			else                                                             \
				out[n++] = k->ARR[i];                                    \
		}                                                                        \
		if (d != ndel) {                                                         \
			free(out);                                                       \
			return -EINVAL;                                                  \
		}                                                                        \
		free(k->ARR);                                                            \
		k->ARR = out;                                                            \
		k->N = n;                                                                \
		*cap = k->N + nadd + 1;                                                  \
		return 0;                                                                \
	}

DEFINE_VIEW_OPS(v4, struct cvz_range4, uint32_t, V4_MAX, v4, n4, cvz_rangeset_add4, AF_INET,
		prefix_range4)
DEFINE_VIEW_OPS(v6, struct cvz_range6, unsigned __int128, V6_MAX, v6, n6, cvz_rangeset_add6,
		AF_INET6, prefix_range6)

int bl_view_init(struct bl_view *v, const struct cvz_prefix *policy_blocked, size_t n_policy,
		 const struct cvz_prefix *safelist, size_t n_safe)
{
	struct bl_view w = { 0 };
	int err = bl_never_blockable(&w.safe);
	for (size_t i = 0; !err && i < n_safe; i++)
		err = cvz_rangeset_add_prefix(&w.safe, &safelist[i]);
	for (size_t i = 0; !err && i < n_policy; i++)
		err = cvz_rangeset_add_prefix(&w.policy, &policy_blocked[i]);
	if (err) {
		bl_view_free(&w);
		return err;
	}
	cvz_rangeset_normalize(&w.safe);
	cvz_rangeset_normalize(&w.policy);
	*v = w;
	return 0;
}

void bl_view_free(struct bl_view *v)
{
	cvz_rangeset_free(&v->policy);
	cvz_rangeset_free(&v->safe);
}

/* out := a ∪ b for normalised a and b, in one pass. */
static int rangeset_union(const struct cvz_rangeset *a, const struct cvz_rangeset *b,
			  struct cvz_rangeset *out)
{
	struct cvz_rangeset u = { 0 };
	int err = 0;
	size_t i = 0, j = 0;
	while (!err && (i < a->n4 || j < b->n4)) {
		bool ta = j >= b->n4 || (i < a->n4 && a->v4[i].lo <= b->v4[j].lo);
		const struct cvz_range4 *r = ta ? &a->v4[i++] : &b->v4[j++];
		if (u.n4 && (u.v4[u.n4 - 1].hi == V4_MAX || r->lo <= u.v4[u.n4 - 1].hi + 1)) {
			if (r->hi > u.v4[u.n4 - 1].hi)
				u.v4[u.n4 - 1].hi = r->hi;
		} else {
			err = cvz_rangeset_add4(&u, r->lo, r->hi);
		}
	}
	i = j = 0;
	while (!err && (i < a->n6 || j < b->n6)) {
		bool ta = j >= b->n6 || (i < a->n6 && a->v6[i].lo <= b->v6[j].lo);
		const struct cvz_range6 *r = ta ? &a->v6[i++] : &b->v6[j++];
		if (u.n6 && (u.v6[u.n6 - 1].hi == V6_MAX || r->lo <= u.v6[u.n6 - 1].hi + 1)) {
			if (r->hi > u.v6[u.n6 - 1].hi)
				u.v6[u.n6 - 1].hi = r->hi;
		} else {
			err = cvz_rangeset_add6(&u, r->lo, r->hi);
		}
	}
	if (err) {
		cvz_rangeset_free(&u);
		return err;
	}
	*out = u;
	return 0;
}

int bl_view_desired(const struct bl_view *v, const struct blocklist *b, struct cvz_rangeset *out)
{
	struct cvz_rangeset rt = { 0 }, u;
	int err = 0;
	for (size_t i = 0; !err && i < b->n; i++)
		err = cvz_rangeset_add_prefix(&rt, &b->v[i].prefix);
	if (!err) {
		cvz_rangeset_normalize(&rt);
		err = rangeset_union(&v->policy, &rt, &u);
	}
	cvz_rangeset_free(&rt);
	if (err)
		return err;
	err = cvz_rangeset_subtract(&u, &v->safe);
	if (err) {
		cvz_rangeset_free(&u);
		return err;
	}
	*out = u;
	return 0;
}

int bl_view_window(const struct bl_view *v, const struct blocklist *b,
		   const struct cvz_rangeset *kernel, const struct cvz_prefix *changed,
		   struct cvz_rangeset *del, struct cvz_rangeset *add)
{
	if (changed->family == AF_INET) {
		uint32_t lo, hi;
		prefix_range4(changed, &lo, &hi);
		return v4_window(v, b, kernel, lo, hi, del, add);
	}
	unsigned __int128 lo, hi;
	prefix_range6(changed, &lo, &hi);
	return v6_window(v, b, kernel, lo, hi, del, add);
}

int rangeset_apply_delta(struct cvz_rangeset *kernel, const struct cvz_rangeset *del,
			 const struct cvz_rangeset *add)
{
	/* a splice in place is the common case (one range changed); anything
	   else takes one pass over the set */
	int err = v4_splice(kernel, del->v4, del->n4, add->v4, add->n4, &kernel->cap4);
	if (err == -EINVAL)
		err = v4_merge_delta(kernel, del->v4, del->n4, add->v4, add->n4, &kernel->cap4);
	if (!err)
		err = v6_splice(kernel, del->v6, del->n6, add->v6, add->n6, &kernel->cap6);
	if (err == -EINVAL)
		err = v6_merge_delta(kernel, del->v6, del->n6, add->v6, add->n6, &kernel->cap6);
	return err;
}
