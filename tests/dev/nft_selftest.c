/* Developer self-test for nft.c and render.c (run by nft_selftest.sh, inside
 * network namespaces it creates).
 *
 *   nft_selftest cases           names of the hand-built tables, one a line,
 *                                with "canonical" or "noncanonical"
 *   nft_selftest render CASE     the nft script render_table() prints
 *   nft_selftest apply CASE      nft_apply_table() in the current netns
 *   nft_selftest dump            set attributes `nft list` does not show
 *                                (flags, key, size, policy, userdata bytes)
 *   nft_selftest errors          kernel refusals mapped to their origin, and
 *                                atomicity (run in a netns holding a table)
 *
 * The cases together use every construct of include/ruleset.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <libnftnl/set.h>

#include "nft.h"
#include "render.h"
#include "ruleset.h"

__attribute__((noreturn)) static void die(const char *what, const char *detail)
{
	fprintf(stderr, "%s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
	exit(2);
}

/* ---- building tables by hand ---------------------------------------------- */

static struct fw_rule *rule(struct fw_table *t, enum fw_hook h, const char *origin)
{
	struct fw_rule *r = fw_chain_add_rule(&t->chains[h]);

	if (!r)
		die("out of memory", NULL);
	r->origin = origin ? strdup(origin) : NULL;
	return r;
}

static struct cvz_prefix prefix(const char *s)
{
	struct cvz_prefix p;
	const char *why;

	if (cvz_prefix_parse(s, &p, &why, NULL, 0) < 0)
		die(s, why);
	return p;
}

/* "10.0.0.0/8 192.0.2.1" -> array */
static struct cvz_prefix *prefixes(const char *list, size_t *n)
{
	char *copy = strdup(list), *save = NULL;
	struct cvz_prefix *v = calloc(64, sizeof(*v));

	*n = 0;
	for (char *tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
		v[(*n)++] = prefix(tok);
	free(copy);
	return v;
}

static void saddr(struct fw_rule *r, const char *list)
{
	r->saddr = prefixes(list, &r->n_saddr);
}

static void daddr(struct fw_rule *r, const char *list)
{
	r->daddr = prefixes(list, &r->n_daddr);
}

/* "22 80 1000-2000" -> array */
static struct fw_portrange *ports(const char *list, size_t *n)
{
	struct fw_portrange *v = calloc(64, sizeof(*v));
	const char *s = list;
	int used;
	unsigned lo, hi;

	*n = 0;
	while (*s) {
		if (sscanf(s, "%u-%u%n", &lo, &hi, &used) != 2) {
			if (sscanf(s, "%u%n", &lo, &used) != 1)
				die("bad ports", list);
			hi = lo;
		}
		v[(*n)++] = (struct fw_portrange){ (uint16_t)lo, (uint16_t)hi };
		s += used;
		s += strspn(s, " ");
	}
	return v;
}

static void protos(struct fw_rule *r, int a, int b)
{
	r->l4proto[r->n_l4proto++] = (uint8_t)a;
	if (b)
		r->l4proto[r->n_l4proto++] = (uint8_t)b;
}

static void icmp_types(struct fw_rule *r, const uint8_t *v, size_t n)
{
	r->icmp_type = malloc(n);
	memcpy(r->icmp_type, v, n);
	r->n_icmp_type = n;
}

static void limit(struct fw_rule *r, uint64_t rate, uint64_t unit, uint32_t burst,
		  const char *per_source_set)
{
	r->has_limit = true;
	r->limit = (struct fw_limit){ .rate = rate, .unit_secs = unit, .burst = burst };
	if (per_source_set) {
		r->limit.per_source = true;
		snprintf(r->limit.rate_set, sizeof(r->limit.rate_set), "%s", per_source_set);
	}
}

static struct fw_set *addr_set(struct fw_table *t, const char *name, uint8_t fam,
			       const char *list)
{
	struct fw_set *s = fw_table_add_set(t);
	size_t n;
	struct cvz_prefix *v = prefixes(list, &n);

	snprintf(s->name, sizeof(s->name), "%s", name);
	s->kind = FW_SET_ADDR;
	s->family = fam;
	s->origin = strdup(name);
	for (size_t i = 0; i < n; i++)
		if (cvz_rangeset_add_prefix(&s->elems, &v[i]) < 0)
			die("out of memory", NULL);
	cvz_rangeset_normalize(&s->elems);
	free(v);
	return s;
}

static void rate_set(struct fw_table *t, const char *name, uint8_t fam,
		     uint32_t size, uint64_t timeout_ms)
{
	struct fw_set *s = fw_table_add_set(t);

	snprintf(s->name, sizeof(s->name), "%s", name);
	s->kind = FW_SET_RATELIMIT;
	s->family = fam;
	s->size = size;
	s->timeout_ms = timeout_ms;
	s->origin = strdup(name);
}

/* ---- the cases -------------------------------------------------------------- */

static void basic_sets(struct fw_table *t)
{
	struct fw_set *s = addr_set(t, "bl4", NFPROTO_IPV4,
				    "10.0.0.0/8 192.0.2.1 240.0.0.0/4 198.51.100.0/29");
	if (cvz_rangeset_add4(&s->elems, 0xc6336408, 0xc6336409) < 0) /* .8-.9 */
		die("out of memory", NULL);
	cvz_rangeset_normalize(&s->elems); /* 198.51.100.0-198.51.100.9 */
	addr_set(t, "bl6", NFPROTO_IPV6, "2001:db8::1 fc00::/7 ffff::/16");
	addr_set(t, "zero4", NFPROTO_IPV4, "0.0.0.0/8 10.0.0.1 255.255.255.255");
	addr_set(t, "all6", NFPROTO_IPV6, "::/0");
	addr_set(t, "empty4", NFPROTO_IPV4, "");
	rate_set(t, "rl4", NFPROTO_IPV4, 65535, 60000);
	rate_set(t, "rl6", NFPROTO_IPV6, 1000, 90500);
}

static void basic_input_addrs(struct fw_table *t)
{
	struct fw_rule *r;

	r = rule(t, FW_HOOK_INPUT, "p:10:1 (blocklist v4)");
	r->family = NFPROTO_IPV4, r->saddr_set = "bl4", r->counter = true;
	r->verdict = FW_VERDICT_DROP;
	r = rule(t, FW_HOOK_INPUT, "p:11:1");
	r->family = NFPROTO_IPV6, r->saddr_set = "bl6", r->counter = true;
	r->verdict = FW_VERDICT_DROP;
	r = rule(t, FW_HOOK_INPUT, "p:12:1");
	r->family = NFPROTO_IPV4, r->daddr_set = "zero4", r->log = true;
	strcpy(r->log_prefix, "BL ");
	r->verdict = FW_VERDICT_DROP;
	r = rule(t, FW_HOOK_INPUT, "p:13:1");
	saddr(r, "172.18.0.0/16"), r->verdict = FW_VERDICT_ACCEPT;
	r = rule(t, FW_HOOK_INPUT, "p:14:1");
	saddr(r, "172.18.128.0/17"), daddr(r, "10.1.2.3"), r->verdict = FW_VERDICT_ACCEPT;
	r = rule(t, FW_HOOK_INPUT, "p:15:1"); /* merges into one non-prefix range */
	saddr(r, "10.0.0.0/24 10.0.1.0/24 10.0.2.0/24"), r->verdict = FW_VERDICT_ACCEPT;
	r = rule(t, FW_HOOK_INPUT, "p:16:1"); /* merges into one prefix */
	saddr(r, "10.0.0.0/9 10.128.0.0/9"), r->verdict = FW_VERDICT_ACCEPT;
	r = rule(t, FW_HOOK_INPUT, "p:17:1");
	saddr(r, "0.0.0.0/0"), r->verdict = FW_VERDICT_ACCEPT;
	r = rule(t, FW_HOOK_INPUT, "p:18:1");
	saddr(r, "10.0.0.0/8 192.168.0.0/16 198.51.100.7"), daddr(r, "192.0.2.0/24 203.0.113.0/24");
	r->verdict = FW_VERDICT_ACCEPT;
	r = rule(t, FW_HOOK_INPUT, "p:19:1");
	saddr(r, "fc00::/7"), r->verdict = FW_VERDICT_ACCEPT;
	r = rule(t, FW_HOOK_INPUT, "p:20:1");
	saddr(r, "2001:db8::/32"), daddr(r, "2001:db8:1::/64"), r->verdict = FW_VERDICT_ACCEPT;
	r = rule(t, FW_HOOK_INPUT, "p:21:1");
	saddr(r, "2001:db8::1"), daddr(r, "2001:db8::/48 ff00::/8"), r->verdict = FW_VERDICT_ACCEPT;
	r = rule(t, FW_HOOK_INPUT, "p:22:1");
	r->family = NFPROTO_IPV6, r->saddr_set = "all6", daddr(r, "::1 ::2");
	r->verdict = FW_VERDICT_ACCEPT;
}

static void basic_input_ports(struct fw_table *t)
{
	struct fw_rule *r;

	r = rule(t, FW_HOOK_INPUT, "p:30:1");
	protos(r, IPPROTO_TCP, 0), r->dport = ports("443 22 80 22", &r->n_dport);
	r->verdict = FW_VERDICT_ACCEPT;
	r = rule(t, FW_HOOK_INPUT, "p:31:1");
	protos(r, IPPROTO_TCP, 0), r->dport = ports("1000-2000", &r->n_dport);
	r->verdict = FW_VERDICT_ACCEPT;
	r = rule(t, FW_HOOK_INPUT, "p:32:1");
	protos(r, IPPROTO_TCP, 0), r->sport = ports("53", &r->n_sport);
	r->dport = ports("1024-65535", &r->n_dport), r->verdict = FW_VERDICT_ACCEPT;
	r = rule(t, FW_HOOK_INPUT, "p:33:1");
	protos(r, IPPROTO_UDP, 0), r->dport = ports("123 53", &r->n_dport);
	r->verdict = FW_VERDICT_ACCEPT;
	r = rule(t, FW_HOOK_INPUT, "p:34:1");
	protos(r, IPPROTO_TCP, 0), r->dport = ports("22 1000-2000 1500-2500 60000-65535", &r->n_dport);
	r->verdict = FW_VERDICT_ACCEPT;
	r = rule(t, FW_HOOK_INPUT, "p:35:1");
	protos(r, IPPROTO_UDP, IPPROTO_TCP), r->dport = ports("53", &r->n_dport);
	r->verdict = FW_VERDICT_ACCEPT;
	r = rule(t, FW_HOOK_INPUT, "p:36:1");
	protos(r, IPPROTO_TCP, IPPROTO_UDP), r->sport = ports("53 5353", &r->n_sport);
	r->dport = ports("0-1023 1024 8080-8090", &r->n_dport), r->verdict = FW_VERDICT_ACCEPT;
	r = rule(t, FW_HOOK_INPUT, "p:37:1");
	protos(r, IPPROTO_TCP, 0), r->dport = ports("22", &r->n_dport);
	r->sport = ports("1-3 4", &r->n_sport), r->verdict = FW_VERDICT_ACCEPT;
	r = rule(t, FW_HOOK_INPUT, "p:38:1");
	protos(r, IPPROTO_TCP, 0), r->verdict = FW_VERDICT_ACCEPT;
	r = rule(t, FW_HOOK_INPUT, "p:39:1");
	protos(r, IPPROTO_UDP, IPPROTO_TCP), r->verdict = FW_VERDICT_ACCEPT;
	r = rule(t, FW_HOOK_INPUT, "p:40:1");
	protos(r, 250, IPPROTO_SCTP), r->l4proto[r->n_l4proto++] = IPPROTO_GRE;
	r->verdict = FW_VERDICT_DROP;
	r = rule(t, FW_HOOK_INPUT, "p:41:1");
	protos(r, IPPROTO_ICMPV6, 0), r->verdict = FW_VERDICT_ACCEPT;
}

static void basic_input_icmp_limits(struct fw_table *t)
{
	static const uint8_t v4[] = { 8 }, v6[] = { 135, 128, 200, 1, 132 }, v4b[] = { 42, 8, 0 };
	struct fw_rule *r;

	r = rule(t, FW_HOOK_INPUT, "p:50:1");
	protos(r, IPPROTO_ICMP, 0), icmp_types(r, v4, 1), r->family = NFPROTO_IPV4;
	limit(r, 5, 1, 10, NULL), r->verdict = FW_VERDICT_ACCEPT;
	r = rule(t, FW_HOOK_INPUT, "p:51:1");
	protos(r, IPPROTO_ICMPV6, 0), icmp_types(r, v6, 5), r->verdict = FW_VERDICT_ACCEPT;
	r = rule(t, FW_HOOK_INPUT, "p:52:1");
	r->ct_state = FW_CT_NEW, protos(r, IPPROTO_ICMP, 0), icmp_types(r, v4b, 3);
	r->verdict = FW_VERDICT_ACCEPT;
	r = rule(t, FW_HOOK_INPUT, "p:53:1");
	protos(r, IPPROTO_TCP, 0), r->dport = ports("8000", &r->n_dport), r->family = NFPROTO_IPV4;
	limit(r, 100, 60, 20, "rl4"), r->verdict = FW_VERDICT_ACCEPT;
	r = rule(t, FW_HOOK_INPUT, "p:54:1");
	protos(r, IPPROTO_TCP, 0), r->dport = ports("8000", &r->n_dport), r->family = NFPROTO_IPV6;
	limit(r, 3, 3600, 5, "rl6"), r->verdict = FW_VERDICT_DROP;
	r = rule(t, FW_HOOK_INPUT, "p:55:1"); /* dependency once: saddr, icmp, dynset */
	saddr(r, "198.51.100.0/24 203.0.113.0/24"), protos(r, IPPROTO_ICMP, 0);
	icmp_types(r, v4, 1), limit(r, 1, 86400, 1, "rl4"), r->counter = true;
	r->verdict = FW_VERDICT_ACCEPT;
	r = rule(t, FW_HOOK_INPUT, "p:56:1");
	limit(r, 10, 60, 5, NULL), r->log = true, strcpy(r->log_prefix, "DROPPED: ");
	r = rule(t, FW_HOOK_INPUT, "p:57:1");
	r->log = true;
	r = rule(t, FW_HOOK_INPUT, "p:58:1");
	r->family = NFPROTO_IPV4, r->counter = true;
	r = rule(t, FW_HOOK_INPUT, "p:59:1");
	r->family = NFPROTO_IPV6, protos(r, IPPROTO_TCP, 0), r->dport = ports("22", &r->n_dport);
	limit(r, 7, 604800, 3, NULL), r->verdict = FW_VERDICT_ACCEPT;
}

static void basic_input_misc(struct fw_table *t)
{
	struct fw_rule *r;

	r = rule(t, FW_HOOK_INPUT, "p:60:1");
	strcpy(r->iifname, "lo"), r->verdict = FW_VERDICT_ACCEPT;
	r = rule(t, FW_HOOK_INPUT, "p:61:1");
	strcpy(r->iifname, "br-*"), strcpy(r->oifname, "eth0");
	strcpy(r->comment, "bridges: a b!#$%&'()*+,-./:;<=>?@[]^_`{|}~");
	r->verdict = FW_VERDICT_ACCEPT;
	r = rule(t, FW_HOOK_INPUT, "p:62:1");
	r->ct_state = FW_CT_ESTABLISHED | FW_CT_RELATED, r->verdict = FW_VERDICT_ACCEPT;
	r = rule(t, FW_HOOK_INPUT, "p:63:1");
	r->ct_state = FW_CT_INVALID, r->verdict = FW_VERDICT_DROP;
	r = rule(t, FW_HOOK_INPUT, "p:64:1");
	r->ct_state = 0x4f, r->counter = true, r->verdict = FW_VERDICT_ACCEPT;
	r = rule(t, FW_HOOK_INPUT, "p:65:1");
	r->ct_state = FW_CT_NEW, protos(r, IPPROTO_TCP, 0), r->dport = ports("22", &r->n_dport);
	r->verdict = FW_VERDICT_REJECT;
	r = rule(t, FW_HOOK_INPUT, "p:66:1");
	saddr(r, "1.2.3.4"), r->verdict = FW_VERDICT_REJECT;
	r = rule(t, FW_HOOK_INPUT, "p:67:1");
	saddr(r, "::1"), r->verdict = FW_VERDICT_REJECT;
	r = rule(t, FW_HOOK_INPUT, "p:68:1"); /* nfproto at the head, hidden */
	r->family = NFPROTO_IPV6, protos(r, IPPROTO_TCP, 0), r->dport = ports("23", &r->n_dport);
	r->verdict = FW_VERDICT_REJECT;
	r = rule(t, FW_HOOK_INPUT, "p:69:1"); /* nfproto at the head, shown */
	r->family = NFPROTO_IPV4, strcpy(r->iifname, "eth0"), r->log = true;
	r->verdict = FW_VERDICT_REJECT;
	r = rule(t, FW_HOOK_INPUT, "p:70:1");
	r->family = NFPROTO_IPV4, r->ct_state = FW_CT_NEW, r->counter = true;
	r->verdict = FW_VERDICT_REJECT, strcpy(r->comment, "x");
	r = rule(t, FW_HOOK_INPUT, NULL);
	r->verdict = FW_VERDICT_REJECT;
	r = rule(t, FW_HOOK_INPUT, "p:72:1");
	strcpy(r->iifname, "a-very-long-if0"), r->verdict = FW_VERDICT_DROP;
}

static void basic_other_chains(struct fw_table *t)
{
	struct fw_rule *r;

	r = rule(t, FW_HOOK_FORWARD, "p:80:1");
	r->ct_state = FW_CT_ESTABLISHED | FW_CT_RELATED, r->verdict = FW_VERDICT_ACCEPT;
	r = rule(t, FW_HOOK_FORWARD, "p:81:1");
	strcpy(r->iifname, "br-*"), strcpy(r->oifname, "br-*"), r->verdict = FW_VERDICT_ACCEPT;
	r = rule(t, FW_HOOK_OUTPUT, "p:82:1");
	strcpy(r->oifname, "eth0"), daddr(r, "192.0.2.0/24"), protos(r, IPPROTO_TCP, 0);
	r->dport = ports("25", &r->n_dport), r->verdict = FW_VERDICT_REJECT;
	r = rule(t, FW_HOOK_OUTPUT, "p:83:1");
	r->family = NFPROTO_IPV6, r->daddr_set = "bl6", r->counter = true, r->log = true;
	r->verdict = FW_VERDICT_DROP;
}

static void case_basic(struct fw_table *t)
{
	basic_sets(t);
	t->chains[FW_HOOK_INPUT].policy_drop = true;
	t->chains[FW_HOOK_FORWARD].policy_drop = true;
	basic_input_addrs(t);
	basic_input_ports(t);
	basic_input_icmp_limits(t);
	basic_input_misc(t);
	basic_other_chains(t);
}

/* Corners: whole address spaces, keys at 0 and at the top, duplicates that
 * leave one value, longest strings. */
static void case_edges(struct fw_table *t)
{
	static const uint8_t dup8[] = { 8, 8 };
	struct fw_rule *r;
	char longtext[FW_COMMENT_MAX];

	memset(longtext, 'x', sizeof(longtext) - 1);
	longtext[sizeof(longtext) - 1] = '\0';
	r = rule(t, FW_HOOK_INPUT, "e:1");
	saddr(r, "::/0"), r->verdict = FW_VERDICT_ACCEPT;
	r = rule(t, FW_HOOK_INPUT, "e:2");
	saddr(r, "0.0.0.0/8 255.0.0.0/8"), daddr(r, "0.0.0.0/1 128.0.0.0/1");
	r->verdict = FW_VERDICT_ACCEPT;
	r = rule(t, FW_HOOK_INPUT, "e:3");
	saddr(r, "::/8 ffff::/16"), r->verdict = FW_VERDICT_ACCEPT;
	r = rule(t, FW_HOOK_INPUT, "e:4");
	protos(r, IPPROTO_UDP, 0), r->dport = ports("0 80", &r->n_dport);
	r->sport = ports("0-10 65535", &r->n_sport), r->verdict = FW_VERDICT_ACCEPT;
	r = rule(t, FW_HOOK_INPUT, "e:5");
	protos(r, IPPROTO_TCP, IPPROTO_TCP), r->dport = ports("0-65535", &r->n_dport);
	r->verdict = FW_VERDICT_ACCEPT;
	r = rule(t, FW_HOOK_INPUT, "e:6");
	protos(r, IPPROTO_ICMP, 0), icmp_types(r, dup8, 2), r->verdict = FW_VERDICT_ACCEPT;
	r = rule(t, FW_HOOK_INPUT, "e:7");
	r->family = NFPROTO_IPV4, protos(r, IPPROTO_TCP, 0), r->dport = ports("80", &r->n_dport);
	limit(r, 2, 1, 4, "rlx"), r->verdict = FW_VERDICT_REJECT;
	rate_set(t, "rlx", NFPROTO_IPV4, 16, 2000);
	r = rule(t, FW_HOOK_INPUT, "e:8");
	strcpy(r->iifname, "abcdefghijklmn*"), strcpy(r->oifname, "x*");
	r->log = true, memcpy(r->log_prefix, longtext, sizeof(r->log_prefix));
	memcpy(r->comment, longtext, sizeof(r->comment));
	r = rule(t, FW_HOOK_INPUT, "e:9");
	r->family = NFPROTO_IPV6, r->verdict = FW_VERDICT_DROP;
	r = rule(t, FW_HOOK_INPUT, "e:10");
	r->family = NFPROTO_IPV6, r->verdict = FW_VERDICT_REJECT;
	r = rule(t, FW_HOOK_INPUT, "e:11");
	protos(r, IPPROTO_TCP, IPPROTO_UDP), r->dport = ports("1 2", &r->n_dport);
	r->family = NFPROTO_IPV4, r->ct_state = FW_CT_NEW, r->verdict = FW_VERDICT_REJECT;
}

/* Negated matches (`!=`), as lockdown compiles them: a compare for one
 * byte-aligned prefix, bitwise + compare for any other prefix, one range
 * expression for a range that is no prefix, an inverted lookup for an
 * anonymous or a named set; and a negated interface name. */
static void case_negated(struct fw_table *t)
{
	struct fw_rule *r;

	addr_set(t, "nbl4", NFPROTO_IPV4, "192.0.2.0/24");
	addr_set(t, "nbl6", NFPROTO_IPV6, "2001:db8:bad::/48");
	t->chains[FW_HOOK_INPUT].policy_drop = true;
	r = rule(t, FW_HOOK_INPUT, "n:1");
	strcpy(r->iifname, "lo"), r->iifname_invert = true;
	saddr(r, "10.20.0.0/16 127.0.0.0/8"), r->saddr_invert = true;
	r->ct_state = FW_CT_NEW, r->counter = true, r->verdict = FW_VERDICT_DROP;
	strcpy(r->comment, "lockdown");
	r = rule(t, FW_HOOK_INPUT, "n:2");
	strcpy(r->iifname, "lo"), r->iifname_invert = true;
	saddr(r, "::1 fd00:20::/48"), r->saddr_invert = true;
	r->ct_state = FW_CT_NEW, r->counter = true, r->verdict = FW_VERDICT_DROP;
	strcpy(r->comment, "lockdown");
	r = rule(t, FW_HOOK_INPUT, "n:3");
	saddr(r, "10.0.0.0/8"), r->saddr_invert = true, r->verdict = FW_VERDICT_DROP;
	r = rule(t, FW_HOOK_INPUT, "n:4");
	saddr(r, "10.1.2.0/23"), r->saddr_invert = true, daddr(r, "10.1.2.3");
	r->verdict = FW_VERDICT_REJECT;
	r = rule(t, FW_HOOK_INPUT, "n:5"); /* merges into one non-prefix range */
	saddr(r, "10.0.0.0/24 10.0.1.0/24 10.0.2.0/24"), r->saddr_invert = true;
	protos(r, IPPROTO_TCP, 0), r->dport = ports("22", &r->n_dport), r->verdict = FW_VERDICT_DROP;
	r = rule(t, FW_HOOK_INPUT, "n:6");
	saddr(r, "::1"), r->saddr_invert = true, r->ct_state = FW_CT_NEW;
	r->verdict = FW_VERDICT_DROP;
	r = rule(t, FW_HOOK_INPUT, "n:7");
	saddr(r, "fd00::/9"), r->saddr_invert = true, r->counter = true;
	r = rule(t, FW_HOOK_INPUT, "n:8");
	saddr(r, "2001:db8::1 2001:db8::2/127"), r->saddr_invert = true;
	r->verdict = FW_VERDICT_DROP;
	r = rule(t, FW_HOOK_INPUT, "n:9");
	r->family = NFPROTO_IPV4, r->saddr_set = "nbl4", r->saddr_invert = true;
	r->verdict = FW_VERDICT_ACCEPT;
	r = rule(t, FW_HOOK_INPUT, "n:10");
	r->family = NFPROTO_IPV6, r->saddr_set = "nbl6", r->saddr_invert = true;
	r->ct_state = FW_CT_NEW, r->verdict = FW_VERDICT_ACCEPT;
	r = rule(t, FW_HOOK_INPUT, "n:11");
	saddr(r, "0.0.0.0/0"), r->saddr_invert = true, r->verdict = FW_VERDICT_DROP;
	r = rule(t, FW_HOOK_INPUT, "n:12");
	strcpy(r->iifname, "br-*"), r->iifname_invert = true, r->verdict = FW_VERDICT_ACCEPT;
	r = rule(t, FW_HOOK_INPUT, "n:13");
	strcpy(r->iifname, "eth0"), r->iifname_invert = true, r->family = NFPROTO_IPV6;
	protos(r, IPPROTO_TCP, 0), r->dport = ports("443", &r->n_dport);
	limit(r, 1, 60, 1, NULL), r->verdict = FW_VERDICT_ACCEPT;
	r = rule(t, FW_HOOK_FORWARD, "n:14");
	strcpy(r->iifname, "docker0"), r->iifname_invert = true, strcpy(r->oifname, "br-*");
	saddr(r, "172.17.0.0/16"), r->saddr_invert = true, r->verdict = FW_VERDICT_DROP;
}

static void case_empty(struct fw_table *t)
{
	(void)t;
}

/* Big sets: paged elements messages and batch pages. */
static void case_big(struct fw_table *t)
{
	struct fw_set *s4 = fw_table_add_set(t), *s6 = fw_table_add_set(t);
	struct fw_rule *r;

	*s4 = (struct fw_set){ .name = "big4", .kind = FW_SET_ADDR, .family = NFPROTO_IPV4 };
	*s6 = (struct fw_set){ .name = "big6", .kind = FW_SET_ADDR, .family = NFPROTO_IPV6 };
	for (uint32_t i = 0; i < 150000; i++) /* singles, /30s and odd ranges */
		if (cvz_rangeset_add4(&s4->elems, 0x0a000000u + i * 8, 0x0a000000u + i * 8 + (i % 3 ? 3 : 0)) < 0)
			die("out of memory", NULL);
	for (unsigned __int128 i = 0; i < 30000; i++) {
		unsigned __int128 base = ((unsigned __int128)0x20010db8u << 96) + (i << 64);
		if (cvz_rangeset_add6(&s6->elems, base, base + (i % 2 ? 0xffff : 0)) < 0)
			die("out of memory", NULL);
	}
	cvz_rangeset_normalize(&s4->elems);
	cvz_rangeset_normalize(&s6->elems);
	r = rule(t, FW_HOOK_INPUT, "big:1");
	r->family = NFPROTO_IPV4, r->saddr_set = "big4", r->verdict = FW_VERDICT_DROP;
	r = rule(t, FW_HOOK_INPUT, "big:2");
	r->family = NFPROTO_IPV6, r->saddr_set = "big6", r->verdict = FW_VERDICT_DROP;
	/* an anonymous set that needs several element messages */
	r = rule(t, FW_HOOK_INPUT, "big:3");
	protos(r, IPPROTO_TCP, 0), r->verdict = FW_VERDICT_ACCEPT;
	r->dport = calloc(6000, sizeof(*r->dport));
	for (unsigned i = 0; i < 6000; i++)
		r->dport[r->n_dport++] = (struct fw_portrange){ (uint16_t)(i * 10), (uint16_t)(i * 10 + (i % 2)) };
}

/* Installed identically both ways, but `nft list` prints it differently
 * from what render printed (see the report in nft_selftest.sh). */
static void case_noncanonical(struct fw_table *t)
{
	struct fw_rule *r;

	rate_set(t, "rl_nosize", NFPROTO_IPV4, 0, 0);
	r = rule(t, FW_HOOK_INPUT, "nc:1"); /* nft hides the nfproto match */
	r->family = NFPROTO_IPV4, protos(r, IPPROTO_ICMP, 0), r->verdict = FW_VERDICT_ACCEPT;
	r = rule(t, FW_HOOK_INPUT, "nc:2");
	r->family = NFPROTO_IPV6, protos(r, IPPROTO_ICMPV6, 0), r->verdict = FW_VERDICT_ACCEPT;
	r = rule(t, FW_HOOK_INPUT, "nc:3");
	limit(r, 1, 1, 2, "rl_nosize"), r->family = NFPROTO_IPV4;
}

static const struct tcase {
	const char *name;
	void (*build)(struct fw_table *t);
	bool canonical;
} cases[] = {
	{ "basic", case_basic, true },
	{ "edges", case_edges, true },
	{ "empty", case_empty, true },
	{ "big", case_big, true },
	{ "negated", case_negated, true },
	{ "noncanonical", case_noncanonical, false },
};

static const struct tcase *find_case(const char *name)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (!strcmp(cases[i].name, name))
			return &cases[i];
	die("no such case", name);
	return NULL;
}

/* ---- dump: set attributes that `nft list` does not show --------------------- */

static int dump_set_cb(const struct nlmsghdr *nlh, void *data)
{
	struct nftnl_set *s = nftnl_set_alloc();
	uint32_t len = 0;
	const unsigned char *ud;

	(void)data;
	if (!s || nftnl_set_nlmsg_parse(nlh, s) < 0)
		return MNL_CB_ERROR;
	printf("set %s flags 0x%x key %u/%u", nftnl_set_get_str(s, NFTNL_SET_NAME),
	       nftnl_set_get_u32(s, NFTNL_SET_FLAGS), nftnl_set_get_u32(s, NFTNL_SET_KEY_TYPE),
	       nftnl_set_get_u32(s, NFTNL_SET_KEY_LEN));
	if (nftnl_set_is_set(s, NFTNL_SET_POLICY))
		printf(" policy %u", nftnl_set_get_u32(s, NFTNL_SET_POLICY));
	if (nftnl_set_is_set(s, NFTNL_SET_DESC_SIZE))
		printf(" size %u", nftnl_set_get_u32(s, NFTNL_SET_DESC_SIZE));
	if (nftnl_set_is_set(s, NFTNL_SET_TIMEOUT))
		printf(" timeout %llu", (unsigned long long)nftnl_set_get_u64(s, NFTNL_SET_TIMEOUT));
	if (nftnl_set_is_set(s, NFTNL_SET_GC_INTERVAL))
		printf(" gc %u", nftnl_set_get_u32(s, NFTNL_SET_GC_INTERVAL));
	ud = nftnl_set_get_data(s, NFTNL_SET_USERDATA, &len);
	printf(" udata");
	for (uint32_t i = 0; ud && i < len; i++)
		printf(" %02x", ud[i]);
	printf("\n");
	nftnl_set_free(s);
	return MNL_CB_OK;
}

static int cmd_dump(void)
{
	static char buf[1 << 16];
	struct mnl_socket *nl = mnl_socket_open(NETLINK_NETFILTER);
	struct nftnl_set *t = nftnl_set_alloc();
	struct nlmsghdr *nlh;
	int ret;

	if (!nl || !t || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0)
		die("netlink", strerror(errno));
	nftnl_set_set_str(t, NFTNL_SET_TABLE, FW_TABLE_NAME);
	nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETSET, NFPROTO_INET, NLM_F_DUMP | NLM_F_ACK, 1);
	nftnl_set_nlmsg_build_payload(nlh, t);
	nftnl_set_free(t);
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		die("send", strerror(errno));
	while ((ret = (int)mnl_socket_recvfrom(nl, buf, sizeof(buf))) > 0) {
		ret = mnl_cb_run(buf, (size_t)ret, 1, mnl_socket_get_portid(nl), dump_set_cb, NULL);
		if (ret <= 0)
			break;
	}
	mnl_socket_close(nl);
	return ret < 0 ? 1 : 0;
}

/* ---- errors: refusals mapped to origins, and atomicity ---------------------- */

static int failures, passes;

static void expect(bool ok, const char *what, const char *detail)
{
	printf("%s: %s%s%s\n", ok ? "PASS" : "FAIL", what, detail ? ": " : "", detail ? detail : "");
	if (ok)
		passes++;
	else
		failures++;
}

/* Applies the table and checks the return and that err contains want. */
static void expect_refusal(struct fw_table *t, const char *what, int want_ret,
			   const char *want_err)
{
	char err[512];
	int ret = nft_apply_table(t, err, sizeof(err));
	char detail[700];

	snprintf(detail, sizeof(detail), "ret %d, err \"%s\"", ret, err);
	expect(ret == want_ret && strstr(err, want_err), what, detail);
	fw_table_free(t);
}

static void errors_kernel(void)
{
	struct fw_table t = { 0 };
	struct fw_rule *r;

	rule(&t, FW_HOOK_INPUT, "p:1:1")->verdict = FW_VERDICT_ACCEPT;
	r = rule(&t, FW_HOOK_INPUT, "policy.json:14:9 (chains.input.rules[3])");
	r->family = NFPROTO_IPV4, r->saddr_set = "nosuch", r->verdict = FW_VERDICT_DROP;
	expect_refusal(&t, "missing set", -ENOENT,
		       "policy.json:14:9 (chains.input.rules[3]): kernel refused rule: No such file or directory");

	r = rule(&t, FW_HOOK_OUTPUT, NULL);
	r->family = NFPROTO_IPV6, limit(r, 1, 1, 1, "norate"), r->verdict = FW_VERDICT_ACCEPT;
	expect_refusal(&t, "missing rate set, no origin", -ENOENT,
		       "chain output rule 1: kernel refused rule: No such file or directory");

	rate_set(&t, "twice", NFPROTO_IPV4, 10, 1000);
	rate_set(&t, "twice", NFPROTO_IPV4, 10, 1000);
	free(t.sets[1].origin);
	t.sets[1].origin = strdup("policy.json:3:5 (sets.twice)");
	expect_refusal(&t, "duplicate set", -EEXIST,
		       "policy.json:3:5 (sets.twice): kernel refused set twice: File exists");

	/* a set's size is the kernel's bound (cvz_limits.h): beyond it the
	   kernel refuses with ENFILE, reported as what it means */
	struct fw_set *full = addr_set(&t, "bl4", NFPROTO_IPV4,
				       "192.0.2.1 192.0.2.3 192.0.2.5 192.0.2.7 192.0.2.9");
	full->size = 2;
	expect_refusal(&t, "set over its size", -ENFILE,
		       "bl4: kernel refused elements of set bl4: the set is full (more elements than its size allows)");
}

static void errors_plan(void)
{
	struct fw_table t = { 0 };
	struct fw_rule *r;
	static const uint8_t echo[] = { 8 };

	r = rule(&t, FW_HOOK_INPUT, "p:9:9");
	protos(r, IPPROTO_TCP, 0), icmp_types(r, echo, 1), r->verdict = FW_VERDICT_ACCEPT;
	expect_refusal(&t, "icmp types under tcp", -EINVAL, "p:9:9: cannot express rule: icmp types");

	r = rule(&t, FW_HOOK_INPUT, "p:9:10");
	r->log = true, strcpy(r->log_prefix, "cost $5");
	expect_refusal(&t, "dollar in log prefix", -EINVAL, "p:9:10: cannot express rule: log prefix");

	r = rule(&t, FW_HOOK_INPUT, "p:9:12");
	r->saddr_invert = true, r->verdict = FW_VERDICT_DROP;
	expect_refusal(&t, "negation without addresses", -EINVAL,
		       "p:9:12: cannot express rule: negated address match without addresses");

	r = rule(&t, FW_HOOK_INPUT, "p:9:13");
	r->iifname_invert = true, r->verdict = FW_VERDICT_DROP;
	expect_refusal(&t, "negation without an interface", -EINVAL,
		       "p:9:13: cannot express rule: negated interface match without a name");

	r = rule(&t, FW_HOOK_FORWARD, "p:9:11");
	strcpy(r->comment, "only a comment");
	expect_refusal(&t, "empty rule", -EINVAL, "p:9:11: cannot express rule: rule matches nothing");

	addr_set(&t, "counter", NFPROTO_IPV4, "10.0.0.0/8");
	expect_refusal(&t, "set named like an nft keyword", -EINVAL,
		       "counter: cannot express set counter: set name");

	struct fw_set *s = addr_set(&t, "ov", NFPROTO_IPV4, "10.0.0.0/8");
	if (cvz_rangeset_add4(&s->elems, 0x0a000005u, 0x0b000005u) < 0) /* not normalised */
		die("out of memory", NULL);
	expect_refusal(&t, "unnormalised set", -EINVAL, "ov: cannot express set ov: set elements");
}

static int cmd_errors(const char *before)
{
	FILE *f;
	char now[1 << 16] = "", was[1 << 16] = "";
	size_t n;

	errors_kernel();
	errors_plan();
	/* atomic: the table installed before the refusals is still there */
	f = popen("nft list table inet " FW_TABLE_NAME, "r");
	n = f ? fread(now, 1, sizeof(now) - 1, f) : 0;
	now[n] = '\0';
	if (f)
		pclose(f);
	f = fopen(before, "r");
	n = f ? fread(was, 1, sizeof(was) - 1, f) : 0;
	was[n] = '\0';
	if (f)
		fclose(f);
	expect(was[0] && !strcmp(was, now), "table unchanged after refused batches", NULL);
	printf("errors: %d passed, %d failed\n", passes, failures);
	return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct fw_table t = { 0 };
	char err[512];
	int ret;

	if (argc == 2 && !strcmp(argv[1], "cases")) {
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
			printf("%s %s\n", cases[i].name, cases[i].canonical ? "canonical" : "noncanonical");
		return 0;
	}
	if (argc == 2 && !strcmp(argv[1], "dump"))
		return cmd_dump();
	if (argc == 3 && !strcmp(argv[1], "errors"))
		return cmd_errors(argv[2]);
	if (argc != 3 || (strcmp(argv[1], "render") && strcmp(argv[1], "apply")))
		die("usage: nft_selftest cases | render CASE | apply CASE | dump | errors LISTING", NULL);
	const struct tcase *c = find_case(argv[2]);
	c->build(&t);
	if (!strcmp(argv[1], "render"))
		ret = render_table(&t, stdout, true);
	else if ((ret = nft_apply_table(&t, err, sizeof(err))) < 0)
		fprintf(stderr, "apply: %s (%d)\n", err, ret);
	fw_table_free(&t);
	if (ret < 0)
		fprintf(stderr, "%s %s: %s\n", argv[1], argv[2], strerror(-ret));
	return ret < 0 ? 1 : 0;
}
