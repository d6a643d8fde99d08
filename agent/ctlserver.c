/* The control socket: local operators and tools talk to the daemon here.
 * Peers are checked with SO_PEERCRED/SO_PEERGROUPS: root, the agent's own
 * user and members of the socket's group are served, anyone else is refused
 * and journaled. No network listener, ever.
 *
 * Every connection is bounded (docs/config.md, "The control socket"): a
 * complete request within CONN_REQUEST_USEC of the accept, or an error line
 * and the close; a reply the client stops reading for CONN_IDLE_USEC is
 * dropped; at most MAX_CONNS connections, CONNS_PER_UID of them from one
 * uid other than root and the agent's, and CONNS_RESERVED kept for those
 * two, so local users cannot take every slot. A connection refused for the
 * limits gets an error line too. */
#include <errno.h>
#include <stdarg.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "ctl.h"
#include "daemon_internal.h"
#include "utf8.h"

#define MAX_CONNS 64
#define CONNS_PER_UID 8
#define CONNS_RESERVED 8 /* of MAX_CONNS, only for root and the agent's own uid */
#define CONN_REQUEST_USEC (10 * 1000000ULL) /* accept to a complete request */
#define CONN_IDLE_USEC (10 * 1000000ULL)    /* a reply not read any further */
/* SO_PEERGROUPS: the first try fits most peers; the kernel says how much a
   peer in more groups needs, up to NGROUPS_MAX (65536) of them */
#define PEERGROUPS_FIRST 256
#define PEERGROUPS_MAX 65536

struct ctl_conn {
	struct daemon *d;
	int fd;
	sd_event_source *src;
	sd_event_source *timer; /* request deadline, then reply idle time */
	uint64_t active_at;     /* CLOCK_MONOTONIC usec of the last reply progress */
	uint32_t uid;
	struct actor actor;
	bool allowed;
	char in[CTL_MAX_REQUEST];
	size_t inlen;
	char *out;
	size_t outlen, outoff;
};

static sd_event_source *listen_src;
/* The group whose members may use the socket, when there is one: the
 * configured socket_group (whatever its gid, root's included: the operator
 * named it), else the agent's own group as it runs (the configured user's,
 * or its own when not root). An agent running as root with neither has no
 * such group: only root and its own uid are served, never gid 0 by default. */
static gid_t socket_gid;
static bool socket_gid_set;
static struct ctl_conn *conns[MAX_CONNS];
static unsigned n_conns;

static void conn_free(struct ctl_conn *c)
{
	sd_event_source_disable_unref(c->src);
	sd_event_source_disable_unref(c->timer);
	close(c->fd);
	free(c->out);
	for (size_t i = 0; i < MAX_CONNS; i++)
		if (conns[i] == c)
			conns[i] = NULL;
	free(c);
	n_conns--;
}

static unsigned conns_of_uid(uint32_t uid)
{
	unsigned n = 0;
	for (size_t i = 0; i < MAX_CONNS; i++)
		n += conns[i] && conns[i]->uid == uid;
	return n;
}

static uint64_t now_usec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
}

/* ---- authorization ------------------------------------------------------------ */

static bool in_group(int fd, gid_t primary, gid_t want)
{
	if (primary == want)
		return true;
	gid_t first[PEERGROUPS_FIRST], *groups = first;
	_cleanup_(freep) gid_t *more = NULL;
	socklen_t len = sizeof(first);
	int r = getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len);
	/* ERANGE: len now says how much this peer's groups take */
	if (r < 0 && errno == ERANGE && len > sizeof(first) &&
	    len <= PEERGROUPS_MAX * sizeof(gid_t) && (more = malloc(len))) {
		groups = more;
		r = getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len);
	}
	if (r < 0)
		return false;
	for (size_t i = 0; i < len / sizeof(gid_t); i++)
		if (groups[i] == want)
			return true;
	return false;
}

static bool authorize(struct ctl_conn *c)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return false;
	c->actor = (struct actor){ .known = true, .uid = cred.uid, .pid = cred.pid };
	if (cred.uid == 0 || cred.uid == geteuid())
		return true;
	return socket_gid_set && in_group(c->fd, cred.gid, socket_gid);
}

/* ---- replies ------------------------------------------------------------------- */

/* Messages quote outside text: cut on a character boundary and made valid
 * UTF-8 here, so jansson never refuses one. */
static json_t *__attribute__((format(printf, 1, 2))) reply_error(const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	utf8_vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return json_pack("{s:b, s:o}", "ok", 0, "error", utf8_json_string(msg));
}

static json_t *reply_ok(void)
{
	return json_pack("{s:b}", "ok", 1);
}

json_t *daemon_entries_by_origin(const struct daemon *d)
{
	size_t n[ORIGIN_COUNT] = { 0 };
	for (size_t i = 0; i < d->bl.n; i++)
		n[d->bl.v[i].origin]++;
	for (size_t i = 0; i < d->policy->n_blocked; i++)
		n[d->policy->blocked_src[i] ? ORIGIN_FILE : ORIGIN_POLICY]++;
	json_t *o = json_object();
	for (int i = 0; o && i < ORIGIN_COUNT; i++)
		json_object_set_new(o, bl_origin_name((enum bl_origin)i), json_integer((json_int_t)n[i]));
	return o;
}

static json_t *cmd_status(struct daemon *d, json_t *req)
{
	char line[256];
	daemon_status_line(d, line, sizeof(line));
	int64_t left = d->sx.confirm_deadline ? d->sx.confirm_deadline - (int64_t)time(NULL) : -1;
	/* kernel ranges: both pairs of sets; dynamic: the runtime blocks' pair */
	/* paths are bytes, not necessarily UTF-8: utf8_json_string */
	return json_pack("{s:b, s:s, s:o, s:o, s:s, s:o, s:I, s:I, s:I, s:I, s:I, s:b, s:b, s:o, s:s, s:o, s:o, s:o}",
			 "ok", 1, "version", CVZ_VERSION, "node_id", utf8_json_string(d->cfg->node_id),
			 "policy", utf8_json_string(d->policy->file), "policy_digest", d->digest, "entries_by_origin",
			 daemon_entries_by_origin(d), "kernel_ranges_v4",
			 (json_int_t)(d->view.lists.n4 + d->dynamic.n4), "kernel_ranges_v6",
			 (json_int_t)(d->view.lists.n6 + d->dynamic.n6), "dynamic_ranges_v4",
			 (json_int_t)d->dynamic.n4, "dynamic_ranges_v6", (json_int_t)d->dynamic.n6,
			 "elements_sent",
			 (json_int_t)d->elements_sent, "lockdown", d->sx.lockdown,
			 "table_owned", d->table_flags != 0, "confirm_seconds_left",
			 left >= 0 ? json_integer(left > 0 ? left : 0) : json_null(), "status", line,
			 "control", daemon_control_status(d), "protected", daemon_protect_status(d),
			 "detect", daemon_detect_status(d));
}

static json_t *entry_json(const struct cvz_prefix *p, const char *origin, const char *source,
			  const struct bl_entry *e)
{
	char addr[CVZ_PREFIX_STRLEN];
	json_t *o = json_pack("{s:s, s:s}", "addr", cvz_prefix_format(p, addr, sizeof(addr)),
			      "origin", origin);
	if (!o)
		return NULL;
	if (source)
		json_object_set_new(o, "source", utf8_json_string(source));
	if (!e)
		return o;
	json_object_set_new(o, "created", json_integer(e->created));
	json_object_set_new(o, "expires", e->expires ? json_integer(e->expires) : json_null());
	if (e->reason)
		json_object_set_new(o, "reason", utf8_json_string(e->reason));
	if (e->incident)
		json_object_set_new(o, "incident", utf8_json_string(e->incident));
	return o;
}

static json_t *cmd_list(struct daemon *d, json_t *req)
{
	const char *want = json_string_value(json_object_get(req, "origin"));
	enum bl_origin og = ORIGIN_COUNT;
	if (want && bl_origin_lookup(want, &og) < 0)
		return reply_error("unknown origin \"%.*s\" (expected policy, file, operator, control, crowdsec or detect)",
				   utf8_prefix(want, 64), want);
	json_t *list = json_array();
	const struct policy *p = d->policy;
	/* an entry that cannot be added fails the reply: never a list that
	   silently lacks entries */
	int bad = 0;
	for (size_t i = 0; list && !bad && i < p->n_blocked; i++) {
		enum bl_origin o = p->blocked_src[i] ? ORIGIN_FILE : ORIGIN_POLICY;
		if (og == ORIGIN_COUNT || og == o)
			bad = json_array_append_new(list, entry_json(&p->blocked[i], bl_origin_name(o),
								     p->blocked_src[i] ? p->list_files[p->blocked_src[i] - 1] : p->file,
								     NULL));
	}
	for (size_t i = 0; list && !bad && i < d->bl.n; i++) {
		const struct bl_entry *e = &d->bl.v[i];
		if (og == ORIGIN_COUNT || og == e->origin)
			bad = json_array_append_new(list, entry_json(&e->prefix,
								     bl_origin_name((enum bl_origin)e->origin),
								     NULL, e));
	}
	if (bad) {
		json_decref(list);
		return NULL;
	}
	return json_pack("{s:b, s:o}", "ok", 1, "entries", list);
}

/* Reads "addr" from the request as a prefix: 0, or -EINVAL and the error
 * reply in *reply. Not "NULL means fine": a reply that could not be built
 * was once taken for a parsed address (an uninitialised one). */
static int request_prefix(json_t *req, struct cvz_prefix *p, json_t **reply)
{
	const char *addr = json_string_value(json_object_get(req, "addr"));
	const char *why = NULL;
	char buf[160];
	if (!addr) {
		*reply = reply_error("%s", "missing \"addr\"");
		return -EINVAL;
	}
	if (cvz_prefix_parse(addr, p, &why, buf, sizeof(buf)) < 0) {
		*reply = reply_error("bad address \"%.*s\": %s", utf8_prefix(addr, 64), addr, why);
		return -EINVAL;
	}
	return 0;
}

static json_t *cmd_block(struct daemon *d, json_t *req, const struct actor *a)
{
	struct cvz_prefix p;
	json_t *bad = NULL;
	if (request_prefix(req, &p, &bad) < 0)
		return bad;
	json_t *ttl = json_object_get(req, "ttl");
	if (ttl && !json_is_integer(ttl))
		return reply_error("%s", "\"ttl\" must be an integer number of seconds");
	/* the limit is the blocklist's (bl_add refuses it too); said here with
	   the field and the value */
	if (ttl && (json_integer_value(ttl) < 0 || json_integer_value(ttl) > CVZ_TTL_MAX))
		return reply_error("\"ttl\" %" JSON_INTEGER_FORMAT " is out of range: 0 (no expiry) to %lld seconds (10 years)",
				   json_integer_value(ttl), (long long)CVZ_TTL_MAX);
	const char *reason = json_string_value(json_object_get(req, "reason"));
	const char *incident = json_string_value(json_object_get(req, "incident"));
	if ((reason && strlen(reason) >= BL_REASON_MAX) || (incident && strlen(incident) >= BL_INCIDENT_MAX))
		return reply_error("%s", "reason or incident too long");
	char err[1024];
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int r = daemon_block(d, &p, ORIGIN_OPERATOR, ttl ? (uint64_t)json_integer_value(ttl) : 0,
			     reason, incident, a, err, sizeof(err));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (r < 0)
		return reply_error("%s", err);
	/* time inside the agent, from request to the kernel's ack (benchmarks) */
	json_int_t us = (t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000;
	return json_pack("{s:b, s:I}", "ok", 1, "elapsed_us", us);
}

static json_t *cmd_unblock(struct daemon *d, json_t *req, const struct actor *a)
{
	struct cvz_prefix p;
	json_t *bad = NULL;
	if (request_prefix(req, &p, &bad) < 0)
		return bad;
	/* the local origins: control and crowdsec entries belong to their
	   sources, which would put them back */
	json_t *o = json_object_get(req, "origin");
	enum bl_origin og = ORIGIN_OPERATOR;
	if (o && !(json_is_string(o) && bl_origin_lookup(json_string_value(o), &og) == 0 &&
		   (og == ORIGIN_OPERATOR || og == ORIGIN_DETECT)))
		return reply_error("unblock: origin must be operator or detect (control and crowdsec entries are their sources')");
	char err[1024];
	int r = daemon_unblock(d, &p, og, a, err, sizeof(err));
	return r < 0 ? reply_error("%s", err) : reply_ok();
}

static json_t *cmd_reload(struct daemon *d, json_t *req, const struct actor *a)
{
	json_t *w = json_object_get(req, "confirm_within");
	if (w && (!json_is_integer(w) || json_integer_value(w) < 1 || json_integer_value(w) > 86400))
		return reply_error("%s", "\"confirm_within\" must be 1-86400 seconds");
	char err[4096];
	int r = daemon_reload(d, w ? (uint64_t)json_integer_value(w) : 0, a, err, sizeof(err));
	return r < 0 ? reply_error("%s", err) : reply_ok();
}

static json_t *cmd_confirm(struct daemon *d, json_t *req, const struct actor *a)
{
	char err[256];
	int r = daemon_confirm(d, a, err, sizeof(err));
	return r < 0 ? reply_error("%s", err) : reply_ok();
}

/* {"cmd": "lockdown", "enabled": true|false}: the local way to switch
 * lockdown, for when the control plane cannot be reached. */
static json_t *cmd_lockdown(struct daemon *d, json_t *req, const struct actor *a)
{
	json_t *on = json_object_get(req, "enabled");
	if (!json_is_boolean(on))
		return reply_error("%s", "\"enabled\" must be true or false");
	bool was = d->sx.lockdown;
	char err[1024];
	int r = daemon_set_lockdown(d, json_is_true(on), a, err, sizeof(err));
	if (r < 0)
		return reply_error("%s", err);
	return json_pack("{s:b, s:b, s:b}", "ok", 1, "lockdown", d->sx.lockdown, "changed",
			 was != d->sx.lockdown);
}

static json_t *dispatch(struct daemon *d, const char *text, size_t len, const struct actor *a)
{
	json_error_t je;
	json_t *req = json_loadb(text, len, 0, &je);
	json_t *reply;
	const char *cmd = json_string_value(json_object_get(req, "cmd"));
	if (!req || !cmd)
		reply = reply_error("%s", "bad request: expected {\"cmd\": ...}");
	else if (strcmp(cmd, "status") == 0)
		reply = cmd_status(d, req);
	else if (strcmp(cmd, "list") == 0)
		reply = cmd_list(d, req);
	else if (strcmp(cmd, "block") == 0)
		reply = cmd_block(d, req, a);
	else if (strcmp(cmd, "unblock") == 0)
		reply = cmd_unblock(d, req, a);
	else if (strcmp(cmd, "reload") == 0)
		reply = cmd_reload(d, req, a);
	else if (strcmp(cmd, "confirm") == 0)
		reply = cmd_confirm(d, req, a);
	else if (strcmp(cmd, "lockdown") == 0)
		reply = cmd_lockdown(d, req, a);
	else
		reply = reply_error("unknown command \"%.*s\"", utf8_prefix(cmd, 32), cmd);
	json_decref(req);
	return reply;
}

/* Said when a reply cannot be built: a client always gets an answer. */
static const char reply_internal[] = "{\"ok\":false,\"error\":\"internal: reply could not be built\"}\n";

/* Takes reply (NULL: it could not be built) and returns it as one line,
 * the fixed internal error when it cannot be printed, NULL only when out
 * of memory. */
static char *reply_line(json_t *reply)
{
	char *s = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
	char *out = NULL;
	json_decref(reply);
	if (!s || asprintf(&out, "%s\n", s) < 0)
		out = strdup(reply_internal);
	free(s);
	return out;
}

char *ctl_request_reply(struct daemon *d, const char *line, size_t len, const struct actor *a)
{
	return reply_line(dispatch(d, line, len, a));
}

/* ---- connection I/O ---------------------------------------------------------- */

/* Takes the reply line (NULL: out of memory). Returns false when the
 * connection was closed instead: EPOLLOUT is never armed with nothing to
 * write (level-triggered, it would spin the loop until the client left). */
static bool set_reply_line(struct ctl_conn *c, char *line)
{
	if (!line) {
		conn_free(c);
		return false;
	}
	c->out = line;
	c->outlen = strlen(line);
	sd_event_source_set_io_events(c->src, EPOLLOUT);
	return true;
}

static void set_reply(struct ctl_conn *c, json_t *reply)
{
	set_reply_line(c, reply_line(reply));
}

static void deny(struct ctl_conn *c)
{
	struct audit_fields f = { .has_actor = c->actor.known,
				  .actor_uid = c->actor.uid,
				  .actor_pid = c->actor.pid };
	audit(AE_CTL_DENIED, &f, "Refused a control connection from uid %u pid %d",
	      c->actor.uid, c->actor.pid);
	char why[160];
	if (socket_gid_set)
		snprintf(why, sizeof(why), "uid %u is neither root nor a member of the socket's group",
			 c->actor.uid);
	else
		snprintf(why, sizeof(why),
			 "uid %u is not root, and without socket_group no group may use the socket",
			 c->actor.uid);
	set_reply(c, reply_error("permission denied: %s", why));
}

static int on_conn_io(sd_event_source *s, int fd, uint32_t revents, void *ud)
{
	struct ctl_conn *c = ud;
	if (c->out) {
		ssize_t w = c->out ? send(fd, c->out + c->outoff, c->outlen - c->outoff,
					  MSG_DONTWAIT | MSG_NOSIGNAL)
				   : -1;
		if (w > 0) {
			c->outoff += (size_t)w;
			c->active_at = now_usec();
		}
		if ((w < 0 && errno != EAGAIN) || c->outoff >= c->outlen)
			conn_free(c);
		return 0;
	}
	ssize_t n = recv(fd, c->in + c->inlen, sizeof(c->in) - 1 - c->inlen, MSG_DONTWAIT);
	if (n < 0 && errno == EAGAIN)
		return 0;
	if (n <= 0) {
		conn_free(c);
		return 0;
	}
	c->inlen += (size_t)n;
	c->in[c->inlen] = '\0';
	/* memchr, not strchr: a NUL byte must not hide the end of the line */
	const char *nl = memchr(c->in, '\n', c->inlen);
	/* the request is read even from a refused peer, so the refusal reaches
	   it instead of a connection reset */
	if (nl && !c->allowed)
		deny(c);
	else if (nl)
		set_reply_line(c, ctl_request_reply(c->d, c->in, (size_t)(nl - c->in), &c->actor));
	else if (c->inlen >= sizeof(c->in) - 1)
		set_reply(c, reply_error("%s", "request too large"));
	if (c->out)
		c->active_at = now_usec(); /* the idle time of the reply starts */
	return 0;
}

/* No complete request in time: the error line, then CONN_IDLE_USEC for the
 * client to take it. A reply the client stopped reading: closed. */
static int on_conn_timer(sd_event_source *s, uint64_t usec, void *ud)
{
	struct ctl_conn *c = ud;
	uint64_t now = now_usec();
	if (!c->out) {
		set_reply(c, reply_error("timed out: no complete request within %llu s",
					 CONN_REQUEST_USEC / 1000000ULL));
		if (!c->out) { /* not even the error line: nothing to wait for */
			conn_free(c);
			return 0;
		}
		c->active_at = now;
	} else if (now - c->active_at >= CONN_IDLE_USEC) {
		conn_free(c);
		return 0;
	}
	sd_event_source_set_time(s, c->active_at + CONN_IDLE_USEC);
	sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
	return 0;
}

/* A connection over the limits: one error line, best effort, and closed. */
static void refuse_now(int fd, const char *why)
{
	char line[256];
	int n = snprintf(line, sizeof(line), "{\"ok\":false,\"error\":\"%s\"}\n", why);
	if (n > 0 && (size_t)n < sizeof(line))
		(void)!send(fd, line, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
	close(fd);
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *ud)
{
	struct daemon *d = ud;
	int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (cfd < 0)
		return 0;
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	char why[128];
	if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0) {
		close(cfd);
		return 0;
	}
	/* root and our own uid (ExecReload=) are trusted, and always find a
	   slot free of other users */
	bool trusted = cred.uid == 0 || cred.uid == geteuid();
	if (n_conns >= MAX_CONNS || (!trusted && n_conns >= MAX_CONNS - CONNS_RESERVED)) {
		snprintf(why, sizeof(why), "too many connections (%d); try again", MAX_CONNS);
		refuse_now(cfd, why);
		return 0;
	}
	if (!trusted && conns_of_uid(cred.uid) >= CONNS_PER_UID) {
		snprintf(why, sizeof(why), "too many connections from uid %u (at most %d at a time)",
			 cred.uid, CONNS_PER_UID);
		refuse_now(cfd, why);
		return 0;
	}
	struct ctl_conn *c = calloc(1, sizeof(*c));
	if (!c) {
		refuse_now(cfd, "out of memory");
		return 0;
	}
	c->d = d;
	c->fd = cfd;
	c->uid = cred.uid;
	if (sd_event_add_io(d->ev, &c->src, cfd, EPOLLIN, on_conn_io, c) < 0 ||
	    sd_event_add_time_relative(d->ev, &c->timer, CLOCK_MONOTONIC, CONN_REQUEST_USEC, 0,
				       on_conn_timer, c) < 0) {
		sd_event_source_disable_unref(c->src);
		sd_event_source_disable_unref(c->timer);
		refuse_now(cfd, "cannot serve the connection");
		free(c);
		return 0;
	}
	for (size_t i = 0; i < MAX_CONNS; i++)
		if (!conns[i]) {
			conns[i] = c;
			break;
		}
	n_conns++;
	c->allowed = authorize(c);
	return 0;
}

/* ---- the listening socket --------------------------------------------------- */

/* own_gid: the group to give the socket without socket_group, or -1 for
 * none (see socket_gid). */
static int make_socket(const char *path, const char *group, gid_t own_gid)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	char dir[sizeof(sa.sun_path)];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		mkdir(dir, 0755); /* RuntimeDirectory= makes it under systemd */
	}
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
		/* left by a previous run, unless an agent still answers on it */
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		bool live = probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0;
		if (probe >= 0)
			close(probe);
		if (live)
			return -EADDRINUSE;
		unlink(path);
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	mode_t old = umask(0117);
	int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
	umask(old);
	if (r == 0 && group) {
		struct group *g = getgrnam(group);
		if (!g)
			r = -ENOENT;
		else if (chown(path, (uid_t)-1, g->gr_gid) < 0)
			r = -errno;
		else
			socket_gid = g->gr_gid;
	} else if (r == 0 && own_gid != (gid_t)-1 && own_gid != getegid() &&
		   chown(path, (uid_t)-1, own_gid) < 0) {
		r = -errno;
	}
	if (r == 0 && chmod(path, 0660) < 0)
		r = -errno;
	if (r == 0 && listen(fd, 16) < 0)
		r = -errno;
	if (r < 0) {
		close(fd);
		return r;
	}
	socket_gid_set = group || own_gid != (gid_t)-1;
	if (!group)
		socket_gid = own_gid;
	return fd;
}

int ctl_server_start(struct daemon *d)
{
	/* the agent's own group: the configured user's, or ours unless root's */
	gid_t own = d->user.set ? d->user.gid : getegid() != 0 ? getegid() : (gid_t)-1;
	int fd = make_socket(d->cfg->socket, d->cfg->socket_group, own);
	if (fd < 0) {
		struct audit_fields f = { .detail = strerror(-fd) };
		fprintf(stderr, "cloudviz-agent: cannot listen on %s: %s\n", d->cfg->socket,
			strerror(-fd));
		audit(AE_POLICY_REJECTED, &f, "Not starting: cannot listen on %s: %s",
		      d->cfg->socket, strerror(-fd));
		return fd;
	}
	d->ctl_fd = fd;
	int r = sd_event_add_io(d->ev, &listen_src, fd, EPOLLIN, on_accept, d);
	if (r < 0) {
		close(fd);
		d->ctl_fd = -1;
	}
	return r;
}

void ctl_server_stop(struct daemon *d)
{
	listen_src = sd_event_source_disable_unref(listen_src);
	if (d->ctl_fd >= 0) {
		close(d->ctl_fd);
		d->ctl_fd = -1;
	}
}
