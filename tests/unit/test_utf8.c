/* UTF-8 helpers: every cut lands on a character boundary, every byte that is
 * not well-formed UTF-8 is replaced, and what comes out is always accepted
 * by jansson. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "audit.h"
#include "utf8.h"

/* a, é (2 bytes), € (3), 😀 (4), repeated */
static const char mixed[] = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
			    "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";

static void test_char_len(void **state)
{
	(void)state;
	struct {
		const char *s;
		size_t n, want;
	} cases[] = {
		{ "a", 1, 1 },
		{ "\xc3\xa9", 2, 2 },
		{ "\xe2\x82\xac", 3, 3 },
		{ "\xf0\x9f\x98\x80", 4, 4 },
		{ "\xf4\x8f\xbf\xbf", 4, 4 },         /* U+10FFFF */
		{ "\xc3\xa9", 1, 0 },                 /* cut after the lead byte */
		{ "\xe2\x82\xac", 2, 0 },
		{ "\xf0\x9f\x98\x80", 3, 0 },
		{ "\x80", 1, 0 },                     /* stray continuation */
		{ "\xc0\x80", 2, 0 },                 /* overlong NUL */
		{ "\xc1\xbf", 2, 0 },
		{ "\xe0\x80\xaf", 3, 0 },             /* overlong '/' */
		{ "\xf0\x80\x80\xaf", 4, 0 },
		{ "\xed\xa0\x80", 3, 0 },             /* surrogate U+D800 */
		{ "\xf4\x90\x80\x80", 4, 0 },         /* U+110000 */
		{ "\xf5\x80\x80\x80", 4, 0 },
		{ "\xff", 1, 0 },
		{ "\xc3(", 2, 0 },
		{ "", 0, 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(utf8_char_len(cases[i].s, cases[i].n), cases[i].want);
		if (cases[i].n)
			assert_int_equal(utf8_valid(cases[i].s, cases[i].n), cases[i].want == cases[i].n);
	}
}

/* jansson is the judge: what it refuses, utf8_valid() refuses too. */
static bool jansson_takes(const char *s, size_t n)
{
	json_t *j = json_stringn(s, n);
	json_decref(j);
	return j != NULL;
}

static void test_prefix_every_cut(void **state)
{
	(void)state;
	size_t len = strlen(mixed);
	for (size_t max = 0; max <= len + 2; max++) {
		int n = utf8_prefix(mixed, max);
		assert_true(n >= 0 && (size_t)n <= max && (size_t)n <= len);
		assert_true(utf8_valid(mixed, (size_t)n));
		assert_true(jansson_takes(mixed, (size_t)n));
		/* at most one character (3 bytes of it) is given up */
		assert_true((size_t)n + 3 >= (max < len ? max : len));
	}
	/* the cut inside each kind of character */
	assert_int_equal(utf8_prefix("a\xc3\xa9", 2), 1);
	assert_int_equal(utf8_prefix("\xe2\x82\xac", 1), 0);
	assert_int_equal(utf8_prefix("\xe2\x82\xac", 2), 0);
	assert_int_equal(utf8_prefix("\xf0\x9f\x98\x80!", 3), 0);
	assert_int_equal(utf8_prefix("\xf0\x9f\x98\x80!", 4), 4);
}

static void test_snprintf_every_size(void **state)
{
	(void)state;
	size_t len = strlen(mixed);
	for (size_t size = 1; size <= len + 2; size++) {
		char buf[64];
		assert_int_equal(utf8_snprintf(buf, size, "%s", mixed), (int)len);
		size_t got = strlen(buf);
		assert_true(got < size);
		assert_memory_equal(buf, mixed, got);
		assert_true(utf8_valid(buf, got));
		assert_true(got + 4 >= (size - 1 < len ? size - 1 : len));
	}
	/* the request: "a" and 40 é, cut at 32 bytes by "%.32s" */
	char cmd[128] = "a", buf[40];
	for (int i = 0; i < 40; i++)
		strcat(cmd, "\xc3\xa9");
	utf8_snprintf(buf, 33, "%s", cmd);
	assert_int_equal(strlen(buf), 31);
	assert_true(jansson_takes(buf, strlen(buf)));
}

static void test_copy_replaces_invalid(void **state)
{
	(void)state;
	char out[64];
	assert_true(utf8_copy(out, sizeof(out), "ok \xc3\xa9", 5));
	assert_string_equal(out, "ok \xc3\xa9");
	assert_false(utf8_copy(out, sizeof(out), "a\xff" "b\xc3(\xed\xa0\x80", 8));
	assert_string_equal(out, "a\xef\xbf\xbd" "b\xef\xbf\xbd(\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	assert_true(utf8_valid(out, strlen(out)));
	/* a NUL inside the input is replaced, not a hidden end */
	assert_false(utf8_copy(out, sizeof(out), "a\0b", 3));
	assert_string_equal(out, "a\xef\xbf\xbd" "b");
	/* too small: cut before a character that does not fit */
	assert_false(utf8_copy(out, 4, "a\xc3\xa9\xc3\xa9", 5));
	assert_string_equal(out, "a\xc3\xa9");
	assert_false(utf8_copy(out, 3, "a\xc3\xa9", 3));
	assert_string_equal(out, "a");
	assert_false(utf8_copy(out, 1, "a", 1));
	assert_string_equal(out, "");
}

static void test_json_string(void **state)
{
	(void)state;
	json_t *j = utf8_json_string("bad \xff\xfe and cut \xe2\x82");
	assert_non_null(j);
	assert_string_equal(json_string_value(j),
			    "bad \xef\xbf\xbd\xef\xbf\xbd and cut \xef\xbf\xbd\xef\xbf\xbd");
	json_decref(j);
	j = utf8_json_string("fine \xc3\xa9");
	assert_string_equal(json_string_value(j), "fine \xc3\xa9");
	json_decref(j);
	j = utf8_json_string(NULL);
	assert_true(json_is_null(j));
}

/* audit_sanitize() cuts text from outside to a byte count: never inside a
 * character, and escapes what is not UTF-8. */
static void test_sanitize_cuts_whole_characters(void **state)
{
	(void)state;
	char in[512] = "";
	for (int i = 0; i < 30; i++)
		strcat(in, "\xce\xb1\xe3\x81\x82\xf0\x9f\x98\x80"); /* α あ 😀 */
	for (size_t max = 1; max < 80; max++) {
		char out[128];
		audit_sanitize(in, out, max);
		assert_true(strlen(out) < max);
		assert_true(utf8_valid(out, strlen(out)));
		assert_true(jansson_takes(out, strlen(out)));
	}
	char out[64];
	audit_sanitize("x\xff\xc3(\xed\xa0\x80y", out, sizeof(out));
	assert_string_equal(out, "x\\xff\\xc3(\\xed\\xa0\\x80y");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_char_len),
		cmocka_unit_test(test_prefix_every_cut),
		cmocka_unit_test(test_snprintf_every_size),
		cmocka_unit_test(test_copy_replaces_invalid),
		cmocka_unit_test(test_json_string),
		cmocka_unit_test(test_sanitize_cuts_whole_characters),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
