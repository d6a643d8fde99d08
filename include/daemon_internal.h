/* State shared by daemon.c (loop, reconcile, timers) and ctlserver.c (the
 * control socket). Not a public interface. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include <systemd/sd-event.h>

#include "audit.h"
#include "blocklist.h"
#include "config.h"
#include "control.h"
#include "instr.h"
#include "nft.h"
#include "policy.h"
#include "protect.h"
#include "sandbox.h"
#include "state.h"
#include "statedir.h"

/* One source's protected addresses (protect.h). */
struct protected_set {
	struct cvz_prefix v[PROTECT_MAX];
	size_t n;
};

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
	/* control API (daemon_control.c); NULL without a control_api section */
	struct control *control;
	struct instr_seen *seen;  /* instruction ids carried out, persisted */
	int64_t cert_not_after;   /* client certificate, for cert_expiring */
	struct sandbox_user user; /* config "user": who we become after start-up */
	struct statedir sd;       /* state_dir, checked once at start-up */
	sd_event_source *cert_timer;
	/* addresses no block may cover: resolvers, the control API's host
	   (daemon_protect.c) */
	struct protected_set protect[PROTECT_SOURCES];
	/* local detection (daemon_detect.c); NULL without a detect section */
	struct detect *detect;
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
/* Switches lockdown on or off from the control socket (refused when on
 * would admit nobody); journaled lockdown_changed. 0 also when it already
 * was so. */
int daemon_set_lockdown(struct daemon *d, bool on, const struct actor *a, char *err,
			size_t errlen);
/* The lockdown invariant (docs/policy.md#lockdown): with lockdown on, policy
 * p must admit someone besides loopback. False (why in why, may be NULL)
 * when lockdown is on and p's lockdown would admit nobody. Checked on every
 * transition: a control API or local switch and a reload are refused, a
 * start or a revert switches lockdown off (journaled), and the apply
 * itself refuses as the last line. */
bool daemon_lockdown_admits(const struct policy *p, bool lockdown, char *why, size_t len);
/* The one-line STATUS= text, e.g. "policy 3f2a9c1e, 1204 blocked, lockdown off". */
void daemon_status_line(const struct daemon *d, char *buf, size_t len);

/* The next state of what a runtime change touches, computed beside the
 * live one (STYLE.md rule 16): the staged blocklist change, and the state's
 * lockdown and cursor as they will be. */
struct daemon_next {
	struct bl_change bl;
	struct state_extra sx;  /* a copy of d->sx to change; sx.seen is d's */
	const char *const *ids; /* instruction ids the change carries out */
	size_t n_ids;
	bool save_first;        /* refuse the change unless its state was saved */
	/* called, when set, for each removed entry once the kernel took the
	   change and before it is made current (the entry is still whole) */
	void (*on_gone)(const struct bl_entry *e, void *arg);
	void *on_gone_arg;
	bool kernel_refused;    /* out: daemon_commit failed at the kernel */
};

/* An empty change on d's live state, with save_first. Allocates nothing. */
void daemon_next_init(struct daemon_next *n, const struct daemon *d);
void daemon_next_free(struct daemon_next *n);
/* Saves (save_first) the state as n will make it, sends the kernel the
 * difference in one transaction (the whole table when lockdown flips), and
 * only then makes n current: blocklist, lockdown, cursor, ids. On any error
 * the live state and the kernel are as they were (the file too, unless
 * writing it back failed, which is journaled), with a reason in err.
 * Returns 0 or a negative errno. n stays the caller's to free. */
int daemon_commit(struct daemon *d, struct daemon_next *n, char *err, size_t len);

/* Shared by daemon.c and daemon_control.c. */
void daemon_state_changed_now(struct daemon *d);
void daemon_arm_expiry(struct daemon *d);
void daemon_notify_status(const struct daemon *d);
/* Makes the kernel hold policy p (with lockdown as d->sx.lockdown) plus every
 * live entry: the whole table when the rules differ or force, else a set
 * delta. On success p's view becomes d->view. */
int daemon_apply_policy(struct daemon *d, const struct policy *p, bool force, char *err,
			size_t len);
/* The same for d's runtime entries as changed by c, with lockdown as
 * given; d's blocklist and lockdown stay as they are (the caller commits). */
int daemon_apply_policy_next(struct daemon *d, const struct policy *p, const struct bl_change *c,
			     bool lockdown, bool force, char *err, size_t len);

/* daemon_control.c: the control API client's side in the daemon. */
/* At start: loads and checks the credentials (refusing to start with a
 * reason in err when they are bad) and starts polling. A config without
 * control_api is fine (returns 0, no client). */
int daemon_control_start(struct daemon *d, char *err, size_t errlen);
/* On reload, with the new config (not yet d->cfg): re-reads the credentials;
 * a broken set keeps the old one (journaled credentials_rejected). Also
 * starts or stops the client when the section was added or removed. */
void daemon_control_reload(struct daemon *d, struct agent_config *newcfg);
void daemon_control_stop(struct daemon *d);
/* Queues a report of the cursor in force with nothing applied, carrying
 * detection's waiting alerts (daemon_detect_take_alerts): sent right after
 * alerts are raised rather than with the next reply. Nothing without a
 * client, or before the first reply was applied (no cursor to name). */
void daemon_control_report_alerts(struct daemon *d);
/* status: the client's counters, or JSON null without a client. */
json_t *daemon_control_status(const struct daemon *d);

/* daemon_detect.c: local detection (docs/detect.md). */
/* At start, after the state was restored and before privileges are
 * dropped: opens the journal and starts reading (from the window before the
 * saved cursor). Without a detect section: nothing, and the restored
 * offenders are dropped. Returns 0, or a negative errno with err. */
int daemon_detect_start(struct daemon *d, char *err, size_t errlen);
/* On reload, before newcfg becomes d->cfg: restarts detection when its
 * section changed (the window is replayed, so counts carry over). */
void daemon_detect_reload(struct daemon *d, struct agent_config *newcfg);
void daemon_detect_stop(struct daemon *d);
/* status: detection's counters, or JSON null without detection. */
json_t *daemon_detect_status(const struct daemon *d);
/* The alerts since the last call, for a control API report (a new
 * reference, an empty array when none); *dropped: alerts dropped because
 * too many waited. */
json_t *daemon_detect_take_alerts(struct daemon *d, uint64_t *dropped);
/* Marks the state changed; written once a burst of changes ends. */
void daemon_state_dirty(struct daemon *d);

/* daemon_protect.c: what no block may cover (docs/control-api.md). */
/* Every guard for policy p: its safelist, its lockdown.allow_from, and d's
 * protected addresses. Returns 0 and a new array (free()), or -ENOMEM. */
int daemon_guards(const struct daemon *d, const struct policy *p, struct bl_guard **out,
		  size_t *n);
/* The same as bare prefixes, for carving the kernel's sets. */
int daemon_never_blocked(const struct daemon *d, const struct policy *p, struct cvz_prefix **out,
			 size_t *n);
/* Why p may not be blocked because of a guard of the policy in force, in
 * buf, or NULL. (bl_refusal() covers the never-blockable ranges.) */
const char *daemon_guard_refusal(const struct daemon *d, const struct cvz_prefix *p, char *buf,
				 size_t len);
/* Re-reads the resolvers and resolves the control API's host of cfg
 * (blocking; start and reload). What cannot be read or resolved keeps the
 * old addresses. Returns true when the addresses changed. */
bool daemon_protect_refresh(struct daemon *d, const struct agent_config *cfg);
/* Adds one address (text, e.g. curl's CURLINFO_PRIMARY_IP) to source s.
 * Returns true when it was new. */
bool daemon_protect_note(struct daemon *d, enum protect_source s, const char *ip);
/* After the addresses changed: re-applies the policy in force, so the
 * kernel's sets are carved by the new ones (journals a kernel error). */
void daemon_protect_recarve(struct daemon *d);
/* [{"addr": ..., "what": ...}] for status. */
json_t *daemon_protect_status(const struct daemon *d);

/* ctlserver.c */
/* {"policy": n, "file": n, ...} */
json_t *daemon_entries_by_origin(const struct daemon *d);
/* The reply to one request line line[0..len) (without its newline) from an
 * authorized peer a: one line of JSON ending in "\n", malloc'd. Every
 * request gets exactly one: a reply that cannot be built becomes
 * {"ok":false,"error":"internal: reply could not be built"}. NULL only when
 * out of memory. No socket needed (tests/fuzz/fuzz_ctlrequest.c). */
char *ctl_request_reply(struct daemon *d, const char *line, size_t len, const struct actor *a);
int ctl_server_start(struct daemon *d);
void ctl_server_stop(struct daemon *d);
