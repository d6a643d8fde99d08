/* Audit events to journald (see audit.h).
 *
 * Why not sd_journal_send(): its socket is blocking, so a wedged journald
 * would stall the agent's event loop, and with it the firewall. We speak
 * journald's native protocol (one datagram of FIELD=value lines) with
 * MSG_DONTWAIT instead; every value we send is single-line after
 * sanitizing, so the simple form of the protocol is enough. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "utf8.h"
#include "cleanup.h"

#define JOURNAL_SOCKET "/run/systemd/journal/socket"
#define FIELD_MAX 1024   /* cap for one sanitized value */
#define ENTRY_MAX 16384
#define JOURNAL_WAIT_MS 100 /* longest wait for room in journald's queue */
#define REDACTED "***REDACTED***"

static const struct {
	const char *name;
	const char *id;
	int priority;
} events[AE_COUNT] = {
	[AE_AGENT_STARTED] = { "agent_started", "499bdc5ee52e4d1495b72b808d9a4e58", LOG_NOTICE },
	[AE_AGENT_STOPPING] = { "agent_stopping", "9143aa09b7ce476aa75b73ba080974fe", LOG_NOTICE },
	[AE_POLICY_APPLIED] = { "policy_applied", "20621514d04d41eb8d4f5a99e554c944", LOG_NOTICE },
	[AE_POLICY_REJECTED] = { "policy_rejected", "a31a5a49cf914034ad36987c69008fe9", LOG_ERR },
	[AE_POLICY_REVERTED] = { "policy_reverted", "b2f5899ca71249bc9b259b40c2cef04f", LOG_WARNING },
	[AE_POLICY_CONFIRMED] = { "policy_confirmed", "78a62625c485471fbe6256d9c5dfb7f1", LOG_NOTICE },
	[AE_ADDR_BLOCKED] = { "addr_blocked", "d7aebf1cc7a3411ebafeb749ae4fe5a9", LOG_NOTICE },
	[AE_ADDR_UNBLOCKED] = { "addr_unblocked", "cc0ae03a869c43cbbd6096ebda509bef", LOG_NOTICE },
	[AE_BLOCK_REJECTED] = { "block_rejected", "bf48e256d01e40c286112cbd9f352eb1", LOG_WARNING },
	[AE_BLOCK_EXPIRED] = { "block_expired", "72915efa359b43ca8c524b08712625f2", LOG_INFO },
	[AE_STATE_RESTORED] = { "state_restored", "976c9ea6f7c7402aa38bbeb32d9d4d65", LOG_INFO },
	[AE_STATE_CORRUPT] = { "state_corrupt", "5763d04019124e52b5c032d6ef6763a3", LOG_ERR },
	[AE_STATE_WRITE_FAILED] = { "state_write_failed", "0234404e37ef442b882bfb598e9dba39", LOG_ERR },
	[AE_RULESET_DRIFT_REPAIRED] = { "ruleset_drift_repaired", "e395ec04cb9f45db91ed6418c061c88d", LOG_WARNING },
	[AE_CTL_DENIED] = { "ctl_denied", "04f39ccf58f748169cba0342140e3eeb", LOG_WARNING },
	[AE_KERNEL_ERROR] = { "kernel_error", "3f5d9375a21943759809f874cca8705d", LOG_ERR },
	[AE_CONTROL_APPLIED] = { "control_applied", "710cb5722f6f4cfa923ff8ce8260eced", LOG_INFO },
	[AE_CONTROL_SYNC_FAILED] = { "control_sync_failed", "e1f93e0b928543fa8a44133ec4aac690", LOG_WARNING },
	[AE_TLS_ERROR] = { "tls_error", "05d7146a33d2440f8a43792f327ee752", LOG_ERR },
	[AE_CERT_EXPIRING] = { "cert_expiring", "532f5389bb464738ae9b6c051427c77c", LOG_WARNING },
	[AE_CREDENTIALS_RELOADED] = { "credentials_reloaded", "67601112f94c4a09a6ae51f29e5bd61b", LOG_NOTICE },
	[AE_CREDENTIALS_REJECTED] = { "credentials_rejected", "a689228697ef487282b5a017c1e48147", LOG_ERR },
	[AE_LOCKDOWN_CHANGED] = { "lockdown_changed", "65bb1c8c1a8d4022aea918d163a64eba", LOG_WARNING },
	[AE_SECURITY_ALERT] = { "security_alert", "4f0d2b6c9e7a43c1b8a5d3e2f6c7a901", LOG_WARNING },
};

static int journal_fd = -1;
static uint64_t dropped;

const char *audit_event_name(enum audit_event ev)
{
	return (unsigned)ev < AE_COUNT ? events[ev].name : "unknown";
}

const char *audit_event_id(enum audit_event ev)
{
	return (unsigned)ev < AE_COUNT ? events[ev].id : "00000000000000000000000000000000";
}

static int audit_event_priority(enum audit_event ev)
{
	return (unsigned)ev < AE_COUNT ? events[ev].priority : LOG_ERR;
}

/* ---- sanitizing ------------------------------------------------------ */

static bool is_token_char(char c)
{
	return c && (isalnum((unsigned char)c) || strchr("-._~+/=", c));
}

/* At s: a keyword (password, secret, key, token), an optional quote, spaces,
 * ':' or '=', spaces, an optional quote. Returns the length of that prefix
 * (up to where the value starts), or 0. */
static size_t secret_key_prefix(const char *s)
{
	static const char *const keys[] = { "password", "secret", "token", "key" };
	for (size_t k = 0; k < ELEMENTSOF(keys); k++) {
		size_t n = strlen(keys[k]);
		if (strncasecmp(s, keys[k], n) != 0)
			continue;
		const char *p = s + n;
		if (*p == '"' || *p == '\'')
			p++;
		p += strspn(p, " \t");
		if (*p != ':' && *p != '=')
			continue;
		p++;
		p += strspn(p, " \t");
		if (*p == '"' || *p == '\'')
			p++;
		return (size_t)(p - s);
	}
	return 0;
}

static size_t value_len(const char *s)
{
	return strcspn(s, "\"'} \t\r\n,");
}

struct out {
	char *buf;
	size_t len, max;
	bool cut;
};

/* Whole characters only: a cut never splits one, and a byte that is not
 * part of well-formed UTF-8 is escaped like a control character, so the
 * result is always valid UTF-8 (jansson refuses anything else). */
static void put(struct out *o, const char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)s[i];
		char esc[5];
		const char *w = (const char *)&s[i];
		size_t wn = utf8_char_len(w, n - i);
		if (c < 0x20 || c == 0x7f || wn == 0) {
			snprintf(esc, sizeof(esc), "\\x%02x", c);
			w = esc;
			wn = 4;
			i++;
		} else {
			i += wn;
		}
		if (o->len + wn + 1 > o->max) {
			o->cut = true;
			return;
		}
		memcpy(o->buf + o->len, w, wn);
		o->len += wn;
	}
}

void audit_sanitize(const char *in, char *out, size_t max)
{
	if (max == 0)
		return;
	struct out o = { out, 0, max, false };
	const char *s = in ? in : "";
	while (*s && !o.cut) {
		size_t k = secret_key_prefix(s), v;
		if (k && (v = value_len(s + k)) > 0) {
			put(&o, s, k);
			put(&o, REDACTED, strlen(REDACTED));
			s += k + v;
		} else if (strncmp(s, "Bearer", 6) == 0 && (s[6] == ' ' || s[6] == '\t') &&
			   is_token_char(s[6 + strspn(s + 6, " \t")])) {
			/* only a real token: sanitizing twice must change nothing */
			size_t sp = 6 + strspn(s + 6, " \t"), t = sp;
			while (is_token_char(s[t]))
				t++;
			put(&o, s, sp);
			put(&o, REDACTED, strlen(REDACTED));
			s += t;
		} else if (isalnum((unsigned char)*s)) {
			size_t run = 0;
			while (isalnum((unsigned char)s[run]))
				run++;
			/* the guide's "potential_secret": long alphanumeric runs */
			if (run >= 20) {
				put(&o, REDACTED, strlen(REDACTED));
				s += run;
				continue;
			}
			/* a keyword inside a word ("db_password=") still counts */
			size_t j = 1;
			while (j < run && !(secret_key_prefix(s + j) && value_len(s + j + secret_key_prefix(s + j))))
				j++;
			put(&o, s, j);
			s += j;
		} else {
			size_t c = utf8_char_len(s, strnlen(s, 4));
			put(&o, s, c ? c : 1);
			s += c ? c : 1;
		}
	}
	if (o.cut && max > 4) {
		size_t at = o.len + 4 > max ? max - 4 : o.len;
		while (at > 0 && at < o.len && ((unsigned char)out[at] & 0xc0) == 0x80)
			at--; /* not inside a character */
		memcpy(out + at, "...", 3);
		o.len = at + 3;
	}
	out[o.len < max ? o.len : max - 1] = '\0';
}

/* ---- sending ---------------------------------------------------------- */

struct entry {
	char buf[ENTRY_MAX];
	size_t len;
};

static void field(struct entry *e, const char *name, const char *value)
{
	int n = snprintf(e->buf + e->len, sizeof(e->buf) - e->len, "%s=%s\n", name, value);
	if (n > 0 && e->len + (size_t)n < sizeof(e->buf))
		e->len += (size_t)n;
}

static void field_clean(struct entry *e, const char *name, const char *value)
{
	char clean[FIELD_MAX];
	audit_sanitize(value, clean, sizeof(clean));
	field(e, name, clean);
}

static void field_num(struct entry *e, const char *name, long long v)
{
	char num[24];
	snprintf(num, sizeof(num), "%lld", v);
	field(e, name, num);
}

static void build(struct entry *e, enum audit_event ev, const struct audit_fields *f,
		  const char *file, int line, const char *msg)
{
	char prio[4];
	snprintf(prio, sizeof(prio), "%d", audit_event_priority(ev));
	field(e, "MESSAGE", msg);
	field(e, "MESSAGE_ID", audit_event_id(ev));
	field(e, "PRIORITY", prio);
	field(e, "SYSLOG_IDENTIFIER", "cloudviz-agent");
	field(e, "CLOUDVIZ_EVENT", audit_event_name(ev));
	/* addr, origin and digest are the agent's own normalised values; a
	   64-digit digest would look like a secret to the sanitizer */
	if (f && f->addr)
		field(e, "CLOUDVIZ_ADDR", f->addr);
	if (f && f->origin)
		field(e, "CLOUDVIZ_ORIGIN", f->origin);
	if (f && f->has_ttl)
		field_num(e, "CLOUDVIZ_TTL", (long long)f->ttl);
	if (f && f->reason)
		field_clean(e, "CLOUDVIZ_REASON", f->reason);
	if (f && f->incident)
		field_clean(e, "CLOUDVIZ_INCIDENT_ID", f->incident);
	if (f && f->severity)
		field_clean(e, "CLOUDVIZ_SEVERITY", f->severity);
	if (f && f->has_actor) {
		field_num(e, "CLOUDVIZ_ACTOR_UID", f->actor_uid);
		field_num(e, "CLOUDVIZ_ACTOR_PID", f->actor_pid);
	}
	if (f && f->digest)
		field(e, "CLOUDVIZ_POLICY_DIGEST", f->digest);
	if (f && f->detail)
		field_clean(e, "CLOUDVIZ_DETAIL", f->detail);
	if (f && f->instruction)
		field_clean(e, "CLOUDVIZ_INSTRUCTION_ID", f->instruction);
	if (f && f->cursor)
		field_clean(e, "CLOUDVIZ_CURSOR", f->cursor);
	if (f && f->has_days)
		field_num(e, "CLOUDVIZ_DAYS_LEFT", f->days);
	if (f && f->has_http)
		field_num(e, "CLOUDVIZ_HTTP_STATUS", f->http_status);
	if (f && f->alert_type)
		field(e, "CLOUDVIZ_ALERT_TYPE", f->alert_type);
	if (f && f->source)
		field(e, "CLOUDVIZ_SOURCE", f->source);
	if (f && f->user)
		field_clean(e, "CLOUDVIZ_USER", f->user);
	if (f && f->has_attempts)
		field_num(e, "CLOUDVIZ_ATTEMPTS", (long long)f->attempts);
	if (dropped)
		field_num(e, "CLOUDVIZ_DROPPED_EVENTS", (long long)dropped);
	field(e, "CODE_FILE", file);
	field_num(e, "CODE_LINE", line);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int journal_connect(void)
{
	static const struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = JOURNAL_SOCKET };
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	/* connected, so poll() can wait for room in journald's queue */
	if (connect(fd, (const struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	journal_fd = fd;
	return 0;
}

/* 0 sent, -EAGAIN journald busy, other -errno: no journald here.
 *
 * A burst (a reply with a hundred rejected targets) can outrun journald's
 * queue, which is only 10 datagrams where systemd did not raise
 * net.unix.max_dgram_qlen. So a full queue is waited for, but briefly: at
 * most JOURNAL_WAIT_MS per entry, and not at all after a wait ran out
 * until journald takes an entry again, so a wedged journald costs the
 * event loop one short stall, never a stall per entry. */
static int send_journal(const struct entry *e)
{
	static bool stalled;
	for (int attempt = 0; attempt < 2; attempt++) {
		if (journal_fd < 0) {
			int r = journal_connect();
			if (r < 0)
				return r;
		}
		int64_t deadline = now_ms() + JOURNAL_WAIT_MS;
		for (;;) {
			if (send(journal_fd, e->buf, e->len, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0) {
				stalled = false;
				return 0;
			}
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS)
				break;
			int64_t left = deadline - now_ms();
			if (stalled || left <= 0) {
				stalled = true;
				return -EAGAIN;
			}
			struct pollfd pfd = { .fd = journal_fd, .events = POLLOUT };
			poll(&pfd, 1, (int)left);
		}
		/* journald restarted: its old socket is gone, connect again once */
		int err = -errno;
		close(journal_fd);
		journal_fd = -1;
		if (err != -ECONNREFUSED && err != -ENOTCONN)
			return err;
	}
	return -ECONNREFUSED;
}

/* journald is not there: one logfmt line on stderr, keys lower-cased. */
static void send_stderr(const struct entry *e)
{
	char line[ENTRY_MAX + 512];
	size_t n = 0;
	for (const char *p = e->buf; *p && n + 8 < sizeof(line);) {
		const char *eq = strchr(p, '='), *nl = strchr(p, '\n');
		if (!eq || !nl || eq > nl)
			break;
		n += (size_t)snprintf(line + n, sizeof(line) - n, "%s", n ? " " : "");
		for (const char *k = p; k < eq && n + 2 < sizeof(line); k++)
			line[n++] = (char)tolower((unsigned char)*k);
		n += (size_t)snprintf(line + n, sizeof(line) - n, "=\"");
		for (const char *v = eq + 1; v < nl && n + 3 < sizeof(line); v++) {
			if (*v == '"' || *v == '\\')
				line[n++] = '\\';
			line[n++] = *v;
		}
		n += (size_t)snprintf(line + n, sizeof(line) - n, "\"");
		p = nl + 1;
	}
	if (n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	/* best effort: never wait on a full pipe */
	ssize_t w = write(STDERR_FILENO, line, n);
	(void)w;
}

void audit_emit(enum audit_event ev, const struct audit_fields *f, const char *file, int line,
		const char *fmt, ...)
{
	char raw[FIELD_MAX * 2], msg[FIELD_MAX * 2];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	audit_sanitize(raw, msg, sizeof(msg));

	struct entry *e = malloc(sizeof(*e));
	if (!e) {
		dropped++;
		return;
	}
	e->len = 0;
	build(e, ev, f, file, line, msg);
	int r = send_journal(e);
	if (r == 0)
		dropped = 0;
	else if (r == -EAGAIN)
		dropped++;
	else
		send_stderr(e);
	free(e);
}
