/* Runtime blocklist entries: refusals, TTL refresh, expiry, the sets the
 * kernel must hold (lists and dynamic) and the kernel delta. */
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_guard_refusals),
		cmocka_unit_test(test_add_refresh_remove),
		cmocka_unit_test(test_expire),
		cmocka_unit_test(test_lists_dynamic_and_diff),
		cmocka_unit_test(test_dynamic_minus_safe),
		cmocka_unit_test(test_never_blockable_carved),
		cmocka_unit_test(test_index_matches_model),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
