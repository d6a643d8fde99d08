/* The compiled firewall: what `table inet cloudviz` must contain, as plain
 * data. policy_compile() produces it from a validated policy; render.c prints
 * it as an nft script and nft.c turns it into one netlink batch. Both read the
 * same structure, so `render` means exactly what `apply` installs.
 *
 * A kernel rule here is already split per address family where the policy rule
 * mixes IPv4 and IPv6 (nftables compares one family per rule), so one policy
 * rule may become up to two fw_rules with the same origin. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <net/if.h>

#include "addr.h"

#define FW_TABLE_NAME "cloudviz"
#define FW_COMMENT_MAX 128 /* nftables' NFT_USERDATA_MAXLEN-bounded comment */
#define FW_LOG_PREFIX_MAX 128
#define FW_SET_NAME_MAX 32

/* The blocklist sets (docs/blocklists.md): policy and list entries, large
 * and changed only by a reload; and runtime blocks, small and changed often.
 * policy_compile() declares them, the daemon changes their elements. */
#define FW_SET_LISTS_V4 "blocklist_v4"
#define FW_SET_LISTS_V6 "blocklist_v6"
#define FW_SET_DYNAMIC_V4 "dynamic_v4"
#define FW_SET_DYNAMIC_V6 "dynamic_v6"

enum fw_verdict {
	FW_VERDICT_NONE = 0, /* no verdict: evaluation continues (log-only rule) */
	FW_VERDICT_ACCEPT,
	FW_VERDICT_DROP,
	FW_VERDICT_REJECT, /* icmpx port-unreachable, nft's plain `reject` */
};

/* ct state bits, as the kernel's NF_CT_STATE_* bitmask. */
enum {
	FW_CT_INVALID = 1u << 0,
	FW_CT_ESTABLISHED = 1u << 1,
	FW_CT_RELATED = 1u << 2,
	FW_CT_NEW = 1u << 3,
	FW_CT_UNTRACKED = 1u << 6,
};

struct fw_portrange {
	uint16_t lo, hi; /* host order, inclusive; lo == hi for one port */
};

/* A limit statement. per_source: a dynamic set keyed by the source address
 * (rate_set names it, declared in fw_table.sets), nft's
 *   update @rate_set { ip saddr limit rate R/unit burst B packets }
 * otherwise a plain `limit rate R/unit burst B packets`. */
struct fw_limit {
	uint64_t rate;      /* packets per unit */
	uint64_t unit_secs; /* 1, 60, 3600 or 86400 */
	uint32_t burst;     /* packets */
	bool per_source;
	char rate_set[FW_SET_NAME_MAX];
};

/* One kernel rule. Matches are evaluated (and emitted, and rendered) in the
 * order of the fields below; an empty field matches anything. */
struct fw_rule {
	char iifname[IFNAMSIZ]; /* "" any; trailing '*' = name prefix wildcard */
	bool iifname_invert;    /* iifname != "...": any interface but that one */
	char oifname[IFNAMSIZ];
	uint8_t family; /* 0 = both, else NFPROTO_IPV4 or NFPROTO_IPV6; set
			   whenever an address, address set, icmp type or
			   per-source limit needs it */
	/* addresses: a literal list (1 entry -> compare, more -> anonymous
	   interval set) or a named set, never both */
	struct cvz_prefix *saddr;
	size_t n_saddr;
	const char *saddr_set; /* e.g. "blocklist_v4"; static storage */
	bool saddr_invert;     /* saddr != ...: a source outside the list or set */
	struct cvz_prefix *daddr;
	size_t n_daddr;
	const char *daddr_set;
	/* l4 protocol: IPPROTO_* values; 0 entries = any. Ports require every
	   listed protocol to be tcp or udp; with one protocol they render as
	   `tcp dport ...`, with several as `meta l4proto { tcp, udp } th dport` */
	uint8_t l4proto[4];
	size_t n_l4proto;
	struct fw_portrange *sport;
	size_t n_sport;
	struct fw_portrange *dport;
	size_t n_dport;
	uint32_t ct_state; /* FW_CT_* bits; 0 = any */
	/* icmp types: with l4proto == {IPPROTO_ICMP} (family IPv4) they are
	   icmp types, with {IPPROTO_ICMPV6} (family IPv6) icmpv6 types */
	uint8_t *icmp_type;
	size_t n_icmp_type;
	/* statements, in this order: limit, counter, log, verdict */
	bool has_limit;
	struct fw_limit limit;
	bool counter;
	bool log;
	char log_prefix[FW_LOG_PREFIX_MAX]; /* "" = no prefix */
	enum fw_verdict verdict;
	char comment[FW_COMMENT_MAX]; /* "" = none; stored as rule userdata */
	/* where it came from, for error messages: "policy.json:14:9 (chains.
	   input.rules[3])"; never sent to the kernel */
	char *origin;
};

enum fw_set_kind {
	FW_SET_ADDR,      /* named interval set of addresses (blocklist) */
	FW_SET_RATELIMIT, /* dynamic set backing a per-source limit */
};

struct fw_set {
	char name[FW_SET_NAME_MAX];
	enum fw_set_kind kind;
	uint8_t family; /* NFPROTO_IPV4 or NFPROTO_IPV6 */
	/* FW_SET_ADDR: normalised elements of this family (only the matching
	   array of the rangeset is used) */
	struct cvz_rangeset elems;
	/* the kernel's bound on elements (0: none); FW_SET_RATELIMIT: also a
	   per-entry timeout */
	uint32_t size;
	uint64_t timeout_ms;
	char *origin;
};

enum fw_hook { FW_HOOK_INPUT, FW_HOOK_FORWARD, FW_HOOK_OUTPUT, FW_HOOK_COUNT };

struct fw_chain {
	enum fw_hook hook;       /* chain name = hook name */
	bool policy_drop;        /* false: policy accept */
	struct fw_rule *rules;
	size_t n_rules, cap_rules;
};

struct fw_table {
	struct fw_set *sets; /* declared before the chains, in this order */
	size_t n_sets, cap_sets;
	struct fw_chain chains[FW_HOOK_COUNT]; /* input, forward, output */
};

/* "input", "forward", "output". */
const char *fw_hook_name(enum fw_hook h);

/* Appends a zeroed rule to chain c and returns it, or NULL on ENOMEM. */
struct fw_rule *fw_chain_add_rule(struct fw_chain *c);
/* Appends a zeroed set to t and returns it, or NULL on ENOMEM. */
struct fw_set *fw_table_add_set(struct fw_table *t);
/* Frees everything the table owns (rules' arrays, origins, sets); the table
 * struct itself is the caller's. Leaves *t zeroed. */
void fw_table_free(struct fw_table *t);
