/* agent.json: where the agent finds its policy, keeps its state and listens
 * for local commands. Keys are documented in docs/config.md. */
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "detect_track.h"
#include "diag.h"

#define CONFIG_DEFAULT_PATH "/etc/cloudviz-agent/agent.json"

enum table_owner {
	TABLE_OWNER_AUTO, /* owner+persist table flags when the kernel has both */
	TABLE_OWNER_OFF,  /* never; watch for changes and repair instead */
};

/* The control API client (docs/control-api.md). */
struct control_api_config {
	char *url;           /* https://host[:port][/prefix], no trailing slash */
	char *ca_file, *cert_file, *key_file, *token_file;
	char *pinned_pubkey; /* "sha256//BASE64[;sha256//...]" or NULL */
	uint8_t min_prefix_v4, min_prefix_v6;
	uint64_t max_response_bytes;
	uint32_t wait;       /* long-poll seconds */
};

/* Local detection (docs/detect.md): which journal lines count, and when a
 * source address is blocked. */
enum detect_source_id { DETECT_SSHD, DETECT_API, DETECT_SOURCES };
#define DETECT_MATCH_MAX 8 /* values per trusted field */

struct detect_source_config {
	bool enabled;               /* named in "sources" */
	/* trusted fields: _UID must equal uid (when has_uid) and one of
	   _SYSTEMD_UNIT, _EXE, _COMM must be among these */
	char *unit[DETECT_MATCH_MAX], *exe[DETECT_MATCH_MAX], *comm[DETECT_MATCH_MAX];
	size_t n_unit, n_exe, n_comm;
	/* journald's _TRANSPORT must be one of these (none: any). sshd: syslog,
	   where sshd escapes control characters (on stderr, -e, a user name
	   with a newline would write a line of its own) */
	char *transport[DETECT_MATCH_MAX];
	size_t n_transport;
	bool has_uid;
	uint32_t uid;
	struct detect_limits lim;
};

struct detect_config {
	struct detect_source_config src[DETECT_SOURCES];
	uint32_t max_tracked;
};

/* "sshd", "cloudviz-api" */
const char *detect_source_name(enum detect_source_id s);

struct agent_config {
	char *file;
	char node_id[64];
	char *policy;       /* path of the policy file */
	char *state_dir;
	char *socket;       /* control socket path */
	char *socket_group; /* group allowed on the socket; NULL: root only */
	char *user;         /* become this user after start-up; NULL: stay uid 0 */
	enum table_owner table_owner;
	bool has_control; /* a control_api section was given */
	struct control_api_config control;
	bool has_detect;  /* a detect section was given */
	struct detect_config detect;
};

/* Reads and validates a config; errors as FILE:LINE:COL in d. Returns 0 and
 * *out (free with config_free), -EINVAL when invalid, -errno unreadable. */
int config_load(const char *file, struct agent_config **out, struct diags *d);
void config_free(struct agent_config *c);
