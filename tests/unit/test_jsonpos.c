/* The position index: every key and value is found where it sits (lines,
 * columns in characters), the first of duplicate paths wins, keys with dots
 * or empty keys resolve exactly as the path strings jparse builds, and text
 * that is not JSON does no harm. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "jsonpos.h"

static const char doc[] = "{\n  \"a\": [1, {\"b\": \"\xc3\xa9\", \"c.d\": 2}],\n"
			  "  \"x\": {\"\": {\"y\": 3}}, \"a\": 9\n}";

struct want {
	const char *path;
	bool key;
	int line, col; /* 0: not found */
};

static const struct want wants[] = {
	{ "", false, 1, 1 },
	{ "a", false, 2, 8 }, /* the first "a"; the duplicate at 3:29 loses */
	{ "a", true, 2, 3 },
	{ "a[0]", false, 2, 9 },
	{ "a[1]", false, 2, 12 },
	{ "a[1].b", true, 2, 13 },
	{ "a[1].b", false, 2, 18 },
	{ "a[1].c.d", false, 2, 30 }, /* a key with a dot */
	{ "a[1].c.d", true, 2, 23 },
	{ "x", false, 3, 8 },
	{ "x.", false, 3, 13 },  /* the empty key under x */
	{ "x.", true, 3, 9 },
	{ "x..y", false, 3, 19 },
	{ "x..y", true, 3, 14 },
	{ "a[0]", true, 0, 0 },  /* an element has no key */
	{ "a[2]", false, 0, 0 },
	{ "a[1].c", false, 0, 0 },
	{ "b", false, 0, 0 },
	{ "x.y", false, 0, 0 },
	{ "a[1]b", false, 0, 0 },
	{ "[0]", false, 0, 0 },
};

static void test_positions(void **state)
{
	(void)state;
	struct jsonpos *ix = jsonpos_index(doc, strlen(doc));
	assert_non_null(ix);
	for (size_t i = 0; i < sizeof(wants) / sizeof(wants[0]); i++) {
		int line = -1, col = -1;
		bool found = jsonpos_lookup(ix, wants[i].path, wants[i].key, &line, &col);
		if (wants[i].line == 0) {
			assert_false(found);
			assert_int_equal(line, -1); /* untouched */
			continue;
		}
		if (!found || line != wants[i].line || col != wants[i].col)
			fail_msg("%s%s: got %d:%d, want %d:%d", wants[i].path,
				 wants[i].key ? " (key)" : "", found ? line : 0, found ? col : 0,
				 wants[i].line, wants[i].col);
	}
	jsonpos_free(ix);
}

/* A top-level empty key has the path "", and its members none of a dot. */
static void test_empty_keys_at_top(void **state)
{
	(void)state;
	const char *t = "{\"\": {\"y\": [true]}}";
	int line = 0, col = 0;
	assert_true(jsonpos_find(t, strlen(t), "", false, &line, &col));
	assert_int_equal(col, 1); /* the top level comes first */
	assert_true(jsonpos_find(t, strlen(t), "y[0]", false, &line, &col));
	assert_int_equal(col, 13);
	const char *arr = "[[0, 1], 2]";
	assert_true(jsonpos_find(arr, strlen(arr), "[0][1]", false, &line, &col));
	assert_int_equal(col, 6);
	assert_true(jsonpos_find(arr, strlen(arr), "[1]", false, &line, &col));
	assert_int_equal(col, 10);
}

/* Cut, unbalanced or binary text: lookups answer or fail, never crash. */
static void test_not_json(void **state)
{
	(void)state;
	const char *bad[] = { "", "{", "{\"a\"", "{\"a\": [1, 2", "]]]", "{\"a\" 1 \"b\": 2}",
			      "\"\\", "{\"a\":{\"b\":{\"c\":", "[,,,]", "{1: 2}" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct jsonpos *ix = jsonpos_index(bad[i], strlen(bad[i]));
		assert_non_null(ix);
		int line, col;
		(void)jsonpos_lookup(ix, "a", false, &line, &col);
		(void)jsonpos_lookup(ix, "a[1]", true, &line, &col);
		jsonpos_free(ix);
	}
	char deep[4000];
	memset(deep, '[', sizeof(deep) - 1);
	deep[sizeof(deep) - 1] = '\0';
	struct jsonpos *ix = jsonpos_index(deep, strlen(deep));
	assert_non_null(ix);
	int line, col;
	assert_true(jsonpos_lookup(ix, "[0][0]", false, &line, &col));
	assert_int_equal(col, 3);
	jsonpos_free(ix);
}

/* Every element of a long list is found where it is: the index holds them
 * all (the old scanner re-read the text per lookup; here one scan serves
 * 20,000 lookups). */
static void test_many_values(void **state)
{
	(void)state;
	enum { N = 20000 };
	char *t = malloc(N * 8 + 16);
	assert_non_null(t);
	size_t off = 0;
	t[off++] = '[';
	for (int i = 0; i < N; i++)
		off += (size_t)sprintf(t + off, "%s\n%d", i ? "," : "", i);
	t[off++] = ']';
	struct jsonpos *ix = jsonpos_index(t, off);
	assert_non_null(ix);
	for (int i = 0; i < N; i++) {
		char path[32];
		snprintf(path, sizeof(path), "[%d]", i);
		int line = 0, col = 0;
		assert_true(jsonpos_lookup(ix, path, false, &line, &col));
		assert_int_equal(line, i + 2);
		assert_int_equal(col, 1);
	}
	jsonpos_free(ix);
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_positions),
		cmocka_unit_test(test_empty_keys_at_top),
		cmocka_unit_test(test_not_json),
		cmocka_unit_test(test_many_values),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
