/* What must survive a restart: runtime blocklist entries (with their absolute
 * expiry, so the remaining TTL is right after any downtime), lockdown, and a
 * pending commit-confirmed reload. One JSON file in state_dir, replaced
 * atomically (write temp, fsync, rename, fsync dir). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blocklist.h"
#include "instr.h"

#define STATE_FILE "state.json"

struct state_extra {
	bool lockdown;
	int64_t confirm_deadline; /* 0: no reload awaiting confirmation */
	char cursor[256];         /* control API cursor; "" none */
	/* sha256 of a policy that was reloaded with a confirmation window and
	   reverted; "" none. While the policy file still holds it, a start or
	   a plain reload keeps the last confirmed policy instead. */
	char reverted_digest[65];
	/* control API instruction ids carried out, oldest first; not owned,
	   may be NULL. state_load() keeps the pointer and adds the stored ids. */
	struct instr_seen *seen;
};

/* Writes the state. Returns 0 or -errno; on error the old file stays. */
int state_save(const char *dir, const struct blocklist *b, const struct state_extra *x);
/* Writes the state as it will be once a staged change is applied: the
 * entries of c->base as changed by c, x, and x->seen followed by ids[0..n_ids)
 * (the instruction ids the change carries out). Saved before the change is
 * made current, so that a change acknowledged is a change saved. Returns 0
 * or -errno; on error the old file stays. */
int state_save_next(const char *dir, const struct bl_change *c, const struct state_extra *x,
		    const char *const *ids, size_t n_ids);

/* Reads the state into the empty b and x. Returns 0; -ENOENT when there is
 * no state file (a first start); -EBADMSG when the file is corrupt: it has
 * been moved aside to state.json.corrupt-<time> (its name written to
 * moved_to) and b and x are left empty; other -errno when unreadable.
 * err receives a one-line reason on any error. */
int state_load(const char *dir, struct blocklist *b, struct state_extra *x, char *err,
	       size_t errlen, char *moved_to, size_t movedlen);
