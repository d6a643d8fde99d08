/* Protected addresses: resolv.conf's nameservers, bounded and parsed the
 * way glibc reads them, and the control API URL's host through libcurl's
 * URL API (IP literals, names from /etc/hosts). */
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

#include "protect.h"

static char file[64];

static void put(const char *text, size_t len)
{
	FILE *f = fopen(file, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
	(void)state;
	snprintf(file, sizeof(file), "/tmp/cvz-resolv-XXXXXX");
	int fd = mkstemp(file);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return unlink(file);
}

/* the addresses as text, joined with spaces */
static void expect(int n, const struct cvz_prefix *v, const char *want)
{
	char got[512] = "", a[CVZ_PREFIX_STRLEN];
	for (int i = 0; i < n; i++)
		snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s", i ? " " : "",
			 cvz_prefix_format(&v[i], a, sizeof(a)));
	assert_string_equal(got, want);
}

static void test_resolv_conf(void **state)
{
	(void)state;
	static const char text[] =
		"# generated\n"
		"search example.com\n"
		"nameserver 10.0.0.2\n"
		"nameserver\t2001:db8::53 # comment\n"
		"nameserver fe80::1%eth0\n"
		"nameserver 10.0.0.2\n"          /* duplicate */
		"nameserver 10.0.0.0/8\n"        /* not an address glibc takes */
		"nameserver not-an-address\n"
		"nameservers 192.0.2.1\n"        /* another keyword */
		" nameserver 192.0.2.2\n"        /* not at the start of the line */
		"options timeout:1\n"
		"nameserver 192.0.2.3\r\n";
	put(text, sizeof(text) - 1);
	struct cvz_prefix v[PROTECT_MAX];
	char err[256];
	int n = protect_read_resolv_conf(file, v, PROTECT_MAX, err, sizeof(err));
	assert_int_equal(n, 4);
	expect(n, v, "10.0.0.2 2001:db8::53 fe80::1 192.0.2.3");
	/* bounded by max */
	assert_int_equal(protect_read_resolv_conf(file, v, 2, err, sizeof(err)), 2);
	expect(2, v, "10.0.0.2 2001:db8::53");
}

static void test_resolv_conf_bounds(void **state)
{
	(void)state;
	struct cvz_prefix v[PROTECT_MAX];
	char err[256];
	/* more lines than kept: the first PROTECT_MAX */
	char text[4096] = "";
	for (int i = 0; i < 40; i++)
		snprintf(text + strlen(text), sizeof(text) - strlen(text), "nameserver 192.0.2.%d\n",
			 i + 1);
	put(text, strlen(text));
	assert_int_equal(protect_read_resolv_conf(file, v, PROTECT_MAX, err, sizeof(err)),
			 PROTECT_MAX);
	/* larger than the cap: refused, naming the file */
	size_t big = RESOLV_CONF_MAX_BYTES + 1;
	char *huge = malloc(big);
	assert_non_null(huge);
	memset(huge, '#', big);
	put(huge, big);
	free(huge);
	assert_int_equal(protect_read_resolv_conf(file, v, PROTECT_MAX, err, sizeof(err)), -EFBIG);
	assert_non_null(strstr(err, file));
	assert_non_null(strstr(err, "larger than 65536 bytes"));
	/* missing, and a directory */
	assert_int_equal(protect_read_resolv_conf("/nonexistent/resolv.conf", v, PROTECT_MAX, err,
						  sizeof(err)),
			 -ENOENT);
	assert_int_equal(protect_read_resolv_conf("/tmp", v, PROTECT_MAX, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "not a regular file"));
}

static void test_url_hosts(void **state)
{
	(void)state;
	struct cvz_prefix v[PROTECT_MAX];
	char err[256];
	int n = protect_resolve_url("https://198.51.100.7:8443/api", v, PROTECT_MAX, err, sizeof(err));
	assert_int_equal(n, 1);
	expect(n, v, "198.51.100.7");
	n = protect_resolve_url("https://[2001:db8::7]:8443/api", v, PROTECT_MAX, err, sizeof(err));
	assert_int_equal(n, 1);
	expect(n, v, "2001:db8::7");
	/* what a hand parser got wrong: user info before the host */
	n = protect_resolve_url("https://user@198.51.100.8/", v, PROTECT_MAX, err, sizeof(err));
	assert_int_equal(n, 1);
	expect(n, v, "198.51.100.8");
	/* a name, from /etc/hosts */
	n = protect_resolve_url("https://localhost:1/", v, PROTECT_MAX, err, sizeof(err));
	assert_true(n >= 1);
	char a[CVZ_PREFIX_STRLEN];
	bool loop = false;
	for (int i = 0; i < n; i++)
		loop |= !strcmp(cvz_prefix_format(&v[i], a, sizeof(a)), "127.0.0.1") ||
			!strcmp(a, "::1");
	assert_true(loop);
	assert_int_equal(protect_resolve_url("not a url", v, PROTECT_MAX, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(protect_resolve_url("https://no-such-host.invalid/", v, PROTECT_MAX, err,
					     sizeof(err)),
			 -EHOSTUNREACH);
	assert_non_null(strstr(err, "no-such-host.invalid"));
}

static void test_add(void **state)
{
	(void)state;
	struct cvz_prefix v[2], p[3];
	size_t n = 0;
	assert_int_equal(cvz_prefix_parse("192.0.2.1", &p[0], NULL, NULL, 0), 0);
	assert_int_equal(cvz_prefix_parse("192.0.2.2", &p[1], NULL, NULL, 0), 0);
	assert_int_equal(cvz_prefix_parse("192.0.2.3", &p[2], NULL, NULL, 0), 0);
	assert_true(protect_add(v, &n, 2, &p[0]));
	assert_false(protect_add(v, &n, 2, &p[0]));
	assert_true(protect_add(v, &n, 2, &p[1]));
	assert_true(protect_add(v, &n, 2, &p[2])); /* full: the oldest goes */
	assert_int_equal(n, 2);
	expect((int)n, v, "192.0.2.2 192.0.2.3");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_resolv_conf, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resolv_conf_bounds, setup, teardown),
		cmocka_unit_test(test_url_hosts),
		cmocka_unit_test(test_add),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
