/* The only module that speaks netlink (libnftnl + libmnl). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ruleset.h"

/* Replaces `table inet cloudviz` with t in one netlink transaction:
 *   NEWTABLE (create if missing), DELTABLE, NEWTABLE, chains,
 *   sets + elements, rules (the order nft itself uses)
 * every message with NLM_F_ACK, and every reply read. On any error the whole
 * batch is aborted by the kernel, nothing changes, and err (size errlen) holds
 * one line naming the fw_rule/fw_set origin that the kernel refused and the
 * kernel's reason, e.g.
 *   "policy.json:14:9 (chains.input.rules[3]): kernel refused rule: No such file or directory"
 * Returns 0 or a negative errno. Never touches another table. */
int nft_apply_table(const struct fw_table *t, char *err, size_t errlen);

/* ---- the daemon's connection ------------------------------------------------
 * The daemon keeps one netlink socket for its whole life. With the table
 * flags owner+persist the table belongs to that socket: no other process can
 * change it, and it outlives the agent, which re-takes it on start. */

struct nft_conn;

/* NFT_TABLE_F_OWNER | NFT_TABLE_F_PERSIST: never one without the other. */
#define NFT_TABLE_OWNER_PERSIST (0x2u | 0x4u)

/* Opens the connection. Returns 0 or -errno. */
int nft_conn_open(struct nft_conn **out);
void nft_conn_close(struct nft_conn *c);
/* The netlink port id of the connection (events it caused carry it). */
uint32_t nft_conn_portid(const struct nft_conn *c);
/* True when the kernel supports both the owner (5.12) and the persist (6.9)
 * table flags. Probed once, in a throwaway table. */
bool nft_have_owner_persist(struct nft_conn *c);
/* nft_apply_table() on this connection, setting table_flags (0 or
 * NFT_TABLE_OWNER_PERSIST) on the new table. Remembers what it installed so
 * nft_conn_verify() can compare. */
int nft_conn_apply_table(struct nft_conn *c, const struct fw_table *t, uint32_t table_flags,
			 char *err, size_t errlen);
/* One transaction on the sets blocklist_v4/blocklist_v6: delete the ranges
 * in del, add those in add (both normalised, as rangeset_diff() returns
 * them). Only set elements change: no table rebuild. */
int nft_conn_set_delta(struct nft_conn *c, const struct cvz_rangeset *del,
		       const struct cvz_rangeset *add, char *err, size_t errlen);
/* Compares the kernel's table inet cloudviz with what this connection last
 * installed. Cheap by default: the ruleset generation id, then table flags,
 * chains, rule handles and set handles; set contents are read back only with
 * deep (or when the cheap check shows a difference). Returns 1 and a
 * description in detail when they differ, 0 when equal, -errno on error. */
int nft_conn_verify(struct nft_conn *c, bool deep, char *detail, size_t len);

/* ---- watching for foreign changes ------------------------------------------- */

/* Opens a non-blocking netlink socket subscribed to nftables events.
 * Returns 0 and *fd, or -errno. */
int nft_monitor_open(int *fd);
/* Reads every pending event. Returns 1 (with a description in detail, e.g.
 * "rule deleted from chain input by nft[1234]") when table inet cloudviz was
 * changed or deleted by a socket other than our_portid, 0 when not, -ENOBUFS
 * when events were lost (the caller must verify), or another -errno. */
int nft_monitor_read(int fd, uint32_t our_portid, char *detail, size_t len);
