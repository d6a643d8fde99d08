/* Local detection's tracker: attempts counted once per sshd connection
 * whatever the number of lines, the sliding window, sources apart, bounded
 * memory under a spray (and how fast it goes: printed, not asserted),
 * escalation of repeat offenders, the offenders' listing, and refusals. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <cmocka.h>

#include "detect_track.h"

/* Allocation failure on demand: the tracker allocates only through
 * reallocarray(), and this definition takes the place of the C library's
 * in this program. The fail_at-th call from now fails (0: none does). */
static unsigned fail_at;
static unsigned alloc_calls;

void *reallocarray(void *p, size_t n, size_t size)
{
	alloc_calls++;
	if (fail_at && --fail_at == 0) {
		errno = ENOMEM;
		return NULL;
	}
	size_t bytes;
	if (__builtin_mul_overflow(n, size, &bytes)) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc(p, bytes);
}

#define SEC INT64_C(1000000)
#define NO_PORT -1

static const struct detect_limits LIM = {
	.max_failures = 5, .window = 60, .ttl = 3600, .escalate = 2, .max_ttl = 86400,
};

static struct cvz_prefix P(const char *s)
{
	struct cvz_prefix p;
	assert_int_equal(cvz_prefix_parse(s, &p, NULL, NULL, 0), 0);
	return p;
}

/* One sshd line: port NO_PORT for the PAM lines. */
static struct detect_obs line(const char *addr, uint32_t pid, int port, unsigned attempts,
			      unsigned floor, bool ends, int64_t when_us)
{
	return (struct detect_obs){ .source = 0, .addr = P(addr), .when_us = when_us, .pid = pid,
				    .has_port = port >= 0, .port = port >= 0 ? (uint16_t)port : 0,
				    .attempts = attempts, .floor = floor, .ends_connection = ends };
}

static struct detect_obs api(unsigned source, const char *addr, unsigned floor, int64_t when_us)
{
	return (struct detect_obs){ .source = source, .addr = P(addr), .when_us = when_us,
				    .attempts = 1, .floor = floor };
}

static struct detect_verdict feed_lim(struct detect_tracker *t, struct detect_obs o,
				      const struct detect_limits *lim)
{
	struct detect_verdict v;
	memset(&v, 0xa5, sizeof(v));
	assert_int_equal(detect_track_feed(t, &o, lim, &v), 0);
	return v;
}

static struct detect_verdict feed(struct detect_tracker *t, struct detect_obs o)
{
	return feed_lim(t, o, &LIM);
}

/* A verdict as expected, or a failure naming the caller's line. */
#define expect(v, added, in_window, trigger) expect_at(v, added, in_window, trigger, __LINE__)
static void expect_at(struct detect_verdict v, unsigned added, unsigned in_window, bool trigger,
		      int line)
{
	if (v.added != added || v.in_window != in_window || v.trigger != trigger)
		fail_msg("line %d: added %u in_window %u trigger %d, expected %u %u %d", line,
			 v.added, v.in_window, v.trigger, added, in_window, trigger);
}

/* The four lines of one failed password login of an unknown user. Returns
 * the failures they added together; *last gets the last line's verdict. */
static unsigned invalid_user_login(struct detect_tracker *t, const char *addr, uint32_t pid,
				   int port, int64_t when, struct detect_verdict *last)
{
	struct detect_obs lines[] = {
		line(addr, pid, port, 0, 1, false, when),        /* Invalid user */
		line(addr, pid, NO_PORT, 0, 1, false, when + 1), /* pam_unix auth failure */
		line(addr, pid, port, 1, 0, false, when + 2),    /* Failed password */
		line(addr, pid, port, 0, 1, true, when + 3),     /* Connection closed [preauth] */
	};
	unsigned sum = 0;
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		*last = feed(t, lines[i]);
		sum += last->added;
	}
	return sum;
}

static size_t conns_of(const struct detect_tracker *t)
{
	struct detect_track_stats s;
	detect_track_stats(t, &s);
	return s.connections;
}

static void test_one_login_counts_once(void **state)
{
	(void)state;
	struct detect_tracker *t = detect_track_new(16);
	assert_non_null(t);
	const char *a = "203.0.113.7";
	expect(feed(t, line(a, 100, 50000, 0, 1, false, 0)), 1, 1, false);
	assert_int_equal(conns_of(t), 1);
	expect(feed(t, line(a, 100, NO_PORT, 0, 1, false, 1)), 0, 1, false);
	expect(feed(t, line(a, 100, 50000, 1, 0, false, 2)), 0, 1, false);
	/* a second password in the same connection is a second attempt */
	expect(feed(t, line(a, 100, NO_PORT, 0, 1, false, 3)), 0, 1, false);
	expect(feed(t, line(a, 100, 50000, 1, 0, false, 4)), 1, 2, false);
	expect(feed(t, line(a, 100, 50000, 0, 1, true, 5)), 0, 2, false);
	assert_int_equal(conns_of(t), 0);
	detect_track_free(t);
}

static void test_fifth_login_triggers(void **state)
{
	(void)state;
	struct detect_tracker *t = detect_track_new(16);
	struct detect_verdict v;
	const char *a = "198.51.100.9";
	for (unsigned i = 0; i < 4; i++) {
		assert_int_equal(invalid_user_login(t, a, 200 + i, 40000 + (int)i, i * 5 * SEC, &v), 1);
		assert_int_equal(v.in_window, i + 1);
		assert_false(v.trigger);
	}
	/* the fifth login's first line triggers; its other lines are about
	   the attempt already counted */
	expect(feed(t, line(a, 300, 41000, 0, 1, false, 30 * SEC)), 1, 5, true);
	expect(feed(t, line(a, 300, NO_PORT, 0, 1, false, 30 * SEC + 1)), 0, 0, false);
	expect(feed(t, line(a, 300, 41000, 1, 0, false, 30 * SEC + 2)), 0, 0, false);
	expect(feed(t, line(a, 300, 41000, 0, 1, true, 30 * SEC + 3)), 0, 0, false);
	/* reset: counting starts again */
	for (unsigned i = 0; i < 4; i++) {
		assert_int_equal(invalid_user_login(t, a, 400 + i, 42000 + (int)i, 31 * SEC + i, &v), 1);
		assert_int_equal(v.in_window, i + 1);
		assert_false(v.trigger);
	}
	assert_int_equal(invalid_user_login(t, a, 500, 43000, 32 * SEC, &v), 1);
	assert_int_equal(v.in_window, 0); /* the last line, after the trigger */
	detect_track_free(t);
}

static void test_window_slides(void **state)
{
	(void)state;
	struct detect_tracker *t = detect_track_new(16);
	/* 61 s apart with a 60 s window: never more than one at a time */
	for (int i = 0; i < 10; i++)
		expect(feed(t, api(0, "192.0.2.1", 0, i * 61 * SEC)), 1, 1, false);
	/* the window includes its edge: the 5th at exactly 60 s triggers */
	for (int i = 0; i < 4; i++)
		expect(feed(t, api(0, "192.0.2.2", 0, i * 15 * SEC)), 1, (unsigned)i + 1, false);
	expect(feed(t, api(0, "192.0.2.2", 0, 60 * SEC)), 1, 5, true);
	/* ... and a microsecond later the first is out */
	for (int i = 0; i < 4; i++)
		expect(feed(t, api(0, "192.0.2.3", 0, i * 15 * SEC)), 1, (unsigned)i + 1, false);
	expect(feed(t, api(0, "192.0.2.3", 0, 60 * SEC + 1)), 1, 4, false);
	/* 15 s later: 15 is at the edge again, and in */
	expect(feed(t, api(0, "192.0.2.3", 0, 75 * SEC)), 1, 5, true);
	/* a line that adds nothing reports the count without changing it */
	expect(feed(t, api(0, "192.0.2.1", 0, 9 * 61 * SEC + 10 * SEC)), 1, 2, false);
	expect(feed(t, line("192.0.2.1", 7, 22, 0, 0, false, 9 * 61 * SEC + 11 * SEC)), 0, 2, false);
	detect_track_free(t);
}

static void test_reset(void **state)
{
	(void)state;
	struct detect_tracker *t = detect_track_new(16);
	struct cvz_prefix a = P("2001:db8::7");
	/* a trigger forgets the address's failures of every source */
	for (int i = 0; i < 3; i++)
		expect(feed(t, api(1, "2001:db8::7", 0, i * SEC)), 1, (unsigned)i + 1, false);
	for (int i = 0; i < 4; i++)
		expect(feed(t, api(0, "2001:db8::7", 0, i * SEC)), 1, (unsigned)i + 1, false);
	expect(feed(t, api(0, "2001:db8::7", 0, 5 * SEC)), 1, 5, true);
	expect(feed(t, api(1, "2001:db8::7", 0, 6 * SEC)), 1, 1, false);
	expect(feed(t, api(0, "2001:db8::7", 0, 6 * SEC)), 1, 1, false);
	/* detect_track_reset: every source, this address only */
	expect(feed(t, api(0, "2001:db8::8", 0, 6 * SEC)), 1, 1, false);
	detect_track_reset(t, &a);
	expect(feed(t, api(0, "2001:db8::7", 0, 7 * SEC)), 1, 1, false);
	expect(feed(t, api(1, "2001:db8::7", 0, 7 * SEC)), 1, 1, false);
	expect(feed(t, api(0, "2001:db8::8", 0, 7 * SEC)), 1, 2, false);
	/* an unknown address and NULLs are harmless */
	struct cvz_prefix other = P("10.9.9.9");
	detect_track_reset(t, &other);
	detect_track_reset(t, NULL);
	detect_track_reset(NULL, &a);
	detect_track_free(t);
}

/* A PAM line has no port: it belongs to the connection of its pid. */
static void test_pam_without_port(void **state)
{
	(void)state;
	struct detect_tracker *t = detect_track_new(16);
	const char *a = "203.0.113.20";
	/* an existing user: PAM logs before "Failed password ... port": the
	   connection PAM started is the one the port line names */
	expect(feed(t, line(a, 100, NO_PORT, 0, 1, false, 0)), 1, 1, false);
	expect(feed(t, line(a, 100, 5555, 1, 0, false, 1)), 0, 1, false);
	assert_int_equal(conns_of(t), 1);
	expect(feed(t, line(a, 100, NO_PORT, 0, 1, false, 2)), 0, 1, false);
	expect(feed(t, line(a, 100, 5555, 1, 0, false, 3)), 1, 2, false);
	expect(feed(t, line(a, 100, 5555, 0, 1, true, 4)), 0, 2, false);
	assert_int_equal(conns_of(t), 0);
	/* a PAM line alone is one attempt; the next PAM line of the same pid
	   is about the same connection */
	expect(feed(t, line("203.0.113.21", 100, NO_PORT, 0, 1, false, 5)), 1, 1, false);
	expect(feed(t, line("203.0.113.21", 100, NO_PORT, 0, 1, false, 6)), 0, 1, false);
	detect_track_free(t);
}

/* keyboard-interactive: PAM runs in a child with a pid of its own. */
static void test_pam_other_pid(void **state)
{
	(void)state;
	struct detect_tracker *t = detect_track_new(16);
	const char *a = "203.0.113.30";
	expect(feed(t, line(a, 100, 5000, 0, 1, false, 0)), 1, 1, false);
	expect(feed(t, line(a, 101, NO_PORT, 0, 1, false, 1)), 0, 1, false); /* child */
	expect(feed(t, line(a, 100, 5000, 1, 0, false, 2)), 0, 1, false);
	assert_int_equal(conns_of(t), 1);
	/* two connections: a PAM line goes to the one of its pid, even when
	   the other was seen more recently ... */
	expect(feed(t, line(a, 200, 6000, 0, 1, false, 3)), 1, 2, false);
	expect(feed(t, line(a, 100, 5000, 0, 0, false, 4)), 0, 2, false); /* 100 most recent */
	expect(feed(t, line(a, 200, NO_PORT, 0, 3, false, 5)), 2, 4, false); /* 200: 1 -> 3 */
	expect(feed(t, line(a, 200, 6000, 1, 0, false, 6)), 0, 4, false);
	/* 100's connection still at 1: its second password counts */
	expect(feed(t, line(a, 100, 5000, 1, 0, false, 7)), 1, 5, true);
	/* ... and one of an unknown pid to the most recently seen */
	expect(feed(t, line(a, 200, 6000, 1, 0, false, 8)), 0, 0, false); /* 200 at 3 */
	expect(feed(t, line(a, 999, NO_PORT, 0, 4, false, 9)), 1, 1, false); /* 200: 3 -> 4 */
	expect(feed(t, line(a, 100, 5000, 1, 0, false, 10)), 1, 2, false);  /* 100: 2 -> 3 */
	detect_track_free(t);
}

/* "PAM 2 more authentication failures" after one counted attempt. */
static void test_pam_more_floor(void **state)
{
	(void)state;
	struct detect_tracker *t = detect_track_new(16);
	const char *a = "198.51.100.40";
	expect(feed(t, line(a, 7, 2222, 1, 0, false, 0)), 1, 1, false);
	expect(feed(t, line(a, 7, NO_PORT, 0, 3, false, 1)), 2, 3, false);
	/* a lower floor, or the same again, adds nothing */
	expect(feed(t, line(a, 7, NO_PORT, 0, 3, false, 2)), 0, 3, false);
	expect(feed(t, line(a, 7, 2222, 0, 1, true, 3)), 0, 3, false);
	/* lines reporting fewer than the floor: their sum passes it later */
	expect(feed(t, line(a, 8, 2223, 0, 3, false, 4)), 3, 6, true);
	for (int i = 0; i < 3; i++)
		expect(feed(t, line(a, 8, 2223, 1, 0, false, 5 + i)), 0, 0, false);
	expect(feed(t, line(a, 8, 2223, 1, 0, false, 9)), 1, 1, false);
	detect_track_free(t);
}

static void test_concurrent_connections(void **state)
{
	(void)state;
	struct detect_tracker *t = detect_track_new(16);
	const char *a = "2001:db8:5::1";
	expect(feed(t, line(a, 10, 1000, 0, 1, false, 0)), 1, 1, false);
	expect(feed(t, line(a, 20, 1001, 0, 1, false, 1)), 1, 2, false);
	assert_int_equal(conns_of(t), 2);
	expect(feed(t, line(a, 10, NO_PORT, 0, 1, false, 2)), 0, 2, false);
	expect(feed(t, line(a, 20, NO_PORT, 0, 1, false, 3)), 0, 2, false);
	expect(feed(t, line(a, 10, 1000, 1, 0, false, 4)), 0, 2, false);
	expect(feed(t, line(a, 20, 1001, 1, 0, false, 5)), 0, 2, false);
	expect(feed(t, line(a, 20, 1001, 1, 0, false, 6)), 1, 3, false);
	expect(feed(t, line(a, 10, 1000, 0, 1, true, 7)), 0, 3, false);
	assert_int_equal(conns_of(t), 1);
	expect(feed(t, line(a, 20, 1001, 0, 1, true, 8)), 0, 3, false);
	assert_int_equal(conns_of(t), 0);
	/* the same pid and port on another address is another connection */
	expect(feed(t, line("2001:db8:5::2", 20, 1001, 1, 0, false, 9)), 1, 1, false);
	detect_track_free(t);
}

static void test_pid_reuse(void **state)
{
	(void)state;
	struct detect_tracker *t = detect_track_new(16);
	const char *a = "192.0.2.50";
	struct detect_verdict v;
	assert_int_equal(invalid_user_login(t, a, 300, 7000, 0, &v), 1);
	/* the connection ended: the same pid and port are a new one */
	expect(feed(t, line(a, 300, 7000, 0, 1, false, 10)), 1, 2, false);
	/* not ended: the same connection */
	expect(feed(t, line(a, 300, 7000, 0, 1, false, 11)), 0, 2, false);
	/* a connection no line mentioned for 600 s is over, even without an
	   end line: it is dropped when the journal's time passes it */
	expect(feed(t, line("192.0.2.51", 1, 1, 0, 1, false, 700 * SEC)), 1, 1, false);
	assert_int_equal(conns_of(t), 1);
	expect(feed(t, line(a, 300, 7000, 1, 0, false, 700 * SEC + 1)), 1, 1, false);
	/* a window longer than 600 s keeps connections as long */
	struct detect_limits longer = LIM;
	longer.window = 1000;
	expect(feed_lim(t, line(a, 301, 7001, 0, 1, false, 701 * SEC), &longer), 1, 2, false);
	expect(feed_lim(t, line(a, 301, 7001, 0, 1, false, 1600 * SEC), &longer), 0, 2, false);
	expect(feed_lim(t, line(a, 301, 7001, 0, 1, false, 2601 * SEC), &longer), 1, 1, false);
	/* a connection whose time is over is never matched, also before it
	   is dropped (lazily, in the order last seen: 10.0.0.61's is first) */
	expect(feed(t, line("10.0.0.61", 1, 1, 0, 1, false, 5000 * SEC)), 1, 1, false);
	expect(feed(t, line("10.0.0.60", 6, 6, 0, 1, false, 4000 * SEC)), 1, 1, false);
	expect(feed(t, line("10.0.0.60", 7, 7, 0, 1, false, 4000 * SEC)), 1, 2, false);
	assert_int_equal(conns_of(t), 3);
	expect(feed(t, line("10.0.0.60", 6, 6, 0, 1, false, 4599 * SEC)), 0, 0, false);
	expect(feed(t, line("10.0.0.60", 7, 7, 0, 1, false, 4601 * SEC)), 1, 1, false);
	detect_track_free(t);
}

/* API events have no connection: each counts as it is. */
static void test_api_events(void **state)
{
	(void)state;
	struct detect_tracker *t = detect_track_new(16);
	const char *a = "203.0.113.60";
	expect(feed(t, api(1, a, 0, 0)), 1, 1, false);
	expect(feed(t, api(1, a, 0, 0)), 1, 2, false); /* identical: still two */
	assert_int_equal(conns_of(t), 0);
	/* a high event counts max_failures at once */
	expect(feed(t, api(1, a, 5, SEC)), 5, 7, true);
	expect(feed(t, api(1, a, 0, 2 * SEC)), 1, 1, false);
	/* alone, too */
	expect(feed(t, api(1, "203.0.113.61", 5, 0)), 5, 5, true);
	/* attempts above the floor count */
	struct detect_obs o = api(1, "203.0.113.62", 0, 0);
	o.attempts = 3;
	expect(feed(t, o), 3, 3, false);
	o.attempts = 0;
	expect(feed(t, o), 0, 3, false);
	/* a huge count is no overflow */
	o.attempts = UINT32_MAX;
	expect(feed(t, o), UINT32_MAX, UINT32_MAX, true);
	detect_track_free(t);
}

static void test_sources_apart(void **state)
{
	(void)state;
	struct detect_tracker *t = detect_track_new(16);
	const char *a = "192.0.2.70";
	for (int i = 0; i < 4; i++) {
		expect(feed(t, api(0, a, 0, i * SEC)), 1, (unsigned)i + 1, false);
		expect(feed(t, api(2, a, 0, i * SEC)), 1, (unsigned)i + 1, false);
	}
	struct detect_track_stats s;
	detect_track_stats(t, &s);
	assert_int_equal(s.addresses, 2);
	/* each source with its own limits */
	struct detect_limits three = LIM;
	three.max_failures = 3;
	three.window = 2;
	for (int i = 0; i < 2; i++)
		expect(feed_lim(t, api(3, a, 0, i * SEC), &three), 1, (unsigned)i + 1, false);
	expect(feed_lim(t, api(3, a, 0, 5 * SEC), &three), 1, 1, false); /* window 2 s */
	expect(feed_lim(t, api(3, a, 0, 6 * SEC), &three), 1, 2, false);
	expect(feed_lim(t, api(3, a, 0, 7 * SEC), &three), 1, 3, true);
	/* connections are per source too */
	struct detect_obs o = line(a, 40, 400, 0, 1, false, 8 * SEC);
	expect(feed(t, o), 1, 1, false); /* source 0's count was reset */
	o.source = 1;
	expect(feed(t, o), 1, 1, false);
	expect(feed(t, o), 0, 1, false);
	/* the limits of a source may change: a larger max_failures keeps the
	   failures counted so far */
	struct detect_limits more = LIM;
	more.max_failures = 8;
	for (int i = 0; i < 4; i++)
		expect(feed(t, api(2, "192.0.2.71", 0, 10 * SEC)), 1, (unsigned)i + 1, false);
	for (int i = 4; i < 7; i++)
		expect(feed_lim(t, api(2, "192.0.2.71", 0, 10 * SEC), &more), 1, (unsigned)i + 1,
		       false);
	expect(feed_lim(t, api(2, "192.0.2.71", 0, 10 * SEC), &more), 1, 8, true);
	/* a smaller one: the failures beyond it count up to it */
	for (int i = 0; i < 7; i++)
		expect(feed_lim(t, api(2, "192.0.2.72", 0, 10 * SEC), &more), 1, (unsigned)i + 1,
		       false);
	expect(feed(t, api(2, "192.0.2.72", 0, 10 * SEC)), 1, 6, true);
	detect_track_free(t);
}

/* Journal files interleave: an entry may be older than the newest seen. It
 * counts when it falls within the window of the address's newest failure
 * (or of itself, if later), and nowhere otherwise. */
static void test_out_of_order(void **state)
{
	(void)state;
	struct detect_tracker *t = detect_track_new(16);
	const char *a = "198.51.100.80";
	expect(feed(t, api(0, a, 0, 100 * SEC)), 1, 1, false);
	expect(feed(t, api(0, a, 0, 120 * SEC)), 1, 2, false);
	expect(feed(t, api(0, a, 0, 110 * SEC)), 1, 3, false); /* late, in the window */
	expect(feed(t, api(0, a, 0, 59 * SEC)), 1, 3, false);  /* late, before it */
	expect(feed(t, api(0, a, 0, 60 * SEC)), 1, 4, false);  /* at its edge */
	expect(feed(t, api(0, a, 0, 61 * SEC)), 1, 5, true);
	/* the newest decides: a late entry does not slide the window back */
	expect(feed(t, api(0, a, 0, 200 * SEC)), 1, 1, false);
	expect(feed(t, api(0, a, 0, 150 * SEC)), 1, 2, false);
	expect(feed(t, api(0, a, 0, 139 * SEC)), 1, 2, false);
	expect(feed(t, api(0, a, 0, 201 * SEC)), 1, 3, false);
	/* a later one slides out the late ones it leaves behind */
	expect(feed(t, api(0, a, 0, 211 * SEC)), 1, 3, false); /* 150 is out */
	/* sshd: a late line of a connection adds its attempt all the same */
	expect(feed(t, line("198.51.100.81", 9, 9, 1, 0, false, 500 * SEC)), 1, 1, false);
	expect(feed(t, line("198.51.100.81", 9, 9, 1, 0, false, 400 * SEC)), 1, 1, false);
	expect(feed(t, line("198.51.100.81", 9, 9, 1, 0, false, 499 * SEC)), 1, 2, false);
	/* times before the epoch and at the extremes are no overflow */
	expect(feed(t, api(0, "198.51.100.82", 0, INT64_MIN)), 1, 1, false);
	expect(feed(t, api(0, "198.51.100.82", 0, INT64_MAX)), 1, 1, false);
	expect(feed(t, api(0, "198.51.100.82", 0, INT64_MIN)), 1, 1, false);
	expect(feed(t, api(0, "198.51.100.82", 0, INT64_MAX)), 1, 2, false);
	detect_track_free(t);
}

/* max_tracked 3: the fourth address forgets the least recently seen. */
static void test_eviction_lru(void **state)
{
	(void)state;
	struct detect_tracker *t = detect_track_new(3);
	struct detect_track_stats s;
	expect(feed(t, api(0, "10.0.0.1", 0, 0)), 1, 1, false); /* A */
	expect(feed(t, api(0, "10.0.0.2", 0, 0)), 1, 1, false); /* B */
	expect(feed(t, api(0, "10.0.0.3", 0, 0)), 1, 1, false); /* C */
	expect(feed(t, api(0, "10.0.0.1", 0, 1)), 1, 2, false); /* A again: B is least recent */
	detect_track_stats(t, &s);
	assert_int_equal(s.addresses, 3);
	assert_int_equal(s.evicted, 0);
	expect(feed(t, api(0, "10.0.0.4", 0, 2)), 1, 1, false); /* D forgets B */
	detect_track_stats(t, &s);
	assert_int_equal(s.addresses, 3);
	assert_int_equal(s.evicted, 1);
	expect(feed(t, api(0, "10.0.0.1", 0, 3)), 1, 3, false); /* A kept */
	expect(feed(t, api(0, "10.0.0.3", 0, 3)), 1, 2, false); /* C kept; D least recent */
	expect(feed(t, api(0, "10.0.0.2", 0, 4)), 1, 1, false); /* B was forgotten; forgets D */
	expect(feed(t, api(0, "10.0.0.1", 0, 5)), 1, 4, false); /* A kept */
	expect(feed(t, api(0, "10.0.0.4", 0, 5)), 1, 1, false); /* D was; forgets C */
	expect(feed(t, api(0, "10.0.0.2", 0, 5)), 1, 2, false); /* B kept */
	/* an address with connections takes them along */
	expect(feed(t, line("10.0.0.5", 55, 5, 0, 1, false, 6)), 1, 1, false); /* forgets A */
	expect(feed(t, api(0, "10.0.0.6", 0, 7)), 1, 1, false);
	expect(feed(t, api(0, "10.0.0.7", 0, 7)), 1, 1, false);
	assert_int_equal(conns_of(t), 1);
	expect(feed(t, api(0, "10.0.0.8", 0, 7)), 1, 1, false); /* forgets 10.0.0.5 */
	assert_int_equal(conns_of(t), 0);
	detect_track_stats(t, &s);
	assert_int_equal(s.evicted, 7);
	detect_track_free(t);

	/* connections too: three of one address, room for two. A floor line
	   tells whether its connection is still known (0) or not (1). */
	t = detect_track_new(2);
	const char *a = "10.1.0.1";
	expect(feed(t, line(a, 1, 1, 0, 1, false, 0)), 1, 1, false);
	expect(feed(t, line(a, 2, 2, 0, 1, false, 1)), 1, 2, false);
	expect(feed(t, line(a, 1, 1, 0, 1, false, 2)), 0, 2, false); /* 2 is least recent */
	expect(feed(t, line(a, 3, 3, 0, 1, false, 3)), 1, 3, false); /* forgets 2 */
	assert_int_equal(conns_of(t), 2);
	expect(feed(t, line(a, 1, 1, 0, 1, false, 4)), 0, 3, false); /* 1 kept */
	expect(feed(t, line(a, 2, 2, 0, 1, false, 5)), 1, 4, false); /* 2 new; forgets 3 */
	expect(feed(t, line(a, 1, 1, 0, 1, false, 6)), 0, 4, false); /* 1 kept */
	expect(feed(t, line(a, 3, 3, 0, 1, false, 7)), 1, 5, true);  /* 3 new */
	detect_track_stats(t, &s);
	assert_int_equal(s.evicted, 0); /* addresses only */
	detect_track_free(t);
}

/* An address keeps at most 128 connections (detect_track.h): the least
 * recently seen of it goes first. */
static void test_connections_per_address(void **state)
{
	(void)state;
	struct detect_tracker *t = detect_track_new(1024);
	struct detect_limits lim = LIM;
	lim.max_failures = 100;
	lim.window = 86400;
	const char *a = "2001:db8:77::1";
	for (int i = 0; i < 128; i++) /* the first three are Invalid-user lines */
		expect(feed_lim(t, line(a, 1000 + (uint32_t)i, 10000 + i, 0, i < 3, false, i), &lim),
		       i < 3, i < 3 ? (unsigned)i + 1 : 3, false);
	assert_int_equal(conns_of(t), 128);
	expect(feed_lim(t, line(a, 999, 9999, 0, 0, false, 200), &lim), 0, 3, false);
	assert_int_equal(conns_of(t), 128);
	/* 1001 was kept: its line is about the attempt counted */
	expect(feed_lim(t, line(a, 1001, 10001, 0, 1, false, 300), &lim), 0, 3, false);
	/* 1000 was forgotten: the same line of it counts once more (and
	   forgets 1002, now the least recently seen) */
	expect(feed_lim(t, line(a, 1000, 10000, 0, 1, false, 301), &lim), 1, 4, false);
	assert_int_equal(conns_of(t), 128);
	expect(feed_lim(t, line(a, 1002, 10002, 0, 1, false, 302), &lim), 1, 5, false);
	expect(feed_lim(t, line(a, 1001, 10001, 0, 1, false, 303), &lim), 0, 5, false);
	detect_track_free(t);
}

static double seconds_since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* A million addresses, each with one sshd connection, through room for
 * 65536: once the tables are full the memory does not grow. */
static void test_spray_memory_flat(void **state)
{
	(void)state;
	enum { MAX = 65536, SPRAY = 1000000 };
	struct detect_tracker *t = detect_track_new(MAX);
	struct detect_track_stats s;
	size_t full = 0;
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (uint32_t i = 0; i < SPRAY; i++) {
		struct detect_obs o = {
			.addr = { .family = AF_INET, .len = 32,
				  .addr = { 100, (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i } },
			.when_us = (int64_t)i * 100, .pid = 1000 + i % 50000, .has_port = true,
			.port = (uint16_t)(1024 + i % 60000), .floor = 1,
		};
		if (i % 3 == 0) { /* some IPv6 */
			o.addr.family = AF_INET6;
			o.addr.len = 128;
			o.addr.addr[0] = 0x20;
			o.addr.addr[1] = 0x01;
			o.addr.addr[15] = (uint8_t)i;
			o.addr.addr[14] = (uint8_t)(i >> 8);
			o.addr.addr[13] = (uint8_t)(i >> 16);
		}
		struct detect_verdict v;
		if (detect_track_feed(t, &o, &LIM, &v) != 0 || v.added != 1 || v.in_window != 1)
			fail_msg("observation %u: added %u in_window %u", i, v.added, v.in_window);
		if (i + 1 == MAX) {
			detect_track_stats(t, &s);
			full = s.bytes;
		} else if (i + 1 > MAX && (i % 4096 == 0 || i + 1 == SPRAY)) {
			detect_track_stats(t, &s);
			if (s.bytes != full)
				fail_msg("after %u observations: %zu bytes, %zu when full", i + 1,
					 s.bytes, full);
		}
	}
	double secs = seconds_since(&t0);
	detect_track_stats(t, &s);
	assert_int_equal(s.addresses, MAX);
	assert_int_equal(s.connections, MAX);
	assert_int_equal(s.evicted, SPRAY - MAX);
	assert_int_equal(s.bytes, full);
	/* the accounting covers the records, the indexes and the times: at
	   least 48 + 40 bytes an address and 40 a connection, and not wild */
	assert_true(s.bytes >= (size_t)MAX * (48 + 40 + 40));
	assert_true(s.bytes <= (size_t)MAX * 400);
	printf("[ INFO     ] spray: %d observations in %.3f s (%.0f/s), %zu bytes for %d addresses "
	       "and connections (%.0f bytes each)\n",
	       SPRAY, secs, SPRAY / secs, s.bytes, MAX, (double)s.bytes / MAX);
	/* and it still counts */
	expect(feed(t, api(0, "192.0.2.99", 0, 0)), 1, 1, false);
	expect(feed(t, api(0, "192.0.2.99", 0, 0)), 1, 2, false);
	detect_track_free(t);
}

static void test_escalation(void **state)
{
	(void)state;
	struct detect_tracker *t = detect_track_new(16);
	struct cvz_prefix a = P("203.0.113.90");
	uint32_t off = 0;
	int64_t now = 1700000000;
	uint64_t want[] = { 3600, 7200, 14400, 28800, 57600, 86400, 86400, 86400 };
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		uint64_t ttl = detect_track_next_ttl(t, &a, now, &LIM, &off);
		assert_int_equal(ttl, want[i]);
		assert_int_equal(off, i + 1);
		struct detect_offender o = { .addr = a, .blocked_at = now, .ttl = ttl, .offences = off };
		assert_int_equal(detect_track_offender(t, &o), 0);
		now += (int64_t)ttl + 600; /* blocked again 10 minutes after */
	}
	/* still blocked: a repeat too */
	assert_int_equal(detect_track_next_ttl(t, &a, now - 700, &LIM, NULL), 86400);
	/* quiet for max_ttl after the block ended: a first offence again */
	struct detect_offender o = { .addr = a, .blocked_at = 1000, .ttl = 7200, .offences = 2 };
	assert_int_equal(detect_track_offender(t, &o), 0);
	assert_int_equal(detect_track_next_ttl(t, &a, 1000 + 7200 + 86400 - 1, &LIM, &off), 14400);
	assert_int_equal(off, 3);
	assert_int_equal(detect_track_next_ttl(t, &a, 1000 + 7200 + 86400, &LIM, &off), 3600);
	assert_int_equal(off, 1);
	/* another address is a first offence */
	struct cvz_prefix b = P("203.0.113.91");
	assert_int_equal(detect_track_next_ttl(t, &b, 5000, &LIM, &off), 3600);
	assert_int_equal(off, 1);
	/* escalate 1: the same again; a repeat never below the first ttl */
	struct detect_limits flat = LIM;
	flat.escalate = 1;
	assert_int_equal(detect_track_next_ttl(t, &a, 9000, &flat, NULL), 7200);
	struct detect_limits raised = LIM;
	raised.ttl = 20000;
	assert_int_equal(detect_track_next_ttl(t, &a, 9000, &raised, NULL), 20000);
	/* overflow: huge ttl times escalate, a block ending past any time */
	struct detect_limits huge = { .max_failures = 5, .window = 60, .ttl = 1, .escalate = 100,
				      .max_ttl = UINT64_MAX };
	o = (struct detect_offender){ .addr = a, .blocked_at = INT64_MAX - 10,
				      .ttl = UINT64_MAX / 2, .offences = UINT32_MAX };
	assert_int_equal(detect_track_offender(t, &o), 0);
	assert_true(detect_track_next_ttl(t, &a, INT64_MAX, &huge, &off) == UINT64_MAX);
	assert_int_equal(off, UINT32_MAX);
	huge.max_ttl = UINT64_MAX - 1;
	assert_true(detect_track_next_ttl(t, &a, INT64_MIN, &huge, &off) == UINT64_MAX - 1);
	o = (struct detect_offender){ .addr = a, .blocked_at = INT64_MIN, .ttl = 1, .offences = 1 };
	assert_int_equal(detect_track_offender(t, &o), 0);
	assert_int_equal(detect_track_next_ttl(t, &a, INT64_MAX, &LIM, &off), 3600);
	assert_int_equal(off, 1);
	assert_int_equal(detect_track_next_ttl(t, &a, INT64_MIN, &LIM, &off), 3600); /* 1 * 2 */
	assert_int_equal(off, 2);
	/* no tracker: a first offence */
	assert_int_equal(detect_track_next_ttl(NULL, &a, 0, &LIM, &off), 3600);
	detect_track_free(t);
}

static int offender_order(const void *pa, const void *pb)
{
	const struct detect_offender *a = pa, *b = pb;
	if (a->blocked_at != b->blocked_at)
		return a->blocked_at > b->blocked_at ? -1 : 1;
	if (a->ttl != b->ttl)
		return a->ttl > b->ttl ? -1 : 1;
	return memcmp(a->addr.addr, b->addr.addr, 16);
}

static bool same_offender(const struct detect_offender *a, const struct detect_offender *b)
{
	return a->addr.family == b->addr.family && a->addr.len == b->addr.len &&
	       memcmp(a->addr.addr, b->addr.addr, 16) == 0 && a->blocked_at == b->blocked_at &&
	       a->ttl == b->ttl && a->offences == b->offences;
}

static void test_offenders_listing(void **state)
{
	(void)state;
	struct detect_tracker *t = detect_track_new(8);
	struct detect_offender out[8];
	struct detect_offender recs[] = {
		{ .addr = P("10.2.0.1"), .blocked_at = 1000, .ttl = 3600, .offences = 1 },
		{ .addr = P("10.2.0.2"), .blocked_at = 5000, .ttl = 3600, .offences = 1 },
		{ .addr = P("10.2.0.3"), .blocked_at = 3000, .ttl = 7200, .offences = 2 },
		{ .addr = P("10.2.0.4"), .blocked_at = 3000, .ttl = 3600, .offences = 1 },
		{ .addr = P("10.2.0.5"), .blocked_at = 3000, .ttl = 3600, .offences = 1 },
	};
	for (size_t i = 0; i < 5; i++)
		assert_int_equal(detect_track_offender(t, &recs[i]), 0);
	/* at 92000 with max_ttl 86400: 10.2.0.1's block ended at 4600, more
	   than 86400 s before; 10.2.0.4's at 6600, less */
	size_t n = detect_track_offenders(t, 92000, 86400, out, 8);
	assert_int_equal(n, 4);
	const char *order[] = { "10.2.0.2", "10.2.0.3", "10.2.0.4", "10.2.0.5" };
	for (size_t i = 0; i < n; i++) {
		char buf[CVZ_PREFIX_STRLEN];
		assert_string_equal(cvz_prefix_format(&out[i].addr, buf, sizeof(buf)), order[i]);
	}
	assert_int_equal(out[1].ttl, 7200);
	assert_int_equal(out[1].offences, 2);
	/* bounded by max: the most recent */
	assert_int_equal(detect_track_offenders(t, 92000, 86400, out, 2), 2);
	assert_int_equal(out[0].blocked_at, 5000);
	assert_int_equal(out[1].ttl, 7200);
	assert_int_equal(detect_track_offenders(t, 92000, 86400, out, 0), 0);
	assert_int_equal(detect_track_offenders(t, 93000, 86400, out, 8), 2);
	assert_int_equal(detect_track_offenders(t, 0, 86400, out, 8), 5);
	/* recording replaces */
	recs[0].blocked_at = 90000;
	assert_int_equal(detect_track_offender(t, &recs[0]), 0);
	assert_int_equal(detect_track_offenders(t, 92000, 86400, out, 8), 5);
	assert_int_equal(out[0].blocked_at, 90000);
	struct detect_track_stats s;
	detect_track_stats(t, &s);
	assert_int_equal(s.offenders, 5);
	/* at most max_tracked: the least recently recorded goes */
	for (int i = 0; i < 5; i++) {
		struct detect_offender o = { .addr = P("10.3.0.1"), .blocked_at = 100 + i, .ttl = 60,
					     .offences = 1 };
		o.addr.addr[3] = (uint8_t)(1 + i);
		assert_int_equal(detect_track_offender(t, &o), 0);
	}
	detect_track_stats(t, &s);
	assert_int_equal(s.offenders, 8);
	n = detect_track_offenders(t, 0, 86400, out, 8);
	assert_int_equal(n, 8);
	for (size_t i = 0; i < n; i++) /* 10.2.0.2 and .3 were recorded longest ago */
		assert_false(out[i].addr.addr[1] == 2 &&
			     (out[i].addr.addr[3] == 2 || out[i].addr.addr[3] == 3));
	detect_track_free(t);

	/* against a plain sort: many records, a small max, ties in time */
	t = detect_track_new(4096);
	static struct detect_offender all[3000], got[37];
	size_t live = 0;
	srand(7);
	for (int i = 0; i < 3000; i++) {
		struct detect_offender o = { .addr = P("2001:db8::"), .blocked_at = rand() % 500,
					     .ttl = (uint64_t)(rand() % 3), .offences = 1 };
		o.addr.addr[14] = (uint8_t)(i >> 8);
		o.addr.addr[15] = (uint8_t)i;
		assert_int_equal(detect_track_offender(t, &o), 0);
		if (o.blocked_at + (int64_t)o.ttl + 100 > 400) /* in reach at 400, max_ttl 100 */
			all[live++] = o;
	}
	qsort(all, live, sizeof(all[0]), offender_order);
	n = detect_track_offenders(t, 400, 100, got, 37);
	assert_int_equal(n, 37);
	for (size_t i = 0; i < n; i++)
		assert_true(same_offender(&got[i], &all[i]));
	/* deterministic */
	struct detect_offender again[37];
	assert_int_equal(detect_track_offenders(t, 400, 100, again, 37), 37);
	for (size_t i = 0; i < n; i++)
		assert_true(same_offender(&again[i], &got[i]));
	detect_track_free(t);
}

static void test_refusals(void **state)
{
	(void)state;
	assert_null(detect_track_new(0));
	assert_null(detect_track_new(DETECT_TRACKED_MAX + 1));
	struct detect_tracker *t = detect_track_new(DETECT_TRACKED_MAX);
	assert_non_null(t);
	detect_track_free(t);
	detect_track_free(NULL);
	t = detect_track_new(4);
	struct detect_obs o = api(0, "192.0.2.1", 0, 0);
	struct detect_verdict v;
	o.source = DETECT_SOURCES_MAX;
	assert_int_equal(detect_track_feed(t, &o, &LIM, &v), -EINVAL);
	o.source = 0;
	struct detect_limits bad[] = { LIM, LIM, LIM, LIM, LIM, LIM, LIM, LIM };
	bad[0].max_failures = 0;
	bad[1].max_failures = DETECT_MAX_FAILURES_MAX + 1;
	bad[2].window = 0;
	bad[3].window = 86401;
	bad[4].escalate = 0;
	bad[5].escalate = 101;
	bad[6].ttl = 0;
	bad[7].max_ttl = LIM.ttl - 1;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(detect_track_feed(t, &o, &bad[i], &v), -EINVAL);
	struct detect_limits edge = { .max_failures = DETECT_MAX_FAILURES_MAX, .window = 86400,
				      .ttl = 1, .escalate = 100, .max_ttl = 1 };
	assert_int_equal(detect_track_feed(t, &o, &edge, &v), 0);
	struct detect_obs nofamily = o;
	nofamily.addr.family = 0;
	assert_int_equal(detect_track_feed(t, &nofamily, &LIM, &v), -EINVAL);
	nofamily.addr.family = AF_INET;
	nofamily.addr.len = 33;
	assert_int_equal(detect_track_feed(t, &nofamily, &LIM, &v), -EINVAL);
	assert_int_equal(detect_track_feed(NULL, &o, &LIM, &v), -EINVAL);
	assert_int_equal(detect_track_feed(t, NULL, &LIM, &v), -EINVAL);
	assert_int_equal(detect_track_feed(t, &o, NULL, &v), -EINVAL);
	assert_int_equal(detect_track_feed(t, &o, &LIM, NULL), -EINVAL);
	/* nothing was counted by the refused ones */
	struct detect_track_stats s;
	detect_track_stats(t, &s);
	assert_int_equal(s.addresses, 1);
	expect(feed(t, o), 1, 2, false);
	assert_int_equal(detect_track_offender(t, NULL), -EINVAL);
	assert_int_equal(detect_track_offender(NULL, NULL), -EINVAL);
	assert_int_equal(detect_track_offenders(NULL, 0, 1, NULL, 0), 0);
	detect_track_stats(NULL, &s);
	assert_int_equal(s.addresses, 0);
	detect_track_stats(t, NULL);
	/* stray bytes past an IPv4 address make no second address */
	struct detect_obs stray = o;
	stray.addr.addr[10] = 0x55;
	expect(feed(t, stray), 1, 3, false);
	detect_track_free(t);
}

/* Out of memory at each allocation a change needs, one after the other,
 * each time on a tracker set up afresh: -ENOMEM and nothing changed (the
 * same change then gives what it gives without the failure). */
static void check_enomem_each(struct detect_tracker *(*setup)(void), struct detect_obs o,
			      const struct detect_limits *lim, struct detect_verdict want,
			      unsigned allocations)
{
	unsigned k;
	for (k = 1;; k++) {
		struct detect_tracker *t = setup();
		struct detect_track_stats before, after;
		struct detect_verdict v;
		detect_track_stats(t, &before);
		fail_at = k;
		int r = detect_track_feed(t, &o, lim, &v);
		bool hit = fail_at == 0;
		fail_at = 0;
		if (!hit) {
			assert_int_equal(r, 0);
			expect(v, want.added, want.in_window, want.trigger);
			detect_track_free(t);
			break;
		}
		assert_int_equal(r, -ENOMEM);
		detect_track_stats(t, &after);
		assert_int_equal(after.addresses, before.addresses);
		assert_int_equal(after.connections, before.connections);
		assert_int_equal(after.evicted, before.evicted);
		expect(feed_lim(t, o, lim), want.added, want.in_window, want.trigger);
		detect_track_free(t);
	}
	assert_int_equal(k - 1, allocations); /* each of them failed once */
}

static struct detect_tracker *empty(void)
{
	struct detect_tracker *t = detect_track_new(1000);
	assert_non_null(t);
	return t;
}

/* 32 addresses with a connection each: the tables are full */
static struct detect_tracker *thirty_two(void)
{
	struct detect_tracker *t = empty();
	for (int i = 1; i <= 32; i++) {
		char a[32];
		snprintf(a, sizeof(a), "192.0.2.%d", i);
		expect(feed(t, line(a, 5, 5, 0, 1, false, 0)), 1, 1, false);
	}
	return t;
}

static struct detect_tracker *two_failures(void)
{
	struct detect_tracker *t = empty();
	expect(feed(t, api(0, "192.0.2.1", 0, 1)), 1, 1, false);
	expect(feed(t, api(0, "192.0.2.1", 0, 2)), 1, 2, false);
	return t;
}

static void test_out_of_memory(void **state)
{
	(void)state;
	fail_at = 1;
	assert_null(detect_track_new(16));
	fail_at = 0;
	/* the first: the index, the records of both tables and the times */
	unsigned calls = alloc_calls;
	check_enomem_each(empty, line("192.0.2.1", 5, 5, 0, 1, false, 0), &LIM,
			  (struct detect_verdict){ 1, 1, false }, 4);
	/* the 33rd: the tables grow (the index, both tables' records), and
	   the times */
	check_enomem_each(thirty_two, line("192.0.2.33", 5, 5, 0, 1, false, 0), &LIM,
			  (struct detect_verdict){ 1, 1, false }, 4);
	/* a larger max_failures: the times grow, keeping what they hold */
	struct detect_limits more = LIM;
	more.max_failures = 10;
	check_enomem_each(two_failures, api(0, "192.0.2.1", 0, 3), &more,
			  (struct detect_verdict){ 1, 3, false }, 1);
	assert_true(alloc_calls > calls);
	/* offenders */
	struct detect_tracker *t = empty();
	struct detect_offender o = { .addr = P("192.0.2.1"), .blocked_at = 1, .ttl = 3600,
				     .offences = 1 };
	for (unsigned k = 1; k <= 2; k++) { /* the index, the records */
		fail_at = k;
		assert_int_equal(detect_track_offender(t, &o), -ENOMEM);
		assert_int_equal(fail_at, 0);
		struct detect_track_stats s;
		detect_track_stats(t, &s);
		assert_int_equal(s.offenders, 0);
		assert_int_equal(detect_track_next_ttl(t, &o.addr, 2, &LIM, NULL), 3600);
	}
	assert_int_equal(detect_track_offender(t, &o), 0);
	assert_int_equal(detect_track_next_ttl(t, &o.addr, 2, &LIM, NULL), 7200);
	detect_track_free(t);
	/* once full, nothing allocates any more */
	t = detect_track_new(4);
	for (int i = 0; i < 4; i++) {
		char a[32];
		snprintf(a, sizeof(a), i % 2 ? "192.0.2.%d" : "2001:db8::%d", i);
		expect(feed(t, line(a, 5, 5, 0, 1, false, 0)), 1, 1, false);
	}
	calls = alloc_calls;
	for (int i = 0; i < 100; i++) {
		char a[32];
		snprintf(a, sizeof(a), "192.0.3.%d", i);
		expect(feed(t, line(a, 5, 5, 0, 1, false, 0)), 1, 1, false);
	}
	assert_int_equal(alloc_calls, calls);
	detect_track_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_login_counts_once),
		cmocka_unit_test(test_fifth_login_triggers),
		cmocka_unit_test(test_window_slides),
		cmocka_unit_test(test_reset),
		cmocka_unit_test(test_pam_without_port),
		cmocka_unit_test(test_pam_other_pid),
		cmocka_unit_test(test_pam_more_floor),
		cmocka_unit_test(test_concurrent_connections),
		cmocka_unit_test(test_pid_reuse),
		cmocka_unit_test(test_api_events),
		cmocka_unit_test(test_sources_apart),
		cmocka_unit_test(test_out_of_order),
		cmocka_unit_test(test_eviction_lru),
		cmocka_unit_test(test_connections_per_address),
		cmocka_unit_test(test_spray_memory_flat),
		cmocka_unit_test(test_escalation),
		cmocka_unit_test(test_offenders_listing),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_out_of_memory),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
