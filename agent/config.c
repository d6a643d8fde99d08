/* agent.json parsing (see config.h); same error format as policies. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "config.h"
#include "jparse.h"
#include "cvz_limits.h"
#include "utf8.h"

#define CONFIG_MAX_BYTES (1u << 20)
#define CFG(c) ((struct agent_config *)(c)->owner)

/* Replaces *out with a copy of n bytes of s. Fails closed: a copy lost to
 * a failed allocation is an error of the file, never a key silently
 * absent (a missing "user" would run as root, a missing pin would trust
 * every certificate the CA signs). */
static void set_copy(struct jctx *c, const char *path, const char *s, size_t n, char **out)
{
	char *dup = strndup(s, n);
	if (!dup) {
		jp_err(c, path, false, "out of memory");
		return;
	}
	free(*out);
	*out = dup;
}

static void set_path(struct jctx *c, const char *path, json_t *v, char **out)
{
	if (!jp_want(c, path, v, JSON_STRING, "an absolute path"))
		return;
	const char *s = json_string_value(v);
	if (s[0] != '/' || strlen(s) > 4000) {
		jp_err(c, path, false, "\"%s\" is not an absolute path", s);
		return;
	}
	set_copy(c, path, s, strlen(s), out);
}

static void key_node_id(struct jctx *c, const char *path, json_t *v, void *t)
{
	struct agent_config *cfg = t;
	if (!jp_want(c, path, v, JSON_STRING, "a string"))
		return;
	const char *s = json_string_value(v);
	size_t n = strlen(s);
	bool ok = n > 0 && n < sizeof(cfg->node_id);
	for (size_t i = 0; ok && i < n; i++)
		ok = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		     (s[i] >= '0' && s[i] <= '9') || strchr("._-", s[i]);
	if (!ok)
		jp_err(c, path, false, "bad node id \"%s\": 1-63 of A-Z a-z 0-9 . _ -", s);
	else
		memcpy(cfg->node_id, s, n + 1);
}

static void key_policy(struct jctx *c, const char *path, json_t *v, void *t)
{
	set_path(c, path, v, &((struct agent_config *)t)->policy);
}

static void key_state_dir(struct jctx *c, const char *path, json_t *v, void *t)
{
	set_path(c, path, v, &((struct agent_config *)t)->state_dir);
}

static void key_socket(struct jctx *c, const char *path, json_t *v, void *t)
{
	struct agent_config *cfg = t;
	set_path(c, path, v, &cfg->socket);
	if (cfg->socket && strlen(cfg->socket) >= 108) /* sun_path */
		jp_err(c, path, false, "socket path is longer than 107 characters");
}

static void key_socket_group(struct jctx *c, const char *path, json_t *v, void *t)
{
	struct agent_config *cfg = t;
	if (!jp_want(c, path, v, JSON_STRING, "a group name"))
		return;
	const char *s = json_string_value(v);
	set_copy(c, path, s, strlen(s), &cfg->socket_group);
}

static void key_user(struct jctx *c, const char *path, json_t *v, void *t)
{
	struct agent_config *cfg = t;
	if (!jp_want(c, path, v, JSON_STRING, "a user name"))
		return;
	const char *s = json_string_value(v);
	if (!s[0] || strlen(s) > 31 || strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != strlen(s)) {
		jp_err(c, path, false, "\"%.*s\" is not a user name", utf8_prefix(s, 40), s);
		return;
	}
	set_copy(c, path, s, strlen(s), &cfg->user);
}

static void key_table_owner(struct jctx *c, const char *path, json_t *v, void *t)
{
	struct agent_config *cfg = t;
	if (!jp_want(c, path, v, JSON_STRING, "\"auto\" or \"off\""))
		return;
	if (strcmp(json_string_value(v), "auto") == 0)
		cfg->table_owner = TABLE_OWNER_AUTO;
	else if (strcmp(json_string_value(v), "off") == 0)
		cfg->table_owner = TABLE_OWNER_OFF;
	else
		jp_err(c, path, false, "unknown value \"%s\" (expected auto or off)",
		       json_string_value(v));
}

/* ---- control_api ------------------------------------------------------ */

static void key_url(struct jctx *c, const char *path, json_t *v, void *t)
{
	struct control_api_config *cc = t;
	if (!jp_want(c, path, v, JSON_STRING, "an https:// URL"))
		return;
	const char *s = json_string_value(v);
	size_t n = strlen(s);
	if (strncmp(s, "https://", 8) != 0) {
		jp_err(c, path, false, "\"%.*s\" is not an https:// URL (the control API is reached over TLS only)", utf8_prefix(s, 80), s);
		return;
	}
	bool ok = n > 8 && n < 1024 && s[8] != '/';
	for (size_t i = 0; ok && i < n; i++)
		ok = s[i] > 0x20 && s[i] < 0x7f && !strchr("?#\"\\", s[i]);
	if (!ok) {
		jp_err(c, path, false, "\"%.*s\" is not a usable URL (a host is needed; no spaces, query or fragment)", utf8_prefix(s, 80), s);
		return;
	}
	while (n > 9 && s[n - 1] == '/')
		n--;
	set_copy(c, path, s, n, &cc->url);
}

#define CC_PATH(name, field)                                                   \
	static void key_##name(struct jctx *c, const char *path, json_t *v, void *t) \
	{                                                                      \
		set_path(c, path, v, &((struct control_api_config *)t)->field); \
	}
CC_PATH(ca_file, ca_file)
CC_PATH(cert_file, cert_file)
CC_PATH(key_file, key_file)
CC_PATH(token_file, token_file)

static void key_pinned_pubkey(struct jctx *c, const char *path, json_t *v, void *t)
{
	struct control_api_config *cc = t;
	if (!jp_want(c, path, v, JSON_STRING, "\"sha256//BASE64\""))
		return;
	const char *s = json_string_value(v);
	/* each ';'-separated pin: sha256// then 44 base64 characters */
	bool ok = *s != '\0';
	for (const char *p = s; ok && *p;) {
		size_t len = strcspn(p, ";");
		ok = len == 8 + 44 && strncmp(p, "sha256//", 8) == 0 &&
		     strspn(p + 8, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") == 44;
		p += len + (p[len] == ';');
	}
	if (!ok) {
		jp_err(c, path, false, "\"%.*s\" is not a public key pin: expected sha256// and 44 base64 characters, several joined with ';'", utf8_prefix(s, 120), s);
		return;
	}
	set_copy(c, path, s, strlen(s), &cc->pinned_pubkey);
}

static bool int_in(struct jctx *c, const char *path, json_t *v, json_int_t lo, json_int_t hi,
		   json_int_t *out)
{
	if (!jp_want(c, path, v, JSON_INTEGER, "an integer"))
		return false;
	json_int_t n = json_integer_value(v);
	if (n < lo || n > hi) {
		jp_err(c, path, false, "%lld is out of range %lld-%lld", (long long)n, (long long)lo,
		       (long long)hi);
		return false;
	}
	*out = n;
	return true;
}

static void key_min_prefix_v4(struct jctx *c, const char *path, json_t *v, void *t)
{
	json_int_t n;
	if (int_in(c, path, v, 1, 32, &n))
		((struct control_api_config *)t)->min_prefix_v4 = (uint8_t)n;
}

static void key_min_prefix_v6(struct jctx *c, const char *path, json_t *v, void *t)
{
	json_int_t n;
	if (int_in(c, path, v, 1, 128, &n))
		((struct control_api_config *)t)->min_prefix_v6 = (uint8_t)n;
}

static void key_max_response_bytes(struct jctx *c, const char *path, json_t *v, void *t)
{
	json_int_t n;
	if (int_in(c, path, v, 4096, CVZ_MAX_RESPONSE_BYTES_MAX, &n))
		((struct control_api_config *)t)->max_response_bytes = (uint64_t)n;
}

static void key_wait(struct jctx *c, const char *path, json_t *v, void *t)
{
	json_int_t n;
	if (int_in(c, path, v, 1, 600, &n))
		((struct control_api_config *)t)->wait = (uint32_t)n;
}

static const struct jp_key control_keys[] = {
	{ "url", key_url },
	{ "ca_file", key_ca_file },
	{ "cert_file", key_cert_file },
	{ "key_file", key_key_file },
	{ "token_file", key_token_file },
	{ "pinned_pubkey", key_pinned_pubkey },
	{ "min_prefix_v4", key_min_prefix_v4 },
	{ "min_prefix_v6", key_min_prefix_v6 },
	{ "max_response_bytes", key_max_response_bytes },
	{ "wait", key_wait },
};

static void key_control_api(struct jctx *c, const char *path, json_t *v, void *t)
{
	struct agent_config *cfg = t;
	struct control_api_config *cc = &cfg->control;
	if (!jp_want(c, path, v, JSON_OBJECT, "an object"))
		return;
	cfg->has_control = true;
	jp_object(c, path, v, control_keys, ELEMENTSOF(control_keys), cc);
	static const struct {
		const char *key;
		size_t off;
	} required[] = {
		{ "url", offsetof(struct control_api_config, url) },
		{ "ca_file", offsetof(struct control_api_config, ca_file) },
		{ "cert_file", offsetof(struct control_api_config, cert_file) },
		{ "key_file", offsetof(struct control_api_config, key_file) },
		{ "token_file", offsetof(struct control_api_config, token_file) },
	};
	for (size_t i = 0; i < ELEMENTSOF(required); i++)
		if (!json_object_get(v, required[i].key))
			jp_err(c, path, false, "missing \"%s\" (control_api needs url, ca_file, cert_file, key_file and token_file)",
			       required[i].key);
}


/* ---- detect --------------------------------------------------------------- */

/* Thresholds given in the section (base) and per source (over); composed
 * after the whole section was read, so key order does not matter. */
enum { L_MAX_FAILURES = 1, L_WINDOW = 2, L_TTL = 4, L_ESCALATE = 8, L_MAX_TTL = 16 };

struct detect_limits_set {
	struct detect_limits lim;
	unsigned set;
};

struct detect_parse {
	struct detect_config *dc;
	struct detect_limits_set base, over[DETECT_SOURCES];
	bool matched[DETECT_SOURCES]; /* unit/exe/comm given: replaces the defaults */
	enum detect_source_id cur;    /* the per-source section being read */
};

static const char *const detect_source_names[DETECT_SOURCES] = {
	[DETECT_SSHD] = "sshd",
	[DETECT_API] = "cloudviz-api",
};

const char *detect_source_name(enum detect_source_id s)
{
	return (unsigned)s < DETECT_SOURCES ? detect_source_names[s] : "unknown";
}

static void detect_source_item(struct jctx *c, const char *path, json_t *v, void *t)
{
	struct detect_parse *dp = t;
	if (!jp_want(c, path, v, JSON_STRING, "a source name"))
		return;
	for (int i = 0; i < DETECT_SOURCES; i++)
		if (strcmp(json_string_value(v), detect_source_names[i]) == 0) {
			if (dp->dc->src[i].enabled)
				jp_err(c, path, false, "\"%s\" is listed twice", detect_source_names[i]);
			dp->dc->src[i].enabled = true;
			return;
		}
	jp_err(c, path, false, "unknown source \"%.*s\" (expected sshd or cloudviz-api)",
	       utf8_prefix(json_string_value(v), 40), json_string_value(v));
}

static void key_sources(struct jctx *c, const char *path, json_t *v, void *t)
{
	struct detect_parse *dp = t;
	for (int i = 0; i < DETECT_SOURCES; i++)
		dp->dc->src[i].enabled = false;
	jp_array(c, path, v, "a list of source names", detect_source_item, dp);
}

/* The thresholds' ranges: written once, used by the section and by each
 * source (docs/config.md). */
#define DETECT_WINDOW_MAX 86400

static void limit_key(struct jctx *c, const char *path, json_t *v, struct detect_limits_set *l,
		      unsigned which)
{
	json_int_t n;
	switch (which) {
	case L_MAX_FAILURES:
		if (int_in(c, path, v, 1, DETECT_MAX_FAILURES_MAX, &n))
			l->lim.max_failures = (uint32_t)n;
		break;
	case L_WINDOW:
		if (int_in(c, path, v, 1, DETECT_WINDOW_MAX, &n))
			l->lim.window = (uint32_t)n;
		break;
	case L_TTL:
		if (int_in(c, path, v, 1, CVZ_TTL_MAX, &n))
			l->lim.ttl = (uint64_t)n;
		break;
	case L_ESCALATE:
		if (int_in(c, path, v, 1, 100, &n))
			l->lim.escalate = (uint32_t)n;
		break;
	case L_MAX_TTL:
		if (int_in(c, path, v, 1, CVZ_TTL_MAX, &n))
			l->lim.max_ttl = (uint64_t)n;
		break;
	default:
		return;
	}
	l->set |= which;
}

#define DETECT_LIMIT_KEYS(name, bit)                                                  \
	static void key_d_##name(struct jctx *c, const char *path, json_t *v, void *t)    \
	{                                                                             \
		limit_key(c, path, v, &((struct detect_parse *)t)->base, bit);        \
	}                                                                             \
	static void key_s_##name(struct jctx *c, const char *path, json_t *v, void *t)    \
	{                                                                             \
		struct detect_parse *dp = t;                                          \
		limit_key(c, path, v, &dp->over[dp->cur], bit);                       \
	}
DETECT_LIMIT_KEYS(max_failures, L_MAX_FAILURES)
DETECT_LIMIT_KEYS(window, L_WINDOW)
DETECT_LIMIT_KEYS(ttl, L_TTL)
DETECT_LIMIT_KEYS(escalate, L_ESCALATE)
DETECT_LIMIT_KEYS(max_ttl, L_MAX_TTL)

static void key_max_tracked(struct jctx *c, const char *path, json_t *v, void *t)
{
	json_int_t n;
	if (int_in(c, path, v, 1, DETECT_TRACKED_MAX, &n))
		((struct detect_parse *)t)->dc->max_tracked = (uint32_t)n;
}

/* One value of unit, exe or comm: what journald would store in the
 * trusted field, so it can match at all. */
struct match_list {
	struct detect_parse *dp;
	char **v;
	size_t *n;
	const char *field; /* "unit", "exe", "comm" */
};

static void match_item(struct jctx *c, const char *path, json_t *v, void *t)
{
	struct match_list *m = t;
	if (!jp_want(c, path, v, JSON_STRING, "a string"))
		return;
	const char *s = json_string_value(v);
	size_t n = strlen(s);
	bool ok = n > 0 && n < 256;
	for (size_t i = 0; ok && i < n; i++)
		ok = (unsigned char)s[i] > 0x20 && s[i] != 0x7f;
	if (!ok) {
		jp_err(c, path, false, "\"%.*s\" is not a %s: 1-255 printable characters, no spaces",
		       utf8_prefix(s, 60), s, m->field);
		return;
	}
	char bar[260];
	snprintf(bar, sizeof(bar), "|%s|", s);
	if (strcmp(m->field, "transport") == 0 &&
	    !strstr("|syslog|journal|stdout|kernel|audit|driver|", bar)) {
		jp_err(c, path, false, "unknown transport \"%.*s\" (expected syslog, journal, stdout, kernel, audit or driver)",
		       utf8_prefix(s, 60), s);
		return;
	}
	if (strcmp(m->field, "exe") == 0 && s[0] != '/') {
		jp_err(c, path, false, "\"%.*s\" is not an absolute path (journald's _EXE is one)",
		       utf8_prefix(s, 60), s);
		return;
	}
	if (strcmp(m->field, "comm") == 0 && n > 15) {
		jp_err(c, path, false, "\"%.*s\" is longer than 15 characters: the kernel keeps 15 of a process name, so _COMM never equals it",
		       utf8_prefix(s, 60), s);
		return;
	}
	if (*m->n >= DETECT_MATCH_MAX) {
		jp_err(c, path, false, "more than %d values", DETECT_MATCH_MAX);
		return;
	}
	char *dup = strdup(s);
	if (!dup) {
		jp_err(c, path, false, "out of memory");
		return;
	}
	m->v[(*m->n)++] = dup;
}

static void free_matches(struct detect_source_config *s)
{
	for (size_t i = 0; i < s->n_unit; i++)
		free(s->unit[i]);
	for (size_t i = 0; i < s->n_exe; i++)
		free(s->exe[i]);
	for (size_t i = 0; i < s->n_comm; i++)
		free(s->comm[i]);
	s->n_unit = s->n_exe = s->n_comm = 0;
}

static void free_transports(struct detect_source_config *s)
{
	for (size_t i = 0; i < s->n_transport; i++)
		free(s->transport[i]);
	s->n_transport = 0;
}

static void match_key(struct jctx *c, const char *path, json_t *v, struct detect_parse *dp,
		      const char *field)
{
	struct detect_source_config *s = &dp->dc->src[dp->cur];
	if (!dp->matched[dp->cur]) { /* the first match key replaces the defaults */
		free_matches(s);
		dp->matched[dp->cur] = true;
	}
	struct match_list m = { dp, NULL, NULL, field };
	if (strcmp(field, "unit") == 0)
		m.v = s->unit, m.n = &s->n_unit;
	else if (strcmp(field, "exe") == 0)
		m.v = s->exe, m.n = &s->n_exe;
	else
		m.v = s->comm, m.n = &s->n_comm;
	jp_each(c, path, v, field, match_item, &m);
}

static void key_unit(struct jctx *c, const char *path, json_t *v, void *t)
{
	match_key(c, path, v, t, "unit");
}

static void key_exe(struct jctx *c, const char *path, json_t *v, void *t)
{
	match_key(c, path, v, t, "exe");
}

static void key_comm(struct jctx *c, const char *path, json_t *v, void *t)
{
	match_key(c, path, v, t, "comm");
}

/* Replaces the source's transports (not part of the unit/exe/comm set). */
static void key_transport(struct jctx *c, const char *path, json_t *v, void *t)
{
	struct detect_parse *dp = t;
	struct detect_source_config *s = &dp->dc->src[dp->cur];
	free_transports(s);
	struct match_list m = { dp, s->transport, &s->n_transport, "transport" };
	jp_each(c, path, v, "transport", match_item, &m);
}

static void key_uid(struct jctx *c, const char *path, json_t *v, void *t)
{
	struct detect_parse *dp = t;
	struct detect_source_config *s = &dp->dc->src[dp->cur];
	json_int_t n;
	if (json_is_null(v)) {
		s->has_uid = false;
		return;
	}
	if (int_in(c, path, v, 0, 4294967294LL, &n)) {
		s->has_uid = true;
		s->uid = (uint32_t)n;
	}
}

static const struct jp_key detect_source_keys[] = {
	{ "unit", key_unit },
	{ "exe", key_exe },
	{ "comm", key_comm },
	{ "uid", key_uid },
	{ "transport", key_transport },
	{ "max_failures", key_s_max_failures },
	{ "window", key_s_window },
	{ "ttl", key_s_ttl },
	{ "escalate", key_s_escalate },
	{ "max_ttl", key_s_max_ttl },
};

static void key_source_section(struct jctx *c, const char *path, json_t *v, void *t,
			       enum detect_source_id id)
{
	struct detect_parse *dp = t;
	dp->cur = id;
	jp_object(c, path, v, detect_source_keys, ELEMENTSOF(detect_source_keys), dp);
	struct detect_source_config *s = &dp->dc->src[id];
	if (!c->errors && s->n_unit + s->n_exe + s->n_comm == 0)
		jp_err(c, path, false, "no unit, exe or comm: nothing would ever match");
}

static void key_sshd(struct jctx *c, const char *path, json_t *v, void *t)
{
	key_source_section(c, path, v, t, DETECT_SSHD);
}

static void key_api(struct jctx *c, const char *path, json_t *v, void *t)
{
	key_source_section(c, path, v, t, DETECT_API);
}

static const struct jp_key detect_keys[] = {
	{ "sources", key_sources },
	{ "max_failures", key_d_max_failures },
	{ "window", key_d_window },
	{ "ttl", key_d_ttl },
	{ "escalate", key_d_escalate },
	{ "max_ttl", key_d_max_ttl },
	{ "max_tracked", key_max_tracked },
	{ "sshd", key_sshd },
	{ "cloudviz-api", key_api },
};

/* Built-in recognition (docs/detect.md): sshd by its process (OpenSSH 9.8
 * and later log from sshd-session and sshd-auth) as root, or by Debian's
 * and Fedora's unit names; the API by its unit. */
static int detect_defaults(struct detect_config *dc)
{
	static const char *const sshd_comm[] = { "sshd", "sshd-session", "sshd-auth" };
	static const char *const sshd_exe[] = { "/usr/sbin/sshd", "/usr/lib/openssh/sshd-session",
						"/usr/lib/openssh/sshd-auth" };
	static const char *const sshd_unit[] = { "ssh.service", "sshd.service" };
	struct detect_source_config *s = &dc->src[DETECT_SSHD];
	s->enabled = true;
	s->has_uid = true;
	s->uid = 0;
	for (size_t i = 0; i < ELEMENTSOF(sshd_comm); i++)
		if (!(s->comm[s->n_comm++] = strdup(sshd_comm[i])))
			return -ENOMEM;
	for (size_t i = 0; i < ELEMENTSOF(sshd_exe); i++)
		if (!(s->exe[s->n_exe++] = strdup(sshd_exe[i])))
			return -ENOMEM;
	for (size_t i = 0; i < ELEMENTSOF(sshd_unit); i++)
		if (!(s->unit[s->n_unit++] = strdup(sshd_unit[i])))
			return -ENOMEM;
	if (!(s->transport[s->n_transport++] = strdup("syslog")))
		return -ENOMEM;
	struct detect_source_config *a = &dc->src[DETECT_API];
	if (!(a->unit[a->n_unit++] = strdup("cloudviz-api.service")))
		return -ENOMEM;
	dc->max_tracked = 65536;
	return 0;
}

static void key_detect(struct jctx *c, const char *path, json_t *v, void *t)
{
	struct agent_config *cfg = t;
	if (!jp_want(c, path, v, JSON_OBJECT, "an object"))
		return;
	cfg->has_detect = true;
	struct detect_parse dp = {
		.dc = &cfg->detect,
		.base.lim = { .max_failures = 5, .window = 60, .ttl = 3600, .escalate = 2,
			      .max_ttl = 86400 },
	};
	jp_object(c, path, v, detect_keys, ELEMENTSOF(detect_keys), &dp);
	for (int i = 0; i < DETECT_SOURCES; i++) {
		struct detect_limits l = dp.base.lim;
		const struct detect_limits_set *o = &dp.over[i];
		if (o->set & L_MAX_FAILURES)
			l.max_failures = o->lim.max_failures;
		if (o->set & L_WINDOW)
			l.window = o->lim.window;
		if (o->set & L_TTL)
			l.ttl = o->lim.ttl;
		if (o->set & L_ESCALATE)
			l.escalate = o->lim.escalate;
		if (o->set & L_MAX_TTL)
			l.max_ttl = o->lim.max_ttl;
		cfg->detect.src[i].lim = l;
		if (cfg->detect.src[i].enabled && l.max_ttl < l.ttl) {
			char p[JP_PATHLEN];
			bool own = (o->set & (L_TTL | L_MAX_TTL)) != 0;
			snprintf(p, sizeof(p), "%s%s%s", path, own ? "." : "",
				 own ? detect_source_names[i] : "");
			jp_err(c, p, false, "max_ttl %llu is below ttl %llu for %s",
			       (unsigned long long)l.max_ttl, (unsigned long long)l.ttl,
			       detect_source_names[i]);
		}
	}
}

static const struct jp_key config_keys[] = {
	{ "node_id", key_node_id },         { "policy", key_policy },
	{ "state_dir", key_state_dir },     { "socket", key_socket },
	{ "socket_group", key_socket_group }, { "table_owner", key_table_owner },
	{ "control_api", key_control_api }, { "user", key_user },
	{ "detect", key_detect },
};

static int set_defaults(struct agent_config *cfg)
{
	if (gethostname(cfg->node_id, sizeof(cfg->node_id) - 1) < 0)
		snprintf(cfg->node_id, sizeof(cfg->node_id), "unknown");
	cfg->policy = strdup("/etc/cloudviz-agent/policy.json");
	cfg->state_dir = strdup("/var/lib/cloudviz-agent");
	cfg->socket = strdup("/run/cloudviz-agent/control.sock");
	cfg->control.min_prefix_v4 = 8;
	cfg->control.min_prefix_v6 = 32;
	cfg->control.max_response_bytes = 16u << 20;
	cfg->control.wait = 60;
	if (detect_defaults(&cfg->detect) < 0)
		return -ENOMEM;
	return cfg->policy && cfg->state_dir && cfg->socket ? 0 : -ENOMEM;
}

static int config_parse(const char *file, const char *text, size_t len, struct agent_config **out,
		 struct diags *d)
{
	json_t *root = jp_loadb(file, text, len, d);
	if (!root)
		return -EINVAL;
	struct agent_config *cfg = calloc(1, sizeof(*cfg));
	if (!cfg || set_defaults(cfg) < 0 || !(cfg->file = strdup(file))) {
		config_free(cfg);
		json_decref(root);
		return -ENOMEM;
	}
	struct jctx c = { .file = file, .text = text, .len = len, .d = d, .owner = cfg };
	jp_object(&c, "", root, config_keys, ELEMENTSOF(config_keys), cfg);
	json_decref(root);
	jp_done(&c);
	if (c.errors) {
		config_free(cfg);
		return -EINVAL;
	}
	*out = cfg;
	return 0;
}

int config_load(const char *file, struct agent_config **out, struct diags *d)
{
	char *buf;
	size_t len;
	int r = jp_read_file(file, "config", CONFIG_MAX_BYTES, &buf, &len, d);
	if (r < 0)
		return r;
	r = config_parse(file, buf, len, out, d);
	free(buf);
	return r;
}

void config_free(struct agent_config *c)
{
	if (!c)
		return;
	free(c->file);
	free(c->policy);
	free(c->state_dir);
	free(c->socket);
	free(c->socket_group);
	free(c->user);
	free(c->control.url);
	free(c->control.ca_file);
	free(c->control.cert_file);
	free(c->control.key_file);
	free(c->control.token_file);
	free(c->control.pinned_pubkey);
	for (int i = 0; i < DETECT_SOURCES; i++) {
		free_matches(&c->detect.src[i]);
		free_transports(&c->detect.src[i]);
	}
	free(c);
}
