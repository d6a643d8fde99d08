/* libFuzzer target: local detection's line parsers. Every input is
 *   1. an sshd MESSAGE and an API MESSAGE as it is: no crash, no read past
 *      the input (an exact-size copy), and what is accepted holds together
 *      (a host address that some address text of the input names, a user
 *      that fits and is bytes of the input, counts as the form says);
 *   2. a user name a client sends, logged the way sshd and pam_unix log it
 *      (cut at ':', "%.100s"/"%.200s", escaped, cut at 500 bytes, trailing
 *      spaces stripped by journald) into every form around a real address:
 *      whatever the name, a line that is read gives the real address.
 * Build with `make fuzz`; seeds in corpus_detect/. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "detect_parse.h"
#include "utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                          \
	do {                                                                                 \
		if (!(cond)) {                                                               \
			fprintf(stderr, "fuzz_detect: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                             \
		}                                                                            \
	} while (0)

static bool addr_char(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
	       c == ':' || c == '.';
}

/* Some maximal run of address characters in s names p. */
static bool names_addr(const char *s, size_t n, const struct cvz_prefix *p)
{
	for (size_t i = 0; i < n;) {
		size_t j = i;
		while (j < n && addr_char(s[j]))
			j++;
		if (j > i && j - i <= 45) {
			char text[46];
			struct cvz_prefix q;
			const char *why;
			memcpy(text, s + i, j - i);
			text[j - i] = '\0';
			if (cvz_prefix_parse(text, &q, &why, NULL, 0) == 0 && q.family == p->family &&
			    q.len == p->len && memcmp(q.addr, p->addr, sizeof(q.addr)) == 0)
				return true;
		}
		i = j > i ? j : i + 1;
	}
	return false;
}

/* user (NUL given as '?') is bytes of s */
static bool user_in(const char *s, size_t n, const char *user)
{
	size_t u = strlen(user);
	if (u == 0)
		return true;
	for (size_t i = 0; i + u <= n; i++) {
		size_t k;
		for (k = 0; k < u; k++)
			if (s[i + k] != user[k] && !(user[k] == '?' && s[i + k] == '\0'))
				break;
		if (k == u)
			return true;
	}
	return false;
}

static bool host(const struct cvz_prefix *p)
{
	return (p->family == AF_INET && p->len == 32) || (p->family == AF_INET6 && p->len == 128);
}

static void check_sshd(const char *s, size_t n)
{
	struct sshd_line l, again;
	bool ok = detect_parse_sshd(s, n, &l);
	CHECK(detect_parse_sshd(s, n, &again) == ok && memcmp(&l, &again, sizeof(l)) == 0);
	if (!ok) {
		CHECK(l.kind == SSHD_OTHER);
		return;
	}
	CHECK(l.kind != SSHD_OTHER);
	CHECK(host(&l.addr));
	CHECK(names_addr(s, n, &l.addr));
	CHECK(strlen(l.user) <= DETECT_USER_MAX);
	CHECK(user_in(s, n, l.user));
	/* a cut backs off at most 3 bytes, to a character's start */
	CHECK(!l.user_truncated || strlen(l.user) + 3 >= DETECT_USER_MAX);
	switch (l.kind) {
	case SSHD_FAILED:
		CHECK(l.has_port && l.floor == 0 && l.attempts <= 1);
		CHECK(l.attempts == (strcmp(l.method, "none") != 0));
		break;
	case SSHD_PAM_FAILURE:
		CHECK(!l.has_port && l.floor == 1 && l.attempts == 0);
		break;
	case SSHD_PAM_MORE:
		CHECK(!l.has_port && l.floor >= 2 && l.attempts == 0);
		break;
	default:
		CHECK(l.has_port && l.floor == 1 && l.attempts == 0);
		break;
	}
}

static void check_api(const char *s, size_t n)
{
	struct api_line l;
	if (!detect_parse_api(s, n, &l)) {
		CHECK(l.kind == API_OTHER);
		return;
	}
	CHECK(l.kind == API_AUTH_FAILED || l.kind == API_SECURITY);
	CHECK(host(&l.addr));
	/* an escaped address ("\u0031...") is not in the text as such */
	CHECK(memchr(s, '\\', n) || names_addr(s, n, &l.addr));
	CHECK(strlen(l.user) <= DETECT_USER_MAX && utf8_valid(l.user, strlen(l.user)));
	CHECK(strlen(l.event_type) < sizeof(l.event_type));
	CHECK(utf8_valid(l.event_type, strlen(l.event_type)));
	if (l.kind == API_SECURITY)
		CHECK(!strcmp(l.severity, "high") || !strcmp(l.severity, "critical"));
	else
		CHECK(l.severity[0] == '\0');
}

/* ---- the model of sshd's logging ------------------------------------------ */

/* log.c's strnvis(VIS_CSTYLE|VIS_NL|VIS_TAB|VIS_OCTAL) as far as it matters
 * here: printable ASCII and space stay, a backslash doubles, anything else
 * is \ooo (the C-style names such as \n are shorter: not the worst case). */
static size_t vis(char *out, size_t cap, const char *s, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char tmp[5];
		int k;
		if (c == '\\')
			k = snprintf(tmp, sizeof(tmp), "\\\\");
		else if (c >= 0x20 && c < 0x7f)
			k = snprintf(tmp, sizeof(tmp), "%c", c);
		else
			k = snprintf(tmp, sizeof(tmp), "\\%03o", c);
		if (o + (size_t)k >= cap)
			break;
		memcpy(out + o, tmp, (size_t)k);
		o += (size_t)k;
	}
	out[o] = '\0';
	return o;
}

struct form {
	const char *head, *mid, *tail; /* head NAME mid ADDR " port P" tail */
	size_t name_max;               /* sshd's cut of the name */
	int escapes;                   /* 1: the monitor's lines; 2: [preauth] */
};

static const struct form forms[] = {
	{ "Failed password for ", " from ", " ssh2", 100, 1 },
	{ "Failed password for invalid user ", " from ", " ssh2", 100, 1 },
	{ "Failed keyboard-interactive/pam for invalid user ", " from ", " ssh2", 100, 1 },
	{ "Failed publickey for ", " from ", " ssh2: RSA-CERT SHA256:x ID k from 198.51.100.1 "
	  "port 1 ssh2: (serial 1) CA RSA SHA256:y", 100, 1 },
	{ "Failed gssapi-with-mic for invalid user ", " from ", " ssh2: a from 198.51.100.2 "
	  "port 2 ssh2", 100, 1 },
	{ "Invalid user ", " from ", "", 100, 1 },
	{ "error: maximum authentication attempts exceeded for invalid user ", " from ",
	  " ssh2 [preauth]", 100, 2 },
	{ "Connection closed by invalid user ", " ", " [preauth]", 187, 2 },
	{ "Disconnected from authenticating user ", " ", " [preauth]", 180, 2 },
	{ "Disconnecting invalid user ", " ", ": Too many authentication failures [preauth]", 187, 2 },
};

static void check_model(const char *name, size_t n)
{
	static const char *const real[] = { "203.0.113.2", "2001:db8:ffff::2" };
	char a[2048], b[2048], line[4096];
	struct sshd_line l;

	/* auth2.c: the name ends at its first ':' (the login style); the
	   protocol's string holds no NUL */
	size_t sshd_n = 0;
	while (sshd_n < n && name[sshd_n] != ':' && name[sshd_n])
		sshd_n++;

	for (size_t r = 0; r < 2; r++) {
		for (size_t f = 0; f < sizeof(forms) / sizeof(forms[0]); f++) {
			size_t k = sshd_n < forms[f].name_max ? sshd_n : forms[f].name_max;
			size_t v = vis(a, sizeof(a), name, k);
			if (forms[f].escapes == 2) {
				v = vis(b, sizeof(b), a, v);
				memcpy(a, b, v + 1);
			}
			int len = snprintf(line, sizeof(line), "%s%s%s%s port 60654%s", forms[f].head,
					   a, forms[f].mid, real[r], forms[f].tail);
			size_t m = len < 0 ? 0 : (size_t)len;
			if (m >= sizeof(line))
				continue;
			/* syslog(pri, "%.500s"), then journald's strip */
			if (m > 500)
				m = 500;
			while (m > 0 && line[m - 1] == ' ')
				m--;
			char *copy = malloc(m ? m : 1);
			if (!copy)
				return;
			memcpy(copy, line, m);
			bool ok = detect_parse_sshd(copy, m, &l);
			free(copy);
			if (ok) {
				char t[CVZ_PREFIX_STRLEN];
				CHECK(!strcmp(cvz_prefix_format(&l.addr, t, sizeof(t)), real[r]));
			}
		}
		/* pam_unix: the whole name, raw, after the address */
		int len = snprintf(line, sizeof(line), "pam_unix(sshd:auth): authentication failure; "
				   "logname= uid=0 euid=0 tty=ssh ruser= rhost=%s  user=", real[r]);
		size_t m = (size_t)len, k = n < sizeof(line) - m ? n : sizeof(line) - m;
		memcpy(line + m, name, k);
		m += k;
		while (m > 0 && strchr(" \t\r\n", line[m - 1]) && line[m - 1])
			m--;
		if (detect_parse_sshd(line, m, &l)) {
			char t[CVZ_PREFIX_STRLEN];
			CHECK(!strcmp(cvz_prefix_format(&l.addr, t, sizeof(t)), real[r]));
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* a copy of exactly size bytes, so reading past len is caught by ASan */
	char *s = malloc(size ? size : 1);
	if (!s)
		return 0;
	if (size)
		memcpy(s, data, size);
	check_sshd(s, size);
	check_api(s, size);
	if (size <= 1024)
		check_model(s, size);
	free(s);
	return 0;
}
