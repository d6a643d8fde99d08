/* Private to nft.c and nftd.c: the batch machinery both send through.
 *
 * nft.c builds the table-replacing batch and owns the socket plumbing
 * (send all pages in one sendmsg(), read every ACK, map a refusal to the
 * message that caused it); nftd.c adds the daemon's long-lived connection,
 * set element deltas, verification and the event monitor on top. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libmnl/libmnl.h>

#include "ruleset.h"

/* Newer than the uapi headers this builds against (persist: Linux 6.9). */
#ifndef NFT_TABLE_F_PERSIST
#define NFT_TABLE_F_PERSIST 0x4
#endif

#define NFT_REPLY_BUF_SIZE (UINT16_MAX + 4096u)

/* What produced one message, to name it when the kernel refuses it. */
struct nft_origin {
	const char *text;  /* fw_rule/fw_set origin, may be NULL */
	const char *what;  /* "rule", "set", "chain", ... */
	const char *name;  /* set or chain name, may be NULL */
	const char *chain; /* for a rule: its chain ... */
	size_t rule;       /* ... and index, named when text is NULL */
};

struct nftnl_batch;

struct nft_batch {
	struct nftnl_batch *nb;
	uint32_t seq0;              /* sequence number of BATCH_BEGIN */
	struct nft_origin *orig;    /* orig[seq - seq0] */
	size_t n_orig, cap_orig;
	uint32_t n_acks;            /* messages sent with NLM_F_ACK */
	uint32_t n_echo;            /* messages sent with NLM_F_ECHO */
	uint32_t last_set_id;
	uint32_t *set_ids;          /* ids of t->sets, by index */
	const struct fw_table *t;   /* may be NULL (element deltas) */
	bool echo;                  /* see nft_table_opts.echo */
};

/* How nft_build_table_batch() replaces the table. All zero is what
 * nft_apply_table() sends. */
struct nft_table_opts {
	uint32_t table_flags; /* NFTA_TABLE_FLAGS of the new table */
	/* The leading create-if-missing NEWTABLE carries no flags attribute:
	 * the kernel then leaves an existing table's flags alone, where flags 0
	 * would be refused (EOPNOTSUPP) on an owned or persistent table. */
	bool keep_flags;
	/* NLM_F_ECHO on the first message (see nft_put_gen_echo()) and on
	 * the new table, chains, sets and rules: their notifications carry
	 * the handles the kernel gave them. */
	bool echo;
};

/* Starts a batch (BATCH_BEGIN). t may be NULL. Free with nft_batch_free()
 * in every case. */
int nft_batch_init(struct nft_batch *b, const struct fw_table *t, uint32_t seq0);
void nft_batch_free(struct nft_batch *b);
/* Starts a message with NLM_F_ACK added to flags, recording its origin. */
int nft_msg_start(struct nft_batch *b, uint16_t type, uint16_t flags,
		  const struct nft_origin *o, struct nlmsghdr **nlh);
int nft_msg_end(struct nft_batch *b);
/* Appends BATCH_END. */
int nft_batch_finish(struct nft_batch *b);
/* The whole table-replacing batch for t (see nft_apply_table()). */
int nft_build_table_batch(struct nft_batch *b, const struct fw_table *t,
			  const struct nft_table_opts *opts, uint32_t seq0,
			  char *err, size_t errlen);

/* nf_tables reports a commit's NEWGEN (its generation id) with the flags of
 * the batch's first message after BATCH_BEGIN: with NLM_F_ECHO there, the
 * NEWGEN comes back to us too. This appends, as that first message, a
 * NEWTABLE of our table without flags, which changes nothing. */
int nft_put_gen_echo(struct nft_batch *b);

/* Where each element of nft_put_range_elems() went, for error mapping:
 * called once per element with the message's sequence number, the
 * element's offset in that message, and the index of its range. */
typedef int (*nft_elem_cb)(void *arg, uint32_t seq, uint32_t off, size_t range);

/* Appends the ranges of one family of rs (v6 selects it) as set elements of
 * set in messages of type NFT_MSG_NEWSETELEM or NFT_MSG_DELSETELEM, encoded
 * as nft 1.0.6's `add element` / `delete element` sends them: a start
 * element, and an interval-end element at hi + 1 unless hi is the top of
 * the address space (then the start carries the open-interval flag).
 * on_elem may be NULL. */
int nft_put_range_elems(struct nft_batch *b, const struct nft_origin *o, uint16_t type,
			uint16_t flags, const char *set, const struct cvz_rangeset *rs,
			bool v6, nft_elem_cb on_elem, void *arg);

/* Opens a NETLINK_NETFILTER socket as nft.c uses it: extended ACKs,
 * capped error replies, a reply timeout. */
int nft_socket_open(struct mnl_socket **out);
/* Raises a socket buffer (SO_SNDBUF/SO_RCVBUF) to want bytes. */
void nft_grow_sockbuf(int fd, int opt, int opt_force, size_t want);

struct nft_replies {
	uint32_t got;
	uint32_t err_seq;
	int err;           /* positive errno of the first refusal, 0 = none */
	uint32_t err_off;  /* offending attribute's offset in that message, 0 = unknown */
	char msg[128];     /* the kernel's extended ACK text, if any */
	bool sent;         /* the batch went out: a later failure leaves its
			      outcome unknown */
	mnl_cb_t on_data;  /* other messages (echoes), may be NULL */
	void *data;
};

/* Sends b and reads replies until every ACK is in or the first refusal
 * (then writes err: the refused message's origin and the reason). Returns
 * 0, the negative errno of the refusal, or of a failure to talk. Replies
 * after a refusal stay queued on nl: a long-lived socket drains them. */
int nft_batch_talk(struct mnl_socket *nl, const struct nft_batch *b, struct nft_replies *r,
		   char *err, size_t errlen);
/* The kernel's refusal err (positive errno) as text for messages: strerror,
 * except where the kernel's errno misleads (ENFILE: a set is full). */
const char *nft_strerror(int err);
/* "table inet cloudviz", "chain input rule 3", or the origin text. */
void nft_origin_where(const struct nft_origin *o, char *buf, size_t len);
