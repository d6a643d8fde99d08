/* The only module that speaks netlink: replaces `table inet cloudviz` in one
 * nf_tables transaction (see nft.h).
 *
 * The bytecode mirrors what nft 1.0.6 generates for the text render.c
 * prints (expression order, implicit protocol dependencies, set flags, key
 * types, set and element userdata), so `nft list` shows the same table
 * whichever way it was installed. rule_plan.c takes the decisions both
 * sides share. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <netinet/in.h>
#include <netinet/icmp6.h>
#include <netinet/ip_icmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

#include <libmnl/libmnl.h>
#include <libnftnl/batch.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/udata.h>

#include "cleanup.h"
#include "nft.h"
#include "nft_internal.h"
#include "rule_plan.h"

typedef unsigned __int128 u128;

/* nftables' own batch page size is 2 MiB; any page must also hold the one
 * message that overflows it, and no message here exceeds 64 KiB + a page
 * (the set element nest has a 16-bit length; see ELEMS_MSG_LIMIT). */
#define BATCH_PAGE_SIZE (1u << 20)
#define BATCH_OVERRUN (UINT16_MAX + 4096u)
/* Start a new NEWSETELEM message past this many bytes: the elements nest
 * must stay below 64 KiB, and one element adds well under 100 bytes. */
#define ELEMS_MSG_LIMIT 60000u
#define UDATA_MAX 256 /* nftables' NFT_USERDATA_MAXLEN */
#define REPLY_TIMEOUT_SECS 30

/* nftables-private userdata keys (nftables include/payload.h, meta.h) and
 * expression type ids (include/expression.h) that `nft list` reads back. */
#define NFT_UDATA_PAYLOAD_DESC 0
#define NFT_UDATA_PAYLOAD_TYPE 1
#define NFT_UDATA_META_KEY 0
#define NFT_EXPR_TYPE_PAYLOAD 7
#define NFT_EXPR_TYPE_META 9
#define NFT_BYTEORDER_HOST 1
#define NFT_BYTEORDER_BIG 2

DEFINE_TRIVIAL_CLEANUP_FUNC(struct mnl_socket *, mnl_socket_close)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nftnl_rule *, nftnl_rule_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nftnl_set *, nftnl_set_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nftnl_chain *, nftnl_chain_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nftnl_udata_buf *, nftnl_udata_buf_free)

void nft_batch_free(struct nft_batch *b)
{
	if (b->nb) /* NULL after a failed allocation in nft_batch_init() */
		nftnl_batch_free(b->nb);
	free(b->orig);
	free(b->set_ids);
}

/* Records who produced the next message and returns its sequence number. */
static int batch_seq(struct nft_batch *b, const struct nft_origin *o, uint32_t *seq)
{
	if (b->n_orig == b->cap_orig) {
		size_t ncap = b->cap_orig ? b->cap_orig * 2 : 64;
		struct nft_origin *n = reallocarray(b->orig, ncap, sizeof(*n));
		if (!n)
			return -ENOMEM;
		b->orig = n;
		b->cap_orig = ncap;
	}
	b->orig[b->n_orig] = *o;
	*seq = b->seq0 + (uint32_t)b->n_orig++;
	return 0;
}

/* Starts an nf_tables message in the batch; every one asks for an ACK. */
int nft_msg_start(struct nft_batch *b, uint16_t type, uint16_t flags,
		  const struct nft_origin *o, struct nlmsghdr **nlh)
{
	uint32_t seq;
	int ret = batch_seq(b, o, &seq);
	if (ret < 0)
		return ret;
	*nlh = nftnl_nlmsg_build_hdr(nftnl_batch_buffer(b->nb), type,
				     NFPROTO_INET, flags | NLM_F_ACK, seq);
	b->n_acks++;
	if (flags & NLM_F_ECHO)
		b->n_echo++;
	return 0;
}

/* libmnl 1.0.4 leaves attribute padding as it finds it: zero what is left
 * of a fresh page so no stale heap bytes go to the kernel. */
static void page_zero_tail(struct nft_batch *b)
{
	memset(nftnl_batch_buffer(b->nb), 0,
	       BATCH_PAGE_SIZE + BATCH_OVERRUN - nftnl_batch_buffer_len(b->nb));
}

int nft_msg_end(struct nft_batch *b)
{
	uint32_t before = nftnl_batch_buffer_len(b->nb);

	if (nftnl_batch_update(b->nb) < 0)
		return -ENOMEM;
	if (nftnl_batch_buffer_len(b->nb) < before) /* moved to a new page */
		page_zero_tail(b);
	return 0;
}

int nft_batch_init(struct nft_batch *b, const struct fw_table *t, uint32_t seq0)
{
	static const struct nft_origin batch_origin = { .text = "netlink batch", .what = "batch" };
	uint32_t seq;

	memset(b, 0, sizeof(*b));
	b->t = t;
	b->seq0 = seq0;
	b->nb = nftnl_batch_alloc(BATCH_PAGE_SIZE, BATCH_OVERRUN);
	b->set_ids = calloc(t && t->n_sets ? t->n_sets : 1, sizeof(*b->set_ids));
	if (!b->nb || !b->set_ids || batch_seq(b, &batch_origin, &seq) < 0)
		return -ENOMEM;
	page_zero_tail(b);
	nftnl_batch_begin(nftnl_batch_buffer(b->nb), seq);
	return nft_msg_end(b);
}

int nft_batch_finish(struct nft_batch *b)
{
	static const struct nft_origin end_origin = { .text = "netlink batch", .what = "batch" };
	uint32_t seq;
	int ret = batch_seq(b, &end_origin, &seq);
	if (ret < 0)
		return ret;
	nftnl_batch_end(nftnl_batch_buffer(b->nb), seq);
	return nft_msg_end(b);
}

/* ---- table and chains ---------------------------------------------------- */

/* NLM_F_ECHO for the objects whose handles nftd.c records. */
static uint16_t echo_flag(const struct nft_batch *b)
{
	return b->echo ? NLM_F_ECHO : 0;
}

/* A NEWTABLE with table_flags < 0 carries no flags attribute: the kernel
 * then leaves an existing table as it is. */
static int put_table(struct nft_batch *b, uint16_t type, uint16_t flags, int64_t table_flags)
{
	static const struct nft_origin o = { .what = "table" };
	struct nlmsghdr *nlh;
	int ret = nft_msg_start(b, type, flags, &o, &nlh);
	if (ret < 0)
		return ret;
	mnl_attr_put_strz(nlh, NFTA_TABLE_NAME, FW_TABLE_NAME);
	if (type == NFT_MSG_NEWTABLE && table_flags >= 0)
		mnl_attr_put_u32(nlh, NFTA_TABLE_FLAGS, htonl((uint32_t)table_flags));
	return nft_msg_end(b);
}

static const uint32_t hooknum[FW_HOOK_COUNT] = {
	[FW_HOOK_INPUT] = NF_INET_LOCAL_IN,
	[FW_HOOK_FORWARD] = NF_INET_FORWARD,
	[FW_HOOK_OUTPUT] = NF_INET_LOCAL_OUT,
};

static int put_chain(struct nft_batch *b, const struct fw_chain *c, enum fw_hook h)
{
	const struct nft_origin o = { .what = "chain", .name = fw_hook_name(h) };
	_cleanup_(nftnl_chain_freep) struct nftnl_chain *nc = nftnl_chain_alloc();
	struct nlmsghdr *nlh;
	int ret;

	if (!nc || nftnl_chain_set_str(nc, NFTNL_CHAIN_TABLE, FW_TABLE_NAME) < 0 ||
	    nftnl_chain_set_str(nc, NFTNL_CHAIN_NAME, fw_hook_name(h)) < 0 ||
	    nftnl_chain_set_str(nc, NFTNL_CHAIN_TYPE, "filter") < 0)
		return -ENOMEM;
	nftnl_chain_set_u32(nc, NFTNL_CHAIN_HOOKNUM, hooknum[h]);
	nftnl_chain_set_s32(nc, NFTNL_CHAIN_PRIO, 0);
	nftnl_chain_set_u32(nc, NFTNL_CHAIN_POLICY, c->policy_drop ? NF_DROP : NF_ACCEPT);
	if ((ret = nft_msg_start(b, NFT_MSG_NEWCHAIN, NLM_F_CREATE | echo_flag(b), &o, &nlh)) < 0)
		return ret;
	nftnl_chain_nlmsg_build_payload(nlh, nc);
	return nft_msg_end(b);
}

/* ---- set elements ---------------------------------------------------------- */

/* Elements to send: n keys or [lo, hi] ranges, read through at(). */
struct elem_src {
	const void *v;
	size_t n;
	unsigned keylen; /* bytes */
	bool interval;
	void (*at)(const void *v, size_t i, u128 *lo, u128 *hi);
};

static void at_v4(const void *v, size_t i, u128 *lo, u128 *hi)
{
	const struct cvz_range4 *r = (const struct cvz_range4 *)v + i;
	*lo = r->lo;
	*hi = r->hi;
}

static void at_v6(const void *v, size_t i, u128 *lo, u128 *hi)
{
	const struct cvz_range6 *r = (const struct cvz_range6 *)v + i;
	*lo = r->lo;
	*hi = r->hi;
}

static void at_port(const void *v, size_t i, u128 *lo, u128 *hi)
{
	const struct fw_portrange *r = (const struct fw_portrange *)v + i;
	*lo = r->lo;
	*hi = r->hi;
}

static void at_u8(const void *v, size_t i, u128 *lo, u128 *hi)
{
	*lo = *hi = ((const uint8_t *)v)[i];
}

static u128 key_max(unsigned keylen)
{
	return keylen >= 16 ? ~(u128)0 : ((u128)1 << (8 * keylen)) - 1;
}

/* Big-endian key bytes, as nft sends both network-order and one-byte keys. */
static void key_bytes(u128 v, unsigned keylen, uint8_t *out)
{
	for (unsigned k = 0; k < keylen; k++)
		out[keylen - 1 - k] = (uint8_t)(v >> (8 * k));
}

/* Where elements go: one set, messages of one type. */
struct elem_dest {
	uint16_t type, flags; /* NFT_MSG_NEWSETELEM or NFT_MSG_DELSETELEM, NLM_F_* */
	const char *set;
	uint32_t set_id;      /* the set is created in this batch; 0: it exists */
	bool lead_end;        /* a full load's interval-end element at 0 */
	nft_elem_cb on_elem;  /* may be NULL */
	void *arg;
};

/* Writes elements into set element messages, starting a new one before the
 * elements nest could outgrow its 16-bit length. */
struct elem_writer {
	struct nft_batch *b;
	const struct nft_origin *o;
	const struct elem_dest *d;
	unsigned keylen;
	size_t range; /* index of the range being written, for d->on_elem */
	struct nlmsghdr *nlh;
	struct nlattr *nest;
	int err;
};

static void ew_flush(struct elem_writer *w)
{
	if (!w->nlh || w->err)
		return;
	mnl_attr_nest_end(w->nlh, w->nest);
	w->nlh = NULL;
	w->err = nft_msg_end(w->b);
}

static void ew_open(struct elem_writer *w)
{
	int ret = nft_msg_start(w->b, w->d->type, w->d->flags, w->o, &w->nlh);
	if (ret < 0) {
		w->err = ret;
		return;
	}
	mnl_attr_put_strz(w->nlh, NFTA_SET_ELEM_LIST_TABLE, FW_TABLE_NAME);
	mnl_attr_put_strz(w->nlh, NFTA_SET_ELEM_LIST_SET, w->d->set);
	if (w->d->set_id)
		mnl_attr_put_u32(w->nlh, NFTA_SET_ELEM_LIST_SET_ID, htonl(w->d->set_id));
	w->nest = mnl_attr_nest_start(w->nlh, NFTA_SET_ELEM_LIST_ELEMENTS);
}

/* Attribute order as libnftnl's nftnl_set_elem_nlmsg_build_payload(). */
static void ew_put(struct elem_writer *w, u128 key, bool end, bool open)
{
	uint8_t kb[16];

	if (w->nlh && w->nlh->nlmsg_len > ELEMS_MSG_LIMIT)
		ew_flush(w);
	if (!w->nlh && !w->err)
		ew_open(w);
	if (w->err)
		return;
	struct nlattr *elem = mnl_attr_nest_start(w->nlh, NFTA_LIST_ELEM);
	if (w->d->on_elem)
		w->err = w->d->on_elem(w->d->arg, w->nlh->nlmsg_seq,
				       (uint32_t)((char *)elem - (char *)w->nlh), w->range);
	if (end)
		mnl_attr_put_u32(w->nlh, NFTA_SET_ELEM_FLAGS,
				 htonl(NFT_SET_ELEM_INTERVAL_END));
	struct nlattr *k = mnl_attr_nest_start(w->nlh, NFTA_SET_ELEM_KEY);
	key_bytes(key, w->keylen, kb);
	mnl_attr_put(w->nlh, NFTA_DATA_VALUE, w->keylen, kb);
	mnl_attr_nest_end(w->nlh, k);
	if (open) {
		uint8_t ud[6] = { NFTNL_UDATA_SET_ELEM_FLAGS, sizeof(uint32_t) };
		uint32_t flag = NFTNL_SET_ELEM_F_INTERVAL_OPEN;

		/* host order, as nftnl_udata_put_u32() writes it */
		memcpy(ud + 2, &flag, sizeof(flag));
		mnl_attr_put(w->nlh, NFTA_SET_ELEM_USERDATA, sizeof(ud), ud);
	}
	mnl_attr_nest_end(w->nlh, elem);
}

/* nft's interval encoding (src/intervals.c set_to_intervals): an
 * interval-end element at 0 unless the first range starts there (only when
 * a set is loaded whole: `add element` sends none), each range as its start
 * plus an end element at hi + 1, and a range that reaches the top of the
 * key space has no end but an "open interval" userdata flag. */
static int put_elems(struct nft_batch *b, const struct nft_origin *o,
		     const struct elem_dest *d, const struct elem_src *s)
{
	struct elem_writer w = { b, o, d, s->keylen, 0, NULL, NULL, 0 };
	u128 lo, hi, max = key_max(s->keylen);

	for (size_t i = 0; i < s->n && !w.err; i++) {
		s->at(s->v, i, &lo, &hi);
		w.range = i;
		if (!s->interval) {
			ew_put(&w, lo, false, false);
			continue;
		}
		if (i == 0 && lo != 0 && d->lead_end)
			ew_put(&w, 0, true, false);
		ew_put(&w, lo, false, hi == max);
		if (hi != max)
			ew_put(&w, hi + 1, true, false);
	}
	ew_flush(&w);
	return w.err;
}

/* A full load into a set created in this batch. */
static int put_new_elems(struct nft_batch *b, const struct nft_origin *o, const char *set,
			 uint32_t set_id, const struct elem_src *s)
{
	const struct elem_dest d = { NFT_MSG_NEWSETELEM, NLM_F_CREATE, set, set_id, true, NULL, NULL };

	return put_elems(b, o, &d, s);
}

int nft_put_gen_echo(struct nft_batch *b)
{
	return put_table(b, NFT_MSG_NEWTABLE, NLM_F_ECHO, -1);
}

int nft_put_range_elems(struct nft_batch *b, const struct nft_origin *o, uint16_t type,
			uint16_t flags, const char *set, const struct cvz_rangeset *rs,
			bool v6, nft_elem_cb on_elem, void *arg)
{
	const struct elem_dest d = { type, flags, set, 0, false, on_elem, arg };
	const struct elem_src s = v6 ? (struct elem_src){ rs->v6, rs->n6, 16, true, at_v6 }
				     : (struct elem_src){ rs->v4, rs->n4, 4, true, at_v4 };

	return put_elems(b, o, &d, &s);
}

/* The size an anonymous set declares. nft counts two elements per range
 * plus the leading one, also when the last range needed no end element. */
static uint32_t anon_set_size(const struct elem_src *s)
{
	u128 lo, hi;

	if (!s->interval || !s->n)
		return (uint32_t)s->n;
	s->at(s->v, 0, &lo, &hi);
	return (uint32_t)(2 * s->n + (lo != 0));
}

/* ---- sets ------------------------------------------------------------------ */

/* A set key as nft describes it: kernel datatype, and for an anonymous set
 * the expression it was built from (`nft list` reads that userdata). */
struct set_key {
	uint32_t type, len, byteorder;
	uint32_t expr;     /* NFT_EXPR_TYPE_*, 0 = none (named sets) */
	uint32_t a, b;     /* payload: proto desc id, field; meta: key, - */
};

static int set_udata(const struct set_key *k, bool merge,
		     struct nftnl_udata_buf *u)
{
	bool ok = nftnl_udata_put_u32(u, NFTNL_UDATA_SET_KEYBYTEORDER, k->byteorder);

	if (merge)
		ok = ok && nftnl_udata_put_u32(u, NFTNL_UDATA_SET_MERGE_ELEMENTS, 1);
	if (!k->expr)
		return ok ? 0 : -ENOBUFS;
	struct nftnl_udata *n1 = nftnl_udata_nest_start(u, NFTNL_UDATA_SET_KEY_TYPEOF);
	ok = ok && nftnl_udata_put_u32(u, NFTNL_UDATA_SET_TYPEOF_EXPR, k->expr);
	struct nftnl_udata *n2 = nftnl_udata_nest_start(u, NFTNL_UDATA_SET_TYPEOF_DATA);
	if (k->expr == NFT_EXPR_TYPE_META) {
		ok = ok && nftnl_udata_put_u32(u, NFT_UDATA_META_KEY, k->a);
	} else {
		ok = ok && nftnl_udata_put_u32(u, NFT_UDATA_PAYLOAD_DESC, k->a);
		ok = ok && nftnl_udata_put_u32(u, NFT_UDATA_PAYLOAD_TYPE, k->b);
	}
	nftnl_udata_nest_end(u, n2);
	nftnl_udata_nest_end(u, n1);
	return ok ? 0 : -ENOBUFS;
}

/* Fills the attributes every set has: name, id, flags, key, userdata. */
static int set_common(struct nftnl_set *s, const char *name, uint32_t id,
		      uint32_t flags, const struct set_key *k)
{
	_cleanup_(nftnl_udata_buf_freep) struct nftnl_udata_buf *u =
		nftnl_udata_buf_alloc(UDATA_MAX);
	int ret;

	if (!u || nftnl_set_set_str(s, NFTNL_SET_TABLE, FW_TABLE_NAME) < 0 ||
	    nftnl_set_set_str(s, NFTNL_SET_NAME, name) < 0)
		return -ENOMEM;
	if ((ret = set_udata(k, flags & NFT_SET_ANONYMOUS && flags & NFT_SET_INTERVAL, u)) < 0)
		return ret;
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
	nftnl_set_set_u32(s, NFTNL_SET_ID, id);
	nftnl_set_set_u32(s, NFTNL_SET_FLAGS, flags);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, k->type);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, k->len);
	return nftnl_set_set_data(s, NFTNL_SET_USERDATA, nftnl_udata_buf_data(u),
				  nftnl_udata_buf_len(u)) < 0 ? -ENOMEM : 0;
}

/* NLM_F_EXCL: the table is new, so an existing set can only be a second
 * fw_set of the same name, which the kernel would otherwise merge silently. */
static int put_set_msg(struct nft_batch *b, const struct nft_origin *o, struct nftnl_set *s)
{
	struct nlmsghdr *nlh;
	int ret = nft_msg_start(b, NFT_MSG_NEWSET, NLM_F_CREATE | NLM_F_EXCL | echo_flag(b),
				o, &nlh);
	if (ret < 0)
		return ret;
	nftnl_set_nlmsg_build_payload(nlh, s);
	return nft_msg_end(b);
}

static const struct set_key addr_key[2] = {
	{ 7, 4, NFT_BYTEORDER_BIG, 0, 0, 0 },  /* ipv4_addr */
	{ 8, 16, NFT_BYTEORDER_BIG, 0, 0, 0 }, /* ipv6_addr */
};

static struct elem_src set_elems(const struct fw_set *s)
{
	if (s->family == NFPROTO_IPV4)
		return (struct elem_src){ s->elems.v4, s->elems.n4, 4, true, at_v4 };
	return (struct elem_src){ s->elems.v6, s->elems.n6, 16, true, at_v6 };
}

static int put_named_set(struct nft_batch *b, size_t i)
{
	const struct fw_set *fs = &b->t->sets[i];
	const struct nft_origin o = { .text = fs->origin, .what = "set", .name = fs->name };
	_cleanup_(nftnl_set_freep) struct nftnl_set *s = nftnl_set_alloc();
	bool rl = fs->kind == FW_SET_RATELIMIT;
	uint32_t id = b->set_ids[i] = ++b->last_set_id;
	int ret;

	if (!s)
		return -ENOMEM;
	ret = set_common(s, fs->name, id,
			 rl ? NFT_SET_TIMEOUT | NFT_SET_EVAL : NFT_SET_INTERVAL,
			 &addr_key[fs->family == NFPROTO_IPV6]);
	if (ret < 0)
		return ret;
	if (fs->size)
		nftnl_set_set_u32(s, NFTNL_SET_DESC_SIZE, fs->size);
	if (rl && fs->timeout_ms)
		nftnl_set_set_u64(s, NFTNL_SET_TIMEOUT, fs->timeout_ms);
	if ((ret = put_set_msg(b, &o, s)) < 0 || rl)
		return ret;
	const struct nft_origin oe = { .text = fs->origin, .what = "elements of set",
				   .name = fs->name };
	struct elem_src src = set_elems(fs);
	return src.n ? put_new_elems(b, &oe, fs->name, id, &src) : 0;
}

/* An anonymous constant set, as nft creates for `{ a, b }` in a rule; the
 * rule then looks it up by *id. */
static int put_anon_set(struct nft_batch *b, const struct nft_origin *ro,
			const struct set_key *k, const struct elem_src *src,
			uint32_t *id)
{
	const struct nft_origin o = { .text = ro->text, .what = "anonymous set of rule",
				  .chain = ro->chain, .rule = ro->rule };
	_cleanup_(nftnl_set_freep) struct nftnl_set *s = nftnl_set_alloc();
	uint32_t flags = NFT_SET_ANONYMOUS | NFT_SET_CONSTANT, sid = ++b->last_set_id;
	int ret;

	if (!s)
		return -ENOMEM;
	if (src->interval)
		flags |= NFT_SET_INTERVAL;
	if ((ret = set_common(s, "__set%d", sid, flags, k)) < 0)
		return ret;
	nftnl_set_set_u32(s, NFTNL_SET_DESC_SIZE, anon_set_size(src));
	if ((ret = put_set_msg(b, &o, s)) < 0 ||
	    (ret = put_new_elems(b, &o, "__set%d", sid, src)) < 0)
		return ret;
	*id = sid;
	return 0;
}

/* ---- rules ----------------------------------------------------------------- */

/* A rule under construction. Expression helpers record the first failure
 * in err and do nothing after it, so the builders read as the rule does. */
struct rb {
	struct nft_batch *b;
	struct nftnl_rule *r;
	const struct rule_plan *p;
	struct nft_origin o;
	bool have_dep; /* the meta nfproto compare is in the rule */
	int err;
};

static struct nftnl_expr *rb_expr(struct rb *x, const char *name)
{
	struct nftnl_expr *e;

	if (x->err)
		return NULL;
	e = nftnl_expr_alloc(name);
	if (!e) {
		x->err = -ENOMEM;
		return NULL;
	}
	nftnl_rule_add_expr(x->r, e);
	return e;
}

static void rb_ok(struct rb *x, int ret)
{
	if (ret < 0 && !x->err)
		x->err = -ENOMEM;
}

static void rb_meta(struct rb *x, uint32_t key)
{
	struct nftnl_expr *e = rb_expr(x, "meta");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
}

static void rb_cmp(struct rb *x, uint32_t op, const void *data, uint32_t len)
{
	struct nftnl_expr *e = rb_expr(x, "cmp");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
	rb_ok(x, nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len));
}

static void rb_payload(struct rb *x, uint32_t base, uint32_t off, uint32_t len)
{
	struct nftnl_expr *e = rb_expr(x, "payload");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, off);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
}

/* reg1 &= mask, as nft emits for prefixes and flag tests (no op attribute). */
static void rb_bitwise(struct rb *x, const void *mask, uint32_t len)
{
	static const uint8_t zero[16];
	struct nftnl_expr *e = rb_expr(x, "bitwise");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, len);
	rb_ok(x, nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, mask, len));
	rb_ok(x, nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, zero, len));
}

/* Named sets are looked up by name (and id: created in this batch); an
 * unknown name is left for the kernel to refuse with ENOENT. `!= @set` is
 * the inverted lookup; nft sends the flags attribute only then. */
static void rb_lookup(struct rb *x, const char *set, uint32_t id, bool invert)
{
	struct nftnl_expr *e = rb_expr(x, "lookup");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
	rb_ok(x, nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set));
	if (id)
		nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SET_ID, id);
	if (invert)
		nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
}

static uint32_t named_set_id(const struct nft_batch *b, const char *name)
{
	for (size_t i = 0; i < b->t->n_sets; i++)
		if (!strcmp(b->t->sets[i].name, name))
			return b->set_ids[i];
	return 0;
}

static void rb_anon_lookup(struct rb *x, const struct set_key *k,
			   const struct elem_src *src, bool invert)
{
	uint32_t id;
	int ret;

	if (x->err)
		return;
	if ((ret = put_anon_set(x->b, &x->o, k, src, &id)) < 0) {
		x->err = ret;
		return;
	}
	rb_lookup(x, "__set%d", id, invert);
}

static void rb_meta_cmp8(struct rb *x, uint32_t key, uint8_t v)
{
	rb_meta(x, key);
	rb_cmp(x, NFT_CMP_EQ, &v, 1);
}

/* The `meta nfproto` compare, once per rule. */
static void rb_dep(struct rb *x)
{
	if (x->have_dep)
		return;
	rb_meta_cmp8(x, NFT_META_NFPROTO, x->p->fam);
	x->have_dep = true;
}

/* iifname "lo" compares all 16 bytes; "br-*" compares only "br-". */
static void rb_ifname(struct rb *x, uint32_t key, const char *name, bool invert)
{
	uint32_t op = invert ? NFT_CMP_NEQ : NFT_CMP_EQ;
	char buf[IFNAMSIZ] = { 0 };
	size_t len = strlen(name);

	if (!len)
		return;
	memcpy(buf, name, len);
	rb_meta(x, key);
	if (name[len - 1] == '*')
		rb_cmp(x, op, buf, (uint32_t)len - 1);
	else
		rb_cmp(x, op, buf, IFNAMSIZ);
}

static unsigned popcount128(u128 v)
{
	return (unsigned)(__builtin_popcountll((uint64_t)v) +
			  __builtin_popcountll((uint64_t)(v >> 64)));
}

/* lo <= reg1 <= hi negated, as nft sends `!= a-b`: one range expression. */
static void rb_range_neq(struct rb *x, const uint8_t *lo, const uint8_t *hi, uint32_t len)
{
	struct nftnl_expr *e = rb_expr(x, "range");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_RANGE_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_RANGE_OP, NFT_RANGE_NEQ);
	rb_ok(x, nftnl_expr_set(e, NFTNL_EXPR_RANGE_FROM_DATA, lo, len));
	rb_ok(x, nftnl_expr_set(e, NFTNL_EXPR_RANGE_TO_DATA, hi, len));
}

/* One address or range. nft loads only the bytes a byte-aligned prefix
 * covers, masks any other prefix (even /0), and compares a non-prefix
 * range with >= and <= (negated: one range expression). */
static void rb_addr_one(struct rb *x, u128 lo, u128 hi, unsigned alen, uint32_t off,
			bool invert)
{
	uint8_t a[16], b[16], m[16];
	u128 span = hi - lo, max = key_max(alen);
	unsigned plen = 8 * alen - popcount128(span);
	uint32_t op = invert ? NFT_CMP_NEQ : NFT_CMP_EQ;

	key_bytes(lo, alen, a);
	if ((span & (span + 1)) || (lo & span)) {
		rb_payload(x, NFT_PAYLOAD_NETWORK_HEADER, off, alen);
		key_bytes(hi, alen, b);
		if (invert) {
			rb_range_neq(x, a, b, alen);
			return;
		}
		rb_cmp(x, NFT_CMP_GTE, a, alen);
		rb_cmp(x, NFT_CMP_LTE, b, alen);
	} else if (plen && plen % 8 == 0) {
		rb_payload(x, NFT_PAYLOAD_NETWORK_HEADER, off, plen / 8);
		rb_cmp(x, op, a, plen / 8);
	} else {
		rb_payload(x, NFT_PAYLOAD_NETWORK_HEADER, off, alen);
		key_bytes(max & ~span, alen, m);
		rb_bitwise(x, m, alen);
		rb_cmp(x, op, a, alen);
	}
}

/* nftables proto desc ids (include/proto.h) and header field ids. */
enum { DESC_ICMP = 4, DESC_UDP = 6, DESC_TCP = 8, DESC_TH = 11, DESC_IP = 12,
       DESC_IP6 = 13, DESC_ICMPV6 = 14 };

static void rb_addr(struct rb *x, const struct plan_addr *a, bool dst)
{
	bool v6 = x->p->fam == NFPROTO_IPV6;
	unsigned alen = v6 ? 16 : 4;
	uint32_t off = v6 ? (dst ? 24 : 8) : (dst ? 16 : 12);
	/* ip saddr/daddr = fields 11/12, ip6 saddr/daddr = 8/9 */
	const struct set_key k = { v6 ? 8 : 7, alen, NFT_BYTEORDER_BIG, NFT_EXPR_TYPE_PAYLOAD,
				   v6 ? DESC_IP6 : DESC_IP, (v6 ? 8 : 11) + dst };
	struct elem_src src = v6 ? (struct elem_src){ a->rs.v6, a->rs.n6, 16, true, at_v6 }
				 : (struct elem_src){ a->rs.v4, a->rs.n4, 4, true, at_v4 };
	u128 lo, hi;

	if (a->kind == MATCH_NONE)
		return;
	rb_dep(x);
	if (a->kind == MATCH_ONE) {
		src.at(src.v, 0, &lo, &hi);
		rb_addr_one(x, lo, hi, alen, off, a->invert);
		return;
	}
	rb_payload(x, NFT_PAYLOAD_NETWORK_HEADER, off, alen);
	if (a->kind == MATCH_SET)
		rb_anon_lookup(x, &k, &src, a->invert);
	else
		rb_lookup(x, a->set, named_set_id(x->b, a->set), a->invert);
}

static void rb_ports(struct rb *x, const struct plan_ports *pp, uint32_t off,
		     uint32_t desc)
{
	const struct set_key k = { 13, 2, NFT_BYTEORDER_BIG, NFT_EXPR_TYPE_PAYLOAD,
				   desc, off ? 2 : 1 }; /* inet_service; sport 1, dport 2 */
	const struct elem_src src = { pp->v, pp->n, 2, pp->interval, at_port };
	uint8_t lo[2], hi[2];

	if (pp->kind == MATCH_NONE)
		return;
	rb_payload(x, NFT_PAYLOAD_TRANSPORT_HEADER, off, 2);
	if (pp->kind == MATCH_SET) {
		rb_anon_lookup(x, &k, &src, false);
		return;
	}
	key_bytes(pp->v[0].lo, 2, lo);
	key_bytes(pp->v[0].hi, 2, hi);
	if (pp->v[0].lo == pp->v[0].hi) {
		rb_cmp(x, NFT_CMP_EQ, lo, 2);
	} else {
		rb_cmp(x, NFT_CMP_GTE, lo, 2);
		rb_cmp(x, NFT_CMP_LTE, hi, 2);
	}
}

static size_t u8set_values(const struct plan_u8set *s, uint8_t out[256])
{
	size_t n = 0;
	int v = -1;

	while (plan_u8set_next(s, &v))
		out[n++] = (uint8_t)v;
	return n;
}

/* `meta l4proto tcp`, `meta l4proto { tcp, udp }`, then the ports: with one
 * protocol `tcp dport` (nft's l4proto dependency is that same compare),
 * with several `th dport`. */
static void rb_l4(struct rb *x)
{
	static const struct set_key k = { 12, 1, NFT_BYTEORDER_HOST, NFT_EXPR_TYPE_META,
					  NFT_META_L4PROTO, 0 }; /* inet_proto */
	const struct rule_plan *p = x->p;
	uint8_t v[256];
	size_t n = u8set_values(&p->l4, v);
	const struct elem_src src = { v, n, 1, false, at_u8 };
	uint32_t desc;

	if (n == 0)
		return;
	desc = p->th ? DESC_TH : v[0] == IPPROTO_TCP ? DESC_TCP : DESC_UDP;
	if (n == 1) {
		rb_meta_cmp8(x, NFT_META_L4PROTO, v[0]);
	} else {
		rb_meta(x, NFT_META_L4PROTO);
		rb_anon_lookup(x, &k, &src, false);
	}
	rb_ports(x, &p->sport, 0, desc);
	rb_ports(x, &p->dport, 2, desc);
}

/* ct state a,b = (state & mask) != 0 */
static void rb_ct(struct rb *x, uint32_t state)
{
	const uint32_t zero = 0;
	struct nftnl_expr *e;

	if (!state || !(e = rb_expr(x, "ct")))
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, NFT_CT_STATE);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, NFT_REG_1);
	rb_bitwise(x, &state, sizeof(state));
	rb_cmp(x, NFT_CMP_NEQ, &zero, sizeof(zero));
}

static void rb_icmp(struct rb *x)
{
	const struct rule_plan *p = x->p;
	bool v6 = p->icmp_proto == IPPROTO_ICMPV6;
	/* icmp_type 14 / icmpv6_type 29, field "type" = 1 */
	const struct set_key k = { v6 ? 29 : 14, 1, NFT_BYTEORDER_BIG, NFT_EXPR_TYPE_PAYLOAD,
				   v6 ? DESC_ICMPV6 : DESC_ICMP, 1 };
	uint8_t v[256];
	size_t n = u8set_values(&p->icmp, v);
	const struct elem_src src = { v, n, 1, false, at_u8 };

	if (!p->icmp_proto)
		return;
	rb_dep(x);
	rb_meta_cmp8(x, NFT_META_L4PROTO, p->icmp_proto);
	rb_payload(x, NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1);
	if (n == 1)
		rb_cmp(x, NFT_CMP_EQ, v, 1);
	else
		rb_anon_lookup(x, &k, &src, false);
}

static void limit_fill(struct nftnl_expr *e, const struct fw_limit *l)
{
	nftnl_expr_set_u64(e, NFTNL_EXPR_LIMIT_RATE, l->rate);
	nftnl_expr_set_u64(e, NFTNL_EXPR_LIMIT_UNIT, l->unit_secs);
	nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_BURST, l->burst);
	nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_TYPE, NFT_LIMIT_PKTS);
	nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_FLAGS, 0);
}

/* update @set { ip saddr limit ... }: the key is loaded, then dynset. */
static void rb_limit_per_source(struct rb *x, const struct fw_limit *l)
{
	bool v6 = x->p->fam == NFPROTO_IPV6;
	struct nftnl_expr *e, *lim;

	rb_dep(x);
	rb_payload(x, NFT_PAYLOAD_NETWORK_HEADER, v6 ? 8 : 12, v6 ? 16 : 4);
	if (!(e = rb_expr(x, "dynset")))
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_DYNSET_SREG_KEY, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_DYNSET_OP, NFT_DYNSET_OP_UPDATE);
	rb_ok(x, nftnl_expr_set_str(e, NFTNL_EXPR_DYNSET_SET_NAME, x->p->rate_set));
	uint32_t id = named_set_id(x->b, x->p->rate_set);
	if (id)
		nftnl_expr_set_u32(e, NFTNL_EXPR_DYNSET_SET_ID, id);
	if (!(lim = nftnl_expr_alloc("limit"))) {
		x->err = -ENOMEM;
		return;
	}
	limit_fill(lim, l);
	nftnl_expr_set(e, NFTNL_EXPR_DYNSET_EXPR, lim, 0); /* e owns lim */
}

static void rb_limit(struct rb *x, const struct fw_rule *fr)
{
	struct nftnl_expr *e;

	if (!fr->has_limit)
		return;
	if (fr->limit.per_source)
		rb_limit_per_source(x, &fr->limit);
	else if ((e = rb_expr(x, "limit")))
		limit_fill(e, &fr->limit);
}

static void rb_log(struct rb *x, const char *prefix)
{
	struct nftnl_expr *e = rb_expr(x, "log");

	if (e && prefix[0])
		rb_ok(x, nftnl_expr_set_str(e, NFTNL_EXPR_LOG_PREFIX, prefix));
}

/* Plain `reject` is icmpx port-unreachable; once the rule is known to be
 * IPv4 or IPv6, nft uses that family's own port-unreachable instead. */
static void rb_verdict(struct rb *x, enum fw_verdict v)
{
	uint8_t fam = x->p->fam;
	struct nftnl_expr *e;

	if (v == FW_VERDICT_NONE)
		return;
	if (v == FW_VERDICT_REJECT) {
		if (!(e = rb_expr(x, "reject")))
			return;
		nftnl_expr_set_u32(e, NFTNL_EXPR_REJECT_TYPE,
				   fam ? NFT_REJECT_ICMP_UNREACH : NFT_REJECT_ICMPX_UNREACH);
		nftnl_expr_set_u8(e, NFTNL_EXPR_REJECT_CODE,
				  !fam ? NFT_REJECT_ICMPX_PORT_UNREACH
				  : fam == NFPROTO_IPV4 ? ICMP_PORT_UNREACH
							: ICMP6_DST_UNREACH_NOPORT);
		return;
	}
	if (!(e = rb_expr(x, "immediate")))
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT,
			   v == FW_VERDICT_ACCEPT ? NF_ACCEPT : NF_DROP);
}

/* Expressions in fw_rule field order, with the nfproto dependency where
 * nft puts it (see enum plan_dep). */
static int rb_exprs(struct rb *x, const struct fw_rule *fr)
{
	const struct rule_plan *p = x->p;

	if (p->dep == DEP_HEAD)
		rb_dep(x);
	rb_ifname(x, NFT_META_IIFNAME, fr->iifname, fr->iifname_invert);
	rb_ifname(x, NFT_META_OIFNAME, fr->oifname, false);
	if (p->dep == DEP_EXPLICIT)
		rb_dep(x);
	rb_addr(x, &p->saddr, false);
	rb_addr(x, &p->daddr, true);
	rb_l4(x);
	rb_ct(x, fr->ct_state);
	rb_icmp(x);
	rb_limit(x, fr);
	if (fr->counter)
		rb_expr(x, "counter");
	if (fr->log)
		rb_log(x, fr->log_prefix);
	rb_verdict(x, fr->verdict);
	return x->err;
}

static int rule_comment(struct nftnl_rule *r, const char *comment)
{
	_cleanup_(nftnl_udata_buf_freep) struct nftnl_udata_buf *u = NULL;

	if (!comment[0])
		return 0;
	u = nftnl_udata_buf_alloc(UDATA_MAX);
	if (!u || !nftnl_udata_put_strz(u, NFTNL_UDATA_RULE_COMMENT, comment))
		return -ENOMEM;
	return nftnl_rule_set_data(r, NFTNL_RULE_USERDATA, nftnl_udata_buf_data(u),
				   nftnl_udata_buf_len(u)) < 0 ? -ENOMEM : 0;
}

/* Anonymous sets go into the batch while the rule is built, so they precede
 * the NEWRULE that looks them up by id. */
static int put_rule(struct nft_batch *b, const struct rule_plan *p,
		    const struct fw_rule *fr, const struct nft_origin *o)
{
	_cleanup_(nftnl_rule_freep) struct nftnl_rule *r = nftnl_rule_alloc();
	struct rb x = { b, r, p, *o, false, 0 };
	struct nlmsghdr *nlh;
	int ret;

	if (!r || nftnl_rule_set_str(r, NFTNL_RULE_TABLE, FW_TABLE_NAME) < 0 ||
	    nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, o->chain) < 0)
		return -ENOMEM;
	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_INET);
	if ((ret = rule_comment(r, fr->comment)) < 0 || (ret = rb_exprs(&x, fr)) < 0)
		return ret;
	if ((ret = nft_msg_start(b, NFT_MSG_NEWRULE,
				 NLM_F_CREATE | NLM_F_APPEND | echo_flag(b), o, &nlh)) < 0)
		return ret;
	nftnl_rule_nlmsg_build_payload(nlh, r);
	return nft_msg_end(b);
}

/* ---- the batch --------------------------------------------------------------- */

void nft_origin_where(const struct nft_origin *o, char *buf, size_t len)
{
	if (o->text)
		snprintf(buf, len, "%s", o->text);
	else if (o->chain)
		snprintf(buf, len, "chain %s rule %zu", o->chain, o->rule + 1);
	else
		snprintf(buf, len, "table inet %s", FW_TABLE_NAME);
}

static int put_rules(struct nft_batch *b, char *err, size_t errlen)
{
	for (int h = 0; h < FW_HOOK_COUNT; h++) {
		const struct fw_chain *c = &b->t->chains[h];

		for (size_t i = 0; i < c->n_rules; i++) {
			const struct fw_rule *fr = &c->rules[i];
			const struct nft_origin o = { .text = fr->origin, .what = "rule",
						  .chain = fw_hook_name(h), .rule = i };
			_cleanup_(rule_plan_free) struct rule_plan p = { 0 };
			int ret = rule_plan_build(&p, fr, b->t);

			if (ret == -EINVAL) {
				char where[256];

				nft_origin_where(&o, where, sizeof(where));
				snprintf(err, errlen, "%s: cannot express rule: %s",
					 where, p.why);
			}
			if (ret < 0 || (ret = put_rule(b, &p, fr, &o)) < 0)
				return ret;
		}
	}
	return 0;
}

static int put_sets(struct nft_batch *b, char *err, size_t errlen)
{
	for (size_t i = 0; i < b->t->n_sets; i++) {
		const struct fw_set *s = &b->t->sets[i];
		const char *why;
		int ret = plan_check_set(s, &why);

		if (ret < 0) {
			snprintf(err, errlen, "%s: cannot express set %s: %s",
				 s->origin ? s->origin : "table inet " FW_TABLE_NAME,
				 s->name, why);
			return ret;
		}
		if ((ret = put_named_set(b, i)) < 0)
			return ret;
	}
	return 0;
}

/* NEWTABLE (so that DELTABLE finds one), DELTABLE, NEWTABLE, then chains,
 * sets and rules in the order nft itself sends a table block. */
int nft_build_table_batch(struct nft_batch *b, const struct fw_table *t,
			  const struct nft_table_opts *opts, uint32_t seq0,
			  char *err, size_t errlen)
{
	int ret;

	if ((ret = nft_batch_init(b, t, seq0)) < 0)
		return ret;
	b->echo = opts->echo;
	if ((ret = put_table(b, NFT_MSG_NEWTABLE, NLM_F_CREATE | echo_flag(b),
			     opts->keep_flags ? -1 : 0)) < 0 ||
	    (ret = put_table(b, NFT_MSG_DELTABLE, 0, 0)) < 0 ||
	    (ret = put_table(b, NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_EXCL | echo_flag(b),
			     opts->table_flags)) < 0)
		return ret;
	for (int h = 0; h < FW_HOOK_COUNT; h++)
		if ((ret = put_chain(b, &t->chains[h], (enum fw_hook)h)) < 0)
			return ret;
	if ((ret = put_sets(b, err, errlen)) < 0 || (ret = put_rules(b, err, errlen)) < 0)
		return ret;
	return nft_batch_finish(b);
}

/* ---- talking to the kernel --------------------------------------------------- */

int nft_socket_open(struct mnl_socket **out)
{
	_cleanup_(mnl_socket_closep) struct mnl_socket *nl =
		mnl_socket_open(NETLINK_NETFILTER);
	const struct timeval tv = { REPLY_TIMEOUT_SECS, 0 };
	int one = 1;

	if (!nl || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0)
		return -errno;
	/* Best effort: errors without a copy of the refused message (which can
	 * be 64 KiB of set elements), and with the kernel's reason text. */
	(void)mnl_socket_setsockopt(nl, NETLINK_CAP_ACK, &one, sizeof(one));
	(void)mnl_socket_setsockopt(nl, NETLINK_EXT_ACK, &one, sizeof(one));
	/* The kernel answers while sendmsg() runs; this only bounds a wait
	 * for replies that will never come. */
	if (setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	*out = TAKE_PTR(nl);
	return 0;
}

/* Raises a socket buffer to want bytes; the *FORCE variant (CAP_NET_ADMIN)
 * ignores net.core.[rw]mem_max. Failure is left to show up as EMSGSIZE or
 * ENOBUFS, which are reported. */
void nft_grow_sockbuf(int fd, int opt, int opt_force, size_t want)
{
	int cur = 0, v = want > INT32_MAX / 2 ? INT32_MAX / 2 : (int)want;
	socklen_t len = sizeof(cur);

	if (getsockopt(fd, SOL_SOCKET, opt, &cur, &len) == 0 && cur >= v)
		return;
	if (setsockopt(fd, SOL_SOCKET, opt_force, &v, sizeof(v)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, opt, &v, sizeof(v));
}

/* nfnetlink runs one batch per sendmsg(): BEGIN..END must arrive together
 * or the kernel aborts the part without END. So all pages go out as one
 * iovec, with the send buffer grown to hold them. */
static int batch_send(struct mnl_socket *nl, const struct nft_batch *b)
{
	int fd = mnl_socket_get_fd(nl), n = nftnl_batch_iovec_len(b->nb);
	_cleanup_(freep) struct iovec *iov = calloc((size_t)n, sizeof(*iov));
	struct sockaddr_nl snl = { .nl_family = AF_NETLINK };
	struct msghdr msg = { .msg_name = &snl, .msg_namelen = sizeof(snl) };
	size_t total = 0;
	ssize_t sent;

	if (!iov)
		return -ENOMEM;
	nftnl_batch_iovec(b->nb, iov, (uint32_t)n);
	for (int i = 0; i < n; i++)
		total += iov[i].iov_len;
	nft_grow_sockbuf(fd, SO_SNDBUF, SO_SNDBUFFORCE, total + 4096);
	/* nftables' estimate: an ACK costs the receive queue ~1 KiB; an echoed
	 * object (a rule with its expressions) a few */
	nft_grow_sockbuf(fd, SO_RCVBUF, SO_RCVBUFFORCE,
			 (size_t)b->n_acks * 1024 + (size_t)b->n_echo * 4096);
	msg.msg_iov = iov;
	msg.msg_iovlen = (size_t)n;
	sent = sendmsg(fd, &msg, 0);
	if (sent < 0)
		return -errno;
	return (size_t)sent == total ? 0 : -EMSGSIZE;
}

/* The kernel's reason text, and which attribute of the refused message
 * it objects to (a set element, for element messages). */
static void extack_parse(const struct nlmsghdr *nlh, const struct nlmsgerr *e,
			 struct nft_replies *r)
{
	unsigned hlen = sizeof(*e);
	const struct nlattr *a;

	if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS))
		return;
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
		hlen += (unsigned)mnl_nlmsg_get_payload_len(&e->msg);
	mnl_attr_for_each(a, nlh, hlen) {
		if (mnl_attr_get_type(a) == NLMSGERR_ATTR_MSG &&
		    mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0)
			snprintf(r->msg, sizeof(r->msg), "%s", mnl_attr_get_str(a));
		if (mnl_attr_get_type(a) == NLMSGERR_ATTR_OFFS &&
		    mnl_attr_validate(a, MNL_TYPE_U32) == 0)
			r->err_off = mnl_attr_get_u32(a);
	}
}

/* NLMSG_ERROR is both the ACK (error 0) and the refusal. */
static int on_reply(const struct nlmsghdr *nlh, void *data)
{
	struct nft_replies *r = data;
	const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);

	if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(*e))) {
		errno = EBADMSG;
		return MNL_CB_ERROR;
	}
	r->got++;
	if (e->error == 0)
		return MNL_CB_OK;
	r->err = e->error < 0 ? -e->error : e->error;
	r->err_seq = nlh->nlmsg_seq;
	extack_parse(nlh, e, r);
	return MNL_CB_STOP;
}

static int on_data(const struct nlmsghdr *nlh, void *data)
{
	struct nft_replies *r = data;

	return r->on_data ? r->on_data(nlh, r->data) : MNL_CB_OK;
}

static int read_loop(struct mnl_socket *nl, char *buf, uint32_t want, struct nft_replies *r)
{
	static mnl_cb_t ctl[NLMSG_MIN_TYPE] = { [NLMSG_ERROR] = on_reply };
	uint32_t portid = mnl_socket_get_portid(nl);

	while (r->got < want && !r->err) {
		ssize_t n = mnl_socket_recvfrom(nl, buf, NFT_REPLY_BUF_SIZE);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		/* seq 0: replies carry many sequence numbers, mapped later */
		if (mnl_cb_run2(buf, (size_t)n, 0, portid, on_data, r, ctl, NLMSG_MIN_TYPE) < 0)
			return -errno;
	}
	return 0;
}

/* Reads replies until every ACK is in or the first refusal (replies come in
 * message order, so that is the root cause; the kernel has aborted). The
 * buffer is freed by hand: clang-analyzer does not follow _cleanup_. */
static int read_replies(struct mnl_socket *nl, uint32_t want, struct nft_replies *r)
{
	char *buf = malloc(NFT_REPLY_BUF_SIZE);
	int ret;

	if (!buf)
		return -ENOMEM;
	ret = read_loop(nl, buf, want, r);
	free(buf);
	return ret;
}

const char *nft_strerror(int err)
{
	/* ENFILE from NEWSETELEM: the kernel's "Too many open files in system"
	   says nothing of sets */
	if (err == ENFILE)
		return "the set is full (more elements than its size allows)";
	return strerror(err);
}

static void report_refusal(const struct nft_batch *b, const struct nft_replies *r,
			   char *err, size_t errlen)
{
	static const struct nft_origin unknown = { .text = "netlink batch", .what = "message" };
	size_t i = r->err_seq - b->seq0;
	const struct nft_origin *o = i < b->n_orig ? &b->orig[i] : &unknown;
	char where[256];

	nft_origin_where(o, where, sizeof(where));
	snprintf(err, errlen, "%s: kernel refused %s%s%s: %s%s%s%s", where, o->what,
		 o->name ? " " : "", o->name ? o->name : "", nft_strerror(r->err),
		 r->msg[0] ? " (" : "", r->msg, r->msg[0] ? ")" : "");
}

int nft_batch_talk(struct mnl_socket *nl, const struct nft_batch *b, struct nft_replies *r,
		   char *err, size_t errlen)
{
	int ret;

	if ((ret = batch_send(nl, b)) < 0) {
		snprintf(err, errlen, "cannot send the netlink batch: %s", strerror(-ret));
		return ret;
	}
	r->sent = true;
	if ((ret = read_replies(nl, b->n_acks, r)) < 0) {
		/* ENOBUFS: replies were dropped; the batch may have committed */
		snprintf(err, errlen, "reading the kernel's replies: %s (table inet %s "
			 "may or may not have been replaced)", strerror(-ret), FW_TABLE_NAME);
		return ret;
	}
	if (r->err) {
		report_refusal(b, r, err, errlen);
		return -r->err;
	}
	return 0;
}

static int talk(const struct nft_batch *b, char *err, size_t errlen)
{
	_cleanup_(mnl_socket_closep) struct mnl_socket *nl = NULL;
	struct nft_replies r = { 0 };
	int ret;

	if ((ret = nft_socket_open(&nl)) < 0) {
		snprintf(err, errlen, "cannot open a netfilter netlink socket: %s",
			 strerror(-ret));
		return ret;
	}
	return nft_batch_talk(nl, b, &r, err, errlen);
}

int nft_apply_table(const struct fw_table *t, char *err, size_t errlen)
{
	static const struct nft_table_opts plain = { 0 };
	struct nft_batch b;
	int ret;

	if (errlen)
		err[0] = '\0';
	ret = nft_build_table_batch(&b, t, &plain, (uint32_t)time(NULL), err, errlen);
	if (ret < 0 && errlen && !err[0])
		snprintf(err, errlen, "building the netlink batch: %s", strerror(-ret));
	if (ret == 0)
		ret = talk(&b, err, errlen);
	nft_batch_free(&b); /* by hand, like read_replies() */
	return ret;
}
