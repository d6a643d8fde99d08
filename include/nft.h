/* The only module that speaks netlink (libnftnl + libmnl). */
#pragma once
#include <stddef.h>
#include "ruleset.h"

/* Replaces `table inet cloudviz` with t in one netlink transaction:
 *   NEWTABLE (create if missing), DELTABLE, NEWTABLE, sets + elements,
 *   chains, rules
 * every message with NLM_F_ACK, and every reply read. On any error the whole
 * batch is aborted by the kernel, nothing changes, and err (size errlen) holds
 * one line naming the fw_rule/fw_set origin that the kernel refused and the
 * kernel's reason, e.g.
 *   "policy.json:14:9 (chains.input.rules[3]): kernel refused rule: No such file or directory"
 * Returns 0 or a negative errno. Never touches another table. */
int nft_apply_table(const struct fw_table *t, char *err, size_t errlen);
