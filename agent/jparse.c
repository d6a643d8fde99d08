/* Validating JSON readers shared by the policy and config parsers. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jparse.h"
#include "jsonpos.h"
#include "utf8.h"




/* Line and column of path in c->text; the index is built once, on the first
 * lookup, so a file with many errors is scanned once. */
static bool jp_pos(struct jctx *c, const char *path, bool key, int *line, int *col)
{
	if (!c->pos && !c->pos_failed) {
		c->pos = jsonpos_index(c->text, c->len);
		c->pos_failed = !c->pos;
	}
	return jsonpos_lookup(c->pos, path, key, line, col);
}

void jp_done(struct jctx *c)
{
	jsonpos_free(c->pos);
	c->pos = NULL;
}

/* Reports an error at path (the value, or with key=true the key itself). When
 * the path is not in the text (a missing key), the nearest parent is used.
 * Once the diags keep no more errors, the error is only counted. */
void
jp_err(struct jctx *c, const char *path, bool key, const char *fmt, ...)
{
	c->errors++;
	if (diags_full(c->d)) {
		diags_add(c->d, c->file, 0, 0, "%s", ""); /* counted, not kept */
		return;
	}
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	char where[JP_PATHLEN];
	snprintf(where, sizeof(where), "%s", path);
	int line = 0, col = 0;
	while (!jp_pos(c, where, key, &line, &col)) {
		char *cut = strrchr(where, '.');
		char *br = strrchr(where, '[');
		if (br && (!cut || br > cut))
			cut = br;
		if (!cut && where[0] == '\0')
			break;
		if (cut)
			*cut = '\0';
		else
			where[0] = '\0';
		key = false;
	}
	if (path[0])
		diags_add(c->d, c->file, line, col, "%s: %s", path, msg);
	else
		diags_add(c->d, c->file, line, col, "%s", msg);
}

const char *jp_type_name(const json_t *v)
{
	if (!v)
		return "nothing";
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
		return "an integer";
	case JSON_REAL:
		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	default:
		return "null";
	}
}

/* Short text of a value for messages: the string itself, or the JSON. */
const char *jp_value_text(const json_t *v, char *buf, size_t len)
{
	if (json_is_string(v)) {
		snprintf(buf, len, "\"%s\"", json_string_value(v));
		return buf;
	}
	char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
	snprintf(buf, len, "%s", s ? s : "?");
	free(s);
	return buf;
}

bool jp_want(struct jctx *c, const char *path, json_t *v, json_type t, const char *what)
{
	if (v && (json_typeof(v) == t || (t == JSON_TRUE && json_is_boolean(v))))
		return true;
	jp_err(c, path, false, "expected %s, got %s", what, jp_type_name(v));
	return false;
}

/* Calls fn for each element of v when it is an array, or for v itself when it
 * is a single value: "dport": 22 and "dport": [22, 80] both work. An empty
 * array is an error named by what. Returns the number of elements. */
size_t jp_each(struct jctx *c, const char *path, json_t *v, const char *what,
			    void (*fn)(struct jctx *, const char *, json_t *, void *), void *arg)
{
	if (!json_is_array(v)) {
		fn(c, path, v, arg);
		return 1;
	}
	if (json_array_size(v) == 0) {
		jp_err(c, path, false, "empty %s list", what);
		return 0;
	}
	jp_array(c, path, v, "an array", fn, arg);
	return json_array_size(v);
}

void jp_array(struct jctx *c, const char *path, json_t *v, const char *what,
	      void (*fn)(struct jctx *, const char *, json_t *, void *), void *arg)
{
	if (!jp_want(c, path, v, JSON_ARRAY, what))
		return;
	size_t i;
	json_t *item;
	json_array_foreach(v, i, item) {
		char ipath[JP_PATHLEN];
		snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
		fn(c, ipath, item, arg);
	}
}

/* Checks that every key of obj is known, then parses the known ones. */
void jp_object(struct jctx *c, const char *path, json_t *obj,
			 const struct jp_key *defs, size_t ndefs, void *target)
{
	if (!jp_want(c, path, obj, JSON_OBJECT, "an object"))
		return;
	const char *key;
	json_t *val;
	json_object_foreach(obj, key, val) {
		char kpath[JP_PATHLEN];
		snprintf(kpath, sizeof(kpath), "%s%s%s", path, path[0] ? "." : "", key);
		size_t i;
		for (i = 0; i < ndefs; i++)
			if (strcmp(defs[i].name, key) == 0)
				break;
		if (i < ndefs) {
			defs[i].parse(c, kpath, val, target);
			continue;
		}
		char expected[512] = "";
		size_t off = 0;
		for (size_t k = 0; k < ndefs && off < sizeof(expected); k++)
			off += (size_t)snprintf(expected + off, sizeof(expected) - off, "%s%s",
						k ? ", " : "", defs[k].name);
		jp_err(c, kpath, true, "unknown key \"%s\" (expected one of: %s)", key, expected);
	}
}

/* ---- scalar helpers --------------------------------------------------- */

/* Printable ASCII without '"' or '\\'. */
static bool jp_printable(const char *s)
{
	for (; *s; s++)
		if (*s < 0x20 || *s > 0x7e || *s == '"' || *s == '\\')
			return false;
	return true;
}

/* A short text that ends up in the kernel (comment, log prefix). */
void jp_text(struct jctx *c, const char *path, json_t *v, char *out, size_t max)
{
	if (!jp_want(c, path, v, JSON_STRING, "a string"))
		return;
	const char *s = json_string_value(v);
	if (strlen(s) >= max)
		jp_err(c, path, false, "\"%.*s...\" is too long (%zu characters, at most %zu)", utf8_prefix(s, 40), s,
		     strlen(s), max - 1);
	else if (!jp_printable(s))
		jp_err(c, path, false, "\"%s\" may hold only printable ASCII without '\"' or '\\'", s);
	else
		memcpy(out, s, strlen(s) + 1);
}

void jp_bool(struct jctx *c, const char *path, json_t *v, bool *out)
{
	if (jp_want(c, path, v, JSON_TRUE, "true or false"))
		*out = json_is_true(v);
}

void jp_prefix(struct jctx *c, const char *path, json_t *v, struct cvz_prefix *out)
{
	if (!jp_want(c, path, v, JSON_STRING, "an address or CIDR string"))
		return;
	const char *why = NULL;
	char buf[128];
	if (cvz_prefix_parse(json_string_value(v), out, &why, buf, sizeof(buf)) < 0)
		jp_err(c, path, false, "bad address \"%s\": %s", json_string_value(v), why);
}

struct prefix_list {
	struct cvz_prefix *v;
	size_t n;
};

static void prefix_item(struct jctx *c, const char *path, json_t *v, void *arg)
{
	struct prefix_list *l = arg;
	struct cvz_prefix p;
	size_t before = c->errors;
	memset(&p, 0, sizeof(p));
	jp_prefix(c, path, v, &p);
	if (c->errors != before)
		return;
	jp_append(c, path, (void **)&l->v, &l->n, sizeof(p), &p);
}

int jp_append(struct jctx *c, const char *path, void **arr, size_t *n, size_t size,
	      const void *item)
{
	char *nv = reallocarray(*arr, *n + 1, size);
	if (!nv) {
		jp_err(c, path, false, "out of memory");
		return -ENOMEM;
	}
	memcpy(nv + *n * size, item, size);
	*arr = nv;
	(*n)++;
	return 0;
}

void jp_prefix_list(struct jctx *c, const char *path, json_t *v,
			      struct cvz_prefix **out, size_t *n)
{
	struct prefix_list l = { *out, *n };
	jp_each(c, path, v, "address", prefix_item, &l);
	*out = l.v;
	*n = l.n;
}


char *jp_where(struct jctx *c, const char *path)
{
	int line = 0, col = 0;
	char *s = NULL;
	jp_pos(c, path, false, &line, &col);
	if (asprintf(&s, "%s:%d:%d (%s)", c->file, line, col, path) < 0)
		return NULL;
	return s;
}

int jp_read_file(const char *file, const char *what, size_t max, char **buf, size_t *len,
		 struct diags *d)
{
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		int err = errno;
		diags_add(d, file, 0, 0, "cannot read %s: %s", what, strerror(err));
		if (fd >= 0)
			close(fd);
		return -err;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
		diags_add(d, file, 0, 0, "cannot read %s: %s", what,
			  S_ISREG(st.st_mode) ? "file too large" : "not a regular file");
		close(fd);
		return S_ISREG(st.st_mode) ? -EFBIG : -EINVAL;
	}
	char *b = malloc((size_t)st.st_size + 1);
	size_t got = 0;
	while (b && got < (size_t)st.st_size) {
		ssize_t n = read(fd, b + got, (size_t)st.st_size - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (!b || got != (size_t)st.st_size) {
		int err = b ? -EIO : -ENOMEM;
		diags_add(d, file, 0, 0, "cannot read %s: %s", what, b ? "short read" : "out of memory");
		free(b);
		return err;
	}
	b[got] = '\0';
	*buf = b;
	*len = got;
	return 0;
}

json_t *jp_loadb(const char *file, const char *text, size_t len, struct diags *d)
{
	json_error_t jerr;
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		diags_add(d, file, jerr.line > 0 ? jerr.line : 1, jerr.column > 0 ? jerr.column : 1,
			  "invalid JSON: %s", jerr.text);
	return root;
}
