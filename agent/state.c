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

/* Length of the valid UTF-8 sequence at s (1-4), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *s)
{
	size_t n = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
	if (s[0] < 0x80)
		return 1;
	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

/* A JSON string. Bytes that are not UTF-8 are written as \u00XX, so the
 * file always loads again. */
static void put_string(FILE *f, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	fputc('"', f);
	while (*s) {
		size_t n = utf8_len(s);
		if (*s == '"' || *s == '\\') {
			fputc('\\', f);
			fputc(*s, f);
		} else if (*s < 0x20 || *s == 0x7f || n == 0) {
			fprintf(f, "\\u%04x", *s);
			n = 1;
		} else {
			fwrite(s, 1, n, f);
		}
		s += n ? n : 1;
	}
	fputc('"', f);
}

/* Written entry by entry rather than built as one jansson tree: at 10^5
 * control entries the tree took most of a second and 100 MB. */
static void write_state(FILE *f, const struct bl_change *c, const struct state_extra *x,
			const char *const *ids, size_t n_ids)
{
	const struct bl_entry *e;
	size_t it = 0, i = 0;
	fprintf(f, "{\"version\":%d,\"lockdown\":%s,\"confirm_deadline\":%lld,\"cursor\":",
		STATE_VERSION, x->lockdown ? "true" : "false", (long long)x->confirm_deadline);
	put_string(f, x->cursor);
	fputs(",\"reverted_digest\":", f);
	put_string(f, x->reverted_digest);
	fputs(",\"entries\":[", f);
	for (; (e = bl_change_next(c, &it)); i++) {
		char addr[CVZ_PREFIX_STRLEN];
		fprintf(f, "%s{\"addr\":\"%s\",\"origin\":\"%s\",\"created\":%lld,\"expires\":%lld",
			i ? "," : "", cvz_prefix_format(&e->prefix, addr, sizeof(addr)),
			bl_origin_name((enum bl_origin)e->origin), (long long)e->created,
			(long long)e->expires);
		if (e->reason) {
			fputs(",\"reason\":", f);
			put_string(f, e->reason);
		}
		if (e->incident) {
			fputs(",\"incident\":", f);
			put_string(f, e->incident);
		}
		fputc('}', f);
	}
	fputs("],\"seen_ids\":[", f);
	size_t n_seen = x->seen ? instr_seen_count(x->seen) : 0;
	for (size_t k = 0; k < n_seen; k++) {
		if (k)
			fputc(',', f);
		put_string(f, instr_seen_at(x->seen, k));
	}
	/* a change's ids come last, as the newest; a load into a full set
	   drops the oldest, as adding them to x->seen would */
	for (size_t k = 0; k < n_ids; k++) {
		if (n_seen || k)
			fputc(',', f);
		put_string(f, ids[k]);
	}
	fputs("]}\n", f);
}

int state_save(const char *dir, const struct blocklist *b, const struct state_extra *x)
{
	struct bl_change none;
	bl_change_init(&none, b); /* allocates nothing */
	return state_save_next(dir, &none, x, NULL, 0);
}

int state_save_next(const char *dir, const struct bl_change *c, const struct state_extra *x,
		    const char *const *ids, size_t n_ids)
{
	char tmp[4096], dst[4096];
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, STATE_FILE);
	snprintf(dst, sizeof(dst), "%s/%s", dir, STATE_FILE);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	FILE *f = fdopen(fd, "w");
	if (!f) {
		int r = -errno;
		close(fd);
		unlink(tmp);
		return r;
	}
	setvbuf(f, NULL, _IOFBF, 1u << 16);
	write_state(f, c, x, ids, n_ids);
	int r = fflush(f) == 0 && !ferror(f) ? 0 : -(errno ? errno : EIO);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (fclose(f) != 0 && r == 0)
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
	json_t *entries, *seen = NULL;
	int version, lockdown;
	json_int_t deadline;
	const char *cursor, *reverted = "";
	json_error_t je;
	if (json_unpack_ex(root, &je, 0, "{s:i, s:o, s:b, s:I, s:s, s?o}", "version", &version,
			   "entries", &entries, "lockdown", &lockdown, "confirm_deadline",
			   &deadline, "cursor", &cursor, "seen_ids", &seen) < 0 ||
	    json_unpack_ex(root, &je, 0, "{s?s}", "reverted_digest", &reverted) < 0) {
		snprintf(err, errlen, "%s", je.text);
		return -EBADMSG;
	}
	if (version != STATE_VERSION || !json_is_array(entries) ||
	    strlen(cursor) >= sizeof(x->cursor) || strlen(reverted) >= sizeof(x->reverted_digest)) {
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
	json_t *id;
	if (seen && !json_is_array(seen)) {
		snprintf(err, errlen, "seen_ids is not an array");
		return -EBADMSG;
	}
	json_array_foreach(seen, i, id) {
		const char *s = json_string_value(id);
		if (!s || !s[0] || strlen(s) >= INSTR_ID_MAX) {
			snprintf(err, errlen, "seen_ids[%zu]: not an instruction id", i);
			return -EBADMSG;
		}
		if (x->seen && instr_seen_add(x->seen, s) < 0)
			return -ENOMEM;
	}
	x->lockdown = lockdown;
	x->confirm_deadline = deadline;
	snprintf(x->cursor, sizeof(x->cursor), "%s", cursor);
	snprintf(x->reverted_digest, sizeof(x->reverted_digest), "%s", reverted);
	return 0;
}

int state_load(const char *dir, struct blocklist *b, struct state_extra *x, char *err,
	       size_t errlen, char *moved_to, size_t movedlen)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, STATE_FILE);
	struct instr_seen *seen = x->seen;
	memset(x, 0, sizeof(*x));
	x->seen = seen;
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
		x->seen = seen;
		snprintf(moved_to, movedlen, "%s.corrupt-%lld", path, (long long)time(NULL));
		if (rename(path, moved_to) < 0)
			snprintf(moved_to, movedlen, "(could not move it aside: %s)", strerror(errno));
	}
	return r;
}
