/* The log sanitizer: secrets never reach the journal, control characters
 * are escaped, length is capped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "audit.h"

static void check(const char *in, const char *want)
{
	char out[256];
	audit_sanitize(in, out, sizeof(out));
	assert_string_equal(out, want);
}

static void test_redacts_secrets(void **state)
{
	(void)state;
	check("password=hunter2", "password=***REDACTED***");
	check("login failed: Password: \"hunter2\", retry", "login failed: Password: \"***REDACTED***\", retry");
	check("secret = abc token=xyz", "secret = ***REDACTED*** token=***REDACTED***");
	check("api_key=k123 ok", "api_key=***REDACTED*** ok");
	check("db_password=s3cret", "db_password=***REDACTED***");
	check("{\"token\": \"t0k\"}", "{\"token\": \"***REDACTED***\"}");
	check("Authorization: Bearer eyJhbGc.eyJzdWIi.sig-_~+/=", "Authorization: Bearer ***REDACTED***");
	/* idempotent: what was redacted once is left as it is */
	check("Authorization: Bearer ***REDACTED***", "Authorization: Bearer ***REDACTED***");
	check("password=***REDACTED*** token=***REDACTED***", "password=***REDACTED*** token=***REDACTED***");
	check("id 0123456789abcdefABCDEF here", "id ***REDACTED*** here");
	/* ordinary text is left alone */
	check("Multiple failed logins from 203.0.113.7", "Multiple failed logins from 203.0.113.7");
	check("INC-20261127-1a2b3c4d", "INC-20261127-1a2b3c4d");
	check("keyboard layout", "keyboard layout");
	check("", "");
	check(NULL, "");
}

static void test_escapes_control(void **state)
{
	(void)state;
	check("line1\nline2\r\x1b[31m\x7f", "line1\\x0aline2\\x0d\\x1b[31m\\x7f");
	check("tab\there", "tab\\x09here");
}

static void test_caps_length(void **state)
{
	(void)state;
	char in[600], out[32];
	memset(in, 'a', sizeof(in) - 1);
	for (size_t i = 0; i < sizeof(in) - 1; i += 10)
		in[i] = ' '; /* short words: no alnum run is 20 long */
	in[sizeof(in) - 1] = '\0';
	audit_sanitize(in, out, sizeof(out));
	assert_int_equal(strlen(out), sizeof(out) - 1);
	assert_string_equal(out + strlen(out) - 3, "...");
	/* escaping never splits past the cap */
	audit_sanitize("\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n", out, 10);
	assert_true(strlen(out) <= 9);
}

static void test_event_table(void **state)
{
	(void)state;
	for (int ev = 0; ev < AE_COUNT; ev++) {
		assert_int_equal(strlen(audit_event_id((enum audit_event)ev)), 32);
		assert_string_not_equal(audit_event_name((enum audit_event)ev), "unknown");
		for (int o = 0; o < ev; o++)
			assert_string_not_equal(audit_event_id((enum audit_event)ev),
						audit_event_id((enum audit_event)o));
	}
	assert_string_equal(audit_event_name(AE_ADDR_BLOCKED), "addr_blocked");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_redacts_secrets),
		cmocka_unit_test(test_escapes_control),
		cmocka_unit_test(test_caps_length),
		cmocka_unit_test(test_event_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
