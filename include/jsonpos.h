/* Finds where a value sits in JSON text. jansson reports line and column for
 * syntax errors only; validation errors need the position of the offending
 * key or value, so we re-scan the (already valid) text on demand. Errors are
 * rare, so a linear scan per error costs nothing in the common path. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

/* path: object keys joined by '.', array indexes as "[N]", e.g.
 * "chains.input.rules[3].dport[1]"; "" is the top-level value. With want_key
 * the position of the member's key is returned instead of its value (for
 * "unknown key" errors). Line and column are 1-based; the column counts
 * characters, not bytes. Returns false when the path is not in the text
 * (out-parameters untouched). */
bool jsonpos_find(const char *text, size_t len, const char *path, bool want_key,
		  int *line, int *col);
