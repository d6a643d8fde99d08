/* state_dir as a checked boundary (OpenSSH StrictModes style).
 *
 * The directory is checked once, opened, and from then on reached only
 * through that descriptor: every file in it is opened with openat(O_NOFOLLOW),
 * checked with fstat (a regular file, owned by root or the agent's user, not
 * writable by group or others, one link, at most a given size) before a byte
 * of it is believed, written as an O_EXCL temp file that is fsynced and
 * renamed into place, and the directory fsynced after. Nothing here follows
 * a symlink planted in the directory. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

struct statedir {
	int fd;          /* O_DIRECTORY, -1 when not open */
	uid_t owner;     /* the agent's user; root (0) is always accepted too */
	char path[4096]; /* canonical path, for messages */
};

/* Checks and opens path as a state directory; creates it (mode 0700) when
 * missing and create is set. Refused, with a reason naming the path in err:
 * not absolute, a symlink as the last component, not a directory, owned by
 * someone other than root or owner, writable by group or others, or a parent
 * up to / that is not owned by root/owner or is writable by group or others
 * (a root-owned parent with the sticky bit, like /tmp, is accepted: nobody
 * else can rename or remove an entry in it they do not own). Returns 0 and
 * fills *sd, or -errno (-EPERM for ownership and modes). */
int statedir_open(const char *path, uid_t owner, bool create, struct statedir *sd, char *err,
		  size_t errlen);

/* Closes sd->fd (idempotent). */
void statedir_close(struct statedir *sd);

/* Reads name into a malloc'd, NUL-terminated buffer (*buf, freed by the
 * caller; *len excludes the NUL). Returns 0; -ENOENT when there is no such
 * entry; -ELOOP for a symlink, -EINVAL for anything but a regular file,
 * -EPERM for a foreign owner, group/other write bit or more than one link,
 * -EFBIG above max bytes; other -errno when unreadable. err names the file
 * and what is wrong on any error. */
int statedir_read(const struct statedir *sd, const char *name, size_t max, char **buf,
		  size_t *len, char *err, size_t errlen);

/* Replaces name atomically with what write_fn writes to the stream: an
 * O_EXCL|O_NOFOLLOW temp file ".NAME.tmp" (a stale or planted one is
 * removed first, never followed), fsync, renameat, fsync of the directory.
 * Returns 0 or -errno; on error name is unchanged and the temp file gone. */
int statedir_write(const struct statedir *sd, const char *name,
		   void (*write_fn)(FILE *f, const void *ud), const void *ud);

/* The same for a buffer. */
int statedir_write_buf(const struct statedir *sd, const char *name, const void *buf, size_t len);

/* Removes name (never what a symlink points to) and fsyncs the directory.
 * Returns 0 when it is gone (also when it never existed) or -errno. */
int statedir_remove(const struct statedir *sd, const char *name);

/* Renames name aside to NAME.corrupt-<time> (a symlink is moved, not
 * followed); its new name goes to moved_to, or a reason it could not be
 * moved. Returns 0 or -errno. */
int statedir_move_aside(const struct statedir *sd, const char *name, char *moved_to,
			size_t movedlen);

/* Gives the directory and the named files in it to uid:gid without
 * following symlinks (started as root, before dropping privileges).
 * Returns 0 or the first -errno; a missing file is not an error. */
int statedir_hand_over(struct statedir *sd, uid_t uid, gid_t gid, const char *const *names,
		       size_t n);
