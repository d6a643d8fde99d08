/* Runtime blocklist entries: refusals, TTL refresh, expiry, the desired set
 * and the kernel delta. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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
 * unblock what another still covers. */
static void test_desired_and_diff(void **state)
{
	(void)state;
	struct blocklist b = { 0 };
	struct cvz_prefix net = P("198.51.100.0/24"), host = P("198.51.100.7"), v6 = P("2001:db8::/32");
	struct cvz_prefix pol[] = { P("10.0.0.0/8") }, safe[] = { P("10.1.2.3") };
	bl_add(&b, &net, ORIGIN_CONTROL, 10, NULL, NULL, 0);
	bl_add(&b, &host, ORIGIN_OPERATOR, 100, NULL, NULL, 0);
	bl_add(&b, &v6, ORIGIN_OPERATOR, 0, NULL, NULL, 0);
	struct cvz_rangeset before, after, del, add;
	assert_int_equal(blocklist_desired(&b, pol, 1, safe, 1, &before), 0);
	assert_int_equal(before.n4, 3); /* 10/8 carved in two, and the /24 */
	assert_int_equal(before.v4[2].lo, 0xc6336400);
	assert_int_equal(before.v4[2].hi, 0xc63364ff);
	assert_int_equal(before.n6, 1);
	bl_expire(&b, 10, NULL, NULL); /* the /24 goes, the host stays */
	assert_int_equal(blocklist_desired(&b, pol, 1, safe, 1, &after), 0);
	assert_int_equal(after.n4, 3);
	assert_int_equal(after.v4[2].lo, 0xc6336407);
	assert_int_equal(after.v4[2].hi, 0xc6336407);
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
	bl_free(&b);
}

/* List entries covering loopback, multicast or unspecified are carved, not
 * refused: real lists (FireHOL level1) contain 0.0.0.0/8 and 224.0.0.0/3. */
static void test_never_blockable_carved(void **state)
{
	(void)state;
	struct blocklist b = { 0 };
	struct cvz_prefix pol[] = { P("120.0.0.0/5"), P("0.0.0.0/8"), P("224.0.0.0/3"), P("::/127") };
	struct cvz_rangeset out;
	assert_int_equal(blocklist_desired(&b, pol, 4, NULL, 0, &out), 0);
	assert_int_equal(out.n4, 3);
	assert_int_equal(out.v4[0].lo, 0x00000001); /* 0.0.0.1-0.255.255.255 */
	assert_int_equal(out.v4[0].hi, 0x00ffffff);
	assert_int_equal(out.v4[1].lo, 0x78000000); /* 120.0.0.0-126.255.255.255 */
	assert_int_equal(out.v4[1].hi, 0x7effffff);
	assert_int_equal(out.v4[2].lo, 0xf0000000); /* 240.0.0.0/4, multicast gone */
	assert_int_equal(out.v4[2].hi, 0xffffffff);
	assert_int_equal(out.n6, 0); /* :: and ::1 were all there was */
	cvz_rangeset_free(&out);
}

/* Windowed updates must always equal a full recomputation: random policy
 * entries, safelist and runtime blocks/unblocks in a small IPv4 and IPv6
 * space, checked after every step. */
static struct cvz_prefix rand_prefix(unsigned *seed, bool v6)
{
	struct cvz_prefix p;
	memset(&p, 0, sizeof(p));
	unsigned len = 20 + (unsigned)rand_r(seed) % 13; /* /20 - /32 inside 10.0.0.0/20 */
	uint32_t a = 0x0a000000u | ((uint32_t)rand_r(seed) & 0xfffu);
	a &= len == 32 ? 0xffffffffu : ~(0xffffffffu >> len);
	if (v6) {
		p.family = AF_INET6;
		p.len = (uint8_t)(len + 96);
		p.addr[0] = 0x20;
		p.addr[1] = 0x01;
		p.addr[12] = (uint8_t)(a >> 24);
		p.addr[13] = (uint8_t)(a >> 16);
		p.addr[14] = (uint8_t)(a >> 8);
		p.addr[15] = (uint8_t)a;
	} else {
		p.family = AF_INET;
		p.len = (uint8_t)len;
		p.addr[0] = (uint8_t)(a >> 24);
		p.addr[1] = (uint8_t)(a >> 16);
		p.addr[2] = (uint8_t)(a >> 8);
		p.addr[3] = (uint8_t)a;
	}
	return p;
}

static void assert_same(const struct cvz_rangeset *a, const struct cvz_rangeset *b)
{
	assert_int_equal(a->n4, b->n4);
	assert_int_equal(a->n6, b->n6);
	for (size_t i = 0; i < a->n4; i++) {
		assert_int_equal(a->v4[i].lo, b->v4[i].lo);
		assert_int_equal(a->v4[i].hi, b->v4[i].hi);
	}
	for (size_t i = 0; i < a->n6; i++)
		assert_true(a->v6[i].lo == b->v6[i].lo && a->v6[i].hi == b->v6[i].hi);
}

static void test_window_matches_full(void **state)
{
	(void)state;
	unsigned seed = 42;
	for (int round = 0; round < 40; round++) {
		struct cvz_prefix pol[60], safe[4];
		for (size_t i = 0; i < 60; i++)
			pol[i] = rand_prefix(&seed, i % 3 == 0);
		for (size_t i = 0; i < 4; i++)
			safe[i] = rand_prefix(&seed, i % 2 == 0);
		struct bl_view v;
		struct blocklist b = { 0 };
		struct cvz_rangeset kernel, want, del, add;
		assert_int_equal(bl_view_init(&v, pol, 60, safe, 4), 0);
		assert_int_equal(bl_view_desired(&v, &b, &kernel), 0);
		for (int step = 0; step < 80; step++) {
			struct cvz_prefix x = rand_prefix(&seed, rand_r(&seed) % 3 == 0);
			if (b.n && rand_r(&seed) % 3 == 0)
				x = b.v[(size_t)rand_r(&seed) % b.n].prefix, bl_remove(&b, &x, ORIGIN_OPERATOR);
			else
				bl_add(&b, &x, ORIGIN_OPERATOR, 0, NULL, NULL, 0);
			assert_int_equal(bl_view_window(&v, &b, &kernel, &x, &del, &add), 0);
			assert_int_equal(rangeset_apply_delta(&kernel, &del, &add), 0);
			cvz_rangeset_free(&del);
			cvz_rangeset_free(&add);
			assert_int_equal(bl_view_desired(&v, &b, &want), 0);
			assert_same(&kernel, &want);
			cvz_rangeset_free(&want);
		}
		cvz_rangeset_free(&kernel);
		bl_view_free(&v);
		bl_free(&b);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_add_refresh_remove),
		cmocka_unit_test(test_expire),
		cmocka_unit_test(test_desired_and_diff),
		cmocka_unit_test(test_never_blockable_carved),
		cmocka_unit_test(test_window_matches_full),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
