/* Collected error messages, printed as `FILE:LINE:COL: error: message`.
 * Validation reports every problem it finds, not only the first. */
#pragma once
#include <stddef.h>
#include <stdio.h>

struct diag {
	char *file;
	int line; /* 0 = no line known */
	int col;  /* 0 = no column known */
	char *msg;
};

struct diags {
	struct diag *v;
	size_t n, cap;
};

/* Appends one error. Never fails visibly: on ENOMEM the error is counted with
 * a fixed message so validation still fails. */
void diags_add(struct diags *d, const char *file, int line, int col,
	       const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* One error as "FILE:LINE:COL: error: msg" (LINE and COL left out when 0),
 * without a newline. Returns buf. */
char *diag_format(const struct diag *e, char *buf, size_t len);
/* Prints every error, one per line, in the order found. */
void diags_print(const struct diags *d, FILE *f);
void diags_free(struct diags *d);
