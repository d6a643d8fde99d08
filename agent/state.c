/* State persistence (see state.h). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "state.h"
#include "utf8.h"

#define STATE_VERSION 1

/* A JSON string. Bytes that are not UTF-8 are written as \u00XX, so the
 * file always loads again. */
static void put_string(FILE *f, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	fputc('"', f);
	while (*s) {
		/* strict (utf8.h): a lenient check let a surrogate through, and
		   jansson then refused the whole file on the next start */
		size_t n = utf8_char_len((const char *)s, strnlen((const char *)s, 4));
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

struct state_write {
	const struct bl_change *c;
	const struct state_extra *x;
	const char *const *ids;
	size_t n_ids;
};

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
	fprintf(f, ",\"reverted_digest\":\"%s\",\"trial_digest\":\"%s\",\"previous_digest\":\"%s\",\"last_good_digest\":\"%s\"",
		x->reverted_digest, x->trial_digest, x->previous_digest, x->last_good_digest);
	fputs(",\"detect_cursor\":", f);
	put_string(f, x->detect_cursor);
	fprintf(f, ",\"detect_cursor_us\":%lld,\"offenders\":[", (long long)x->detect_cursor_us);
	for (size_t k = 0; k < x->n_offenders && k < STATE_OFFENDERS_MAX; k++) {
		const struct detect_offender *o = &x->offenders[k];
		char addr[CVZ_PREFIX_STRLEN];
		fprintf(f, "%s{\"addr\":\"%s\",\"blocked_at\":%lld,\"ttl\":%llu,\"offences\":%u}",
			k ? "," : "", cvz_prefix_format(&o->addr, addr, sizeof(addr)),
			(long long)o->blocked_at, (unsigned long long)o->ttl, (unsigned)o->offences);
	}
	fputc(']', f);
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

/* write_fn of statedir_write */
static void write_state_cb(FILE *f, const void *ud)
{
	const struct state_write *w = ud;
	write_state(f, w->c, w->x, w->ids, w->n_ids);
}

int state_save_next(const struct statedir *sd, const struct bl_change *c,
		    const struct state_extra *x, const char *const *ids, size_t n_ids)
{
	struct state_write w = { c, x, ids, n_ids };
	return statedir_write(sd, STATE_FILE, write_state_cb, &w);
}

int state_save(const struct statedir *sd, const struct blocklist *b, const struct state_extra *x)
{
	struct bl_change none;
	bl_change_init(&none, b); /* allocates nothing */
	return state_save_next(sd, &none, x, NULL, 0);
}

/* "" or 64 lowercase hex digits. */
static bool digest_ok(const char *s)
{
	size_t n = strlen(s);
	if (n != 0 && n != 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* One stored entry, as read, before it is believed. */
struct stored_entry {
	const char *addr, *origin, *reason, *incident;
	json_int_t created, expires;
	struct cvz_prefix prefix;
	enum bl_origin og;
};

/* Per-entry validation: every check of a stored entry's values goes here
 * (the caller has already unpacked the fields). Returns 0 or -EBADMSG with
 * err set. */
static int entry_check(struct stored_entry *e, size_t i, char *err, size_t errlen)
{
	if (cvz_prefix_parse(e->addr, &e->prefix, NULL, NULL, 0) < 0 ||
	    bl_origin_lookup(e->origin, &e->og) < 0 || e->og == ORIGIN_POLICY ||
	    e->og == ORIGIN_FILE) {
		utf8_snprintf(err, errlen, "entries[%zu]: bad entry \"%s\" from \"%s\"", i, e->addr,
			      e->origin);
		return -EBADMSG;
	}
	return 0;
}

static int load_entry(json_t *o, struct blocklist *b, struct state_extra *x, char *err,
		      size_t errlen, size_t i)
{
	struct stored_entry e = { 0 };
	json_error_t je;
	if (json_unpack_ex(o, &je, JSON_STRICT, "{s:s, s:s, s:I, s:I, s?s, s?s}", "addr", &e.addr,
			   "origin", &e.origin, "created", &e.created, "expires", &e.expires,
			   "reason", &e.reason, "incident", &e.incident) < 0) {
		snprintf(err, errlen, "entries[%zu]: %s", i, je.text);
		return -EBADMSG;
	}
	int r = entry_check(&e, i, err, errlen);
	if (r < 0)
		return r;
	/* restored with the stored absolute expiry, not a fresh TTL; impossible
	   times drop this entry alone (the caller journals it), not the file */
	struct bl_entry be = { .prefix = e.prefix, .origin = (uint8_t)e.og, .created = e.created,
			       .expires = e.expires, .reason = (char *)e.reason,
			       .incident = (char *)e.incident };
	r = bl_restore(b, &be, (int64_t)time(NULL));
	if (r == -ERANGE && x->dropped++ == 0)
		snprintf(x->dropped_why, sizeof(x->dropped_why),
			 "entries[%zu] (%s from %s): created %lld, expires %lld out of range", i,
			 e.addr, e.origin, (long long)e.created, (long long)e.expires);
	if (r == -ENOMEM)
		snprintf(err, errlen, "entries[%zu]: out of memory", i);
	return r == -ERANGE || r >= 0 ? 0 : r;
}

/* The optional digest fields, each "" or a sha256 in hex. */
static int parse_digests(json_t *root, struct state_extra *x, char *err, size_t errlen)
{
	static const char *const keys[] = { "reverted_digest", "trial_digest", "previous_digest",
					    "last_good_digest" };
	char *dst[] = { x->reverted_digest, x->trial_digest, x->previous_digest,
			x->last_good_digest };
	for (size_t k = 0; k < ELEMENTSOF(keys); k++) {
		json_t *v = json_object_get(root, keys[k]);
		const char *s = v ? json_string_value(v) : "";
		if (!s || !digest_ok(s)) {
			snprintf(err, errlen, "%s: not a sha256 digest", keys[k]);
			return -EBADMSG;
		}
		memcpy(dst[k], s, strlen(s) + 1);
	}
	return 0;
}

/* The ids in seen_ids, checked all before any is believed. */
static int parse_seen(json_t *seen, const char ***ids, size_t *n, char *err, size_t errlen)
{
	*ids = NULL;
	*n = 0;
	if (!seen)
		return 0;
	if (!json_is_array(seen)) {
		snprintf(err, errlen, "seen_ids is not an array");
		return -EBADMSG;
	}
	size_t i, count = json_array_size(seen);
	json_t *id;
	if (count == 0)
		return 0;
	const char **v = calloc(count, sizeof(*v));
	if (!v) {
		snprintf(err, errlen, "seen_ids: out of memory");
		return -ENOMEM;
	}
	json_array_foreach(seen, i, id) {
		const char *s = json_string_value(id);
		if (!s || !s[0] || strlen(s) >= INSTR_ID_MAX) {
			snprintf(err, errlen, "seen_ids[%zu]: not an instruction id", i);
			free(v);
			return -EBADMSG;
		}
		v[i] = s;
	}
	*ids = v;
	*n = count;
	return 0;
}

/* The optional detection fields: a cursor (printable ASCII, as journald
 * writes them), its time, and the offenders, all checked before any is
 * believed. *offs is malloc'd (NULL when none). */
static int parse_detect(json_t *root, struct state_extra *x, struct detect_offender **offs,
			size_t *n_offs, char *err, size_t errlen)
{
	*offs = NULL;
	*n_offs = 0;
	json_t *c = json_object_get(root, "detect_cursor"), *t = json_object_get(root, "detect_cursor_us"),
	       *o = json_object_get(root, "offenders");
	const char *cur = c ? json_string_value(c) : "";
	bool ok = cur && strlen(cur) < sizeof(x->detect_cursor);
	for (size_t i = 0; ok && cur[i]; i++)
		ok = cur[i] > 0x20 && cur[i] < 0x7f;
	json_int_t us = t && json_is_integer(t) ? json_integer_value(t) : 0;
	if (!ok || (t && !json_is_integer(t)) || us < 0 || us / 1000000 > CVZ_TIME_MAX) {
		snprintf(err, errlen, "detect_cursor/detect_cursor_us: not a journal cursor and time");
		return -EBADMSG;
	}
	memcpy(x->detect_cursor, cur, strlen(cur) + 1);
	x->detect_cursor_us = us;
	if (!o)
		return 0;
	size_t n = json_is_array(o) ? json_array_size(o) : 0;
	if (!json_is_array(o) || n > STATE_OFFENDERS_MAX) {
		snprintf(err, errlen, "offenders: not an array of at most %d", STATE_OFFENDERS_MAX);
		return -EBADMSG;
	}
	if (n == 0)
		return 0;
	struct detect_offender *v = calloc(n, sizeof(*v));
	if (!v) {
		snprintf(err, errlen, "offenders: out of memory");
		return -ENOMEM;
	}
	size_t i;
	json_t *e;
	json_array_foreach(o, i, e) {
		const char *addr;
		json_int_t at, ttl, offences;
		json_error_t je;
		if (json_unpack_ex(e, &je, JSON_STRICT, "{s:s, s:I, s:I, s:I}", "addr", &addr,
				   "blocked_at", &at, "ttl", &ttl, "offences", &offences) < 0 ||
		    cvz_prefix_parse(addr, &v[i].addr, NULL, NULL, 0) < 0 || at < 0 ||
		    at > CVZ_TIME_MAX || ttl < 1 || ttl > CVZ_TTL_MAX || offences < 1 ||
		    offences > UINT32_MAX) {
			snprintf(err, errlen, "offenders[%zu]: bad offender", i);
			free(v);
			return -EBADMSG;
		}
		v[i].blocked_at = at;
		v[i].ttl = (uint64_t)ttl;
		v[i].offences = (uint32_t)offences;
	}
	*offs = v;
	*n_offs = n;
	return 0;
}

/* Builds the new state beside the caller's (nb, nx) and hands it over only
 * when the whole file was good: a corrupt file leaves nothing behind. */
static int parse_state(json_t *root, struct blocklist *b, struct state_extra *x, char *err,
		       size_t errlen)
{
	json_t *entries, *seen = NULL;
	int version, lockdown;
	json_int_t deadline;
	const char *cursor;
	json_error_t je;
	if (json_unpack_ex(root, &je, 0, "{s:i, s:o, s:b, s:I, s:s, s?o}", "version", &version,
			   "entries", &entries, "lockdown", &lockdown, "confirm_deadline",
			   &deadline, "cursor", &cursor, "seen_ids", &seen) < 0) {
		snprintf(err, errlen, "%s", je.text);
		return -EBADMSG;
	}
	if (version != STATE_VERSION || !json_is_array(entries) ||
	    strlen(cursor) >= sizeof(x->cursor) || deadline < 0) {
		snprintf(err, errlen, "unsupported version %d or bad entries/cursor/confirm_deadline",
			 version);
		return -EBADMSG;
	}
	struct state_extra nx = { .lockdown = lockdown, .confirm_deadline = deadline };
	snprintf(nx.cursor, sizeof(nx.cursor), "%s", cursor);
	int r = parse_digests(root, &nx, err, errlen);
	if (r < 0)
		return r;
	struct detect_offender *offs = NULL;
	size_t n_offs = 0;
	if ((r = parse_detect(root, &nx, &offs, &n_offs, err, errlen)) < 0)
		return r;
	const char **ids = NULL;
	size_t n_ids = 0;
	if ((r = parse_seen(seen, &ids, &n_ids, err, errlen)) < 0) {
		free(offs);
		return r;
	}
	struct blocklist nb = { 0 };
	size_t i;
	json_t *o;
	json_array_foreach(entries, i, o) {
		if ((r = load_entry(o, &nb, &nx, err, errlen, i)) < 0)
			break;
	}
	/* everything checked: swap in */
	for (i = 0; r == 0 && x->seen && i < n_ids; i++)
		if (instr_seen_add(x->seen, ids[i]) < 0) {
			snprintf(err, errlen, "seen_ids: out of memory");
			r = -ENOMEM;
		}
	free(ids);
	if (r < 0) {
		bl_free(&nb);
		free(offs);
		return r;
	}
	nx.seen = x->seen;
	nx.offenders = offs;
	nx.n_offenders = n_offs;
	*b = nb;
	*x = nx;
	return 0;
}

int state_parse(const char *buf, size_t len, struct blocklist *b, struct state_extra *x,
		char *err, size_t errlen)
{
	json_error_t je;
	json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	if (!root) {
		snprintf(err, errlen, "%d:%d: %s", je.line, je.column, je.text);
		return -EBADMSG;
	}
	int r = json_is_object(root) ? parse_state(root, b, x, err, errlen) : -EBADMSG;
	if (!json_is_object(root))
		snprintf(err, errlen, "not a JSON object");
	json_decref(root);
	return r;
}

int state_load(const struct statedir *sd, struct blocklist *b, struct state_extra *x, char *err,
	       size_t errlen, char *moved_to, size_t movedlen)
{
	struct instr_seen *seen = x->seen;
	memset(x, 0, sizeof(*x));
	x->seen = seen;
	moved_to[0] = '\0';
	_cleanup_(freep) char *buf = NULL;
	size_t len = 0;
	char why[512];
	int r = statedir_read(sd, STATE_FILE, STATE_FILE_MAX, &buf, &len, err, errlen);
	if (r == -ENOENT)
		return r;
	/* a symlink, a foreign or linked file, or one too big: not believed,
	   moved aside like a corrupt one (its contents never read) */
	if (r == -ELOOP || r == -EINVAL || r == -EPERM || r == -EFBIG) {
		statedir_move_aside(sd, STATE_FILE, moved_to, movedlen);
		return -EBADMSG;
	}
	if (r < 0)
		return r;
	r = state_parse(buf, len, b, x, why, sizeof(why));
	if (r == 0)
		return 0;
	snprintf(err, errlen, "%s/%s: %s", sd->path, STATE_FILE, why);
	if (r == -EBADMSG)
		statedir_move_aside(sd, STATE_FILE, moved_to, movedlen);
	return r;
}
