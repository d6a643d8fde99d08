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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_loads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pin_fails_closed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_user_fails_closed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_fails_closed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_url_fails_closed, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
