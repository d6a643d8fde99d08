/* Error collection for check/apply. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"

static char oom_msg[] = "out of memory while reporting errors";

void diags_add(struct diags *d, const char *file, int line, int col, const char *fmt, ...)
{
	d->total++;
	if (d->n >= DIAGS_SHOWN_MAX)
		return;
	if (d->n == d->cap) {
		size_t ncap = d->cap ? d->cap * 2 : 16;
		struct diag *v = reallocarray(d->v, ncap, sizeof(*v));
		if (!v)
			return; /* earlier errors already make validation fail */
		d->v = v;
		d->cap = ncap;
	}
	struct diag *e = &d->v[d->n++];
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&e->msg, fmt, ap) < 0)
		e->msg = NULL;
	va_end(ap);
	e->file = file ? strdup(file) : NULL;
	e->line = line;
	e->col = col;
}

char *diag_format(const struct diag *e, char *buf, size_t len)
{
	const char *file = e->file ? e->file : "<input>";
	const char *msg = e->msg ? e->msg : oom_msg;
	if (e->line > 0 && e->col > 0)
		snprintf(buf, len, "%s:%d:%d: error: %s", file, e->line, e->col, msg);
	else if (e->line > 0)
		snprintf(buf, len, "%s:%d: error: %s", file, e->line, msg);
	else
		snprintf(buf, len, "%s: error: %s", file, msg);
	return buf;
}

bool diags_full(const struct diags *d)
{
	return d->n >= DIAGS_SHOWN_MAX;
}

size_t diags_more(const struct diags *d)
{
	return d->total > d->n ? d->total - d->n : 0;
}

void diags_print(const struct diags *d, FILE *f)
{
	char buf[2048];
	for (size_t i = 0; i < d->n; i++)
		fprintf(f, "%s\n", diag_format(&d->v[i], buf, sizeof(buf)));
	if (diags_more(d))
		fprintf(f, "%s: error: ... and %zu more errors (%zu in all)\n",
			d->n && d->v[d->n - 1].file ? d->v[d->n - 1].file : "<input>", diags_more(d),
			d->total);
}

void diags_free(struct diags *d)
{
	for (size_t i = 0; i < d->n; i++) {
		free(d->v[i].file);
		free(d->v[i].msg);
	}
	free(d->v);
	memset(d, 0, sizeof(*d));
}
