/* Policy files: parse with jansson, validate every key, report every problem
 * with its position. The schema is defined once, in the key tables below; the
 * list of expected keys in "unknown key" errors comes from the same tables. */
#include <errno.h>
#include <glob.h>
#include <jansson.h>
#include <netinet/in.h>
#include <linux/netfilter.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "jparse.h"
#include "cvz_limits.h"
#include "names.h"
#include "policy.h"

#define POLICY_MAX_BYTES (64u << 20)
#define LOCKDOWN_FACTOR_DEFAULT 10 /* the guide's update_rate_limits(factor=0.1) */
#define LOCKDOWN_FACTOR_MAX 1000
#define POLICY(c) ((struct policy *)(c)->owner)

/* "100/minute" -> rate and unit. */
static bool parse_rate(struct jctx *c, const char *path, json_t *v, struct fw_limit *l)
{
	static const struct {
		const char *name;
		uint64_t secs;
	} units[] = { { "second", 1 }, { "minute", 60 }, { "hour", 3600 }, { "day", 86400 } };
	if (!jp_want(c, path, v, JSON_STRING, "a rate string like \"100/minute\""))
		return false;
	const char *s = json_string_value(v);
	char *end;
	errno = 0;
	unsigned long long n = (*s >= '1' && *s <= '9') ? strtoull(s, &end, 10) : 0;
	if (n > 0 && errno == 0 && n <= UINT32_MAX && *end == '/')
		for (size_t i = 0; i < ELEMENTSOF(units); i++)
			if (strcmp(end + 1, units[i].name) == 0) {
				l->rate = n;
				l->unit_secs = units[i].secs;
				return true;
			}
	jp_err(c, path, false,
	     "bad rate \"%s\": expected N/second, N/minute, N/hour or N/day with N from 1 to %u", s,
	     UINT32_MAX);
	return false;
}

static void parse_burst(struct jctx *c, const char *path, json_t *v, struct fw_limit *l)
{
	if (!jp_want(c, path, v, JSON_INTEGER, "an integer"))
		return;
	json_int_t b = json_integer_value(v);
	if (b < 1 || b > 1000000)
		jp_err(c, path, false, "burst %lld out of range 1-1000000", (long long)b);
	else
		l->burst = (uint32_t)b;
}

/* ---- rule keys --------------------------------------------------------- */

static void rule_comment(struct jctx *c, const char *path, json_t *v, void *t)
{
	struct policy_rule *r = t;
	jp_text(c, path, v, r->comment, sizeof(r->comment));
}

static void rule_action(struct jctx *c, const char *path, json_t *v, void *t)
{
	static const char *const names[] = {
		[FW_VERDICT_ACCEPT] = "accept", [FW_VERDICT_DROP] = "drop", [FW_VERDICT_REJECT] = "reject",
	};
	struct policy_rule *r = t;
	if (!jp_want(c, path, v, JSON_STRING, "a string"))
		return;
	for (size_t i = FW_VERDICT_ACCEPT; i < ELEMENTSOF(names); i++)
		if (strcmp(json_string_value(v), names[i]) == 0) {
			r->verdict = (enum fw_verdict)i;
			return;
		}
	jp_err(c, path, false, "unknown action \"%s\" (expected accept, drop or reject)",
	     json_string_value(v));
}

static void proto_item(struct jctx *c, const char *path, json_t *v, void *t)
{
	static const struct {
		const char *name;
		uint8_t proto;
	} protos[] = { { "tcp", IPPROTO_TCP }, { "udp", IPPROTO_UDP },
		       { "icmp", IPPROTO_ICMP }, { "icmpv6", IPPROTO_ICMPV6 }, { "any", 0 } };
	struct policy_rule *r = t;
	if (!jp_want(c, path, v, JSON_STRING, "a protocol name"))
		return;
	const char *s = json_string_value(v);
	for (size_t i = 0; i < ELEMENTSOF(protos); i++) {
		if (strcmp(s, protos[i].name) != 0)
			continue;
		if (protos[i].proto == 0) {
			if (strchr(path, '['))
				jp_err(c, path, false, "\"any\" cannot be part of a protocol list");
			return;
		}
		for (size_t k = 0; k < r->n_l4proto; k++)
			if (r->l4proto[k] == protos[i].proto) {
				jp_err(c, path, false, "protocol \"%s\" listed twice", s);
				return;
			}
		r->l4proto[r->n_l4proto++] = protos[i].proto;
		return;
	}
	jp_err(c, path, false, "unknown protocol \"%s\" (expected tcp, udp, icmp, icmpv6 or any)", s);
}

static void rule_proto(struct jctx *c, const char *path, json_t *v, void *t)
{
	jp_each(c, path, v, "protocol", proto_item, t);
}

struct port_list {
	struct fw_portrange *v;
	size_t n;
};

static bool port_number(const char *s, char **end, uint16_t *out)
{
	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	unsigned long n = strtoul(s, end, 10);
	if (errno || n > 65535 || n == 0)
		return false;
	*out = (uint16_t)n;
	return true;
}

static void port_item(struct jctx *c, const char *path, json_t *v, void *arg)
{
	struct port_list *l = arg;
	struct fw_portrange pr;
	char buf[64];
	if (json_is_integer(v)) {
		json_int_t n = json_integer_value(v);
		if (n < 1 || n > 65535) {
			jp_err(c, path, false, "port %lld out of range 1-65535", (long long)n);
			return;
		}
		pr.lo = pr.hi = (uint16_t)n;
	} else if (json_is_string(v)) {
		const char *s = json_string_value(v);
		char *end = NULL;
		if (!port_number(s, &end, &pr.lo) ||
		    (*end == '-' ? !port_number(end + 1, &end, &pr.hi) || *end : (pr.hi = pr.lo, *end))) {
			jp_err(c, path, false,
			     "bad port \"%s\": expected a port 1-65535 or a range like \"1024-2048\"", s);
			return;
		}
		if (pr.lo > pr.hi) {
			jp_err(c, path, false, "bad port range \"%s\": %u is above %u", s, pr.lo, pr.hi);
			return;
		}
	} else {
		jp_err(c, path, false, "expected a port number or \"LO-HI\" range, got %s",
		     jp_value_text(v, buf, sizeof(buf)));
		return;
	}
	jp_append(c, path, (void **)&l->v, &l->n, sizeof(pr), &pr);
}

static void parse_ports(struct jctx *c, const char *path, json_t *v, struct fw_portrange **arr,
			size_t *n)
{
	struct port_list l = { *arr, *n };
	jp_each(c, path, v, "port", port_item, &l);
	*arr = l.v;
	*n = l.n;
}

static void rule_dport(struct jctx *c, const char *path, json_t *v, void *t)
{
	struct policy_rule *r = t;
	parse_ports(c, path, v, &r->dport, &r->n_dport);
}

static void rule_sport(struct jctx *c, const char *path, json_t *v, void *t)
{
	struct policy_rule *r = t;
	parse_ports(c, path, v, &r->sport, &r->n_sport);
}

static void rule_saddr(struct jctx *c, const char *path, json_t *v, void *t)
{
	struct policy_rule *r = t;
	jp_prefix_list(c, path, v, &r->saddr, &r->n_saddr);
}

static void rule_daddr(struct jctx *c, const char *path, json_t *v, void *t)
{
	struct policy_rule *r = t;
	jp_prefix_list(c, path, v, &r->daddr, &r->n_daddr);
}

struct if_list {
	char (*v)[IFNAMSIZ];
	size_t n;
};

static void ifname_item(struct jctx *c, const char *path, json_t *v, void *arg)
{
	struct if_list *l = arg;
	if (!jp_want(c, path, v, JSON_STRING, "an interface name"))
		return;
	const char *s = json_string_value(v);
	size_t n = strlen(s);
	bool ok = n > 0 && n < IFNAMSIZ && strcmp(s, "*") != 0;
	for (size_t i = 0; ok && i < n; i++)
		ok = s[i] > 0x20 && s[i] < 0x7f && s[i] != '/' && s[i] != '"' && s[i] != '\\' &&
		     (s[i] != '*' || i == n - 1);
	if (!ok) {
		jp_err(c, path, false,
		     "bad interface name \"%s\": 1-15 printable characters, no '/' or quotes, '*' only at the end",
		     s);
		return;
	}
	char name[IFNAMSIZ] = { 0 };
	memcpy(name, s, n + 1);
	jp_append(c, path, (void **)&l->v, &l->n, sizeof(name), name);
}

static void parse_ifnames(struct jctx *c, const char *path, json_t *v, char (**arr)[IFNAMSIZ],
			  size_t *n)
{
	struct if_list l = { *arr, *n };
	jp_each(c, path, v, "interface", ifname_item, &l);
	*arr = l.v;
	*n = l.n;
}

static void rule_iif(struct jctx *c, const char *path, json_t *v, void *t)
{
	struct policy_rule *r = t;
	parse_ifnames(c, path, v, &r->iif, &r->n_iif);
}

static void rule_oif(struct jctx *c, const char *path, json_t *v, void *t)
{
	struct policy_rule *r = t;
	parse_ifnames(c, path, v, &r->oif, &r->n_oif);
}

static void ct_item(struct jctx *c, const char *path, json_t *v, void *t)
{
	struct policy_rule *r = t;
	uint32_t bit;
	if (!jp_want(c, path, v, JSON_STRING, "a conntrack state"))
		return;
	if (ct_state_lookup(json_string_value(v), &bit) < 0)
		jp_err(c, path, false,
		     "unknown conntrack state \"%s\" (expected new, established, related, invalid or untracked)",
		     json_string_value(v));
	else
		r->ct_state |= bit;
}

static void rule_ct_state(struct jctx *c, const char *path, json_t *v, void *t)
{
	jp_each(c, path, v, "conntrack state", ct_item, t);
}

/* icmp types are checked against the protocol once the whole rule is read,
 * so keep the JSON value until then. */
static void rule_icmp_type(struct jctx *c, const char *path, json_t *v, void *t)
{
	(void)c;
	(void)path;
	(void)v;
	(void)t;
}

static void rule_family(struct jctx *c, const char *path, json_t *v, void *t)
{
	struct policy_rule *r = t;
	if (!jp_want(c, path, v, JSON_STRING, "\"ipv4\" or \"ipv6\""))
		return;
	const char *s = json_string_value(v);
	if (strcmp(s, "ipv4") == 0)
		r->family = NFPROTO_IPV4;
	else if (strcmp(s, "ipv6") == 0)
		r->family = NFPROTO_IPV6;
	else
		jp_err(c, path, false, "unknown family \"%s\" (expected ipv4 or ipv6)", s);
}

static void limit_rate(struct jctx *c, const char *path, json_t *v, void *t)
{
	parse_rate(c, path, v, t);
}

static void limit_burst(struct jctx *c, const char *path, json_t *v, void *t)
{
	parse_burst(c, path, v, t);
}

static void limit_per(struct jctx *c, const char *path, json_t *v, void *t)
{
	struct fw_limit *l = t;
	if (!jp_want(c, path, v, JSON_STRING, "\"source\" or \"rule\""))
		return;
	if (strcmp(json_string_value(v), "source") == 0)
		l->per_source = true;
	else if (strcmp(json_string_value(v), "rule") == 0)
		l->per_source = false;
	else
		jp_err(c, path, false, "unknown value \"%s\" (expected source or rule)", json_string_value(v));
}

static const struct jp_key limit_keys[] = {
	{ "rate", limit_rate },
	{ "burst", limit_burst },
	{ "per", limit_per },
};

static void rule_rate_limit(struct jctx *c, const char *path, json_t *v, void *t)
{
	struct policy_rule *r = t;
	r->limit.per_source = true;
	r->limit.burst = 5;
	size_t before = c->errors;
	jp_object(c, path, v, limit_keys, ELEMENTSOF(limit_keys), &r->limit);
	if (json_is_object(v) && !json_object_get(v, "rate")) {
		jp_err(c, path, false, "missing key \"rate\"");
		return;
	}
	r->has_limit = c->errors == before;
}

static void log_prefix_key(struct jctx *c, const char *path, json_t *v, void *t)
{
	jp_text(c, path, v, t, FW_LOG_PREFIX_MAX);
}

static const struct jp_key rule_log_keys[] = {
	{ "prefix", log_prefix_key },
};

static void rule_log(struct jctx *c, const char *path, json_t *v, void *t)
{
	struct policy_rule *r = t;
	if (json_is_boolean(v)) {
		r->log = json_is_true(v);
		return;
	}
	if (!json_is_object(v)) {
		jp_err(c, path, false, "expected true, false or an object with \"prefix\", got %s",
		     jp_type_name(v));
		return;
	}
	r->log = true;
	jp_object(c, path, v, rule_log_keys, ELEMENTSOF(rule_log_keys), r->log_prefix);
}

static void rule_counter(struct jctx *c, const char *path, json_t *v, void *t)
{
	struct policy_rule *r = t;
	jp_bool(c, path, v, &r->counter);
}

static const struct jp_key rule_keys[] = {
	{ "comment", rule_comment },     { "action", rule_action },
	{ "proto", rule_proto },         { "sport", rule_sport },
	{ "dport", rule_dport },         { "saddr", rule_saddr },
	{ "daddr", rule_daddr },         { "iif", rule_iif },
	{ "oif", rule_oif },             { "ct_state", rule_ct_state },
	{ "icmp_type", rule_icmp_type }, { "family", rule_family },
	{ "rate_limit", rule_rate_limit }, { "log", rule_log },
	{ "counter", rule_counter },
};

/* ---- whole-rule checks -------------------------------------------------- */

enum { FAM_V4 = 1, FAM_V6 = 2 };

static unsigned prefix_families(const struct cvz_prefix *v, size_t n)
{
	unsigned m = n ? 0 : FAM_V4 | FAM_V6;
	for (size_t i = 0; i < n; i++)
		m |= v[i].family == AF_INET ? FAM_V4 : FAM_V6;
	return m;
}

/* The address families a rule can match at all. */
static unsigned rule_families(const struct policy_rule *r)
{
	unsigned m = prefix_families(r->saddr, r->n_saddr) & prefix_families(r->daddr, r->n_daddr);
	if (r->family)
		m &= r->family == NFPROTO_IPV4 ? FAM_V4 : FAM_V6;
	bool has_v4 = false, has_v6 = false, other = false;
	for (size_t i = 0; i < r->n_l4proto; i++) {
		has_v4 |= r->l4proto[i] == IPPROTO_ICMP;
		has_v6 |= r->l4proto[i] == IPPROTO_ICMPV6;
		other |= r->l4proto[i] != IPPROTO_ICMP && r->l4proto[i] != IPPROTO_ICMPV6;
	}
	if (!other && has_v4 != has_v6)
		m &= has_v4 ? FAM_V4 : FAM_V6;
	return m;
}

static void icmp_item(struct jctx *c, const char *path, json_t *v, void *t)
{
	struct policy_rule *r = t;
	uint8_t proto = r->l4proto[0], type = 0;
	char names[1024];
	if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= 255) {
		type = (uint8_t)json_integer_value(v);
	} else if (!json_is_string(v) || icmp_type_lookup(proto, json_string_value(v), &type) < 0) {
		char buf[64];
		icmp_type_names(proto, names, sizeof(names));
		jp_err(c, path, false, "unknown %s type %s (expected 0-255 or one of: %s)",
		     proto == IPPROTO_ICMP ? "icmp" : "icmpv6", jp_value_text(v, buf, sizeof(buf)), names);
		return;
	}
	jp_append(c, path, (void **)&r->icmp_type, &r->n_icmp_type, 1, &type);
}

static void check_rule(struct jctx *c, const char *path, json_t *obj, struct policy_rule *r,
		       enum fw_hook hook)
{
	char kp[JP_PATHLEN];
	bool ports = r->n_sport || r->n_dport;
	for (size_t i = 0; ports && i < r->n_l4proto; i++)
		if (r->l4proto[i] != IPPROTO_TCP && r->l4proto[i] != IPPROTO_UDP) {
			snprintf(kp, sizeof(kp), "%s.proto", path);
			jp_err(c, kp, false, "ports need proto tcp or udp, not \"%s\"",
			     r->l4proto[i] == IPPROTO_ICMP ? "icmp" : "icmpv6");
		}
	if (ports && r->n_l4proto == 0) {
		snprintf(kp, sizeof(kp), "%s.%s", path, r->n_dport ? "dport" : "sport");
		jp_err(c, kp, false, "ports need \"proto\": \"tcp\" or \"udp\" (or both)");
	}
	json_t *icmp = json_object_get(obj, "icmp_type");
	if (icmp) {
		snprintf(kp, sizeof(kp), "%s.icmp_type", path);
		if (r->n_l4proto != 1 ||
		    (r->l4proto[0] != IPPROTO_ICMP && r->l4proto[0] != IPPROTO_ICMPV6))
			jp_err(c, kp, false, "icmp_type needs \"proto\": \"icmp\" or \"icmpv6\"");
		else
			jp_each(c, kp, icmp, "icmp type", icmp_item, r);
	}
	if (r->n_iif && hook == FW_HOOK_OUTPUT) {
		snprintf(kp, sizeof(kp), "%s.iif", path);
		jp_err(c, kp, false, "the output chain has no input interface; use \"oif\"");
	}
	if (r->n_oif && hook == FW_HOOK_INPUT) {
		snprintf(kp, sizeof(kp), "%s.oif", path);
		jp_err(c, kp, false, "the input chain has no output interface; use \"iif\"");
	}
	if (rule_families(r) == 0)
		jp_err(c, path, false,
		     "rule can never match: its addresses, protocol and family name no common address family");
	if (r->verdict == FW_VERDICT_NONE && !r->log && !r->counter)
		jp_err(c, path, false, "rule does nothing: give it an \"action\", \"log\" or \"counter\"");
}

/* ---- chains ----------------------------------------------------------- */

struct chain_target {
	struct policy_chain *chain;
	enum fw_hook hook;
};

static void chain_policy(struct jctx *c, const char *path, json_t *v, void *t)
{
	struct chain_target *ct = t;
	if (!jp_want(c, path, v, JSON_STRING, "\"accept\" or \"drop\""))
		return;
	if (strcmp(json_string_value(v), "drop") == 0)
		ct->chain->policy_drop = true;
	else if (strcmp(json_string_value(v), "accept") == 0)
		ct->chain->policy_drop = false;
	else
		jp_err(c, path, false, "unknown chain policy \"%s\" (expected accept or drop)",
		     json_string_value(v));
}

/* Parses a list of rules into ch. Failsafe rules may only accept (and need
 * no "action"). */
static void parse_rules(struct jctx *c, const char *path, json_t *v, struct policy_chain *ch,
			enum fw_hook hook, bool failsafe)
{
	if (!jp_want(c, path, v, JSON_ARRAY, "an array of rules"))
		return;
	ch->rules = calloc(json_array_size(v) + 1, sizeof(struct policy_rule));
	if (!ch->rules) {
		jp_err(c, path, false, "out of memory");
		return;
	}
	size_t i;
	json_t *item;
	json_array_foreach(v, i, item) {
		char rpath[JP_PATHLEN];
		snprintf(rpath, sizeof(rpath), "%s[%zu]", path, i);
		struct policy_rule *r = &ch->rules[ch->n_rules++];
		size_t before = c->errors;
		if (failsafe)
			r->verdict = FW_VERDICT_ACCEPT;
		jp_object(c, rpath, item, rule_keys, ELEMENTSOF(rule_keys), r);
		if (failsafe && r->verdict != FW_VERDICT_ACCEPT)
			jp_err(c, rpath, false, "failsafe rules only accept");
		else if (json_is_object(item) && c->errors == before)
			check_rule(c, rpath, item, r, hook);
		r->where = jp_where(c, rpath);
	}
}

static void chain_rules(struct jctx *c, const char *path, json_t *v, void *t)
{
	struct chain_target *ct = t;
	parse_rules(c, path, v, ct->chain, ct->hook, false);
}

/* "failsafe": rules like any other, but they only accept. */
static void top_failsafe(struct jctx *c, const char *path, json_t *v, void *t)
{
	POLICY(c)->has_failsafe = true;
	parse_rules(c, path, v, &POLICY(c)->failsafe, FW_HOOK_INPUT, true);
}

/* Without a "failsafe" key: SSH from the safelist, as Calico Felix's
 * failsafe ports keep a node reachable whatever a policy or a feed says. */
static int default_failsafe(struct policy *p)
{
	if (p->has_failsafe || p->n_safelist == 0)
		return 0;
	struct policy_rule *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	p->failsafe.rules = r;
	p->failsafe.n_rules = 1;
	r->l4proto[0] = IPPROTO_TCP;
	r->n_l4proto = 1;
	r->dport = calloc(1, sizeof(*r->dport));
	r->saddr = calloc(p->n_safelist, sizeof(*r->saddr));
	if (!r->dport || !r->saddr || asprintf(&r->where, "%s (failsafe default)", p->file) < 0)
		return -ENOMEM;
	r->dport[0] = (struct fw_portrange){ 22, 22 };
	r->n_dport = 1;
	memcpy(r->saddr, p->safelist, p->n_safelist * sizeof(*r->saddr));
	r->n_saddr = p->n_safelist;
	r->verdict = FW_VERDICT_ACCEPT;
	snprintf(r->comment, sizeof(r->comment), "failsafe: ssh from the safelist");
	return 0;
}

static const struct jp_key chain_keys[] = {
	{ "policy", chain_policy },
	{ "rules", chain_rules },
};

static void parse_chain(struct jctx *c, const char *path, json_t *v, enum fw_hook hook)
{
	struct chain_target ct = { &POLICY(c)->chains[hook], hook };
	jp_object(c, path, v, chain_keys, ELEMENTSOF(chain_keys), &ct);
	if (json_is_object(v) && !json_object_get(v, "policy"))
		jp_err(c, path, false, "missing key \"policy\" (accept or drop)");
}

static void top_chains(struct jctx *c, const char *path, json_t *v, void *t)
{
	(void)t;
	if (!jp_want(c, path, v, JSON_OBJECT, "an object with input, forward and output"))
		return;
	const char *key;
	json_t *val;
	json_object_foreach(v, key, val) {
		char cpath[JP_PATHLEN];
		snprintf(cpath, sizeof(cpath), "%s.%s", path, key);
		int h;
		for (h = 0; h < FW_HOOK_COUNT; h++)
			if (strcmp(key, fw_hook_name((enum fw_hook)h)) == 0)
				break;
		if (h == FW_HOOK_COUNT)
			jp_err(c, cpath, true, "unknown chain \"%s\" (expected input, forward or output)", key);
		else
			parse_chain(c, cpath, val, (enum fw_hook)h);
	}
}

/* ---- top level -------------------------------------------------------- */

static void top_version(struct jctx *c, const char *path, json_t *v, void *t)
{
	(void)t;
	char buf[64];
	if (!json_is_integer(v) || json_integer_value(v) != 1)
		jp_err(c, path, false, "unsupported version %s (this agent reads version 1)",
		     jp_value_text(v, buf, sizeof(buf)));
}

static void top_lockout(struct jctx *c, const char *path, json_t *v, void *t)
{
	(void)t;
	jp_bool(c, path, v, &POLICY(c)->allow_ssh_lockout);
}

static void top_safelist(struct jctx *c, const char *path, json_t *v, void *t)
{
	(void)t;
	if (json_is_array(v) && json_array_size(v) == 0)
		return; /* an empty safelist is fine */
	jp_prefix_list(c, path, v, &POLICY(c)->safelist, &POLICY(c)->n_safelist);
}

/* src: 0 for blocklist.entries, i+1 for list_files[i]. */
static int add_blocked(struct policy *p, const struct cvz_prefix *pf, uint16_t src)
{
	if (p->n_blocked >= CVZ_LIST_ENTRIES_MAX) {
		p->n_over++; /* reported once, with the count, by check_whole */
		return 0;
	}
	if (p->n_blocked == p->cap_blocked) {
		size_t ncap = p->cap_blocked ? p->cap_blocked * 2 : 64;
		struct cvz_prefix *nv = reallocarray(p->blocked, ncap, sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		p->blocked = nv;
		uint16_t *ns = reallocarray(p->blocked_src, ncap, sizeof(*ns));
		if (!ns)
			return -ENOMEM;
		p->blocked_src = ns;
		p->cap_blocked = ncap;
	}
	p->blocked_src[p->n_blocked] = src;
	p->blocked[p->n_blocked++] = *pf;
	return 0;
}

static void block_entry(struct jctx *c, const char *path, json_t *v, void *t)
{
	(void)t;
	struct cvz_prefix pf;
	size_t before = c->errors;
	memset(&pf, 0, sizeof(pf));
	jp_prefix(c, path, v, &pf);
	if (c->errors != before)
		return;
	if (pf.len == 0)
		jp_err(c, path, false, "refusing to block every address (\"%s\")", json_string_value(v));
	else if (add_blocked(POLICY(c), &pf, 0) < 0)
		jp_err(c, path, false, "out of memory");
}

static void block_entries(struct jctx *c, const char *path, json_t *v, void *t)
{
	jp_array(c, path, v, "an array of addresses", block_entry, t);
}

/* One line of a list file: strips comments, blanks and CR. */
/* One line of a list file: an address or CIDR, then optionally a comment
 * starting with '#' (FireHOL) or ';' (Spamhaus DROP). Anything else after
 * the address is an error: a second address would otherwise be ignored. */
static void list_line(struct jctx *c, const char *file, unsigned lineno, char *line)
{
	line[strcspn(line, "#;")] = '\0';
	char *s = line + strspn(line, " \t\r\n");
	size_t n = strcspn(s, " \t\r\n");
	if (n == 0)
		return;
	char *rest = s + n + strspn(s + n, " \t\r\n");
	s[n] = '\0';
	struct cvz_prefix pf;
	const char *why = NULL;
	char buf[128];
	if (*rest) {
		int rn = (int)strcspn(rest, "\r\n");
		diags_add(c->d, file, (int)lineno, 0,
			  "unexpected \"%.*s\" after \"%s\" (one address per line; comments start with # or ;)",
			  rn < 40 ? rn : 40, rest, s);
		c->errors++;
	} else if (cvz_prefix_parse(s, &pf, &why, buf, sizeof(buf)) < 0) {
		diags_add(c->d, file, (int)lineno, 0, "bad address \"%s\": %s", s, why);
		c->errors++;
	} else if (pf.len == 0) {
		diags_add(c->d, file, (int)lineno, 0, "refusing to block every address (\"%s\")", s);
		c->errors++;
	} else if (add_blocked(POLICY(c), &pf, (uint16_t)POLICY(c)->n_list_files) < 0) {
		diags_add(c->d, file, (int)lineno, 0, "out of memory");
		c->errors++;
	}
}

static void load_list_file(struct jctx *c, const char *path, const char *file)
{
	FILE *f = fopen(file, "re");
	struct stat st;
	if (!f || fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode)) {
		jp_err(c, path, false, "cannot read list file %s: %s", file,
		       f ? "not a regular file" : strerror(errno));
		if (f)
			fclose(f);
		return;
	}
	char *line = NULL;
	size_t cap = 0;
	unsigned lineno = 0;
	while (getline(&line, &cap, f) >= 0)
		list_line(c, file, ++lineno, line);
	/* a read error must not pass for the end of a shorter list */
	if (ferror(f))
		jp_err(c, path, false, "cannot read list file %s: %s", file, strerror(errno));
	free(line);
	fclose(f);
}

static void list_file_item(struct jctx *c, const char *path, json_t *v, void *t)
{
	(void)t;
	if (!jp_want(c, path, v, JSON_STRING, "a file name or glob"))
		return;
	glob_t g;
	int rc = glob(json_string_value(v), GLOB_ERR, NULL, &g);
	if (rc == GLOB_NOMATCH || rc == GLOB_ABORTED) {
		jp_err(c, path, false, "no list file matches \"%s\"", json_string_value(v));
		return;
	}
	if (rc != 0) {
		jp_err(c, path, false, "cannot expand \"%s\": out of memory", json_string_value(v));
		return;
	}
	for (size_t i = 0; i < g.gl_pathc; i++) {
		char **nv = reallocarray(POLICY(c)->list_files, POLICY(c)->n_list_files + 1, sizeof(*nv));
		char *dup = strdup(g.gl_pathv[i]);
		if (nv)
			POLICY(c)->list_files = nv;
		if (!nv || !dup) {
			free(dup);
			jp_err(c, path, false, "out of memory");
			break;
		}
		POLICY(c)->list_files[POLICY(c)->n_list_files++] = dup;
		load_list_file(c, path, dup);
	}
	globfree(&g);
}

static void block_files(struct jctx *c, const char *path, json_t *v, void *t)
{
	jp_array(c, path, v, "an array of file names", list_file_item, t);
}

static const struct jp_key blocklist_keys[] = {
	{ "entries", block_entries },
	{ "files", block_files },
};

static void top_blocklist(struct jctx *c, const char *path, json_t *v, void *t)
{
	jp_object(c, path, v, blocklist_keys, ELEMENTSOF(blocklist_keys), t);
}

static void logd_prefix(struct jctx *c, const char *path, json_t *v, void *t)
{
	(void)t;
	jp_text(c, path, v, POLICY(c)->log_prefix, sizeof(POLICY(c)->log_prefix));
}

static void logd_rate(struct jctx *c, const char *path, json_t *v, void *t)
{
	(void)t;
	parse_rate(c, path, v, &POLICY(c)->log_limit);
}

static void logd_burst(struct jctx *c, const char *path, json_t *v, void *t)
{
	(void)t;
	parse_burst(c, path, v, &POLICY(c)->log_limit);
}

static void logd_chain(struct jctx *c, const char *path, json_t *v, void *t)
{
	(void)t;
	if (!jp_want(c, path, v, JSON_STRING, "a chain name"))
		return;
	for (int h = 0; h < FW_HOOK_COUNT; h++)
		if (strcmp(json_string_value(v), fw_hook_name((enum fw_hook)h)) == 0) {
			POLICY(c)->log_chains[h] = true;
			return;
		}
	jp_err(c, path, false, "unknown chain \"%s\" (expected input, forward or output)",
	     json_string_value(v));
}

static void logd_chains(struct jctx *c, const char *path, json_t *v, void *t)
{
	POLICY(c)->log_chains[FW_HOOK_INPUT] = false; /* an explicit list replaces the default */
	jp_each(c, path, v, "chain", logd_chain, t);
}

static const struct jp_key log_dropped_keys[] = {
	{ "prefix", logd_prefix },
	{ "rate", logd_rate },
	{ "burst", logd_burst },
	{ "chains", logd_chains },
};

static void top_log_dropped(struct jctx *c, const char *path, json_t *v, void *t)
{
	struct policy *p = POLICY(c);
	if (json_is_false(v))
		return;
	p->log_dropped = true;
	snprintf(p->log_prefix, sizeof(p->log_prefix), "DROPPED: ");
	p->log_limit = (struct fw_limit){ .rate = 10, .unit_secs = 60, .burst = 5 };
	p->log_chains[FW_HOOK_INPUT] = true;
	if (json_is_true(v))
		return;
	jp_object(c, path, v, log_dropped_keys, ELEMENTSOF(log_dropped_keys), t);
}

/* ---- lockdown ------------------------------------------------------------ */

/* Read exactly as the safelist: one address or a list, [] allowed (then
 * policy_lockdown_usable() objects, not the parser: the policy is fine for
 * every use but lockdown). */
static void lockdown_allow_from(struct jctx *c, const char *path, json_t *v, void *t)
{
	struct policy_lockdown *l = t;
	l->has_allow_from = true;
	if (json_is_array(v) && json_array_size(v) == 0)
		return;
	jp_prefix_list(c, path, v, &l->allow_from, &l->n_allow_from);
}

static void lockdown_factor(struct jctx *c, const char *path, json_t *v, void *t)
{
	struct policy_lockdown *l = t;
	if (!jp_want(c, path, v, JSON_INTEGER, "an integer"))
		return;
	json_int_t f = json_integer_value(v);
	if (f < 1 || f > LOCKDOWN_FACTOR_MAX)
		jp_err(c, path, false, "rate_limit_factor %lld out of range 1-%d", (long long)f,
		       LOCKDOWN_FACTOR_MAX);
	else
		l->rate_limit_factor = (uint32_t)f;
}

static const struct jp_key lockdown_keys[] = {
	{ "allow_from", lockdown_allow_from },
	{ "rate_limit_factor", lockdown_factor },
};

static void top_lockdown(struct jctx *c, const char *path, json_t *v, void *t)
{
	struct policy_lockdown *l = &POLICY(c)->lockdown;
	(void)t;
	jp_object(c, path, v, lockdown_keys, ELEMENTSOF(lockdown_keys), l);
	if (json_is_object(v) && !(l->where = jp_where(c, path)))
		jp_err(c, path, false, "out of memory");
}

/* Without "allow_from": the safelist, the addresses the operator already
 * named as never to be cut off. */
static int default_allow_from(struct policy *p)
{
	struct policy_lockdown *l = &p->lockdown;
	if (l->has_allow_from || p->n_safelist == 0)
		return 0;
	l->allow_from = calloc(p->n_safelist, sizeof(*l->allow_from));
	if (!l->allow_from)
		return -ENOMEM;
	memcpy(l->allow_from, p->safelist, p->n_safelist * sizeof(*l->allow_from));
	l->n_allow_from = p->n_safelist;
	return 0;
}

int policy_never_blocked(const struct policy *p, struct cvz_prefix **out, size_t *n)
{
	/* without the key allow_from is a copy of the safelist: once is enough */
	size_t n_allow = p->lockdown.has_allow_from ? p->lockdown.n_allow_from : 0;
	size_t total = p->n_safelist + n_allow;
	struct cvz_prefix *v = calloc(total + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < p->n_safelist; i++)
		v[i] = p->safelist[i];
	for (size_t i = 0; i < n_allow; i++)
		v[p->n_safelist + i] = p->lockdown.allow_from[i];
	*out = v;
	*n = total;
	return 0;
}

bool policy_lockdown_usable(const struct policy *p, char *why, size_t len)
{
	const struct policy_lockdown *l = &p->lockdown;
	if (l->n_allow_from)
		return true;
	if (why && len)
		snprintf(why, len, "%s: lockdown would cut every new inbound connection except "
			 "loopback and the failsafe; %s",
			 l->has_allow_from ? "lockdown.allow_from is empty"
					   : "the policy has neither lockdown.allow_from nor a safelist",
			 l->has_allow_from ? "list the management ranges in lockdown.allow_from"
					   : "add lockdown.allow_from or a safelist");
	return false;
}

/* "chains" is parsed before the other top-level keys (they are checked
 * against it); in the table it only needs to be known. */
static void top_chains_parsed(struct jctx *c, const char *path, json_t *v, void *t)
{
	(void)c;
	(void)path;
	(void)v;
	(void)t;
}

static const struct jp_key top_keys[] = {
	{ "version", top_version },       { "allow_ssh_lockout", top_lockout },
	{ "safelist", top_safelist },     { "blocklist", top_blocklist },
	{ "chains", top_chains_parsed },  { "log_dropped", top_log_dropped },
	{ "failsafe", top_failsafe },     { "lockdown", top_lockdown },
};

/* ---- checks across the whole policy ------------------------------------- */

/* Could rule r match a new TCP connection to port 22 arriving on a real
 * interface, from at least one source address? */
static bool may_match_ssh(const struct policy_rule *r)
{
	bool tcp = r->n_l4proto == 0;
	for (size_t i = 0; i < r->n_l4proto; i++)
		tcp |= r->l4proto[i] == IPPROTO_TCP;
	bool port = r->n_dport == 0;
	for (size_t i = 0; i < r->n_dport; i++)
		port |= r->dport[i].lo <= 22 && 22 <= r->dport[i].hi;
	bool iface = r->n_iif == 0;
	for (size_t i = 0; i < r->n_iif; i++)
		iface |= strcmp(r->iif[i], "lo") != 0;
	bool state = r->ct_state == 0 || (r->ct_state & FW_CT_NEW);
	return tcp && port && iface && state && r->n_icmp_type == 0;
}

/* Does it match such a connection from every address? */
static bool matches_all_ssh(const struct policy_rule *r)
{
	return may_match_ssh(r) && r->n_saddr == 0 && r->n_daddr == 0 && r->n_iif == 0 &&
	       r->n_sport == 0 && !r->has_limit && !r->family;
}

/* The lockout guard: an input chain that would drop new SSH connections from
 * every address cuts a remote administrator off for good. */
static void check_ssh_lockout(struct jctx *c)
{
	const struct policy_chain *in = &POLICY(c)->chains[FW_HOOK_INPUT];
	if (POLICY(c)->allow_ssh_lockout)
		return;
	for (size_t i = 0; i < POLICY(c)->failsafe.n_rules; i++)
		if (may_match_ssh(&POLICY(c)->failsafe.rules[i]))
			return;
	for (size_t i = 0; i < in->n_rules; i++) {
		const struct policy_rule *r = &in->rules[i];
		if (r->verdict == FW_VERDICT_ACCEPT && may_match_ssh(r))
			return;
		if ((r->verdict == FW_VERDICT_DROP || r->verdict == FW_VERDICT_REJECT) &&
		    matches_all_ssh(r)) {
			char path[JP_PATHLEN];
			snprintf(path, sizeof(path), "chains.input.rules[%zu]", i);
			jp_err(c, path, false,
			     "this rule drops new SSH connections (tcp port 22) from every address before any rule accepts them: it would lock remote administrators out of the node; accept tcp dport 22 earlier or set \"allow_ssh_lockout\": true");
			return;
		}
	}
	if (in->policy_drop)
		jp_err(c, "chains.input", false,
		     "no rule accepts new SSH connections (tcp port 22) and the policy is drop: this would lock remote administrators out of the node; add {\"proto\": \"tcp\", \"dport\": 22, \"action\": \"accept\"} or set \"allow_ssh_lockout\": true");
}

static void check_whole(struct jctx *c, json_t *root)
{
	struct policy *p = POLICY(c);
	if (!json_object_get(root, "version"))
		jp_err(c, "", false, "missing key \"version\" (must be 1)");
	if (!json_object_get(root, "chains"))
		jp_err(c, "", false, "missing key \"chains\"");
	for (int h = 0; p->log_dropped && h < FW_HOOK_COUNT; h++)
		if (p->log_chains[h] && !p->chains[h].policy_drop)
			jp_err(c, "log_dropped", false,
			     "chain %s has policy accept: it drops nothing to log (remove it from \"chains\")",
			     fw_hook_name((enum fw_hook)h));
	if (p->n_over)
		jp_err(c, "blocklist", false,
		       "%zu entries (blocklist.entries and list files together), more than the limit of %u",
		       p->n_blocked + p->n_over, CVZ_LIST_ENTRIES_MAX);
	if (p->n_safelist > CVZ_SAFELIST_MAX)
		jp_err(c, "safelist", false, "%zu entries, more than the limit of %u", p->n_safelist,
		       CVZ_SAFELIST_MAX);
	for (size_t i = 0; i < p->n_safelist; i++)
		if (p->safelist[i].len == 0) {
			char path[JP_PATHLEN];
			snprintf(path, sizeof(path), "safelist[%zu]", i);
			jp_err(c, path, false, "a safelist of every address would disable all blocking");
		}
	for (size_t i = 0; i < p->lockdown.n_allow_from; i++)
		if (p->lockdown.allow_from[i].len == 0) {
			char path[JP_PATHLEN];
			snprintf(path, sizeof(path), "lockdown.allow_from[%zu]", i);
			jp_err(c, path, false,
			       "an allow_from of every address would leave lockdown without effect");
		}
	if (c->errors == 0 && default_failsafe(p) < 0)
		jp_err(c, "failsafe", false, "out of memory");
	if (c->errors == 0 && default_allow_from(p) < 0)
		jp_err(c, "lockdown", false, "out of memory");
	/* the guard reasons about valid rules only: a rule with an error in it
	   would make its verdict look like a lockout */
	if (c->errors == 0)
		check_ssh_lockout(c);
}

int policy_parse(const char *file, const char *text, size_t len, struct policy **out,
		 struct diags *d)
{
	json_t *root = jp_loadb(file, text, len, d);
	if (!root)
		return -EINVAL;
	struct policy *p = calloc(1, sizeof(*p));
	if (!p || !(p->file = strdup(file))) {
		free(p);
		json_decref(root);
		return -ENOMEM;
	}
	p->lockdown.rate_limit_factor = LOCKDOWN_FACTOR_DEFAULT;
	struct jctx c = { .file = file, .text = text, .len = len, .d = d, .owner = p };
	if (json_is_object(root)) {
		/* chains first: other sections are checked against them */
		json_t *chains = json_object_get(root, "chains");
		if (chains)
			top_chains(&c, "chains", chains, p);
		jp_object(&c, "", root, top_keys, ELEMENTSOF(top_keys), p);
		check_whole(&c, root);
	} else {
		jp_err(&c, "", false, "expected an object at the top level, got %s", jp_type_name(root));
	}
	json_decref(root);
	jp_done(&c);
	if (c.errors) {
		policy_free(p);
		return -EINVAL;
	}
	*out = p;
	return 0;
}

int policy_load(const char *file, struct policy **out, struct diags *d)
{
	char *buf;
	size_t len;
	int r = jp_read_file(file, "policy", POLICY_MAX_BYTES, &buf, &len, d);
	if (r < 0)
		return r;
	r = policy_parse(file, buf, len, out, d);
	free(buf);
	return r;
}

void policy_free(struct policy *p)
{
	if (!p)
		return;
	for (int h = 0; h <= FW_HOOK_COUNT; h++) {
		struct policy_chain *ch = h < FW_HOOK_COUNT ? &p->chains[h] : &p->failsafe;
		for (size_t i = 0; i < ch->n_rules; i++) {
			struct policy_rule *r = &ch->rules[i];
			free(r->where);
			free(r->iif);
			free(r->oif);
			free(r->saddr);
			free(r->daddr);
			free(r->sport);
			free(r->dport);
			free(r->icmp_type);
		}
		free(ch->rules);
	}
	for (size_t i = 0; i < p->n_list_files; i++)
		free(p->list_files[i]);
	free(p->list_files);
	free(p->safelist);
	free(p->lockdown.allow_from);
	free(p->lockdown.where);
	free(p->blocked);
	free(p->blocked_src);
	free(p->file);
	free(p);
}
