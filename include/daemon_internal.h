/* State shared by daemon.c (loop, reconcile, timers) and ctlserver.c (the
 * control socket). Not a public interface. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "audit.h"
#include "blocklist.h"
#include "config.h"
#include "nft.h"
#include "policy.h"
#include "state.h"

struct daemon {
	sd_event *ev;
	const char *config_path;
	struct agent_config *cfg;
	struct policy *policy;
	char *policy_text;        /* its bytes, to put it back after a reload */
	size_t policy_len;
	char digest[65];          /* sha256 of the policy file, hex */
	struct blocklist bl;      /* runtime entries */
	struct state_extra sx;
	/* the policy in force, normalised: its lists are what blocklist_v4/_v6
	   hold (our copy of the kernel's), safe what no set may hold */
	struct bl_view view;
	struct cvz_rangeset dynamic; /* what dynamic_v4/_v6 hold: the runtime entries */
	struct nft_conn *nft;
	bool kernel_applied;      /* the table has been applied at least once */
	char *skeleton;           /* the applied table without blocklist elements */
	uint64_t elements_sent;   /* blocklist ranges sent to the kernel, ever */
	uint32_t table_flags;     /* owner|persist, or 0 */
	int monitor_fd;
	/* commit-confirmed reload */
	struct policy *previous;
	char *previous_text;
	size_t previous_len;
	char previous_digest[65];
	sd_event_source *expiry_timer, *save_timer, *confirm_timer, *verify_timer,
		*repair_timer;
	bool state_dirty;
	int ctl_fd;
};

/* Who asked, for audit fields. */
struct actor {
	bool known;
	uint32_t uid;
	int32_t pid;
};

/* Operations the control socket calls; each journals its outcome and
 * returns 0 or a negative errno with a reason in err. */
int daemon_block(struct daemon *d, const struct cvz_prefix *p, enum bl_origin origin,
		 uint64_t ttl, const char *reason, const char *incident, const struct actor *a,
		 char *err, size_t errlen);
int daemon_unblock(struct daemon *d, const struct cvz_prefix *p, enum bl_origin origin,
		   const struct actor *a, char *err, size_t errlen);
int daemon_reload(struct daemon *d, uint64_t confirm_within, const struct actor *a, char *err,
		  size_t errlen);
int daemon_confirm(struct daemon *d, const struct actor *a, char *err, size_t errlen);
/* The one-line STATUS= text, e.g. "policy 3f2a9c1e, 1204 blocked, lockdown off". */
void daemon_status_line(const struct daemon *d, char *buf, size_t len);

/* ctlserver.c */
int ctl_server_start(struct daemon *d);
void ctl_server_stop(struct daemon *d);
