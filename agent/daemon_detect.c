/* Local detection in the daemon (docs/detect.md): reads the journal with
 * sd-journal inside the event loop, recognises sshd's and the CloudViz
 * API's lines by journald's trusted fields, counts failed logins per source
 * address (detect_track.h) and blocks an address that reaches max_failures
 * within the window through the one commit path: safelist and guards win,
 * one transaction per batch of lines, the state (with the journal cursor
 * and the repeat offenders) saved before the block counts as made.
 *
 * Restart: the cursor of the last line read is in state.json. A start
 * seeks to the window before it and reads that part again without acting
 * on it ("replay"), so that the counts are what they were at the stop;
 * from the line after the cursor on, lines count as new. A block is only
 * made with the cursor of its batch saved, so no line is acted on twice;
 * lines written while the agent was down come after the cursor and are
 * read then. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <systemd/sd-journal.h>

#include "daemon_internal.h"
#include "detect_parse.h"
#include "detect_track.h"
#include "utf8.h"

#define READ_BUDGET 4096             /* entries per turn of the event loop */
#define TRIGGERS_MAX 1024            /* blocks gathered into one commit */
#define ALERTS_MAX 1000              /* alerts waiting for the next report */
#define PIDS 4096                    /* sender pids remembered (a power of two) */
#define PID_MEMORY_US (600 * 1000000LL) /* sshd's LoginGraceTime is 120 s */
#define CURSOR_SAVE_USEC (300 * 1000000ULL) /* cursor alone: saved this often */
/* journald tells readers of new entries at most every 250 ms
 * (POST_CHANGE_TIMER_INTERVAL_USEC in journald-server.c): while a source's
 * failures are coming in, the journal is also read this often, for
 * window seconds after the last one; idle, inotify alone wakes the agent */
#define POLL_USEC (10 * 1000ULL)
#define OFFENDERS_SAVED 65536

/* A sender seen on a trusted line: its later lines may lack _COMM/_EXE
 * (journald reads them from /proc, gone once the process exited). */
struct pid_seen {
	uint32_t pid, uid;
	int64_t last_us;
	uint8_t source; /* enum detect_source_id + 1; 0 empty */
};

struct trigger {
	struct cvz_prefix addr;
	enum detect_source_id source;
	unsigned attempts;
	char user[DETECT_USER_MAX + 1];
	int64_t when_us;
	/* decided by commit_triggers() */
	const char *why; /* not blocked because, or NULL */
	char whybuf[200];
	uint64_t ttl;
	uint32_t offences;
};

struct detect {
	struct daemon *d;
	const struct detect_config *cfg; /* d->cfg's, or the new one during a reload */
	sd_journal *j;
	sd_event_source *io, *more, *journal_timer, *cursor_timer, *poll_timer;
	uint64_t active_until;  /* CLOCK_MONOTONIC usec: read every POLL_USEC until then */
	bool saw_failure;       /* a line of a source was counted in this read */
	struct detect_tracker *t;
	struct pid_seen pids[PIDS];
	/* replay of the window before the saved cursor */
	bool replaying;
	char replay_cursor[STATE_CURSOR_MAX];
	int64_t replay_us;
	/* the last line read */
	char cursor[STATE_CURSOR_MAX];
	int64_t cursor_us;
	bool cursor_unsaved;
	bool read_since_cursor; /* entries read after cursor was taken */
	int64_t last_us;        /* the realtime of the last entry read */
	struct trigger trig[TRIGGERS_MAX];
	size_t n_trig;
	/* what d->sx.offenders points to */
	struct detect_offender *off;
	json_t *alerts; /* for the next control API report */
	uint64_t alerts_dropped;
	struct {
		uint64_t lines, replayed, untrusted, failures, alerts, blocks, not_blocked,
			block_failed, read_errors;
	} st;
};

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- which source wrote a line -------------------------------------------- */

/* FIELD=value of the current entry: value and its length, or false. */
static bool field(sd_journal *j, const char *name, const char **v, size_t *n)
{
	const void *data;
	size_t len, nl = strlen(name);
	if (sd_journal_get_data(j, name, &data, &len) < 0 || len <= nl ||
	    ((const char *)data)[nl] != '=')
		return false;
	*v = (const char *)data + nl + 1;
	*n = len - nl - 1;
	return true;
}

static bool field_u32(sd_journal *j, const char *name, uint32_t *out)
{
	const char *v;
	size_t n;
	if (!field(j, name, &v, &n) || n == 0 || n > 10)
		return false;
	uint64_t x = 0;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return false;
		x = x * 10 + (uint64_t)(v[i] - '0');
	}
	if (x > UINT32_MAX)
		return false;
	*out = (uint32_t)x;
	return true;
}

static bool in_list(const char *v, size_t n, char *const *list, size_t count)
{
	for (size_t i = 0; i < count; i++)
		if (strlen(list[i]) == n && memcmp(list[i], v, n) == 0)
			return true;
	return false;
}

static struct pid_seen *pid_slot(struct detect *dt, uint32_t pid)
{
	return &dt->pids[(pid * 2654435761u) & (PIDS - 1)];
}

/* The source of the current entry by journald's trusted fields, or -1. A
 * line without _COMM, _EXE and _SYSTEMD_UNIT belongs to a source with a
 * uid when its sender (_PID, same _UID) wrote a trusted line of that
 * source shortly before. */
static int line_source(struct detect *dt, sd_journal *j, int64_t when_us, uint32_t *pid_out)
{
	uint32_t uid = 0, pid = 0;
	bool has_uid = field_u32(j, "_UID", &uid), has_pid = field_u32(j, "_PID", &pid);
	const char *comm = NULL, *exe = NULL, *unit = NULL;
	size_t n_comm = 0, n_exe = 0, n_unit = 0;
	bool c = field(j, "_COMM", &comm, &n_comm), e = field(j, "_EXE", &exe, &n_exe),
	     u = field(j, "_SYSTEMD_UNIT", &unit, &n_unit);
	const char *tr = NULL;
	size_t n_tr = 0;
	bool t = field(j, "_TRANSPORT", &tr, &n_tr);
	*pid_out = has_pid ? pid : 0;
	for (int s = 0; s < DETECT_SOURCES; s++) {
		const struct detect_source_config *sc = &dt->cfg->src[s];
		if (!sc->enabled || (sc->has_uid && (!has_uid || uid != sc->uid)) ||
		    (sc->n_transport && (!t || !in_list(tr, n_tr, sc->transport, sc->n_transport))))
			continue;
		bool match = (u && in_list(unit, n_unit, sc->unit, sc->n_unit)) ||
			     (e && in_list(exe, n_exe, sc->exe, sc->n_exe)) ||
			     (c && in_list(comm, n_comm, sc->comm, sc->n_comm));
		if (match) {
			if (has_pid && sc->has_uid)
				*pid_slot(dt, pid) = (struct pid_seen){ pid, uid, when_us, (uint8_t)(s + 1) };
			return s;
		}
		if (!c && !e && !u && has_pid && sc->has_uid) {
			const struct pid_seen *p = pid_slot(dt, pid);
			if (p->source == s + 1 && p->pid == pid && p->uid == uid &&
			    when_us - p->last_us < PID_MEMORY_US && when_us >= p->last_us - PID_MEMORY_US)
				return s;
		}
	}
	return -1;
}

/* ---- reading ------------------------------------------------------------------ */

static void add_trigger(struct detect *dt, const struct cvz_prefix *addr, enum detect_source_id s,
			unsigned attempts, const char *user, int64_t when_us)
{
	if (dt->n_trig == TRIGGERS_MAX)
		return; /* the caller commits at TRIGGERS_MAX before reading on */
	struct trigger *t = &dt->trig[dt->n_trig++];
	memset(t, 0, sizeof(*t));
	t->addr = *addr;
	t->source = s;
	t->attempts = attempts;
	snprintf(t->user, sizeof(t->user), "%s", user);
	t->when_us = when_us;
}

/* Counts the current entry. */
static void count_line(struct detect *dt, sd_journal *j, int64_t when_us, bool replay)
{
	uint32_t pid;
	int s = line_source(dt, j, when_us, &pid);
	if (s < 0) {
		dt->st.untrusted++;
		return;
	}
	const char *msg;
	size_t len;
	if (!field(j, "MESSAGE", &msg, &len))
		return;
	const struct detect_limits *lim = &dt->cfg->src[s].lim;
	struct detect_obs o = { .source = (unsigned)s, .when_us = when_us };
	const char *user;
	struct sshd_line sl;
	struct api_line al;
	if (s == DETECT_SSHD) {
		if (!detect_parse_sshd(msg, len, &sl))
			return;
		o.addr = sl.addr;
		o.pid = pid;
		o.has_port = sl.has_port;
		o.port = sl.port;
		o.attempts = sl.attempts;
		o.floor = sl.floor;
		o.ends_connection = sl.kind == SSHD_PREAUTH_END;
		user = sl.user;
	} else {
		if (!detect_parse_api(msg, len, &al))
			return;
		o.addr = al.addr;
		o.attempts = al.kind == API_AUTH_FAILED ? 1 : 0;
		o.floor = al.kind == API_SECURITY ? lim->max_failures : 0;
		user = al.user;
	}
	struct detect_verdict v;
	if (detect_track_feed(dt->t, &o, lim, &v) < 0)
		return;
	dt->saw_failure = true;
	dt->st.failures += v.added;
	/* in a replay the block was made (or refused) before the stop */
	if (v.trigger && !replay)
		add_trigger(dt, &o.addr, (enum detect_source_id)s, v.in_window, user, when_us);
}

static void commit_triggers(struct detect *dt);

/* Takes the cursor of the entry read last (the journal's current entry,
 * also after sd_journal_next() found nothing more): once per batch, not
 * per line. */
static void take_cursor(struct detect *dt)
{
	if (!dt->read_since_cursor)
		return;
	char *c = NULL;
	if (sd_journal_get_cursor(dt->j, &c) >= 0 && strlen(c) < sizeof(dt->cursor)) {
		memcpy(dt->cursor, c, strlen(c) + 1);
		dt->cursor_us = dt->last_us;
		dt->cursor_unsaved = true;
	}
	free(c);
	dt->read_since_cursor = false;
}

/* Reads what the journal has, up to READ_BUDGET entries; true when more
 * is waiting. */
static bool read_some(struct detect *dt)
{
	sd_journal *j = dt->j;
	for (unsigned i = 0; i < READ_BUDGET; i++) {
		int r = sd_journal_next(j);
		if (r < 0)
			dt->st.read_errors++; /* wait for the journal to change */
		if (r <= 0) {
			commit_triggers(dt);
			return false;
		}
		uint64_t rt = 0;
		if (sd_journal_get_realtime_usec(j, &rt) < 0 || rt > (uint64_t)CVZ_TIME_MAX * 1000000)
			continue;
		int64_t when = (int64_t)rt;
		bool replay = false;
		if (dt->replaying) {
			if (sd_journal_test_cursor(j, dt->replay_cursor) > 0) {
				replay = true; /* the last line read before the stop */
				dt->replaying = false;
			} else if (when <= dt->replay_us) {
				replay = true;
			} else {
				dt->replaying = false; /* the cursor's entry is gone */
			}
		}
		dt->st.lines++;
		dt->st.replayed += replay;
		count_line(dt, j, when, replay);
		dt->read_since_cursor = true;
		dt->last_us = when;
		if (dt->n_trig == TRIGGERS_MAX)
			commit_triggers(dt);
	}
	commit_triggers(dt);
	return true;
}

/* ---- acting ------------------------------------------------------------------- */

static void queue_alert(struct detect *dt, const struct trigger *t, const char *addr,
			const char *user, bool blocked, uint64_t ttl, const char *detail)
{
	if (!dt->d->control) /* nobody to report to */
		return;
	if (!dt->alerts && !(dt->alerts = json_array()))
		return;
	if (json_array_size(dt->alerts) >= ALERTS_MAX) {
		json_array_remove(dt->alerts, 0);
		dt->alerts_dropped++;
	}
	char when[32];
	time_t secs = (time_t)(t->when_us / 1000000);
	struct tm tm;
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&secs, &tm));
	json_t *a = json_pack("{s:s, s:s, s:s, s:I, s:o, s:s, s:s, s:b}", "type",
			      "multiple_failed_logins", "severity", "high", "addr", addr, "attempts",
			      (json_int_t)t->attempts, "user", utf8_json_string(user), "source",
			      detect_source_name(t->source), "time", when, "blocked", blocked);
	if (a && blocked)
		json_object_set_new(a, "ttl", json_integer((json_int_t)ttl));
	if (a && detail)
		json_object_set_new(a, "detail", utf8_json_string(detail));
	if (a)
		json_array_append_new(dt->alerts, a);
}

static void journal_alert(struct detect *dt, const struct trigger *t, bool blocked, uint64_t ttl,
			  uint32_t offences, const char *why)
{
	char addr[CVZ_PREFIX_STRLEN], user[DETECT_USER_MAX * 4 + 8], detail[512];
	const struct detect_limits *lim = &dt->cfg->src[t->source].lim;
	cvz_prefix_format(&t->addr, addr, sizeof(addr));
	audit_sanitize(t->user, user, sizeof(user));
	if (blocked)
		snprintf(detail, sizeof(detail), "blocked for %llus (offence %u)",
			 (unsigned long long)ttl, offences);
	else
		snprintf(detail, sizeof(detail), "not blocked: %s", why);
	struct audit_fields f = {
		.addr = addr,
		.severity = "high",
		.alert_type = "multiple_failed_logins",
		.source = detect_source_name(t->source),
		.user = user,
		.has_attempts = true,
		.attempts = t->attempts,
		.detail = detail,
	};
	audit(AE_SECURITY_ALERT, &f, "%u failed logins from %s within %us (%s, user \"%s\"); %s",
	      t->attempts, addr, lim->window, f.source, user, detail);
	dt->st.alerts++;
	queue_alert(dt, t, addr, t->user, blocked, ttl, blocked ? NULL : detail);
}

/* The offenders as they will be, for the state saved with the change. */
static struct detect_offender *list_offenders(struct detect *dt, int64_t now, size_t *n)
{
	uint64_t reach = 0;
	for (int s = 0; s < DETECT_SOURCES; s++)
		if (dt->cfg->src[s].enabled && dt->cfg->src[s].lim.max_ttl > reach)
			reach = dt->cfg->src[s].lim.max_ttl;
	size_t cap = dt->cfg->max_tracked < OFFENDERS_SAVED ? dt->cfg->max_tracked : OFFENDERS_SAVED;
	struct detect_offender *v = calloc(cap ? cap : 1, sizeof(*v));
	*n = v ? detect_track_offenders(dt->t, now, reach, v, cap) : 0;
	return v;
}

/* Blocks the triggered addresses in one change, saved with the cursor of
 * the last line read; then journals an alert (and a block) for each. */
static void commit_triggers(struct detect *dt)
{
	struct daemon *d = dt->d;
	take_cursor(dt);
	if (dt->n_trig == 0)
		return;
	int64_t now = (now_us() + 999999) / 1000000;
	struct daemon_next n;
	daemon_next_init(&n, d);
	size_t staged = 0;
	for (size_t i = 0; i < dt->n_trig; i++) {
		struct trigger *t = &dt->trig[i];
		const struct detect_limits *lim = &dt->cfg->src[t->source].lim;
		t->why = bl_refusal(&t->addr, d->policy->safelist, d->policy->n_safelist, t->whybuf,
				    sizeof(t->whybuf));
		if (!t->why)
			t->why = daemon_guard_refusal(d, &t->addr, t->whybuf, sizeof(t->whybuf));
		t->ttl = t->offences = 0;
		if (t->why)
			continue;
		t->ttl = detect_track_next_ttl(dt->t, &t->addr, now, lim, &t->offences);
		char reason[96];
		snprintf(reason, sizeof(reason), "%u failed logins in %us (%s)", t->attempts,
			 lim->window, detect_source_name(t->source));
		int r = bl_change_add(&n.bl, &t->addr, ORIGIN_DETECT, t->ttl, reason, NULL, now);
		if (r < 0) {
			t->why = r == -ENOSPC ? "the limit of detect entries is reached" :
				 r == -ERANGE ? "ttl out of range" : "out of memory";
			continue;
		}
		struct detect_offender o = { t->addr, now, t->ttl, t->offences };
		(void)detect_track_offender(dt->t, &o);
		staged++;
	}
	char err[512] = "";
	int r = 0;
	struct detect_offender *off = NULL;
	if (staged) {
		size_t n_off = 0;
		off = list_offenders(dt, now, &n_off);
		n.sx.offenders = off;
		n.sx.n_offenders = n_off;
		memcpy(n.sx.detect_cursor, dt->cursor, sizeof(n.sx.detect_cursor));
		n.sx.detect_cursor_us = dt->cursor_us;
		r = off ? daemon_commit(d, &n, err, sizeof(err)) : -ENOMEM;
		if (r == 0) {
			free(dt->off);
			dt->off = off;
			dt->cursor_unsaved = false;
		} else {
			free(off);
			if (!err[0])
				snprintf(err, sizeof(err), "out of memory");
		}
	}
	for (size_t i = 0; i < dt->n_trig; i++) {
		const struct trigger *t = &dt->trig[i];
		char addr[CVZ_PREFIX_STRLEN];
		cvz_prefix_format(&t->addr, addr, sizeof(addr));
		if (t->why) {
			dt->st.not_blocked++;
			journal_alert(dt, t, false, 0, 0, t->why);
			continue;
		}
		if (r < 0) {
			dt->st.block_failed++;
			char w[600];
			snprintf(w, sizeof(w), "could not block: %s", err);
			journal_alert(dt, t, false, 0, 0, w);
			continue;
		}
		dt->st.blocks++;
		journal_alert(dt, t, true, t->ttl, t->offences, NULL);
		const struct bl_entry *e = bl_find(&d->bl, &t->addr, ORIGIN_DETECT);
		struct audit_fields f = {
			.addr = addr,
			.origin = "detect",
			.reason = e ? e->reason : NULL,
			.has_ttl = true,
			.ttl = t->ttl,
		};
		audit(AE_ADDR_BLOCKED, &f, "Blocked %s (detect: %s)", addr, e && e->reason ? e->reason : "");
	}
	if (dt->alerts && json_array_size(dt->alerts))
		daemon_control_report_alerts(d);
	if (r < 0 && staged) {
		struct audit_fields f = { .origin = "detect", .detail = err };
		if (n.kernel_refused)
			audit(AE_KERNEL_ERROR, &f, "Could not block %zu addresses: %s", staged, err);
	}
	daemon_next_free(&n);
	dt->n_trig = 0;
}

/* ---- the event loop ------------------------------------------------------------- */

static void arm_journal_timer(struct detect *dt)
{
	uint64_t t;
	if (sd_journal_get_timeout(dt->j, &t) < 0 || t == UINT64_MAX) {
		sd_event_source_set_enabled(dt->journal_timer, SD_EVENT_OFF);
		return;
	}
	sd_event_source_set_time(dt->journal_timer, t);
	sd_event_source_set_enabled(dt->journal_timer, SD_EVENT_ONESHOT);
}

static uint32_t widest_window(const struct detect_config *c);

static uint64_t mono_usec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void drain(struct detect *dt)
{
	(void)sd_journal_process(dt->j);
	dt->saw_failure = false;
	bool more = read_some(dt);
	sd_event_source_set_enabled(dt->more, more ? SD_EVENT_ONESHOT : SD_EVENT_OFF);
	arm_journal_timer(dt);
	uint64_t now = mono_usec();
	if (dt->saw_failure)
		dt->active_until = now + (uint64_t)widest_window(dt->cfg) * 1000000;
	if (now < dt->active_until) {
		sd_event_source_set_time(dt->poll_timer, now + POLL_USEC);
		sd_event_source_set_enabled(dt->poll_timer, SD_EVENT_ONESHOT);
	}
}

static int on_journal(sd_event_source *s, int fd, uint32_t revents, void *ud)
{
	drain(ud);
	return 0;
}

static int on_more(sd_event_source *s, void *ud)
{
	drain(ud);
	return 0;
}

static int on_poll_timer(sd_event_source *s, uint64_t usec, void *ud)
{
	drain(ud);
	return 0;
}

static int on_journal_timer(sd_event_source *s, uint64_t usec, void *ud)
{
	drain(ud);
	return 0;
}

/* The cursor alone (no block since) is saved now and then, so a restart
 * reads little again; replaying is correct either way. */
static int on_cursor_timer(sd_event_source *s, uint64_t usec, void *ud)
{
	struct detect *dt = ud;
	if (dt->cursor_unsaved) {
		memcpy(dt->d->sx.detect_cursor, dt->cursor, sizeof(dt->cursor));
		dt->d->sx.detect_cursor_us = dt->cursor_us;
		dt->cursor_unsaved = false;
		daemon_state_dirty(dt->d);
	}
	sd_event_source_set_time_relative(s, CURSOR_SAVE_USEC);
	return 0;
}

/* sd_journal matches: a pre-filter only (the trusted fields decide). Lines
 * that lost _COMM/_EXE still carry SYSLOG_IDENTIFIER, so the source's
 * process names are matched there too. */
static int add_matches(struct detect *dt)
{
	sd_journal *j = dt->j;
	int r = 0;
	char m[320];
	for (int s = 0; r >= 0 && s < DETECT_SOURCES; s++) {
		const struct detect_source_config *sc = &dt->cfg->src[s];
		if (!sc->enabled)
			continue;
		for (size_t i = 0; r >= 0 && i < sc->n_comm; i++) {
			snprintf(m, sizeof(m), "_COMM=%s", sc->comm[i]);
			r = sd_journal_add_match(j, m, 0);
			r = r < 0 ? r : sd_journal_add_disjunction(j);
			snprintf(m, sizeof(m), "SYSLOG_IDENTIFIER=%s", sc->comm[i]);
			r = r < 0 ? r : sd_journal_add_match(j, m, 0);
			r = r < 0 ? r : sd_journal_add_disjunction(j);
		}
		for (size_t i = 0; r >= 0 && i < sc->n_exe; i++) {
			snprintf(m, sizeof(m), "_EXE=%s", sc->exe[i]);
			r = sd_journal_add_match(j, m, 0);
			r = r < 0 ? r : sd_journal_add_disjunction(j);
		}
		for (size_t i = 0; r >= 0 && i < sc->n_unit; i++) {
			snprintf(m, sizeof(m), "_SYSTEMD_UNIT=%s", sc->unit[i]);
			r = sd_journal_add_match(j, m, 0);
			r = r < 0 ? r : sd_journal_add_disjunction(j);
		}
	}
	return r;
}

static uint32_t widest_window(const struct detect_config *c)
{
	uint32_t w = 0;
	for (int s = 0; s < DETECT_SOURCES; s++)
		if (c->src[s].enabled && c->src[s].lim.window > w)
			w = c->src[s].lim.window;
	return w;
}

/* Where reading starts: the window before the saved cursor (replayed), or,
 * on a first start, the window before now (counted). */
static int seek_start(struct detect *dt)
{
	const struct state_extra *sx = &dt->d->sx;
	int64_t back = (int64_t)widest_window(dt->cfg) * 1000000;
	int64_t now = now_us();
	if (sx->detect_cursor[0]) {
		dt->replaying = true;
		memcpy(dt->replay_cursor, sx->detect_cursor, sizeof(dt->replay_cursor));
		/* a line written after this start was never read before, whatever
		   the saved time says (a clock set back, a cursor gone) */
		dt->replay_us = sx->detect_cursor_us < now ? sx->detect_cursor_us : now;
		memcpy(dt->cursor, sx->detect_cursor, sizeof(dt->cursor));
		dt->cursor_us = sx->detect_cursor_us;
		int64_t from = dt->replay_us > back ? dt->replay_us - back : 0;
		return sd_journal_seek_realtime_usec(dt->j, (uint64_t)from);
	}
	return sd_journal_seek_realtime_usec(dt->j, (uint64_t)(now > back ? now - back : 0));
}

static void detect_free(struct detect *dt)
{
	if (!dt)
		return;
	sd_event_source_unref(dt->io);
	sd_event_source_unref(dt->more);
	sd_event_source_unref(dt->journal_timer);
	sd_event_source_unref(dt->poll_timer);
	sd_event_source_unref(dt->cursor_timer);
	sd_journal_close(dt->j);
	detect_track_free(dt->t);
	if (dt->d->sx.offenders == dt->off) {
		dt->d->sx.offenders = NULL;
		dt->d->sx.n_offenders = 0;
	}
	free(dt->off);
	json_decref(dt->alerts);
	free(dt);
}

/* Starts detection with cfg (d->cfg's or a reload's). The offenders of
 * state.json (d->sx) are taken over. */
static int detect_start_with(struct daemon *d, const struct agent_config *cfg, char *err,
			     size_t errlen)
{
	struct detect *dt = calloc(1, sizeof(*dt));
	if (!dt) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	dt->d = d;
	dt->cfg = &cfg->detect;
	int r = (dt->t = detect_track_new(cfg->detect.max_tracked)) ? 0 : -ENOMEM;
	for (size_t i = 0; r == 0 && i < d->sx.n_offenders; i++)
		r = detect_track_offender(dt->t, &d->sx.offenders[i]);
	if (r < 0) {
		snprintf(err, errlen, "out of memory");
		detect_free(dt);
		return r;
	}
	/* the loaded array (or the previous instance's) is now dt's */
	dt->off = d->sx.offenders;
	r = sd_journal_open(&dt->j, SD_JOURNAL_LOCAL_ONLY | SD_JOURNAL_SYSTEM);
	if (r < 0) {
		snprintf(err, errlen, "cannot open the journal: %s", strerror(-r));
	} else if ((r = add_matches(dt)) < 0 || (r = seek_start(dt)) < 0) {
		snprintf(err, errlen, "cannot read the journal: %s", strerror(-r));
	} else {
		int fd = sd_journal_get_fd(dt->j), ev = sd_journal_get_events(dt->j);
		r = fd < 0 ? fd : ev < 0 ? ev : 0;
		r = r < 0 ? r : sd_event_add_io(d->ev, &dt->io, fd, (uint32_t)ev, on_journal, dt);
		r = r < 0 ? r : sd_event_add_defer(d->ev, &dt->more, on_more, dt);
		r = r < 0 ? r : sd_event_add_time(d->ev, &dt->journal_timer, CLOCK_MONOTONIC, 0, 0,
						  on_journal_timer, dt);
		r = r < 0 ? r : sd_event_add_time(d->ev, &dt->poll_timer, CLOCK_MONOTONIC, 0, 1000,
						  on_poll_timer, dt);
		r = r < 0 ? r : sd_event_add_time_relative(d->ev, &dt->cursor_timer, CLOCK_MONOTONIC,
							   CURSOR_SAVE_USEC, 0, on_cursor_timer, dt);
		if (r < 0)
			snprintf(err, errlen, "cannot watch the journal: %s", strerror(-r));
		else
			sd_event_source_set_enabled(dt->cursor_timer, SD_EVENT_ON);
	}
	if (r < 0) {
		detect_free(dt);
		return r;
	}
	/* readable files of the system journal: none means journald has not
	   written yet, or (more likely) this user may not read them */
	if (sd_journal_has_runtime_files(dt->j) <= 0 && sd_journal_has_persistent_files(dt->j) <= 0)
		fprintf(stderr, "cloudviz-agent: detect: no readable system journal file yet "
				"(the agent's user needs read access: docs/hardening.md); "
				"watching for one\n");
	/* read what is there on the first turn of the loop */
	sd_event_source_set_enabled(dt->more, SD_EVENT_ONESHOT);
	d->detect = dt;
	return 0;
}

int daemon_detect_start(struct daemon *d, char *err, size_t errlen)
{
	if (!d->cfg->has_detect) {
		free(d->sx.offenders); /* detection is off: no escalation to keep */
		d->sx.offenders = NULL;
		d->sx.n_offenders = 0;
		return 0;
	}
	return detect_start_with(d, d->cfg, err, errlen);
}

void daemon_detect_stop(struct daemon *d)
{
	if (d->detect && d->detect->n_trig)
		commit_triggers(d->detect);
	detect_free(d->detect);
	d->detect = NULL;
}

static bool same_list(char *const *a, size_t na, char *const *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (strcmp(a[i], b[i]) != 0)
			return false;
	return true;
}

static bool same_detect(const struct agent_config *a, const struct agent_config *b)
{
	if (a->has_detect != b->has_detect || a->detect.max_tracked != b->detect.max_tracked)
		return false;
	for (int s = 0; s < DETECT_SOURCES; s++) {
		const struct detect_source_config *x = &a->detect.src[s], *y = &b->detect.src[s];
		if (x->enabled != y->enabled || x->has_uid != y->has_uid || x->uid != y->uid ||
		    memcmp(&x->lim, &y->lim, sizeof(x->lim)) != 0 ||
		    !same_list(x->unit, x->n_unit, y->unit, y->n_unit) ||
		    !same_list(x->exe, x->n_exe, y->exe, y->n_exe) ||
		    !same_list(x->comm, x->n_comm, y->comm, y->n_comm) ||
		    !same_list(x->transport, x->n_transport, y->transport, y->n_transport))
			return false;
	}
	return true;
}

void daemon_detect_reload(struct daemon *d, struct agent_config *newcfg)
{
	if (same_detect(d->cfg, newcfg)) {
		if (d->detect)
			d->detect->cfg = &newcfg->detect;
		return;
	}
	/* a new start from the cursor read so far, which replays the window:
	   the counts carry over, judged by the new thresholds */
	struct detect *old = d->detect;
	json_t *alerts = NULL;
	uint64_t dropped = 0;
	if (old) {
		commit_triggers(old);
		memcpy(d->sx.detect_cursor, old->cursor, sizeof(old->cursor));
		d->sx.detect_cursor_us = old->cursor_us;
		old->off = NULL; /* d->sx.offenders stays, for the new instance */
		alerts = old->alerts; /* not reported yet: carried over */
		dropped = old->alerts_dropped;
		old->alerts = NULL;
		detect_free(old);
		d->detect = NULL;
	}
	if (!newcfg->has_detect) {
		json_decref(alerts); /* not reported: detection is off now */
		free(d->sx.offenders);
		d->sx.offenders = NULL;
		d->sx.n_offenders = 0;
		daemon_state_dirty(d);
		return;
	}
	char err[512];
	if (detect_start_with(d, newcfg, err, sizeof(err)) < 0) {
		json_decref(alerts);
		struct audit_fields f = { .detail = err };
		audit(AE_POLICY_REJECTED, &f, "Local detection could not be restarted: %s", err);
		return;
	}
	d->detect->alerts = alerts;
	d->detect->alerts_dropped = dropped;
}

json_t *daemon_detect_status(const struct daemon *d)
{
	const struct detect *dt = d->detect;
	if (!dt)
		return json_null();
	struct detect_track_stats ts;
	detect_track_stats(dt->t, &ts);
	json_t *sources = json_array();
	for (int s = 0; sources && s < DETECT_SOURCES; s++)
		if (dt->cfg->src[s].enabled)
			json_array_append_new(sources, json_string(detect_source_name(s)));
	return json_pack("{s:o?, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:b}",
			 "sources", sources, "lines", (json_int_t)dt->st.lines, "replayed",
			 (json_int_t)dt->st.replayed, "untrusted", (json_int_t)dt->st.untrusted,
			 "failures", (json_int_t)dt->st.failures, "alerts", (json_int_t)dt->st.alerts,
			 "blocks", (json_int_t)dt->st.blocks, "not_blocked",
			 (json_int_t)dt->st.not_blocked, "block_failed", (json_int_t)dt->st.block_failed,
			 "read_errors", (json_int_t)dt->st.read_errors, "tracked",
			 (json_int_t)ts.addresses, "connections", (json_int_t)ts.connections,
			 "offenders", (json_int_t)ts.offenders, "evicted", (json_int_t)ts.evicted,
			 "tracker_bytes", (json_int_t)ts.bytes, "replaying", dt->replaying,
			 "journal_files", sd_journal_has_runtime_files(dt->j) > 0 ||
						  sd_journal_has_persistent_files(dt->j) > 0);
}

json_t *daemon_detect_take_alerts(struct daemon *d, uint64_t *dropped)
{
	struct detect *dt = d->detect;
	*dropped = 0;
	if (!dt || !dt->alerts)
		return json_array();
	json_t *a = dt->alerts;
	dt->alerts = NULL;
	*dropped = dt->alerts_dropped;
	dt->alerts_dropped = 0;
	return a;
}
