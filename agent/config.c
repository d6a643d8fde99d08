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

static const struct jp_key config_keys[] = {
	{ "node_id", key_node_id },         { "policy", key_policy },
	{ "state_dir", key_state_dir },     { "socket", key_socket },
	{ "socket_group", key_socket_group }, { "table_owner", key_table_owner },
	{ "control_api", key_control_api }, { "user", key_user },
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
	free(c);
}
