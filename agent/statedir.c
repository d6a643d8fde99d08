/* state_dir as a checked boundary (see statedir.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "statedir.h"

static bool owner_ok(const struct statedir *sd, uid_t uid)
{
	return uid == 0 || uid == sd->owner;
}

/* A parent of state_dir: whoever can write to it can swap state_dir for a
 * directory of their own. Root-owned and sticky (/tmp) is safe, since only
 * the owner of an entry may rename or remove it there. */
static int check_parent(const struct statedir *sd, int fd, const char *shown, char *err,
			size_t errlen)
{
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int r = -errno;
		snprintf(err, errlen, "%s: %s", shown, strerror(-r));
		return r;
	}
	if (!owner_ok(sd, st.st_uid)) {
		snprintf(err, errlen,
			 "parent directory %s of state_dir is owned by uid %u, not by root or the agent's user",
			 shown, (unsigned)st.st_uid);
		return -EPERM;
	}
	if ((st.st_mode & 022) && !(st.st_uid == 0 && (st.st_mode & S_ISVTX))) {
		snprintf(err, errlen,
			 "parent directory %s of state_dir has mode %04o: writable by group or others",
			 shown, (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	return 0;
}

/* Walks the canonical path from / one component at a time, never following
 * a symlink, checking each directory. Returns an O_PATH fd of the last. */
static int open_parent(const struct statedir *sd, const char *canon, char *err, size_t errlen)
{
	char shown[PATH_MAX] = "/";
	int fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "/: %s", strerror(errno));
		return -errno;
	}
	int r = check_parent(sd, fd, shown, err, errlen);
	const char *p = canon;
	while (r == 0 && *p) {
		while (*p == '/')
			p++;
		size_t n = strcspn(p, "/");
		if (n == 0)
			break;
		char comp[NAME_MAX + 1];
		if (n > NAME_MAX) {
			snprintf(err, errlen, "%s: name too long", canon);
			r = -ENAMETOOLONG;
			break;
		}
		memcpy(comp, p, n);
		comp[n] = '\0';
		p += n;
		size_t sl = strlen(shown);
		snprintf(shown + sl, sizeof(shown) - sl, "%s%s", sl > 1 ? "/" : "", comp);
		int nfd = openat(fd, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (nfd < 0) {
			r = -errno;
			snprintf(err, errlen, "%s: %s", shown, strerror(-r));
			break;
		}
		close(fd);
		fd = nfd;
		r = check_parent(sd, fd, shown, err, errlen);
	}
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

static int check_dir(const struct statedir *sd, int fd, char *err, size_t errlen)
{
	struct stat st;
	if (fstat(fd, &st) < 0) {
		snprintf(err, errlen, "state_dir %s: %s", sd->path, strerror(errno));
		return -errno;
	}
	if (!owner_ok(sd, st.st_uid)) {
		snprintf(err, errlen,
			 "state_dir %s is owned by uid %u, not by root or the agent's user (uid %u): chown it or remove it",
			 sd->path, (unsigned)st.st_uid, (unsigned)sd->owner);
		return -EPERM;
	}
	if (st.st_mode & 022) {
		snprintf(err, errlen,
			 "state_dir %s has mode %04o: writable by group or others (chmod 0700 it)",
			 sd->path, (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	return 0;
}

int statedir_open(const char *path, uid_t owner, bool create, struct statedir *sd, char *err,
		  size_t errlen)
{
	char copy[PATH_MAX], canon[PATH_MAX];
	struct statedir s = { .fd = -1, .owner = owner };
	size_t len = strlen(path);
	if (path[0] != '/' || len >= sizeof(copy)) {
		snprintf(err, errlen, "state_dir \"%s\" is not an absolute path", path);
		return -EINVAL;
	}
	memcpy(copy, path, len + 1);
	while (len > 1 && copy[len - 1] == '/')
		copy[--len] = '\0';
	char *slash = strrchr(copy, '/');
	const char *last = slash + 1;
	*slash = '\0';
	/* the parents are resolved once (/var/run -> /run is fine: every
	   directory of the result is checked); the last component never is */
	if (!realpath(copy[0] ? copy : "/", canon)) {
		snprintf(err, errlen, "state_dir %s: parent %s: %s", path, copy[0] ? copy : "/",
			 strerror(errno));
		return -errno;
	}
	if (!*last || strcmp(last, ".") == 0 || strcmp(last, "..") == 0) {
		snprintf(err, errlen, "state_dir \"%s\" does not name a directory", path);
		return -EINVAL;
	}
	snprintf(s.path, sizeof(s.path), "%s%s%s", canon, strcmp(canon, "/") ? "/" : "", last);
	int pfd = open_parent(&s, canon, err, errlen);
	if (pfd < 0)
		return pfd;
	if (create && mkdirat(pfd, last, 0700) < 0 && errno != EEXIST) {
		int r = -errno;
		snprintf(err, errlen, "cannot create state_dir %s: %s", s.path, strerror(-r));
		close(pfd);
		return r;
	}
	struct stat st;
	int r = 0;
	if (fstatat(pfd, last, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		r = -errno;
		snprintf(err, errlen, "state_dir %s: %s", s.path, strerror(-r));
	} else if (S_ISLNK(st.st_mode)) {
		snprintf(err, errlen, "state_dir %s is a symlink: name the directory itself", s.path);
		r = -ELOOP;
	} else if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "state_dir %s is not a directory", s.path);
		r = -ENOTDIR;
	} else if ((s.fd = openat(pfd, last, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		r = -errno;
		snprintf(err, errlen, "state_dir %s: %s", s.path, strerror(-r));
	} else {
		r = check_dir(&s, s.fd, err, errlen);
	}
	close(pfd);
	if (r < 0) {
		if (s.fd >= 0)
			close(s.fd);
		return r;
	}
	*sd = s;
	return 0;
}

void statedir_close(struct statedir *sd)
{
	if (sd->fd >= 0)
		close(sd->fd);
	sd->fd = -1;
}

static int check_file(const struct statedir *sd, const char *name, const struct stat *st,
		      size_t max, char *err, size_t errlen)
{
	if (!S_ISREG(st->st_mode)) {
		snprintf(err, errlen, "%s/%s: not a regular file", sd->path, name);
		return -EINVAL;
	}
	if (!owner_ok(sd, st->st_uid)) {
		snprintf(err, errlen, "%s/%s: owned by uid %u, not by root or the agent's user",
			 sd->path, name, (unsigned)st->st_uid);
		return -EPERM;
	}
	if (st->st_mode & 022) {
		snprintf(err, errlen, "%s/%s: mode %04o is writable by group or others", sd->path,
			 name, (unsigned)(st->st_mode & 07777));
		return -EPERM;
	}
	if (st->st_nlink != 1) {
		snprintf(err, errlen, "%s/%s: has %lu hard links (a planted link?)", sd->path, name,
			 (unsigned long)st->st_nlink);
		return -EPERM;
	}
	if ((unsigned long long)st->st_size > max) {
		snprintf(err, errlen, "%s/%s: %lld bytes, more than the %zu allowed", sd->path,
			 name, (long long)st->st_size, max);
		return -EFBIG;
	}
	return 0;
}

int statedir_read(const struct statedir *sd, const char *name, size_t max, char **buf,
		  size_t *len, char *err, size_t errlen)
{
	/* O_NONBLOCK: a planted FIFO must not hang the open */
	int fd = openat(sd->fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		int r = -errno;
		if (r == -ELOOP)
			snprintf(err, errlen, "%s/%s: is a symlink, not followed", sd->path, name);
		else
			snprintf(err, errlen, "%s/%s: %s", sd->path, name, strerror(-r));
		return r;
	}
	struct stat st;
	int r = fstat(fd, &st) < 0 ? -errno : 0;
	if (r < 0)
		snprintf(err, errlen, "%s/%s: %s", sd->path, name, strerror(-r));
	else
		r = check_file(sd, name, &st, max, err, errlen);
	_cleanup_(freep) char *b = NULL;
	size_t got = 0;
	if (r == 0 && !(b = malloc((size_t)st.st_size + 1)))
		r = -ENOMEM;
	while (r == 0 && got < (size_t)st.st_size) {
		ssize_t n = read(fd, b + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			break;
		}
		got += (size_t)n;
	}
	close(fd);
	if (r == -ENOMEM || r == -EIO || (r < 0 && got))
		snprintf(err, errlen, "%s/%s: %s", sd->path, name, strerror(-r));
	if (r < 0)
		return r;
	b[got] = '\0';
	*buf = TAKE_PTR(b);
	*len = got;
	return 0;
}

static void tmp_name(const char *name, char *tmp, size_t len)
{
	snprintf(tmp, len, ".%s.tmp", name);
}

static int fsync_dir(const struct statedir *sd)
{
	return fsync(sd->fd) < 0 ? -errno : 0;
}

int statedir_write(const struct statedir *sd, const char *name,
		   void (*write_fn)(FILE *f, const void *ud), const void *ud)
{
	char tmp[NAME_MAX + 1];
	tmp_name(name, tmp, sizeof(tmp));
	/* a leftover of a crash, or something planted: unlinkat removes the
	   entry itself, and O_EXCL refuses whatever appears in between */
	if (unlinkat(sd->fd, tmp, 0) < 0 && errno != ENOENT)
		return -errno;
	int fd = openat(sd->fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	FILE *f = fdopen(fd, "w");
	if (!f) {
		int r = -errno;
		close(fd);
		unlinkat(sd->fd, tmp, 0);
		return r;
	}
	setvbuf(f, NULL, _IOFBF, 1u << 16);
	errno = 0;
	write_fn(f, ud);
	int r = fflush(f) == 0 && !ferror(f) ? 0 : -(errno ? errno : EIO);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (fclose(f) != 0 && r == 0)
		r = -errno;
	if (r == 0 && renameat(sd->fd, tmp, sd->fd, name) < 0)
		r = -errno;
	if (r < 0) {
		unlinkat(sd->fd, tmp, 0);
		return r;
	}
	/* the rename itself must reach the disk */
	return fsync_dir(sd);
}

struct buf_ud {
	const void *buf;
	size_t len;
};

static void write_buf(FILE *f, const void *ud)
{
	const struct buf_ud *b = ud;
	fwrite(b->buf, 1, b->len, f);
}

int statedir_write_buf(const struct statedir *sd, const char *name, const void *buf, size_t len)
{
	struct buf_ud b = { buf, len };
	return statedir_write(sd, name, write_buf, &b);
}

int statedir_remove(const struct statedir *sd, const char *name)
{
	if (unlinkat(sd->fd, name, 0) < 0)
		return errno == ENOENT ? 0 : -errno;
	return fsync_dir(sd);
}

int statedir_move_aside(const struct statedir *sd, const char *name, char *moved_to,
			size_t movedlen)
{
	char aside[NAME_MAX + 1];
	snprintf(aside, sizeof(aside), "%s.corrupt-%lld", name, (long long)time(NULL));
	if (renameat(sd->fd, name, sd->fd, aside) < 0) {
		int r = -errno;
		snprintf(moved_to, movedlen, "(could not move it aside: %s)", strerror(-r));
		return r;
	}
	snprintf(moved_to, movedlen, "%s/%s", sd->path, aside);
	return fsync_dir(sd);
}

int statedir_hand_over(struct statedir *sd, uid_t uid, gid_t gid, const char *const *names,
		       size_t n)
{
	if (fchown(sd->fd, uid, gid) < 0)
		return -errno;
	sd->owner = uid;
	int r = 0;
	for (size_t i = 0; i < n; i++)
		if (fchownat(sd->fd, names[i], uid, gid, AT_SYMLINK_NOFOLLOW) < 0 &&
		    errno != ENOENT && r == 0)
			r = -errno;
	return r;
}
