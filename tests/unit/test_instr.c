/* Control API replies: every whole-reply refusal with its exact message,
 * every target rule, valid full and delta replies, the seen-id set, and the
 * time a 100k-target snapshot takes (printed, not asserted). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <cmocka.h>

#include "instr.h"

static struct cvz_prefix P(const char *s)
{
	struct cvz_prefix p;
	assert_int_equal(cvz_prefix_parse(s, &p, NULL, NULL, 0), 0);
	return p;
}

static struct cvz_prefix safelist[2];
static struct bl_guard guards[3];
static struct instr_limits lim;

static int setup(void **state)
{
	(void)state;
	safelist[0] = P("10.1.2.3");
	safelist[1] = P("2001:db8:1::/48");
	guards[0] = (struct bl_guard){ P("192.0.2.10"), "control API's own address" };
	guards[1] = (struct bl_guard){ P("2001:db8:ffff::10"), "control API's own address" };
	guards[2] = (struct bl_guard){ P("198.18.0.0/16"), "lockdown.allow_from range" };
	lim = (struct instr_limits){ .min_prefix_v4 = 8, .min_prefix_v6 = 32,
				     .safelist = safelist, .n_safelist = 2,
				     .guards = guards, .n_guards = 3 };
	return 0;
}

/* A string of n copies of unit (cycled), for length limits. */
static char *repeat(const char *unit, size_t n)
{
	char *s = malloc(n + 1);
	assert_non_null(s);
	for (size_t i = 0; i < n; i++)
		s[i] = unit[i % strlen(unit)];
	s[n] = '\0';
	return s;
}

/* Asserts that text is refused whole with exactly want, and that neither
 * *out nor anything else leaked out. */
static void refused(const char *text, const char *want)
{
	struct instr_batch b, untouched;
	memset(&b, 0x5a, sizeof(b));
	untouched = b;
	char err[512] = "";
	int r = instr_parse(text, strlen(text), &lim, &b, err, sizeof(err));
	if (r != -EBADMSG || strcmp(err, want) != 0)
		print_error("input: %s\nwant: %s\ngot:  %s (%d)\n", text, want, err, r);
	assert_int_equal(r, -EBADMSG);
	assert_string_equal(err, want);
	assert_memory_equal(&b, &untouched, sizeof(b));
}

/* One instruction wrapped in a valid reply. */
static void refused_instr(const char *instr, const char *want)
{
	char text[1024];
	snprintf(text, sizeof(text), "{\"cursor\":\"c1\",\"full\":false,\"instructions\":[%s]}",
		 instr);
	refused(text, want);
}

static void test_refused_json(void **state)
{
	(void)state;
	refused("", "invalid JSON at line 1, column 0: '[' or '{' expected near end of file");
	refused("hello", "invalid JSON at line 1, column 5: '[' or '{' expected near 'hello'");
	refused("{\"cursor\":\"c1\",\"full\":true,\"instructions\":[",
		"invalid JSON at line 1, column 43: ']' expected near end of file");
	refused("{\"cursor\":\"c1\",\"full\":true,\"instructions\":[{\"id\":\"a",
		"invalid JSON at line 1, column 51: premature end of input near '\"a'");
	refused("{\"cursor\":\"c1\",\"full\":true,\"instructions\":[]} x",
		"invalid JSON at line 1, column 47: end of file expected near 'x'");
	refused("{\"cursor\":\"a\",\"cursor\":\"b\",\"full\":true,\"instructions\":[]}",
		"invalid JSON at line 1, column 22: duplicate object key near '\"cursor\"'");
	/* inside an instruction too */
	refused_instr("{\"id\":\"a\",\"action\":\"block\",\"id\":\"b\"}",
		      "invalid JSON at line 1, column 75: duplicate object key near '\"id\"'");
	refused("{\"cursor\":\"x\\u0000y\",\"full\":true,\"instructions\":[]}",
		"invalid JSON at line 1, column 20: \\u0000 is not allowed without JSON_ALLOW_NUL "
		"near '\"x\\u0000y\"'");
	/* jansson quotes what it choked on: it is sanitized */
	refused("[\"password=hunter2 \\q\"]",
		"invalid JSON at line 1, column 21: invalid escape near "
		"'\"password=***REDACTED*** \\q'");
	refused("[\"ab\001\"]",
		"invalid JSON at line 1, column 4: control character 0x1 near '\"ab'");
	refused("42", "invalid JSON at line 1, column 2: '[' or '{' expected near '42'");
	refused("[{\"cursor\":\"c1\",\"full\":true,\"instructions\":[]}]",
		"top level: expected an object, got array");
}

static void test_refused_top(void **state)
{
	(void)state;
	refused("{\"full\":true,\"instructions\":[]}", "cursor: missing required key");
	refused("{\"cursor\":42,\"full\":true,\"instructions\":[]}",
		"cursor: expected a string, got number");
	refused("{\"cursor\":null,\"full\":true,\"instructions\":[]}",
		"cursor: expected a string, got null");
	refused("{\"cursor\":\"\",\"full\":true,\"instructions\":[]}", "cursor: empty string");
	refused("{\"cursor\":\"a b\",\"full\":true,\"instructions\":[]}",
		"cursor: \"a b\" has byte 0x20 at offset 1 (only 0x21-0x7e allowed)");
	refused("{\"cursor\":\"a\\nb\",\"full\":true,\"instructions\":[]}",
		"cursor: \"a\\x0ab\" has byte 0x0a at offset 1 (only 0x21-0x7e allowed)");
	refused("{\"cursor\":\"caf\xc3\xa9\",\"full\":true,\"instructions\":[]}",
		"cursor: \"caf\xc3\xa9\" has byte 0xc3 at offset 3 (only 0x21-0x7e allowed)");
	refused("{\"cursor\":\"a\\u007fb\",\"full\":true,\"instructions\":[]}",
		"cursor: \"a\\x7fb\" has byte 0x7f at offset 1 (only 0x21-0x7e allowed)");

	/* 255 bytes is the longest cursor; 256 is refused, the quote is capped */
	char text[1024];
	char *c255 = repeat("ab-", 255), *c256 = repeat("ab-", 256);
	snprintf(text, sizeof(text), "{\"cursor\":\"%s\",\"full\":true,\"instructions\":[]}", c255);
	struct instr_batch b;
	char err[256];
	assert_int_equal(instr_parse(text, strlen(text), &lim, &b, err, sizeof(err)), 0);
	assert_string_equal(b.cursor, c255);
	instr_batch_free(&b);
	snprintf(text, sizeof(text), "{\"cursor\":\"%s\",\"full\":true,\"instructions\":[]}", c256);
	refused(text, "cursor: \"ab-ab-ab-ab-ab-ab-ab-ab-ab-ab-ab-ab-ab-ab-ab-ab-ab-ab-ab-...\" "
		      "is longer than 255 bytes");
	free(c255);
	free(c256);

	refused("{\"cursor\":\"c1\",\"instructions\":[]}", "full: missing required key");
	refused("{\"cursor\":\"c1\",\"full\":\"yes\",\"instructions\":[]}",
		"full: expected a boolean, got string");
	refused("{\"cursor\":\"c1\",\"full\":1,\"instructions\":[]}",
		"full: expected a boolean, got number");
	refused("{\"cursor\":\"c1\",\"full\":true}", "instructions: missing required key");
	refused("{\"cursor\":\"c1\",\"full\":true,\"instructions\":{}}",
		"instructions: expected an array, got object");
	refused("{\"cursor\":\"c1\",\"full\":true,\"instructions\":null}",
		"instructions: expected an array, got null");
}

static void test_refused_instruction(void **state)
{
	(void)state;
	refused_instr("1", "instructions[0]: expected an object, got number");
	refused_instr("{\"id\":\"a\",\"action\":\"lockdown\",\"enabled\":true}, \"x\"",
		      "instructions[1]: expected an object, got string");
	refused_instr("{\"action\":\"block\",\"targets\":[\"203.0.113.7\"]}",
		      "instructions[0].id: missing required key");
	refused_instr("{\"id\":7,\"action\":\"block\",\"targets\":[\"203.0.113.7\"]}",
		      "instructions[0].id: expected a string, got number");
	refused_instr("{\"id\":\"\",\"action\":\"block\",\"targets\":[\"203.0.113.7\"]}",
		      "instructions[0].id: empty string");
	refused_instr("{\"id\":\"ins 42\",\"action\":\"block\",\"targets\":[\"203.0.113.7\"]}",
		      "instructions[0].id: \"ins 42\" has byte 0x20 at offset 3 "
		      "(only 0x21-0x7e allowed)");
	char instr[512];
	char *id127 = repeat("ins-", 127), *id128 = repeat("ins-", 128);
	snprintf(instr, sizeof(instr),
		 "{\"id\":\"%s\",\"action\":\"unblock\",\"targets\":[\"1.2.3.4\"]}", id128);
	refused_instr(instr,
		      "instructions[0].id: \"ins-ins-ins-ins-ins-ins-ins-ins-ins-ins-ins-ins-"
		      "ins-ins-i...\" is longer than 127 bytes");
	char text[1024];
	snprintf(text, sizeof(text),
		 "{\"cursor\":\"c\",\"full\":false,\"instructions\":[{\"id\":\"%s\","
		 "\"action\":\"unblock\",\"targets\":[\"1.2.3.4\"]}]}",
		 id127);
	struct instr_batch b;
	char err[256];
	assert_int_equal(instr_parse(text, strlen(text), &lim, &b, err, sizeof(err)), 0);
	assert_string_equal(b.v[0].id, id127);
	instr_batch_free(&b);
	free(id127);
	free(id128);

	refused_instr("{\"id\":\"a\",\"targets\":[\"203.0.113.7\"]}",
		      "instructions[0].action: missing required key");
	refused_instr("{\"id\":\"a\",\"action\":true}",
		      "instructions[0].action: expected a string, got boolean");
	refused_instr("{\"id\":\"a\",\"action\":\"Block\",\"targets\":[\"203.0.113.7\"]}",
		      "instructions[0].action: unknown action \"Block\"");
	refused_instr("{\"id\":\"a\",\"action\":\"lockdown\",\"enabled\":true},"
		      "{\"id\":\"b\",\"action\":\"lockdown\",\"enabled\":false},"
		      "{\"id\":\"c\",\"action\":\"lockdown\",\"enabled\":true},"
		      "{\"id\":\"d\",\"action\":\"explode\"}",
		      "instructions[3].action: unknown action \"explode\"");
	/* an action from the network is sanitized and capped before it is quoted */
	refused_instr("{\"id\":\"a\",\"action\":\"token=s3cr3t\\n\"}",
		      "instructions[0].action: unknown action \"token=***REDACTED***\\x0a\"");
	refused_instr(
		"{\"id\":\"a\",\"action\":\"x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-"
		"x-x-x-x-x-x-x-x-x-x-x-x-x-x-x\"}",
		"instructions[0].action: unknown action "
		"\"x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x...\"");
}

static void test_refused_fields(void **state)
{
	(void)state;
	const char *blk = "{\"id\":\"a\",\"action\":\"block\",\"targets\":[\"203.0.113.7\"],";
	struct {
		const char *tail;
		const char *err;
	} cases[] = {
		{ "\"ttl\":-1}", "instructions[0].ttl: expected a non-negative integer, got -1" },
		{ "\"ttl\":1.5}", "instructions[0].ttl: expected a non-negative integer, got 1.5" },
		{ "\"ttl\":3600.0}",
		  "instructions[0].ttl: expected a non-negative integer, got 3600.0" },
		{ "\"ttl\":1e3}",
		  "instructions[0].ttl: expected a non-negative integer, got 1000.0" },
		{ "\"ttl\":\"3600\"}",
		  "instructions[0].ttl: expected a non-negative integer, got string" },
		{ "\"ttl\":null}",
		  "instructions[0].ttl: expected a non-negative integer, got null" },
		{ "\"ttl\":315360001}",
		  "instructions[0].ttl: 315360001 is more than 10 years (315360000)" },
		{ "\"ttl\":9223372036854775807}",
		  "instructions[0].ttl: 9223372036854775807 is more than 10 years (315360000)" },
		{ "\"reason\":5}", "instructions[0].reason: expected a string, got number" },
		{ "\"reason\":null}", "instructions[0].reason: expected a string, got null" },
		{ "\"incident_id\":[]}",
		  "instructions[0].incident_id: expected a string, got array" },
		{ "\"severity\":{}}", "instructions[0].severity: expected a string, got object" },
		{ "\"enabled\":\"no\"}",
		  "instructions[0].enabled: expected a boolean, got string" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char instr[256];
		snprintf(instr, sizeof(instr), "%s%s", blk, cases[i].tail);
		refused_instr(instr, cases[i].err);
	}

	refused_instr("{\"id\":\"a\",\"action\":\"block\"}",
		      "instructions[0].targets: missing (required for block)");
	refused_instr("{\"id\":\"a\",\"action\":\"unblock\",\"ttl\":5}",
		      "instructions[0].targets: missing (required for unblock)");
	refused_instr("{\"id\":\"a\",\"action\":\"block\",\"targets\":[]}",
		      "instructions[0].targets: empty array (block needs at least one target)");
	refused_instr("{\"id\":\"a\",\"action\":\"unblock\",\"targets\":[]}",
		      "instructions[0].targets: empty array (unblock needs at least one target)");
	refused_instr("{\"id\":\"a\",\"action\":\"block\",\"targets\":\"203.0.113.7\"}",
		      "instructions[0].targets: expected an array of strings, got string");
	refused_instr(
		"{\"id\":\"a\",\"action\":\"block\",\"targets\":[\"203.0.113.7\",3405803783]}",
		"instructions[0].targets[1]: expected a string, got number");
	refused_instr("{\"id\":\"a\",\"action\":\"block\",\"targets\":[null]}",
		      "instructions[0].targets[0]: expected a string, got null");
	/* on a lockdown, targets mean nothing but their type is still checked */
	refused_instr("{\"id\":\"a\",\"action\":\"lockdown\",\"enabled\":true,\"targets\":[1]}",
		      "instructions[0].targets[0]: expected a string, got number");
	refused_instr("{\"id\":\"a\",\"action\":\"lockdown\"}",
		      "instructions[0].enabled: missing (required for lockdown)");
	refused_instr("{\"id\":\"a\",\"action\":\"lockdown\",\"enabled\":1}",
		      "instructions[0].enabled: expected a boolean, got number");
	/* a later bad instruction refuses earlier good ones too (and frees them) */
	refused_instr(
		"{\"id\":\"a\",\"action\":\"block\",\"targets\":[\"203.0.113.7\",\"foo\"],"
		"\"reason\":\"r\",\"incident_id\":\"i\",\"severity\":\"s\"},"
		"{\"id\":\"b\",\"action\":\"block\",\"targets\":[\"198.51.100.1\"],\"reason\":1}",
		"instructions[1].reason: expected a string, got number");
}

static void test_err_small_buffer(void **state)
{
	(void)state;
	const char *text = "{\"cursor\":42}";
	struct instr_batch b;
	char err[8];
	assert_int_equal(instr_parse(text, strlen(text), &lim, &b, err, sizeof(err)), -EBADMSG);
	assert_string_equal(err, "cursor:");
	assert_int_equal(instr_parse(text, strlen(text), &lim, &b, NULL, 0), -EBADMSG);
	/* the body is not NUL-terminated: len decides */
	const char *two = "{\"cursor\":\"c\",\"full\":true,\"instructions\":[]}garbage";
	assert_int_equal(instr_parse(two, strlen(two) - 7, &lim, &b, err, sizeof(err)), 0);
	instr_batch_free(&b);
}

/* ---- targets ---------------------------------------------------------- */

static void test_target_rules(void **state)
{
	(void)state;
	char *long_target = repeat("a:", 256);
	struct {
		const char *s;
		const char *why;
	} bad[] = {
		{ "foo", "\"foo\": not an IPv4 or IPv6 address" },
		{ "203.0.113.7 ", "\"203.0.113.7 \": not an IPv4 or IPv6 address" },
		{ "1.2.3.4/33", "\"1.2.3.4/33\": prefix length 33 out of range 0-32" },
		{ "10.1.2.3/8", "\"10.1.2.3/8\": host bits set (did you mean 10.0.0.0/8?)" },
		{ "2001:db8::1/64",
		  "\"2001:db8::1/64\": host bits set (did you mean 2001:db8::/64?)" },
		{ "0.0.0.0/0", "0.0.0.0/0: blocking every address (/0) is not allowed" },
		{ "::/0", "::/0: blocking every address (/0) is not allowed" },
		{ "198.0.0.0/7", "198.0.0.0/7 is shorter than min_prefix_v4 8" },
		{ "2001:db0::/31", "2001:db0::/31 is shorter than min_prefix_v6 32" },
		{ "127.0.0.1", "127.0.0.1 covers loopback, which is never blockable" },
		{ "::1", "::1 covers loopback, which is never blockable" },
		{ "::ffff:127.0.0.1", "127.0.0.1 covers loopback, which is never blockable" },
		{ "0.0.0.0", "0.0.0.0 covers the unspecified address, which is never blockable" },
		{ "::", ":: covers the unspecified address, which is never blockable" },
		{ "224.0.0.1", "224.0.0.1 covers multicast, which is never blockable" },
		{ "ff02::1", "ff02::1 covers multicast, which is never blockable" },
		{ "169.254.169.254", "169.254.169.254 covers link-local 169.254.0.0/16, which the "
				     "control API may not block" },
		{ "169.254.0.0/16", "169.254.0.0/16 covers link-local 169.254.0.0/16, which the "
				    "control API may not block" },
		{ "fe80::1",
		  "fe80::1 covers link-local fe80::/10, which the control API may not block" },
		{ "fe80::/9",
		  "fe80::/9 covers link-local fe80::/10, which the control API may not block" },
		{ "10.1.2.3", "10.1.2.3 is inside the safelisted 10.1.2.3" },
		{ "10.0.0.0/8", "10.0.0.0/8 covers the safelisted 10.1.2.3" },
		{ "2001:db8:1:2::/64",
		  "2001:db8:1:2::/64 is inside the safelisted 2001:db8:1::/48" },
		{ "2001:db8::/32", "2001:db8::/32 covers the safelisted 2001:db8:1::/48" },
		{ "192.0.2.10", "192.0.2.10 covers the control API's own address 192.0.2.10" },
		{ "198.18.1.2", "198.18.1.2 is inside the lockdown.allow_from range 198.18.0.0/16" },
		{ "198.0.0.0/8", "198.0.0.0/8 covers the lockdown.allow_from range 198.18.0.0/16" },
		{ "192.0.2.0/24", "192.0.2.0/24 covers the control API's own address 192.0.2.10" },
		{ "2001:db8:ffff::/48",
		  "2001:db8:ffff::/48 covers the control API's own address 2001:db8:ffff::10" },
		{ long_target, "\"a:a:a:a:a:a:a:a:a:a:a:a:a:a:a:a:a:a:a:a:a:a:a:a:a:a:a:a:a...\": "
			       "longer than 255 characters" },
		{ "", "\"\": empty address" },
		{ "/24", "\"/24\": empty address" },
		{ "token=abc/8", "\"token=***REDACTED***\": not an IPv4 or IPv6 address" },
		{ NULL, "\"\": empty address" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct cvz_prefix p, untouched;
		memset(&p, 0x5a, sizeof(p));
		untouched = p;
		char why[INSTR_WHY_MAX];
		int r = instr_check_target(bad[i].s, &lim, &p, why, sizeof(why));
		if (r != -EINVAL || strcmp(why, bad[i].why) != 0)
			print_error("target: %s\nwant: %s\ngot:  %s\n", bad[i].s, bad[i].why, why);
		assert_int_equal(r, -EINVAL);
		assert_string_equal(why, bad[i].why);
		assert_memory_equal(&p, &untouched, sizeof(p));
	}
	free(long_target);

	struct {
		const char *s, *canon;
	} good[] = {
		{ "203.0.113.7", "203.0.113.7" },
		{ "198.51.100.0/24", "198.51.100.0/24" },
		{ "8.0.0.0/8", "8.0.0.0/8" },
		{ "2001:db8:bad::/48", "2001:db8:bad::/48" },
		{ "2001:DB8:BAD::1", "2001:db8:bad::1" },
		{ "2a00::/32", "2a00::/32" },
		{ "::ffff:203.0.113.7", "203.0.113.7" },
		{ "10.1.2.4", "10.1.2.4" },
		{ "192.0.2.11", "192.0.2.11" },
		{ "169.255.0.1", "169.255.0.1" },
		{ "fec0::1", "fec0::1" },
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct cvz_prefix p;
		char why[INSTR_WHY_MAX] = "junk", buf[CVZ_PREFIX_STRLEN];
		assert_int_equal(instr_check_target(good[i].s, &lim, &p, why, sizeof(why)), 0);
		assert_string_equal(why, "");
		assert_string_equal(cvz_prefix_format(&p, buf, sizeof(buf)), good[i].canon);
	}
	struct cvz_prefix p;
	char why[INSTR_WHY_MAX];
	assert_int_equal(instr_check_target("::ffff:203.0.113.7", &lim, &p, why, sizeof(why)), 0);
	assert_int_equal(p.family, AF_INET);

	/* no minimum, no safelist, no API address */
	struct instr_limits none = { 0 };
	assert_int_equal(instr_check_target("2.0.0.0/7", &none, &p, why, sizeof(why)), 0);
	assert_int_equal(instr_check_target("10.1.2.3", &none, &p, why, sizeof(why)), 0);
	assert_int_equal(instr_check_target("0.0.0.0/0", &none, &p, why, sizeof(why)), -EINVAL);
	assert_int_equal(instr_check_target("fe80::1", &none, &p, why, sizeof(why)), -EINVAL);
	/* a tiny why buffer is still terminated */
	char tiny[4];
	assert_int_equal(instr_check_target("127.0.0.1", &lim, &p, tiny, sizeof(tiny)), -EINVAL);
	assert_string_equal(tiny, "127");
}

static void test_rejected_targets_do_not_stop_others(void **state)
{
	(void)state;
	const char *text =
		"{\"cursor\":\"c1\",\"full\":false,\"instructions\":[{\"id\":\"a\","
		"\"action\":\"block\",\"targets\":[\"203.0.113.7\",\"foo\\u0001\",\"127.0.0.1\","
		"\"\",\"198.51.100.0/24\",\"192.0.2.10\",\"2001:db8:bad::/48\"]}]}";
	struct instr_batch b;
	char err[256];
	assert_int_equal(instr_parse(text, strlen(text), &lim, &b, err, sizeof(err)), 0);
	assert_int_equal(b.n, 1);
	const struct instr *in = &b.v[0];
	assert_int_equal(in->n_targets, 7);
	const char *texts[] = { "203.0.113.7", "foo\\x01", "127.0.0.1", "",
				"198.51.100.0/24", "192.0.2.10", "2001:db8:bad::/48" };
	const char *whys[] = { "",
			       "\"foo\\x01\": not an IPv4 or IPv6 address",
			       "127.0.0.1 covers loopback, which is never blockable",
			       "\"\": empty address",
			       "",
			       "192.0.2.10 covers the control API's own address 192.0.2.10",
			       "" };
	for (size_t i = 0; i < 7; i++) {
		assert_string_equal(in->targets[i].text, texts[i]);
		assert_string_equal(in->targets[i].why, whys[i]);
	}
	char buf[CVZ_PREFIX_STRLEN];
	assert_string_equal(cvz_prefix_format(&in->targets[4].prefix, buf, sizeof(buf)),
			    "198.51.100.0/24");
	assert_string_equal(cvz_prefix_format(&in->targets[6].prefix, buf, sizeof(buf)),
			    "2001:db8:bad::/48");
	instr_batch_free(&b);
	assert_null(b.v);
	assert_int_equal(b.n, 0);
	instr_batch_free(NULL);
}

/* An unblock is checked for syntax and never-blockable ranges only: what
 * was blocked before it was safelisted, before min_prefix was raised, or
 * before the API moved must stay removable. */
static void test_unblock_checks_syntax_only(void **state)
{
	(void)state;
	const char *text =
		"{\"cursor\":\"c1\",\"full\":false,\"instructions\":[{\"id\":\"u\","
		"\"action\":\"unblock\",\"targets\":[\"10.1.2.3\",\"64.0.0.0/7\",\"192.0.2.10\","
		"\"2001:db8:1::/64\",\"bogus\",\"127.0.0.1\"]}]}";
	struct instr_batch b;
	char err[256];
	assert_int_equal(instr_parse(text, strlen(text), &lim, &b, err, sizeof(err)), 0);
	const struct instr *in = &b.v[0];
	assert_int_equal(in->n_targets, 6);
	for (size_t i = 0; i < 4; i++)
		assert_string_equal(in->targets[i].why, "");
	assert_string_equal(in->targets[4].why, "\"bogus\": not an IPv4 or IPv6 address");
	assert_string_equal(in->targets[5].why, "127.0.0.1 covers loopback, which is never blockable");
	instr_batch_free(&b);
}

/* ---- valid replies ---------------------------------------------------- */

static void test_valid_full(void **state)
{
	(void)state;
	char *long_reason = repeat("too long. ", 400);
	char text[2048];
	snprintf(text, sizeof(text),
		 "{\"cursor\":\"c-2026-11-27T10:00:00Z#17\",\"full\":true,\"server\":{\"v\":2},"
		 "\"instructions\":["
		 "{\"id\":\"ins-42\",\"action\":\"block\",\"targets\":[\"203.0.113.7\","
		 "\"198.51.100.0/24\",\"2001:db8:bad::/48\"],\"ttl\":3600,"
		 "\"incident_id\":\"INC-20261127-1a2b3c4d\",\"severity\":\"high\","
		 "\"reason\":\"Multiple failed logins\",\"future\":[1,{\"x\":null}]},"
		 "{\"id\":\"ins-43\",\"action\":\"block\",\"targets\":[\"192.0.2.99\"],\"ttl\":0,"
		 "\"reason\":\"%s\"},"
		 "{\"id\":\"ins-44\",\"action\":\"block\",\"targets\":[\"192.0.2.98\"],"
		 "\"ttl\":315360000,\"reason\":\"leaked Bearer abc.def-ghi\\tand\\u001b[31m\"},"
		 "{\"id\":\"ins-44\",\"action\":\"lockdown\",\"enabled\":true,"
		 "\"incident_id\":\"INC-7\",\"severity\":\"critical\"}"
		 "]}",
		 long_reason);
	struct instr_batch b;
	char err[256] = "untouched";
	assert_int_equal(instr_parse(text, strlen(text), &lim, &b, err, sizeof(err)), 0);
	assert_string_equal(err, "untouched");
	assert_string_equal(b.cursor, "c-2026-11-27T10:00:00Z#17");
	assert_true(b.full);
	assert_int_equal(b.n, 4);

	const struct instr *in = &b.v[0];
	assert_string_equal(in->id, "ins-42");
	assert_int_equal(in->action, INSTR_BLOCK);
	assert_int_equal(in->n_targets, 3);
	for (size_t i = 0; i < 3; i++)
		assert_string_equal(in->targets[i].why, "");
	assert_string_equal(in->targets[1].text, "198.51.100.0/24");
	assert_int_equal(in->targets[2].prefix.family, AF_INET6);
	assert_int_equal(in->targets[2].prefix.len, 48);
	assert_int_equal(in->ttl, 3600);
	assert_string_equal(in->incident, "INC-20261127-1a2b3c4d");
	assert_string_equal(in->severity, "high");
	assert_string_equal(in->reason, "Multiple failed logins");

	/* capped to INSTR_TEXT_MAX, the cut marked */
	in = &b.v[1];
	assert_int_equal(in->ttl, 0);
	assert_int_equal(strlen(in->reason), INSTR_TEXT_MAX - 1);
	assert_string_equal(in->reason + INSTR_TEXT_MAX - 4, "...");
	assert_memory_equal(in->reason, long_reason, INSTR_TEXT_MAX - 4);
	assert_null(in->incident);
	assert_null(in->severity);

	/* sanitized: secrets redacted, control characters escaped */
	in = &b.v[2];
	assert_int_equal(in->ttl, INSTR_TTL_MAX);
	assert_string_equal(in->reason, "leaked Bearer ***REDACTED***\\x09and\\x1b[31m");

	/* the same id twice is not an error: the caller's instr_seen decides */
	in = &b.v[3];
	assert_string_equal(in->id, "ins-44");
	assert_int_equal(in->action, INSTR_LOCKDOWN);
	assert_true(in->enabled);
	assert_int_equal(in->n_targets, 0);
	assert_null(in->targets);
	assert_string_equal(in->incident, "INC-7");
	assert_string_equal(in->severity, "critical");
	assert_null(in->reason);
	instr_batch_free(&b);
	free(long_reason);
}

static void test_valid_delta(void **state)
{
	(void)state;
	const char *text =
		"{\"instructions\":["
		"{\"action\":\"unblock\",\"id\":\"ins-45\",\"targets\":[\"::ffff:203.0.113.7\"],"
		"\"reason\":\"false positive\",\"incident_id\":\"INC-1\",\"severity\":\"low\","
		"\"ttl\":60,\"enabled\":true},"
		"{\"id\":\"ins-46\",\"action\":\"lockdown\",\"enabled\":false,\"targets\":[\"x\"],"
		"\"reason\":\"over\",\"ttl\":5},"
		"{\"id\":\"~!#$%&'()*+,-./:;<=>?@[]^_`{|}\",\"action\":\"block\","
		"\"targets\":[\"1.2.3.4\"]}"
		"],\"full\":false,\"cursor\":\"~\",\"extra\":null}";
	struct instr_batch b;
	char err[256];
	assert_int_equal(instr_parse(text, strlen(text), &lim, &b, err, sizeof(err)), 0);
	assert_false(b.full);
	assert_string_equal(b.cursor, "~");
	assert_int_equal(b.n, 3);

	const struct instr *in = &b.v[0];
	assert_int_equal(in->action, INSTR_UNBLOCK);
	assert_int_equal(in->n_targets, 1);
	assert_int_equal(in->targets[0].prefix.family, AF_INET);
	assert_string_equal(in->targets[0].text, "::ffff:203.0.113.7");
	assert_string_equal(in->targets[0].why, "");
	assert_string_equal(in->reason, "false positive");
	assert_string_equal(in->incident, "INC-1");
	assert_string_equal(in->severity, "low");

	in = &b.v[1];
	assert_int_equal(in->action, INSTR_LOCKDOWN);
	assert_false(in->enabled);
	assert_int_equal(in->n_targets, 0);
	assert_string_equal(in->reason, "over");

	assert_string_equal(b.v[2].id, "~!#$%&'()*+,-./:;<=>?@[]^_`{|}");
	instr_batch_free(&b);

	const char *empty = "{\"cursor\":\"c\",\"full\":true,\"instructions\":[]}";
	assert_int_equal(instr_parse(empty, strlen(empty), &lim, &b, err, sizeof(err)), 0);
	assert_true(b.full);
	assert_int_equal(b.n, 0);
	assert_null(b.v);
	instr_batch_free(&b);
}

/* ---- seen ids --------------------------------------------------------- */

static void test_seen_basic(void **state)
{
	(void)state;
	struct instr_seen *s = instr_seen_new(3);
	assert_non_null(s);
	assert_int_equal(instr_seen_count(s), 0);
	assert_false(instr_seen_has(s, "a"));
	assert_null(instr_seen_at(s, 0));
	assert_int_equal(instr_seen_add(s, "a"), 0);
	assert_int_equal(instr_seen_add(s, "b"), 0);
	assert_int_equal(instr_seen_add(s, "a"), 0); /* no-op: a stays oldest */
	assert_int_equal(instr_seen_add(s, "c"), 0);
	assert_int_equal(instr_seen_count(s), 3);
	assert_string_equal(instr_seen_at(s, 0), "a");
	assert_string_equal(instr_seen_at(s, 1), "b");
	assert_string_equal(instr_seen_at(s, 2), "c");
	assert_null(instr_seen_at(s, 3));
	/* full: the oldest goes first */
	assert_int_equal(instr_seen_add(s, "d"), 0);
	assert_int_equal(instr_seen_count(s), 3);
	assert_false(instr_seen_has(s, "a"));
	assert_true(instr_seen_has(s, "b"));
	assert_true(instr_seen_has(s, "d"));
	assert_string_equal(instr_seen_at(s, 0), "b");
	assert_string_equal(instr_seen_at(s, 2), "d");
	assert_int_equal(instr_seen_add(s, "e"), 0);
	assert_int_equal(instr_seen_add(s, "f"), 0);
	assert_string_equal(instr_seen_at(s, 0), "d");
	assert_string_equal(instr_seen_at(s, 1), "e");
	assert_string_equal(instr_seen_at(s, 2), "f");
	assert_false(instr_seen_has(s, "b"));
	assert_false(instr_seen_has(s, "c"));
	/* a forgotten id can come back, as the newest */
	assert_int_equal(instr_seen_add(s, "a"), 0);
	assert_string_equal(instr_seen_at(s, 2), "a");
	assert_false(instr_seen_has(s, "d"));
	assert_int_equal(instr_seen_add(s, NULL), -EINVAL);
	assert_false(instr_seen_has(s, NULL));
	instr_seen_free(s);

	/* persisted in order and re-added on start: the same set */
	s = instr_seen_new(4);
	const char *ids[] = { "x1", "x2", "x3", "x4", "x5", "x6" };
	for (size_t i = 0; i < 6; i++)
		assert_int_equal(instr_seen_add(s, ids[i]), 0);
	struct instr_seen *t = instr_seen_new(4);
	for (size_t i = 0; i < instr_seen_count(s); i++)
		assert_int_equal(instr_seen_add(t, instr_seen_at(s, i)), 0);
	for (size_t i = 0; i < 4; i++)
		assert_string_equal(instr_seen_at(t, i), ids[i + 2]);
	instr_seen_free(s);
	instr_seen_free(t);

	instr_seen_free(NULL);
	assert_false(instr_seen_has(NULL, "a"));
	assert_int_equal(instr_seen_count(NULL), 0);
	errno = 0;
	assert_null(instr_seen_new(0));
	assert_int_equal(errno, EINVAL);
}

static void test_seen_cap1(void **state)
{
	(void)state;
	struct instr_seen *s = instr_seen_new(1);
	assert_non_null(s);
	assert_int_equal(instr_seen_add(s, "a"), 0);
	assert_true(instr_seen_has(s, "a"));
	assert_int_equal(instr_seen_add(s, "a"), 0);
	assert_int_equal(instr_seen_count(s), 1);
	assert_int_equal(instr_seen_add(s, "b"), 0);
	assert_false(instr_seen_has(s, "a"));
	assert_true(instr_seen_has(s, "b"));
	assert_int_equal(instr_seen_count(s), 1);
	assert_string_equal(instr_seen_at(s, 0), "b");
	assert_null(instr_seen_at(s, 1));
	instr_seen_free(s);
}

/* Many adds from a small id space, so probe runs wrap and evictions shift
 * entries back: the set must agree with a plain FIFO array at every step. */
static void test_seen_matches_model(void **state)
{
	(void)state;
	enum { CAP = 37, SPACE = 150, STEPS = 20000 };
	struct instr_seen *s = instr_seen_new(CAP);
	int fifo[CAP];
	size_t n = 0;
	unsigned rnd = 12345;
	for (int step = 0; step < STEPS; step++) {
		rnd = rnd * 1103515245u + 12345u;
		int v = (int)((rnd >> 8) % SPACE);
		char id[16];
		snprintf(id, sizeof(id), "i%d", v);
		bool in = false;
		for (size_t k = 0; k < n; k++)
			in = in || fifo[k] == v;
		assert_int_equal(instr_seen_has(s, id), in);
		assert_int_equal(instr_seen_add(s, id), 0);
		if (!in) {
			if (n == CAP) {
				memmove(fifo, fifo + 1, (CAP - 1) * sizeof(fifo[0]));
				n--;
			}
			fifo[n++] = v;
		}
		assert_int_equal(instr_seen_count(s), n);
		if (step % 97 == 0) {
			for (size_t k = 0; k < n; k++) {
				snprintf(id, sizeof(id), "i%d", fifo[k]);
				assert_string_equal(instr_seen_at(s, k), id);
			}
			for (int w = 0; w < SPACE; w++) {
				bool want = false;
				for (size_t k = 0; k < n; k++)
					want = want || fifo[k] == w;
				snprintf(id, sizeof(id), "i%d", w);
				assert_int_equal(instr_seen_has(s, id), want);
			}
		}
	}
	instr_seen_free(s);
}

/* ---- speed ------------------------------------------------------------ */

static double clock_ms(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static double now_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

/* Appends to a growing buffer; the test's own, so no realloc checks spared. */
struct sbuf {
	char *p;
	size_t n, cap;
};

static void __attribute__((format(printf, 2, 3))) sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		va_start(ap, fmt);
		int k = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
		va_end(ap);
		assert_true(k >= 0);
		if ((size_t)k < b->cap - b->n) {
			b->n += (size_t)k;
			return;
		}
		b->cap = b->cap ? b->cap * 2 : 1 << 20;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
}

/* A full snapshot of 100k targets, in two shapes: 1000 incidents of 100
 * targets each with id, ttl, reason, incident and severity (~2 MB, the
 * shape the benchmark means), and one instruction per target (~16
 * MB: the cost per instruction). The first shape is parsed twice: the first
 * run pays for fresh pages, the second reuses the heap.
 * Prints the times; a slow machine must not fail the suite. */
static void test_speed_100k(void **state)
{
	(void)state;
	enum { N = 100000 };
	for (int shape = 0; shape < 2; shape++) {
		int per = shape == 0 ? 100 : 1;
		struct sbuf sb = { 0 };
		sb_printf(&sb, "{\"cursor\":\"c1\",\"full\":true,\"instructions\":[");
		for (int i = 0; i < N; i++) {
			/* spread over 11.x-110.x and 2001:db8:100::/40, all valid; a
			   quarter IPv6 */
			unsigned a = 11 + (unsigned)i % 100, b = ((unsigned)i / 100) % 256,
				 c = (unsigned)i / 25600;
			if (i % per == 0)
				sb_printf(&sb,
					  "%s{\"id\":\"ins-%d\",\"action\":\"block\","
					  "\"ttl\":86400,\"reason\":\"brute force on ssh\","
					  "\"incident_id\":\"INC-20261127-%08x\","
					  "\"severity\":\"high\",\"targets\":[",
					  i ? "," : "", i, (unsigned)i);
			else
				sb_printf(&sb, ",");
			if (i % 4 == 3)
				sb_printf(&sb, "\"2001:db8:%x:%x:%x::/80\"", 0x100 + c, i & 0xffff,
					  (unsigned)i % 7919);
			else
				sb_printf(&sb, "\"%u.%u.%u.%u\"", a, b, c, (unsigned)i % 200 + 1);
			if (i % per == per - 1)
				sb_printf(&sb, "]}");
		}
		sb_printf(&sb, "]}");

		for (int run = 0; run < 2 - shape; run++) {
			struct instr_batch b;
			char err[256] = "";
			double t0 = now_ms(), c0 = clock_ms(CLOCK_PROCESS_CPUTIME_ID);
			int r = instr_parse(sb.p, sb.n, &lim, &b, err, sizeof(err));
			double t1 = now_ms(), c1 = clock_ms(CLOCK_PROCESS_CPUTIME_ID);
			if (r != 0)
				print_error("%s\n", err);
			assert_int_equal(r, 0);
			size_t ok = 0;
			for (size_t i = 0; i < b.n; i++)
				for (size_t k = 0; k < b.v[i].n_targets; k++)
					ok += b.v[i].targets[k].why[0] == '\0';
			assert_int_equal(ok, N);
			double t2 = now_ms();
			instr_batch_free(&b);
			double t3 = now_ms();
			print_message("100k targets in %d instructions, %.1f MB body, run %d: "
				      "parse+validate %.1f ms (cpu %.1f ms), free %.1f ms\n",
				      N / per, (double)sb.n / 1e6, run + 1, t1 - t0, c1 - c0,
				      t3 - t2);
		}
		free(sb.p);
	}
}

/* Bounds before and after jansson (cvz_limits.h): a reply whose tree would
 * cost more than CVZ_REPLY_PARSE_BUDGET is refused by the scan before
 * jansson allocates anything (16 MiB of "{}" was 1.2 GB of tree); nesting
 * past CVZ_REPLY_DEPTH_MAX and more than CVZ_REPLY_TARGETS_MAX targets are
 * refused whole. The 100k-instruction snapshot of test_speed_100k stays
 * under the budget. */
static void test_bounds(void **state)
{
	(void)state;
	uint64_t cost = 0;
	char err[256] = "";
	assert_int_equal(instr_reply_cost("[{}, 1, \"ab\", true, {\"k\": null}]", 33, &cost, err,
					  sizeof(err)), 0);
	assert_int_equal(cost, (136 + 16) + (232 + 16) + (40 + 16) + (88 + 16 + 2) + 16 +
				       (232 + 16) + (64 + 1) + 16);

	/* 16 MiB of empty objects */
	size_t n = (16u << 20) / 3;
	const char *head = "{\"cursor\":\"c1\",\"full\":false,\"instructions\":[";
	size_t hl = strlen(head), len = hl + 3 * n + 1;
	char *t = malloc(len + 1);
	assert_non_null(t);
	memcpy(t, head, hl);
	for (size_t i = 0; i < n; i++)
		memcpy(t + hl + 3 * i, i ? ",{}" : " {}", 3);
	memcpy(t + len - 2, "]}", 3);
	struct instr_batch b;
	int r = instr_parse(t, len, &lim, &b, err, sizeof(err));
	assert_int_equal(r, -EBADMSG);
	if (!strstr(err, "too costly to parse: more than 192 MiB of JSON values by byte "))
		fail_msg("got: %s", err);
	free(t);

	/* 32 levels are fine (refused for what they hold), 33 are not */
	char deep[256];
	snprintf(deep, sizeof(deep), "{\"cursor\":\"c1\",\"full\":false,\"instructions\":"
		 "%.31s%.31s}", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
		 "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]");
	refused(deep, "instructions[0]: expected an object, got array");
	snprintf(deep, sizeof(deep), "{\"cursor\":\"c1\",\"full\":false,\"instructions\":"
		 "%.32s%.32s}", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
		 "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]");
	refused(deep, "nested deeper than 32 levels at byte 74 (the limit)");

	/* 200 000 targets in one instruction and one more in the next */
	struct sbuf sb = { 0 };
	sb_printf(&sb, "{\"cursor\":\"c1\",\"full\":true,\"instructions\":["
		       "{\"id\":\"a\",\"action\":\"block\",\"targets\":[");
	for (unsigned i = 0; i < 200000; i++)
		sb_printf(&sb, "%s\"45.%u.%u.%u\"", i ? "," : "", i >> 16, (i >> 8) & 255, i & 255);
	sb_printf(&sb, "]},{\"id\":\"b\",\"action\":\"unblock\",\"targets\":[\"46.0.0.1\"]}]}");
	r = instr_parse(sb.p, sb.n, &lim, &b, err, sizeof(err));
	assert_int_equal(r, -EBADMSG);
	assert_string_equal(err, "instructions[1].targets: more than 200000 targets in one reply (the limit)");
	/* without the last one it is accepted */
	char *cut = strstr(sb.p, "]},{\"id\":\"b\"");
	assert_non_null(cut);
	memcpy(cut, "]}]}", 5);
	r = instr_parse(sb.p, strlen(sb.p), &lim, &b, err, sizeof(err));
	if (r != 0)
		fail_msg("%s", err);
	assert_int_equal(b.v[0].n_targets, 200000);
	instr_batch_free(&b);
	free(sb.p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_refused_json),
		cmocka_unit_test(test_refused_top),
		cmocka_unit_test(test_refused_instruction),
		cmocka_unit_test(test_refused_fields),
		cmocka_unit_test(test_err_small_buffer),
		cmocka_unit_test(test_target_rules),
		cmocka_unit_test(test_rejected_targets_do_not_stop_others),
		cmocka_unit_test(test_unblock_checks_syntax_only),
		cmocka_unit_test(test_valid_full),
		cmocka_unit_test(test_valid_delta),
		cmocka_unit_test(test_seen_basic),
		cmocka_unit_test(test_seen_cap1),
		cmocka_unit_test(test_seen_matches_model),
		cmocka_unit_test(test_speed_100k),
		cmocka_unit_test(test_bounds),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
