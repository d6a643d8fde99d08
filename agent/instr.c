/* Control API replies: parse, validate, check each target (see instr.h).
 *
 * One pass over the jansson tree: every known key is looked up by name
 * (json_object_get, O(1)), so unknown keys cost nothing and a reply is
 * linear in its size. The first error refuses the reply whole. */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "blocklist.h"
#include "cleanup.h"
#include "instr.h"
#include "cvz_limits.h"
#include "utf8.h"

/* Outside text quoted in a message is cut to this many characters. */
#define QUOTE_MAX 60

struct pctx {
	const struct instr_limits *lim;
	char *err;
	size_t errlen;
	size_t targets; /* in the reply so far, for CVZ_REPLY_TARGETS_MAX */
};

/* Where a value is, as a chain up to the top: written out as text
 * ("instructions[3].action") only when there is an error to report, since
 * formatting it for every key of 100k instructions would double the time. */
struct jpath {
	const struct jpath *up; /* NULL: a key of the top-level object */
	const char *key;        /* NULL: element index of an array */
	size_t index;
};

static size_t path_format(const struct jpath *at, char *buf, size_t len)
{
	size_t n = at->up ? path_format(at->up, buf, len) : 0;
	int k;
	if (at->key)
		k = snprintf(buf + n, len - n, "%s%s", n ? "." : "", at->key);
	else
		k = snprintf(buf + n, len - n, "[%zu]", at->index);
	return k < 0 || (size_t)k >= len - n ? len - 1 : n + (size_t)k;
}

/* Writes "path: message" into err and refuses the reply. */
static int __attribute__((format(printf, 3, 4)))
refuse(struct pctx *c, const struct jpath *at, const char *fmt, ...)
{
	char msg[256], path[128] = "top level";
	va_list ap;
	va_start(ap, fmt);
	utf8_vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (at)
		path_format(at, path, sizeof(path));
	if (c->errlen)
		utf8_snprintf(c->err, c->errlen, "%s: %s", path, msg);
	return -EBADMSG;
}

/* Outside text for a message: sanitized, capped, in double quotes. */
static const char *quote(const char *s, char *buf, size_t len)
{
	char clean[QUOTE_MAX + 1];
	audit_sanitize(s, clean, sizeof(clean));
	snprintf(buf, len, "\"%s\"", clean);
	return buf;
}

/* JSON's own names: the server's authors think in these. */
static const char *type_name(const json_t *v)
{
	if (!v)
		return "nothing";
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "object";
	case JSON_ARRAY:
		return "array";
	case JSON_STRING:
		return "string";
	case JSON_INTEGER:
	case JSON_REAL:
		return "number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "boolean";
	default:
		return "null";
	}
}

static int want(struct pctx *c, const struct jpath *at, const json_t *v, json_type t,
		const char *what)
{
	if (json_typeof(v) == t || (t == JSON_TRUE && json_is_boolean(v)))
		return 0;
	return refuse(c, at, "expected %s, got %s", what, type_name(v));
}

/* Cursor and id: they are echoed back in URLs and reports, so nothing but
 * printable ASCII without spaces, 1..max-1 bytes. */
static int check_token(struct pctx *c, const struct jpath *at, const json_t *v, size_t max)
{
	int r = want(c, at, v, JSON_STRING, "a string");
	if (r < 0)
		return r;
	const char *s = json_string_value(v);
	size_t n = json_string_length(v);
	char q[QUOTE_MAX + 8];
	if (n == 0)
		return refuse(c, at, "empty string");
	if (n >= max)
		return refuse(c, at, "%s is longer than %zu bytes", quote(s, q, sizeof(q)),
			      max - 1);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return refuse(c, at,
				      "%s has byte 0x%02x at offset %zu (only 0x21-0x7e allowed)",
				      quote(s, q, sizeof(q)), (unsigned char)s[i], i);
	return 0;
}

/* An optional text field: stored sanitized and capped, never raw. */
static int parse_text(struct pctx *c, const struct jpath *at, const json_t *v, char **out)
{
	int r = want(c, at, v, JSON_STRING, "a string");
	if (r < 0)
		return r;
	char clean[INSTR_TEXT_MAX];
	audit_sanitize(json_string_value(v), clean, sizeof(clean));
	char *d = strdup(clean);
	if (!d)
		return -ENOMEM;
	free(*out);
	*out = d;
	return 0;
}

/* ---- targets ---------------------------------------------------------- */

/* Link-local is refused for the control API only (bl_refusal() does not):
 * blocking it cuts DHCP, NDP and the cloud metadata service at 169.254.169.254. */
static const struct cvz_prefix link_local[] = {
	{ .family = AF_INET, .len = 16, .addr = { 169, 254 } },
	{ .family = AF_INET6, .len = 10, .addr = { 0xfe, 0x80 } },
};

/* Writes "TEXT: msg" into why; for failures before there is a prefix. */
static int reject_text(const char *s, const char *msg, char *why, size_t whylen)
{
	char q[QUOTE_MAX + 8];
	utf8_snprintf(why, whylen, "%s: %s", quote(s, q, sizeof(q)), msg);
	return -EINVAL;
}

/* Why p may not be blocked by the control API, written to buf, or NULL. */
static const char *target_refusal(const struct cvz_prefix *p, const struct instr_limits *lim,
				  char *buf, size_t len)
{
	char a[CVZ_PREFIX_STRLEN], b[CVZ_PREFIX_STRLEN];
	const char *r = bl_refusal(p, lim->safelist, lim->n_safelist, buf, len);
	if (r) {
		/* bl_refusal's /0 message is static and does not name the target */
		if (r != buf)
			snprintf(buf, len, "%s: %s", cvz_prefix_format(p, a, sizeof(a)), r);
		return buf;
	}
	for (size_t i = 0; i < ELEMENTSOF(link_local); i++)
		if (cvz_prefix_overlaps(&link_local[i], p)) {
			snprintf(buf, len,
				 "%s covers link-local %s, which the control API may not block",
				 cvz_prefix_format(p, a, sizeof(a)),
				 cvz_prefix_format(&link_local[i], b, sizeof(b)));
			return buf;
		}
	bool v4 = p->family == AF_INET;
	unsigned min = v4 ? lim->min_prefix_v4 : lim->min_prefix_v6;
	if (p->len < min) {
		snprintf(buf, len, "%s is shorter than min_prefix_v%c %u",
			 cvz_prefix_format(p, a, sizeof(a)), v4 ? '4' : '6', min);
		return buf;
	}
	if (bl_guard_refusal(p, lim->guards, lim->n_guards, buf, len))
		return buf;
	return NULL;
}

int instr_check_target(const char *s, const struct instr_limits *lim, struct cvz_prefix *p,
		       char *why, size_t whylen)
{
	char buf[INSTR_WHY_MAX];
	const char *msg = NULL;
	struct cvz_prefix q;
	if (!s)
		s = "";
	if (strnlen(s, INSTR_TEXT_MAX) >= INSTR_TEXT_MAX) {
		snprintf(buf, sizeof(buf), "longer than %d characters", INSTR_TEXT_MAX - 1);
		return reject_text(s, buf, why, whylen);
	}
	if (cvz_prefix_parse(s, &q, &msg, buf, sizeof(buf)) < 0)
		return reject_text(s, msg, why, whylen);
	if (target_refusal(&q, lim, buf, sizeof(buf))) {
		utf8_snprintf(why, whylen, "%s", buf);
		return -EINVAL;
	}
	if (whylen)
		why[0] = '\0';
	*p = q;
	return 0;
}

/* The why of every accepted target: shared, never freed. */
static const char accepted[] = "";

/* Checks s into *t. An accepted target's text is copied to *pool (room
 * reserved by the caller, advanced here); a rejected one's text and why are
 * allocated on their own: they are rare and of any length. */
static int target_fill(struct instr_target *t, const char *s, size_t len, char **pool,
		       const struct instr_limits *lim)
{
	char text[INSTR_TEXT_MAX], why[INSTR_WHY_MAX];
	if (instr_check_target(s, lim, &t->prefix, why, sizeof(why)) == 0) {
		/* it parsed as an address: only hex digits, '.', ':' and '/',
		   which sanitizing would leave as they are */
		memcpy(*pool, s, len + 1);
		t->text = *pool;
		t->why = accepted;
		*pool += len + 1;
		return 0;
	}
	audit_sanitize(s, text, sizeof(text));
	t->text = strdup(text);
	t->why = strdup(why);
	return t->text && t->why ? 0 : -ENOMEM;
}

static void targets_free(struct instr *in)
{
	for (size_t i = 0; i < in->n_targets; i++)
		if (in->targets[i].why != accepted) {
			free((char *)in->targets[i].text);
			free((char *)in->targets[i].why);
		}
	free(in->targets);
	in->targets = NULL;
	in->n_targets = 0;
}

/* The targets of one instruction, one by one: a bad one is kept with its
 * reason. One allocation holds the array and the text of every accepted
 * target after it: a 100k-target snapshot is then two allocations, not
 * 100k, which halves the time it takes. */
static int fill_targets(struct pctx *c, const json_t *v, struct instr *in)
{
	size_t n = json_array_size(v), bytes = 0;
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		size_t len = json_string_length(json_array_get(v, i));
		if (len < INSTR_TEXT_MAX)
			bytes += len + 1; /* longer ones are rejected */
	}
	if (n > (SIZE_MAX - bytes) / sizeof(*in->targets))
		return -ENOMEM;
	in->targets = malloc(n * sizeof(*in->targets) + bytes);
	if (!in->targets)
		return -ENOMEM;
	char *pool = (char *)(in->targets + n);
	/* An unblock is checked for syntax and never-blockable ranges only: an
	   entry blocked before its prefix was safelisted, or before a minimum
	   was raised, must still be removable. */
	const struct instr_limits unblock_lim = { 0 };
	const struct instr_limits *lim = in->action == INSTR_UNBLOCK ? &unblock_lim : c->lim;
	for (size_t i = 0; i < n; i++) {
		const json_t *s = json_array_get(v, i);
		in->n_targets = i + 1; /* so a failure frees what is filled so far */
		memset(&in->targets[i], 0, sizeof(in->targets[i]));
		int r = target_fill(&in->targets[i], json_string_value(s), json_string_length(s),
				    &pool, lim);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- one instruction -------------------------------------------------- */

static const char *const action_names[] = {
	[INSTR_BLOCK] = "block",
	[INSTR_UNBLOCK] = "unblock",
	[INSTR_LOCKDOWN] = "lockdown",
};

#define ALL_ACTIONS ((1u << INSTR_BLOCK) | (1u << INSTR_UNBLOCK) | (1u << INSTR_LOCKDOWN))

static int parse_action(struct pctx *c, const struct jpath *at, const json_t *v, struct instr *in)
{
	if (!v)
		return refuse(c, at, "missing required key");
	int r = want(c, at, v, JSON_STRING, "a string");
	if (r < 0)
		return r;
	for (size_t i = 0; i < ELEMENTSOF(action_names); i++)
		if (strcmp(json_string_value(v), action_names[i]) == 0) {
			in->action = (enum instr_action)i;
			return 0;
		}
	char q[QUOTE_MAX + 8];
	return refuse(c, at, "unknown action %s", quote(json_string_value(v), q, sizeof(q)));
}

static int key_id(struct pctx *c, const struct jpath *at, const json_t *v, void *target)
{
	struct instr *in = target;
	int r = check_token(c, at, v, sizeof(in->id));
	if (r < 0)
		return r;
	memcpy(in->id, json_string_value(v), json_string_length(v) + 1);
	return 0;
}

/* On a lockdown targets mean nothing: their types are checked, nothing is
 * kept. */
static int key_targets(struct pctx *c, const struct jpath *at, const json_t *v, void *target)
{
	struct instr *in = target;
	int r = want(c, at, v, JSON_ARRAY, "an array of strings");
	if (r < 0)
		return r;
	size_t n = json_array_size(v);
	bool keep = in->action != INSTR_LOCKDOWN;
	if (n == 0 && keep)
		return refuse(c, at, "empty array (%s needs at least one target)",
			      action_names[in->action]);
	if (n > CVZ_REPLY_TARGETS_MAX - c->targets)
		return refuse(c, at, "more than %u targets in one reply (the limit)",
			      CVZ_REPLY_TARGETS_MAX);
	c->targets += n;
	for (size_t i = 0; i < n; i++)
		if (!json_is_string(json_array_get(v, i))) {
			struct jpath ip = { at, NULL, i };
			return refuse(c, &ip, "expected a string, got %s",
				      type_name(json_array_get(v, i)));
		}
	return keep ? fill_targets(c, v, in) : 0;
}

static int key_ttl(struct pctx *c, const struct jpath *at, const json_t *v, void *target)
{
	struct instr *in = target;
	const char *what = "expected a non-negative integer";
	if (json_is_real(v)) {
		/* 3600.0 is a real to jansson: show it as one, not as "3600" */
		char num[40];
		snprintf(num, sizeof(num), "%.17g", json_real_value(v));
		size_t l = strlen(num);
		if (!strpbrk(num, ".eEn"))
			snprintf(num + l, sizeof(num) - l, ".0");
		return refuse(c, at, "%s, got %s", what, num);
	}
	if (!json_is_integer(v))
		return refuse(c, at, "%s, got %s", what, type_name(v));
	json_int_t t = json_integer_value(v);
	if (t < 0)
		return refuse(c, at, "%s, got %" JSON_INTEGER_FORMAT, what, t);
	if ((uint64_t)t > INSTR_TTL_MAX)
		return refuse(c, at, "%" JSON_INTEGER_FORMAT " is more than 10 years (%llu)", t,
			      (unsigned long long)INSTR_TTL_MAX);
	in->ttl = (uint64_t)t;
	return 0;
}

static int key_enabled(struct pctx *c, const struct jpath *at, const json_t *v, void *target)
{
	struct instr *in = target;
	int r = want(c, at, v, JSON_TRUE, "a boolean");
	if (r < 0)
		return r;
	in->enabled = json_is_true(v);
	return 0;
}

static int key_reason(struct pctx *c, const struct jpath *at, const json_t *v, void *target)
{
	return parse_text(c, at, v, &((struct instr *)target)->reason);
}

static int key_incident(struct pctx *c, const struct jpath *at, const json_t *v, void *target)
{
	return parse_text(c, at, v, &((struct instr *)target)->incident);
}

static int key_severity(struct pctx *c, const struct jpath *at, const json_t *v, void *target)
{
	return parse_text(c, at, v, &((struct instr *)target)->severity);
}

/* A key we know: how to read it, and for which actions (bit per enum
 * instr_action) it must be present. Keys not in a table are ignored, so a
 * newer server may add fields without breaking older agents. */
struct key {
	const char *name;
	int (*parse)(struct pctx *c, const struct jpath *at, const json_t *v, void *target);
	unsigned required;
};

static const struct key instr_keys[] = {
	{ "id", key_id, ALL_ACTIONS },
	{ "targets", key_targets, (1u << INSTR_BLOCK) | (1u << INSTR_UNBLOCK) },
	{ "ttl", key_ttl, 0 },
	{ "enabled", key_enabled, 1u << INSTR_LOCKDOWN },
	{ "reason", key_reason, 0 },
	{ "incident_id", key_incident, 0 },
	{ "severity", key_severity, 0 },
};

/* Reads the keys of obj listed in keys[]; need selects which required bits
 * apply. */
static int read_keys(struct pctx *c, const struct jpath *at, const json_t *obj,
		     const struct key *keys, size_t n, unsigned need, void *target)
{
	for (size_t i = 0; i < n; i++) {
		struct jpath kp = { at, keys[i].name, 0 };
		const json_t *v = json_object_get(obj, keys[i].name);
		int r;
		if (v)
			r = keys[i].parse(c, &kp, v, target);
		else if (keys[i].required == ALL_ACTIONS)
			r = refuse(c, &kp, "missing required key");
		else if (keys[i].required & need)
			r = refuse(c, &kp, "missing (required for %s)",
				   action_names[__builtin_ctz(need)]);
		else
			r = 0;
		if (r < 0)
			return r;
	}
	return 0;
}

static int parse_instr(struct pctx *c, const struct jpath *at, const json_t *obj, struct instr *in)
{
	int r = want(c, at, obj, JSON_OBJECT, "an object");
	if (r < 0)
		return r;
	struct jpath ap = { at, "action", 0 };
	/* first: which other keys are required depends on it */
	r = parse_action(c, &ap, json_object_get(obj, "action"), in);
	if (r < 0)
		return r;
	return read_keys(c, at, obj, instr_keys, ELEMENTSOF(instr_keys), 1u << in->action, in);
}

/* ---- the reply -------------------------------------------------------- */

static int key_cursor(struct pctx *c, const struct jpath *at, const json_t *v, void *target)
{
	struct instr_batch *b = target;
	int r = check_token(c, at, v, sizeof(b->cursor));
	if (r < 0)
		return r;
	memcpy(b->cursor, json_string_value(v), json_string_length(v) + 1);
	return 0;
}

static int key_full(struct pctx *c, const struct jpath *at, const json_t *v, void *target)
{
	int r = want(c, at, v, JSON_TRUE, "a boolean");
	if (r < 0)
		return r;
	((struct instr_batch *)target)->full = json_is_true(v);
	return 0;
}

static int key_instructions(struct pctx *c, const struct jpath *at, const json_t *v, void *target)
{
	struct instr_batch *b = target;
	int r = want(c, at, v, JSON_ARRAY, "an array");
	if (r < 0)
		return r;
	size_t n = json_array_size(v);
	if (n == 0)
		return 0;
	b->v = calloc(n, sizeof(*b->v));
	if (!b->v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct jpath ip = { at, NULL, i };
		b->n = i + 1; /* so a failure frees what this one holds so far */
		r = parse_instr(c, &ip, json_array_get(v, i), &b->v[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

static const struct key reply_keys[] = {
	{ "cursor", key_cursor, ALL_ACTIONS },
	{ "full", key_full, ALL_ACTIONS },
	{ "instructions", key_instructions, ALL_ACTIONS },
};

static int json_refusal(struct pctx *c, const json_error_t *je)
{
	char text[QUOTE_MAX * 2];
	/* jansson quotes the bytes it choked on, and they come from the network */
	audit_sanitize(je->text, text, sizeof(text));
	if (c->errlen)
		utf8_snprintf(c->err, c->errlen, "invalid JSON at line %d, column %d: %s",
			 je->line > 0 ? je->line : 1, je->column > 0 ? je->column : 0, text);
	return -EBADMSG;
}

/* Skips a JSON string starting at body[i] == '"'; returns the index after
 * its closing quote (or len) and its raw length in *n. */
static size_t skip_json_string(const char *body, size_t len, size_t i, size_t *n)
{
	size_t start = ++i;
	while (i < len && body[i] != '"')
		i += body[i] == '\\' ? 2 : 1;
	*n = (i < len ? i : len) - start;
	return i < len ? i + 1 : len;
}

int instr_reply_cost(const char *body, size_t len, uint64_t *cost, char *err, size_t errlen)
{
	uint64_t c = 0;
	unsigned depth = 0;
	for (size_t i = 0; i < len;) {
		unsigned char ch = (unsigned char)body[i];
		size_t n;
		if (ch == '"') {
			i = skip_json_string(body, len, i, &n);
			size_t j = i;
			while (j < len && strchr(" \t\r\n", body[j]) && body[j])
				j++;
			bool key = j < len && body[j] == ':';
			c += (key ? CVZ_JSON_COST_MEMBER : CVZ_JSON_COST_STRING + CVZ_JSON_COST_ELEMENT) + n;
		} else if (ch == '{' || ch == '[') {
			if (++depth > CVZ_REPLY_DEPTH_MAX) {
				snprintf(err, errlen, "nested deeper than %u levels at byte %zu (the limit)",
					 CVZ_REPLY_DEPTH_MAX, i);
				return -EBADMSG;
			}
			c += (ch == '{' ? CVZ_JSON_COST_OBJECT : CVZ_JSON_COST_ARRAY) +
			     CVZ_JSON_COST_ELEMENT;
			i++;
		} else if (ch == '}' || ch == ']') {
			depth -= depth > 0;
			i++;
		} else if (ch == '-' || (ch >= '0' && ch <= '9') || ch == 't' || ch == 'f' ||
			   ch == 'n') {
			/* true, false and null are shared by jansson: a slot only */
			c += (ch == 't' || ch == 'f' || ch == 'n' ? 0 : CVZ_JSON_COST_NUMBER) +
			     CVZ_JSON_COST_ELEMENT;
			while (i < len && !strchr(",:]}\" \t\r\n", body[i]) && body[i])
				i++;
			if (i < len && !body[i])
				i++; /* a NUL: jansson refuses the text anyway */
		} else {
			i++; /* whitespace, ',' ':' or what jansson will refuse */
		}
		if (c > CVZ_REPLY_PARSE_BUDGET) {
			snprintf(err, errlen,
				 "too costly to parse: more than %u MiB of JSON values by byte %zu "
				 "of %zu (the limit; docs/control-api.md)",
				 CVZ_REPLY_PARSE_BUDGET >> 20, i, len);
			return -EBADMSG;
		}
	}
	*cost = c;
	return 0;
}

int instr_parse(const char *body, size_t len, const struct instr_limits *lim,
		struct instr_batch *out, char *err, size_t errlen)
{
	struct pctx c = { lim, err, errlen, 0 };
	/* bounded before jansson builds anything: its tree costs up to 77
	   times the text ("[{},{},...]") */
	uint64_t cost;
	int r0 = instr_reply_cost(body ? body : "", body ? len : 0, &cost, err, errlen);
	if (r0 < 0)
		return r0;
	json_error_t je;
	json_t *root = json_loadb(body ? body : "", body ? len : 0, JSON_REJECT_DUPLICATES, &je);
	/* jansson says nothing at all when its very first allocation fails */
	if (!root && (json_error_code(&je) == json_error_out_of_memory || !je.text[0])) {
		if (errlen)
			snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (!root)
		return json_refusal(&c, &je);

	struct instr_batch b = { 0 };
	int r = want(&c, NULL, root, JSON_OBJECT, "an object");
	if (r == 0)
		r = read_keys(&c, NULL, root, reply_keys, ELEMENTSOF(reply_keys), ALL_ACTIONS, &b);
	json_decref(root);
	if (r < 0) {
		if (r == -ENOMEM && errlen)
			snprintf(err, errlen, "out of memory");
		instr_batch_free(&b);
		return r;
	}
	*out = b;
	return 0;
}

void instr_batch_free(struct instr_batch *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->n; i++) {
		targets_free(&b->v[i]);
		free(b->v[i].incident);
		free(b->v[i].severity);
		free(b->v[i].reason);
	}
	free(b->v);
	memset(b, 0, sizeof(*b));
}

/* ---- ids already carried out ------------------------------------------ */

/* A ring of ids in arrival order (the FIFO) and an open-addressing index
 * over it: linear probing, load at most 1/2, and backward-shift deletion so
 * evicting never leaves tombstones behind. */
#define SLOT_EMPTY SIZE_MAX

struct seen_id {
	char *id;
	uint64_t hash;
};

struct instr_seen {
	struct seen_id *ring; /* cap entries; ring[head] is the oldest */
	size_t cap, head, count;
	size_t *slots; /* ring positions, SLOT_EMPTY when free */
	size_t mask;   /* slots has mask + 1 entries, a power of two */
};

/* FNV-1a: short ids, no adversary who gains from collisions beyond a slower
 * lookup in a set the server itself fills. */
static uint64_t id_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

struct instr_seen *instr_seen_new(size_t cap)
{
	if (cap == 0 || cap > SIZE_MAX / 4 / sizeof(struct seen_id)) {
		errno = EINVAL;
		return NULL;
	}
	size_t n = 2;
	while (n < cap * 2)
		n *= 2;
	struct instr_seen *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->ring = calloc(cap, sizeof(*s->ring));
	s->slots = malloc(n * sizeof(*s->slots));
	if (!s->ring || !s->slots) {
		instr_seen_free(s);
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		s->slots[i] = SLOT_EMPTY;
	s->cap = cap;
	s->mask = n - 1;
	return s;
}

void instr_seen_free(struct instr_seen *s)
{
	if (!s)
		return;
	if (s->ring)
		for (size_t i = 0; i < s->count; i++)
			free(s->ring[(s->head + i) % s->cap].id);
	free(s->ring);
	free(s->slots);
	free(s);
}

/* The slot holding id, or the empty slot where it would go. */
static size_t seen_slot(const struct instr_seen *s, const char *id, uint64_t h)
{
	size_t i = (size_t)h & s->mask;
	while (s->slots[i] != SLOT_EMPTY) {
		const struct seen_id *e = &s->ring[s->slots[i]];
		if (e->hash == h && strcmp(e->id, id) == 0)
			return i;
		i = (i + 1) & s->mask;
	}
	return i;
}

bool instr_seen_has(const struct instr_seen *s, const char *id)
{
	if (!s || !id)
		return false;
	return s->slots[seen_slot(s, id, id_hash(id))] != SLOT_EMPTY;
}

/* Empties slot i, moving later entries of the same probe run back so that
 * every entry stays reachable from its home slot. */
static void seen_unslot(struct instr_seen *s, size_t i)
{
	for (size_t j = (i + 1) & s->mask; s->slots[j] != SLOT_EMPTY; j = (j + 1) & s->mask) {
		size_t home = (size_t)s->ring[s->slots[j]].hash & s->mask;
		/* the entry at j may move to i unless its home lies in (i, j] */
		bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
		if (stays)
			continue;
		s->slots[i] = s->slots[j];
		i = j;
	}
	s->slots[i] = SLOT_EMPTY;
}

int instr_seen_add(struct instr_seen *s, const char *id)
{
	if (!s || !id)
		return -EINVAL;
	uint64_t h = id_hash(id);
	if (s->slots[seen_slot(s, id, h)] != SLOT_EMPTY)
		return 0;
	char *copy = strdup(id);
	if (!copy)
		return -ENOMEM;
	size_t pos;
	if (s->count == s->cap) {
		struct seen_id *old = &s->ring[s->head];
		seen_unslot(s, seen_slot(s, old->id, old->hash));
		free(old->id);
		pos = s->head;
		s->head = (s->head + 1) % s->cap;
	} else {
		pos = (s->head + s->count++) % s->cap;
	}
	s->ring[pos].id = copy;
	s->ring[pos].hash = h;
	/* looked up again: the eviction may have moved the free slot */
	s->slots[seen_slot(s, id, h)] = pos;
	return 0;
}

size_t instr_seen_count(const struct instr_seen *s)
{
	return s ? s->count : 0;
}

const char *instr_seen_at(const struct instr_seen *s, size_t i)
{
	if (!s || i >= s->count)
		return NULL;
	return s->ring[(s->head + i) % s->cap].id;
}
