/* Validating JSON readers for policy and config files: every error is
 * reported with the position of the offending key or value, and every key is
 * defined once in a table of struct jp_key (the "expected one of" list in
 * unknown-key errors comes from the same table). */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "addr.h"
#include "diag.h"

#define JP_PATHLEN 256

struct jctx {
	const char *file; /* for messages */
	const char *text; /* the JSON text, to find positions in */
	size_t len;
	struct diags *d;
	size_t errors;    /* errors reported so far */
	void *owner;      /* the object being filled in */
	struct jsonpos *pos; /* built on the first position asked for; jp_done frees */
	bool pos_failed;     /* ENOMEM building it: positions are left out */
};

/* Frees what the context built (the position index); the fields the caller
 * set are left alone. */
void jp_done(struct jctx *c);

typedef void (*jp_key_fn)(struct jctx *c, const char *path, json_t *v, void *target);

struct jp_key {
	const char *name;
	jp_key_fn parse;
};

/* Reports an error at path ("chains.input.rules[3].dport"): at the value, or
 * with key=true at the key itself. A path not in the text (a missing key) is
 * reported at its nearest parent. The message is prefixed with the path. */
void jp_err(struct jctx *c, const char *path, bool key, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* "an integer", "a string", ... for messages. */
const char *jp_type_name(const json_t *v);
/* The value as short text for messages: "\"str\"" or compact JSON. */
const char *jp_value_text(const json_t *v, char *buf, size_t len);
/* True when v has type t (JSON_TRUE means any boolean); else reports
 * "expected WHAT, got TYPE". */
bool jp_want(struct jctx *c, const char *path, json_t *v, json_type t, const char *what);
/* Calls fn for each element of an array, or once for a single value; an
 * empty array is reported as "empty WHAT list". Returns the count. */
size_t jp_each(struct jctx *c, const char *path, json_t *v, const char *what,
	       void (*fn)(struct jctx *, const char *, json_t *, void *), void *arg);
/* Calls fn for each element of an array (empty is fine); anything but an
 * array is reported as "expected WHAT, got TYPE". */
void jp_array(struct jctx *c, const char *path, json_t *v, const char *what,
	      void (*fn)(struct jctx *, const char *, json_t *, void *), void *arg);
/* Checks every key of obj against keys[] and calls the parser of each. */
void jp_object(struct jctx *c, const char *path, json_t *obj, const struct jp_key *keys,
	       size_t nkeys, void *target);

/* A short string that ends up in the kernel or a log: at most max-1 chars,
 * printable ASCII without quotes or backslashes. Copied into out (max bytes) only when valid. */
void jp_text(struct jctx *c, const char *path, json_t *v, char *out, size_t max);
void jp_bool(struct jctx *c, const char *path, json_t *v, bool *out);
void jp_prefix(struct jctx *c, const char *path, json_t *v, struct cvz_prefix *out);
/* One prefix or a list of them, appended to *out (realloc'd). */
void jp_prefix_list(struct jctx *c, const char *path, json_t *v, struct cvz_prefix **out,
		    size_t *n);
/* Appends one item of size bytes to the array *arr of *n items (realloc'd);
 * reports "out of memory" at path on failure. Returns 0 or -ENOMEM. */
int jp_append(struct jctx *c, const char *path, void **arr, size_t *n, size_t size,
	      const void *item);
/* "FILE:LINE:COL (path)" for rule origins; NULL on ENOMEM. */
char *jp_where(struct jctx *c, const char *path);

/* Parses JSON text (duplicate keys are an error); a syntax error is added
 * to d as "FILE:LINE:COL: error: invalid JSON: ...". Returns the value (the
 * caller json_decref()s it) or NULL. */
json_t *jp_loadb(const char *file, const char *text, size_t len, struct diags *d);

/* Reads a whole regular file of at most max bytes, NUL-terminated. Returns
 * 0 and *buf (free it) and *len, or -errno with the reason added to d as
 * "cannot read WHAT: ..." */
int jp_read_file(const char *file, const char *what, size_t max, char **buf, size_t *len,
		 struct diags *d);
