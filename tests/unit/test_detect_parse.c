/* Local detection's line parsers: every form sshd 9.2-10.0, pam_unix and the
 * API's AuditLogger write, and above all that no text a client chose (a
 * user name, a certificate's key ID, a logged value) ever supplies the
 * address. Every line is parsed from an exact-size heap copy, so that ASan
 * sees a read past len. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cleanup.h"
#include "detect_parse.h"

/* ---- helpers --------------------------------------------------------------- */

static bool sshd_n(const char *line, size_t n, struct sshd_line *l)
{
	char *copy = malloc(n ? n : 1);
	assert_non_null(copy);
	memcpy(copy, line, n);
	/* stale values must not survive a refusal */
	memset(l, 0x5a, sizeof(*l));
	bool ok = detect_parse_sshd(copy, n, l);
	free(copy);
	if (!ok) {
		assert_int_equal(l->kind, SSHD_OTHER);
		assert_false(l->has_port);
		assert_int_equal(l->addr.family, 0);
		assert_int_equal(l->user[0], '\0');
	} else {
		assert_int_not_equal(l->kind, SSHD_OTHER);
		assert_true(strlen(l->user) <= DETECT_USER_MAX);
		assert_int_equal(l->addr.len, l->addr.family == AF_INET ? 32 : 128);
	}
	return ok;
}

static bool sshd(const char *line, struct sshd_line *l)
{
	return sshd_n(line, strlen(line), l);
}

static bool api_n(const char *line, size_t n, struct api_line *l)
{
	char *copy = malloc(n ? n : 1);
	assert_non_null(copy);
	memcpy(copy, line, n);
	memset(l, 0x5a, sizeof(*l));
	bool ok = detect_parse_api(copy, n, l);
	free(copy);
	if (!ok) {
		assert_int_equal(l->kind, API_OTHER);
		assert_int_equal(l->addr.family, 0);
		assert_int_equal(l->user[0], '\0');
	}
	return ok;
}

static bool api(const char *line, struct api_line *l)
{
	return api_n(line, strlen(line), l);
}

/* Fills a template: {u} the user, {a} the address, {p} the port (the
 * templates are data, so no printf format is built at run time). */
static void fill(char *out, size_t cap, const char *tmpl, const char *u, const char *a, int port)
{
	char ps[16];
	size_t n = 0;
	snprintf(ps, sizeof(ps), "%d", port);
	for (const char *t = tmpl; *t;) {
		const char *v = NULL;
		if (!strncmp(t, "{u}", 3))
			v = u;
		else if (!strncmp(t, "{a}", 3))
			v = a;
		else if (!strncmp(t, "{p}", 3))
			v = ps;
		size_t k = v ? strlen(v) : 1;
		assert_true(n + k < cap);
		memcpy(out + n, v ? v : t, k);
		n += k;
		t += v ? 3 : 1;
	}
	out[n] = '\0';
}

static const char *addr_text(const struct cvz_prefix *p)
{
	static char buf[CVZ_PREFIX_STRLEN];
	return cvz_prefix_format(p, buf, sizeof(buf));
}

/* ---- sshd: every form -------------------------------------------------------- */

struct form_case {
	const char *line;
	enum sshd_kind kind;
	const char *addr;
	int port; /* -1: none */
	unsigned attempts, floor;
	bool invalid;
	const char *user;
	const char *method;
};

/* As Debian 12's sshd 9.2 and pam_unix 1.5.2 write them (9.8+/10.0 write the
 * same text, from sshd-session). */
static const struct form_case forms[] = {
	{ "Failed password for root from 203.0.113.5 port 52144 ssh2",
	  SSHD_FAILED, "203.0.113.5", 52144, 1, 0, false, "root", "password" },
	{ "Failed password for invalid user admin from 203.0.113.5 port 52146 ssh2",
	  SSHD_FAILED, "203.0.113.5", 52146, 1, 0, true, "admin", "password" },
	{ "Failed password for invalid user admin from 2001:db8::5 port 52146 ssh2",
	  SSHD_FAILED, "2001:db8::5", 52146, 1, 0, true, "admin", "password" },
	{ "Failed password for root from ::ffff:203.0.113.77 port 22 ssh2",
	  SSHD_FAILED, "203.0.113.77", 22, 1, 0, false, "root", "password" },
	{ "Failed keyboard-interactive/pam for invalid user test from 203.0.113.9 port 1022 ssh2",
	  SSHD_FAILED, "203.0.113.9", 1022, 1, 0, true, "test", "keyboard-interactive/pam" },
	{ "Failed keyboard-interactive/bsdauth for root from 203.0.113.9 port 0 ssh2",
	  SSHD_FAILED, "203.0.113.9", 0, 1, 0, false, "root", "keyboard-interactive/bsdauth" },
	{ "Failed none for invalid user guest from 203.0.113.9 port 65535 ssh2",
	  SSHD_FAILED, "203.0.113.9", 65535, 0, 0, true, "guest", "none" },
	{ "Failed publickey for root from 198.51.100.7 port 40022 ssh2: RSA "
	  "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU",
	  SSHD_FAILED, "198.51.100.7", 40022, 1, 0, false, "root", "publickey" },
	{ "Failed publickey for git from 2001:db8:1::7 port 40022 ssh2: ED25519-CERT "
	  "SHA256:x ID alice@example (serial 7) CA ED25519 SHA256:y",
	  SSHD_FAILED, "2001:db8:1::7", 40022, 1, 0, false, "git", "publickey" },
	{ "Failed publickey for invalid user ubuntu from 198.51.100.7 port 1 ssh2: ECDSA "
	  "SHA256:5l4cIDqzHBSa",
	  SSHD_FAILED, "198.51.100.7", 1, 1, 0, true, "ubuntu", "publickey" },
	{ "Failed publickey for root from 198.51.100.7 port 2 ssh2: ED25519 SHA256:q, "
	  "signature count = 3",
	  SSHD_FAILED, "198.51.100.7", 2, 1, 0, false, "root", "publickey" },
	{ "Failed hostbased for root from 198.51.100.8 port 2 ssh2: ECDSA SHA256:z, client "
	  "user \"bob\", client host \"h.example\"",
	  SSHD_FAILED, "198.51.100.8", 2, 1, 0, false, "root", "hostbased" },
	{ "Failed gssapi-with-mic for root from 198.51.100.9 port 3 ssh2: bob@EXAMPLE.ORG",
	  SSHD_FAILED, "198.51.100.9", 3, 1, 0, false, "root", "gssapi-with-mic" },
	{ "Invalid user admin from 203.0.113.5 port 52146",
	  SSHD_INVALID_USER, "203.0.113.5", 52146, 0, 1, true, "admin", "" },
	{ "Invalid user  from 2001:db8::5 port 52146",
	  SSHD_INVALID_USER, "2001:db8::5", 52146, 0, 1, true, "", "" },
	{ "error: maximum authentication attempts exceeded for root from 203.0.113.5 port 52144 "
	  "ssh2 [preauth]",
	  SSHD_MAX_ATTEMPTS, "203.0.113.5", 52144, 0, 1, false, "root", "" },
	{ "error: maximum authentication attempts exceeded for invalid user admin from "
	  "2001:db8::5 port 52144 ssh2 [preauth]",
	  SSHD_MAX_ATTEMPTS, "2001:db8::5", 52144, 0, 1, true, "admin", "" },
	{ "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= "
	  "rhost=203.0.113.9  user=root",
	  SSHD_PAM_FAILURE, "203.0.113.9", -1, 0, 1, false, "root", "" },
	{ "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= "
	  "rhost=203.0.113.9",
	  SSHD_PAM_FAILURE, "203.0.113.9", -1, 0, 1, false, "", "" },
	/* as sent to syslog, before journald strips the trailing space */
	{ "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= "
	  "rhost=2001:db8::9 ",
	  SSHD_PAM_FAILURE, "2001:db8::9", -1, 0, 1, false, "", "" },
	{ "pam_unix(sshd-custom:auth): authentication failure; logname=root uid=0 euid=0 "
	  "tty=ssh ruser= rhost=203.0.113.9  user=alice",
	  SSHD_PAM_FAILURE, "203.0.113.9", -1, 0, 1, false, "alice", "" },
	{ "PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= "
	  "rhost=203.0.113.9  user=root",
	  SSHD_PAM_MORE, "203.0.113.9", -1, 0, 3, false, "root", "" },
	{ "PAM 1 more authentication failure; logname= uid=0 euid=0 tty=ssh ruser= "
	  "rhost=2001:db8::9",
	  SSHD_PAM_MORE, "2001:db8::9", -1, 0, 2, false, "", "" },
	{ "PAM 5 more authentication failures; logname= uid=-1 euid=0 tty=ssh ruser= "
	  "rhost=::ffff:203.0.113.10  user=root",
	  SSHD_PAM_MORE, "203.0.113.10", -1, 0, 6, false, "root", "" },
	{ "Connection closed by authenticating user root 203.0.113.5 port 52144 [preauth]",
	  SSHD_PREAUTH_END, "203.0.113.5", 52144, 0, 1, false, "root", "" },
	{ "Connection closed by invalid user admin 203.0.113.5 port 52146 [preauth]",
	  SSHD_PREAUTH_END, "203.0.113.5", 52146, 0, 1, true, "admin", "" },
	{ "Connection closed by invalid user  203.0.113.5 port 52146 [preauth]",
	  SSHD_PREAUTH_END, "203.0.113.5", 52146, 0, 1, true, "", "" },
	{ "Connection reset by invalid user admin 2001:db8::5 port 52146 [preauth]",
	  SSHD_PREAUTH_END, "2001:db8::5", 52146, 0, 1, true, "admin", "" },
	{ "Connection reset by authenticating user root 2001:db8::5 port 5 [preauth]",
	  SSHD_PREAUTH_END, "2001:db8::5", 5, 0, 1, false, "root", "" },
	{ "Disconnected from invalid user admin 203.0.113.5 port 52146 [preauth]",
	  SSHD_PREAUTH_END, "203.0.113.5", 52146, 0, 1, true, "admin", "" },
	{ "Disconnected from authenticating user root 203.0.113.5 port 52146 [preauth]",
	  SSHD_PREAUTH_END, "203.0.113.5", 52146, 0, 1, false, "root", "" },
	{ "Disconnecting invalid user admin 203.0.113.5 port 52146: Too many authentication "
	  "failures [preauth]",
	  SSHD_PREAUTH_END, "203.0.113.5", 52146, 0, 1, true, "admin", "" },
	{ "Disconnecting authenticating user root 2001:db8::5 port 52146: Too many "
	  "authentication failures [preauth]",
	  SSHD_PREAUTH_END, "2001:db8::5", 52146, 0, 1, false, "root", "" },
};

static void check_form(const struct form_case *f, const struct sshd_line *l)
{
	assert_int_equal(l->kind, f->kind);
	assert_string_equal(addr_text(&l->addr), f->addr);
	assert_int_equal(l->has_port, f->port >= 0);
	if (f->port >= 0)
		assert_int_equal(l->port, f->port);
	assert_int_equal(l->attempts, f->attempts);
	assert_int_equal(l->floor, f->floor);
	assert_int_equal(l->invalid_user, f->invalid);
	assert_string_equal(l->user, f->user);
	assert_false(l->user_truncated);
	assert_string_equal(l->method, f->method);
}

static void test_sshd_forms(void **state)
{
	(void)state;
	struct sshd_line l;
	for (size_t i = 0; i < ELEMENTSOF(forms); i++) {
		if (!sshd(forms[i].line, &l))
			fail_msg("refused: %s", forms[i].line);
		check_form(&forms[i], &l);
	}
}

/* What failed password logins write (Debian 12: UsePAM yes; the six without
 * PAM, whose pam_unix stops sshd's password tries after 3), and what the
 * tracker makes of them: max(sum of attempts, largest floor). One wrong
 * password is one failure however many lines say so; three are three. */
static unsigned connection_failures(const char *const *lines, size_t n)
{
	unsigned sum = 0, floor = 0;
	struct sshd_line l;
	for (size_t i = 0; i < n; i++) {
		if (!sshd(lines[i], &l))
			continue;
		assert_string_equal(addr_text(&l.addr), "203.0.113.5");
		sum += l.attempts;
		floor = l.floor > floor ? l.floor : floor;
	}
	return sum > floor ? sum : floor;
}

static void test_sshd_one_login_counts_once(void **state)
{
	(void)state;
	static const char *const one[] = {
		"Invalid user admin from 203.0.113.5 port 52146",
		"pam_unix(sshd:auth): check pass; user unknown",
		("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh "
		 "ruser= rhost=203.0.113.5"),
		"Failed password for invalid user admin from 203.0.113.5 port 52146 ssh2",
		"Connection closed by invalid user admin 203.0.113.5 port 52146 [preauth]",
	};
	static const char *const three[] = {
		"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh "
		"ruser= rhost=203.0.113.5  user=root",
		"Failed password for root from 203.0.113.5 port 52144 ssh2",
		"Failed password for root from 203.0.113.5 port 52144 ssh2",
		"Failed password for root from 203.0.113.5 port 52144 ssh2",
		"Connection closed by authenticating user root 203.0.113.5 port 52144 [preauth]",
		"PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= "
		"rhost=203.0.113.5  user=root",
	};
	static const char *const six[] = {
		"Failed password for root from 203.0.113.5 port 52144 ssh2",
		"Failed password for root from 203.0.113.5 port 52144 ssh2",
		"Failed password for root from 203.0.113.5 port 52144 ssh2",
		"Failed password for root from 203.0.113.5 port 52144 ssh2",
		"Failed password for root from 203.0.113.5 port 52144 ssh2",
		"Failed password for root from 203.0.113.5 port 52144 ssh2",
		"error: maximum authentication attempts exceeded for root from 203.0.113.5 "
		"port 52144 ssh2 [preauth]",
		"Disconnecting authenticating user root 203.0.113.5 port 52144: Too many "
		"authentication failures [preauth]",
	};
	/* a scanner that named a user and left: one; one that named none: none */
	static const char *const probe[] = {
		"Connection closed by authenticating user root 203.0.113.5 port 52144 [preauth]",
	};
	static const char *const scan[] = {
		"Connection closed by 203.0.113.5 port 52144 [preauth]",
	};
	assert_int_equal(connection_failures(one, ELEMENTSOF(one)), 1);
	assert_int_equal(connection_failures(three, ELEMENTSOF(three)), 3);
	assert_int_equal(connection_failures(six, ELEMENTSOF(six)), 6);
	assert_int_equal(connection_failures(probe, ELEMENTSOF(probe)), 1);
	assert_int_equal(connection_failures(scan, ELEMENTSOF(scan)), 0);
}

static void test_sshd_other(void **state)
{
	(void)state;
	static const char *const other[] = {
		"",
		"F",
		"Failed",
		"Failed password",
		"Connection closed by 203.0.113.5 port 52144 [preauth]",
		"Connection reset by 203.0.113.5 port 52144 [preauth]",
		"Disconnected from 203.0.113.5 port 52144 [preauth]",
		"Accepted password for root from 203.0.113.5 port 52144 ssh2",
		"Accepted publickey for root from 203.0.113.5 port 52144 ssh2: RSA SHA256:x",
		"Postponed keyboard-interactive for root from 203.0.113.5 port 52144 ssh2 [preauth]",
		"Partial publickey for root from 203.0.113.5 port 52144 ssh2: RSA SHA256:x",
		"Received disconnect from 203.0.113.5 port 52144:11: Bye Bye [preauth]",
		"Disconnected from user root 203.0.113.5 port 52144",
		"Connection closed by user root 203.0.113.5 port 52144",
		"Connection closed by authenticating user root 203.0.113.5 port 52144",
		"Disconnecting invalid user x 203.0.113.5 port 1: Change of username or service "
		"not allowed: (x,ssh-connection) -> (y,ssh-connection) [preauth]",
		"Server listening on 0.0.0.0 port 22.",
		"error: PAM: Authentication failure for root from 203.0.113.5",
		"pam_unix(sshd:auth): check pass; user unknown",
		"pam_unix(sshd:session): session opened for user root(uid=0) by (uid=0)",
		"Unable to negotiate with 203.0.113.5 port 52144: no matching key exchange method "
		"found. Their offer: diffie-hellman-group1-sha1 [preauth]",
		"banner exchange: Connection from 203.0.113.5 port 52144: invalid format",
		/* addresses that are not one literal host address */
		"Failed password for root from fe80::1%eth0 port 22 ssh2",
		"Failed password for root from host.example port 22 ssh2",
		"Failed password for root from 203.0.113.5/24 port 22 ssh2",
		"Failed password for root from 203.0.113.5/32 port 22 ssh2",
		"Failed password for root from 203.0.113 port 22 ssh2",
		"Failed password for root from 203.0.113.256 port 22 ssh2",
		"Failed password for root from 0203.0.113.5 port 22 ssh2",
		"Failed password for root from UNKNOWN port 65535 ssh2",
		"Failed password for root from  port 22 ssh2",
		"Failed password for root from 2001:db8:::5 port 22 ssh2",
		"Invalid user admin from 203.0.113.5.example port 52146",
		"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= "
		"rhost=host.example  user=root",
		"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= "
		"rhost=",
		"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= "
		"rhost=  user=root",
		"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= "
		"rhost=fe80::1%eth0  user=root",
		/* ports */
		"Failed password for root from 203.0.113.5 port 65536 ssh2",
		"Failed password for root from 203.0.113.5 port 022 ssh2",
		"Failed password for root from 203.0.113.5 port  ssh2",
		"Failed password for root from 203.0.113.5 port -1 ssh2",
		"Invalid user admin from 203.0.113.5 port 123456",
		"Invalid user admin from 203.0.113.5 port",
		/* malformed or trailing text */
		"Failed password for root from 203.0.113.5 port 22 ssh2 ",
		"Failed password for root from 203.0.113.5 port 22 ssh2: x",
		"Failed password for root from 203.0.113.5 port 22 ssh",
		"Failed password for root from 203.0.113.5 port 22",
		"Failed publickey for root from 203.0.113.5 port 22 ssh2:RSA",
		/* sshd always writes the key (the GSSAPI name) of these: a line
		   without it may be a line cut inside the user name */
		"Failed publickey for root from 203.0.113.5 port 22 ssh2",
		"Failed hostbased for root from 203.0.113.5 port 22 ssh2",
		"Failed gssapi-with-mic for root from 203.0.113.5 port 22 ssh2",
		"Failed publickey for root from 203.0.113.5 port 22 ssh2 ",
		"Failed publickey for root from 203.0.113.5 port 22 ssh2 x",
		"Failed password for root 203.0.113.5 port 22 ssh2",
		"Failed passwd for root from 203.0.113.5 port 22 ssh2",
		"Failed unknown for root from 203.0.113.5 port 22 ssh2",
		"Failed Password for root from 203.0.113.5 port 22 ssh2",
		"Failed password  for root from 203.0.113.5 port 22 ssh2",
		" Failed password for root from 203.0.113.5 port 22 ssh2",
		"Invalid user admin from 203.0.113.5 port 52146 ",
		"Invalid user admin from 203.0.113.5 port 52146 [preauth]",
		"invalid user admin from 203.0.113.5 port 52146",
		"maximum authentication attempts exceeded for root from 203.0.113.5 port 1 ssh2",
		"error: maximum authentication attempts exceeded for root from 203.0.113.5 port 1",
		"Connection closed by invalid user admin 203.0.113.5 port 52146",
		"Connection closed by invalid user admin 203.0.113.5 port 52146 [preauth] ",
		"Connection closed by invalid user admin203.0.113.5 port 52146 [preauth]",
		"Connection closed by invalid user admin from 203.0.113.5 port 52146 [preauth]x",
		"Connection closed by valid user admin 203.0.113.5 port 52146 [preauth]",
		"Disconnecting invalid user admin 203.0.113.5 port 52146: Too many authentication "
		"failures",
		"Disconnecting invalid user admin 203.0.113.5 port 52146 [preauth]",
		"Connection timed out by invalid user admin 203.0.113.5 port 52146 [preauth]",
		"PAM 0 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= "
		"rhost=203.0.113.9  user=root",
		"PAM 01 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= "
		"rhost=203.0.113.9  user=root",
		"PAM 99999999999 more authentication failures; logname= uid=0 euid=0 tty=ssh "
		"ruser= rhost=203.0.113.9  user=root",
		"PAM -2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= "
		"rhost=203.0.113.9  user=root",
		"PAM 2 more authentication failures; logname= uid=x euid=0 tty=ssh ruser= "
		"rhost=203.0.113.9  user=root",
		"PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= "
		"rhost=203.0.113.9 user=root",
		"PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser=a b "
		"rhost=203.0.113.9  user=root",
		"PAM 2 more authentication failures logname= uid=0 euid=0 tty=ssh ruser= "
		"rhost=203.0.113.9  user=root",
		"pam_unix(sshd:auth): authentication failure; uid=0 euid=0 tty=ssh ruser= "
		"rhost=203.0.113.9  user=root",
		"pam_unix(:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= "
		"rhost=203.0.113.9  user=root",
		"pam_unix(sshd:account): authentication failure; logname= uid=0 euid=0 tty=ssh "
		"ruser= rhost=203.0.113.9  user=root",
		"pam_unix(ss hd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= "
		"rhost=203.0.113.9  user=root",
	};
	struct sshd_line l;
	for (size_t i = 0; i < ELEMENTSOF(other); i++)
		if (sshd(other[i], &l))
			fail_msg("taken (%d, %s): %s", l.kind, addr_text(&l.addr), other[i]);
	assert_false(detect_parse_sshd(NULL, 0, &l));
	assert_int_equal(l.kind, SSHD_OTHER);
	assert_false(detect_parse_sshd(NULL, 10, &l));
}

/* ---- sshd: user names chosen to look like an address ---------------------------- */

/* Names a client may send. sshd cuts a name at its first ':' (the login
 * style) before any line is written, so the names with ':' cannot reach an
 * sshd line; they are tried anyway where the reading does not rely on it. */
static const char *const crafted[] = {
	"x from 198.51.100.88 port 22",
	"x from 198.51.100.88 port 22 ssh2",
	"x from 198.51.100.88 port 22 ssh2 [preauth]",
	"x 198.51.100.89 port 22 [preauth]",
	"x 198.51.100.89 port 22",
	"198.51.100.90",
	"198.51.100.90 port 22",
	" port 1 ssh2",
	"port 1 ssh2",
	" ssh2",
	"ssh2",
	"[preauth]",
	" [preauth]",
	"from",
	"from ",
	" from",
	"from 198.51.100.91",
	" from 198.51.100.91 port 1",
	"invalid user y",
	"authenticating user y 198.51.100.92 port 9",
	"y: Too many authentication failures [preauth] 198.51.100.93 port 9",
	" rhost=198.51.100.94",
	"  user=root rhost=198.51.100.95",
	"x rhost=198.51.100.96  user=y",
	"x from 2001:db8::66 port 22 ssh2",
	"2001:db8::67",
	"x from ::ffff:198.51.100.97 port 22 ssh2",
	"x from 198.51.100.98 port 22 ssh2: RSA SHA256:abc",
	"x 198.51.100.99 port 22: Too many authentication failures [preauth]",
	" ",
	"  ",
	"",
	"\\001\\377 from 198.51.100.100 port 22 ssh2",
	"a\tb\rc",
	"x from 198.51.100.101 port 22 ssh2 from 198.51.100.102 port 23 ssh2",
};

struct shape {
	const char *tmpl; /* for fill() */
	enum sshd_kind kind;
	/* read the same even if a name held ':' */
	bool colon_safe;
	/* a line cut inside the name is never read as this form: its end
	   needs a ':' (see test_sshd_prefixes) */
	bool cut_safe;
};

static const struct shape shapes[] = {
	{ "Failed password for {u} from {a} port {p} ssh2", SSHD_FAILED, true, false },
	{ "Failed password for invalid user {u} from {a} port {p} ssh2", SSHD_FAILED, true, false },
	{ "Failed keyboard-interactive/pam for invalid user {u} from {a} port {p} ssh2",
	  SSHD_FAILED, true, false },
	{ "Failed none for invalid user {u} from {a} port {p} ssh2", SSHD_FAILED, true, false },
	{ "Failed publickey for {u} from {a} port {p} ssh2: RSA SHA256:abc", SSHD_FAILED, false, true },
	{ "Failed publickey for invalid user {u} from {a} port {p} ssh2: ED25519 SHA256:q",
	  SSHD_FAILED, false, true },
	{ "Failed gssapi-with-mic for {u} from {a} port {p} ssh2: a@B", SSHD_FAILED, false, true },
	{ "Invalid user {u} from {a} port {p}", SSHD_INVALID_USER, true, false },
	{ "error: maximum authentication attempts exceeded for {u} from {a} port {p} ssh2 [preauth]",
	  SSHD_MAX_ATTEMPTS, true, false },
	{ "error: maximum authentication attempts exceeded for invalid user {u} from {a} port {p} "
	  "ssh2 [preauth]",
	  SSHD_MAX_ATTEMPTS, true, false },
	{ "Connection closed by invalid user {u} {a} port {p} [preauth]", SSHD_PREAUTH_END, true, false },
	{ "Connection closed by authenticating user {u} {a} port {p} [preauth]",
	  SSHD_PREAUTH_END, true, false },
	{ "Connection reset by invalid user {u} {a} port {p} [preauth]", SSHD_PREAUTH_END, true, false },
	{ "Disconnected from invalid user {u} {a} port {p} [preauth]", SSHD_PREAUTH_END, true, false },
	{ "Disconnecting invalid user {u} {a} port {p}: Too many authentication failures [preauth]",
	  SSHD_PREAUTH_END, true, true },
};

/* pam_unix writes the user last; no port */
static const char *const pam_shapes[] = {
	"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= "
	"rhost={a}  user={u}",
	"PAM 3 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= "
	"rhost={a}  user={u}",
};

static void expect_real(const char *line, enum sshd_kind kind, const char *addr, int port,
			const char *user)
{
	struct sshd_line l;
	if (!sshd(line, &l))
		fail_msg("refused: %s", line);
	assert_int_equal(l.kind, kind);
	if (strcmp(addr_text(&l.addr), addr) != 0)
		fail_msg("address %s, not %s, from: %s", addr_text(&l.addr), addr, line);
	assert_int_equal(l.has_port, port >= 0);
	if (port >= 0)
		assert_int_equal(l.port, port);
	if (user && strlen(user) > DETECT_USER_MAX) {
		assert_true(l.user_truncated);
		assert_int_equal(strlen(l.user), DETECT_USER_MAX);
		assert_memory_equal(l.user, user, DETECT_USER_MAX);
	} else if (user) {
		assert_false(l.user_truncated);
		assert_string_equal(l.user, user);
	}
}

static void test_sshd_crafted_users(void **state)
{
	(void)state;
	static const char *const real[] = { "203.0.113.2", "2001:db8:ffff::2" };
	char line[1024];
	for (size_t u = 0; u < ELEMENTSOF(crafted); u++) {
		bool colon = strchr(crafted[u], ':') != NULL;
		for (size_t r = 0; r < ELEMENTSOF(real); r++) {
			for (size_t s = 0; s < ELEMENTSOF(shapes); s++) {
				if (colon && !shapes[s].colon_safe)
					continue;
				fill(line, sizeof(line), shapes[s].tmpl, crafted[u], real[r], 60654);
				/* "for invalid user y" reads as the invalid user "y":
				   the name is ambiguous there, the address is not */
				expect_real(line, shapes[s].kind, real[r], 60654,
					    strncmp(crafted[u], "invalid user ", 13) ? crafted[u] : NULL);
			}
			for (size_t s = 0; s < ELEMENTSOF(pam_shapes); s++) {
				fill(line, sizeof(line), pam_shapes[s], crafted[u], real[r], 0);
				expect_real(line, s ? SSHD_PAM_MORE : SSHD_PAM_FAILURE, real[r], -1,
					    crafted[u]);
			}
		}
	}
	/* the two lines of the brief, whole */
	expect_real("Failed password for invalid user x from 198.51.100.88 port 22 from "
		    "203.0.113.2 port 60654 ssh2",
		    SSHD_FAILED, "203.0.113.2", 60654, "x from 198.51.100.88 port 22");
	expect_real("Connection closed by invalid user x 198.51.100.89 port 22 [preauth] "
		    "203.0.113.130 port 43618 [preauth]",
		    SSHD_PREAUTH_END, "203.0.113.130", 43618, "x 198.51.100.89 port 22 [preauth]");
}

/* The text after "ssh2: " is the client's too (a certificate's key ID, a
 * hostbased client's names, a GSSAPI name): the first "port P ssh2" that
 * sshd could have followed with ": " is the address, whatever comes later. */
static void test_sshd_crafted_extra(void **state)
{
	(void)state;
	static const char *const lines[] = {
		"Failed publickey for root from 203.0.113.2 port 60654 ssh2: RSA-CERT SHA256:x ID "
		"k from 198.51.100.1 port 22 ssh2: RSA SHA256:y (serial 1) CA RSA SHA256:z",
		"Failed publickey for root from 203.0.113.2 port 60654 ssh2: RSA-CERT SHA256:x ID "
		"k from 198.51.100.1 port 22 ssh2",
		"Failed publickey for x from 198.51.100.3 port 1 ssh2 from 203.0.113.2 port 60654 "
		"ssh2: RSA-CERT SHA256:x ID from 198.51.100.4 port 2 ssh2: (serial 1) CA RSA SHA256:z",
		"Failed hostbased for root from 203.0.113.2 port 60654 ssh2: ECDSA SHA256:z, client "
		"user \"u from 198.51.100.5 port 1 ssh2\", client host \"from 198.51.100.6 port 2 ssh2\"",
		"Failed gssapi-with-mic for root from 203.0.113.2 port 60654 ssh2: a from "
		"198.51.100.7 port 3 ssh2",
		"Failed gssapi-with-mic for root from 203.0.113.2 port 60654 ssh2: : from "
		"198.51.100.7 port 3 ssh2: ",
	};
	for (size_t i = 0; i < ELEMENTSOF(lines); i++)
		expect_real(lines[i], SSHD_FAILED, "203.0.113.2", 60654, NULL);
	/* the first match decides: when it is no address, nothing later is */
	struct sshd_line l;
	assert_false(sshd("Failed publickey for root from fe80::1%eth0 port 22 ssh2: RSA-CERT "
			  "SHA256:x ID from 198.51.100.1 port 22 ssh2",
			  &l));
	assert_false(sshd("Failed publickey for root from host.example port 22 ssh2: ID from "
			  "198.51.100.1 port 22 ssh2",
			  &l));
}

/* A name of 100 bytes, each escaped to 4 characters, still leaves the
 * address of a Failed/Invalid line whole (sshd writes at most 100 bytes of
 * it), and the user field is cut at DETECT_USER_MAX. */
static void test_sshd_long_users(void **state)
{
	(void)state;
	char user[512], line[1024];
	struct sshd_line l;

	for (size_t i = 0; i < 100; i++)
		memcpy(user + 4 * i, "\\001", 4);
	user[400] = '\0';
	snprintf(line, sizeof(line), "Failed password for invalid user %s from 2001:db8::2 port "
		 "60654 ssh2", user);
	assert_true(strlen(line) < 500);
	expect_real(line, SSHD_FAILED, "2001:db8::2", 60654, NULL);
	assert_true(sshd(line, &l));
	assert_true(l.user_truncated);
	assert_int_equal(strlen(l.user), DETECT_USER_MAX);
	assert_memory_equal(l.user, user, DETECT_USER_MAX);

	/* exactly DETECT_USER_MAX: not truncated */
	memset(user, 'u', DETECT_USER_MAX);
	user[DETECT_USER_MAX] = '\0';
	snprintf(line, sizeof(line), "Invalid user %s from 203.0.113.2 port 1", user);
	assert_true(sshd(line, &l));
	assert_false(l.user_truncated);
	assert_string_equal(l.user, user);

	/* a cut never splits a UTF-8 character (PAM lines are raw bytes) */
	memset(user, 'u', DETECT_USER_MAX - 1);
	memcpy(user + DETECT_USER_MAX - 1, "\xc3\xa9z", 4);
	snprintf(line, sizeof(line), "pam_unix(sshd:auth): authentication failure; logname= "
		 "uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.2  user=%s", user);
	assert_true(sshd(line, &l));
	assert_true(l.user_truncated);
	assert_int_equal(strlen(l.user), DETECT_USER_MAX - 1);

	/* pam_unix writes the whole name, however long: the address is before */
	size_t big = 200000;
	char *huge = malloc(big + 200);
	assert_non_null(huge);
	int h = snprintf(huge, 200, "PAM 1 more authentication failure; logname= uid=0 euid=0 "
			 "tty=ssh ruser= rhost=203.0.113.2  user=");
	for (size_t i = 0; i < big; i++)
		huge[h + i] = " rhost=198.51.100.1 "[i % 20];
	assert_true(sshd_n(huge, (size_t)h + big, &l));
	assert_string_equal(addr_text(&l.addr), "203.0.113.2");
	assert_true(l.user_truncated);
	free(huge);
}

/* sshd hands syslog 500 bytes at most, and journald strips the spaces a
 * cut leaves: a name that ends in a forged "A port P [preauth]" and
 * spaces, escaped long enough, would end a cut line. Such lines (313 bytes
 * or more, for the forms read from the right) are refused. */
static void test_sshd_cut_lines(void **state)
{
	(void)state;
	static const char *const heads[] = {
		"Connection closed by invalid user ",
		"Disconnected from authenticating user ",
		"Invalid user ",
		"error: maximum authentication attempts exceeded for invalid user ",
	};
	static const char *const forged[] = {
		" 198.51.100.66 port 22 [preauth]",
		" from 198.51.100.66 port 22",
		" from 198.51.100.66 port 22 ssh2 [preauth]",
	};
	char line[2048];
	struct sshd_line l;

	for (size_t h = 0; h < ELEMENTSOF(heads); h++)
		for (size_t f = 0; f < ELEMENTSOF(forged); f++)
			for (size_t esc = 0; esc <= 120; esc++)
				for (size_t spaces = 0; spaces <= 180; spaces += 6) {
					size_t n = (size_t)snprintf(line, sizeof(line), "%s", heads[h]);
					for (size_t i = 0; i < esc; i++)
						n += (size_t)snprintf(line + n, sizeof(line) - n, "\\\\001");
					n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%*s",
							      forged[f], (int)spaces, "");
					n += (size_t)snprintf(line + n, sizeof(line) - n,
							      " 203.0.113.2 port 60654 [preauth]");
					if (n < 500)
						continue; /* not cut: tested elsewhere */
					/* sshd's cut, then journald's strip */
					n = 500;
					while (n > 0 && line[n - 1] == ' ')
						n--;
					if (sshd_n(line, n, &l) &&
					    strcmp(addr_text(&l.addr), "203.0.113.2") != 0)
						fail_msg("forged %s from a cut line of %zu bytes",
							 addr_text(&l.addr), n);
				}

	/* the bound itself: 312 bytes are read, 313 are not */
	char user[400];
	const char *tmpl = "Connection closed by invalid user {u} 203.0.113.2 port 60654 [preauth]";
	size_t fixed = strlen(tmpl) - 3;
	memset(user, 'u', sizeof(user));
	user[312 - fixed] = '\0';
	fill(line, sizeof(line), tmpl, user, NULL, 0);
	assert_int_equal(strlen(line), 312);
	assert_true(sshd(line, &l));
	user[312 - fixed] = 'u';
	user[313 - fixed] = '\0';
	fill(line, sizeof(line), tmpl, user, NULL, 0);
	assert_false(sshd(line, &l));

	/* sshd never writes 1024 bytes: a Failed line that long is not its */
	char big[1100];
	memset(big, 'k', sizeof(big));
	int n = snprintf(big, 200, "Failed publickey for root from 203.0.113.2 port 1 ssh2: ");
	big[n] = 'k';
	assert_true(sshd_n(big, 1023, &l));
	assert_false(sshd_n(big, 1024, &l));
}

/* Every prefix of a line: no crash, no read past it (ASan), and an address
 * only when it is the real one.
 *   - Real names, every form. A PAM line that names no user ends at its
 *     address, so a prefix that stops inside the address reads as a
 *     shorter one; libpam writes its lines whole, journald keeps them
 *     whole, and the ~80 bytes before the address are the server's, so no
 *     cut lands there: those prefixes only may differ.
 *   - Crafted names, on the forms whose end a name cannot spell (it needs a
 *     ':') and on the PAM forms (the name comes after the address). On the
 *     other forms a prefix that ends inside a crafted name is itself a
 *     line sshd could write for a shorter name: they are safe because such
 *     lines are never cut, which test_sshd_cut_lines holds against the
 *     one cut there is (sshd's, at 500 bytes). */
static void check_prefixes(const char *line, const char *real)
{
	size_t len = strlen(line), a0 = 0, a1 = 0;
	const char *rh = strstr(line, " rhost=");
	struct sshd_line l;

	if (rh && (!strncmp(line, "pam_unix(", 9) || !strncmp(line, "PAM ", 4))) {
		a0 = (size_t)(rh - line) + 7;
		a1 = a0 + strcspn(rh + 7, " ");
	}
	for (size_t n = 0; n <= len; n++) {
		if (!sshd_n(line, n, &l) || strcmp(addr_text(&l.addr), real) == 0)
			continue;
		if (n > a0 && n < a1)
			continue; /* inside a PAM line's address, see above */
		fail_msg("prefix of %zu bytes gave %s: %s", n, addr_text(&l.addr), line);
	}
}

static void test_sshd_prefixes(void **state)
{
	(void)state;
	char line[1024];
	for (size_t i = 0; i < ELEMENTSOF(forms); i++)
		check_prefixes(forms[i].line, forms[i].addr);
	for (size_t u = 0; u < ELEMENTSOF(crafted); u++) {
		if (strchr(crafted[u], ':'))
			continue;
		for (size_t s = 0; s < ELEMENTSOF(shapes); s++) {
			if (!shapes[s].cut_safe)
				continue;
			fill(line, sizeof(line), shapes[s].tmpl, crafted[u], "203.0.113.2", 60654);
			check_prefixes(line, "203.0.113.2");
		}
		for (size_t s = 0; s < ELEMENTSOF(pam_shapes); s++) {
			fill(line, sizeof(line), pam_shapes[s], crafted[u], "2001:db8::2", 0);
			check_prefixes(line, "2001:db8::2");
		}
	}
}

/* Any bytes: lines are length-delimited, a NUL is just a byte, and bytes
 * that are not UTF-8 are a name's business. */
static void test_sshd_bytes(void **state)
{
	(void)state;
	struct sshd_line l;
	static const char nul_user[] = "Failed password for invalid user a\0b\xff\xfe from "
				       "203.0.113.2 port 60654 ssh2";
	assert_true(sshd_n(nul_user, sizeof(nul_user) - 1, &l));
	assert_string_equal(addr_text(&l.addr), "203.0.113.2");
	assert_string_equal(l.user, "a?b\xff\xfe");

	static const char pam_nl[] = "pam_unix(sshd:auth): authentication failure; logname= uid=0 "
				     "euid=0 tty=ssh ruser= rhost=203.0.113.2  user=a\nb\0 rhost=198.51.100.1";
	assert_true(sshd_n(pam_nl, sizeof(pam_nl) - 1, &l));
	assert_string_equal(addr_text(&l.addr), "203.0.113.2");
	assert_string_equal(l.user, "a\nb? rhost=198.51.100.1");

	/* a NUL inside the address or the fixed words: not sshd's */
	static const char nul_addr[] = "Failed password for root from 203.0.\0.2 port 1 ssh2";
	assert_false(sshd_n(nul_addr, sizeof(nul_addr) - 1, &l));
	static const char nul_port[] = "Invalid user a from 203.0.113.2 port 1\0";
	assert_false(sshd_n(nul_port, sizeof(nul_port) - 1, &l));
	static const char nul_tail[] = "Connection closed by invalid user a 203.0.113.2 port 1 "
				       "[preauth]\0";
	assert_false(sshd_n(nul_tail, sizeof(nul_tail) - 1, &l));
	/* len is the end: what follows it is never read */
	static const char longer[] = "Invalid user a from 203.0.113.2 port 1 and more";
	assert_true(sshd_n(longer, strlen("Invalid user a from 203.0.113.2 port 1"), &l));
	assert_int_equal(l.port, 1);

	/* every byte value in the user name and right after the head */
	char line[256];
	for (int b = 0; b < 256; b++) {
		int n = snprintf(line, sizeof(line), "Invalid user x%cy from 203.0.113.2 port 7", 'Q');
		line[14] = (char)b;
		assert_true(sshd_n(line, (size_t)n, &l));
		assert_string_equal(addr_text(&l.addr), "203.0.113.2");
		assert_int_equal((unsigned char)l.user[1], b ? b : '?');
		n = snprintf(line, sizeof(line), "Failed %cassword for x from 203.0.113.2 port 7 ssh2",
			     'p');
		line[7] = (char)b;
		assert_int_equal(sshd_n(line, (size_t)n, &l), b == 'p');
	}
}

/* ---- the API -------------------------------------------------------------------- */

#define AUTH_FAIL                                                                          \
	"{\"event\": \"authentication_event\", \"event_type\": \"failed_login\", "           \
	"\"user_id\": \"alice\", \"source_ip\": \"203.0.113.5\", \"user_agent\": "           \
	"\"curl/7.88.1\", \"success\": false, \"timestamp\": \"2026-12-05T13:25:10.123456\", " \
	"\"details\": {\"reason\": \"bad password\"}, \"level\": \"info\", \"logger\": \"audit\"}"

static void test_api_auth(void **state)
{
	(void)state;
	struct api_line l;

	assert_true(api(AUTH_FAIL, &l));
	assert_int_equal(l.kind, API_AUTH_FAILED);
	assert_string_equal(addr_text(&l.addr), "203.0.113.5");
	assert_int_equal(l.addr.len, 32);
	assert_string_equal(l.user, "alice");
	assert_false(l.user_truncated);
	assert_string_equal(l.event_type, "failed_login");
	assert_string_equal(l.severity, "");

	static const char *const good[][2] = {
		{ "{\"event\": \"authentication_event\", \"source_ip\": \"2001:db8::5\", "
		  "\"success\": false}", "2001:db8::5" },
		{ "{\"event\": \"authentication_event\", \"source_ip\": \"::ffff:203.0.113.6\", "
		  "\"success\": false, \"user_id\": null}", "203.0.113.6" },
		{ "{\"success\":false,\"source_ip\":\"203.0.113.7\",\"event\":\"authentication_event\"}",
		  "203.0.113.7" },
		{ " \n{\"event\": \"authentication_event\", \"source_ip\": \"203.0.113.8\", "
		  "\"success\": false}\n", "203.0.113.8" },
	};
	for (size_t i = 0; i < ELEMENTSOF(good); i++) {
		if (!api(good[i][0], &l))
			fail_msg("refused: %s", good[i][0]);
		assert_int_equal(l.kind, API_AUTH_FAILED);
		assert_string_equal(addr_text(&l.addr), good[i][1]);
		assert_string_equal(l.user, "");
		assert_string_equal(l.event_type, "");
	}
}

static void test_api_security(void **state)
{
	(void)state;
	struct api_line l;
	static const char *const sev[][2] = {
		{ "high", "high" }, { "critical", "critical" }, { "HIGH", "high" },
		{ "Critical", "critical" }, { "hIgH", "high" },
	};
	char line[512];
	for (size_t i = 0; i < ELEMENTSOF(sev); i++) {
		snprintf(line, sizeof(line),
			 "{\"event\": \"security_event\", \"event_type\": \"multiple_failed_logins\", "
			 "\"severity\": \"%s\", \"description\": \"Multiple failed login attempts\", "
			 "\"source_ip\": \"198.51.100.4\", \"user_id\": null, \"timestamp\": "
			 "\"2026-12-05T13:25:10\", \"details\": {\"ip_address\": \"198.51.100.4\", "
			 "\"user_id\": \"root\", \"attempt_count\": 5}, \"level\": \"warning\"}",
			 sev[i][0]);
		assert_true(api(line, &l));
		assert_int_equal(l.kind, API_SECURITY);
		assert_string_equal(l.severity, sev[i][1]);
		assert_string_equal(addr_text(&l.addr), "198.51.100.4");
		assert_string_equal(l.event_type, "multiple_failed_logins");
		assert_string_equal(l.user, "");
	}
	static const char *const not_blocking[] = {
		"medium", "low", "info", "highest", "hig", "", " high", "high ", "critical!",
		"h\\u0000igh", "high\\u0000", "\\u0068igh", /* that one is "high": see below */
	};
	for (size_t i = 0; i < ELEMENTSOF(not_blocking); i++) {
		snprintf(line, sizeof(line),
			 "{\"event\": \"security_event\", \"severity\": \"%s\", \"source_ip\": "
			 "\"198.51.100.4\"}", not_blocking[i]);
		/* an escape is the same string to JSON: \u0068 is "h" */
		assert_int_equal(api(line, &l), strcmp(not_blocking[i], "\\u0068igh") == 0);
	}
	assert_false(api("{\"event\": \"security_event\", \"source_ip\": \"198.51.100.4\"}", &l));
	assert_false(api("{\"event\": \"security_event\", \"severity\": null, \"source_ip\": "
			 "\"198.51.100.4\"}", &l));
	assert_false(api("{\"event\": \"security_event\", \"severity\": 5, \"source_ip\": "
			 "\"198.51.100.4\"}", &l));
	assert_false(api("{\"event\": \"security_event\", \"severity\": [\"high\"], "
			 "\"source_ip\": \"198.51.100.4\"}", &l));
	/* the incident worker's "system" is no address */
	assert_false(api("{\"event\": \"security_event\", \"severity\": \"high\", \"source_ip\": "
			 "\"system\"}", &l));
}

static void test_api_refused(void **state)
{
	(void)state;
	struct api_line l;
	static const char *const bad[] = {
		"",
		"{",
		"}",
		"{}",
		"[]",
		"null",
		"\"authentication_event\"",
		"[{\"event\": \"authentication_event\", \"source_ip\": \"203.0.113.5\", "
		"\"success\": false}]",
		"not json at all",
		"2026-12-05 INFO authentication_event source_ip=203.0.113.5 success=false",
		/* success */
		"{\"event\": \"authentication_event\", \"source_ip\": \"203.0.113.5\", \"success\": true}",
		"{\"event\": \"authentication_event\", \"source_ip\": \"203.0.113.5\", \"success\": \"false\"}",
		"{\"event\": \"authentication_event\", \"source_ip\": \"203.0.113.5\", \"success\": 0}",
		"{\"event\": \"authentication_event\", \"source_ip\": \"203.0.113.5\", \"success\": null}",
		"{\"event\": \"authentication_event\", \"source_ip\": \"203.0.113.5\", \"success\": []}",
		"{\"event\": \"authentication_event\", \"source_ip\": \"203.0.113.5\"}",
		/* event */
		"{\"source_ip\": \"203.0.113.5\", \"success\": false}",
		"{\"event\": \"api_request\", \"source_ip\": \"203.0.113.5\", \"success\": false}",
		"{\"event\": \"authorization_event\", \"source_ip\": \"203.0.113.5\", \"granted\": false}",
		"{\"event\": \"Authentication_event\", \"source_ip\": \"203.0.113.5\", \"success\": false}",
		"{\"event\": \"authentication_event \", \"source_ip\": \"203.0.113.5\", \"success\": false}",
		"{\"event\": \"authentication_event\\u0000\", \"source_ip\": \"203.0.113.5\", "
		"\"success\": false}",
		"{\"event\": [\"authentication_event\"], \"source_ip\": \"203.0.113.5\", \"success\": false}",
		"{\"details\": {\"event\": \"authentication_event\", \"source_ip\": \"203.0.113.5\", "
		"\"success\": false}}",
		/* source_ip */
		"{\"event\": \"authentication_event\", \"success\": false}",
		"{\"event\": \"authentication_event\", \"source_ip\": null, \"success\": false}",
		"{\"event\": \"authentication_event\", \"source_ip\": \"not an ip\", \"success\": false}",
		"{\"event\": \"authentication_event\", \"source_ip\": \"unknown\", \"success\": false}",
		"{\"event\": \"authentication_event\", \"source_ip\": \"testclient\", \"success\": false}",
		"{\"event\": \"authentication_event\", \"source_ip\": \"203.0.113.5/32\", \"success\": false}",
		"{\"event\": \"authentication_event\", \"source_ip\": \"10.0.0.0/8\", \"success\": false}",
		"{\"event\": \"authentication_event\", \"source_ip\": \"fe80::1%eth0\", \"success\": false}",
		"{\"event\": \"authentication_event\", \"source_ip\": \" 203.0.113.5\", \"success\": false}",
		"{\"event\": \"authentication_event\", \"source_ip\": \"203.0.113.5 \", \"success\": false}",
		"{\"event\": \"authentication_event\", \"source_ip\": \"203.0.113.5:443\", \"success\": false}",
		"{\"event\": \"authentication_event\", \"source_ip\": \"[2001:db8::5]\", \"success\": false}",
		"{\"event\": \"authentication_event\", \"source_ip\": \"203.0.113.5\\u0000\", "
		"\"success\": false}",
		"{\"event\": \"authentication_event\", \"source_ip\": 3405803781, \"success\": false}",
		"{\"event\": \"authentication_event\", \"source_ip\": [\"203.0.113.5\"], \"success\": false}",
		"{\"event\": \"authentication_event\", \"source_ip\": \"\", \"success\": false}",
		/* duplicate keys: which one would be meant? */
		"{\"event\": \"authentication_event\", \"source_ip\": \"203.0.113.5\", \"source_ip\": "
		"\"198.51.100.1\", \"success\": false}",
		"{\"event\": \"authentication_event\", \"source_ip\": \"203.0.113.5\", \"success\": "
		"false, \"success\": true}",
		"{\"event\": \"authentication_event\", \"source_ip\": \"203.0.113.5\", \"success\": "
		"false, \"details\": {\"a\": 1, \"a\": 2}}",
		/* trailing text, two objects */
		"{\"event\": \"authentication_event\", \"source_ip\": \"203.0.113.5\", \"success\": false} x",
		"{\"event\": \"authentication_event\", \"source_ip\": \"203.0.113.5\", \"success\": "
		"false}{\"event\": \"authentication_event\", \"source_ip\": \"203.0.113.6\", "
		"\"success\": false}",
	};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++)
		if (api(bad[i], &l))
			fail_msg("taken: %s", bad[i]);
	assert_false(detect_parse_api(NULL, 0, &l));
	assert_int_equal(l.kind, API_OTHER);
	assert_false(detect_parse_api(NULL, 5, &l));

	/* bytes that are not UTF-8, a raw NUL or control byte: jansson refuses
	   them (json.dumps writes ASCII only) */
	static const char raw[][128] = {
		"{\"event\": \"authentication_event\", \"source_ip\": \"203.0.113.5\", \"success\": "
		"false, \"a\": \"\xff\"}",
		"{\"event\": \"authentication_event\", \"source_ip\": \"203.0.113.5\", \"success\": "
		"false, \"a\": \"\xc3\"}",
		"{\"event\": \"authentication_event\", \"source_ip\": \"203.0.113.5\", \"success\": "
		"false, \"a\": \"\x01\"}",
		"{\"event\": \"authentication_event\", \"source_ip\": \"203.0.113.5\", \"success\": "
		"false, \"a\": \"\n\"}",
	};
	for (size_t i = 0; i < ELEMENTSOF(raw); i++)
		assert_false(api(raw[i], &l));
	static const char nul[] = "{\"event\": \"authentication_event\", \"source_ip\": "
				  "\"203.0.113.5\", \"success\": false}\0";
	assert_false(api_n(nul, sizeof(nul) - 1, &l));
	assert_true(api_n(nul, sizeof(nul) - 2, &l));
	static const char nul_mid[] = "{\"event\": \"authentication_event\", \"source_ip\": "
				      "\"203.0.113.5\", \"u\": \"a\0b\", \"success\": false}";
	assert_false(api_n(nul_mid, sizeof(nul_mid) - 1, &l));
}

static void test_api_user(void **state)
{
	(void)state;
	struct api_line l;
	char line[1024];
	const char *tmpl = "{\"event\": \"authentication_event\", \"source_ip\": \"203.0.113.5\", "
			   "\"success\": false, \"user_id\": {u}}";
	static const char *const users[][2] = {
		{ "null", "" },
		{ "42", "42" },
		{ "-7", "-7" },
		{ "\"\"", "" },
		{ "\"a\\u0000b\"", "a?b" },
		{ "\"caf\\u00e9\"", "caf\xc3\xa9" },
		{ "\"x\\\" from 198.51.100.1\"", "x\" from 198.51.100.1" },
		{ "1.5", "" },
		{ "true", "" },
		{ "{\"id\": 1}", "" },
		{ "[1]", "" },
	};
	for (size_t i = 0; i < ELEMENTSOF(users); i++) {
		fill(line, sizeof(line), tmpl, users[i][0], NULL, 0);
		assert_true(api(line, &l));
		assert_string_equal(l.user, users[i][1]);
		assert_false(l.user_truncated);
		assert_string_equal(addr_text(&l.addr), "203.0.113.5");
	}
	/* 63 ASCII then a 2-byte character: the cut keeps no half of it */
	char name[200] = "\"";
	memset(name + 1, 'a', DETECT_USER_MAX - 1);
	memcpy(name + DETECT_USER_MAX, "\\u00e9zz\"", sizeof("\\u00e9zz\""));
	fill(line, sizeof(line), tmpl, name, NULL, 0);
	assert_true(api(line, &l));
	assert_true(l.user_truncated);
	assert_int_equal(strlen(l.user), DETECT_USER_MAX - 1);
	/* event_type is cut to its field too */
	char et[300];
	memset(et, 'e', sizeof(et));
	et[299] = '\0';
	snprintf(line, sizeof(line), "{\"event\": \"authentication_event\", \"source_ip\": "
		 "\"203.0.113.5\", \"success\": false, \"event_type\": \"%s\"}", et);
	assert_true(api(line, &l));
	assert_int_equal(strlen(l.event_type), sizeof(l.event_type) - 1);
	snprintf(line, sizeof(line), "{\"event\": \"authentication_event\", \"source_ip\": "
		 "\"203.0.113.5\", \"success\": false, \"event_type\": 7}");
	assert_true(api(line, &l));
	assert_string_equal(l.event_type, "");
}

/* What Python's json.dumps writes and jansson alone refuses, where a client
 * can put it: a lone surrogate and NaN/Infinity in a logged value. */
static void test_api_python_json(void **state)
{
	(void)state;
	struct api_line l;
	static const char *const hidden[] = {
		"\"details\": {\"username\": \"\\ud800\"}",
		"\"details\": {\"username\": \"a\\udfffb\"}",
		"\"details\": {\"username\": \"\\ud800\\ud800\\udc00\"}",
		"\"details\": {\"username\": \"\\udbff\\u0041\"}",
		"\"details\": {\"username\": \"\\uDC00\"}",
		"\"user_agent\": \"\\ud83d\"",
		"\"details\": {\"amount\": NaN}",
		"\"details\": {\"amount\": Infinity, \"b\": -Infinity}",
		"\"details\": {\"v\": [NaN, -Infinity,Infinity]}",
	};
	char line[512];
	for (size_t i = 0; i < ELEMENTSOF(hidden); i++) {
		snprintf(line, sizeof(line), "{\"event\": \"authentication_event\", \"source_ip\": "
			 "\"203.0.113.5\", \"success\": false, %s}", hidden[i]);
		if (!api(line, &l))
			fail_msg("hidden by: %s", hidden[i]);
		assert_string_equal(addr_text(&l.addr), "203.0.113.5");
	}
	/* a lone surrogate in user_id is U+FFFD; a pair stays itself */
	assert_true(api("{\"event\": \"authentication_event\", \"source_ip\": \"203.0.113.5\", "
			"\"success\": false, \"user_id\": \"a\\ud800b\\ud83d\\ude00\"}", &l));
	assert_string_equal(l.user, "a\xef\xbf\xbd" "b\xf0\x9f\x98\x80");
	/* an escaped backslash before "ud800" is text, left alone */
	assert_true(api("{\"event\": \"authentication_event\", \"source_ip\": \"203.0.113.5\", "
			"\"success\": false, \"user_id\": \"\\\\ud800\"}", &l));
	assert_string_equal(l.user, "\\ud800");
	/* "NaN" inside a string is text */
	assert_true(api("{\"event\": \"authentication_event\", \"source_ip\": \"203.0.113.5\", "
			"\"success\": false, \"user_id\": \"NaN\"}", &l));
	assert_string_equal(l.user, "NaN");
	/* NaN decides nothing: not as success, not as an address */
	assert_false(api("{\"event\": \"authentication_event\", \"source_ip\": \"203.0.113.5\", "
			 "\"success\": NaN}", &l));
	assert_false(api("{\"event\": \"authentication_event\", \"source_ip\": NaN, "
			 "\"success\": false}", &l));
	/* nor does it make other garbage valid */
	assert_false(api("{\"event\": \"authentication_event\", \"source_ip\": \"203.0.113.5\", "
			 "\"success\": false, \"a\": NaNx}", &l));
	assert_false(api("{\"event\": \"authentication_event\", \"source_ip\": \"203.0.113.5\", "
			 "\"success\": false, \"a\": 1NaN}", &l));
}

/* An auth failure whose details nest depth arrays: [[...[]...]] */
static char *nested(unsigned depth, size_t *len)
{
	const char *head = "{\"event\": \"authentication_event\", \"source_ip\": \"203.0.113.5\", "
			   "\"success\": false, \"details\": ";
	size_t hl = strlen(head), n = hl + 2 * (size_t)depth + 1;
	char *s = malloc(n);
	assert_non_null(s);
	memcpy(s, head, hl);
	memset(s + hl, '[', depth);
	memset(s + hl + depth, ']', depth);
	s[n - 1] = '}';
	*len = n;
	return s;
}

static void test_api_bounds(void **state)
{
	(void)state;
	struct api_line l;
	size_t n;
	char *s;

	/* the root object is one level: details may nest the rest */
	s = nested(DETECT_API_DEPTH_MAX - 1, &n);
	assert_true(api_n(s, n, &l));
	free(s);
	s = nested(DETECT_API_DEPTH_MAX, &n);
	assert_false(api_n(s, n, &l));
	free(s);
	s = nested(30000, &n);
	assert_false(api_n(s, n, &l));
	free(s);
	/* brackets inside strings are text */
	char deep_text[256];
	memset(deep_text, '[', 100);
	deep_text[100] = '\0';
	char line[512];
	snprintf(line, sizeof(line), "{\"event\": \"authentication_event\", \"source_ip\": "
		 "\"203.0.113.5\", \"success\": false, \"user_agent\": \"%s\"}", deep_text);
	assert_true(api(line, &l));

	/* DETECT_API_LINE_MAX bytes are read, one more is not */
	const char *head = "{\"event\": \"authentication_event\", \"source_ip\": \"203.0.113.5\", "
			   "\"success\": false, \"user_agent\": \"";
	size_t hl = strlen(head);
	s = malloc(DETECT_API_LINE_MAX + 1);
	assert_non_null(s);
	memcpy(s, head, hl);
	memset(s + hl, 'a', DETECT_API_LINE_MAX - hl - 2);
	memcpy(s + DETECT_API_LINE_MAX - 2, "\"}", 2);
	assert_true(api_n(s, DETECT_API_LINE_MAX, &l));
	assert_string_equal(addr_text(&l.addr), "203.0.113.5");
	memset(s + hl, 'a', DETECT_API_LINE_MAX - hl - 1);
	memcpy(s + DETECT_API_LINE_MAX - 1, "\"}", 2);
	assert_false(api_n(s, DETECT_API_LINE_MAX + 1, &l));
	free(s);

	/* many values within the bound: read, with jansson's memory freed
	   (LeakSanitizer watches the ASan build) */
	s = malloc(DETECT_API_LINE_MAX);
	assert_non_null(s);
	int o = snprintf(s, DETECT_API_LINE_MAX, "{\"event\": \"authentication_event\", "
			 "\"source_ip\": \"203.0.113.5\", \"success\": false, \"details\": [");
	size_t m = (size_t)o;
	while (m + 8 < DETECT_API_LINE_MAX) {
		memcpy(s + m, "{},", 3);
		m += 3;
	}
	memcpy(s + m, "{}]}", 4);
	m += 4;
	assert_true(api_n(s, m, &l));
	free(s);
}

/* Every prefix of the API lines: no crash, no address but the real one. */
static void test_api_prefixes(void **state)
{
	(void)state;
	struct api_line l;
	static const char *const lines[] = {
		AUTH_FAIL,
		"{\"event\": \"security_event\", \"severity\": \"high\", \"source_ip\": \"2001:db8::4\", "
		"\"details\": {\"u\": \"\\ud800\", \"n\": NaN}}",
	};
	for (size_t i = 0; i < ELEMENTSOF(lines); i++) {
		size_t len = strlen(lines[i]);
		for (size_t n = 0; n < len; n++)
			assert_false(api_n(lines[i], n, &l));
		assert_true(api_n(lines[i], len, &l));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sshd_forms),
		cmocka_unit_test(test_sshd_one_login_counts_once),
		cmocka_unit_test(test_sshd_other),
		cmocka_unit_test(test_sshd_crafted_users),
		cmocka_unit_test(test_sshd_crafted_extra),
		cmocka_unit_test(test_sshd_long_users),
		cmocka_unit_test(test_sshd_cut_lines),
		cmocka_unit_test(test_sshd_prefixes),
		cmocka_unit_test(test_sshd_bytes),
		cmocka_unit_test(test_api_auth),
		cmocka_unit_test(test_api_security),
		cmocka_unit_test(test_api_refused),
		cmocka_unit_test(test_api_user),
		cmocka_unit_test(test_api_python_json),
		cmocka_unit_test(test_api_bounds),
		cmocka_unit_test(test_api_prefixes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
