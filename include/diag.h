/* Collected error messages, printed as `FILE:LINE:COL: error: message`.
 * Validation reports every problem it finds, not only the first. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct diag {
	char *file;
	int line; /* 0 = no line known */
	int col;  /* 0 = no column known */
	char *msg;
};

/* At most this many errors are kept and printed; the rest are only counted
 * ("... and N more errors"). A generated list with 80,000 bad lines must not
 * cost 80,000 formatted messages, nor flood the journal in one entry. */
#define DIAGS_SHOWN_MAX 100

struct diags {
	struct diag *v;
	size_t n, cap; /* kept errors: n <= DIAGS_SHOWN_MAX */
	size_t total;  /* every error added, kept or not */
};

/* Appends one error, or only counts it once DIAGS_SHOWN_MAX are kept. Never
 * fails visibly: on ENOMEM the error is counted with a fixed message so
 * validation still fails. */
void diags_add(struct diags *d, const char *file, int line, int col,
	       const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* True once further errors are only counted: callers may skip the work of
 * locating them. */
bool diags_full(const struct diags *d);
/* How many errors were counted but not kept. */
size_t diags_more(const struct diags *d);
/* One error as "FILE:LINE:COL: error: msg" (LINE and COL left out when 0),
 * without a newline. Returns buf. */
char *diag_format(const struct diag *e, char *buf, size_t len);
/* Prints the kept errors, one per line, in the order found, then
 * "error: ... and N more errors (M in all)" when some were only counted. */
void diags_print(const struct diags *d, FILE *f);
void diags_free(struct diags *d);
