/* agent.json parsing (see config.h); same error format as policies. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "config.h"
#include "jparse.h"

#define CONFIG_MAX_BYTES (1u << 20)
#define CFG(c) ((struct agent_config *)(c)->owner)

static void set_path(struct jctx *c, const char *path, json_t *v, char **out)
{
	if (!jp_want(c, path, v, JSON_STRING, "an absolute path"))
		return;
	const char *s = json_string_value(v);
	if (s[0] != '/' || strlen(s) > 4000) {
		jp_err(c, path, false, "\"%s\" is not an absolute path", s);
		return;
	}
	char *dup = strdup(s);
	if (!dup) {
		jp_err(c, path, false, "out of memory");
		return;
	}
	free(*out);
	*out = dup;
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
	free(cfg->socket_group);
	cfg->socket_group = strdup(json_string_value(v));
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

static const struct jp_key config_keys[] = {
	{ "node_id", key_node_id },         { "policy", key_policy },
	{ "state_dir", key_state_dir },     { "socket", key_socket },
	{ "socket_group", key_socket_group }, { "table_owner", key_table_owner },
};

static int set_defaults(struct agent_config *cfg)
{
	if (gethostname(cfg->node_id, sizeof(cfg->node_id) - 1) < 0)
		snprintf(cfg->node_id, sizeof(cfg->node_id), "unknown");
	cfg->policy = strdup("/etc/cloudviz-agent/policy.json");
	cfg->state_dir = strdup("/var/lib/cloudviz-agent");
	cfg->socket = strdup("/run/cloudviz-agent/control.sock");
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
	free(c);
}
