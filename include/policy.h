/* Policy files: JSON -> validated struct policy. No netlink here.
 * The language is documented in docs/policy.md. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <net/if.h>

#include "addr.h"
#include "diag.h"
#include "ruleset.h"

struct policy_rule {
	char *where; /* "FILE:LINE:COL (chains.input.rules[3])" */
	char comment[FW_COMMENT_MAX];
	char (*iif)[IFNAMSIZ];
	size_t n_iif;
	char (*oif)[IFNAMSIZ];
	size_t n_oif;
	uint8_t family; /* 0, NFPROTO_IPV4 or NFPROTO_IPV6 ("family" key) */
	struct cvz_prefix *saddr; /* may mix IPv4 and IPv6 */
	size_t n_saddr;
	struct cvz_prefix *daddr;
	size_t n_daddr;
	uint8_t l4proto[4];
	size_t n_l4proto;
	struct fw_portrange *sport;
	size_t n_sport;
	struct fw_portrange *dport;
	size_t n_dport;
	uint32_t ct_state;
	uint8_t *icmp_type;
	size_t n_icmp_type;
	bool has_limit;
	struct fw_limit limit; /* rate_set is filled in by the compiler */
	bool counter;
	bool log;
	char log_prefix[FW_LOG_PREFIX_MAX];
	enum fw_verdict verdict;
};

struct policy_chain {
	bool policy_drop;
	struct policy_rule *rules;
	size_t n_rules;
};


/* The "lockdown" section: what the input chain admits while the node is
 * locked down (docs/policy.md). Filled in whether or not the section is
 * given, defaults applied. */
struct policy_lockdown {
	/* new inbound connections are accepted only from here (and loopback);
	   without "allow_from": a copy of the safelist. May mix families. */
	struct cvz_prefix *allow_from;
	size_t n_allow_from;
	bool has_allow_from;        /* the key was given (even as []) */
	uint32_t rate_limit_factor; /* 1-1000, default 10: limits divided by it */
	char *where;                /* "FILE:LINE:COL (lockdown)", NULL without the section */
};

struct policy {
	char *file;
	bool allow_ssh_lockout;
	struct cvz_prefix *safelist;
	size_t n_safelist;
	struct cvz_prefix *blocked; /* blocklist.entries and list files */
	uint16_t *blocked_src;      /* per entry: 0 blocklist.entries, i+1 list_files[i] */
	size_t n_blocked, cap_blocked; /* n_blocked <= CVZ_LIST_ENTRIES_MAX */
	size_t n_over;                 /* entries beyond that bound (an error) */
	char **list_files; /* blocklist.files after glob expansion */
	size_t n_list_files;
	bool log_dropped;
	char log_prefix[FW_LOG_PREFIX_MAX];
	struct fw_limit log_limit; /* per_source false */
	bool log_chains[FW_HOOK_COUNT];
	struct policy_chain chains[FW_HOOK_COUNT];
	/* accepted in input before any blocklist or drop rule, whatever any
	   source says; default: tcp 22 from the safelist */
	struct policy_chain failsafe;
	bool has_failsafe; /* the key was given (an empty list disables it) */
	struct policy_lockdown lockdown;
};

/* Reads and validates the policy in file. Every problem is added to d as
 * FILE:LINE:COL. Returns 0 and a new policy in *out (free with policy_free),
 * -EINVAL when the policy is invalid, or -errno when the file cannot be read
 * (also reported in d). */
int policy_load(const char *file, struct policy **out, struct diags *d);
/* The same on text in memory; file names it in messages. */
int policy_parse(const char *file, const char *text, size_t len,
		 struct policy **out, struct diags *d);
void policy_free(struct policy *p);

/* Compiles a valid policy into the kernel table (splitting rules per address
 * family, carving the safelist out of the blocklist; the dynamic sets for
 * runtime blocks are declared empty). Returns 0 or -ENOMEM; on error *t is
 * left empty. */
int policy_compile(const struct policy *p, struct fw_table *t);
/* The same with the blocklist sets holding exactly the given ranges
 * (normalised, safelist already carved out; both are copied): blocklist_v4/_v6
 * hold lists (NULL: the policy's entries), dynamic_v4/_v6 hold dynamic, the
 * daemon's runtime entries (NULL: empty). See docs/blocklists.md. */
int policy_compile_blocked(const struct policy *p, const struct cvz_rangeset *lists,
			   const struct cvz_rangeset *dynamic, struct fw_table *t);

/* How to compile. All zero (or a NULL pointer) is policy_compile(). */
struct compile_opts {
	/* as in policy_compile_blocked(); NULL: the policy's entries / empty */
	const struct cvz_rangeset *lists, *dynamic;
	/* the lockdown section on: in input only, after the failsafe and
	   blocklist rules, new connections from outside lockdown.allow_from
	   (and loopback) are dropped, one rule per family; in every chain,
	   each policy rule's rate limit (not the failsafe's, not
	   log_dropped's) is divided by lockdown.rate_limit_factor, at least 1.
	   Compiled even when policy_lockdown_usable() says no: refusing is
	   the caller's decision. */
	bool lockdown;
};

/* The general form of the two above: returns 0 or -ENOMEM; on error *t is
 * left empty. The caller frees *t with fw_table_free(); o and the range
 * sets stay the caller's. */
int policy_compile_opts(const struct policy *p, const struct compile_opts *o,
			struct fw_table *t);

/* What no blocklist set may hold, whatever the source of the block: the
 * safelist, and lockdown.allow_from (the management ranges lockdown admits;
 * a block of one would sit before the lockdown rule and shut the way in).
 * Returns 0 and a new array in *out (free()) of *n prefixes, or -ENOMEM. */
int policy_never_blocked(const struct policy *p, struct cvz_prefix **out, size_t *n);

/* Whether switching lockdown on leaves a way in: false when allow_from
 * (after its default, the safelist) holds no address, since lockdown would
 * then cut every new inbound connection but loopback and the failsafe.
 * Then why (len bytes, may be NULL) says so and how to fix it. */
bool policy_lockdown_usable(const struct policy *p, char *why, size_t len);
