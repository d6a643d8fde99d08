/* The control socket: local operators and tools talk to the daemon here.
 * Peers are checked with SO_PEERCRED/SO_PEERGROUPS: root, the agent's own
 * user and members of the socket's group are served, anyone else is refused
 * and journaled. No network listener, ever. */
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

#define MAX_CONNS 64

struct ctl_conn {
	struct daemon *d;
	int fd;
	sd_event_source *src;
	struct actor actor;
	bool allowed;
	char in[CTL_MAX_REQUEST];
	size_t inlen;
	char *out;
	size_t outlen, outoff;
};

static sd_event_source *listen_src;
static gid_t socket_gid;
static unsigned n_conns;

static void conn_free(struct ctl_conn *c)
{
	sd_event_source_disable_unref(c->src);
	close(c->fd);
	free(c->out);
	free(c);
	n_conns--;
}

/* ---- authorization ------------------------------------------------------------ */

static bool in_group(int fd, gid_t primary, gid_t want)
{
	if (primary == want)
		return true;
	gid_t groups[256];
	socklen_t len = sizeof(groups);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
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
	return socket_gid != 0 && in_group(c->fd, cred.gid, socket_gid);
}

/* ---- replies ------------------------------------------------------------------- */

static json_t *__attribute__((format(printf, 1, 2))) reply_error(const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return json_pack("{s:b, s:s}", "ok", 0, "error", msg);
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
	return json_pack("{s:b, s:s, s:s, s:s, s:s, s:o, s:I, s:I, s:I, s:I, s:I, s:b, s:b, s:o, s:s, s:o, s:o}",
			 "ok", 1, "version", CVZ_VERSION, "node_id", d->cfg->node_id, "policy",
			 d->policy->file, "policy_digest", d->digest, "entries_by_origin",
			 daemon_entries_by_origin(d), "kernel_ranges_v4",
			 (json_int_t)(d->view.lists.n4 + d->dynamic.n4), "kernel_ranges_v6",
			 (json_int_t)(d->view.lists.n6 + d->dynamic.n6), "dynamic_ranges_v4",
			 (json_int_t)d->dynamic.n4, "dynamic_ranges_v6", (json_int_t)d->dynamic.n6,
			 "elements_sent",
			 (json_int_t)d->elements_sent, "lockdown", d->sx.lockdown,
			 "table_owned", d->table_flags != 0, "confirm_seconds_left",
			 left >= 0 ? json_integer(left > 0 ? left : 0) : json_null(), "status", line,
			 "control", daemon_control_status(d), "protected", daemon_protect_status(d));
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
		json_object_set_new(o, "source", json_string(source));
	if (!e)
		return o;
	json_object_set_new(o, "created", json_integer(e->created));
	json_object_set_new(o, "expires", e->expires ? json_integer(e->expires) : json_null());
	if (e->reason)
		json_object_set_new(o, "reason", json_string(e->reason));
	if (e->incident)
		json_object_set_new(o, "incident", json_string(e->incident));
	return o;
}

static json_t *cmd_list(struct daemon *d, json_t *req)
{
	const char *want = json_string_value(json_object_get(req, "origin"));
	enum bl_origin og = ORIGIN_COUNT;
	if (want && bl_origin_lookup(want, &og) < 0)
		return reply_error("unknown origin \"%s\" (expected policy, file, operator, control or crowdsec)", want);
	json_t *list = json_array();
	const struct policy *p = d->policy;
	for (size_t i = 0; list && i < p->n_blocked; i++) {
		enum bl_origin o = p->blocked_src[i] ? ORIGIN_FILE : ORIGIN_POLICY;
		if (og == ORIGIN_COUNT || og == o)
			json_array_append_new(list, entry_json(&p->blocked[i], bl_origin_name(o),
							       p->blocked_src[i] ? p->list_files[p->blocked_src[i] - 1] : p->file,
							       NULL));
	}
	for (size_t i = 0; list && i < d->bl.n; i++) {
		const struct bl_entry *e = &d->bl.v[i];
		if (og == ORIGIN_COUNT || og == e->origin)
			json_array_append_new(list, entry_json(&e->prefix,
							       bl_origin_name((enum bl_origin)e->origin),
							       NULL, e));
	}
	return json_pack("{s:b, s:o}", "ok", 1, "entries", list);
}

/* Reads "addr" from the request as a prefix. */
static json_t *request_prefix(json_t *req, struct cvz_prefix *p)
{
	const char *addr = json_string_value(json_object_get(req, "addr"));
	const char *why = NULL;
	char buf[160], msg[256];
	if (!addr)
		return reply_error("%s", "missing \"addr\"");
	if (cvz_prefix_parse(addr, p, &why, buf, sizeof(buf)) < 0) {
		snprintf(msg, sizeof(msg), "bad address \"%.64s\": %s", addr, why);
		return reply_error("%s", msg);
	}
	return NULL;
}

static json_t *cmd_block(struct daemon *d, json_t *req, const struct actor *a)
{
	struct cvz_prefix p;
	json_t *bad = request_prefix(req, &p);
	if (bad)
		return bad;
	json_t *ttl = json_object_get(req, "ttl");
	if (ttl && (!json_is_integer(ttl) || json_integer_value(ttl) < 0))
		return reply_error("%s", "\"ttl\" must be a number of seconds");
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
	json_t *bad = request_prefix(req, &p);
	if (bad)
		return bad;
	char err[1024];
	int r = daemon_unblock(d, &p, ORIGIN_OPERATOR, a, err, sizeof(err));
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

static json_t *dispatch(struct daemon *d, const char *text, const struct actor *a)
{
	json_error_t je;
	json_t *req = json_loads(text, 0, &je);
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
		reply = reply_error("unknown command \"%.32s\"", cmd);
	json_decref(req);
	return reply;
}

/* ---- connection I/O ---------------------------------------------------------- */

static void set_reply(struct ctl_conn *c, json_t *reply)
{
	char *s = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
	json_decref(reply);
	if (!s || asprintf(&c->out, "%s\n", s) < 0)
		c->out = NULL;
	free(s);
	c->outlen = c->out ? strlen(c->out) : 0;
	sd_event_source_set_io_events(c->src, EPOLLOUT);
}

static void deny(struct ctl_conn *c)
{
	struct audit_fields f = { .has_actor = c->actor.known,
				  .actor_uid = c->actor.uid,
				  .actor_pid = c->actor.pid };
	audit(AE_CTL_DENIED, &f, "Refused a control connection from uid %u pid %d",
	      c->actor.uid, c->actor.pid);
	char why[128];
	snprintf(why, sizeof(why), "uid %u is neither root nor a member of the socket's group",
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
		if (w > 0)
			c->outoff += (size_t)w;
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
	/* the request is read even from a refused peer, so the refusal reaches
	   it instead of a connection reset */
	if (strchr(c->in, '\n') && !c->allowed)
		deny(c);
	else if (strchr(c->in, '\n'))
		set_reply(c, dispatch(c->d, c->in, &c->actor));
	else if (c->inlen >= sizeof(c->in) - 1)
		set_reply(c, reply_error("%s", "request too large"));
	return 0;
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *ud)
{
	struct daemon *d = ud;
	int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (cfd < 0)
		return 0;
	struct ctl_conn *c = n_conns < MAX_CONNS ? calloc(1, sizeof(*c)) : NULL;
	if (!c) {
		close(cfd);
		return 0;
	}
	n_conns++;
	c->d = d;
	c->fd = cfd;
	if (sd_event_add_io(d->ev, &c->src, cfd, EPOLLIN, on_conn_io, c) < 0) {
		close(cfd);
		free(c);
		n_conns--;
		return 0;
	}
	c->allowed = authorize(c);
	return 0;
}

/* ---- the listening socket --------------------------------------------------- */

static int make_socket(const char *path, const char *group)
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
	}
	if (r == 0 && chmod(path, 0660) < 0)
		r = -errno;
	if (r == 0 && listen(fd, 16) < 0)
		r = -errno;
	if (r < 0) {
		close(fd);
		return r;
	}
	if (!group)
		socket_gid = getegid();
	return fd;
}

int ctl_server_start(struct daemon *d)
{
	int fd = make_socket(d->cfg->socket, d->cfg->socket_group);
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
