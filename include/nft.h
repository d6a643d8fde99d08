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
/* Closes it (NULL is fine). An owned table stays, persistent and orphaned,
 * until the next connection replaces it. */
void nft_conn_close(struct nft_conn *c);
/* The netlink port id of the connection (events it caused carry it). */
uint32_t nft_conn_portid(const struct nft_conn *c);
/* True when the kernel supports both the owner (5.12) and the persist (6.9)
 * table flags. Probed once, in a throwaway table, by a batch that the kernel
 * aborts: nothing is committed. */
bool nft_have_owner_persist(struct nft_conn *c);
/* nft_apply_table() on this connection, setting table_flags (0 or
 * NFT_TABLE_OWNER_PERSIST) on the new table; it replaces a table of any
 * flags, an orphaned persistent one included, but not one owned by another
 * live socket (-EPERM, err names its netlink port). Remembers what it
 * installed (handles echoed by the kernel, the ranges of both pairs of
 * blocklist sets, the commit's generation) so nft_conn_verify() can
 * compare. */
int nft_conn_apply_table(struct nft_conn *c, const struct fw_table *t, uint32_t table_flags,
			 char *err, size_t errlen);
/* Names the caller's nft_monitor_open() socket (-1: none). Around its own
 * commits of more than 10000 set elements the connection unsubscribes it:
 * while anything listens to nftables events (on the whole host: the kernel
 * asks per protocol, not per network namespace), it builds a notification
 * per element and holds them all until the commit ends (a 1M-range
 * blocklist: 16 GB of kernel memory and 35 s, instead of 240 MB and 2 s).
 * A foreign commit the monitor may have missed meanwhile makes the next
 * nft_conn_verify() read everything back. */
void nft_conn_set_monitor(struct nft_conn *c, int fd);
/* The two pairs of blocklist sets (docs/blocklists.md). Linux 6.18's rbtree
 * set backend walks the whole set in every commit that touches it, so what
 * changes often (runtime blocks) must not share a set with what is large
 * (list files). */
enum nft_blset {
	NFT_BL_LISTS,   /* blocklist_v4/_v6: policy and list entries */
	NFT_BL_DYNAMIC, /* dynamic_v4/_v6: runtime blocks */
	NFT_BL_COUNT
};

/* A change to one pair of sets: ranges to delete and to add, both
 * normalised, as rangeset_diff() returns them. NULL means none. */
struct nft_bl_delta {
	const struct cvz_rangeset *del, *add;
};

/* One transaction on the blocklist sets: for each pair, delete the ranges
 * in delta[pair].del and add those in delta[pair].add. A pair without
 * ranges is not touched (a block sends only NFT_BL_DYNAMIC; a reload both,
 * atomically). Only set elements change: no table rebuild. A range to
 * delete must be in its set exactly (-ENOENT), one to add must not overlap
 * it (-EEXIST); err names it and the set: "kernel refused adding
 * 203.0.113.0/24 to dynamic_v4: File exists". */
int nft_conn_set_delta(struct nft_conn *c, const struct nft_bl_delta delta[NFT_BL_COUNT],
		       char *err, size_t errlen);
/* Compares the kernel's table inet cloudviz with what this connection last
 * installed. Nothing is read when the ruleset generation is still the one
 * last known equal. Otherwise cheap: table handle, flags, owner and use
 * count, chains (handle, policy), rule handles, set handles; set contents
 * are read back only with deep (or after nft_conn_set_monitor()'s gap), and
 * not for an owned table's blocklist sets of more than 65536 ranges (no
 * other socket can change them, and the kernel dumps them in quadratic
 * time); the others, the small dynamic sets among them, are read. Returns 1
 * and a description in detail when they differ (also when our last change
 * may or may not have been committed), 0 when equal, -ENODATA before the
 * first apply, -errno on error. */
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
