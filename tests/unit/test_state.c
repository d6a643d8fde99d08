/* State file: round trip with absolute expiry, corrupt files moved aside. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "state.h"

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/cvz-state-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_round_trip(void **state)
{
	(void)state;
	struct blocklist b = { 0 }, got = { 0 };
	struct cvz_prefix a, n6;
	assert_int_equal(cvz_prefix_parse("203.0.113.7", &a, NULL, NULL, 0), 0);
	assert_int_equal(cvz_prefix_parse("2001:db8:bad::/48", &n6, NULL, NULL, 0), 0);
	bl_add(&b, &a, ORIGIN_OPERATOR, 3600, "brute force \"ssh\"", "INC-1", 1000);
	bl_add(&b, &n6, ORIGIN_CONTROL, 0, NULL, NULL, 1000);
	struct state_extra x = { .lockdown = true, .confirm_deadline = 5000 }, gx;
	snprintf(x.cursor, sizeof(x.cursor), "c-42");
	assert_int_equal(state_save(dir, &b, &x), 0);
	char err[256], moved[512];
	assert_int_equal(state_load(dir, &got, &gx, err, sizeof(err), moved, sizeof(moved)), 0);
	assert_int_equal(got.n, 2);
	assert_int_equal(got.v[0].expires, 4600);
	assert_int_equal(got.v[0].created, 1000);
	assert_string_equal(got.v[0].reason, "brute force \"ssh\"");
	assert_string_equal(got.v[0].incident, "INC-1");
	assert_int_equal(got.v[1].origin, ORIGIN_CONTROL);
	assert_int_equal(got.v[1].expires, 0);
	assert_int_equal(got.v[1].prefix.len, 48);
	assert_true(gx.lockdown);
	assert_int_equal(gx.confirm_deadline, 5000);
	assert_string_equal(gx.cursor, "c-42");
	bl_free(&b);
	bl_free(&got);
}

/* Text from outside (reasons) with quotes, backslashes, control bytes,
 * UTF-8 and bytes that are not UTF-8 always loads back; seen ids keep
 * their order. */
static void test_escaping_and_seen_ids(void **state)
{
	(void)state;
	struct blocklist b = { 0 }, got = { 0 };
	struct cvz_prefix a;
	assert_int_equal(cvz_prefix_parse("198.51.100.1", &a, NULL, NULL, 0), 0);
	bl_add(&b, &a, ORIGIN_CONTROL, 0, "q\"b\\s\x01t\tu\xc3\xa9 bad\xff\xc3(", "I\x7f", 7);
	struct instr_seen *seen = instr_seen_new(10), *seen2 = instr_seen_new(10);
	assert_non_null(seen);
	assert_non_null(seen2);
	instr_seen_add(seen, "ins-2");
	instr_seen_add(seen, "ins-1");
	struct state_extra x = { .seen = seen }, gx = { .seen = seen2 };
	snprintf(x.cursor, sizeof(x.cursor), "c\"1");
	assert_int_equal(state_save(dir, &b, &x), 0);
	char err[256], moved[512];
	assert_int_equal(state_load(dir, &got, &gx, err, sizeof(err), moved, sizeof(moved)), 0);
	assert_int_equal(got.n, 1);
	assert_string_equal(got.v[0].reason, "q\"b\\s\x01t\tu\xc3\xa9 bad\xc3\xbf\xc3\x83(");
	assert_string_equal(got.v[0].incident, "I\x7f");
	assert_string_equal(gx.cursor, "c\"1");
	assert_ptr_equal(gx.seen, seen2);
	assert_int_equal(instr_seen_count(seen2), 2);
	assert_string_equal(instr_seen_at(seen2, 0), "ins-2");
	assert_string_equal(instr_seen_at(seen2, 1), "ins-1");
	instr_seen_free(seen);
	instr_seen_free(seen2);
	bl_free(&b);
	bl_free(&got);
}

static void test_missing_and_corrupt(void **state)
{
	(void)state;
	struct blocklist b = { 0 };
	struct state_extra x;
	char err[256], moved[512], path[128];
	assert_int_equal(state_load("/tmp/cvz-no-such-dir", &b, &x, err, sizeof(err), moved,
				    sizeof(moved)),
			 -ENOENT);
	const char *bad[] = {
		"{\"version\": 1, \"entries\": [",
		"{\"version\": 2, \"entries\": [], \"lockdown\": false, \"confirm_deadline\": 0, \"cursor\": \"\"}",
		"{\"version\": 1, \"entries\": [{\"addr\": \"10.1.2.3/8\", \"origin\": \"operator\", \"created\": 1, \"expires\": 0}], \"lockdown\": false, \"confirm_deadline\": 0, \"cursor\": \"\"}",
		"{\"version\": 1, \"entries\": [{\"addr\": \"10.0.0.1\", \"origin\": \"policy\", \"created\": 1, \"expires\": 0}], \"lockdown\": false, \"confirm_deadline\": 0, \"cursor\": \"\"}",
		"\x01\x02garbage",
	};
	snprintf(path, sizeof(path), "%s/state.json", dir);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		FILE *f = fopen(path, "w");
		assert_non_null(f);
		fputs(bad[i], f);
		fclose(f);
		assert_int_equal(state_load(dir, &b, &x, err, sizeof(err), moved, sizeof(moved)),
				 -EBADMSG);
		assert_int_equal(b.n, 0);
		assert_int_equal(access(path, F_OK), -1); /* moved aside */
		assert_int_equal(access(moved, F_OK), 0);
		unlink(moved);
	}
}

/* The state as a staged change will make it: saved before the change is
 * applied, it loads back as the committed blocklist, with the change's ids
 * after the seen ones; the live blocklist is untouched by the save. */
static void test_save_next(void **state)
{
	(void)state;
	struct blocklist b = { 0 }, got = { 0 };
	struct cvz_prefix keep, refresh, drop, add;
	assert_int_equal(cvz_prefix_parse("203.0.113.1", &keep, NULL, NULL, 0), 0);
	assert_int_equal(cvz_prefix_parse("203.0.113.2", &refresh, NULL, NULL, 0), 0);
	assert_int_equal(cvz_prefix_parse("203.0.113.3", &drop, NULL, NULL, 0), 0);
	assert_int_equal(cvz_prefix_parse("2001:db8::/64", &add, NULL, NULL, 0), 0);
	bl_add(&b, &keep, ORIGIN_OPERATOR, 0, "keep", NULL, 1000);
	bl_add(&b, &refresh, ORIGIN_CONTROL, 60, "old", "INC-1", 1000);
	bl_add(&b, &drop, ORIGIN_CONTROL, 0, NULL, NULL, 1000);
	struct bl_change c;
	bl_change_init(&c, &b);
	assert_int_equal(bl_change_add(&c, &refresh, ORIGIN_CONTROL, 600, "new", NULL, 2000), 0);
	assert_int_equal(bl_change_remove(&c, &drop, ORIGIN_CONTROL), 0);
	assert_int_equal(bl_change_add(&c, &add, ORIGIN_CONTROL, 0, "added", NULL, 2000), 1);
	struct instr_seen *seen = instr_seen_new(10), *seen2 = instr_seen_new(10);
	assert_non_null(seen);
	assert_non_null(seen2);
	instr_seen_add(seen, "ins-1");
	const char *ids[] = { "ins-2", "ins-3" };
	struct state_extra x = { .seen = seen }, gx = { .seen = seen2 };
	snprintf(x.cursor, sizeof(x.cursor), "c-2");
	assert_int_equal(state_save_next(dir, &c, &x, ids, 2), 0);
	assert_int_equal(b.n, 3); /* the live blocklist as it was */
	assert_string_equal(bl_find(&b, &refresh, ORIGIN_CONTROL)->reason, "old");
	assert_int_equal(instr_seen_count(seen), 1);
	char err[256], moved[512];
	assert_int_equal(state_load(dir, &got, &gx, err, sizeof(err), moved, sizeof(moved)), 0);
	assert_int_equal(bl_change_reserve(&c, &b), 0);
	bl_change_commit(&c, &b);
	assert_int_equal(got.n, b.n);
	assert_int_equal(got.n, 3);
	for (size_t i = 0; i < b.n; i++) {
		const struct bl_entry *e = &b.v[i];
		struct bl_entry *g = bl_find(&got, &e->prefix, (enum bl_origin)e->origin);
		assert_non_null(g);
		assert_int_equal(g->created, e->created);
		assert_int_equal(g->expires, e->expires);
		assert_true((!g->reason && !e->reason) || strcmp(g->reason, e->reason) == 0);
		assert_true((!g->incident && !e->incident) || strcmp(g->incident, e->incident) == 0);
	}
	assert_null(bl_find(&got, &drop, ORIGIN_CONTROL));
	assert_int_equal(bl_find(&got, &refresh, ORIGIN_CONTROL)->expires, 2600);
	assert_string_equal(bl_find(&got, &refresh, ORIGIN_CONTROL)->incident, "INC-1");
	assert_string_equal(gx.cursor, "c-2");
	assert_int_equal(instr_seen_count(seen2), 3);
	assert_string_equal(instr_seen_at(seen2, 0), "ins-1");
	assert_string_equal(instr_seen_at(seen2, 2), "ins-3");
	instr_seen_free(seen);
	instr_seen_free(seen2);
	bl_free(&b);
	bl_free(&got);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_escaping_and_seen_ids),
		cmocka_unit_test(test_missing_and_corrupt),
		cmocka_unit_test(test_save_next),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
