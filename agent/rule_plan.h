/* Private to render.c and nft.c: how one fw_rule becomes nft matches.
 *
 * nft 1.0.6 normalises what it is given (single-element sets become
 * compares, interval sets are merged, protocol dependencies are inserted
 * where its evaluator wants them) and prints sets sorted. render.c and nft.c
 * both start from the plan built here, so the text render prints and the
 * bytecode nft.c sends are the same rule, and the same one nft would build
 * from that text. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "ruleset.h"

/* Where the `meta nfproto` match goes. nft inserts it itself right before
 * the first ip/ip6 payload or icmp match (IMPLICIT), at the head of the rule
 * for `reject with icmp(v6)` (HEAD); otherwise we write it out at the family
 * position (EXPLICIT). */
enum plan_dep { DEP_NONE, DEP_IMPLICIT, DEP_HEAD, DEP_EXPLICIT };

enum plan_kind {
	MATCH_NONE,
	MATCH_ONE,   /* one value or range: compare */
	MATCH_SET,   /* several: anonymous set */
	MATCH_NAMED, /* @set */
};

/* 256-bit set of byte values (protocols, icmp types), iterated ascending:
 * nft lists anonymous set elements sorted, so we send and print them so. */
struct plan_u8set {
	uint64_t bits[4];
	unsigned n;
};

struct plan_addr {
	enum plan_kind kind;
	bool invert; /* `!=`: compare neq, inverted lookup */
	/* MATCH_ONE/MATCH_SET: sorted, merged ranges of the rule's family */
	struct cvz_rangeset rs;
	const char *set; /* MATCH_NAMED */
};

struct plan_ports {
	enum plan_kind kind;
	bool interval; /* some element is a range: interval set, merged */
	struct fw_portrange *v; /* sorted, duplicates removed */
	size_t n;
};

struct rule_plan {
	uint8_t fam;      /* NFPROTO_IPV4/IPV6 the rule is restricted to, or 0 */
	enum plan_dep dep;
	struct plan_addr saddr, daddr;
	struct plan_u8set l4;   /* without icmp types */
	bool th;                /* ports under several protocols: `th` */
	struct plan_ports sport, dport;
	uint8_t icmp_proto;     /* IPPROTO_ICMP/ICMPV6 when matching types */
	struct plan_u8set icmp;
	const char *rate_set;   /* per-source limit */
	const char *why;        /* on -EINVAL: what is wrong, static text */
};

/* Builds the plan of r (looking up named sets in t for their family).
 * Returns 0, -ENOMEM, or -EINVAL with p->why set; free with rule_plan_free()
 * in every case. */
int rule_plan_build(struct rule_plan *p, const struct fw_rule *r,
		    const struct fw_table *t);
void rule_plan_free(struct rule_plan *p);

/* Ascending iteration over a plan_u8set: start with *v = -1. */
bool plan_u8set_next(const struct plan_u8set *s, int *v);

/* Checks a named set before it is sent or printed: a name nft accepts,
 * a family, elements sorted and disjoint. Returns 0 or -EINVAL (*why). */
int plan_check_set(const struct fw_set *s, const char **why);

/* nft's names: "ipv4"/"ipv6" for NFPROTO_*, icmp and icmpv6 type names
 * (NULL when nft prints the number), "second".."week" for a limit unit
 * (NULL when nft has none). */
const char *plan_nfproto_name(uint8_t fam);
const char *plan_limit_unit_name(uint64_t secs);
