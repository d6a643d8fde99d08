/* Position lookup in JSON text (see jsonpos.h). The text has been accepted by
 * jansson already, but the scanner still checks bounds everywhere: it must not
 * misbehave on anything. */
#include <stdio.h>
#include <string.h>

#include "jsonpos.h"

#define PATH_MAX_LEN 512
#define MAX_DEPTH 512

struct scan {
	const char *s;
	size_t len, pos;
	int line, col;
	const char *want;
	bool want_key;
	char path[PATH_MAX_LEN];
	bool found;
	int fline, fcol;
};

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

static void skip_ws(struct scan *sc)
{
	while (sc->pos < sc->len && strchr(" \t\r\n", sc->s[sc->pos]) && sc->s[sc->pos])
		advance(sc);
}

/* Records the current position when the current path is the one wanted. */
static void mark(struct scan *sc, bool is_key)
{
	if (!sc->found && is_key == sc->want_key && strcmp(sc->path, sc->want) == 0) {
		sc->found = true;
		sc->fline = sc->line;
		sc->fcol = sc->col;
	}
}

/* Skips a string starting at '"'; writes its raw contents to out if given. */
static void skip_string(struct scan *sc, char *out, size_t outlen)
{
	size_t o = 0;
	advance(sc); /* opening quote */
	while (sc->pos < sc->len && sc->s[sc->pos] != '"') {
		if (sc->s[sc->pos] == '\\' && sc->pos + 1 < sc->len) {
			if (out && o + 1 < outlen)
				out[o++] = sc->s[sc->pos];
			advance(sc);
		}
		if (out && o + 1 < outlen)
			out[o++] = sc->s[sc->pos];
		advance(sc);
	}
	if (sc->pos < sc->len)
		advance(sc);
	if (out)
		out[o] = '\0';
}

static void scan_value(struct scan *sc, int depth);

/* Appends a path component, returns the old length to restore later. */
static size_t path_push(struct scan *sc, const char *key, size_t idx)
{
	size_t old = strlen(sc->path);
	if (key)
		snprintf(sc->path + old, sizeof(sc->path) - old, "%s%s", old ? "." : "", key);
	else
		snprintf(sc->path + old, sizeof(sc->path) - old, "[%zu]", idx);
	return old;
}

static void scan_object(struct scan *sc, int depth)
{
	advance(sc); /* '{' */
	for (;;) {
		skip_ws(sc);
		if (sc->pos >= sc->len || sc->s[sc->pos] == '}')
			break;
		if (sc->s[sc->pos] != '"')
			return; /* not valid JSON: stop quietly */
		char key[256];
		int kline = sc->line, kcol = sc->col;
		skip_string(sc, key, sizeof(key));
		size_t old = path_push(sc, key, 0);
		int l = sc->line, c = sc->col;
		sc->line = kline;
		sc->col = kcol;
		mark(sc, true);
		sc->line = l;
		sc->col = c;
		skip_ws(sc);
		if (sc->pos < sc->len && sc->s[sc->pos] == ':')
			advance(sc);
		scan_value(sc, depth + 1);
		sc->path[old] = '\0';
		skip_ws(sc);
		if (sc->pos < sc->len && sc->s[sc->pos] == ',')
			advance(sc);
		else
			break;
	}
	if (sc->pos < sc->len)
		advance(sc);
}

static void scan_array(struct scan *sc, int depth)
{
	advance(sc); /* '[' */
	for (size_t i = 0;; i++) {
		skip_ws(sc);
		if (sc->pos >= sc->len || sc->s[sc->pos] == ']')
			break;
		size_t old = path_push(sc, NULL, i);
		scan_value(sc, depth + 1);
		sc->path[old] = '\0';
		skip_ws(sc);
		if (sc->pos < sc->len && sc->s[sc->pos] == ',')
			advance(sc);
		else
			break;
	}
	if (sc->pos < sc->len)
		advance(sc);
}

static void scan_value(struct scan *sc, int depth)
{
	skip_ws(sc);
	if (sc->pos >= sc->len || depth > MAX_DEPTH)
		return;
	mark(sc, false);
	switch (sc->s[sc->pos]) {
	case '{':
		scan_object(sc, depth);
		break;
	case '[':
		scan_array(sc, depth);
		break;
	case '"':
		skip_string(sc, NULL, 0);
		break;
	default: /* number, true, false, null */
		while (sc->pos < sc->len && !strchr(",]} \t\r\n", sc->s[sc->pos]))
			advance(sc);
	}
}

bool jsonpos_find(const char *text, size_t len, const char *path, bool want_key,
		  int *line, int *col)
{
	struct scan sc = {
		.s = text, .len = len, .line = 1, .col = 1, .want = path, .want_key = want_key,
	};
	scan_value(&sc, 0);
	if (!sc.found)
		return false;
	*line = sc.fline;
	*col = sc.fcol;
	return true;
}
