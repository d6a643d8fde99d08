/* State file: round trip with absolute expiry, corrupt files moved aside. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "state.h"
#include "statedir.h"

static char dir[64];
static struct statedir sd = { .fd = -1 };

static int setup(void **state)
{
	(void)state;
	char err[512];
	snprintf(dir, sizeof(dir), "/tmp/cvz-state-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	if (statedir_open(dir, geteuid(), false, &sd, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	statedir_close(&sd);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static void read_file(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	size_t n = fread(buf, 1, len - 1, f);
	buf[n] = '\0';
	fclose(f);
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
	assert_int_equal(state_save(&sd, &b, &x), 0);
	char err[256], moved[512];
	assert_int_equal(state_load(&sd, &got, &gx, err, sizeof(err), moved, sizeof(moved)), 0);
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
	assert_int_equal(state_save(&sd, &b, &x), 0);
	char err[256], moved[512];
	assert_int_equal(state_load(&sd, &got, &gx, err, sizeof(err), moved, sizeof(moved)), 0);
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

/* Detection's cursor and offenders survive a save and a load; a bad
 * cursor or offender refuses the file whole. */
static void test_detect_fields(void **state)
{
	(void)state;
	struct blocklist b = { 0 }, got = { 0 };
	struct detect_offender offs[2] = { { .blocked_at = 1700000000, .ttl = 7200, .offences = 2 },
					   { .blocked_at = 1700000100, .ttl = 3600, .offences = 1 } };
	assert_int_equal(cvz_prefix_parse("203.0.113.9", &offs[0].addr, NULL, NULL, 0), 0);
	assert_int_equal(cvz_prefix_parse("2001:db8::9", &offs[1].addr, NULL, NULL, 0), 0);
	struct state_extra x = { .detect_cursor_us = 1700000123456789, .offenders = offs,
				 .n_offenders = 2 }, gx;
	snprintf(x.detect_cursor, sizeof(x.detect_cursor), "s=abc;i=12;b=def;m=1;t=2;x=3");
	assert_int_equal(state_save(&sd, &b, &x), 0);
	char err[256], moved[512];
	assert_int_equal(state_load(&sd, &got, &gx, err, sizeof(err), moved, sizeof(moved)), 0);
	assert_string_equal(gx.detect_cursor, x.detect_cursor);
	assert_int_equal(gx.detect_cursor_us, 1700000123456789);
	assert_int_equal(gx.n_offenders, 2);
	assert_memory_equal(&gx.offenders[0].addr, &offs[0].addr, sizeof(offs[0].addr));
	assert_int_equal(gx.offenders[1].ttl, 3600);
	assert_int_equal(gx.offenders[0].offences, 2);
	free(gx.offenders);
	static const char *const bad[] = {
		"{\"version\":1,\"entries\":[],\"lockdown\":false,\"confirm_deadline\":0,\"cursor\":\"\",\"detect_cursor\":\"a b\"}",
		"{\"version\":1,\"entries\":[],\"lockdown\":false,\"confirm_deadline\":0,\"cursor\":\"\",\"detect_cursor_us\":-1}",
		"{\"version\":1,\"entries\":[],\"lockdown\":false,\"confirm_deadline\":0,\"cursor\":\"\",\"offenders\":[{\"addr\":\"x\",\"blocked_at\":1,\"ttl\":1,\"offences\":1}]}",
		"{\"version\":1,\"entries\":[],\"lockdown\":false,\"confirm_deadline\":0,\"cursor\":\"\",\"offenders\":[{\"addr\":\"192.0.2.1\",\"blocked_at\":1,\"ttl\":0,\"offences\":1}]}",
		"{\"version\":1,\"entries\":[],\"lockdown\":false,\"confirm_deadline\":0,\"cursor\":\"\",\"offenders\":{}}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct state_extra bx = { 0 };
		assert_int_equal(state_parse(bad[i], strlen(bad[i]), &got, &bx, err, sizeof(err)),
				 -EBADMSG);
		assert_null(bx.offenders);
		assert_string_equal(bx.detect_cursor, "");
	}
	bl_free(&got);
}

static void test_missing_and_corrupt(void **state)
{
	(void)state;
	struct blocklist b = { 0 };
	struct state_extra x = { 0 };
	char err[256], moved[512], path[128];
	snprintf(path, sizeof(path), "%s/state.json", dir);
	unlink(path);
	assert_int_equal(state_load(&sd, &b, &x, err, sizeof(err), moved, sizeof(moved)), -ENOENT);
	const char *bad[] = {
		"{\"version\": 1, \"entries\": [",
		"{\"version\": 2, \"entries\": [], \"lockdown\": false, \"confirm_deadline\": 0, \"cursor\": \"\"}",
		"{\"version\": 1, \"entries\": [{\"addr\": \"10.1.2.3/8\", \"origin\": \"operator\", \"created\": 1, \"expires\": 0}], \"lockdown\": false, \"confirm_deadline\": 0, \"cursor\": \"\"}",
		"{\"version\": 1, \"entries\": [{\"addr\": \"10.0.0.1\", \"origin\": \"policy\", \"created\": 1, \"expires\": 0}], \"lockdown\": false, \"confirm_deadline\": 0, \"cursor\": \"\"}",
		"\x01\x02garbage",
		"[]",
		"{\"version\": 1, \"entries\": [], \"lockdown\": false, \"confirm_deadline\": 0, \"cursor\": \"\", \"trial_digest\": \"../../etc/passwd\"}",
		"{\"version\": 1, \"entries\": [], \"lockdown\": false, \"confirm_deadline\": -5, \"cursor\": \"\"}",
	};
	snprintf(path, sizeof(path), "%s/state.json", dir);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		FILE *f = fopen(path, "w");
		assert_non_null(f);
		fputs(bad[i], f);
		fclose(f);
		assert_int_equal(state_load(&sd, &b, &x, err, sizeof(err), moved, sizeof(moved)),
				 -EBADMSG);
		assert_int_equal(b.n, 0);
		assert_int_equal(access(path, F_OK), -1); /* moved aside */
		assert_int_equal(access(moved, F_OK), 0);
		unlink(moved);
	}
}

/* An entry with impossible times (the 2^44 expiry, INT64_MAX, a
 * negative one) is left out alone and counted; the other entries, the
 * cursor and the seen ids stay, and the file is not moved aside. */
static void test_impossible_entry_dropped_alone(void **state)
{
	(void)state;
	struct blocklist b = { 0 };
	struct instr_seen *seen = instr_seen_new(10);
	assert_non_null(seen);
	struct state_extra x = { .seen = seen };
	char err[256] = "", moved[512] = "", path[128];
	long long now = (long long)time(NULL);
	snprintf(path, sizeof(path), "%s/state.json", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "{\"version\": 1, \"lockdown\": false, \"confirm_deadline\": 0, \"cursor\": \"c-7\","
		   " \"seen_ids\": [\"ins-1\"], \"entries\": ["
		   "{\"addr\": \"203.0.113.1\", \"origin\": \"operator\", \"created\": 1, \"expires\": 0},"
		   "{\"addr\": \"198.51.100.9\", \"origin\": \"operator\", \"created\": %lld, \"expires\": 17592186044416},"
		   "{\"addr\": \"198.51.100.10\", \"origin\": \"control\", \"created\": %lld, \"expires\": 9223372036854775807},"
		   "{\"addr\": \"198.51.100.11\", \"origin\": \"operator\", \"created\": %lld, \"expires\": -5},"
		   "{\"addr\": \"203.0.113.2\", \"origin\": \"control\", \"created\": %lld, \"expires\": %lld}]}",
		now, now, now, now, now + 3600);
	fclose(f);
	assert_int_equal(state_load(&sd, &b, &x, err, sizeof(err), moved, sizeof(moved)), 0);
	assert_int_equal(b.n, 2);
	struct cvz_prefix a;
	assert_int_equal(cvz_prefix_parse("203.0.113.2", &a, NULL, NULL, 0), 0);
	assert_int_equal(bl_find(&b, &a, ORIGIN_CONTROL)->expires, now + 3600);
	assert_int_equal(x.dropped, 3);
	assert_non_null(strstr(x.dropped_why, "entries[1] (198.51.100.9 from operator)"));
	assert_non_null(strstr(x.dropped_why, "17592186044416"));
	assert_string_equal(x.cursor, "c-7");
	assert_int_equal(instr_seen_count(seen), 1);
	assert_int_equal(access(path, F_OK), 0); /* not moved aside */
	instr_seen_free(seen);
	bl_free(&b);
	unlink(path);
}

/* Item 10: a file declared corrupt leaves nothing behind, not even the seen
 * ids or entries read before the bad part. */
static void test_corrupt_is_all_or_nothing(void **state)
{
	(void)state;
	struct instr_seen *seen = instr_seen_new(10);
	assert_non_null(seen);
	struct blocklist b = { 0 };
	struct state_extra x = { .seen = seen };
	char err[256];
	const char *text =
		"{\"version\": 1, \"lockdown\": true, \"confirm_deadline\": 0, \"cursor\": \"c\","
		" \"entries\": [{\"addr\": \"192.0.2.1\", \"origin\": \"operator\", \"created\": 1, \"expires\": 0}],"
		" \"seen_ids\": [\"ins-1\", \"ins-2\", \"\"]}";
	assert_int_equal(state_parse(text, strlen(text), &b, &x, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "seen_ids[2]"));
	assert_int_equal(instr_seen_count(seen), 0);
	assert_int_equal(b.n, 0);
	assert_false(x.lockdown);
	assert_string_equal(x.cursor, "");
	/* a bad entry after good ones: the same */
	const char *text2 =
		"{\"version\": 1, \"lockdown\": false, \"confirm_deadline\": 0, \"cursor\": \"\","
		" \"entries\": [{\"addr\": \"192.0.2.1\", \"origin\": \"operator\", \"created\": 1, \"expires\": 0},"
		" {\"addr\": \"nope\", \"origin\": \"operator\", \"created\": 1, \"expires\": 0}],"
		" \"seen_ids\": [\"ins-1\"]}";
	assert_int_equal(state_parse(text2, strlen(text2), &b, &x, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "entries[1]"));
	assert_int_equal(instr_seen_count(seen), 0);
	assert_int_equal(b.n, 0);
	instr_seen_free(seen);
}

/* Item 3: a symlink planted as the temp file is removed, never followed;
 * the file it points to is untouched. */
static void test_planted_tmp_symlink(void **state)
{
	(void)state;
	char victim[128], tmp[128], got[64];
	snprintf(victim, sizeof(victim), "%s.victim", dir);
	snprintf(tmp, sizeof(tmp), "%s/.state.json.tmp", dir);
	write_file(victim, "precious\n");
	assert_int_equal(symlink(victim, tmp), 0);
	struct blocklist b = { 0 };
	struct state_extra x = { 0 };
	assert_int_equal(state_save(&sd, &b, &x), 0);
	read_file(victim, got, sizeof(got));
	assert_string_equal(got, "precious\n");
	struct stat st;
	assert_int_equal(lstat(tmp, &st), -1); /* gone, not left as a link */
	char path[128];
	snprintf(path, sizeof(path), "%s/state.json", dir);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	unlink(victim);
}

/* Item 3: state.json as a symlink, hard-linked, group-writable or too big
 * is not believed: moved aside, its target untouched and unread. */
static void test_untrusted_state_file(void **state)
{
	(void)state;
	char path[128], victim[128], err[512], moved[512];
	const char *good = "{\"version\": 1, \"entries\": [], \"lockdown\": true, \"confirm_deadline\": 0, \"cursor\": \"\"}";
	snprintf(path, sizeof(path), "%s/state.json", dir);
	snprintf(victim, sizeof(victim), "%s.victim", dir);
	struct blocklist b = { 0 };
	struct state_extra x = { 0 };
	struct stat st;

	unlink(path);
	write_file(victim, good);
	assert_int_equal(symlink(victim, path), 0);
	assert_int_equal(state_load(&sd, &b, &x, err, sizeof(err), moved, sizeof(moved)), -EBADMSG);
	assert_non_null(strstr(err, "symlink"));
	assert_false(x.lockdown);
	assert_int_equal(lstat(moved, &st), 0);
	assert_true(S_ISLNK(st.st_mode)); /* the link moved, not its target */
	assert_int_equal(stat(victim, &st), 0);
	unlink(moved);

	write_file(path, good);
	unlink(victim);
	assert_int_equal(link(path, victim), 0);
	assert_int_equal(state_load(&sd, &b, &x, err, sizeof(err), moved, sizeof(moved)), -EBADMSG);
	assert_non_null(strstr(err, "hard links"));
	assert_false(x.lockdown);
	unlink(moved);
	unlink(victim);

	write_file(path, good);
	assert_int_equal(chmod(path, 0620), 0);
	assert_int_equal(state_load(&sd, &b, &x, err, sizeof(err), moved, sizeof(moved)), -EBADMSG);
	assert_non_null(strstr(err, "writable by group or others"));
	unlink(moved);

	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)STATE_FILE_MAX + 1), 0);
	close(fd);
	assert_int_equal(state_load(&sd, &b, &x, err, sizeof(err), moved, sizeof(moved)), -EBADMSG);
	assert_non_null(strstr(err, "more than"));
	assert_int_equal(access(path, F_OK), -1);
	unlink(moved);

	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(state_load(&sd, &b, &x, err, sizeof(err), moved, sizeof(moved)), -EBADMSG);
	assert_non_null(strstr(err, "not a regular file"));
	unlink(moved);
}

/* Item 3: the directory itself and its parents are checked. */
static void test_statedir_checks(void **state)
{
	(void)state;
	char sub[128], link_path[128], err[512];
	struct statedir s2;
	snprintf(sub, sizeof(sub), "%s/sub", dir);
	/* created 0700 when missing */
	assert_int_equal(statedir_open(sub, geteuid(), true, &s2, err, sizeof(err)), 0);
	struct stat st;
	assert_int_equal(stat(sub, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	statedir_close(&s2);
	/* group- or other-writable */
	assert_int_equal(chmod(sub, 0770), 0);
	assert_int_equal(statedir_open(sub, geteuid(), true, &s2, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, sub));
	assert_non_null(strstr(err, "0770"));
	assert_int_equal(chmod(sub, 0700), 0);
	/* owned by someone else */
	if (geteuid() == 0) {
		assert_int_equal(chown(sub, 4242, 4242), 0);
		assert_int_equal(statedir_open(sub, 0, true, &s2, err, sizeof(err)), -EPERM);
		assert_non_null(strstr(err, "owned by uid 4242"));
		/* the agent's own user is fine */
		assert_int_equal(statedir_open(sub, 4242, true, &s2, err, sizeof(err)), 0);
		statedir_close(&s2);
		assert_int_equal(chown(sub, 0, 0), 0);
	}
	/* a parent others can write to (not sticky): refused */
	char inner[160];
	snprintf(inner, sizeof(inner), "%s/inner", sub);
	assert_int_equal(chmod(sub, 0777), 0);
	assert_int_equal(statedir_open(inner, geteuid(), true, &s2, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "parent directory"));
	assert_int_equal(access(inner, F_OK), -1); /* nothing created */
	/* sticky and root-owned, like /tmp: accepted */
	if (geteuid() == 0) {
		assert_int_equal(chmod(sub, 01777), 0);
		assert_int_equal(statedir_open(inner, 0, true, &s2, err, sizeof(err)), 0);
		statedir_close(&s2);
	}
	assert_int_equal(chmod(sub, 0700), 0);
	/* a symlink as state_dir */
	snprintf(link_path, sizeof(link_path), "%s/link", dir);
	assert_int_equal(symlink(sub, link_path), 0);
	assert_int_equal(statedir_open(link_path, geteuid(), true, &s2, err, sizeof(err)), -ELOOP);
	assert_non_null(strstr(err, "symlink"));
	assert_int_equal(statedir_open("var/lib/x", geteuid(), true, &s2, err, sizeof(err)), -EINVAL);
}

/* Item 3: handing state_dir over to the agent's user never follows a link
 * planted in it. */
static void test_hand_over_no_follow(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();
	char sub[128], victim[128], link_path[160], err[512];
	struct statedir s2;
	snprintf(sub, sizeof(sub), "%s/handover", dir);
	snprintf(victim, sizeof(victim), "%s.victim", dir);
	snprintf(link_path, sizeof(link_path), "%s/state.json", sub);
	write_file(victim, "precious\n");
	assert_int_equal(statedir_open(sub, 0, true, &s2, err, sizeof(err)), 0);
	assert_int_equal(symlink(victim, link_path), 0);
	const char *names[] = { "state.json", "policy.previous.json" };
	assert_int_equal(statedir_hand_over(&s2, 4242, 4242, names, 2), 0);
	struct stat st;
	assert_int_equal(stat(victim, &st), 0);
	assert_int_equal(st.st_uid, 0);
	assert_int_equal(stat(sub, &st), 0);
	assert_int_equal(st.st_uid, 4242);
	assert_int_equal(lstat(link_path, &st), 0);
	assert_int_equal(st.st_uid, 4242); /* the link itself */
	statedir_close(&s2);
	unlink(victim);
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
	assert_int_equal(state_save_next(&sd, &c, &x, ids, 2), 0);
	assert_int_equal(b.n, 3); /* the live blocklist as it was */
	assert_string_equal(bl_find(&b, &refresh, ORIGIN_CONTROL)->reason, "old");
	assert_int_equal(instr_seen_count(seen), 1);
	char err[256], moved[512];
	assert_int_equal(state_load(&sd, &got, &gx, err, sizeof(err), moved, sizeof(moved)), 0);
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
		cmocka_unit_test(test_detect_fields),
		cmocka_unit_test(test_missing_and_corrupt),
		cmocka_unit_test(test_impossible_entry_dropped_alone),
		cmocka_unit_test(test_corrupt_is_all_or_nothing),
		cmocka_unit_test(test_planted_tmp_symlink),
		cmocka_unit_test(test_untrusted_state_file),
		cmocka_unit_test(test_statedir_checks),
		cmocka_unit_test(test_hand_over_no_follow),
		cmocka_unit_test(test_save_next),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
