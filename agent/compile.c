/* Policy -> kernel table. Pure data: no netlink, no JSON. Each policy rule
 * becomes one kernel rule, or one per address family when it matches
 * addresses (nftables compares one family per rule), and one per interface
 * name when it lists several. */
#include <errno.h>
#include <netinet/in.h>
#include <linux/netfilter.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "blocklist.h"
#include "cvz_limits.h"
#include "policy.h"
#include "utf8.h"

#define RATE_SET_SIZE 65535

/* The blocklist sets, in the order they are declared and matched: the
 * lists, then the runtime blocks (docs/blocklists.md). */
static const struct bl_set {
	const char *name, *what;
	uint8_t family;
	bool dynamic;
} bl_sets[] = {
	{ FW_SET_LISTS_V4, "blocklist", NFPROTO_IPV4, false },
	{ FW_SET_LISTS_V6, "blocklist", NFPROTO_IPV6, false },
	{ FW_SET_DYNAMIC_V4, "runtime blocks", NFPROTO_IPV4, true },
	{ FW_SET_DYNAMIC_V6, "runtime blocks", NFPROTO_IPV6, true },
};

static int family_of(const struct cvz_prefix *p)
{
	return p->family == AF_INET ? NFPROTO_IPV4 : NFPROTO_IPV6;
}

/* Copies the prefixes of one family (all when fam is 0). */
static int copy_prefixes(const struct cvz_prefix *src, size_t n, int fam,
			 struct cvz_prefix **out, size_t *nout)
{
	*out = NULL;
	*nout = 0;
	if (n == 0)
		return 0;
	struct cvz_prefix *v = calloc(n, sizeof(*v));
	if (!v)
		return -ENOMEM;
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (!fam || family_of(&src[i]) == fam)
			v[k++] = src[i];
	*out = v;
	*nout = k;
	return 0;
}

static void *dup_array(const void *src, size_t n, size_t size, int *err)
{
	if (n == 0)
		return NULL;
	void *p = calloc(n, size);
	if (!p) {
		*err = -ENOMEM;
		return NULL;
	}
	memcpy(p, src, n * size);
	return p;
}

static int add_blocklist_rules(struct fw_chain *ch, const char *file)
{
	for (size_t i = 0; i < ELEMENTSOF(bl_sets); i++) {
		struct fw_rule *r = fw_chain_add_rule(ch);
		if (!r)
			return -ENOMEM;
		r->family = bl_sets[i].family;
		if (ch->hook == FW_HOOK_OUTPUT)
			r->daddr_set = bl_sets[i].name;
		else
			r->saddr_set = bl_sets[i].name;
		r->counter = true;
		r->verdict = FW_VERDICT_DROP;
		if (asprintf(&r->origin, "%s (%s)", file, bl_sets[i].what) < 0) {
			r->origin = NULL;
			return -ENOMEM;
		}
	}
	return 0;
}

static int declare_rate_set(struct fw_table *t, const char *name, int fam,
			    const struct policy_rule *pr)
{
	for (size_t i = 0; i < t->n_sets; i++)
		if (strcmp(t->sets[i].name, name) == 0)
			return 0;
	struct fw_set *s = fw_table_add_set(t);
	if (!s)
		return -ENOMEM;
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->kind = FW_SET_RATELIMIT;
	s->family = (uint8_t)fam;
	s->size = RATE_SET_SIZE;
	/* an idle source is forgotten after one period of its rate: by then
	   its bucket is full again anyway */
	s->timeout_ms = pr->limit.unit_secs * 1000;
	s->origin = pr->where ? strdup(pr->where) : NULL;
	return 0;
}

/* Lockdown tightens a limit: rate and burst divided by factor, but never
 * to 0, which would drop everything the rule admits (and nft refuses). */
static void scale_limit(struct fw_limit *l, uint32_t factor)
{
	if (factor <= 1)
		return;
	l->rate = l->rate / factor ? l->rate / factor : 1;
	l->burst = l->burst / factor ? l->burst / factor : 1;
}

/* Emits one kernel rule for policy rule pr restricted to family fam (0 =
 * both) and to one input and one output interface (NULL = any); its rate
 * limit divided by factor (1: as written). */
static int emit_rule(struct fw_table *t, struct fw_chain *ch, const char *tag, size_t idx,
		     const struct policy_rule *pr, uint32_t factor, int fam, const char *iif,
		     const char *oif)
{
	struct fw_rule *r = fw_chain_add_rule(ch);
	int err = 0;
	if (!r)
		return -ENOMEM;
	if (iif)
		snprintf(r->iifname, sizeof(r->iifname), "%s", iif);
	if (oif)
		snprintf(r->oifname, sizeof(r->oifname), "%s", oif);
	r->family = (uint8_t)fam;
	if (copy_prefixes(pr->saddr, pr->n_saddr, fam, &r->saddr, &r->n_saddr) < 0 ||
	    copy_prefixes(pr->daddr, pr->n_daddr, fam, &r->daddr, &r->n_daddr) < 0)
		return -ENOMEM;
	memcpy(r->l4proto, pr->l4proto, sizeof(r->l4proto));
	r->n_l4proto = pr->n_l4proto;
	r->sport = dup_array(pr->sport, pr->n_sport, sizeof(*pr->sport), &err);
	r->n_sport = r->sport ? pr->n_sport : 0;
	r->dport = dup_array(pr->dport, pr->n_dport, sizeof(*pr->dport), &err);
	r->n_dport = r->dport ? pr->n_dport : 0;
	r->ct_state = pr->ct_state;
	r->icmp_type = dup_array(pr->icmp_type, pr->n_icmp_type, 1, &err);
	r->n_icmp_type = r->icmp_type ? pr->n_icmp_type : 0;
	r->has_limit = pr->has_limit;
	r->limit = pr->limit;
	scale_limit(&r->limit, factor);
	if (pr->has_limit && pr->limit.per_source) {
		snprintf(r->limit.rate_set, sizeof(r->limit.rate_set), "rate_%s_%zu_%s", tag, idx,
			 fam == NFPROTO_IPV4 ? "v4" : "v6");
		if (!err)
			err = declare_rate_set(t, r->limit.rate_set, fam, pr);
	}
	r->counter = pr->counter;
	r->log = pr->log;
	memcpy(r->log_prefix, pr->log_prefix, sizeof(r->log_prefix));
	r->verdict = pr->verdict;
	memcpy(r->comment, pr->comment, sizeof(r->comment));
	r->origin = pr->where ? strdup(pr->where) : NULL;
	return err ? err : (pr->where && !r->origin ? -ENOMEM : 0);
}

/* Which families a rule must be split into; {0} when it needs no family. */
static size_t rule_split(const struct policy_rule *pr, int fams[2])
{
	bool v4 = !pr->family || pr->family == NFPROTO_IPV4;
	bool v6 = !pr->family || pr->family == NFPROTO_IPV6;
	if (pr->n_saddr || pr->n_daddr) {
		bool a4 = false, a6 = false;
		for (size_t i = 0; i < pr->n_saddr; i++) {
			a4 |= family_of(&pr->saddr[i]) == NFPROTO_IPV4;
			a6 |= family_of(&pr->saddr[i]) == NFPROTO_IPV6;
		}
		bool d4 = !pr->n_daddr, d6 = !pr->n_daddr;
		for (size_t i = 0; i < pr->n_daddr; i++) {
			d4 |= family_of(&pr->daddr[i]) == NFPROTO_IPV4;
			d6 |= family_of(&pr->daddr[i]) == NFPROTO_IPV6;
		}
		if (pr->n_saddr) {
			v4 &= a4;
			v6 &= a6;
		}
		v4 &= d4;
		v6 &= d6;
	}
	if (pr->n_icmp_type) {
		v4 &= pr->l4proto[0] == IPPROTO_ICMP;
		v6 &= pr->l4proto[0] == IPPROTO_ICMPV6;
	}
	bool need = pr->family || pr->n_saddr || pr->n_daddr || pr->n_icmp_type ||
		    (pr->has_limit && pr->limit.per_source);
	if (!need) {
		fams[0] = 0;
		return 1;
	}
	size_t n = 0;
	if (v4)
		fams[n++] = NFPROTO_IPV4;
	if (v6)
		fams[n++] = NFPROTO_IPV6;
	return n;
}

/* tag names the rule list in rate-limit set names ("input", "failsafe");
 * factor divides the rule's rate limit (1: as written). */
static int compile_rule(struct fw_table *t, struct fw_chain *ch, const char *tag, size_t idx,
			const struct policy_rule *pr, uint32_t factor)
{
	int fams[2];
	size_t nf = rule_split(pr, fams);
	size_t ni = pr->n_iif ? pr->n_iif : 1, no = pr->n_oif ? pr->n_oif : 1;
	for (size_t f = 0; f < nf; f++)
		for (size_t i = 0; i < ni; i++)
			for (size_t o = 0; o < no; o++) {
				int err = emit_rule(t, ch, tag, idx, pr, factor, fams[f],
						    pr->n_iif ? pr->iif[i] : NULL,
						    pr->n_oif ? pr->oif[o] : NULL);
				if (err < 0)
					return err;
			}
	return 0;
}

static int add_log_rule(struct fw_chain *ch, const struct policy *p)
{
	struct fw_rule *r = fw_chain_add_rule(ch);
	if (!r)
		return -ENOMEM;
	r->has_limit = true;
	r->limit = p->log_limit;
	r->log = true;
	memcpy(r->log_prefix, p->log_prefix, sizeof(r->log_prefix));
	if (asprintf(&r->origin, "%s (log_dropped)", p->file) < 0) {
		r->origin = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* Copies a normalised range set. */
static int rangeset_copy(const struct cvz_rangeset *src, struct cvz_rangeset *dst)
{
	int err = 0;
	memset(dst, 0, sizeof(*dst));
	for (size_t i = 0; !err && i < src->n4; i++)
		err = cvz_rangeset_add4(dst, src->v4[i].lo, src->v4[i].hi);
	for (size_t i = 0; !err && i < src->n6; i++)
		err = cvz_rangeset_add6(dst, src->v6[i].lo, src->v6[i].hi);
	if (err)
		cvz_rangeset_free(dst);
	return err;
}

/* The lists' ranges: the given ones, or every policy entry minus what may
 * never be blocked (policy_never_blocked()). */
static int lists_ranges(const struct policy *p, const struct cvz_rangeset *given,
			struct cvz_rangeset *out)
{
	struct bl_view v;
	struct cvz_prefix *safe = NULL;
	size_t n_safe = 0;
	if (given)
		return rangeset_copy(given, out);
	int err = policy_never_blocked(p, &safe, &n_safe);
	if (!err)
		err = bl_view_init(&v, p->blocked, p->n_blocked, safe, n_safe);
	free(safe);
	if (err)
		return err;
	*out = v.lists;
	cvz_rangeset_free(&v.safe);
	return 0;
}

/* Declares the blocklist sets, each family's ranges handed to its set. */
static int add_blocklist_sets(struct fw_table *t, const struct policy *p,
			      const struct cvz_rangeset *lists, const struct cvz_rangeset *dynamic)
{
	struct cvz_rangeset rs[2] = { { 0 } }; /* lists, dynamic */
	int err = lists_ranges(p, lists, &rs[0]);
	if (!err && dynamic)
		err = rangeset_copy(dynamic, &rs[1]);
	for (size_t i = 0; !err && i < ELEMENTSOF(bl_sets); i++) {
		const struct bl_set *b = &bl_sets[i];
		struct cvz_rangeset *src = &rs[b->dynamic];
		struct fw_set *s = fw_table_add_set(t);
		if (!s) {
			err = -ENOMEM;
			break;
		}
		snprintf(s->name, sizeof(s->name), "%s", b->name);
		s->kind = FW_SET_ADDR;
		s->family = b->family;
		/* the kernel refuses elements beyond (ENFILE): a backstop behind
		   the agent's own per-origin bounds */
		s->size = b->dynamic ? CVZ_SET_DYNAMIC_SIZE : CVZ_SET_LISTS_SIZE;
		if (b->family == NFPROTO_IPV4) {
			s->elems.v4 = TAKE_PTR(src->v4);
			s->elems.n4 = src->n4;
			s->elems.cap4 = src->cap4;
		} else {
			s->elems.v6 = TAKE_PTR(src->v6);
			s->elems.n6 = src->n6;
			s->elems.cap6 = src->cap6;
		}
		if (asprintf(&s->origin, "%s (%s, IPv%c)", p->file, b->what,
			     b->family == NFPROTO_IPV4 ? '4' : '6') < 0)
			s->origin = NULL;
	}
	cvz_rangeset_free(&rs[0]);
	cvz_rangeset_free(&rs[1]);
	return err;
}

/* The reply direction of a failsafe rule: established traffic back to the
 * sources it admits (addresses, ports and interfaces swapped). It borrows
 * the arrays of r; compile_rule() copies what it keeps. */
static struct policy_rule mirror_failsafe(const struct policy_rule *r)
{
	struct policy_rule m = {
		.where = r->where,
		.oif = r->iif,
		.n_oif = r->n_iif,
		.family = r->family,
		.saddr = r->daddr,
		.n_saddr = r->n_daddr,
		.daddr = r->saddr,
		.n_daddr = r->n_saddr,
		.n_l4proto = r->n_l4proto,
		.sport = r->dport,
		.n_sport = r->n_dport,
		.dport = r->sport,
		.n_dport = r->n_sport,
		.ct_state = FW_CT_ESTABLISHED,
		.verdict = FW_VERDICT_ACCEPT,
	};
	memcpy(m.l4proto, r->l4proto, sizeof(m.l4proto));
	snprintf(m.comment, sizeof(m.comment), "%.*s%sreplies", utf8_prefix(r->comment, 100), r->comment, r->comment[0] ? ": " : "failsafe ");
	return m;
}

/* Lockdown's sources of one family: allow_from's and loopback's, so that
 * local services keep talking to each other. */
static int lockdown_sources(const struct policy *p, int fam, struct fw_rule *r)
{
	static const struct cvz_prefix lo4 = { AF_INET, 8, { 127 } };
	static const struct cvz_prefix lo6 = { AF_INET6, 128, { [15] = 1 } };
	const struct policy_lockdown *l = &p->lockdown;
	int err = copy_prefixes(l->allow_from, l->n_allow_from, fam, &r->saddr, &r->n_saddr);
	if (err)
		return err;
	struct cvz_prefix *v = reallocarray(r->saddr, r->n_saddr + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v[r->n_saddr++] = fam == NFPROTO_IPV4 ? lo4 : lo6;
	r->saddr = v;
	return 0;
}

/* While locked down, a new connection from outside allow_from is dropped
 * before any policy rule can accept it; established flows (the node's own
 * connections too), the failsafe before it and loopback traffic (iifname lo:
 * also to the node's own public addresses) go on as before. ICMPv6
 * neighbour discovery is untracked, never "new", so it keeps working. */
static int add_lockdown_rules(struct fw_chain *ch, const struct policy *p)
{
	static const int fams[] = { NFPROTO_IPV4, NFPROTO_IPV6 };
	for (size_t i = 0; i < ELEMENTSOF(fams); i++) {
		struct fw_rule *r = fw_chain_add_rule(ch);
		if (!r)
			return -ENOMEM;
		snprintf(r->iifname, sizeof(r->iifname), "lo");
		r->iifname_invert = true;
		r->family = (uint8_t)fams[i];
		r->saddr_invert = true;
		r->ct_state = FW_CT_NEW;
		r->counter = true;
		r->verdict = FW_VERDICT_DROP;
		snprintf(r->comment, sizeof(r->comment), "lockdown");
		int err = lockdown_sources(p, fams[i], r);
		if (err)
			return err;
		r->origin = p->lockdown.where ? strdup(p->lockdown.where) : NULL;
		if (!r->origin && asprintf(&r->origin, "%s (lockdown)", p->file) < 0) {
			r->origin = NULL;
			return -ENOMEM;
		}
	}
	return 0;
}

int policy_compile(const struct policy *p, struct fw_table *t)
{
	return policy_compile_opts(p, NULL, t);
}

int policy_compile_blocked(const struct policy *p, const struct cvz_rangeset *lists,
			   const struct cvz_rangeset *dynamic, struct fw_table *t)
{
	const struct compile_opts o = { .lists = lists, .dynamic = dynamic };
	return policy_compile_opts(p, &o, t);
}

int policy_compile_opts(const struct policy *p, const struct compile_opts *o,
			struct fw_table *t)
{
	static const struct compile_opts plain = { 0 };
	int err;
	if (!o)
		o = &plain;
	uint32_t factor = o->lockdown ? p->lockdown.rate_limit_factor : 1;
	memset(t, 0, sizeof(*t));
	err = add_blocklist_sets(t, p, o->lists, o->dynamic);
	for (int h = 0; !err && h < FW_HOOK_COUNT; h++) {
		struct fw_chain *ch = &t->chains[h];
		const struct policy_chain *pc = &p->chains[h];
		ch->hook = (enum fw_hook)h;
		ch->policy_drop = pc->policy_drop;
		/* failsafe first: before any blocklist or drop rule, and its replies
		   before the output blocklist, or a blocked address inside a
		   failsafe could connect but never hear back */
		for (size_t i = 0; !err && h == FW_HOOK_INPUT && i < p->failsafe.n_rules; i++)
			err = compile_rule(t, ch, "failsafe", i, &p->failsafe.rules[i], 1);
		for (size_t i = 0; !err && h == FW_HOOK_OUTPUT && i < p->failsafe.n_rules; i++) {
			struct policy_rule reply = mirror_failsafe(&p->failsafe.rules[i]);
			err = compile_rule(t, ch, "failsafe_reply", i, &reply, 1);
		}
		if (!err)
			err = add_blocklist_rules(ch, p->file);
		if (!err && o->lockdown && h == FW_HOOK_INPUT)
			err = add_lockdown_rules(ch, p);
		for (size_t i = 0; !err && i < pc->n_rules; i++)
			err = compile_rule(t, ch, fw_hook_name(ch->hook), i, &pc->rules[i], factor);
		if (!err && p->log_dropped && p->log_chains[h])
			err = add_log_rule(ch, p);
	}
	if (err)
		fw_table_free(t);
	return err;
}
