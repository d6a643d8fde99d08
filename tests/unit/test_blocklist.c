/* Runtime blocklist entries: refusals, TTL refresh, expiry, the sets the
 * kernel must hold (lists and dynamic) and the kernel delta. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "blocklist.h"

static struct cvz_prefix P(const char *s)
{
	struct cvz_prefix p;
	assert_int_equal(cvz_prefix_parse(s, &p, NULL, NULL, 0), 0);
	return p;
}

static void test_refusals(void **state)
{
	(void)state;
	struct cvz_prefix safe[] = { P("10.1.2.3"), P("2001:db8:1::/48") };
	char buf[200];
	struct {
		const char *addr;
		const char *why;
	} cases[] = {
		{ "0.0.0.0/0", "blocking every address (/0) is not allowed" },
		{ "::/0", "blocking every address (/0) is not allowed" },
		{ "127.0.0.1", "127.0.0.1 covers loopback, which is never blockable" },
		{ "::1", "::1 covers loopback, which is never blockable" },
		{ "0.0.0.0", "0.0.0.0 covers the unspecified address, which is never blockable" },
		{ "224.0.0.1", "224.0.0.1 covers multicast, which is never blockable" },
		{ "ff02::1", "ff02::1 covers multicast, which is never blockable" },
		{ "10.0.0.0/8", "10.0.0.0/8 covers the safelisted 10.1.2.3" },
		{ "10.1.2.3", "10.1.2.3 is inside the safelisted 10.1.2.3" },
		{ "2001:db8:1:2::/64", "2001:db8:1:2::/64 is inside the safelisted 2001:db8:1::/48" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cvz_prefix p = P(cases[i].addr);
		const char *why = bl_refusal(&p, safe, 2, buf, sizeof(buf));
		assert_non_null(why);
		assert_string_equal(why, cases[i].why);
	}
	struct cvz_prefix ok = P("203.0.113.7");
	assert_null(bl_refusal(&ok, safe, 2, buf, sizeof(buf)));
	ok = P("10.1.2.4");
	assert_null(bl_refusal(&ok, safe, 2, buf, sizeof(buf)));
}

/* Guards: any range no block may cover, named in the refusal. */
static void test_guard_refusals(void **state)
{
	(void)state;
	char buf[256];
	const struct bl_guard g[] = {
		{ P("10.0.0.2"), "resolver" },
		{ P("10.20.0.0/16"), "lockdown.allow_from range" },
		{ P("2001:db8:ffff::10"), "control API's own address" },
	};
	static const struct {
		const char *addr, *why;
	} cases[] = {
		{ "10.0.0.2", "10.0.0.2 covers the resolver 10.0.0.2" },
		{ "10.0.0.0/24", "10.0.0.0/24 covers the resolver 10.0.0.2" },
		{ "10.20.3.4", "10.20.3.4 is inside the lockdown.allow_from range 10.20.0.0/16" },
		{ "10.0.0.0/8", "10.0.0.0/8 covers the resolver 10.0.0.2" }, /* the first one */
		{ "2001:db8::/32", "2001:db8::/32 covers the control API's own address 2001:db8:ffff::10" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cvz_prefix p = P(cases[i].addr);
		const char *why = bl_guard_refusal(&p, g, 3, buf, sizeof(buf));
		assert_ptr_equal(why, buf);
		assert_string_equal(why, cases[i].why);
	}
	struct cvz_prefix ok = P("10.0.0.3");
	assert_null(bl_guard_refusal(&ok, g, 3, buf, sizeof(buf)));
	ok = P("10.21.0.0/16");
	assert_null(bl_guard_refusal(&ok, g, 3, buf, sizeof(buf)));
	assert_null(bl_guard_refusal(&ok, NULL, 0, buf, sizeof(buf)));
}

static void test_add_refresh_remove(void **state)
{
	(void)state;
	struct blocklist b = { 0 };
	struct cvz_prefix a = P("203.0.113.7");
	assert_int_equal(bl_add(&b, &a, ORIGIN_OPERATOR, 60, "first", NULL, 1000), 1);
	assert_int_equal(b.v[0].expires, 1060);
	/* a shorter TTL never shortens, a longer one extends */
	assert_int_equal(bl_add(&b, &a, ORIGIN_OPERATOR, 10, NULL, NULL, 1010), 0);
	assert_int_equal(b.v[0].expires, 1060);
	assert_string_equal(b.v[0].reason, "first");
	assert_int_equal(bl_add(&b, &a, ORIGIN_OPERATOR, 100, "second", "INC-1", 1010), 0);
	assert_int_equal(b.v[0].expires, 1110);
	assert_string_equal(b.v[0].reason, "second");
	assert_string_equal(b.v[0].incident, "INC-1");
	/* forever wins, and stays */
	assert_int_equal(bl_add(&b, &a, ORIGIN_OPERATOR, 0, NULL, NULL, 1020), 0);
	assert_int_equal(b.v[0].expires, 0);
	assert_int_equal(bl_add(&b, &a, ORIGIN_OPERATOR, 5, NULL, NULL, 1030), 0);
	assert_int_equal(b.v[0].expires, 0);
	/* another origin is another entry */
	assert_int_equal(bl_add(&b, &a, ORIGIN_CONTROL, 5, NULL, NULL, 1030), 1);
	assert_int_equal(b.n, 2);
	assert_int_equal(bl_remove(&b, &a, ORIGIN_OPERATOR), 0);
	assert_int_equal(bl_remove(&b, &a, ORIGIN_OPERATOR), -ENOENT);
	assert_int_equal(b.n, 1);
	assert_int_equal(b.v[0].origin, ORIGIN_CONTROL);
	bl_free(&b);
}

/* Each origin holds at most bl_origin_max() entries (cvz_limits.h): a new
 * entry beyond is refused with -ENOSPC and changes nothing; refreshing an
 * entry, other origins, and a new entry after a removal or an expiry still
 * work. */
static void test_origin_limit(void **state)
{
	(void)state;
	struct blocklist b = { 0 };
	size_t max = bl_origin_max(ORIGIN_OPERATOR);
	assert_int_equal(max, 10000);
	assert_int_equal(bl_origin_max(ORIGIN_CONTROL), 200000);
	struct cvz_prefix p = P("45.0.0.0");
	for (size_t i = 0; i < max; i++) {
		p.addr[2] = (uint8_t)(i >> 8), p.addr[3] = (uint8_t)i;
		assert_int_equal(bl_add(&b, &p, ORIGIN_OPERATOR, i ? 0 : 10, NULL, NULL, 100), 1);
	}
	struct cvz_prefix more = P("46.0.0.1"), first = P("45.0.0.0");
	assert_int_equal(bl_add(&b, &more, ORIGIN_OPERATOR, 0, "x", NULL, 100), -ENOSPC);
	assert_int_equal(b.n, max);
	assert_null(bl_find(&b, &more, ORIGIN_OPERATOR));
	assert_int_equal(bl_add(&b, &first, ORIGIN_OPERATOR, 20, "refresh", NULL, 100), 0);
	assert_int_equal(bl_add(&b, &more, ORIGIN_CONTROL, 0, NULL, NULL, 100), 1);
	assert_int_equal(b.by_origin[ORIGIN_OPERATOR], max);
	assert_int_equal(b.by_origin[ORIGIN_CONTROL], 1);
	/* the first entry expires at 120: room for one */
	assert_int_equal(bl_expire(&b, 200, NULL, NULL), 1);
	assert_int_equal(bl_add(&b, &more, ORIGIN_OPERATOR, 0, NULL, NULL, 200), 1);
	assert_int_equal(bl_add(&b, &first, ORIGIN_OPERATOR, 0, NULL, NULL, 200), -ENOSPC);
	assert_int_equal(bl_remove(&b, &more, ORIGIN_OPERATOR), 0);
	assert_int_equal(bl_add(&b, &first, ORIGIN_OPERATOR, 0, NULL, NULL, 200), 1);
	assert_int_equal(b.by_origin[ORIGIN_OPERATOR], max);
	bl_free(&b);
}

static void count_expired(const struct bl_entry *e, void *arg)
{
	(void)e;
	(*(int *)arg)++;
}

static void test_expire(void **state)
{
	(void)state;
	struct blocklist b = { 0 };
	struct cvz_prefix a = P("203.0.113.7"), c = P("198.51.100.0/24"), d = P("2001:db8::/32");
	bl_add(&b, &a, ORIGIN_OPERATOR, 30, NULL, NULL, 100);
	bl_add(&b, &c, ORIGIN_OPERATOR, 10, NULL, NULL, 100);
	bl_add(&b, &d, ORIGIN_OPERATOR, 0, NULL, NULL, 100);
	assert_int_equal(bl_next_expiry(&b), 110);
	int n = 0;
	assert_int_equal(bl_expire(&b, 109, count_expired, &n), 0);
	assert_int_equal(bl_expire(&b, 110, count_expired, &n), 1);
	assert_int_equal(n, 1);
	assert_int_equal(bl_next_expiry(&b), 130);
	assert_int_equal(bl_expire(&b, 1000000, NULL, NULL), 1);
	assert_int_equal(bl_next_expiry(&b), 0);
	assert_int_equal(b.n, 1);
	bl_free(&b);
}

/* Overlapping entries of different origins and TTLs: expiry of one must not
 * unblock what another still covers. The lists' ranges never change with
 * runtime entries; the dynamic sets hold only those. */
static void test_lists_dynamic_and_diff(void **state)
{
	(void)state;
	struct blocklist b = { 0 };
	struct cvz_prefix net = P("198.51.100.0/24"), host = P("198.51.100.7"), v6 = P("2001:db8::/32");
	struct cvz_prefix pol[] = { P("10.0.0.0/8") }, safe[] = { P("10.1.2.3") };
	struct bl_view v;
	assert_int_equal(bl_view_init(&v, pol, 1, safe, 1), 0);
	assert_int_equal(v.lists.n4, 2); /* 10/8 carved in two */
	assert_int_equal(v.lists.v4[0].hi, 0x0a010202);
	assert_int_equal(v.lists.v4[1].lo, 0x0a010204);
	assert_int_equal(v.lists.n6, 0);
	bl_add(&b, &net, ORIGIN_CONTROL, 10, NULL, NULL, 0);
	bl_add(&b, &host, ORIGIN_OPERATOR, 100, NULL, NULL, 0);
	bl_add(&b, &v6, ORIGIN_OPERATOR, 0, NULL, NULL, 0);
	struct cvz_rangeset before, after, del, add;
	assert_int_equal(bl_view_dynamic(&v, &b, &before), 0);
	assert_int_equal(before.n4, 1); /* the host inside the /24 */
	assert_int_equal(before.v4[0].lo, 0xc6336400);
	assert_int_equal(before.v4[0].hi, 0xc63364ff);
	assert_int_equal(before.n6, 1);
	bl_expire(&b, 10, NULL, NULL); /* the /24 goes, the host stays */
	assert_int_equal(bl_view_dynamic(&v, &b, &after), 0);
	assert_int_equal(after.n4, 1);
	assert_int_equal(after.v4[0].lo, 0xc6336407);
	assert_int_equal(after.v4[0].hi, 0xc6336407);
	assert_int_equal(v.lists.n4, 2);
	assert_int_equal(rangeset_diff(&before, &after, &del, &add), 0);
	assert_int_equal(del.n4, 1);
	assert_int_equal(del.v4[0].lo, 0xc6336400);
	assert_int_equal(add.n4, 1);
	assert_int_equal(add.v4[0].lo, 0xc6336407);
	assert_int_equal(del.n6 + add.n6, 0);
	cvz_rangeset_free(&del);
	cvz_rangeset_free(&add);
	/* unchanged: nothing to send */
	assert_int_equal(rangeset_diff(&after, &after, &del, &add), 0);
	assert_int_equal(del.n4 + del.n6 + add.n4 + add.n6, 0);
	cvz_rangeset_free(&before);
	cvz_rangeset_free(&after);
	bl_view_free(&v);
	bl_free(&b);
}

/* The dynamic sets: runtime entries minus safe, whatever the lists hold. A
 * safelist that a reload added after a block carves the entry; an entry
 * inside a listed range stays (an address may be in both pairs). */
static void test_dynamic_minus_safe(void **state)
{
	(void)state;
	struct blocklist b = { 0 };
	struct cvz_prefix net = P("198.51.100.0/24"), listed = P("10.9.9.9"), v6 = P("::/127");
	struct cvz_prefix pol[] = { P("10.0.0.0/8") }, safe[] = { P("198.51.100.7") };
	struct bl_view v;
	struct cvz_rangeset dyn;
	assert_int_equal(bl_view_init(&v, pol, 1, safe, 1), 0);
	bl_add(&b, &net, ORIGIN_CROWDSEC, 0, NULL, NULL, 0);
	bl_add(&b, &listed, ORIGIN_OPERATOR, 0, NULL, NULL, 0);
	bl_add(&b, &v6, ORIGIN_OPERATOR, 0, NULL, NULL, 0);
	assert_int_equal(bl_view_dynamic(&v, &b, &dyn), 0);
	assert_int_equal(dyn.n4, 3);
	assert_int_equal(dyn.v4[0].lo, 0x0a090909);
	assert_int_equal(dyn.v4[0].hi, 0x0a090909);
	assert_int_equal(dyn.v4[1].lo, 0xc6336400);
	assert_int_equal(dyn.v4[1].hi, 0xc6336406);
	assert_int_equal(dyn.v4[2].lo, 0xc6336408);
	assert_int_equal(dyn.v4[2].hi, 0xc63364ff);
	assert_int_equal(dyn.n6, 0); /* :: and ::1 may never be blocked */
	cvz_rangeset_free(&dyn);
	/* no runtime entries: empty */
	struct blocklist none = { 0 };
	assert_int_equal(bl_view_dynamic(&v, &none, &dyn), 0);
	assert_int_equal(dyn.n4 + dyn.n6, 0);
	cvz_rangeset_free(&dyn);
	bl_view_free(&v);
	bl_free(&b);
}

/* List entries covering loopback, multicast or unspecified are carved, not
 * refused: real lists (FireHOL level1) contain 0.0.0.0/8 and 224.0.0.0/3. */
static void test_never_blockable_carved(void **state)
{
	(void)state;
	struct cvz_prefix pol[] = { P("120.0.0.0/5"), P("0.0.0.0/8"), P("224.0.0.0/3"), P("::/127") };
	struct bl_view v;
	assert_int_equal(bl_view_init(&v, pol, 4, NULL, 0), 0);
	const struct cvz_rangeset *out = &v.lists;
	assert_int_equal(out->n4, 3);
	assert_int_equal(out->v4[0].lo, 0x00000001); /* 0.0.0.1-0.255.255.255 */
	assert_int_equal(out->v4[0].hi, 0x00ffffff);
	assert_int_equal(out->v4[1].lo, 0x78000000); /* 120.0.0.0-126.255.255.255 */
	assert_int_equal(out->v4[1].hi, 0x7effffff);
	assert_int_equal(out->v4[2].lo, 0xf0000000); /* 240.0.0.0/4, multicast gone */
	assert_int_equal(out->v4[2].hi, 0xffffffff);
	assert_int_equal(out->n6, 0); /* :: and ::1 were all there was */
	bl_view_free(&v);
}

/* The hash index against a plain model: random adds, removes and expiries
 * over a small key space (so probe runs collide and wrap), checking after
 * every step that exactly the model's keys are found. */
static void test_index_matches_model(void **state)
{
	(void)state;
	enum { KEYS = 600, STEPS = 20000 };
	static int64_t model[KEYS]; /* 0 absent, else expiry (or -1: forever) */
	memset(model, 0, sizeof(model));
	struct blocklist b = { 0 };
	srand(7);
	for (int step = 0; step < STEPS; step++) {
		int k = rand() % KEYS, op = rand() % 10;
		struct cvz_prefix p = { .family = AF_INET, .len = 32,
					.addr = { 198, 51, (uint8_t)(k >> 8), (uint8_t)k } };
		enum bl_origin og = k % 2 ? ORIGIN_CONTROL : ORIGIN_OPERATOR;
		if (op < 6) {
			uint64_t ttl = (uint64_t)(rand() % 3) * 10;
			int r = bl_add(&b, &p, og, ttl, NULL, NULL, 1000);
			assert_int_equal(r, model[k] ? 0 : 1);
			int64_t want = ttl ? 1000 + (int64_t)ttl : -1;
			if (!model[k] || want == -1 || (model[k] != -1 && want > model[k]))
				model[k] = want;
		} else if (op < 9) {
			assert_int_equal(bl_remove(&b, &p, og), model[k] ? 0 : -ENOENT);
			model[k] = 0;
		} else {
			size_t n = 0;
			for (int i = 0; i < KEYS; i++)
				if (model[i] > 0 && model[i] <= 1010) {
					model[i] = 0;
					n++;
				}
			assert_int_equal(bl_expire(&b, 1010, NULL, NULL), n);
		}
		if (step % 500 == 0 || step == STEPS - 1) {
			size_t live = 0;
			for (int i = 0; i < KEYS; i++) {
				struct cvz_prefix q = { .family = AF_INET, .len = 32,
							.addr = { 198, 51, (uint8_t)(i >> 8), (uint8_t)i } };
				struct bl_entry *e = bl_find(&b, &q, i % 2 ? ORIGIN_CONTROL : ORIGIN_OPERATOR);
				assert_true((e != NULL) == (model[i] != 0));
				assert_null(bl_find(&b, &q, i % 2 ? ORIGIN_OPERATOR : ORIGIN_CONTROL));
				if (e)
					assert_int_equal(e->expires, model[i] == -1 ? 0 : model[i]);
				live += model[i] != 0;
			}
			assert_int_equal(b.n, live);
		}
	}
	bl_free(&b);
}

/* The limits live in the blocklist, so every origin meets them: TTLs at and
 * around CVZ_TTL_MAX, absurd values cast from negative or huge JSON
 * integers, and a "now" the agent cannot believe. A refusal changes nothing. */
static void test_ttl_limits(void **state)
{
	(void)state;
	struct blocklist b = { 0 };
	struct cvz_prefix a = P("198.51.100.9"), c = P("198.51.100.10");
	const int64_t now = 1764000000;
	assert_int_equal(bl_add(&b, &a, ORIGIN_OPERATOR, 0, NULL, NULL, now), 1);
	assert_int_equal(b.v[0].expires, 0);
	assert_int_equal(bl_remove(&b, &a, ORIGIN_OPERATOR), 0);
	assert_int_equal(bl_add(&b, &a, ORIGIN_OPERATOR, (uint64_t)CVZ_TTL_MAX, NULL, NULL, now), 1);
	assert_int_equal(b.v[0].expires, now + CVZ_TTL_MAX);
	const uint64_t bad[] = {
		(uint64_t)CVZ_TTL_MAX + 1,
		(uint64_t)17592186044416 - (uint64_t)now, /* the 2^44 - now */
		(uint64_t)INT64_MAX,
		(uint64_t)INT64_MAX - (uint64_t)now + 1, /* now + ttl wraps negative */
		(uint64_t)-1,                             /* -1 cast by a careless caller */
		(uint64_t)INT64_MIN,
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(bl_add(&b, &c, ORIGIN_OPERATOR, bad[i], "r", NULL, now), -ERANGE);
		assert_null(bl_find(&b, &c, ORIGIN_OPERATOR));
		/* a refresh with a bad TTL leaves the entry as it was */
		assert_int_equal(bl_add(&b, &a, ORIGIN_OPERATOR, bad[i], "changed", NULL, now), -ERANGE);
		assert_int_equal(bl_find(&b, &a, ORIGIN_OPERATOR)->expires, now + CVZ_TTL_MAX);
		assert_null(bl_find(&b, &a, ORIGIN_OPERATOR)->reason);
	}
	assert_int_equal(b.n, 1);
	/* now itself: negative, or beyond year 9999 */
	assert_int_equal(bl_add(&b, &c, ORIGIN_OPERATOR, 60, NULL, NULL, -1), -ERANGE);
	assert_int_equal(bl_add(&b, &c, ORIGIN_OPERATOR, 60, NULL, NULL, CVZ_TIME_MAX + 1), -ERANGE);
	assert_int_equal(bl_add(&b, &c, ORIGIN_OPERATOR, (uint64_t)CVZ_TTL_MAX, NULL, NULL,
				CVZ_TIME_MAX), 1);
	int64_t e;
	assert_int_equal(bl_expiry(1, INT64_MAX, &e), -ERANGE);
	assert_int_equal(bl_expiry(60, 100, &e), 0);
	assert_int_equal(e, 160);
	bl_free(&b);
}

/* bl_restore (state.json): impossible times refused one entry at a time. */
static void test_restore_limits(void **state)
{
	(void)state;
	struct blocklist b = { 0 };
	const int64_t now = 1764000000;
	struct bl_entry e = { .prefix = P("203.0.113.7"), .origin = ORIGIN_CONTROL,
			      .created = now - 10, .expires = now + 60, .reason = "r",
			      .incident = "INC-1" };
	assert_int_equal(bl_restore(&b, &e, now), 1);
	struct bl_entry *got = bl_find(&b, &e.prefix, ORIGIN_CONTROL);
	assert_non_null(got);
	assert_int_equal(got->created, now - 10);
	assert_int_equal(got->expires, now + 60);
	assert_string_equal(got->reason, "r");
	assert_string_equal(got->incident, "INC-1");
	/* replacing: times and text as given, even a shorter expiry */
	e.expires = now + 30;
	e.reason = NULL;
	assert_int_equal(bl_restore(&b, &e, now), 0);
	assert_int_equal(got->expires, now + 30);
	assert_null(got->reason);
	/* past expiries and "never" are fine; bl_expire() deals with the former */
	e.prefix = P("203.0.113.8");
	e.expires = 5;
	assert_int_equal(bl_restore(&b, &e, now), 1);
	e.prefix = P("203.0.113.9");
	e.expires = 0;
	assert_int_equal(bl_restore(&b, &e, now), 1);
	e.expires = now + CVZ_TTL_MAX;
	assert_int_equal(bl_restore(&b, &e, now), 0);
	size_t n = b.n;
	struct bl_entry bad = e;
	bad.prefix = P("198.51.100.9");
	const int64_t expires[] = { now + CVZ_TTL_MAX + 1, 17592186044416, INT64_MAX, -1, INT64_MIN };
	for (size_t i = 0; i < sizeof(expires) / sizeof(expires[0]); i++) {
		bad.expires = expires[i];
		assert_int_equal(bl_restore(&b, &bad, now), -ERANGE);
	}
	bad.expires = 0;
	bad.created = -1;
	assert_int_equal(bl_restore(&b, &bad, now), -ERANGE);
	bad.created = CVZ_TIME_MAX + 1;
	assert_int_equal(bl_restore(&b, &bad, now), -ERANGE);
	bad.created = now;
	bad.origin = ORIGIN_COUNT;
	assert_int_equal(bl_restore(&b, &bad, now), -ERANGE);
	assert_int_equal(b.n, n);
	assert_null(bl_find(&b, &bad.prefix, ORIGIN_CONTROL));
	bl_free(&b);
}

/* The expiry timer is never armed before not_before, and its microseconds
 * never overflow. */
static void test_expiry_timer(void **state)
{
	(void)state;
	struct blocklist b = { 0 };
	struct cvz_prefix a = P("198.51.100.9"), c = P("198.51.100.10");
	uint64_t usec = 7;
	assert_int_equal(bl_expiry_timer_usec(&b, 100, &usec), -ENOENT);
	assert_int_equal(usec, 7);
	bl_add(&b, &a, ORIGIN_OPERATOR, 0, NULL, NULL, 100);
	assert_int_equal(bl_expiry_timer_usec(&b, 100, &usec), -ENOENT);
	bl_add(&b, &c, ORIGIN_OPERATOR, 50, NULL, NULL, 100);
	assert_int_equal(bl_expiry_timer_usec(&b, 100, &usec), 0);
	assert_int_equal(usec, 150 * CVZ_USEC_PER_SEC);
	/* due already: not before not_before (after an expiry run, now + 1) */
	assert_int_equal(bl_expiry_timer_usec(&b, 151, &usec), 0);
	assert_int_equal(usec, 151 * CVZ_USEC_PER_SEC);
	bl_add(&b, &c, ORIGIN_OPERATOR, (uint64_t)CVZ_TTL_MAX, NULL, NULL, CVZ_TIME_MAX);
	assert_int_equal(bl_expiry_timer_usec(&b, 100, &usec), 0);
	assert_int_equal(usec, (uint64_t)(CVZ_TIME_MAX + CVZ_TTL_MAX) * CVZ_USEC_PER_SEC);
	assert_true(usec < (uint64_t)INT64_MAX);
	assert_int_equal(bl_expiry_timer_usec(&b, INT64_MAX, &usec), -ERANGE);
	bl_free(&b);
}

/* A copy of b made by plain bl_add (the reference for staged changes). */
static void copy_blocklist(const struct blocklist *b, struct blocklist *out)
{
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < b->n; i++) {
		const struct bl_entry *e = &b->v[i];
		assert_true(bl_add(out, &e->prefix, (enum bl_origin)e->origin, 0, e->reason,
				   e->incident, e->created) >= 0);
		bl_find(out, &e->prefix, (enum bl_origin)e->origin)->expires = e->expires;
	}
}

static bool same_text(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void assert_same_entry(const struct bl_entry *a, const struct bl_entry *b)
{
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(a->created, b->created);
	assert_int_equal(a->expires, b->expires);
	assert_true(same_text(a->reason, b->reason));
	assert_true(same_text(a->incident, b->incident));
}

/* The entries walked (base as changed) are exactly want's. */
static void assert_walk_equals(const struct bl_change *c, struct blocklist *want)
{
	const struct bl_entry *e;
	size_t it = 0, n = 0;
	while ((e = bl_change_next(c, &it))) {
		assert_same_entry(e, bl_find(want, &e->prefix, (enum bl_origin)e->origin));
		n++;
	}
	assert_int_equal(n, want->n);
}

static void assert_blocklists_equal(struct blocklist *a, struct blocklist *b)
{
	assert_int_equal(a->n, b->n);
	for (size_t i = 0; i < a->n; i++)
		assert_same_entry(&a->v[i], bl_find(b, &a->v[i].prefix, (enum bl_origin)a->v[i].origin));
}

/* Staged changes against the same operations done directly on a copy: what
 * the change reads and walks is the copy; the base is untouched until the
 * commit, after which it equals the copy; a dropped change leaves the base
 * exactly as it was, reasons, incidents and expiries included (the undo it
 * replaces restored only the expiry). */
static void test_change_matches_direct(void **state)
{
	(void)state;
	enum { KEYS = 300, ROUNDS = 400 };
	static const char *const texts[] = { NULL, "alpha", "beta", "gamma" };
	struct blocklist base = { 0 };
	srand(11);
	for (int round = 0; round < ROUNDS; round++) {
		struct blocklist before, ref;
		copy_blocklist(&base, &before);
		copy_blocklist(&base, &ref);
		struct bl_change c;
		bl_change_init(&c, &base);
		int steps = 1 + rand() % 40;
		for (int step = 0; step < steps; step++) {
			int k = rand() % KEYS, op = rand() % 10;
			struct cvz_prefix p = { .family = AF_INET, .len = 32,
						.addr = { 198, 51, (uint8_t)(k >> 8), (uint8_t)k } };
			enum bl_origin og = k % 3 ? ORIGIN_CONTROL : ORIGIN_OPERATOR;
			int64_t now = 1000 + round;
			if (op < 6) {
				uint64_t ttl = (uint64_t)(rand() % 3) * 10;
				const char *rs = texts[rand() % 4], *in = texts[rand() % 4];
				int want = bl_add(&ref, &p, og, ttl, rs, in, now);
				assert_int_equal(bl_change_add(&c, &p, og, ttl, rs, in, now), want);
			} else {
				int want = bl_remove(&ref, &p, og);
				assert_int_equal(bl_change_remove(&c, &p, og), want);
			}
			const struct bl_entry *e = bl_change_find(&c, &p, og);
			struct bl_entry *r = bl_find(&ref, &p, og);
			assert_true((e != NULL) == (r != NULL));
			if (e)
				assert_same_entry(e, r);
		}
		assert_walk_equals(&c, &ref);
		assert_blocklists_equal(&base, &before); /* staging touched nothing */
		if (rand() % 3) {
			assert_int_equal(bl_change_reserve(&c, &base), 0);
			assert_blocklists_equal(&base, &before);
			bl_change_commit(&c, &base);
			assert_true(bl_change_empty(&c));
			assert_blocklists_equal(&base, &ref);
			assert_blocklists_equal(&ref, &base);
		} else { /* refused: dropped */
			bl_change_free(&c);
			assert_blocklists_equal(&base, &before);
		}
		bl_free(&before);
		bl_free(&ref);
	}
	bl_free(&base);
}

/* A re-block staged on an existing entry and then dropped (the kernel or
 * the state file refused it) leaves the entry's reason, incident and expiry
 * as they were; committed, it carries the new ones. */
static void test_change_reblock_dropped(void **state)
{
	(void)state;
	struct blocklist b = { 0 };
	struct cvz_prefix a = P("203.0.113.7");
	assert_int_equal(bl_add(&b, &a, ORIGIN_OPERATOR, 60, "old", "INC-1", 1000), 1);
	struct bl_change c;
	bl_change_init(&c, &b);
	assert_int_equal(bl_change_add(&c, &a, ORIGIN_OPERATOR, 0, "new", "INC-2", 1010), 0);
	assert_int_equal(bl_change_find(&c, &a, ORIGIN_OPERATOR)->expires, 0);
	assert_string_equal(bl_change_find(&c, &a, ORIGIN_OPERATOR)->reason, "new");
	bl_change_free(&c);
	struct bl_entry *e = bl_find(&b, &a, ORIGIN_OPERATOR);
	assert_int_equal(e->expires, 1060);
	assert_string_equal(e->reason, "old");
	assert_string_equal(e->incident, "INC-1");
	bl_change_init(&c, &b);
	assert_int_equal(bl_change_add(&c, &a, ORIGIN_OPERATOR, 0, "new", "INC-2", 1010), 0);
	assert_int_equal(bl_change_reserve(&c, &b), 0);
	bl_change_commit(&c, &b);
	e = bl_find(&b, &a, ORIGIN_OPERATOR);
	assert_int_equal(e->expires, 0);
	assert_int_equal(e->created, 1000);
	assert_string_equal(e->reason, "new");
	assert_string_equal(e->incident, "INC-2");
	bl_free(&b);
}

/* Out of memory while making room for a change (the address space capped
 * just above what the process holds): bl_change_reserve fails, the live
 * blocklist is whole and the change can be dropped or, with memory back,
 * committed. Nothing is re-added after a removal any more (the old unblock
 * undo did, and dereferenced a failed bl_add). */
static void test_change_out_of_memory(void **state)
{
	(void)state;
#ifdef __SANITIZE_ADDRESS__
	skip(); /* ASan reserves terabytes of shadow: RLIMIT_AS cannot be used */
#endif
	enum { N = 1 << 17 }; /* under the control limit; cap == n exactly: one more entry needs a realloc */
	struct blocklist b = { 0 };
	for (uint32_t i = 0; i < N; i++) {
		struct cvz_prefix p = { .family = AF_INET, .len = 32,
					.addr = { 100, (uint8_t)(64 + (i >> 16)), (uint8_t)(i >> 8),
						  (uint8_t)i } };
		assert_int_equal(bl_add(&b, &p, ORIGIN_CONTROL, 0, NULL, NULL, 1), 1);
	}
	assert_int_equal(b.cap, b.n);
	struct cvz_prefix a = P("203.0.113.7"), gone = { .family = AF_INET, .len = 32,
							  .addr = { 100, 64, 0, 5 } };
	struct bl_change c;
	bl_change_init(&c, &b);
	assert_int_equal(bl_change_add(&c, &a, ORIGIN_OPERATOR, 0, "r", "i", 5), 1);
	assert_int_equal(bl_change_remove(&c, &gone, ORIGIN_CONTROL), 0);
	struct rlimit old, tight;
	assert_int_equal(getrlimit(RLIMIT_AS, &old), 0);
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long pages = 0;
	assert_non_null(f);
	assert_int_equal(fscanf(f, "%lu", &pages), 1);
	fclose(f);
	tight = old;
	tight.rlim_cur = pages * (rlim_t)sysconf(_SC_PAGESIZE) + (4u << 20);
	assert_int_equal(setrlimit(RLIMIT_AS, &tight), 0);
	int r = bl_change_reserve(&c, &b);
	assert_int_equal(setrlimit(RLIMIT_AS, &old), 0);
	assert_int_equal(r, -ENOMEM);
	assert_int_equal(b.n, N);
	assert_non_null(bl_find(&b, &gone, ORIGIN_CONTROL));
	assert_null(bl_find(&b, &a, ORIGIN_OPERATOR));
	assert_int_equal(bl_change_reserve(&c, &b), 0);
	bl_change_commit(&c, &b);
	assert_int_equal(b.n, N);
	assert_null(bl_find(&b, &gone, ORIGIN_CONTROL));
	assert_string_equal(bl_find(&b, &a, ORIGIN_OPERATOR)->reason, "r");
	bl_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_guard_refusals),
		cmocka_unit_test(test_add_refresh_remove),
		cmocka_unit_test(test_expire),
		cmocka_unit_test(test_origin_limit),
		cmocka_unit_test(test_lists_dynamic_and_diff),
		cmocka_unit_test(test_dynamic_minus_safe),
		cmocka_unit_test(test_never_blockable_carved),
		cmocka_unit_test(test_index_matches_model),
		cmocka_unit_test(test_ttl_limits),
		cmocka_unit_test(test_restore_limits),
		cmocka_unit_test(test_expiry_timer),
		cmocka_unit_test(test_change_matches_direct),
		cmocka_unit_test(test_change_reblock_dropped),
		cmocka_unit_test(test_change_out_of_memory),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
