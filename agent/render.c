/* Prints a compiled table as the nft script `nft list table inet cloudviz`
 * would print after nft_apply_table(): same layout (tabs, blank lines between
 * blocks, nft's line wrapping of set elements), same order and spelling of
 * every match, so the rendered text is already canonical. rule_plan.c takes
 * the decisions render.c shares with nft.c. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h> /* before linux/netfilter.h, which also defines in_addr */
#include <linux/netfilter.h>
#include <stdio.h>

#include "cleanup.h"
#include "names.h"
#include "render.h"
#include "rule_plan.h"

/* nft's continuation line for set elements (src/expression.c). */
#define ELEM_NEWLINE ",\n\t\t\t     "

static void put_time(FILE *f, uint64_t ms)
{
	static const struct { uint64_t ms; const char *unit; } units[] = {
		{ 86400000, "d" }, { 3600000, "h" }, { 60000, "m" },
		{ 1000, "s" },     { 1, "ms" },
	};

	for (size_t i = 0; i < ELEMENTSOF(units); i++) {
		if (ms / units[i].ms)
			fprintf(f, "%llu%s", (unsigned long long)(ms / units[i].ms),
				units[i].unit);
		ms %= units[i].ms;
	}
}

static void put_range4(FILE *f, const struct cvz_range4 *r)
{
	char buf[CVZ_RANGE_STRLEN];

	fputs(cvz_range4_format(r, buf, sizeof(buf)), f);
}

static void put_range6(FILE *f, const struct cvz_range6 *r)
{
	char buf[CVZ_RANGE_STRLEN];

	fputs(cvz_range6_format(r, buf, sizeof(buf)), f);
}

/* Named set elements: nft puts two IPv4 addresses on a line, one IPv6. */
static void put_set_elements(FILE *f, const struct fw_set *s)
{
	size_t n = s->family == NFPROTO_IPV4 ? s->elems.n4 : s->elems.n6;

	if (!n)
		return;
	fputs("\t\telements = { ", f);
	for (size_t i = 0; i < n; i++) {
		if (i)
			fputs(s->family == NFPROTO_IPV6 || i % 2 == 0 ? ELEM_NEWLINE
								     : ", ", f);
		if (s->family == NFPROTO_IPV4)
			put_range4(f, &s->elems.v4[i]);
		else
			put_range6(f, &s->elems.v6[i]);
	}
	fputs(" }\n", f);
}

static int put_set(FILE *f, const struct fw_set *s)
{
	const char *why;

	if (plan_check_set(s, &why) < 0)
		return -EINVAL;
	fprintf(f, "\tset %s {\n\t\ttype %s\n", s->name,
		s->family == NFPROTO_IPV4 ? "ipv4_addr" : "ipv6_addr");
	if (s->kind == FW_SET_ADDR) {
		if (s->size)
			fprintf(f, "\t\tsize %u\n", s->size);
		fputs("\t\tflags interval\n", f);
		put_set_elements(f, s);
	} else {
		if (s->size)
			fprintf(f, "\t\tsize %u\n", s->size);
		fputs("\t\tflags dynamic,timeout\n", f);
		if (s->timeout_ms) {
			fputs("\t\ttimeout ", f);
			put_time(f, s->timeout_ms);
			fputc('\n', f);
		}
	}
	fputs("\t}\n", f);
	return 0;
}

/* ---- rules ------------------------------------------------------------------- */

static void put_addr_range(FILE *f, const struct plan_addr *a, uint8_t fam, size_t i)
{
	if (fam == NFPROTO_IPV4)
		put_range4(f, &a->rs.v4[i]);
	else
		put_range6(f, &a->rs.v6[i]);
}

static void put_addr(FILE *f, const struct plan_addr *a, uint8_t fam, const char *dir)
{
	size_t n = fam == NFPROTO_IPV4 ? a->rs.n4 : a->rs.n6;

	if (a->kind == MATCH_NONE)
		return;
	fprintf(f, " %s %s %s", fam == NFPROTO_IPV4 ? "ip" : "ip6", dir, a->invert ? "!= " : "");
	if (a->kind == MATCH_NAMED) {
		fprintf(f, "@%s", a->set);
		return;
	}
	if (a->kind == MATCH_SET)
		fputs("{ ", f);
	for (size_t i = 0; i < n; i++) {
		if (i)
			fputs(", ", f);
		put_addr_range(f, a, fam, i);
	}
	if (a->kind == MATCH_SET)
		fputs(" }", f);
}

static void put_ports(FILE *f, const char *proto, const char *dir,
		      const struct plan_ports *pp)
{
	if (pp->kind == MATCH_NONE)
		return;
	fprintf(f, " %s %s %s", proto, dir, pp->kind == MATCH_SET ? "{ " : "");
	for (size_t i = 0; i < pp->n; i++) {
		fprintf(f, "%s%u", i ? ", " : "", pp->v[i].lo);
		if (pp->v[i].hi != pp->v[i].lo)
			fprintf(f, "-%u", pp->v[i].hi);
	}
	if (pp->kind == MATCH_SET)
		fputs(" }", f);
}

/* As nft prints an inet_proto: its /etc/protocols name, else the number. */
static void put_proto(FILE *f, int proto)
{
	const struct protoent *pe = getprotobynumber(proto);

	if (pe)
		fputs(pe->p_name, f);
	else
		fprintf(f, "%d", proto);
}

/* `{ a, b }` for several values, `a` for one. */
static void put_u8set(FILE *f, const struct plan_u8set *s,
		      void (*put)(FILE *, int, const void *), const void *arg)
{
	int v = -1;
	bool first = true;

	if (s->n > 1)
		fputs("{ ", f);
	while (plan_u8set_next(s, &v)) {
		if (!first)
			fputs(", ", f);
		put(f, v, arg);
		first = false;
	}
	if (s->n > 1)
		fputs(" }", f);
}

static void put_proto_cb(FILE *f, int v, const void *arg)
{
	put_proto(f, v);
}

static void put_icmp_cb(FILE *f, int v, const void *arg)
{
	const char *name = icmp_type_name(*(const uint8_t *)arg, (uint8_t)v);

	if (name)
		fputs(name, f);
	else
		fprintf(f, "%d", v);
}

static void put_l4(FILE *f, const struct rule_plan *p)
{
	int v = -1;

	if (!p->l4.n)
		return;
	if (p->th || !(p->sport.kind || p->dport.kind)) {
		fputs(" meta l4proto ", f);
		put_u8set(f, &p->l4, put_proto_cb, NULL);
	}
	plan_u8set_next(&p->l4, &v);
	const char *proto = p->th ? "th" : v == IPPROTO_TCP ? "tcp" : "udp";
	put_ports(f, proto, "sport", &p->sport);
	put_ports(f, proto, "dport", &p->dport);
}

/* In the order nft prints ct_state bits. */
static void put_ct_state(FILE *f, uint32_t state)
{
	const char *sep = " ct state ";

	/* nft prints the bits in ascending order */
	for (uint32_t bit = 1; bit; bit <<= 1) {
		const char *name = (state & bit) ? ct_state_name(bit) : NULL;
		if (name) {
			fprintf(f, "%s%s", sep, name);
			sep = ",";
		}
	}
}

static void put_icmp(FILE *f, const struct rule_plan *p)
{
	if (!p->icmp_proto)
		return;
	fprintf(f, " %s type ", p->icmp_proto == IPPROTO_ICMP ? "icmp" : "icmpv6");
	put_u8set(f, &p->icmp, put_icmp_cb, &p->icmp_proto);
}

/* nft omits its default burst of 5. */
static void put_limit(FILE *f, const struct fw_rule *r, const struct rule_plan *p)
{
	const struct fw_limit *l = &r->limit;

	if (!r->has_limit)
		return;
	if (l->per_source)
		fprintf(f, " update @%s { %s saddr", l->rate_set,
			p->fam == NFPROTO_IPV4 ? "ip" : "ip6");
	fprintf(f, " limit rate %llu/%s", (unsigned long long)l->rate,
		plan_limit_unit_name(l->unit_secs));
	if (l->burst != 5)
		fprintf(f, " burst %u packets", l->burst);
	if (l->per_source)
		fputs(" }", f);
}

static void put_verdict(FILE *f, enum fw_verdict v, uint8_t fam)
{
	static const char *const reject[] = {
		[0] = " reject",
		[NFPROTO_IPV4] = " reject with icmp port-unreachable",
		[NFPROTO_IPV6] = " reject with icmpv6 port-unreachable",
	};

	if (v == FW_VERDICT_ACCEPT)
		fputs(" accept", f);
	else if (v == FW_VERDICT_DROP)
		fputs(" drop", f);
	else if (v == FW_VERDICT_REJECT)
		fputs(reject[fam], f);
}

/* nft shows the `meta nfproto` it put at the head for a reject only when a
 * statement before the reject hides it from its dependency tracking;
 * otherwise `reject with icmp` implies it. Both texts install the same. */
static bool shows_head_dep(const struct fw_rule *r, const struct rule_plan *p)
{
	return p->dep == DEP_HEAD && (r->has_limit || r->counter || r->log);
}

/* Every token is written as " token": the rule line starts with "\t\t"
 * and the first space is eaten by the caller's format. */
static void put_matches(FILE *f, const struct fw_rule *r, const struct rule_plan *p)
{
	if (shows_head_dep(r, p))
		fprintf(f, " meta nfproto %s", plan_nfproto_name(p->fam));
	if (r->iifname[0])
		fprintf(f, " iifname %s\"%s\"", r->iifname_invert ? "!= " : "", r->iifname);
	if (r->oifname[0])
		fprintf(f, " oifname \"%s\"", r->oifname);
	if (p->dep == DEP_EXPLICIT)
		fprintf(f, " meta nfproto %s", plan_nfproto_name(p->fam));
	put_addr(f, &p->saddr, p->fam, "saddr");
	put_addr(f, &p->daddr, p->fam, "daddr");
	put_l4(f, p);
	put_ct_state(f, r->ct_state);
	put_icmp(f, p);
}

static int put_rule(FILE *f, const struct fw_rule *r, const struct fw_table *t)
{
	_cleanup_(rule_plan_free) struct rule_plan p = { 0 };
	char *line = NULL;
	size_t len = 0;
	int ret = rule_plan_build(&p, r, t);
	FILE *m;

	if (ret < 0)
		return ret;
	/* built in memory first: the line must not start with a space */
	m = open_memstream(&line, &len);
	if (!m)
		return -ENOMEM;
	put_matches(m, r, &p);
	put_limit(m, r, &p);
	if (r->counter)
		fputs(" counter packets 0 bytes 0", m);
	if (r->log && r->log_prefix[0])
		fprintf(m, " log prefix \"%s\"", r->log_prefix);
	else if (r->log)
		fputs(" log", m);
	put_verdict(m, r->verdict, p.fam);
	if (r->comment[0])
		fprintf(m, " comment \"%s\"", r->comment);
	ret = fclose(m) == 0 ? 0 : -ENOMEM;
	if (ret == 0)
		fprintf(f, "\t\t%s\n", len ? line + 1 : "");
	free(line);
	return ret;
}

static int put_chain(FILE *f, const struct fw_chain *c, enum fw_hook h,
		     const struct fw_table *t)
{
	fprintf(f, "\tchain %s {\n\t\ttype filter hook %s priority filter; policy %s;\n",
		fw_hook_name(h), fw_hook_name(h), c->policy_drop ? "drop" : "accept");
	for (size_t i = 0; i < c->n_rules; i++) {
		int ret = put_rule(f, &c->rules[i], t);
		if (ret < 0)
			return ret;
	}
	fputs("\t}\n", f);
	return 0;
}

int render_table(const struct fw_table *t, FILE *f, bool with_replace)
{
	const char *delim = "";
	int ret;

	if (with_replace)
		fputs("table inet " FW_TABLE_NAME "\n"
		      "delete table inet " FW_TABLE_NAME "\n", f);
	fputs("table inet " FW_TABLE_NAME " {\n", f);
	for (size_t i = 0; i < t->n_sets; i++) {
		fputs(delim, f);
		if ((ret = put_set(f, &t->sets[i])) < 0)
			return ret;
		delim = "\n";
	}
	for (int h = 0; h < FW_HOOK_COUNT; h++) {
		fputs(delim, f);
		if ((ret = put_chain(f, &t->chains[h], (enum fw_hook)h, t)) < 0)
			return ret;
		delim = "\n";
	}
	fputs("}\n", f);
	if (fflush(f) != 0)
		return -errno;
	return ferror(f) ? -EIO : 0;
}
