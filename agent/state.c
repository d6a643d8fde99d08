/* State persistence (see state.h). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "state.h"

#define STATE_VERSION 1

static json_t *entry_json(const struct bl_entry *e)
{
	char addr[CVZ_PREFIX_STRLEN];
	json_t *o = json_pack("{s:s, s:s, s:I, s:I}", "addr",
			      cvz_prefix_format(&e->prefix, addr, sizeof(addr)), "origin",
			      bl_origin_name((enum bl_origin)e->origin), "created",
			      (json_int_t)e->created, "expires", (json_int_t)e->expires);
	if (o && e->reason)
		json_object_set_new(o, "reason", json_string(e->reason));
	if (o && e->incident)
		json_object_set_new(o, "incident", json_string(e->incident));
	return o;
}

static json_t *state_json(const struct blocklist *b, const struct state_extra *x)
{
	json_t *entries = json_array();
	for (size_t i = 0; entries && i < b->n; i++)
		if (json_array_append_new(entries, entry_json(&b->v[i])) < 0) {
			json_decref(entries);
			return NULL;
		}
	if (!entries)
		return NULL;
	return json_pack("{s:i, s:o, s:b, s:I, s:s}", "version", STATE_VERSION, "entries", entries,
			 "lockdown", x->lockdown, "confirm_deadline",
			 (json_int_t)x->confirm_deadline, "cursor", x->cursor);
}

static int write_all(int fd, const char *s, size_t n)
{
	while (n) {
		ssize_t w = write(fd, s, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

int state_save(const char *dir, const struct blocklist *b, const struct state_extra *x)
{
	json_t *root = state_json(b, x);
	char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
	json_decref(root);
	if (!text)
		return -ENOMEM;
	char tmp[4096], dst[4096];
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, STATE_FILE);
	snprintf(dst, sizeof(dst), "%s/%s", dir, STATE_FILE);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int r = fd < 0 ? -errno : write_all(fd, text, strlen(text));
	free(text);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (fd >= 0 && close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, dst) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		return r;
	}
	/* the rename itself must reach the disk */
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		if (fsync(dfd) < 0)
			r = -errno;
		close(dfd);
	}
	return r;
}

static int load_entry(json_t *o, struct blocklist *b, char *err, size_t errlen, size_t i)
{
	const char *addr = NULL, *origin = NULL, *reason = NULL, *incident = NULL;
	json_int_t created = 0, expires = 0;
	json_error_t je;
	struct cvz_prefix p;
	enum bl_origin og;
	if (json_unpack_ex(o, &je, JSON_STRICT, "{s:s, s:s, s:I, s:I, s?s, s?s}", "addr", &addr,
			   "origin", &origin, "created", &created, "expires", &expires, "reason",
			   &reason, "incident", &incident) < 0) {
		snprintf(err, errlen, "entries[%zu]: %s", i, je.text);
		return -EBADMSG;
	}
	if (cvz_prefix_parse(addr, &p, NULL, NULL, 0) < 0 || bl_origin_lookup(origin, &og) < 0 ||
	    og == ORIGIN_POLICY || og == ORIGIN_FILE || expires < 0) {
		snprintf(err, errlen, "entries[%zu]: bad entry \"%s\" from \"%s\"", i, addr, origin);
		return -EBADMSG;
	}
	/* restore with the stored absolute expiry, not a fresh TTL */
	if (bl_add(b, &p, og, 0, reason, incident, created) < 0)
		return -ENOMEM;
	bl_find(b, &p, og)->expires = expires;
	return 0;
}

static int parse_state(json_t *root, struct blocklist *b, struct state_extra *x, char *err,
		       size_t errlen)
{
	json_t *entries;
	int version, lockdown;
	json_int_t deadline;
	const char *cursor;
	json_error_t je;
	if (json_unpack_ex(root, &je, 0, "{s:i, s:o, s:b, s:I, s:s}", "version", &version,
			   "entries", &entries, "lockdown", &lockdown, "confirm_deadline",
			   &deadline, "cursor", &cursor) < 0) {
		snprintf(err, errlen, "%s", je.text);
		return -EBADMSG;
	}
	if (version != STATE_VERSION || !json_is_array(entries) ||
	    strlen(cursor) >= sizeof(x->cursor)) {
		snprintf(err, errlen, "unsupported version %d or bad entries/cursor", version);
		return -EBADMSG;
	}
	size_t i;
	json_t *o;
	json_array_foreach(entries, i, o) {
		int r = load_entry(o, b, err, errlen, i);
		if (r < 0)
			return r;
	}
	x->lockdown = lockdown;
	x->confirm_deadline = deadline;
	snprintf(x->cursor, sizeof(x->cursor), "%s", cursor);
	return 0;
}

int state_load(const char *dir, struct blocklist *b, struct state_extra *x, char *err,
	       size_t errlen, char *moved_to, size_t movedlen)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, STATE_FILE);
	memset(x, 0, sizeof(*x));
	json_error_t je;
	json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	int r = 0;
	if (!root) {
		struct stat st;
		if (stat(path, &st) < 0) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			return -errno;
		}
		snprintf(err, errlen, "%s:%d:%d: %s", path, je.line, je.column, je.text);
		r = -EBADMSG;
	} else {
		r = parse_state(root, b, x, err, errlen);
		json_decref(root);
	}
	if (r == -EBADMSG) {
		bl_free(b);
		memset(x, 0, sizeof(*x));
		snprintf(moved_to, movedlen, "%s.corrupt-%lld", path, (long long)time(NULL));
		if (rename(path, moved_to) < 0)
			snprintf(moved_to, movedlen, "(could not move it aside: %s)", strerror(errno));
	}
	return r;
}
