/* Position index of JSON text (see jsonpos.h). One forward scan records a
 * node per key/value (its parent, its path component and its position); a
 * hash of the full path string leads a lookup straight to the node. The
 * scanner still checks bounds everywhere: it must not misbehave on any text. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonpos.h"

#define MAX_DEPTH 512
#define NO_PARENT UINT32_MAX
#define NO_KEY UINT32_MAX

struct node {
	uint64_t hash;    /* FNV-1a of the whole path string */
	uint32_t parent;  /* NO_PARENT for the top-level value */
	uint32_t key_off; /* member: raw key bytes in text; element: its index */
	uint32_t key_len; /* NO_KEY for an array element or the top level */
	uint32_t empty;   /* the path is "" (the top level, or "" keys below it) */
	int line, col;    /* the value */
	int kline, kcol;  /* the key (members only) */
};

struct jsonpos {
	const char *text;
	struct node *v;
	size_t n, cap;
	uint32_t *slot; /* open addressing, node index + 1; 0 = empty */
	size_t nslots;  /* a power of two, at least 2n */
};

struct scan {
	struct jsonpos *ix;
	const char *s;
	size_t len, pos;
	int line, col;
	bool oom;
};

#define FNV_OFFSET 14695981039346656037ULL
#define FNV_PRIME 1099511628211ULL

static uint64_t fnv(uint64_t h, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * FNV_PRIME;
	return h;
}

static void advance(struct scan *sc)
{
	unsigned char c = (unsigned char)sc->s[sc->pos++];
	if (c == '\n') {
		sc->line++;
		sc->col = 1;
	} else if ((c & 0xC0) != 0x80) {
		sc->col++; /* count UTF-8 lead bytes only: characters, not bytes */
	}
}

static bool at(const struct scan *sc, char c)
{
	return sc->pos < sc->len && sc->s[sc->pos] == c;
}

static void skip_ws(struct scan *sc)
{
	while (sc->pos < sc->len && sc->s[sc->pos] && strchr(" \t\r\n", sc->s[sc->pos]))
		advance(sc);
}

/* Skips a string starting at '"'; returns the offset of its raw contents and
 * their length in *n. */
static size_t skip_string(struct scan *sc, size_t *n)
{
	advance(sc); /* opening quote */
	size_t start = sc->pos;
	while (sc->pos < sc->len && sc->s[sc->pos] != '"') {
		if (sc->s[sc->pos] == '\\' && sc->pos + 1 < sc->len)
			advance(sc);
		advance(sc);
	}
	*n = sc->pos - start;
	if (sc->pos < sc->len)
		advance(sc);
	return start;
}

/* Appends a node for a value about to start; key_len NO_KEY for an array
 * element (key_off is then its index). Returns its index or NO_PARENT. */
static uint32_t add_node(struct scan *sc, uint32_t parent, size_t key_off, size_t key_len)
{
	struct jsonpos *ix = sc->ix;
	if (ix->n == ix->cap) {
		size_t ncap = ix->cap ? ix->cap * 2 : 256;
		struct node *nv = ncap < NO_PARENT ? reallocarray(ix->v, ncap, sizeof(*nv)) : NULL;
		if (!nv) {
			sc->oom = true;
			return NO_PARENT;
		}
		ix->v = nv;
		ix->cap = ncap;
	}
	struct node *nd = &ix->v[ix->n];
	const struct node *up = parent == NO_PARENT ? NULL : &ix->v[parent];
	*nd = (struct node){ .parent = parent, .key_off = (uint32_t)key_off,
			     .key_len = key_len == NO_KEY ? NO_KEY : (uint32_t)key_len,
			     .hash = up ? up->hash : FNV_OFFSET, .empty = !up };
	if (up && !up->empty)
		nd->hash = fnv(nd->hash, ".", key_len == NO_KEY ? 0 : 1);
	if (key_len == NO_KEY && up) {
		char b[16];
		int w = snprintf(b, sizeof(b), "[%zu]", key_off);
		nd->hash = fnv(nd->hash, b, (size_t)w);
	} else if (up) {
		nd->hash = fnv(nd->hash, sc->s + key_off, key_len);
		nd->empty = up->empty && key_len == 0;
	}
	return (uint32_t)ix->n++;
}

static void scan_value(struct scan *sc, uint32_t id, int depth);

static void scan_object(struct scan *sc, uint32_t id, int depth)
{
	advance(sc); /* '{' */
	for (;;) {
		skip_ws(sc);
		if (sc->pos >= sc->len || sc->s[sc->pos] == '}' || sc->oom)
			break;
		if (sc->s[sc->pos] != '"')
			return; /* not valid JSON: stop quietly */
		int kline = sc->line, kcol = sc->col;
		size_t klen, koff = skip_string(sc, &klen);
		skip_ws(sc);
		if (at(sc, ':'))
			advance(sc);
		skip_ws(sc);
		uint32_t child = add_node(sc, id, koff, klen);
		if (child == NO_PARENT)
			return;
		sc->ix->v[child].kline = kline;
		sc->ix->v[child].kcol = kcol;
		scan_value(sc, child, depth + 1);
		skip_ws(sc);
		if (!at(sc, ','))
			break;
		advance(sc);
	}
	if (sc->pos < sc->len)
		advance(sc);
}

static void scan_array(struct scan *sc, uint32_t id, int depth)
{
	advance(sc); /* '[' */
	for (size_t i = 0;; i++) {
		skip_ws(sc);
		if (sc->pos >= sc->len || sc->s[sc->pos] == ']' || sc->oom)
			break;
		uint32_t child = add_node(sc, id, i, NO_KEY);
		if (child == NO_PARENT)
			return;
		scan_value(sc, child, depth + 1);
		skip_ws(sc);
		if (!at(sc, ','))
			break;
		advance(sc);
	}
	if (sc->pos < sc->len)
		advance(sc);
}

/* id is the node made for this value; its position is recorded here. */
static void scan_value(struct scan *sc, uint32_t id, int depth)
{
	skip_ws(sc);
	sc->ix->v[id].line = sc->line;
	sc->ix->v[id].col = sc->col;
	if (sc->pos >= sc->len || depth > MAX_DEPTH)
		return;
	size_t n;
	switch (sc->s[sc->pos]) {
	case '{':
		scan_object(sc, id, depth);
		break;
	case '[':
		scan_array(sc, id, depth);
		break;
	case '"':
		skip_string(sc, &n);
		break;
	default: /* number, true, false, null */
		while (sc->pos < sc->len && !strchr(",]} \t\r\n", sc->s[sc->pos]))
			advance(sc);
	}
}

static int build_slots(struct jsonpos *ix)
{
	size_t ns = 16;
	while (ns < 2 * ix->n)
		ns *= 2;
	ix->slot = calloc(ns, sizeof(*ix->slot));
	if (!ix->slot)
		return -1;
	ix->nslots = ns;
	for (size_t i = 0; i < ix->n; i++) {
		size_t k = (size_t)ix->v[i].hash & (ns - 1);
		while (ix->slot[k])
			k = (k + 1) & (ns - 1);
		ix->slot[k] = (uint32_t)i + 1;
	}
	return 0;
}

struct jsonpos *jsonpos_index(const char *text, size_t len)
{
	struct jsonpos *ix = calloc(1, sizeof(*ix));
	if (!ix)
		return NULL;
	ix->text = text;
	struct scan sc = { .ix = ix, .s = text, .len = len < NO_PARENT ? len : NO_PARENT - 1,
			   .line = 1, .col = 1 };
	skip_ws(&sc);
	uint32_t root = add_node(&sc, NO_PARENT, 0, NO_KEY);
	if (root != NO_PARENT)
		scan_value(&sc, root, 0);
	if (sc.oom || build_slots(ix) < 0) {
		jsonpos_free(ix);
		return NULL;
	}
	return ix;
}

/* True when node id's path is exactly q[0..qlen): compared from the end,
 * one component at a time, without building the node's path. */
static bool path_is(const struct jsonpos *ix, uint32_t id, const char *q, size_t qlen)
{
	while (id != NO_PARENT && ix->v[id].parent != NO_PARENT) {
		const struct node *nd = &ix->v[id];
		const char *c = ix->text + nd->key_off;
		size_t cn = nd->key_len;
		char b[16];
		if (nd->key_len == NO_KEY) {
			cn = (size_t)snprintf(b, sizeof(b), "[%u]", nd->key_off);
			c = b;
		}
		if (qlen < cn || memcmp(q + qlen - cn, c, cn) != 0)
			return false;
		qlen -= cn;
		id = nd->parent;
		if (nd->key_len != NO_KEY && !ix->v[id].empty) {
			if (qlen == 0 || q[qlen - 1] != '.')
				return false;
			qlen--;
		}
	}
	return qlen == 0;
}

bool jsonpos_lookup(const struct jsonpos *ix, const char *path, bool want_key, int *line,
		    int *col)
{
	if (!ix || ix->n == 0)
		return false;
	size_t plen = strlen(path);
	uint64_t h = fnv(FNV_OFFSET, path, plen);
	uint32_t best = NO_PARENT; /* the first in document order wins */
	for (size_t k = (size_t)h & (ix->nslots - 1); ix->slot[k]; k = (k + 1) & (ix->nslots - 1)) {
		uint32_t id = ix->slot[k] - 1;
		if (ix->v[id].hash != h || id >= best)
			continue;
		if (want_key && ix->v[id].key_len == NO_KEY)
			continue;
		if (path_is(ix, id, path, plen))
			best = id;
	}
	if (best == NO_PARENT)
		return false;
	*line = want_key ? ix->v[best].kline : ix->v[best].line;
	*col = want_key ? ix->v[best].kcol : ix->v[best].col;
	return true;
}

void jsonpos_free(struct jsonpos *ix)
{
	if (!ix)
		return;
	free(ix->v);
	free(ix->slot);
	free(ix);
}

bool jsonpos_find(const char *text, size_t len, const char *path, bool want_key,
		  int *line, int *col)
{
	struct jsonpos *ix = jsonpos_index(text, len);
	bool found = jsonpos_lookup(ix, path, want_key, line, col);
	jsonpos_free(ix);
	return found;
}
