/* Finds where a value sits in JSON text. jansson reports line and column for
 * syntax errors only; validation errors need the position of the offending
 * key or value. The text is scanned once into an index of every key and
 * value (jsonpos_index), and each lookup is then a hash probe: a file with
 * tens of thousands of bad entries costs one scan, not one scan per error. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

struct jsonpos;

/* Scans text once and indexes the position of every key and value. The text
 * need not be valid JSON (the scanner stops quietly where it stops making
 * sense). Returns the index (free with jsonpos_free) or NULL on ENOMEM. The
 * index does not keep text. Memory: about 40 bytes per JSON value. */
struct jsonpos *jsonpos_index(const char *text, size_t len);

/* path: object keys joined by '.', array indexes as "[N]", e.g.
 * "chains.input.rules[3].dport[1]"; "" is the top-level value. With want_key
 * the position of the member's key is returned instead of its value (for
 * "unknown key" errors). Line and column are 1-based; the column counts
 * characters, not bytes. Returns false when the path is not in the text
 * (out-parameters untouched). */
bool jsonpos_lookup(const struct jsonpos *ix, const char *path, bool want_key, int *line,
		    int *col);

void jsonpos_free(struct jsonpos *ix);

/* One-shot form: index, look up, free. False also on ENOMEM. */
bool jsonpos_find(const char *text, size_t len, const char *path, bool want_key,
		  int *line, int *col);
