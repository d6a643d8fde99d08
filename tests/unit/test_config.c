/* agent.json: a value whose copy fails to allocate is an error of the
 * file, never a key silently left out (fail closed). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"

/* Allocation failure on demand: these definitions take the place of the C
 * library's strdup() and strndup() in this program, and fail once for a
 * value starting with fail_prefix. */
static const char *fail_prefix;

char *strndup(const char *s, size_t n)
{
	if (fail_prefix && strncmp(s, fail_prefix, strlen(fail_prefix)) == 0) {
		fail_prefix = NULL;
		errno = ENOMEM;
		return NULL;
	}
	size_t len = strnlen(s, n);
	char *d = malloc(len + 1);
	if (!d)
		return NULL;
	memcpy(d, s, len);
	d[len] = '\0';
	return d;
}

char *strdup(const char *s)
{
	return strndup(s, strlen(s));
}

#define PIN "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

static char file[64];

static int setup(void **state)
{
	(void)state;
	snprintf(file, sizeof(file), "/tmp/cvz-config-XXXXXX");
	int fd = mkstemp(file);
	if (fd < 0)
		return -1;
	static const char text[] =
		"{\"node_id\": \"n1\", \"user\": \"cvzuser\", \"socket_group\": \"cvzgroup\",\n"
		" \"control_api\": {\"url\": \"https://api.example\", \"ca_file\": \"/c/ca.pem\",\n"
		"  \"cert_file\": \"/c/c.pem\", \"key_file\": \"/c/c.key\", \"token_file\": \"/c/t\",\n"
		"  \"pinned_pubkey\": \"" PIN "\"}}\n";
	ssize_t w = write(fd, text, sizeof(text) - 1);
	close(fd);
	return w == (ssize_t)sizeof(text) - 1 ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	fail_prefix = NULL;
	return unlink(file);
}

static void test_loads(void **state)
{
	(void)state;
	struct agent_config *c = NULL;
	struct diags d = { 0 };
	assert_int_equal(config_load(file, &c, &d), 0);
	assert_string_equal(c->control.pinned_pubkey, PIN);
	assert_string_equal(c->user, "cvzuser");
	assert_string_equal(c->socket_group, "cvzgroup");
	assert_string_equal(c->control.url, "https://api.example");
	config_free(c);
	diags_free(&d);
}

/* Each value whose copy fails: the load fails, naming the key. */
static void refused_when_copy_fails(const char *prefix, const char *where)
{
	struct agent_config *c = NULL;
	struct diags d = { 0 };
	fail_prefix = prefix;
	int r = config_load(file, &c, &d);
	if (r == 0)
		fail_msg("config loaded although the copy of %s failed (pinned_pubkey %s, user %s)",
			 where, c->control.pinned_pubkey ? c->control.pinned_pubkey : "none",
			 c->user ? c->user : "none");
	assert_null(c);
	assert_null(fail_prefix); /* the failure was hit */
	char line[512];
	bool found = false;
	for (size_t i = 0; i < d.n; i++)
		found |= strstr(diag_format(&d.v[i], line, sizeof(line)), "out of memory") != NULL &&
			 strstr(line, where) != NULL;
	if (!found)
		fail_msg("no \"out of memory\" error naming %s", where);
	diags_free(&d);
}

static void test_pin_fails_closed(void **state)
{
	(void)state;
	refused_when_copy_fails("sha256//", "pinned_pubkey");
}

static void test_user_fails_closed(void **state)
{
	(void)state;
	refused_when_copy_fails("cvzuser", "user");
}

static void test_group_fails_closed(void **state)
{
	(void)state;
	refused_when_copy_fails("cvzgroup", "socket_group");
}

static void test_url_fails_closed(void **state)
{
	(void)state;
	refused_when_copy_fails("https://", "url");
}

/* ---- detect ----------------------------------------------------------------- */

static int load_text(const char *text, struct agent_config **c, struct diags *d)
{
	char path[64];
	snprintf(path, sizeof(path), "/tmp/cvz-config-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	int r = config_load(path, c, d);
	unlink(path);
	return r;
}

/* The errors of d, one per line. */
static const char *all_errors(const struct diags *d, char *buf, size_t len)
{
	size_t off = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < d->n && off < len; i++) {
		char line[512];
		off += (size_t)snprintf(buf + off, len - off, "%s\n",
					diag_format(&d->v[i], line, sizeof(line)));
	}
	return buf;
}

static void test_detect_defaults(void **state)
{
	(void)state;
	struct agent_config *c = NULL;
	struct diags d = { 0 };
	assert_int_equal(load_text("{\"node_id\": \"n1\"}", &c, &d), 0);
	assert_false(c->has_detect); /* nothing watched without the section */
	config_free(c);
	c = NULL;
	assert_int_equal(load_text("{\"detect\": {}}", &c, &d), 0);
	assert_true(c->has_detect);
	const struct detect_source_config *s = &c->detect.src[DETECT_SSHD];
	assert_true(s->enabled);
	assert_false(c->detect.src[DETECT_API].enabled);
	assert_int_equal(s->lim.max_failures, 5);
	assert_int_equal(s->lim.window, 60);
	assert_int_equal(s->lim.ttl, 3600);
	assert_int_equal(s->lim.escalate, 2);
	assert_int_equal(s->lim.max_ttl, 86400);
	assert_int_equal(c->detect.max_tracked, 65536);
	assert_true(s->has_uid);
	assert_int_equal(s->uid, 0);
	assert_int_equal(s->n_comm, 3);
	assert_string_equal(s->comm[1], "sshd-session");
	assert_string_equal(s->exe[0], "/usr/sbin/sshd");
	assert_string_equal(s->unit[0], "ssh.service");
	assert_int_equal(s->n_transport, 1);
	assert_string_equal(s->transport[0], "syslog");
	const struct detect_source_config *a = &c->detect.src[DETECT_API];
	assert_false(a->has_uid);
	assert_int_equal(a->n_unit, 1);
	assert_string_equal(a->unit[0], "cloudviz-api.service");
	assert_int_equal(a->n_comm + a->n_exe + a->n_transport, 0);
	config_free(c);
	diags_free(&d);
}

/* Section values, then per-source overrides, in any key order; a match
 * key replaces all three defaults. */
static void test_detect_overrides(void **state)
{
	(void)state;
	struct agent_config *c = NULL;
	struct diags d = { 0 };
	assert_int_equal(load_text("{\"detect\": {\"cloudviz-api\": {\"max_failures\": 10, \"comm\": \"cvz-api\","
				   " \"uid\": 990, \"transport\": [\"stdout\", \"journal\"]},"
				   " \"sources\": [\"cloudviz-api\", \"sshd\"], \"window\": 120, \"ttl\": 60,"
				   " \"max_ttl\": 600, \"escalate\": 3, \"max_tracked\": 1000,"
				   " \"sshd\": {\"uid\": null, \"window\": 30}}}",
				   &c, &d), 0);
	const struct detect_source_config *s = &c->detect.src[DETECT_SSHD],
					  *a = &c->detect.src[DETECT_API];
	assert_true(s->enabled && a->enabled);
	assert_int_equal(s->lim.window, 30);
	assert_int_equal(s->lim.max_failures, 5);
	assert_int_equal(s->lim.ttl, 60);
	assert_int_equal(s->lim.escalate, 3);
	assert_false(s->has_uid);
	assert_int_equal(s->n_comm, 3); /* uid alone keeps the match defaults */
	assert_int_equal(a->lim.window, 120);
	assert_int_equal(a->lim.max_failures, 10);
	assert_int_equal(a->lim.max_ttl, 600);
	assert_true(a->has_uid);
	assert_int_equal(a->uid, 990);
	assert_int_equal(a->n_comm, 1);
	assert_string_equal(a->comm[0], "cvz-api");
	assert_int_equal(a->n_unit, 0); /* replaced */
	assert_int_equal(a->n_transport, 2);
	assert_int_equal(c->detect.max_tracked, 1000);
	config_free(c);
	c = NULL;
	assert_int_equal(load_text("{\"detect\": {\"sources\": []}}", &c, &d), 0);
	assert_false(c->detect.src[DETECT_SSHD].enabled);
	config_free(c);
	diags_free(&d);
}

/* Every bad value is an error naming the key and the value; all are
 * reported, not just the first. */
static void test_detect_errors(void **state)
{
	(void)state;
	static const struct {
		const char *text, *want;
	} bad[] = {
		{ "{\"detect\": {\"sources\": [\"sshd\", \"ftpd\"]}}", "detect.sources[1]: unknown source \"ftpd\"" },
		{ "{\"detect\": {\"sources\": [\"sshd\", \"sshd\"]}}", "\"sshd\" is listed twice" },
		{ "{\"detect\": {\"sources\": \"sshd\"}}", "detect.sources" },
		{ "{\"detect\": {\"max_failures\": 0}}", "detect.max_failures: 0 is out of range 1-100" },
		{ "{\"detect\": {\"window\": 86401}}", "detect.window: 86401 is out of range" },
		{ "{\"detect\": {\"ttl\": 7200, \"max_ttl\": 3600}}", "max_ttl 3600 is below ttl 7200 for sshd" },
		{ "{\"detect\": {\"sshd\": {\"ttl\": 100000}}}", "detect.sshd: max_ttl 86400 is below ttl 100000" },
		{ "{\"detect\": {\"escalate\": 101}}", "detect.escalate: 101 is out of range" },
		{ "{\"detect\": {\"max_tracked\": 0}}", "detect.max_tracked: 0 is out of range" },
		{ "{\"detect\": {\"sshd\": {\"comm\": \"a-very-long-process-name\"}}}", "longer than 15 characters" },
		{ "{\"detect\": {\"sshd\": {\"exe\": \"sshd\"}}}", "detect.sshd.exe: \"sshd\" is not an absolute path" },
		{ "{\"detect\": {\"sshd\": {\"unit\": \"ssh service\"}}}", "is not a unit" },
		{ "{\"detect\": {\"sshd\": {\"transport\": \"sys\"}}}", "unknown transport \"sys\"" },
		{ "{\"detect\": {\"sshd\": {\"uid\": -1}}}", "detect.sshd.uid: -1 is out of range" },
		{ "{\"detect\": {\"sshd\": {\"comm\": []}}}", "empty comm list" },
		{ "{\"detect\": {\"sshd\": {\"pattern\": \"x\"}}}", "unknown key \"pattern\"" },
		{ "{\"detect\": {\"sshd\": {\"comm\": [\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\"]}}}", "more than 8 values" },
		{ "{\"detect\": []}", "detect" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct agent_config *c = NULL;
		struct diags d = { 0 };
		char errs[4096];
		int r = load_text(bad[i].text, &c, &d);
		if (r != -EINVAL || c || !strstr(all_errors(&d, errs, sizeof(errs)), bad[i].want))
			fail_msg("%s: r=%d, errors:\n%s(wanted \"%s\")", bad[i].text, r, errs, bad[i].want);
		diags_free(&d);
	}
	/* two errors at once: both reported */
	struct agent_config *c = NULL;
	struct diags d = { 0 };
	char errs[4096];
	assert_int_equal(load_text("{\"detect\": {\"window\": 0, \"sshd\": {\"exe\": \"x\"}}}", &c, &d),
			 -EINVAL);
	all_errors(&d, errs, sizeof(errs));
	assert_non_null(strstr(errs, "detect.window"));
	assert_non_null(strstr(errs, "detect.sshd.exe"));
	diags_free(&d);
}

/* A copy of a match value that fails is an error, never a source that
 * matches less (or, with an emptied list, nothing). */
static void test_detect_copy_fails_closed(void **state)
{
	(void)state;
	struct agent_config *c = NULL;
	struct diags d = { 0 };
	fail_prefix = "cvz-api-name";
	assert_int_equal(load_text("{\"detect\": {\"cloudviz-api\": {\"comm\": \"cvz-api-name\"}}}", &c, &d),
			 -EINVAL);
	assert_null(c);
	assert_null(fail_prefix);
	char errs[4096];
	assert_non_null(strstr(all_errors(&d, errs, sizeof(errs)), "out of memory"));
	diags_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_loads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pin_fails_closed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_user_fails_closed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_fails_closed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_url_fails_closed, setup, teardown),
		cmocka_unit_test(test_detect_defaults),
		cmocka_unit_test(test_detect_overrides),
		cmocka_unit_test(test_detect_errors),
		cmocka_unit_test(test_detect_copy_fails_closed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
