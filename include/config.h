/* agent.json: where the agent finds its policy, keeps its state and listens
 * for local commands. Keys are documented in docs/config.md. */
#pragma once
#include <stdbool.h>

#include "diag.h"

#define CONFIG_DEFAULT_PATH "/etc/cloudviz-agent/agent.json"

enum table_owner {
	TABLE_OWNER_AUTO, /* owner+persist table flags when the kernel has both */
	TABLE_OWNER_OFF,  /* never; watch for changes and repair instead */
};

struct agent_config {
	char *file;
	char node_id[64];
	char *policy;       /* path of the policy file */
	char *state_dir;
	char *socket;       /* control socket path */
	char *socket_group; /* group allowed on the socket; NULL: root only */
	enum table_owner table_owner;
};

/* Reads and validates a config; errors as FILE:LINE:COL in d. Returns 0 and
 * *out (free with config_free), -EINVAL when invalid, -errno unreadable. */
int config_load(const char *file, struct agent_config **out, struct diags *d);
void config_free(struct agent_config *c);
