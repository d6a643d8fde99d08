/* How one fw_rule becomes nft matches; shared by render.c and nft.c so the
 * two cannot drift apart. See rule_plan.h. */
#include <errno.h>
#include <netinet/in.h> /* before linux/netfilter.h, which also defines in_addr */
#include <linux/netfilter.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "rule_plan.h"

static int fail(struct rule_plan *p, const char *why)
{
	p->why = why;
	return -EINVAL;
}

static void u8set_add(struct plan_u8set *s, uint8_t v)
{
	uint64_t bit = 1ull << (v % 64);

	if (!(s->bits[v / 64] & bit)) {
		s->bits[v / 64] |= bit;
		s->n++;
	}
}

static bool u8set_has(const struct plan_u8set *s, uint8_t v)
{
	return s->bits[v / 64] & (1ull << (v % 64));
}

bool plan_u8set_next(const struct plan_u8set *s, int *v)
{
	for (int i = *v + 1; i < 256; i++) {
		if (u8set_has(s, (uint8_t)i)) {
			*v = i;
			return true;
		}
	}
	return false;
}

/* What nft can print back inside "...": printable ASCII without the quote
 * and the backslash (nft has no escapes), and with its NUL inside max. */
static bool quotable(const char *s, size_t max)
{
	if (!memchr(s, '\0', max))
		return false;
	for (; *s; s++)
		if (*s < 0x20 || *s > 0x7e || *s == '"' || *s == '\\')
			return false;
	return true;
}

/* The keywords of nft 1.0.6 (src/scanner.l) that look like identifiers:
 * a set of that name cannot be written as `@name` or `set name {`. */
static const char nft_keywords[] =
	" a-rwnd abort accept ackseq add addr ah all and arp asconf "
	"asconf-ack auto-merge avgpkt bridge burst bypass bytes cfi cgroup "
	"cgroupv2 chain chains checksum chunk classid code comment comp "
	"constant continue cookie-ack cookie-echo count counter counters cpi "
	"cpu create csumcov ct cum-tsn-ack cwr daddr data day dccp define "
	"dei delete describe device devices direction dnat doff dport drop "
	"dscp dst dup dynamic echo ecn ecne element elements eol eq error "
	"esp ether event exists expectation expiration expires export exthdr "
	"fanout fastopen fib flags flow flowlabel flowtable flowtables flush "
	"forward-tsn frag frag-off fully-random fwd gateway gc-interval ge "
	"get goto group gt handle hbh hdrlength heartbeat heartbeat-ack "
	"helper helpers hlen hook hooks hoplimit hour htype ibriport ibrname "
	"icmp icmpv6 icmpx id igmp iif iifgroup iifname iiftype import in "
	"inc include index inet init init-ack init-tag initial-tsn insert "
	"interval ip ip6 ipsec jhash json jump l3proto label last-entry le "
	"left length level limit limits list ll log lowest-tsn lshift lsrr "
	"lt map maps mark masquerade max-delay maxseg md5sig memory meta "
	"meter meters mh minute missing mod monitor more-fragments mptcp mrt "
	"mss mtu name ne netdev new-cum-tsn nexthdr nexthop nftrace nh noop "
	"nop not notrack num num-dup-tsns num-gap-ack-blocks "
	"num-inbound-streams num-outbound-streams numgen obriport obrname "
	"offload offset oif oifgroup oifname oiftype operation option "
	"options or original osf out over packets param-problem pcp "
	"performance persistent pkttype plen policy port position ppid "
	"prefix priority proto-dst proto-src protocol ptr ptype queue "
	"queue-threshold quota quotas ra random rate redefine redirect "
	"reject rename replace reply reqid reserved reserved2 reset return "
	"right rr rshift rt rt0 rt2 rtclassid rule rules ruleset sack "
	"sack-perm sack-permitted sack0 sack1 sack2 sack3 saddr sctp secmark "
	"secmarks second seed seg-left seqno sequence set sets shutdown "
	"shutdown-ack shutdown-complete sid size skgid skuid snaplen snat "
	"socket spi spnum sport srh ssn ssrr state status stream subtype "
	"symhash synproxy synproxys table tables tag tcp th time timeout "
	"timestamp to tproxy trace transparent tsecr tsn tsval ttl type "
	"typeof udp udplite undefine until update urgptr used value version "
	"vlan vm vmap vtag week wildcard window with wscale xml xor xt zone ";

static bool is_nft_keyword(const char *s)
{
	char word[FW_SET_NAME_MAX + 2];

	snprintf(word, sizeof(word), " %s ", s);
	return strstr(nft_keywords, word) != NULL;
}

/* nft's identifier syntax, which is what `@name` and `set name {` need. */
static bool set_name_ok(const char *s)
{
	if (!memchr(s, '\0', FW_SET_NAME_MAX) || !*s)
		return false;
	if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_.", *s))
		return false;
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			 "0123456789_./-") == strlen(s) && !is_nft_keyword(s);
}

static uint8_t nfproto_of(int af)
{
	return af == AF_INET ? NFPROTO_IPV4 : af == AF_INET6 ? NFPROTO_IPV6 : 0;
}

/* Merges a family constraint into *fam; false on a conflict. */
static bool join_family(uint8_t *fam, uint8_t f)
{
	if (!f || *fam == f)
		return true;
	if (*fam)
		return false;
	*fam = f;
	return true;
}

static const struct fw_set *find_set(const struct fw_table *t, const char *name)
{
	for (size_t i = 0; i < t->n_sets; i++)
		if (!strcmp(t->sets[i].name, name))
			return &t->sets[i];
	return NULL;
}

static size_t addr_count(const struct plan_addr *a, uint8_t fam)
{
	return fam == NFPROTO_IPV4 ? a->rs.n4 : a->rs.n6;
}

/* A literal list becomes sorted, merged ranges: nft merges anonymous
 * interval sets itself, and turns a one-element set into a compare. */
static int plan_addr_list(struct rule_plan *p, struct plan_addr *a,
			  const struct cvz_prefix *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!nfproto_of(v[i].family))
			return fail(p, "address of unknown family");
		if (!join_family(&p->fam, nfproto_of(v[i].family)))
			return fail(p, "addresses of different families in one rule");
		if (cvz_rangeset_add_prefix(&a->rs, &v[i]) < 0)
			return -ENOMEM;
	}
	cvz_rangeset_normalize(&a->rs);
	a->kind = addr_count(a, p->fam) == 1 ? MATCH_ONE : MATCH_SET;
	return 0;
}

static int plan_addr(struct rule_plan *p, struct plan_addr *a,
		     const struct cvz_prefix *v, size_t n, const char *set,
		     bool invert, const struct fw_table *t)
{
	if (set && n)
		return fail(p, "both an address list and an address set");
	/* `!= nothing` would match every packet of the family: say it instead */
	if (invert && !set && !n)
		return fail(p, "negated address match without addresses");
	a->invert = invert;
	if (n)
		return plan_addr_list(p, a, v, n);
	if (!set)
		return 0;
	if (!set_name_ok(set))
		return fail(p, "set name nft cannot parse");
	const struct fw_set *s = find_set(t, set);
	if (s && !join_family(&p->fam, s->family))
		return fail(p, "address set of another family");
	a->kind = MATCH_NAMED;
	a->set = set;
	return 0;
}

static int cmp_port(const void *a, const void *b)
{
	const struct fw_portrange *x = a, *y = b;

	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	return (x->hi > y->hi) - (x->hi < y->hi);
}

/* Sorted; single ports stay a plain set, any range makes an interval set
 * whose overlapping and adjacent members nft would merge, so we merge. */
static size_t merge_ports(struct fw_portrange *v, size_t n, bool interval)
{
	size_t out = 0;

	for (size_t i = 1; i < n; i++) {
		struct fw_portrange *cur = &v[out];

		if (v[i].lo == cur->lo && v[i].hi == cur->hi)
			continue;
		if (interval && v[i].lo <= (uint32_t)cur->hi + 1) {
			if (v[i].hi > cur->hi)
				cur->hi = v[i].hi;
			continue;
		}
		v[++out] = v[i];
	}
	return n ? out + 1 : 0;
}

static int plan_ports(struct rule_plan *p, struct plan_ports *pp,
		      const struct fw_portrange *v, size_t n)
{
	if (!n)
		return 0;
	pp->v = reallocarray(NULL, n, sizeof(*v));
	if (!pp->v)
		return -ENOMEM;
	memcpy(pp->v, v, n * sizeof(*v));
	for (size_t i = 0; i < n; i++) {
		if (v[i].lo > v[i].hi)
			return fail(p, "port range with lo > hi");
		pp->interval |= v[i].lo != v[i].hi;
	}
	qsort(pp->v, n, sizeof(*v), cmp_port);
	pp->n = merge_ports(pp->v, n, pp->interval);
	pp->kind = pp->n == 1 ? MATCH_ONE : MATCH_SET;
	return 0;
}

static int plan_l4(struct rule_plan *p, const struct fw_rule *r)
{
	struct plan_u8set all = { 0 };

	if (r->n_l4proto > ELEMENTSOF(r->l4proto))
		return fail(p, "too many protocols");
	for (size_t i = 0; i < r->n_l4proto; i++)
		u8set_add(&all, r->l4proto[i]);
	if ((r->n_sport || r->n_dport) &&
	    (!all.n || all.n != (unsigned)u8set_has(&all, IPPROTO_TCP) +
				 (unsigned)u8set_has(&all, IPPROTO_UDP)))
		return fail(p, "ports need the protocols tcp and/or udp only");
	if (!r->n_icmp_type) {
		p->l4 = all;
		p->th = all.n > 1;
		return 0;
	}
	/* icmp types carry their own protocol match (`icmp type ...`) */
	if (all.n != 1 || !(u8set_has(&all, IPPROTO_ICMP) ||
			    u8set_has(&all, IPPROTO_ICMPV6)))
		return fail(p, "icmp types need exactly the protocol icmp or icmpv6");
	p->icmp_proto = u8set_has(&all, IPPROTO_ICMP) ? IPPROTO_ICMP : IPPROTO_ICMPV6;
	if (!join_family(&p->fam, p->icmp_proto == IPPROTO_ICMP ? NFPROTO_IPV4
								: NFPROTO_IPV6))
		return fail(p, "icmp types of the other address family");
	for (size_t i = 0; i < r->n_icmp_type; i++)
		u8set_add(&p->icmp, r->icmp_type[i]);
	return 0;
}

static int plan_limit(struct rule_plan *p, const struct fw_rule *r,
		      const struct fw_table *t)
{
	const struct fw_limit *l = &r->limit;

	if (!r->has_limit)
		return 0;
	if (!plan_limit_unit_name(l->unit_secs))
		return fail(p, "limit unit is not second, minute, hour, day or week");
	if (!l->rate || !l->burst)
		return fail(p, "limit rate and burst must be > 0");
	if (!l->per_source)
		return 0;
	if (!set_name_ok(l->rate_set))
		return fail(p, "rate limit set name nft cannot parse");
	const struct fw_set *s = find_set(t, l->rate_set);
	if (s && !join_family(&p->fam, s->family))
		return fail(p, "rate limit set of another family");
	if (!p->fam)
		return fail(p, "per-source limit without an address family");
	p->rate_set = l->rate_set;
	return 0;
}

static int check_text(struct rule_plan *p, const struct fw_rule *r)
{
	if (!quotable(r->iifname, IFNAMSIZ) || !quotable(r->oifname, IFNAMSIZ))
		return fail(p, "interface name nft cannot quote");
	if (!strcmp(r->iifname, "*") || !strcmp(r->oifname, "*"))
		return fail(p, "interface name \"*\" (nft refuses all-wildcards)");
	if (r->iifname_invert && !r->iifname[0])
		return fail(p, "negated interface match without a name");
	if (!quotable(r->comment, sizeof(r->comment)))
		return fail(p, "comment nft cannot quote");
	/* nft expands $name inside a log prefix, with no escape for '$' */
	if (!quotable(r->log_prefix, sizeof(r->log_prefix)) ||
	    strchr(r->log_prefix, '$'))
		return fail(p, "log prefix nft cannot quote");
	if (r->ct_state & ~(uint32_t)(FW_CT_INVALID | FW_CT_ESTABLISHED |
				      FW_CT_RELATED | FW_CT_NEW | FW_CT_UNTRACKED))
		return fail(p, "unknown ct state bit");
	if ((unsigned)r->verdict > FW_VERDICT_REJECT)
		return fail(p, "unknown verdict");
	return 0;
}

/* Where the family match goes: see enum plan_dep. */
static void plan_dependency(struct rule_plan *p, const struct fw_rule *r)
{
	if (p->saddr.kind || p->daddr.kind || p->icmp_proto || p->rate_set)
		p->dep = DEP_IMPLICIT;
	else if (p->fam && r->verdict == FW_VERDICT_REJECT)
		p->dep = DEP_HEAD;
	else if (p->fam)
		p->dep = DEP_EXPLICIT;
}

static bool rule_is_empty(const struct rule_plan *p, const struct fw_rule *r)
{
	return !r->iifname[0] && !r->oifname[0] && !p->fam && !p->l4.n &&
	       !r->n_sport && !r->n_dport && !r->ct_state && !r->has_limit &&
	       !r->counter && !r->log && r->verdict == FW_VERDICT_NONE;
}

int rule_plan_build(struct rule_plan *p, const struct fw_rule *r,
		    const struct fw_table *t)
{
	int ret;

	memset(p, 0, sizeof(*p));
	if (r->family && r->family != NFPROTO_IPV4 && r->family != NFPROTO_IPV6)
		return fail(p, "family is neither ipv4 nor ipv6");
	p->fam = r->family;
	if ((ret = check_text(p, r)) < 0 ||
	    (ret = plan_addr(p, &p->saddr, r->saddr, r->n_saddr, r->saddr_set,
			     r->saddr_invert, t)) < 0 ||
	    (ret = plan_addr(p, &p->daddr, r->daddr, r->n_daddr, r->daddr_set, false, t)) < 0 ||
	    (ret = plan_l4(p, r)) < 0 ||
	    (ret = plan_ports(p, &p->sport, r->sport, r->n_sport)) < 0 ||
	    (ret = plan_ports(p, &p->dport, r->dport, r->n_dport)) < 0 ||
	    (ret = plan_limit(p, r, t)) < 0)
		return ret;
	if ((p->saddr.kind == MATCH_NAMED || p->daddr.kind == MATCH_NAMED) && !p->fam)
		return fail(p, "address set without an address family");
	if (rule_is_empty(p, r))
		return fail(p, "rule matches nothing and does nothing");
	plan_dependency(p, r);
	return 0;
}

void rule_plan_free(struct rule_plan *p)
{
	cvz_rangeset_free(&p->saddr.rs);
	cvz_rangeset_free(&p->daddr.rs);
	free(p->sport.v);
	free(p->dport.v);
	memset(p, 0, sizeof(*p));
}

static bool ranges_normal4(const struct cvz_range4 *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].lo > v[i].hi ||
		    (i && (v[i].lo <= v[i - 1].hi || v[i].lo - 1 == v[i - 1].hi)))
			return false;
	return true;
}

static bool ranges_normal6(const struct cvz_range6 *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].lo > v[i].hi ||
		    (i && (v[i].lo <= v[i - 1].hi || v[i].lo - 1 == v[i - 1].hi)))
			return false;
	return true;
}

int plan_check_set(const struct fw_set *s, const char **why)
{
	if (!set_name_ok(s->name))
		*why = "set name nft cannot parse";
	else if (s->family != NFPROTO_IPV4 && s->family != NFPROTO_IPV6)
		*why = "set family is neither ipv4 nor ipv6";
	else if (s->kind != FW_SET_ADDR && s->kind != FW_SET_RATELIMIT)
		*why = "unknown set kind";
	else if (s->kind == FW_SET_ADDR &&
		 !(s->family == NFPROTO_IPV4 ? ranges_normal4(s->elems.v4, s->elems.n4)
					     : ranges_normal6(s->elems.v6, s->elems.n6)))
		*why = "set elements are not normalised";
	else
		return 0;
	return -EINVAL;
}

const char *plan_nfproto_name(uint8_t fam)
{
	return fam == NFPROTO_IPV4 ? "ipv4" : fam == NFPROTO_IPV6 ? "ipv6" : "?";
}

const char *plan_limit_unit_name(uint64_t secs)
{
	switch (secs) {
	case 1: return "second";
	case 60: return "minute";
	case 3600: return "hour";
	case 86400: return "day";
	case 604800: return "week";
	default: return NULL;
	}
}
