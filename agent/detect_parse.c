/* Local detection's line parsers (detect_parse.h; the forms and what each
 * counts: docs/detect-lines.md).
 *
 * Who controls which bytes of an sshd line decides how it is read. sshd
 * (OpenSSH 9.2 to 10.0) writes the method, the address, the port and the
 * fixed words; the client chooses the user name, and, in a "Failed
 * publickey/hostbased/gssapi-with-mic" line, the text after "ssh2: " (a
 * certificate's key ID, a client host name). Three facts of sshd make the
 * address safe to find:
 *   - a user name never holds ':' (auth2.c cuts it at the first ':', the
 *     login style), so it cannot hold an IPv6 address or "ssh2: ";
 *   - a line names at most 187 bytes of it: "%.100s" in the auth lines,
 *     "%.200s" of "invalid user NAME" in a connection's log preamble;
 *   - log.c hands syslog at most 500 bytes ("%.500s"), escaping first every
 *     byte that is not printable ASCII (at most 4 characters a byte, 5 for
 *     the [preauth] lines the monitor escapes a second time); journald then
 *     strips the spaces a cut leaves at the end.
 * A line that sshd cut can end inside the user name, with text the client
 * chose where the address goes; the rules below refuse such lines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "cleanup.h" /* ELEMENTSOF */
#include "detect_parse.h"
#include "safe_math.h"

/* log.c: syslog(pri, "%.500s", ...) */
#define SSHD_SYSLOG_MAX 500u
/* The most bytes of a user name one sshd line holds (see above). */
#define SSHD_USER_BYTES_MAX 187u
/* A line this long or longer may have been cut inside the user name: a cut
 * line is 500 bytes less the trailing spaces journald stripped, and those
 * can only be the user name's. Shorter lines are whole. */
#define SSHD_WHOLE_LINE_MAX (SSHD_SYSLOG_MAX - SSHD_USER_BYTES_MAX)
/* sshd formats a line in 1024 bytes (log.c MSGBUFSIZ) */
#define SSHD_LINE_MAX 1024u
/* inet_ntop's longest IPv6 text ("ffff:...:255.255.255.255") */
#define ADDR_TEXT_MAX 45u

/* ---- small readers -------------------------------------------------------- */

/* A cursor over bytes that are not NUL-terminated. */
struct cur {
	const char *s;
	size_t n, i;
};

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Consumes the literal l when the bytes at the cursor are exactly it. */
static bool lit(struct cur *c, const char *l)
{
	size_t k = strlen(l);
	if (c->n - c->i < k || memcmp(c->s + c->i, l, k) != 0)
		return false;
	c->i += k;
	return true;
}

/* Consumes the bytes up to the next space (or the end); returns how many. */
static size_t token(struct cur *c)
{
	size_t start = c->i;
	while (c->i < c->n && c->s[c->i] != ' ')
		c->i++;
	return c->i - start;
}

static bool has_suffix(const char *s, size_t n, const char *l)
{
	size_t k = strlen(l);
	return n >= k && memcmp(s + n - k, l, k) == 0;
}

/* A decimal number as printf's %d/%u writes it (no sign, no leading zero)
 * of at most max_digits digits, into *v. */
static bool decimal(const char *s, size_t n, size_t max_digits, unsigned long *v)
{
	unsigned long r = 0;
	if (n == 0 || n > max_digits || (s[0] == '0' && n > 1))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!is_digit(s[i]))
			return false;
		r = r * 10 + (unsigned long)(s[i] - '0');
	}
	*v = r;
	return true;
}

static bool parse_port(const char *s, size_t n, uint16_t *port)
{
	unsigned long v;
	if (!decimal(s, n, 5, &v) || v > UINT16_MAX)
		return false;
	*port = (uint16_t)v;
	return true;
}

/* A literal host address: IPv4 or IPv6 text and nothing else (no /len, no
 * %zone, no name), IPv4-mapped IPv6 given as IPv4 (cvz_prefix_parse). */
static bool parse_addr(const char *s, size_t n, struct cvz_prefix *out)
{
	char text[ADDR_TEXT_MAX + 1];
	struct cvz_prefix p;
	const char *why;

	if (n == 0 || n > ADDR_TEXT_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!s[i] || (!is_digit(s[i]) && !strchr("abcdefABCDEF:.", s[i])))
			return false; /* a NUL would end the text cvz_prefix_parse reads */
	memcpy(text, s, n);
	text[n] = '\0';
	if (cvz_prefix_parse(text, &p, &why, NULL, 0) < 0)
		return false;
	if (p.len != (p.family == AF_INET ? 32 : 128))
		return false;
	*out = p;
	return true;
}

/* Copies s[0..n) into dst (cap bytes, NUL-terminated) as it is, except a
 * NUL byte (which a C string cannot hold) as '?'. A cut backs off to the
 * start of a UTF-8 character when it would split one. Returns whether the
 * copy was cut. */
static bool copy_cut(char *dst, size_t cap, const char *s, size_t n)
{
	size_t m = n < cap - 1 ? n : cap - 1;
	if (m < n)
		for (size_t back = 0; back < 3 && m > 0 && ((unsigned char)s[m] & 0xc0) == 0x80; back++)
			m--;
	for (size_t i = 0; i < m; i++)
		dst[i] = s[i] ? s[i] : '?';
	dst[m] = '\0';
	return m < n;
}

static void set_user(struct sshd_line *l, const char *s, size_t n)
{
	l->user_truncated = copy_cut(l->user, sizeof(l->user), s, n);
}

/* ---- sshd: the forms ------------------------------------------------------ */

/* sshd's names for the methods of a "Failed" line (monitor.c sets them; the
 * client's name for a method never reaches the line). "none" is the
 * client's probe for the methods on offer: sshd does not count its first
 * one either. extra: the line goes on after "ssh2" with ": " and text about
 * the key or the client (auth.c format_method_key, auth2_record_info): the
 * key, a certificate's key ID, a client user and host name, the GSSAPI
 * name. The monitor records it before it logs these methods' failures, so
 * a line of theirs without it is not read. */
static const struct {
	const char *name;
	unsigned attempts;
	bool extra;
} methods[] = {
	{ "password", 1, false },
	{ "keyboard-interactive", 1, false },
	{ "keyboard-interactive/pam", 1, false },
	{ "keyboard-interactive/bsdauth", 1, false },
	{ "publickey", 1, true },
	{ "hostbased", 1, true },
	{ "gssapi-with-mic", 1, true },
	{ "none", 0, false },
};

/* The address token that ends at s[end], after a space at or after lo.
 * Returns its start, or 0 when there is none or it is not an address
 * (an address never starts at 0: a head precedes it). */
static size_t addr_ending_at(const char *s, size_t lo, size_t end, struct cvz_prefix *addr)
{
	size_t t = end;
	while (t > lo && s[t - 1] != ' ')
		t--;
	if (t == lo || !parse_addr(s + t, end - t, addr))
		return 0;
	return t;
}

/* s[lo..end) ends in " A port P": fills addr and port, returns where A
 * starts (0: no). Read from the right: what follows P is sshd's. */
static size_t addr_port_at_end(const char *s, size_t lo, size_t end, struct sshd_line *l)
{
	size_t d = end;
	while (d > lo && is_digit(s[d - 1]))
		d--;
	if (d - lo < 6 || memcmp(s + d - 6, " port ", 6) != 0 ||
	    !parse_port(s + d, end - d, &l->port))
		return 0;
	l->has_port = true;
	return addr_ending_at(s, lo, d - 6, &l->addr);
}

/* The user name s[u0..a) before " from " + the address at a. */
static bool user_before_from(const char *s, size_t u0, size_t a, struct sshd_line *l)
{
	if (a < u0 + 6 || memcmp(s + a - 6, " from ", 6) != 0)
		return false;
	set_user(l, s + u0, a - 6 - u0);
	return true;
}

static size_t method_index(const char *s, size_t n)
{
	size_t k;
	for (k = 0; k < ELEMENTSOF(methods); k++)
		if (strlen(methods[k].name) == n && memcmp(s, methods[k].name, n) == 0)
			break;
	return k;
}

/* The first " port P ssh2: " in s[from..n). Returns the index of its
 * " port " (0: none) and the port's digits in *d..*e. */
static size_t first_ssh2_port(const char *s, size_t n, size_t from, size_t *d, size_t *e)
{
	const char *p;
	for (size_t at = from; (p = memmem(s + at, n - at, " port ", 6)) != NULL; at++) {
		size_t rest;
		at = (size_t)(p - s);
		*d = *e = at + 6;
		while (*e < n && is_digit(s[*e]))
			(*e)++;
		if (*e == *d || n - *e < 5 || memcmp(s + *e, " ssh2", 5) != 0)
			continue;
		rest = *e + 5;
		if (n - rest >= 2 && s[rest] == ':' && s[rest + 1] == ' ')
			return at;
	}
	return 0;
}

/* "Failed METHOD for [invalid user ]U from A port P ssh2[: EXTRA]". U is on
 * the left of the address; EXTRA, which only publickey, hostbased and
 * gssapi-with-mic lines have, on its right: both may be the client's text.
 *   - Without EXTRA the line ends in " ssh2": read from the right.
 *   - With EXTRA, the first " port P ssh2: " is sshd's: U holds no ':'.
 *     What is around that first match decides; the EXTRA after it, which
 *     may imitate it, is never searched.
 * Either way a line sshd cut is no danger: U cannot reach the cut at 500
 * bytes (a head of at most 53 bytes, then 100 bytes of U escaped to at
 * most 400), and a cut in EXTRA is after the address. */
static bool parse_failed(const char *s, size_t n, struct sshd_line *l)
{
	struct cur c = { s, n, 0 };
	size_t m0, k, u0, a;

	if (!lit(&c, "Failed "))
		return false;
	m0 = c.i;
	k = method_index(s + m0, token(&c));
	if (k == ELEMENTSOF(methods) || !lit(&c, " for "))
		return false;
	snprintf(l->method, sizeof(l->method), "%s", methods[k].name);
	l->attempts = methods[k].attempts;
	l->invalid_user = lit(&c, "invalid user ");
	u0 = c.i;

	if (!methods[k].extra) {
		if (!has_suffix(s, n, " ssh2") || n - 5 < u0)
			return false;
		a = addr_port_at_end(s, u0, n - 5, l);
	} else {
		size_t at, d, e;
		at = first_ssh2_port(s, n, u0, &d, &e);
		a = at ? addr_ending_at(s, u0, at, &l->addr) : 0;
		if (a && parse_port(s + d, e - d, &l->port))
			l->has_port = true;
		else
			a = 0;
	}
	if (!a || !user_before_from(s, u0, a, l))
		return false;
	l->kind = SSHD_FAILED;
	return true;
}

/* "Invalid user U from A port P" and "[error: ]maximum authentication
 * attempts exceeded for [invalid user ]U from A port P ssh2 [preauth]":
 * read from the right, where everything after the address is sshd's. */
static bool parse_from_right(const char *s, size_t n, struct cur *c, const char *tail,
			     struct sshd_line *l)
{
	size_t end, a;
	if (!has_suffix(s, n, tail))
		return false;
	end = n - strlen(tail);
	if (end < c->i)
		return false;
	a = addr_port_at_end(s, c->i, end, l);
	return a && user_before_from(s, c->i, a, l);
}

static bool parse_invalid_user(const char *s, size_t n, struct sshd_line *l)
{
	struct cur c = { s, n, 0 };
	if (!lit(&c, "Invalid user ") || !parse_from_right(s, n, &c, "", l))
		return false;
	l->kind = SSHD_INVALID_USER;
	l->invalid_user = true;
	l->floor = 1;
	return true;
}

static bool parse_max_attempts(const char *s, size_t n, struct sshd_line *l)
{
	struct cur c = { s, n, 0 };
	(void)lit(&c, "error: "); /* written by the monitor; not under sshd -e */
	if (!lit(&c, "maximum authentication attempts exceeded for "))
		return false;
	l->invalid_user = lit(&c, "invalid user ");
	if (!parse_from_right(s, n, &c, " ssh2 [preauth]", l))
		return false;
	l->kind = SSHD_MAX_ATTEMPTS;
	l->floor = 1;
	return true;
}

/* The end of a connection that named a user and did not log in: packet.c
 * writes the connection's log preamble ("authenticating user U" or
 * "invalid user U", set at the first userauth request) before "A port P".
 * Without a preamble nobody tried to log in (a port scan); with "user U"
 * (no adjective) the login succeeded: both are SSHD_OTHER. */
static const struct {
	const char *head, *tail;
} preauth_ends[] = {
	{ "Connection closed by ", " [preauth]" },
	{ "Connection reset by ", " [preauth]" },
	{ "Disconnected from ", " [preauth]" },
	{ "Disconnecting ", ": Too many authentication failures [preauth]" },
};

static bool parse_preauth_end(const char *s, size_t n, struct sshd_line *l)
{
	for (size_t k = 0; k < ELEMENTSOF(preauth_ends); k++) {
		struct cur c = { s, n, 0 };
		size_t end, a;
		if (!lit(&c, preauth_ends[k].head))
			continue;
		if (lit(&c, "invalid user "))
			l->invalid_user = true;
		else if (!lit(&c, "authenticating user "))
			return false;
		if (!has_suffix(s, n, preauth_ends[k].tail))
			return false;
		end = n - strlen(preauth_ends[k].tail);
		if (end < c.i)
			return false;
		/* the name ends at the space before the address (it may be "") */
		a = addr_port_at_end(s, c.i, end, l);
		if (!a || a < c.i + 1)
			return false;
		set_user(l, s + c.i, a - 1 - c.i);
		l->kind = SSHD_PREAUTH_END;
		l->floor = 1;
		return true;
	}
	return false;
}

/* pam_unix's fields after the "; " (support.c):
 *   "logname=L uid=N euid=N tty=T ruser=R rhost=H" then "  user=U" or " "
 * (journald strips that trailing space). libpam writes these lines with
 * syslog(3) itself: no escaping, no 500-byte cut, any bytes in U. Every
 * field before rhost is the server's (sshd sets PAM_RHOST and PAM_TTY
 * "ssh", never PAM_RUSER; logname is the login of sshd's terminal: none);
 * the client's only text is U, and pam_unix writes it last. So the rhost is
 * the one in this sequence, read field by field from the left; a " rhost="
 * inside U is never looked at. */
static bool parse_pam_fields(struct cur *c, struct sshd_line *l)
{
	static const char *const names[] = { "logname=", " uid=", " euid=", " tty=", " ruser=" };
	for (size_t k = 0; k < ELEMENTSOF(names); k++) {
		if (!lit(c, names[k]))
			return false;
		size_t v = c->i, vlen = token(c);
		if (k == 1 || k == 2) { /* uid, euid: %d */
			unsigned long id;
			size_t neg = vlen > 0 && c->s[v] == '-';
			if (!decimal(c->s + v + neg, vlen - neg, 10, &id))
				return false;
		}
	}
	if (!lit(c, " rhost="))
		return false;
	size_t h = c->i, hlen = token(c);
	if (!parse_addr(c->s + h, hlen, &l->addr))
		return false;
	if (c->i == c->n || (c->n - c->i == 1 && c->s[c->i] == ' '))
		return true;
	if (!lit(c, "  user="))
		return false;
	set_user(l, c->s + c->i, c->n - c->i);
	return true;
}

/* "pam_unix(SERVICE:auth): authentication failure; ..." (the first failure
 * of a PAM handle; the service is "sshd" unless sshd's PAMServiceName says
 * otherwise) */
static bool parse_pam_failure(const char *s, size_t n, struct sshd_line *l)
{
	struct cur c = { s, n, 0 };
	size_t svc;
	if (!lit(&c, "pam_unix("))
		return false;
	svc = c.i;
	while (c.i < n && s[c.i] && (is_digit(s[c.i]) || strchr("._-", s[c.i]) ||
				     ((s[c.i] | 0x20) >= 'a' && (s[c.i] | 0x20) <= 'z')))
		c.i++;
	if (c.i == svc || !lit(&c, ":auth): authentication failure; ") ||
	    !parse_pam_fields(&c, l))
		return false;
	l->kind = SSHD_PAM_FAILURE;
	l->floor = 1;
	return true;
}

/* "PAM N more authentication failure[s]; ...": pam_unix counts the
 * failures of one PAM handle (one sshd connection) and, when the handle
 * ends, logs the count less the first, which it logged on its own. The
 * prefix is libpam's when no module is running (pam_end). */
static bool parse_pam_more(const char *s, size_t n, struct sshd_line *l)
{
	struct cur c = { s, n, 0 };
	unsigned long more;
	size_t d;
	if (!lit(&c, "PAM "))
		return false;
	d = c.i;
	while (c.i < n && is_digit(s[c.i]))
		c.i++;
	if (!decimal(s + d, c.i - d, 9, &more) || more == 0 ||
	    !ADD_SAFE(&l->floor, (unsigned)more, 1u) ||
	    !lit(&c, " more authentication failure") ||
	    (!lit(&c, "s; ") && !lit(&c, "; ")) || !parse_pam_fields(&c, l))
		return false;
	l->kind = SSHD_PAM_MORE;
	return true;
}

/* Every form, by the head that tells it apart. Except for "Failed" and the
 * PAM lines, a form is read only from a line too short to have been cut
 * (SSHD_WHOLE_LINE_MAX): its user name could otherwise end the line. */
static const struct {
	const char *head;
	bool (*parse)(const char *s, size_t n, struct sshd_line *l);
	size_t max_len;
} sshd_forms[] = {
	{ "Failed ", parse_failed, SSHD_LINE_MAX },
	{ "Invalid user ", parse_invalid_user, SSHD_WHOLE_LINE_MAX },
	{ "error: maximum ", parse_max_attempts, SSHD_WHOLE_LINE_MAX },
	{ "maximum ", parse_max_attempts, SSHD_WHOLE_LINE_MAX },
	{ "Connection ", parse_preauth_end, SSHD_WHOLE_LINE_MAX },
	{ "Disconnect", parse_preauth_end, SSHD_WHOLE_LINE_MAX },
	{ "pam_unix(", parse_pam_failure, SIZE_MAX },
	{ "PAM ", parse_pam_more, SIZE_MAX },
};

bool detect_parse_sshd(const char *msg, size_t len, struct sshd_line *out)
{
	struct sshd_line l;

	memset(&l, 0, sizeof(l));
	for (size_t k = 0; msg && k < ELEMENTSOF(sshd_forms); k++) {
		size_t hl = strlen(sshd_forms[k].head);
		if (len < hl || memcmp(msg, sshd_forms[k].head, hl) != 0)
			continue;
		if (len < sshd_forms[k].max_len && sshd_forms[k].parse(msg, len, &l)) {
			*out = l;
			return true;
		}
		break; /* the heads are distinct: no other form can match */
	}
	memset(out, 0, sizeof(*out));
	out->kind = SSHD_OTHER;
	return false;
}

/* ---- the CloudViz API ----------------------------------------------------- */

static int hex_digit(char c)
{
	if (is_digit(c))
		return c - '0';
	c = (char)(c | 0x20);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The code unit of "\uXXXX" at t[i] (t[i] == '\\'), or -1. */
static long u_escape(const char *t, size_t n, size_t i)
{
	long v = 0;
	if (n - i < 6 || t[i + 1] != 'u')
		return -1;
	for (size_t k = 2; k < 6; k++) {
		int h = hex_digit(t[i + k]);
		if (h < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

/* At t[i] == '\\' inside a string: a lone surrogate escape becomes
 * "\ufffd" (same length). Returns how many bytes after i the escape takes. */
static size_t fix_escape(char *t, size_t n, size_t i)
{
	long u = u_escape(t, n, i);
	if (u < 0)
		return i + 1 < n ? 1 : 0;
	if (u >= 0xd800 && u <= 0xdbff) {
		long lo = i + 6 < n && t[i + 6] == '\\' ? u_escape(t, n, i + 6) : -1;
		if (lo >= 0xdc00 && lo <= 0xdfff)
			return 11; /* a pair: jansson takes it */
	} else if (u < 0xdc00 || u > 0xdfff) {
		return 5;
	}
	memcpy(t + i + 2, "fffd", 4);
	return 5;
}

/* NaN, Infinity, -Infinity as a value at t[i]: overwritten by a 0 and
 * spaces (same length). */
static void fix_nonfinite(char *t, size_t n, size_t i)
{
	static const char *const words[] = { "NaN", "Infinity", "-Infinity" };
	for (size_t k = 0; k < ELEMENTSOF(words); k++) {
		size_t w = strlen(words[k]);
		if (n - i < w || memcmp(t + i, words[k], w) != 0)
			continue;
		if (i + w < n && (!t[i + w] || !strchr(",}] \t\r\n", t[i + w])))
			return;
		t[i] = '0';
		memset(t + i + 1, ' ', w - 1);
		return;
	}
}

/* structlog's JSONRenderer writes with Python's json.dumps, which writes
 * two things jansson refuses and a client can put into a logged value: a
 * lone surrogate ("\ud800", which Python's own JSON reader takes from a
 * request body) and NaN/Infinity (likewise). Either would make the whole
 * event unreadable, so a client could hide its failed login by sending
 * one. Both are rewritten in place, at the same length, outside and inside
 * strings as they occur; nothing else changes. Also bounds the nesting
 * before jansson recurses: false when deeper than DETECT_API_DEPTH_MAX. */
static bool python_json_fixup(char *t, size_t n)
{
	unsigned depth = 0;
	bool in_string = false;
	char prev = 0; /* the last byte outside strings that is not a space */

	for (size_t i = 0; i < n; i++) {
		char ch = t[i];
		if (in_string) {
			if (ch == '"')
				in_string = false;
			else if (ch == '\\')
				i += fix_escape(t, n, i);
			continue;
		}
		if (strchr(" \t\r\n", ch) && ch)
			continue;
		if (ch == '"') {
			in_string = true;
		} else if (ch == '{' || ch == '[') {
			if (++depth > DETECT_API_DEPTH_MAX)
				return false;
		} else if (ch == '}' || ch == ']') {
			depth -= depth > 0;
		} else if ((ch == 'N' || ch == 'I' || ch == '-') && prev && strchr(":,[", prev)) {
			fix_nonfinite(t, n, i);
		}
		prev = ch;
	}
	return true;
}

/* The string v as bytes, or false when v is not a string. */
static bool jstr(json_t *v, const char **s, size_t *n)
{
	if (!json_is_string(v))
		return false;
	*s = json_string_value(v);
	*n = json_string_length(v);
	return true;
}

static bool jstr_is(json_t *v, const char *l)
{
	const char *s;
	size_t n;
	return jstr(v, &s, &n) && n == strlen(l) && memcmp(s, l, n) == 0;
}

/* "high" or "critical" in any ASCII case: the guide writes lowercase
 * (IncidentSeverity values, literals), an application may write an enum's
 * name; either is the application's word, never the client's. */
static const char *severity_of(json_t *v)
{
	static const char *const blocking[] = { "high", "critical" };
	const char *s;
	size_t n;
	if (!jstr(v, &s, &n))
		return NULL;
	for (size_t k = 0; k < ELEMENTSOF(blocking); k++) {
		size_t i, w = strlen(blocking[k]);
		for (i = 0; i < w && i < n && (s[i] | 0x20) == blocking[k][i]; i++)
			;
		if (i == w && n == w)
			return blocking[k];
	}
	return NULL;
}

/* What the line says, from the parsed object: the event, its verdict and
 * its address decide (strict); user_id and event_type only inform, so a
 * value of another type leaves them empty instead of hiding the event. */
static bool api_fields(json_t *root, struct api_line *l)
{
	json_t *ev = json_object_get(root, "event");
	json_t *uid = json_object_get(root, "user_id");
	const char *s, *sev = NULL;
	size_t n;

	if (jstr_is(ev, "authentication_event")) {
		if (!json_is_false(json_object_get(root, "success")))
			return false;
		l->kind = API_AUTH_FAILED;
	} else if (jstr_is(ev, "security_event")) {
		if (!(sev = severity_of(json_object_get(root, "severity"))))
			return false;
		l->kind = API_SECURITY;
		snprintf(l->severity, sizeof(l->severity), "%s", sev);
	} else {
		return false;
	}
	if (!jstr(json_object_get(root, "source_ip"), &s, &n) || !parse_addr(s, n, &l->addr))
		return false;
	if (jstr(uid, &s, &n))
		l->user_truncated = copy_cut(l->user, sizeof(l->user), s, n);
	else if (json_is_integer(uid))
		snprintf(l->user, sizeof(l->user), "%" JSON_INTEGER_FORMAT, json_integer_value(uid));
	if (jstr(json_object_get(root, "event_type"), &s, &n))
		(void)copy_cut(l->event_type, sizeof(l->event_type), s, n);
	return true;
}

bool detect_parse_api(const char *msg, size_t len, struct api_line *out)
{
	struct api_line l;
	bool ok = false;

	memset(&l, 0, sizeof(l));
	memset(out, 0, sizeof(*out));
	out->kind = API_OTHER;
	if (!msg || len > DETECT_API_LINE_MAX)
		return false;
	/* structlog writes one object: anything else is not an event, and
	   costs no copy */
	size_t first = 0;
	while (first < len && msg[first] && strchr(" \t\r\n", msg[first]))
		first++;
	if (first == len || msg[first] != '{')
		return false;
	char *text = malloc(len);
	if (!text)
		return false;
	memcpy(text, msg, len);
	/* \u0000 is what json.dumps writes for a NUL in a value: allowed, so
	   that one cannot hide an event either (copy_cut turns it into '?') */
	json_error_t je;
	json_t *root = NULL;
	if (python_json_fixup(text, len))
		root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
	free(text);
	if (json_is_object(root))
		ok = api_fields(root, &l);
	json_decref(root);
	if (ok)
		*out = l;
	return ok;
}
