/* What must survive a restart: runtime blocklist entries (with their absolute
 * expiry, so the remaining TTL is right after any downtime), lockdown, and a
 * pending commit-confirmed reload. One JSON file in state_dir, reached only
 * through the checked directory (statedir.h) and replaced atomically (O_EXCL
 * temp file, fsync, renameat, fsync dir). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blocklist.h"
#include "detect_track.h"
#include "instr.h"
#include "statedir.h"

#define STATE_FILE "state.json"
/* The largest state.json read (checked with fstat before reading): well
 * above 10^5 runtime entries at ~150 bytes each plus 10^4 seen ids. */
#define STATE_FILE_MAX (64u << 20)
/* A journal cursor is about 150 bytes (s=, i=, b=, m=, t=, x= fields). */
#define STATE_CURSOR_MAX 512
/* Offenders kept in state.json at most (more are dropped, oldest first). */
#define STATE_OFFENDERS_MAX 65536

struct state_extra {
	bool lockdown;
	int64_t confirm_deadline; /* 0: no reload awaiting confirmation */
	char cursor[256];         /* control API cursor; "" none */
	/* sha256 of a policy that was reloaded with a confirmation window and
	   reverted; "" none. While the policy file still holds it, a start or
	   a plain reload keeps the last confirmed policy instead. */
	char reverted_digest[65];
	/* a confirmation window binds two policies by their sha256: the one
	   applied on trial (the policy file's bytes at the time) and the one
	   it reverts to (policy.previous.json). "" when no window is open. */
	char trial_digest[65];
	char previous_digest[65];
	/* after a revert: the bytes kept in policy.last-good.json */
	char last_good_digest[65];
	/* local detection (docs/detect.md): the journal cursor of the last
	   line counted and that line's realtime (microseconds); "" / 0 none */
	char detect_cursor[STATE_CURSOR_MAX];
	int64_t detect_cursor_us;
	/* detection's repeat offenders (detect_track.h). Written from here by
	   a save; not owned by the struct (copies share it). After
	   state_load()/state_parse() it is a malloc'd array the caller frees. */
	struct detect_offender *offenders;
	size_t n_offenders;
	/* control API instruction ids carried out, oldest first; not owned,
	   may be NULL. state_load() keeps the pointer and adds the stored ids. */
	struct instr_seen *seen;
	/* set by state_load(): entries left out for impossible times (see
	   bl_restore()), and which was the first, for the journal */
	size_t dropped;
	char dropped_why[160];
};

/* Writes the state. Returns 0 or -errno; on error the old file stays. */
int state_save(const struct statedir *sd, const struct blocklist *b, const struct state_extra *x);
/* Writes the state as it will be once a staged change is applied: the
 * entries of c->base as changed by c, x, and x->seen followed by ids[0..n_ids)
 * (the instruction ids the change carries out). Saved before the change is
 * made current, so that a change acknowledged is a change saved. Returns 0
 * or -errno; on error the old file stays. */
int state_save_next(const struct statedir *sd, const struct bl_change *c, const struct state_extra *x,
		    const char *const *ids, size_t n_ids);

/* Parses the bytes of a state file into the empty b and x, all or nothing:
 * on error b, x and x->seen are as they were (only running out of memory
 * while adding the seen ids, the last step, can leave some added). Returns 0, -EBADMSG (err
 * says where and what) or -ENOMEM. Pure: no file system. */
int state_parse(const char *buf, size_t len, struct blocklist *b, struct state_extra *x,
		char *err, size_t errlen);

/* Reads the state into the empty b and x (x->seen, when not NULL, must be
 * empty and receives the stored ids). Returns 0; -ENOENT when there is no
 * state file (a first start); -EBADMSG when the file is corrupt or not
 * believable (a symlink, not a regular file, a foreign owner, group/other
 * writable, hard-linked, above STATE_FILE_MAX): it has been moved aside to
 * state.json.corrupt-<time> (its path written to moved_to) and b and x are
 * left empty; other -errno when unreadable. err receives a one-line reason
 * naming the file on any error. */
int state_load(const struct statedir *sd, struct blocklist *b, struct state_extra *x, char *err,
	       size_t errlen, char *moved_to, size_t movedlen);
