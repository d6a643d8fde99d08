/* The agent confines itself (docs/hardening.md): after everything that
 * needs privilege is open, it keeps nothing but CAP_NET_ADMIN, optionally
 * becomes its own user, sets no_new_privs and installs a seccomp allowlist
 * whose default action kills the process. Safe under any init; under
 * systemd the unit adds a second, outer layer.
 *
 * Raw prctl()/capset() for capabilities (no libcap); libseccomp for the
 * filter. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The user to become: resolved at load time, while NSS still works. */
struct sandbox_user {
	bool set;
	uid_t uid;
	gid_t gid;
	char name[64];
};

/* Looks name up. Returns 0 and *out, or -ENOENT / -errno with the reason. */
int sandbox_lookup_user(const char *name, struct sandbox_user *out, char *err, size_t len);

/* Drops every capability but CAP_NET_ADMIN from every set (effective,
 * permitted, inheritable, ambient, bounding), locks root's special
 * treatment off (securebits), switches to u when u->set and we are not
 * it yet, and sets no_new_privs. Refuses (-EPERM with the reason) when
 * CAP_NET_ADMIN is not there to keep. Not undoable. */
int sandbox_drop_privileges(const struct sandbox_user *u, char *err, size_t len);

/* No core dumps, and no ptrace by processes of our own uid: the control
 * API's key and token are in memory. (Left out with --no-seccomp, for
 * debugging, where sanitizers and debuggers need both.) */
void sandbox_no_dumps(void);

/* Installs the system call allowlist. Default action: kill the process.
 * With trap, a violation prints the system call's name to stderr first
 * (for finding a missing entry; a process can catch SIGSYS, so this is
 * for debugging only). Returns 0 or -errno with the reason. */
int sandbox_install_filter(bool trap, char *err, size_t len);

/* For tests: the allowlist as "name" strings, grouped; count in *n. */
const char *const *sandbox_allowlist(size_t *n);
