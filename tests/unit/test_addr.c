/* Unit tests for agent/addr.c: prefix parsing and formatting, containment,
 * and the normalised range sets, checked against a naive bitmap model. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"

typedef unsigned __int128 u128;

#define V4_MAX UINT32_MAX
#define V6_MAX (~(u128)0)

static u128 u128_of(uint64_t hi, uint64_t lo)
{
	return (u128)hi << 64 | lo;
}

static void assert_u128_equal(u128 got, u128 want)
{
	if (got != want) {
		print_error("u128 mismatch: got %016llx%016llx want %016llx%016llx\n",
			    (unsigned long long)(got >> 64), (unsigned long long)got,
			    (unsigned long long)(want >> 64),
			    (unsigned long long)want);
		fail();
	}
}

/* Parses text that must be valid. */
static struct cvz_prefix pfx(const char *text)
{
	struct cvz_prefix p;
	const char *why = NULL;
	char buf[128];

	if (cvz_prefix_parse(text, &p, &why, buf, sizeof(buf)) != 0) {
		print_error("parse \"%s\": %s\n", text, why);
		fail();
	}
	return p;
}

/* ---- parsing: valid input ---------------------------------------------- */

static const struct {
	const char *in;
	int family;
	unsigned len;
	const char *canon;
} valid_cases[] = {
	{ "203.0.113.7", AF_INET, 32, "203.0.113.7" },
	{ "203.0.113.7/32", AF_INET, 32, "203.0.113.7" },
	{ "198.51.100.0/24", AF_INET, 24, "198.51.100.0/24" },
	{ "10.0.0.0/8", AF_INET, 8, "10.0.0.0/8" },
	{ "0.0.0.0/0", AF_INET, 0, "0.0.0.0/0" },
	{ "0.0.0.0", AF_INET, 32, "0.0.0.0" },
	{ "255.255.255.255", AF_INET, 32, "255.255.255.255" },
	{ "128.0.0.0/1", AF_INET, 1, "128.0.0.0/1" },
	{ "10.0.0.2/31", AF_INET, 31, "10.0.0.2/31" },
	{ "::", AF_INET6, 128, "::" },
	{ "::/0", AF_INET6, 0, "::/0" },
	{ "::1", AF_INET6, 128, "::1" },
	{ "::1/128", AF_INET6, 128, "::1" },
	{ "2001:db8::/32", AF_INET6, 32, "2001:db8::/32" },
	{ "2001:DB8:BAD::/48", AF_INET6, 48, "2001:db8:bad::/48" },
	{ "2001:0db8:85a3:0000:0000:8a2e:0370:7334", AF_INET6, 128,
	  "2001:db8:85a3::8a2e:370:7334" },
	{ "1:2:3:4:5:6:7:8", AF_INET6, 128, "1:2:3:4:5:6:7:8" },
	{ "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", AF_INET6, 128,
	  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" },
	{ "fe80::/10", AF_INET6, 10, "fe80::/10" },
	{ "8000::/1", AF_INET6, 1, "8000::/1" },
	/* IPv4-mapped: returned as IPv4 once the length reaches the v4 part */
	{ "::ffff:10.1.2.3", AF_INET, 32, "10.1.2.3" },
	{ "::ffff:10.1.2.3/128", AF_INET, 32, "10.1.2.3" },
	{ "::ffff:10.0.0.0/104", AF_INET, 8, "10.0.0.0/8" },
	{ "::ffff:0.0.0.0/96", AF_INET, 0, "0.0.0.0/0" },
	{ "::ffff:a01:203", AF_INET, 32, "10.1.2.3" },
	/* the deprecated IPv4-compatible form is not mapped */
	{ "::1.2.3.4", AF_INET6, 128, "::1.2.3.4" },
	{ "::ffff:0:0/112", AF_INET, 16, "0.0.0.0/16" },
	{ "::/95", AF_INET6, 95, "::/95" },
};

static void test_parse_valid(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(valid_cases) / sizeof(valid_cases[0]); i++) {
		char buf[CVZ_PREFIX_STRLEN];
		struct cvz_prefix p = pfx(valid_cases[i].in);

		assert_int_equal(p.family, valid_cases[i].family);
		assert_int_equal(p.len, valid_cases[i].len);
		assert_string_equal(cvz_prefix_format(&p, buf, sizeof(buf)),
				    valid_cases[i].canon);
	}
}

static void test_parse_bytes(void **state)
{
	static const uint8_t v4[16] = { 10, 1, 2, 3 };
	static const uint8_t v6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 };
	static const uint8_t zero[16];
	struct cvz_prefix p;

	(void)state;
	/* IPv4 uses addr[0..3] and the rest is zero, also when unmapped */
	p = pfx("10.1.2.3");
	assert_memory_equal(p.addr, v4, 16);
	p = pfx("::ffff:10.1.2.3");
	assert_memory_equal(p.addr, v4, 16);
	p = pfx("2001:db8::1");
	assert_memory_equal(p.addr, v6, 16);
	p = pfx("::/0");
	assert_memory_equal(p.addr, zero, 16);
	p = pfx("0.0.0.0/0");
	assert_memory_equal(p.addr, zero, 16);
}

/* ---- parsing: invalid input -------------------------------------------- */

static const struct {
	const char *in;
	const char *why;      /* with a why_buf */
	const char *why_bare; /* without one */
} invalid_cases[] = {
	{ "", "empty address", "empty address" },
	{ "/8", "empty address", "empty address" },
	{ "1.2.3", "not an IPv4 or IPv6 address", NULL },
	{ "1.2.3.4.5", "not an IPv4 or IPv6 address", NULL },
	{ "256.0.0.1", "not an IPv4 or IPv6 address", NULL },
	{ "1.2.3.256", "not an IPv4 or IPv6 address", NULL },
	{ "01.2.3.4", "not an IPv4 or IPv6 address", NULL },
	{ "1.2.3.04", "not an IPv4 or IPv6 address", NULL },
	{ "+1.2.3.4", "not an IPv4 or IPv6 address", NULL },
	{ "1.2.3.-4", "not an IPv4 or IPv6 address", NULL },
	{ "0x1.2.3.4", "not an IPv4 or IPv6 address", NULL },
	{ "1..2.3", "not an IPv4 or IPv6 address", NULL },
	{ " 1.2.3.4", "not an IPv4 or IPv6 address", NULL },
	{ "1.2.3.4 ", "not an IPv4 or IPv6 address", NULL },
	{ "1.2.3.4\n", "not an IPv4 or IPv6 address", NULL },
	{ "example.com", "not an IPv4 or IPv6 address", NULL },
	{ "2001:db8:::1", "not an IPv4 or IPv6 address", NULL },
	{ "2001:db8::1::1", "not an IPv4 or IPv6 address", NULL },
	{ "12345::", "not an IPv4 or IPv6 address", NULL },
	{ "::g", "not an IPv4 or IPv6 address", NULL },
	{ "1:2:3:4:5:6:7:8:9", "not an IPv4 or IPv6 address", NULL },
	{ "fe80::1%eth0", "not an IPv4 or IPv6 address", NULL },
	{ "::ffff:01.2.3.4", "not an IPv4 or IPv6 address", NULL },
	{ "1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa",
	  "not an IPv4 or IPv6 address", NULL },
	{ "1.2.3.4/", "bad prefix length", NULL },
	{ "1.2.3.4/-1", "bad prefix length", NULL },
	{ "1.2.3.4/+8", "bad prefix length", NULL },
	{ "1.2.3.4/1a", "bad prefix length", NULL },
	{ "1.2.3.4/ 8", "bad prefix length", NULL },
	{ "1.2.3.4/8 ", "bad prefix length", NULL },
	{ "10.0.0.0/08", "bad prefix length", NULL },
	{ "10.0.0.0/8/8", "bad prefix length", NULL },
	{ "10.0.0.0/0x8", "bad prefix length", NULL },
	{ "::/", "bad prefix length", NULL },
	{ "1.2.3.4/33", "prefix length 33 out of range 0-32",
	  "prefix length out of range" },
	{ "1.2.3.4/128", "prefix length 128 out of range 0-32",
	  "prefix length out of range" },
	{ "1.2.3.4/99999999999999999999",
	  "prefix length 99999999999999999999 out of range 0-32",
	  "prefix length out of range" },
	{ "::/129", "prefix length 129 out of range 0-128",
	  "prefix length out of range" },
	{ "::ffff:10.0.0.0/129", "prefix length 129 out of range 0-128",
	  "prefix length out of range" },
	{ "10.1.2.3/8", "host bits set (did you mean 10.0.0.0/8?)",
	  "host bits set" },
	{ "1.2.3.4/0", "host bits set (did you mean 0.0.0.0/0?)",
	  "host bits set" },
	{ "10.0.0.1/31", "host bits set (did you mean 10.0.0.0/31?)",
	  "host bits set" },
	{ "2001:db8::1/32", "host bits set (did you mean 2001:db8::/32?)",
	  "host bits set" },
	{ "::1/0", "host bits set (did you mean ::/0?)", "host bits set" },
	{ "::ffff:10.1.2.3/104", "host bits set (did you mean 10.0.0.0/8?)",
	  "host bits set" },
	/* a mapped address below /96 stays IPv6, and so does the hint */
	{ "::ffff:10.0.0.0/64", "host bits set (did you mean ::/64?)",
	  "host bits set" },
	{ "::ffff:0:0/95", "host bits set (did you mean ::fffe:0:0/95?)",
	  "host bits set" },
};

static void test_parse_invalid(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(invalid_cases) / sizeof(invalid_cases[0]); i++) {
		const char *in = invalid_cases[i].in;
		const char *bare = invalid_cases[i].why_bare ?
					   invalid_cases[i].why_bare :
					   invalid_cases[i].why;
		struct cvz_prefix p, sentinel;
		const char *why = NULL;
		char buf[128];

		/* out-parameters are written only on success */
		memset(&p, 0xa5, sizeof(p));
		memcpy(&sentinel, &p, sizeof(p));
		if (cvz_prefix_parse(in, &p, &why, buf, sizeof(buf)) != -EINVAL) {
			print_error("\"%s\" was accepted\n", in);
			fail();
		}
		assert_non_null(why);
		assert_string_equal(why, invalid_cases[i].why);
		assert_memory_equal(&p, &sentinel, sizeof(p));

		why = NULL;
		assert_int_equal(cvz_prefix_parse(in, &p, &why, NULL, 0), -EINVAL);
		assert_string_equal(why, bare);
		assert_memory_equal(&p, &sentinel, sizeof(p));

		/* a zero-length buffer is the same as none */
		why = NULL;
		assert_int_equal(cvz_prefix_parse(in, &p, &why, buf, 0), -EINVAL);
		assert_string_equal(why, bare);

		/* and why itself is optional */
		assert_int_equal(cvz_prefix_parse(in, &p, NULL, NULL, 0), -EINVAL);
	}
}

static void test_parse_why_buf(void **state)
{
	struct cvz_prefix p;
	const char *why = NULL;
	char buf[16];

	(void)state;
	/* The formatted message lives in the caller's buffer, truncated. */
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(cvz_prefix_parse("10.1.2.3/8", &p, &why, buf, 8), -EINVAL);
	assert_ptr_equal(why, buf);
	assert_string_equal(why, "host bi");
	assert_int_equal(buf[8], 'x');

	/* Static messages do not touch the buffer. */
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(cvz_prefix_parse("1.2.3", &p, &why, buf, sizeof(buf)),
			 -EINVAL);
	assert_ptr_not_equal(why, buf);
	assert_int_equal(buf[0], 'x');

	assert_int_equal(cvz_prefix_parse(NULL, &p, &why, buf, sizeof(buf)), -EINVAL);
	assert_string_equal(why, "empty address");
}

/* ---- formatting -------------------------------------------------------- */

static void test_format(void **state)
{
	struct cvz_prefix p = { .family = AF_INET, .len = 24,
				.addr = { 198, 51, 100, 0 } };
	char buf[CVZ_PREFIX_STRLEN];

	(void)state;
	assert_string_equal(cvz_prefix_format(&p, buf, sizeof(buf)), "198.51.100.0/24");
	p.len = 32;
	assert_string_equal(cvz_prefix_format(&p, buf, sizeof(buf)), "198.51.100.0");

	/* truncation keeps the NUL; len 0 writes nothing */
	p.len = 24;
	assert_ptr_equal(cvz_prefix_format(&p, buf, 5), buf);
	assert_string_equal(buf, "198.");
	memset(buf, 'x', sizeof(buf));
	cvz_prefix_format(&p, buf, 0);
	assert_int_equal(buf[0], 'x');

	p = (struct cvz_prefix){ .family = 0 };
	assert_string_equal(cvz_prefix_format(&p, buf, sizeof(buf)), "invalid");

	/* a long IPv6 prefix */
	p = pfx("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
	p.len = 127; /* host bits set, but format does not judge */
	assert_string_equal(cvz_prefix_format(&p, buf, sizeof(buf)),
			    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/127");
}

/* format(parse(x)) is a fixed point for every canonical text. */
static void test_format_round_trip(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(valid_cases) / sizeof(valid_cases[0]); i++) {
		char a[CVZ_PREFIX_STRLEN], b[CVZ_PREFIX_STRLEN];
		struct cvz_prefix p = pfx(valid_cases[i].in), q;

		cvz_prefix_format(&p, a, sizeof(a));
		q = pfx(a);
		assert_memory_equal(&p, &q, sizeof(p));
		assert_string_equal(cvz_prefix_format(&q, b, sizeof(b)), a);
	}
}

/* ---- contains / overlaps ----------------------------------------------- */

static const struct {
	const char *outer, *inner;
	bool contains, overlaps;
} contain_cases[] = {
	{ "10.0.0.0/8", "10.1.0.0/16", true, true },
	{ "10.1.0.0/16", "10.0.0.0/8", false, true },
	{ "10.0.0.0/8", "10.0.0.0/8", true, true },
	{ "10.0.0.0/8", "10.255.255.255", true, true },
	{ "10.0.0.0/8", "11.0.0.0", false, false },
	{ "10.0.0.0/9", "10.128.0.0/9", false, false },
	{ "0.0.0.0/0", "255.255.255.255", true, true },
	{ "0.0.0.0/0", "0.0.0.0/0", true, true },
	{ "192.0.2.1", "192.0.2.1", true, true },
	{ "192.0.2.1", "192.0.2.2", false, false },
	{ "::/0", "2001:db8::1", true, true },
	{ "2001:db8::/32", "2001:db8:bad::/48", true, true },
	{ "2001:db8::/32", "2001:db9::/32", false, false },
	{ "2001:db8::/48", "2001:db8::/32", false, true },
	/* different families never contain or overlap */
	{ "0.0.0.0/0", "::/0", false, false },
	{ "::/0", "0.0.0.0/0", false, false },
	{ "::/0", "10.1.2.3", false, false },
	{ "::/96", "0.0.0.0", false, false },
};

static void test_contains_overlaps(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(contain_cases) / sizeof(contain_cases[0]); i++) {
		struct cvz_prefix o = pfx(contain_cases[i].outer);
		struct cvz_prefix n = pfx(contain_cases[i].inner);

		if (cvz_prefix_contains(&o, &n) != contain_cases[i].contains ||
		    cvz_prefix_overlaps(&o, &n) != contain_cases[i].overlaps ||
		    cvz_prefix_overlaps(&n, &o) != contain_cases[i].overlaps) {
			print_error("case %s vs %s\n", contain_cases[i].outer,
				    contain_cases[i].inner);
			fail();
		}
	}
}

/* ---- range sets -------------------------------------------------------- */

static void expect4(const struct cvz_rangeset *s, const uint32_t want[][2],
		    size_t n)
{
	bool ok = s->n4 == n;

	for (size_t i = 0; ok && i < n; i++)
		ok = s->v4[i].lo == want[i][0] && s->v4[i].hi == want[i][1];
	if (ok)
		return;
	print_error("IPv4 ranges: got %zu\n", s->n4);
	for (size_t i = 0; i < s->n4; i++)
		print_error("  %08x-%08x\n", s->v4[i].lo, s->v4[i].hi);
	print_error("want %zu\n", n);
	for (size_t i = 0; i < n; i++)
		print_error("  %08x-%08x\n", want[i][0], want[i][1]);
	fail();
}

static void expect6(const struct cvz_rangeset *s, const u128 want[][2], size_t n)
{
	assert_int_equal(s->n6, n);
	for (size_t i = 0; i < n; i++) {
		assert_u128_equal(s->v6[i].lo, want[i][0]);
		assert_u128_equal(s->v6[i].hi, want[i][1]);
	}
}

#define EXPECT4(s, ...)                                                        \
	do {                                                                   \
		static const uint32_t w_[][2] = { __VA_ARGS__ };               \
		expect4((s), w_, sizeof(w_) / sizeof(w_[0]));                  \
	} while (0)

static void add_pfx(struct cvz_rangeset *s, const char *text)
{
	struct cvz_prefix p = pfx(text);

	assert_int_equal(cvz_rangeset_add_prefix(s, &p), 0);
}

static void test_add_prefix(void **state)
{
	struct cvz_rangeset s = { 0 };
	struct cvz_prefix bad = { .family = AF_UNIX };

	(void)state;
	add_pfx(&s, "10.0.0.0/8");
	add_pfx(&s, "0.0.0.0/0");
	add_pfx(&s, "255.255.255.255");
	add_pfx(&s, "192.0.2.1");
	add_pfx(&s, "::ffff:198.51.100.0/120");
	EXPECT4(&s, { 0x0a000000, 0x0affffff }, { 0, V4_MAX },
		{ V4_MAX, V4_MAX }, { 0xc0000201, 0xc0000201 },
		{ 0xc6336400, 0xc63364ff });
	assert_int_equal(s.n6, 0);

	add_pfx(&s, "::/0");
	add_pfx(&s, "2001:db8::/32");
	add_pfx(&s, "::1");
	add_pfx(&s, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
	expect6(&s,
		(const u128[][2]){
			{ 0, V6_MAX },
			{ u128_of(0x20010db800000000ULL, 0),
			  u128_of(0x20010db8ffffffffULL, ~0ULL) },
			{ 1, 1 },
			{ V6_MAX, V6_MAX },
		},
		4);
	assert_int_equal(s.n4, 5);

	assert_int_equal(cvz_rangeset_add_prefix(&s, &bad), -EAFNOSUPPORT);
	assert_int_equal(cvz_rangeset_add4(&s, 2, 1), -EINVAL);
	assert_int_equal(cvz_rangeset_add6(&s, 2, 1), -EINVAL);
	assert_int_equal(s.n4, 5);
	assert_int_equal(s.n6, 4);

	/* growth past the initial capacity keeps every element */
	for (uint32_t i = 0; i < 1000; i++)
		assert_int_equal(cvz_rangeset_add4(&s, i * 4, i * 4 + 1), 0);
	assert_int_equal(s.n4, 1005);
	assert_true(s.cap4 >= s.n4);
	assert_int_equal(s.v4[1004].lo, 999 * 4);

	cvz_rangeset_free(&s);
	assert_null(s.v4);
	assert_null(s.v6);
	assert_int_equal(s.n4 + s.n6 + s.cap4 + s.cap6, 0);
	cvz_rangeset_free(&s); /* freeing twice is harmless */
}

static void test_normalize(void **state)
{
	struct cvz_rangeset s = { 0 };

	(void)state;
	cvz_rangeset_normalize(&s); /* empty */
	assert_int_equal(s.n4, 0);
	assert_int_equal(s.n6, 0);

	/* single range */
	cvz_rangeset_add4(&s, 5, 9);
	cvz_rangeset_normalize(&s);
	EXPECT4(&s, { 5, 9 });
	cvz_rangeset_free(&s);

	/* overlap, out of order */
	cvz_rangeset_add4(&s, 20, 30);
	cvz_rangeset_add4(&s, 10, 25);
	cvz_rangeset_normalize(&s);
	EXPECT4(&s, { 10, 30 });
	cvz_rangeset_free(&s);

	/* adjacency merges, a gap of one address does not */
	cvz_rangeset_add4(&s, 11, 20);
	cvz_rangeset_add4(&s, 0, 10);
	cvz_rangeset_add4(&s, 22, 30);
	cvz_rangeset_normalize(&s);
	EXPECT4(&s, { 0, 20 }, { 22, 30 });
	cvz_rangeset_free(&s);

	/* nesting, duplicates, a chain where only the sum covers the span */
	cvz_rangeset_add4(&s, 100, 200);
	cvz_rangeset_add4(&s, 120, 130);
	cvz_rangeset_add4(&s, 100, 200);
	cvz_rangeset_add4(&s, 150, 150);
	cvz_rangeset_add4(&s, 300, 310);
	cvz_rangeset_add4(&s, 300, 310);
	cvz_rangeset_add4(&s, 305, 320);
	cvz_rangeset_add4(&s, 321, 330);
	cvz_rangeset_add4(&s, 50, 60);
	cvz_rangeset_normalize(&s);
	EXPECT4(&s, { 50, 60 }, { 100, 200 }, { 300, 330 });
	/* normalising twice changes nothing */
	cvz_rangeset_normalize(&s);
	EXPECT4(&s, { 50, 60 }, { 100, 200 }, { 300, 330 });
	cvz_rangeset_free(&s);

	/* edges: 0 and the all-ones address, where hi + 1 would wrap */
	cvz_rangeset_add4(&s, V4_MAX, V4_MAX);
	cvz_rangeset_add4(&s, 0, 0);
	cvz_rangeset_add4(&s, V4_MAX - 10, V4_MAX - 1);
	cvz_rangeset_normalize(&s);
	EXPECT4(&s, { 0, 0 }, { V4_MAX - 10, V4_MAX });
	cvz_rangeset_add4(&s, 1, V4_MAX - 11);
	cvz_rangeset_normalize(&s);
	EXPECT4(&s, { 0, V4_MAX });
	cvz_rangeset_add4(&s, V4_MAX, V4_MAX);
	cvz_rangeset_add4(&s, 0, V4_MAX);
	cvz_rangeset_normalize(&s);
	EXPECT4(&s, { 0, V4_MAX });
	cvz_rangeset_free(&s);

	/* IPv6, including the all-ones edge; the IPv4 half stays empty */
	cvz_rangeset_add6(&s, V6_MAX, V6_MAX);
	cvz_rangeset_add6(&s, V6_MAX - 5, V6_MAX - 1);
	cvz_rangeset_add6(&s, 10, 20);
	cvz_rangeset_add6(&s, 21, 21);
	cvz_rangeset_add6(&s, 23, 23);
	cvz_rangeset_add6(&s, 0, 5);
	cvz_rangeset_add6(&s, 2, 3);
	cvz_rangeset_add6(&s, u128_of(1, 0), u128_of(1, 5));
	cvz_rangeset_add6(&s, u128_of(0, ~0ULL), u128_of(0, ~0ULL));
	cvz_rangeset_normalize(&s);
	expect6(&s,
		(const u128[][2]){
			{ 0, 5 },
			{ 10, 21 },
			{ 23, 23 },
			{ u128_of(0, ~0ULL), u128_of(1, 5) },
			{ V6_MAX - 5, V6_MAX },
		},
		5);
	assert_int_equal(s.n4, 0);
	cvz_rangeset_free(&s);
}

static void test_subtract(void **state)
{
	struct cvz_rangeset s = { 0 }, m = { 0 };

	(void)state;
	/* the example from the design: carve one host out of a /8 */
	add_pfx(&s, "10.0.0.0/8");
	add_pfx(&m, "10.1.2.3");
	assert_int_equal(cvz_rangeset_subtract(&s, &m), 0);
	EXPECT4(&s, { 0x0a000000, 0x0a010202 }, { 0x0a010204, 0x0affffff });
	cvz_rangeset_free(&s);
	cvz_rangeset_free(&m);

	/* minus covers everything */
	cvz_rangeset_add4(&s, 10, 20);
	cvz_rangeset_add4(&s, 30, 40);
	cvz_rangeset_add4(&m, 5, 45);
	assert_int_equal(cvz_rangeset_subtract(&s, &m), 0);
	assert_int_equal(s.n4, 0);
	cvz_rangeset_free(&s);
	cvz_rangeset_free(&m);

	/* minus disjoint, in the gaps and beyond both ends */
	cvz_rangeset_add4(&s, 10, 20);
	cvz_rangeset_add4(&s, 30, 40);
	cvz_rangeset_add4(&m, 0, 9);
	cvz_rangeset_add4(&m, 21, 29);
	cvz_rangeset_add4(&m, 41, 100);
	assert_int_equal(cvz_rangeset_subtract(&s, &m), 0);
	EXPECT4(&s, { 10, 20 }, { 30, 40 });
	cvz_rangeset_free(&m);

	/* one minus range spanning two ranges of s, trimming both */
	cvz_rangeset_add4(&m, 15, 35);
	assert_int_equal(cvz_rangeset_subtract(&s, &m), 0);
	EXPECT4(&s, { 10, 14 }, { 36, 40 });
	cvz_rangeset_free(&s);
	cvz_rangeset_free(&m);

	/* several minus ranges inside one range of s */
	cvz_rangeset_add4(&s, 0, 100);
	cvz_rangeset_add4(&m, 0, 0);
	cvz_rangeset_add4(&m, 10, 19);
	cvz_rangeset_add4(&m, 50, 50);
	cvz_rangeset_add4(&m, 100, 200);
	assert_int_equal(cvz_rangeset_subtract(&s, &m), 0);
	EXPECT4(&s, { 1, 9 }, { 20, 49 }, { 51, 99 });
	cvz_rangeset_free(&s);
	cvz_rangeset_free(&m);

	/* edges at 0 and at the all-ones address */
	cvz_rangeset_add4(&s, 0, V4_MAX);
	cvz_rangeset_add4(&m, 0, 0);
	cvz_rangeset_add4(&m, V4_MAX, V4_MAX);
	assert_int_equal(cvz_rangeset_subtract(&s, &m), 0);
	EXPECT4(&s, { 1, V4_MAX - 1 });
	cvz_rangeset_free(&m);
	cvz_rangeset_add4(&m, 0, V4_MAX);
	assert_int_equal(cvz_rangeset_subtract(&s, &m), 0);
	assert_int_equal(s.n4, 0);
	cvz_rangeset_free(&s);
	cvz_rangeset_free(&m);

	/* an empty side leaves s as it was */
	assert_int_equal(cvz_rangeset_subtract(&s, &m), 0);
	assert_int_equal(s.n4, 0);
	cvz_rangeset_add4(&s, 1, 2);
	assert_int_equal(cvz_rangeset_subtract(&s, &m), 0);
	EXPECT4(&s, { 1, 2 });
	cvz_rangeset_free(&s);

	/* IPv6: all-ones edges, and the families are independent */
	cvz_rangeset_add6(&s, 0, V6_MAX);
	cvz_rangeset_add4(&s, 0, 9);
	cvz_rangeset_add6(&m, 0, 0);
	cvz_rangeset_add6(&m, u128_of(1, 0), u128_of(1, 0));
	cvz_rangeset_add6(&m, V6_MAX, V6_MAX);
	assert_int_equal(cvz_rangeset_subtract(&s, &m), 0);
	expect6(&s,
		(const u128[][2]){
			{ 1, u128_of(0, ~0ULL) },
			{ u128_of(1, 1), V6_MAX - 1 },
		},
		2);
	EXPECT4(&s, { 0, 9 });
	cvz_rangeset_free(&s);
	cvz_rangeset_free(&m);

	/* the carved /8, printed the way nft lists interval elements */
	add_pfx(&s, "10.0.0.0/8");
	add_pfx(&m, "10.1.2.3");
	add_pfx(&m, "10.128.0.0/9");
	assert_int_equal(cvz_rangeset_subtract(&s, &m), 0);
	{
		char b[CVZ_RANGE_STRLEN];

		assert_int_equal(s.n4, 2);
		assert_string_equal(cvz_range4_format(&s.v4[0], b, sizeof(b)),
				    "10.0.0.0-10.1.2.2");
		assert_string_equal(cvz_range4_format(&s.v4[1], b, sizeof(b)),
				    "10.1.2.4-10.127.255.255");
	}
	cvz_rangeset_free(&s);
	cvz_rangeset_free(&m);
}

static void test_overlaps_prefix(void **state)
{
	struct cvz_rangeset s = { 0 };
	struct cvz_prefix p;

	(void)state;
	p = pfx("10.0.0.0/8");
	assert_false(cvz_rangeset_overlaps_prefix(&s, &p)); /* empty set */

	add_pfx(&s, "10.0.0.0/16");
	add_pfx(&s, "10.2.0.0/16");
	add_pfx(&s, "192.0.2.0/24");
	add_pfx(&s, "2001:db8::/32");
	cvz_rangeset_normalize(&s);

	static const struct {
		const char *p;
		bool want;
	} cases[] = {
		{ "10.0.0.0/8", true },     { "10.0.0.0", true },
		{ "10.0.255.255", true },   { "10.1.0.0/16", false },
		{ "10.1.255.255", false },  { "10.2.0.0", true },
		{ "10.3.0.0/16", false },   { "9.255.255.255", false },
		{ "192.0.2.255", true },    { "192.0.3.0", false },
		{ "255.255.255.255", false }, { "0.0.0.0/0", true },
		{ "0.0.0.0", false },       { "2001:db8:1::/48", true },
		{ "2001:db9::1", false },   { "::/0", true },
		{ "::ffff:10.0.0.1", true }, /* unmapped by the parser */
		{ "::a00:1", false },        /* IPv6, not IPv4 */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		p = pfx(cases[i].p);
		if (cvz_rangeset_overlaps_prefix(&s, &p) != cases[i].want) {
			print_error("overlaps %s: want %d\n", cases[i].p, cases[i].want);
			fail();
		}
	}
	p = (struct cvz_prefix){ .family = AF_UNIX };
	assert_false(cvz_rangeset_overlaps_prefix(&s, &p));
	cvz_rangeset_free(&s);
}

static void test_range_format(void **state)
{
	static const struct {
		uint32_t lo, hi;
		const char *want;
	} c4[] = {
		{ 0x0a000000, 0x0affffff, "10.0.0.0/8" },
		{ 0xc0000201, 0xc0000201, "192.0.2.1" },
		{ 0, V4_MAX, "0.0.0.0/0" },
		{ 0, 0, "0.0.0.0" },
		{ V4_MAX, V4_MAX, "255.255.255.255" },
		{ 0x80000000, V4_MAX, "128.0.0.0/1" },
		{ 0x0a000000, 0x0a010202, "10.0.0.0-10.1.2.2" },
		{ 0x0a000000, 0x0a000001, "10.0.0.0/31" },
		{ 0x0a000001, 0x0a000002, "10.0.0.1-10.0.0.2" },
		{ 0x0a000002, 0x0a000005, "10.0.0.2-10.0.0.5" }, /* 4 addresses, unaligned */
		{ 0, 2, "0.0.0.0-0.0.0.2" },
		{ 1, V4_MAX, "0.0.0.1-255.255.255.255" },
		{ 0, V4_MAX - 1, "0.0.0.0-255.255.255.254" },
	};
	static const struct {
		u128 lo, hi;
		const char *want;
	} c6[] = {
		{ 0, V6_MAX, "::/0" },
		{ 1, 1, "::1" },
		{ V6_MAX, V6_MAX, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" },
		{ (u128)0x20010db8 << 96, ((u128)0x20010db8 << 96) | (V6_MAX >> 32),
		  "2001:db8::/32" },
		{ (u128)0x20010db8 << 96, ((u128)0x20010db8 << 96) + 5,
		  "2001:db8::-2001:db8::5" },
		{ 1, V6_MAX,
		  "::1-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" },
		{ (u128)1 << 127, V6_MAX, "8000::/1" },
	};
	char buf[CVZ_RANGE_STRLEN];

	(void)state;
	for (size_t i = 0; i < sizeof(c4) / sizeof(c4[0]); i++) {
		struct cvz_range4 r = { c4[i].lo, c4[i].hi };

		assert_string_equal(cvz_range4_format(&r, buf, sizeof(buf)), c4[i].want);
	}
	for (size_t i = 0; i < sizeof(c6) / sizeof(c6[0]); i++) {
		struct cvz_range6 r = { c6[i].lo, c6[i].hi };

		assert_string_equal(cvz_range6_format(&r, buf, sizeof(buf)), c6[i].want);
	}

	/* two full-length IPv6 addresses fit CVZ_RANGE_STRLEN */
	struct cvz_range6 longest = {
		u128_of(0x1111222233334444ULL, 0x5555666677778888ULL),
		u128_of(0x1111222233334444ULL, 0x555566667777888aULL),
	};

	assert_string_equal(cvz_range6_format(&longest, buf, sizeof(buf)),
			    "1111:2222:3333:4444:5555:6666:7777:8888-"
			    "1111:2222:3333:4444:5555:6666:7777:888a");

	/* truncation keeps the NUL */
	struct cvz_range4 r = { 0x0a000000, 0x0a010202 };

	assert_string_equal(cvz_range4_format(&r, buf, 9), "10.0.0.0");
}

/* ---- randomized comparison with a bitmap model -------------------------
 *
 * All ranges fall inside one window of 4096 addresses, so a bitmap of 4096
 * bits is an exact model of a set. The window sits at 0, in the middle, and
 * at the top of the address space, so the wrap-around edges get exercised. */

#define WIN 4096u
#define ITERATIONS 2000

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(uint32_t n)
{
	/* xorshift64*: same sequence on every libc, unlike rand() */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545f4914f6cdd1dULL) >> 32) % n;
}

struct model {
	bool bit[WIN];
	uint32_t lo[16], hi[16]; /* the ranges as generated, offsets */
	size_t n;
};

static void model_random(struct model *m)
{
	memset(m, 0, sizeof(*m));
	m->n = rnd(9);
	for (size_t i = 0; i < m->n; i++) {
		static const uint32_t spans[] = { 1, 8, 64, 1024 };
		uint32_t lo = rnd(WIN);

		/* bias towards touching the previous range, to test adjacency */
		if (i > 0 && rnd(4) == 0 && m->hi[i - 1] + 1 < WIN)
			lo = m->hi[i - 1] + 1;
		uint32_t hi = lo + rnd(spans[rnd(4)]);

		if (hi >= WIN)
			hi = WIN - 1;
		m->lo[i] = lo;
		m->hi[i] = hi;
		for (uint32_t a = lo; a <= hi; a++)
			m->bit[a] = true;
	}
}

/* Maximal runs of set bits: exactly what a normalised set must hold. */
static size_t model_runs(const bool *bit, uint32_t lo[], uint32_t hi[])
{
	size_t n = 0;

	for (uint32_t a = 0; a < WIN; a++) {
		if (!bit[a])
			continue;
		lo[n] = a;
		while (a + 1 < WIN && bit[a + 1])
			a++;
		hi[n++] = a;
	}
	return n;
}

static void check4(const struct cvz_rangeset *s, const bool *bit, uint32_t base)
{
	uint32_t lo[WIN], hi[WIN];
	size_t n = model_runs(bit, lo, hi);

	assert_int_equal(s->n4, n);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(s->v4[i].lo, base + lo[i]);
		assert_int_equal(s->v4[i].hi, base + hi[i]);
	}
}

static void check6(const struct cvz_rangeset *s, const bool *bit, u128 base)
{
	uint32_t lo[WIN], hi[WIN];
	size_t n = model_runs(bit, lo, hi);

	assert_int_equal(s->n6, n);
	for (size_t i = 0; i < n; i++) {
		assert_u128_equal(s->v6[i].lo, base + lo[i]);
		assert_u128_equal(s->v6[i].hi, base + hi[i]);
	}
}

/* A random prefix inside the window, checked against the model. */
static void check_overlaps(const struct cvz_rangeset *s, const bool *bit,
			   int family, u128 base)
{
	unsigned host = rnd(13); /* 1 .. 4096 addresses */
	uint32_t off = rnd(WIN) & ~((1u << host) - 1);
	u128 a = base + off;
	struct cvz_prefix p = { .family = (uint8_t)family };
	bool want = false;
	int bytes = family == AF_INET ? 4 : 16;

	p.len = (uint8_t)(bytes * 8 - host);
	for (int i = bytes - 1; i >= 0; i--, a >>= 8)
		p.addr[i] = (uint8_t)a;
	for (uint32_t i = off; i < off + (1u << host); i++)
		want = want || bit[i];
	assert_int_equal(cvz_rangeset_overlaps_prefix(s, &p), want);
}

static void test_random_v4(void **state)
{
	static const uint32_t bases[] = { 0, 0x0a000000, V4_MAX - WIN + 1 };

	(void)state;
	for (int it = 0; it < ITERATIONS; it++) {
		uint32_t base = bases[it % 3];
		struct cvz_rangeset s = { 0 }, m = { 0 };
		struct model ms, mm;
		bool diff[WIN];

		model_random(&ms);
		model_random(&mm);
		for (size_t i = 0; i < ms.n; i++)
			assert_int_equal(cvz_rangeset_add4(&s, base + ms.lo[i],
							   base + ms.hi[i]), 0);
		for (size_t i = 0; i < mm.n; i++)
			assert_int_equal(cvz_rangeset_add4(&m, base + mm.lo[i],
							   base + mm.hi[i]), 0);
		cvz_rangeset_normalize(&s);
		cvz_rangeset_normalize(&m);
		check4(&s, ms.bit, base);
		check4(&m, mm.bit, base);
		check_overlaps(&s, ms.bit, AF_INET, base);

		assert_int_equal(cvz_rangeset_subtract(&s, &m), 0);
		for (uint32_t a = 0; a < WIN; a++)
			diff[a] = ms.bit[a] && !mm.bit[a];
		check4(&s, diff, base);
		check_overlaps(&s, diff, AF_INET, base);
		assert_int_equal(s.n6, 0);
		cvz_rangeset_free(&s);
		cvz_rangeset_free(&m);
	}
}

static void test_random_v6(void **state)
{
	const u128 bases[] = { 0, u128_of(0x20010db800000000ULL, 0),
			       V6_MAX - WIN + 1 };

	(void)state;
	for (int it = 0; it < ITERATIONS; it++) {
		u128 base = bases[it % 3];
		struct cvz_rangeset s = { 0 }, m = { 0 };
		struct model ms, mm;
		bool diff[WIN];

		model_random(&ms);
		model_random(&mm);
		for (size_t i = 0; i < ms.n; i++)
			assert_int_equal(cvz_rangeset_add6(&s, base + ms.lo[i],
							   base + ms.hi[i]), 0);
		for (size_t i = 0; i < mm.n; i++)
			assert_int_equal(cvz_rangeset_add6(&m, base + mm.lo[i],
							   base + mm.hi[i]), 0);
		cvz_rangeset_normalize(&s);
		cvz_rangeset_normalize(&m);
		check6(&s, ms.bit, base);
		check6(&m, mm.bit, base);
		check_overlaps(&s, ms.bit, AF_INET6, base);

		assert_int_equal(cvz_rangeset_subtract(&s, &m), 0);
		for (uint32_t a = 0; a < WIN; a++)
			diff[a] = ms.bit[a] && !mm.bit[a];
		check6(&s, diff, base);
		check_overlaps(&s, diff, AF_INET6, base);
		assert_int_equal(s.n4, 0);
		cvz_rangeset_free(&s);
		cvz_rangeset_free(&m);
	}
}

/* ---- scale: the size the agent is built for ----------------------------- */

static void test_million(void **state)
{
	struct cvz_rangeset s = { 0 }, m = { 0 };
	uint32_t *addrs = calloc(1000000, sizeof(*addrs));
	uint64_t before = 0, after = 0;

	(void)state;
	assert_non_null(addrs);
	for (size_t i = 0; i < 1000000; i++) {
		addrs[i] = rnd(UINT32_MAX) & ~0xffu; /* random /24s */
		assert_int_equal(cvz_rangeset_add4(&s, addrs[i], addrs[i] | 0xff), 0);
	}
	for (uint32_t i = 0; i < 1000; i++)
		cvz_rangeset_add4(&m, addrs[i * 997] + 7, addrs[i * 997] + 7);
	cvz_rangeset_normalize(&s);
	cvz_rangeset_normalize(&m);
	for (size_t i = 0; i < s.n4; i++)
		before += (uint64_t)s.v4[i].hi - s.v4[i].lo + 1;
	assert_int_equal(cvz_rangeset_subtract(&s, &m), 0);

	/* sorted, disjoint and never adjacent */
	for (size_t i = 0; i < s.n4; i++) {
		assert_true(s.v4[i].lo <= s.v4[i].hi);
		if (i > 0)
			assert_true(s.v4[i].lo > s.v4[i - 1].hi + 1);
		after += (uint64_t)s.v4[i].hi - s.v4[i].lo + 1;
	}
	/* every hole punched one address out of a /24 of s */
	assert_int_equal(before - after, m.n4);
	assert_true(m.n4 > 900);
	for (size_t i = 0; i < 1000000; i += 101) {
		struct cvz_prefix p = { .family = AF_INET, .len = 32 };
		uint32_t a = addrs[i] + 8;

		p.addr[0] = (uint8_t)(a >> 24);
		p.addr[1] = (uint8_t)(a >> 16);
		p.addr[2] = (uint8_t)(a >> 8);
		p.addr[3] = (uint8_t)a;
		assert_true(cvz_rangeset_overlaps_prefix(&s, &p));
	}
	for (uint32_t i = 0; i < 1000; i++) {
		struct cvz_prefix p = { .family = AF_INET, .len = 32 };
		uint32_t a = addrs[i * 997] + 7;

		p.addr[0] = (uint8_t)(a >> 24);
		p.addr[1] = (uint8_t)(a >> 16);
		p.addr[2] = (uint8_t)(a >> 8);
		p.addr[3] = (uint8_t)a;
		assert_false(cvz_rangeset_overlaps_prefix(&s, &p));
	}
	free(addrs);
	cvz_rangeset_free(&s);
	cvz_rangeset_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_valid),
		cmocka_unit_test(test_parse_bytes),
		cmocka_unit_test(test_parse_invalid),
		cmocka_unit_test(test_parse_why_buf),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_format_round_trip),
		cmocka_unit_test(test_contains_overlaps),
		cmocka_unit_test(test_add_prefix),
		cmocka_unit_test(test_normalize),
		cmocka_unit_test(test_subtract),
		cmocka_unit_test(test_overlaps_prefix),
		cmocka_unit_test(test_range_format),
		cmocka_unit_test(test_random_v4),
		cmocka_unit_test(test_random_v6),
		cmocka_unit_test(test_million),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
