/* Names nftables 1.0.6 uses for protocol constants (its src/proto.c and
 * src/ct.c symbol tables), shared by the policy parser (name -> value) and
 * the renderer (value -> name). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* icmp (proto IPPROTO_ICMP) or icmpv6 (IPPROTO_ICMPV6) type name as nft
 * prints it ("echo-request", "nd-neighbor-solicit"), or NULL when nft has no
 * name for it (then it prints the number). */
const char *icmp_type_name(uint8_t proto, uint8_t type);
/* Looks a name up; returns 0 and writes *type, or -ENOENT. */
int icmp_type_lookup(uint8_t proto, const char *name, uint8_t *type);
/* Writes the comma-separated list of known names for proto into buf. */
void icmp_type_names(uint8_t proto, char *buf, size_t len);

/* ct state bit names, in nft's print order (invalid, established, related,
 * new, untracked). */
const char *ct_state_name(uint32_t bit);
int ct_state_lookup(const char *name, uint32_t *bit);
