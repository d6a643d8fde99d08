/* Ownership helpers for the compiled firewall (see ruleset.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ruleset.h"

const char *fw_hook_name(enum fw_hook h)
{
	static const char *const names[FW_HOOK_COUNT] = {
		[FW_HOOK_INPUT] = "input",
		[FW_HOOK_FORWARD] = "forward",
		[FW_HOOK_OUTPUT] = "output",
	};
	return (unsigned)h < FW_HOOK_COUNT ? names[h] : "?";
}

/* Grows *arr (of elem-sized items) so one more fits; 0 or -ENOMEM. */
static int grow(void **arr, size_t *cap, size_t n, size_t elem)
{
	if (n < *cap)
		return 0;
	size_t ncap = *cap ? *cap * 2 : 8;
	void *p = reallocarray(*arr, ncap, elem);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = ncap;
	return 0;
}

struct fw_rule *fw_chain_add_rule(struct fw_chain *c)
{
	if (grow((void **)&c->rules, &c->cap_rules, c->n_rules, sizeof(*c->rules)) < 0)
		return NULL;
	struct fw_rule *r = &c->rules[c->n_rules++];
	memset(r, 0, sizeof(*r));
	return r;
}

struct fw_set *fw_table_add_set(struct fw_table *t)
{
	if (grow((void **)&t->sets, &t->cap_sets, t->n_sets, sizeof(*t->sets)) < 0)
		return NULL;
	struct fw_set *s = &t->sets[t->n_sets++];
	memset(s, 0, sizeof(*s));
	return s;
}

static void fw_rule_free(struct fw_rule *r)
{
	free(r->saddr);
	free(r->daddr);
	free(r->sport);
	free(r->dport);
	free(r->icmp_type);
	free(r->origin);
}

void fw_table_free(struct fw_table *t)
{
	for (size_t i = 0; i < t->n_sets; i++) {
		cvz_rangeset_free(&t->sets[i].elems);
		free(t->sets[i].origin);
	}
	free(t->sets);
	for (int h = 0; h < FW_HOOK_COUNT; h++) {
		struct fw_chain *c = &t->chains[h];
		for (size_t i = 0; i < c->n_rules; i++)
			fw_rule_free(&c->rules[i]);
		free(c->rules);
	}
	memset(t, 0, sizeof(*t));
}
