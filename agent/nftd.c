/* The daemon's netlink connection (see nft.h): nft.c's table batch on one
 * long-lived socket, optionally owned and persistent; blocklist element
 * deltas; read-back verification; and the monitor for foreign changes.
 *
 * Owner and persist, as Linux 6.18 behaves (tests/dev/nftd_selftest.sh
 * checks each point):
 *  - While our socket owns the table, the kernel refuses every other
 *    socket's change to it with EPERM (nft: "Error: Could not process rule:
 *    Operation not permitted" for delete table, add rule, delete element,
 *    add chain, flags dormant), so no event is sent either. "nft flush
 *    ruleset" exits 0 and skips the owned table. Anyone may read it.
 *  - When the socket closes (exit or SIGKILL alike), the table stays in
 *    force, unchanged, with the owner flag cleared: flags persist alone, no
 *    NFTA_TABLE_OWNER. Such an orphan is anyone's to change.
 *  - A new socket replaces an orphan with the usual NEWTABLE, DELTABLE,
 *    NEWTABLE batch, and the new table is owned by the new socket; no
 *    "adopt" step (NEWTABLE with the owner flag) is needed. The one catch:
 *    a NEWTABLE for an existing table whose flags would change owner or
 *    persist is refused with EOPNOTSUPP, so the leading create-if-missing
 *    NEWTABLE carries no flags attribute at all (the kernel then leaves an
 *    existing table alone); the flags go on the NEWTABLE that creates the
 *    replacement. nft_apply_table() sends flags 0 there, as nft does, and
 *    so cannot replace an orphan.
 *  - A table owned by another live socket (a second agent) refuses our
 *    DELTABLE with EPERM: the whole batch is aborted. */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <libnftnl/common.h>

#include "cleanup.h"
#include "nft.h"
#include "nft_internal.h"

typedef unsigned __int128 u128;

/* Room for the events of a large delta before the monitor overruns; a
 * full apply of a big set overruns anyway, and the caller verifies. */
#define MONITOR_RCVBUF (16u << 20)
#define VERIFY_TRIES 3
/* The kernel dumps an interval set in time quadratic in its size: every
 * 32 KiB chunk of a dump walks the tree again from its first node (Linux
 * 6.18: 100k ranges read back in ~0.6 s, 1M in over a minute of kernel
 * time). Past this many ranges an owned table's sets are not read back. */
#define READBACK_MAX_RANGES 65536u
/* While anyone listens to nftables events, every set element a commit adds
 * or deletes becomes a notification that the kernel builds in its own
 * page-sized buffer and holds until the commit ends (Linux 6.18, 1M ranges:
 * 16 GB of slab and 35 s instead of 240 MB and 2 s). Our own monitor is
 * such a listener, so it stops listening during our commits of more
 * elements than this. */
#define PAUSE_MIN_ELEMS 10000u
/* One attribute table size for the top level of every message read here. */
#define TB_MAX 31
_Static_assert(NFTA_TABLE_MAX <= TB_MAX && NFTA_CHAIN_MAX <= TB_MAX && NFTA_RULE_MAX <= TB_MAX &&
	       NFTA_SET_MAX <= TB_MAX && NFTA_SET_ELEM_LIST_MAX <= TB_MAX && NFTA_GEN_MAX <= TB_MAX,
	       "TB_MAX too small");

/* ---- what we installed ----------------------------------------------------- */

/* The blocklist sets, by pair and family (v6). */
static const char *const bl_set_name[NFT_BL_COUNT][2] = {
	[NFT_BL_LISTS] = { FW_SET_LISTS_V4, FW_SET_LISTS_V6 },
	[NFT_BL_DYNAMIC] = { FW_SET_DYNAMIC_V4, FW_SET_DYNAMIC_V6 },
};

struct chain_rec {
	uint64_t handle;
	uint32_t policy;
	uint64_t *rules;  /* rule handles, in chain order */
	size_t n_rules, cap_rules;
};

struct set_rec {
	char name[FW_SET_NAME_MAX];
	uint64_t handle;
};

/* The table as our last commit left it: handles from the kernel's echo of
 * that commit, and the blocklist contents (compact ranges, not elements). */
struct installed {
	uint32_t flags;
	uint64_t table_handle;
	uint32_t use;                 /* NFTA_TABLE_USE: chains, named sets, objects */
	struct chain_rec chains[FW_HOOK_COUNT];
	struct set_rec *sets;         /* named sets */
	size_t n_sets, cap_sets;
	bool has_bl[NFT_BL_COUNT][2]; /* each blocklist set exists, by pair and v6 */
	struct cvz_rangeset bl[NFT_BL_COUNT]; /* their ranges, as the kernel holds them */
	bool have_gen;
	uint32_t gen;                 /* NEWGEN of the commit */
	int err;                      /* while collecting the echo */
};

struct nft_conn {
	struct mnl_socket *nl;
	uint32_t portid;
	uint32_t seq;            /* next sequence number */
	int owner_persist;       /* -1 until probed */
	bool applied;            /* inst describes a commit of ours */
	bool unknown;            /* a batch's outcome is unknown: inst may be stale */
	char unknown_why[160];
	struct installed inst;
	/* generations at which the kernel was known to hold inst: as a whole,
	 * and (cheap verify) without reading set contents */
	bool all_ok, struct_ok;
	uint32_t gen_all, gen_struct;
	int monitor_fd;          /* the caller's monitor socket, or -1 */
	bool deep_next;          /* the monitor missed a commit: read sets back */
};

static void installed_free(struct installed *in)
{
	for (int h = 0; h < FW_HOOK_COUNT; h++)
		free(in->chains[h].rules);
	free(in->sets);
	for (int k = 0; k < NFT_BL_COUNT; k++)
		cvz_rangeset_free(&in->bl[k]);
	memset(in, 0, sizeof(*in));
}

static int hook_of(const char *chain)
{
	for (int h = 0; chain && h < FW_HOOK_COUNT; h++)
		if (!strcmp(chain, fw_hook_name((enum fw_hook)h)))
			return h;
	return -1;
}

static int push_u64(uint64_t **v, size_t *n, size_t *cap, uint64_t x)
{
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		uint64_t *nv = reallocarray(*v, ncap, sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		*v = nv;
		*cap = ncap;
	}
	(*v)[(*n)++] = x;
	return 0;
}

static int add_set_rec(struct installed *in, const char *name, uint64_t handle)
{
	if (in->n_sets == in->cap_sets) {
		size_t ncap = in->cap_sets ? in->cap_sets * 2 : 8;
		struct set_rec *nv = reallocarray(in->sets, ncap, sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		in->sets = nv;
		in->cap_sets = ncap;
	}
	struct set_rec *s = &in->sets[in->n_sets++];
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->handle = handle;
	return 0;
}

static const struct set_rec *find_set_rec(const struct installed *in, const char *name)
{
	for (size_t i = 0; i < in->n_sets; i++)
		if (!strcmp(in->sets[i].name, name))
			return &in->sets[i];
	return NULL;
}

/* ---- attributes ------------------------------------------------------------ */

struct attr_tb {
	const struct nlattr **tb;
	uint16_t max;
};

static int attr_cb(const struct nlattr *a, void *data)
{
	const struct attr_tb *t = data;
	uint16_t type = mnl_attr_get_type(a);

	if (type <= t->max)
		t->tb[type] = a;
	return MNL_CB_OK;
}

/* The top-level attributes of an nf_tables message, by type. */
static void msg_attrs(const struct nlmsghdr *nlh, const struct nlattr **tb, uint16_t max)
{
	struct attr_tb t = { tb, max };

	memset(tb, 0, ((size_t)max + 1) * sizeof(*tb));
	mnl_attr_parse(nlh, sizeof(struct nfgenmsg), attr_cb, &t);
}

static void nest_attrs(const struct nlattr *nest, const struct nlattr **tb, uint16_t max)
{
	struct attr_tb t = { tb, max };

	memset(tb, 0, ((size_t)max + 1) * sizeof(*tb));
	mnl_attr_parse_nested(nest, attr_cb, &t);
}

static const char *attr_str(const struct nlattr *a)
{
	return a && mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0 ? mnl_attr_get_str(a) : NULL;
}

static uint32_t attr_be32(const struct nlattr *a, uint32_t dflt)
{
	return a && mnl_attr_validate(a, MNL_TYPE_U32) == 0 ? ntohl(mnl_attr_get_u32(a)) : dflt;
}

static uint64_t attr_be64(const struct nlattr *a)
{
	return a && mnl_attr_validate(a, MNL_TYPE_U64) == 0 ? be64toh(mnl_attr_get_u64(a)) : 0;
}

static bool is_nftables(const struct nlmsghdr *nlh)
{
	return nlh->nlmsg_type >> 8 == NFNL_SUBSYS_NFTABLES &&
	       nlh->nlmsg_len >= mnl_nlmsg_size(sizeof(struct nfgenmsg));
}

static bool our_table(const struct nlmsghdr *nlh, const struct nlattr *name)
{
	const struct nfgenmsg *g = mnl_nlmsg_get_payload(nlh);
	const char *s = attr_str(name);

	return g->nfgen_family == NFPROTO_INET && s && !strcmp(s, FW_TABLE_NAME);
}

/* ---- the connection -------------------------------------------------------- */

int nft_conn_open(struct nft_conn **out)
{
	_cleanup_(freep) struct nft_conn *c = calloc(1, sizeof(*c));
	int ret;

	if (!c)
		return -ENOMEM;
	if ((ret = nft_socket_open(&c->nl)) < 0)
		return ret;
	c->portid = mnl_socket_get_portid(c->nl);
	c->seq = (uint32_t)time(NULL);
	c->owner_persist = -1;
	c->monitor_fd = -1;
	*out = TAKE_PTR(c);
	return 0;
}

void nft_conn_close(struct nft_conn *c)
{
	if (!c)
		return;
	mnl_socket_close(c->nl);
	installed_free(&c->inst);
	free(c);
}

uint32_t nft_conn_portid(const struct nft_conn *c)
{
	return c->portid;
}

void nft_conn_set_monitor(struct nft_conn *c, int fd)
{
	c->monitor_fd = fd;
}

/* Discards whatever is queued: replies after a refusal (the batch reader
 * stops at the first), the rest of an interrupted dump. The kernel queues a
 * batch's replies before sendmsg() returns, so nothing arrives later. */
static void drain(struct nft_conn *c)
{
	char buf[4096];

	for (;;) {
		ssize_t n = recv(mnl_socket_get_fd(c->nl), buf, sizeof(buf), MSG_DONTWAIT);

		if (n < 0 && errno != EINTR && errno != ENOBUFS)
			return;
	}
}

/* Sends one request and runs cb on every reply until the kernel is done
 * (NLMSG_DONE of a dump, the ACK of a get). -EAGAIN: a dump was
 * interrupted by a commit. */
static int request(struct nft_conn *c, const struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	char *buf;
	int ret = 1;

	drain(c);
	if (mnl_socket_sendto(c->nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	if (!(buf = malloc(NFT_REPLY_BUF_SIZE)))
		ret = -ENOMEM;
	while (ret > 0) {
		ssize_t n = mnl_socket_recvfrom(c->nl, buf, NFT_REPLY_BUF_SIZE);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			ret = errno == EAGAIN ? -ETIMEDOUT : -errno;
		else if ((ret = mnl_cb_run(buf, (size_t)n, nlh->nlmsg_seq, c->portid, cb, data)) < 0)
			ret = errno == EINTR ? -EAGAIN : -errno;
	}
	free(buf);
	if (ret < 0)
		drain(c);
	return ret;
}

union req {
	struct nlmsghdr nlh;
	char buf[512];
};

/* Zeroed first: libmnl leaves attribute padding as it finds it. */
static struct nlmsghdr *req_start(struct nft_conn *c, union req *r, uint16_t type,
				  uint16_t family, uint16_t flags)
{
	memset(r, 0, sizeof(*r));
	return nftnl_nlmsg_build_hdr(r->buf, type, family, flags, c->seq++);
}

static int on_gen(const struct nlmsghdr *nlh, void *data)
{
	const struct nlattr *tb[TB_MAX + 1];

	if (!is_nftables(nlh) || NFNL_MSG_TYPE(nlh->nlmsg_type) != NFT_MSG_NEWGEN)
		return MNL_CB_OK;
	msg_attrs(nlh, tb, TB_MAX);
	*(uint32_t *)data = attr_be32(tb[NFTA_GEN_ID], 0);
	return MNL_CB_OK;
}

/* The ruleset generation: bumped once by every commit in this netns. */
static int get_gen(struct nft_conn *c, uint32_t *gen)
{
	union req r;
	struct nlmsghdr *nlh = req_start(c, &r, NFT_MSG_GETGEN, AF_UNSPEC, NLM_F_ACK);
	uint32_t g = 0;
	int ret = request(c, nlh, on_gen, &g);

	if (ret < 0)
		return ret;
	*gen = g;
	return 0;
}

/* ---- owner + persist probe ------------------------------------------------- */

static int put_probe_table(struct nft_batch *b, uint16_t type, const char *name,
			   const struct nft_origin *o)
{
	struct nlmsghdr *nlh;
	int ret = nft_msg_start(b, type, type == NFT_MSG_NEWTABLE ? NLM_F_CREATE | NLM_F_EXCL : 0,
				o, &nlh);

	if (ret < 0)
		return ret;
	mnl_attr_put_strz(nlh, NFTA_TABLE_NAME, name);
	if (type == NFT_MSG_NEWTABLE)
		mnl_attr_put_u32(nlh, NFTA_TABLE_FLAGS, htonl(NFT_TABLE_OWNER_PERSIST));
	return nft_msg_end(b);
}

/* One batch of one message about the probe table. */
static int probe_batch(struct nft_conn *c, const uint16_t *types, size_t n, const char *name,
		       struct nft_batch *b, struct nft_replies *r)
{
	static const struct nft_origin o = { .text = "probe", .what = "table" };
	char err[256];
	int ret = nft_batch_init(b, NULL, c->seq);

	for (size_t i = 0; i < n && ret == 0; i++)
		ret = put_probe_table(b, types[i], name, &o);
	if (ret == 0 && (ret = nft_batch_finish(b)) == 0) {
		drain(c);
		ret = nft_batch_talk(c->nl, b, r, err, sizeof(err));
		drain(c);
	}
	c->seq += (uint32_t)b->n_orig;
	return ret;
}

/* Creates a throwaway owner+persist table, then creates it again in the
 * same batch: the kernel checks flags when it takes the first message
 * (EOPNOTSUPP for one it does not know), the second fails with EEXIST and
 * aborts the batch. So nothing is ever committed: no table, no events, not
 * even a new generation. Returns 1, 0, or -errno. */
static int probe_owner_persist(struct nft_conn *c)
{
	static const uint16_t twice[] = { NFT_MSG_NEWTABLE, NFT_MSG_NEWTABLE };
	static const uint16_t del[] = { NFT_MSG_DELTABLE };
	struct nft_replies r = { 0 }, rd = { 0 };
	struct nft_batch b, bd;
	char name[64];
	int ret;

	snprintf(name, sizeof(name), "%s_probe_%ld", FW_TABLE_NAME, (long)getpid());
	ret = probe_batch(c, twice, ELEMENTSOF(twice), name, &b, &r);
	if (ret == -EEXIST && r.err_seq == b.seq0 + 2)
		ret = 1;
	else if (ret < 0 && r.err && r.err_seq == b.seq0 + 1)
		ret = 0;
	nft_batch_free(&b);
	if (ret == 0 && !r.err) { /* cannot happen; never leave the table behind */
		probe_batch(c, del, ELEMENTSOF(del), name, &bd, &rd);
		nft_batch_free(&bd);
		ret = -EPROTO;
	}
	return ret;
}

bool nft_have_owner_persist(struct nft_conn *c)
{
	if (c->owner_persist < 0) {
		int ret = probe_owner_persist(c);

		if (ret < 0) /* not cached: say no this time, ask again next time */
			return false;
		c->owner_persist = ret;
	}
	return c->owner_persist == 1;
}

/* ---- pausing the monitor ------------------------------------------------- */

static int set_membership(int fd, int opt)
{
	int grp = NFNLGRP_NFTABLES;

	return setsockopt(fd, SOL_NETLINK, opt, &grp, sizeof(grp)) < 0 ? -errno : 0;
}

/* Unsubscribes the monitor for a commit of elems elements. Returns whether
 * it did, and in *gen0 the generation before. */
static bool monitor_pause(struct nft_conn *c, size_t elems, uint32_t *gen0)
{
	if (c->monitor_fd < 0 || elems < PAUSE_MIN_ELEMS || get_gen(c, gen0) < 0)
		return false;
	return set_membership(c->monitor_fd, NETLINK_DROP_MEMBERSHIP) == 0;
}

/* Subscribes again. Events queued before the pause stay readable; a commit
 * of someone else's while we did not listen shows as a generation that
 * moved by more than our own commit. Returns whether there was such a gap. */
static bool monitor_resume(struct nft_conn *c, bool paused, uint32_t gen0, bool committed)
{
	uint32_t gen;

	if (!paused)
		return false;
	return set_membership(c->monitor_fd, NETLINK_ADD_MEMBERSHIP) < 0 ||
	       get_gen(c, &gen) < 0 || gen != gen0 + committed;
}

static size_t table_elems(const struct fw_table *t)
{
	size_t n = 0;

	for (size_t i = 0; i < t->n_sets; i++)
		n += 2 * (t->sets[i].elems.n4 + t->sets[i].elems.n6);
	return n;
}

/* ---- applying the table -------------------------------------------------- */

static void echo_chain(struct installed *in, const struct nlattr **tb)
{
	int h = hook_of(attr_str(tb[NFTA_CHAIN_NAME]));

	if (h < 0)
		return;
	in->chains[h].handle = attr_be64(tb[NFTA_CHAIN_HANDLE]);
	in->chains[h].policy = attr_be32(tb[NFTA_CHAIN_POLICY], NF_ACCEPT);
}

static void echo_set(struct installed *in, const struct nlattr **tb)
{
	const char *name = attr_str(tb[NFTA_SET_NAME]);

	if (!name)
		return;
	if (!(attr_be32(tb[NFTA_SET_FLAGS], 0) & NFT_SET_ANONYMOUS) &&
	    add_set_rec(in, name, attr_be64(tb[NFTA_SET_HANDLE])) < 0)
		in->err = -ENOMEM;
}

static void echo_rule(struct installed *in, const struct nlattr **tb)
{
	int h = hook_of(attr_str(tb[NFTA_RULE_CHAIN]));
	struct chain_rec *ch;

	if (h < 0)
		return;
	ch = &in->chains[h];
	if (push_u64(&ch->rules, &ch->n_rules, &ch->cap_rules, attr_be64(tb[NFTA_RULE_HANDLE])) < 0)
		in->err = -ENOMEM;
}

/* The kernel's notifications of our commit, echoed to us: the handles of
 * what we created, then the commit's generation. */
static int on_echo(const struct nlmsghdr *nlh, void *data)
{
	struct installed *in = data;
	const struct nlattr *tb[TB_MAX + 1];
	uint16_t type = NFNL_MSG_TYPE(nlh->nlmsg_type);

	if (!is_nftables(nlh))
		return MNL_CB_OK;
	msg_attrs(nlh, tb, TB_MAX);
	if (type == NFT_MSG_NEWGEN) {
		in->have_gen = true;
		in->gen = attr_be32(tb[NFTA_GEN_ID], 0);
		return MNL_CB_OK;
	}
	/* NFTA_{TABLE_NAME,CHAIN_TABLE,RULE_TABLE,SET_TABLE} are all 1 */
	if (!our_table(nlh, tb[1]))
		return MNL_CB_OK;
	/* commit order is batch order: when the table was missing, the
	 * leading NEWTABLE created one that the DELTABLE removed; the
	 * replacement's echo comes last */
	if (type == NFT_MSG_NEWTABLE)
		in->table_handle = attr_be64(tb[NFTA_TABLE_HANDLE]);
	else if (type == NFT_MSG_NEWCHAIN)
		echo_chain(in, tb);
	else if (type == NFT_MSG_NEWSET)
		echo_set(in, tb);
	else if (type == NFT_MSG_NEWRULE)
		echo_rule(in, tb);
	return MNL_CB_OK;
}

static int copy_ranges(const struct fw_set *s, struct cvz_rangeset *dst)
{
	for (size_t i = 0; i < s->elems.n4; i++)
		if (cvz_rangeset_add4(dst, s->elems.v4[i].lo, s->elems.v4[i].hi) < 0)
			return -ENOMEM;
	for (size_t i = 0; i < s->elems.n6; i++)
		if (cvz_rangeset_add6(dst, s->elems.v6[i].lo, s->elems.v6[i].hi) < 0)
			return -ENOMEM;
	return 0;
}

/* Completes the echoed record with what the echo does not say: our
 * blocklist sets' contents, and the table's use count (Linux 6.18 counts
 * chains, named sets, objects and flowtables; not anonymous sets). */
static int record_blocklists(struct installed *in, const struct fw_table *t, uint32_t flags)
{
	in->flags = flags;
	in->use = FW_HOOK_COUNT + (uint32_t)in->n_sets;
	for (size_t i = 0; i < t->n_sets; i++) {
		const struct fw_set *s = &t->sets[i];

		for (int k = 0; k < NFT_BL_COUNT && s->kind == FW_SET_ADDR; k++)
			for (int v6 = 0; v6 < 2; v6++) {
				if (strcmp(s->name, bl_set_name[k][v6]))
					continue;
				in->has_bl[k][v6] = true;
				if (copy_ranges(s, &in->bl[k]) < 0)
					return -ENOMEM;
			}
	}
	return 0;
}

/* After a batch whose outcome we cannot know (replies lost), verify must
 * report drift so that the caller re-applies. */
static void mark_unknown(struct nft_conn *c, const char *err)
{
	c->unknown = true;
	c->all_ok = c->struct_ok = false;
	snprintf(c->unknown_why, sizeof(c->unknown_why), "%s", err);
}

static int on_owner(const struct nlmsghdr *nlh, void *data)
{
	const struct nlattr *tb[TB_MAX + 1];

	if (is_nftables(nlh)) {
		msg_attrs(nlh, tb, TB_MAX);
		*(uint32_t *)data = attr_be32(tb[NFTA_TABLE_OWNER], 0);
	}
	return MNL_CB_OK;
}

/* EPERM on our table: it belongs to another live socket. Say whose. */
static void explain_eperm(struct nft_conn *c, char *err, size_t errlen)
{
	union req r;
	struct nlmsghdr *nlh = req_start(c, &r, NFT_MSG_GETTABLE, NFPROTO_INET, NLM_F_ACK);
	uint32_t owner = 0;
	size_t used = strlen(err);

	mnl_attr_put_strz(nlh, NFTA_TABLE_NAME, FW_TABLE_NAME);
	if (request(c, nlh, on_owner, &owner) == 0 && owner && used < errlen)
		snprintf(err + used, errlen - used,
			 "; table inet %s is owned by another process's netlink socket (port %u)",
			 FW_TABLE_NAME, owner);
}

static int apply_batch(struct nft_conn *c, const struct fw_table *t, uint32_t flags,
		       struct installed *in, char *err, size_t errlen)
{
	const struct nft_table_opts opts = { flags, true, true };
	struct nft_replies r = { .on_data = on_echo, .data = in };
	struct nft_batch b;
	int ret = nft_build_table_batch(&b, t, &opts, c->seq, err, errlen);

	if (ret < 0 && errlen && !err[0])
		snprintf(err, errlen, "building the netlink batch: %s", strerror(-ret));
	if (ret == 0) {
		drain(c);
		ret = nft_batch_talk(c->nl, &b, &r, err, errlen);
		if (ret < 0 && !r.err && r.sent)
			mark_unknown(c, err);
		if (ret == -EPERM)
			explain_eperm(c, err, errlen);
	}
	c->seq += (uint32_t)b.n_orig;
	nft_batch_free(&b);
	drain(c);
	return ret;
}

int nft_conn_apply_table(struct nft_conn *c, const struct fw_table *t, uint32_t table_flags,
			 char *err, size_t errlen)
{
	struct installed in = { 0 };
	uint32_t gen0 = 0;
	bool paused, gap;
	int ret;

	if (errlen)
		err[0] = '\0';
	if (table_flags != 0 && table_flags != NFT_TABLE_OWNER_PERSIST) {
		snprintf(err, errlen, "table flags 0x%x: only none or owner+persist", table_flags);
		return -EINVAL;
	}
	paused = monitor_pause(c, table_elems(t), &gen0);
	ret = apply_batch(c, t, table_flags, &in, err, errlen);
	gap = monitor_resume(c, paused, gen0, ret == 0);
	if (ret == 0 && ((ret = in.err) < 0 || (ret = record_blocklists(&in, t, table_flags)) < 0)) {
		snprintf(err, errlen, "applied, but cannot record what: %s", strerror(-ret));
		mark_unknown(c, err);
	}
	if (ret < 0) {
		installed_free(&in);
		c->deep_next |= gap;
		return ret;
	}
	installed_free(&c->inst);
	c->inst = in;
	c->applied = true;
	c->unknown = false;
	/* The table was replaced whole: foreign changes before our commit
	 * (and gaps in the monitor's view) are gone, so the generation of our
	 * commit stands for all of it. */
	c->deep_next = gap;
	c->all_ok = c->struct_ok = in.have_gen;
	c->gen_all = c->gen_struct = in.gen;
	return 0;
}

/* ---- set element deltas ---------------------------------------------------- */

/* Where each element went, to name the one the kernel refuses. */
struct elem_at {
	uint32_t seq, off;
	uint32_t range;
	uint8_t list; /* index into delta_lists */
	uint8_t pair; /* enum nft_blset */
};

struct delta_map {
	struct elem_at *v;
	size_t n, cap;
	uint8_t list, pair;
};

static int on_elem(void *arg, uint32_t seq, uint32_t off, size_t range)
{
	struct delta_map *m = arg;

	if (m->n == m->cap) {
		size_t ncap = m->cap ? m->cap * 2 : 256;
		struct elem_at *nv = reallocarray(m->v, ncap, sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		m->v = nv;
		m->cap = ncap;
	}
	m->v[m->n++] = (struct elem_at){ seq, off, (uint32_t)range, m->list, m->pair };
	return 0;
}

/* Deletions first: a range that is replaced (10.0.0.0/8 carved in two)
 * frees its keys before the new ranges reuse them. */
static const struct delta_list {
	bool add, v6;
} delta_lists[] = { { false, false }, { false, true }, { true, false }, { true, true } };

static const struct cvz_rangeset *delta_ranges(const struct nft_bl_delta *d, bool add)
{
	return add ? d->add : d->del;
}

static size_t delta_size(const struct nft_bl_delta delta[NFT_BL_COUNT])
{
	size_t n = 0;

	for (int k = 0; k < NFT_BL_COUNT; k++)
		for (int add = 0; add < 2; add++) {
			const struct cvz_rangeset *rs = delta_ranges(&delta[k], add);

			n += rs ? rs->n4 + rs->n6 : 0;
		}
	return n;
}

/* NLM_F_EXCL: adding a range that is already there means our record is
 * wrong; say so. */
static int build_delta(struct nft_batch *b, const struct nft_bl_delta delta[NFT_BL_COUNT],
		       struct delta_map *m)
{
	int ret = nft_put_gen_echo(b);

	for (uint8_t i = 0; i < ELEMENTSOF(delta_lists) && !ret; i++)
		for (uint8_t k = 0; k < NFT_BL_COUNT && !ret; k++) {
			const struct delta_list *l = &delta_lists[i];
			const struct cvz_rangeset *rs = delta_ranges(&delta[k], l->add);
			const char *set = bl_set_name[k][l->v6];
			const struct nft_origin o = { .what = "elements of set", .name = set };

			if (!rs)
				continue;
			m->list = i;
			m->pair = k;
			ret = nft_put_range_elems(b, &o, l->add ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM,
						  l->add ? NLM_F_CREATE | NLM_F_EXCL : 0, set, rs, l->v6,
						  on_elem, m);
		}
	return ret ? ret : nft_batch_finish(b);
}

/* "kernel refused adding 203.0.113.0/24 to dynamic_v4: File exists" */
static void report_elem(const struct delta_map *m, const struct nft_replies *r,
			const struct nft_bl_delta delta[NFT_BL_COUNT], char *err, size_t errlen)
{
	const struct elem_at *hit = NULL;
	char range[CVZ_RANGE_STRLEN];

	for (size_t i = 0; i < m->n; i++)
		if (m->v[i].seq == r->err_seq && m->v[i].off <= r->err_off)
			hit = &m->v[i];
	if (!hit || !r->err_off)
		return; /* keep the message-level report */
	const struct delta_list *l = &delta_lists[hit->list];
	const struct cvz_rangeset *rs = delta_ranges(&delta[hit->pair], l->add);
	if (l->v6)
		cvz_range6_format(&rs->v6[hit->range], range, sizeof(range));
	else
		cvz_range4_format(&rs->v4[hit->range], range, sizeof(range));
	snprintf(err, errlen, "kernel refused %s %s %s %s: %s%s%s%s",
		 l->add ? "adding" : "deleting", range, l->add ? "to" : "from",
		 bl_set_name[hit->pair][l->v6], nft_strerror(r->err), r->msg[0] ? " (" : "", r->msg,
		 r->msg[0] ? ")" : "");
}

/* The kernel keeps ranges as they were sent: out = (v without the ranges
 * of del) merged with add, by lo, nothing joined. On success del was in v
 * exactly (else the kernel refuses with ENOENT). */
#define DEFINE_APPLY_DELTA(NAME, RANGE)                                                    \
	static int NAME(RANGE **v, size_t *n, size_t *cap, const RANGE *del, size_t nd,   \
			const RANGE *add, size_t na)                                       \
	{                                                                                  \
		size_t want = *n + na, i, j = 0, k = 0, m = 0;                              \
		RANGE *out = reallocarray(NULL, want ? want : 1, sizeof(*out));             \
                                                                                           \
		if (!out)                                                                  \
			return -ENOMEM;                                                    \
		for (i = 0; i < *n; i++) {                                                 \
			const RANGE *x = &(*v)[i];                                         \
                                                                                           \
			while (j < nd && del[j].lo < x->lo)                                \
				j++;                                                       \
			if (j < nd && del[j].lo == x->lo && del[j].hi == x->hi)            \
				continue;                                                  \
			while (k < na && add[k].lo < x->lo)                                \
				out[m++] = add[k++];                                       \
			out[m++] = *x;                                                     \
		}                                                                          \
		while (k < na)                                                             \
			out[m++] = add[k++];                                               \
		free(*v);                                                                  \
		*v = out;                                                                  \
		*n = m;                                                                    \
		*cap = want ? want : 1;                                                    \
		return 0;                                                                  \
	}

DEFINE_APPLY_DELTA(apply_delta4, struct cvz_range4)
DEFINE_APPLY_DELTA(apply_delta6, struct cvz_range6)

static int record_delta(struct nft_conn *c, const struct nft_bl_delta delta[NFT_BL_COUNT])
{
	static const struct cvz_rangeset none;

	for (int k = 0; k < NFT_BL_COUNT; k++) {
		struct cvz_rangeset *bl = &c->inst.bl[k];
		const struct cvz_rangeset *del = delta[k].del ? delta[k].del : &none;
		const struct cvz_rangeset *add = delta[k].add ? delta[k].add : &none;

		if (!(del->n4 + del->n6 + add->n4 + add->n6))
			continue; /* untouched: not even copied */
		if (apply_delta4(&bl->v4, &bl->n4, &bl->cap4, del->v4, del->n4, add->v4, add->n4) < 0 ||
		    apply_delta6(&bl->v6, &bl->n6, &bl->cap6, del->v6, del->n6, add->v6, add->n6) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* A delta commit keeps the kernel equal to our record only if it was the
 * one commit since the generation we knew (each commit adds one). */
static void advance_gens(struct nft_conn *c, const struct installed *echo)
{
	c->all_ok = c->all_ok && echo->have_gen && echo->gen == c->gen_all + 1;
	c->struct_ok = c->struct_ok && echo->have_gen && echo->gen == c->gen_struct + 1;
	c->gen_all = c->gen_struct = echo->gen;
}

static int delta_talk(struct nft_conn *c, struct nft_batch *b, const struct delta_map *m,
		      const struct nft_bl_delta delta[NFT_BL_COUNT], struct installed *echo,
		      char *err, size_t errlen)
{
	struct nft_replies r = { .on_data = on_echo, .data = echo };
	int ret;

	drain(c);
	ret = nft_batch_talk(c->nl, b, &r, err, errlen);
	if (ret < 0 && r.err)
		report_elem(m, &r, delta, err, errlen);
	else if (ret < 0 && r.sent)
		mark_unknown(c, err);
	drain(c);
	return ret;
}

int nft_conn_set_delta(struct nft_conn *c, const struct nft_bl_delta delta[NFT_BL_COUNT],
		       char *err, size_t errlen)
{
	struct delta_map m = { 0 };
	struct installed echo = { 0 };
	struct nft_batch b;
	size_t n = delta_size(delta);
	int ret;

	if (errlen)
		err[0] = '\0';
	if (!n)
		return 0;
	ret = nft_batch_init(&b, NULL, c->seq);
	if (ret == 0)
		ret = build_delta(&b, delta, &m);
	if (ret < 0) {
		snprintf(err, errlen, "building the netlink batch: %s", strerror(-ret));
	} else {
		uint32_t gen0 = 0;
		bool paused = monitor_pause(c, 2 * n, &gen0);

		ret = delta_talk(c, &b, &m, delta, &echo, err, errlen);
		c->deep_next |= monitor_resume(c, paused, gen0, ret == 0);
	}
	c->seq += (uint32_t)b.n_orig;
	nft_batch_free(&b);
	free(m.v);
	if (ret == 0 && (ret = record_delta(c, delta)) < 0) {
		snprintf(err, errlen, "recording the delta: %s", strerror(-ret));
		mark_unknown(c, err);
	}
	if (ret == 0)
		advance_gens(c, &echo);
	installed_free(&echo);
	return ret;
}

/* ---- verify: the table's shape ------------------------------------------- */

/* What verify reads back, compared as it arrives; the first difference
 * is described in detail. */
struct readback {
	const struct installed *want;
	uint32_t portid;
	bool chain_seen[FW_HOOK_COUNT];
	size_t rule_at[FW_HOOK_COUNT]; /* rules of each chain read so far */
	size_t sets_seen;
	bool drift;
	char *detail;
	size_t len;
};

__attribute__((format(printf, 2, 3)))
static void drift(struct readback *rb, const char *fmt, ...)
{
	va_list ap;

	if (rb->drift)
		return;
	rb->drift = true;
	va_start(ap, fmt);
	vsnprintf(rb->detail, rb->len, fmt, ap);
	va_end(ap);
}

/* "owner,persist", "none" */
static const char *flags_text(uint32_t f, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s%s%s", f & NFT_TABLE_F_DORMANT ? ",dormant" : "",
		 f & NFT_TABLE_F_OWNER ? ",owner" : "", f & NFT_TABLE_F_PERSIST ? ",persist" : "",
		 f & ~(uint32_t)(NFT_TABLE_F_DORMANT | NFT_TABLE_F_OWNER | NFT_TABLE_F_PERSIST)
			 ? ",unknown" : "");
	return buf[0] ? buf + 1 : "none";
}

static void check_table(struct readback *rb, const struct nlattr **tb)
{
	const struct installed *w = rb->want;
	uint32_t flags = attr_be32(tb[NFTA_TABLE_FLAGS], 0);
	uint32_t owner = attr_be32(tb[NFTA_TABLE_OWNER], 0);
	uint32_t use = attr_be32(tb[NFTA_TABLE_USE], 0);
	char f1[48], f2[48];

	if (attr_be64(tb[NFTA_TABLE_HANDLE]) != w->table_handle)
		drift(rb, "table inet %s was replaced by another process", FW_TABLE_NAME);
	else if (flags != w->flags)
		drift(rb, "table inet %s has flags %s, we set %s", FW_TABLE_NAME,
		      flags_text(flags, f1, sizeof(f1)), flags_text(w->flags, f2, sizeof(f2)));
	else if ((flags & NFT_TABLE_F_OWNER) && owner != rb->portid)
		drift(rb, "table inet %s is owned by netlink port %u, not ours (%u)",
		      FW_TABLE_NAME, owner, rb->portid);
	else if (use != w->use)
		drift(rb, "table inet %s holds %u chains, named sets and objects, we installed %u",
		      FW_TABLE_NAME, use, w->use);
}

static void check_chain(struct readback *rb, const struct nlattr **tb)
{
	const char *name = attr_str(tb[NFTA_CHAIN_NAME]);
	int h = hook_of(name);
	const struct chain_rec *w;

	if (h < 0) {
		drift(rb, "chain %s was added", name ? name : "?");
		return;
	}
	w = &rb->want->chains[h];
	rb->chain_seen[h] = true;
	if (attr_be64(tb[NFTA_CHAIN_HANDLE]) != w->handle)
		drift(rb, "chain %s was replaced", name);
	else if (attr_be32(tb[NFTA_CHAIN_POLICY], NF_ACCEPT) != w->policy)
		drift(rb, "chain %s has policy %s", name,
		      attr_be32(tb[NFTA_CHAIN_POLICY], NF_ACCEPT) == NF_DROP ? "drop" : "accept");
}

static void check_rule(struct readback *rb, const struct nlattr **tb)
{
	const char *chain = attr_str(tb[NFTA_RULE_CHAIN]);
	int h = hook_of(chain);
	size_t i;

	if (h < 0)
		return; /* check_chain() reports the chain */
	i = rb->rule_at[h]++;
	if (i >= rb->want->chains[h].n_rules)
		drift(rb, "rule added to chain %s (handle %llu)", chain,
		      (unsigned long long)attr_be64(tb[NFTA_RULE_HANDLE]));
	else if (attr_be64(tb[NFTA_RULE_HANDLE]) != rb->want->chains[h].rules[i])
		drift(rb, "rules of chain %s changed at position %zu (handle %llu is not ours)",
		      chain, i + 1, (unsigned long long)attr_be64(tb[NFTA_RULE_HANDLE]));
}

static void check_set(struct readback *rb, const struct nlattr **tb)
{
	const char *name = attr_str(tb[NFTA_SET_NAME]);
	const struct set_rec *w;

	if (!name || attr_be32(tb[NFTA_SET_FLAGS], 0) & NFT_SET_ANONYMOUS)
		return; /* anonymous sets go with their rules */
	rb->sets_seen++;
	if (!(w = find_set_rec(rb->want, name)))
		drift(rb, "set %s was added", name);
	else if (attr_be64(tb[NFTA_SET_HANDLE]) != w->handle)
		drift(rb, "set %s was replaced", name);
}

static int on_readback(const struct nlmsghdr *nlh, void *data)
{
	struct readback *rb = data;
	const struct nlattr *tb[TB_MAX + 1];
	uint16_t type = NFNL_MSG_TYPE(nlh->nlmsg_type);

	if (!is_nftables(nlh))
		return MNL_CB_OK;
	msg_attrs(nlh, tb, TB_MAX);
	if (!our_table(nlh, tb[1])) /* chain dumps are not filtered by table */
		return MNL_CB_OK;
	if (type == NFT_MSG_NEWTABLE)
		check_table(rb, tb);
	else if (type == NFT_MSG_NEWCHAIN)
		check_chain(rb, tb);
	else if (type == NFT_MSG_NEWRULE)
		check_rule(rb, tb);
	else if (type == NFT_MSG_NEWSET)
		check_set(rb, tb);
	return MNL_CB_OK;
}

/* Reads table, chains, rules and sets of our table and compares them. */
static int read_shape(struct nft_conn *c, struct readback *rb)
{
	static const struct { uint16_t type, flags, name_attr; } reqs[] = {
		{ NFT_MSG_GETTABLE, NLM_F_ACK, NFTA_TABLE_NAME },
		{ NFT_MSG_GETCHAIN, NLM_F_DUMP, 0 },
		{ NFT_MSG_GETRULE, NLM_F_DUMP, NFTA_RULE_TABLE },
		{ NFT_MSG_GETSET, NLM_F_DUMP, NFTA_SET_TABLE },
	};
	for (size_t i = 0; i < ELEMENTSOF(reqs) && !rb->drift; i++) {
		union req r;
		struct nlmsghdr *nlh = req_start(c, &r, reqs[i].type, NFPROTO_INET, reqs[i].flags);
		int ret;

		if (reqs[i].name_attr)
			mnl_attr_put_strz(nlh, reqs[i].name_attr, FW_TABLE_NAME);
		ret = request(c, nlh, on_readback, rb);
		if (ret == -ENOENT && i == 0) {
			drift(rb, "table inet %s is gone", FW_TABLE_NAME);
			return 0;
		}
		if (ret < 0)
			return ret;
	}
	return 0;
}

static void check_counts(struct readback *rb)
{
	for (int h = 0; h < FW_HOOK_COUNT; h++) {
		const char *name = fw_hook_name((enum fw_hook)h);

		if (!rb->chain_seen[h])
			drift(rb, "chain %s is gone", name);
		else if (rb->rule_at[h] < rb->want->chains[h].n_rules)
			drift(rb, "rule deleted from chain %s (%zu of our %zu left)", name,
			      rb->rule_at[h], rb->want->chains[h].n_rules);
	}
	if (rb->sets_seen < rb->want->n_sets)
		drift(rb, "a set of ours is gone (%zu of %zu left)", rb->sets_seen, rb->want->n_sets);
}

static int verify_shape(struct nft_conn *c, char *detail, size_t len)
{
	struct readback rb = { .want = &c->inst, .portid = c->portid, .detail = detail, .len = len };
	int ret = read_shape(c, &rb);

	if (ret < 0)
		return ret;
	if (!rb.drift)
		check_counts(&rb);
	return rb.drift;
}

/* ---- verify: set contents ---------------------------------------------------- */

/* Boundaries of an interval set as the kernel holds them: start elements,
 * and interval-end elements one past a range. Packed for IPv4 as
 * key << 1 | start, so that sorting puts an end before a start at the same
 * key (two adjacent ranges). */
struct bound6 {
	u128 key;
	bool start;
};

struct bounds {
	bool v6;
	uint64_t *b4;
	size_t n4, cap4;
	struct bound6 *b6;
	size_t n6, cap6;
};

static int push_bound6(struct bounds *bd, u128 key, bool start)
{
	if (bd->n6 == bd->cap6) {
		size_t ncap = bd->cap6 ? bd->cap6 * 2 : 64;
		struct bound6 *nv = reallocarray(bd->b6, ncap, sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		bd->b6 = nv;
		bd->cap6 = ncap;
	}
	bd->b6[bd->n6++] = (struct bound6){ key, start };
	return 0;
}

static int add_bound(struct bounds *bd, const struct nlattr *elem)
{
	const struct nlattr *tb[NFTA_SET_ELEM_MAX + 1], *kt[NFTA_DATA_MAX + 1];
	const uint8_t *k;
	u128 key = 0;
	bool start;
	uint16_t len;

	nest_attrs(elem, tb, NFTA_SET_ELEM_MAX);
	if (!tb[NFTA_SET_ELEM_KEY])
		return 0; /* a catch-all element: not in interval sets */
	start = !(attr_be32(tb[NFTA_SET_ELEM_FLAGS], 0) & NFT_SET_ELEM_INTERVAL_END);
	nest_attrs(tb[NFTA_SET_ELEM_KEY], kt, NFTA_DATA_MAX);
	if (!kt[NFTA_DATA_VALUE])
		return -EBADMSG;
	len = mnl_attr_get_payload_len(kt[NFTA_DATA_VALUE]);
	if (len != (bd->v6 ? 16 : 4))
		return -EBADMSG;
	k = mnl_attr_get_payload(kt[NFTA_DATA_VALUE]);
	for (uint16_t i = 0; i < len; i++)
		key = key << 8 | k[i];
	if (bd->v6)
		return push_bound6(bd, key, start);
	return push_u64(&bd->b4, &bd->n4, &bd->cap4, (uint64_t)key << 1 | start);
}

static int on_elems(const struct nlmsghdr *nlh, void *data)
{
	const struct nlattr *tb[TB_MAX + 1], *e;

	if (!is_nftables(nlh))
		return MNL_CB_OK;
	msg_attrs(nlh, tb, TB_MAX);
	if (!tb[NFTA_SET_ELEM_LIST_ELEMENTS])
		return MNL_CB_OK;
	mnl_attr_for_each_nested(e, tb[NFTA_SET_ELEM_LIST_ELEMENTS]) {
		int ret = add_bound(data, e);

		if (ret < 0) {
			errno = -ret;
			return MNL_CB_ERROR;
		}
	}
	return MNL_CB_OK;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int cmp_bound6(const void *a, const void *b)
{
	const struct bound6 *x = a, *y = b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return (int)x->start - (int)y->start;
}

/* Walks sorted boundaries: a start opens a range, the next end closes it
 * one below its key; an end with nothing open (nft's leading end element
 * at 0) means nothing; a range still open at the end reaches the top. */
#define BOUNDS_TO_RANGES(N, KEY, START, MAX, ADD, OUT)                          \
	do {                                                                    \
		bool open_ = false;                                             \
		u128 lo_ = 0;                                                   \
                                                                                \
		for (size_t i_ = 0; i_ < (N) && !ret; i_++) {                   \
			if (START(i_)) {                                        \
				if (open_)                                      \
					ret = -EBADMSG;                         \
				lo_ = KEY(i_);                                  \
				open_ = true;                                   \
			} else if (open_) {                                     \
				ret = ADD(OUT, lo_, KEY(i_) - 1);               \
				open_ = false;                                  \
			}                                                       \
		}                                                               \
		if (open_ && !ret)                                              \
			ret = ADD(OUT, lo_, MAX);                               \
	} while (0)

#define B4_KEY(i) ((u128)(bd->b4[i] >> 1))
#define B4_START(i) (bd->b4[i] & 1)
#define B6_KEY(i) (bd->b6[i].key)
#define B6_START(i) (bd->b6[i].start)
#define ADD4(s, lo, hi) cvz_rangeset_add4(s, (uint32_t)(lo), (uint32_t)(hi))

static int bounds_to_ranges(struct bounds *bd, struct cvz_rangeset *out)
{
	int ret = 0;

	/* the kernel's tree happens to dump in descending order: sort
	 * rather than rely on that */
	if (bd->v6) {
		if (bd->n6 > 1)
			qsort(bd->b6, bd->n6, sizeof(*bd->b6), cmp_bound6);
		BOUNDS_TO_RANGES(bd->n6, B6_KEY, B6_START, ~(u128)0, cvz_rangeset_add6, out);
	} else {
		if (bd->n4 > 1)
			qsort(bd->b4, bd->n4, sizeof(*bd->b4), cmp_u64);
		BOUNDS_TO_RANGES(bd->n4, B4_KEY, B4_START, UINT32_MAX, ADD4, out);
	}
	return ret;
}

static int read_ranges(struct nft_conn *c, const char *set, bool v6, struct cvz_rangeset *out)
{
	struct bounds bd = { .v6 = v6 };
	union req r;
	struct nlmsghdr *nlh = req_start(c, &r, NFT_MSG_GETSETELEM, NFPROTO_INET, NLM_F_DUMP);
	int ret;

	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, FW_TABLE_NAME);
	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, set);
	ret = request(c, nlh, on_elems, &bd);
	if (ret == 0)
		ret = bounds_to_ranges(&bd, out);
	free(bd.b4);
	free(bd.b6);
	return ret;
}

/* One family's ranges, read as lo/hi whichever the family. */
struct rview {
	const struct cvz_rangeset *rs;
	bool v6;
};

static size_t rv_n(const struct rview *v)
{
	return v->v6 ? v->rs->n6 : v->rs->n4;
}

static void rv_at(const struct rview *v, size_t i, u128 *lo, u128 *hi)
{
	*lo = v->v6 ? v->rs->v6[i].lo : v->rs->v4[i].lo;
	*hi = v->v6 ? v->rs->v6[i].hi : v->rs->v4[i].hi;
}

static void rv_format(const struct rview *v, size_t i, char *buf, size_t len)
{
	if (v->v6)
		cvz_range6_format(&v->rs->v6[i], buf, len);
	else
		cvz_range4_format(&v->rs->v4[i], buf, len);
}

/* Names the first range that is in one list but not the other. */
static int compare_ranges(const struct rview *got, const struct rview *want, const char *set,
			  char *detail, size_t len)
{
	size_t i = 0, j = 0, ng = rv_n(got), nw = rv_n(want);
	u128 glo = 0, ghi = 0, wlo = 0, whi = 0;
	char r[CVZ_RANGE_STRLEN];

	for (; i < ng && j < nw; i++, j++) {
		rv_at(got, i, &glo, &ghi);
		rv_at(want, j, &wlo, &whi);
		if (glo != wlo || ghi != whi)
			break;
	}
	if (i == ng && j == nw)
		return 0;
	if (j < nw && (i == ng || wlo <= glo)) {
		rv_format(want, j, r, sizeof(r));
		snprintf(detail, len, "set %s lacks %s (%zu ranges, we installed %zu)", set, r, ng, nw);
	} else {
		rv_format(got, i, r, sizeof(r));
		snprintf(detail, len, "set %s holds %s, which we did not install (%zu ranges, we installed %zu)",
			 set, r, ng, nw);
	}
	return 1;
}

/* Once the shape check has found the table still owned by our socket, no
 * other socket can have changed the sets since we filled them: too large to
 * read back cheaply, they need not be. Small ones are read anyway, which
 * also checks our own record of them. */
static bool elems_proven(const struct nft_conn *c, const struct rview *want)
{
	return c->inst.flags & NFT_TABLE_F_OWNER && rv_n(want) > READBACK_MAX_RANGES;
}

static int verify_set(struct nft_conn *c, int pair, bool v6, char *detail, size_t len)
{
	const char *set = bl_set_name[pair][v6];
	const struct rview want = { &c->inst.bl[pair], v6 };
	struct cvz_rangeset got = { 0 };
	const struct rview gv = { &got, v6 };
	int ret;

	if (!c->inst.has_bl[pair][v6] || elems_proven(c, &want))
		return 0;
	ret = read_ranges(c, set, v6, &got);
	if (ret == -EBADMSG)
		snprintf(detail, len, "set %s holds elements we cannot read as ranges", set);
	if (ret == 0)
		ret = compare_ranges(&gv, &want, set, detail, len);
	cvz_rangeset_free(&got);
	return ret == -EBADMSG ? 1 : ret;
}

static int verify_elems(struct nft_conn *c, char *detail, size_t len)
{
	for (int k = 0; k < NFT_BL_COUNT; k++)
		for (int v6 = 0; v6 < 2; v6++) {
			int ret = verify_set(c, k, v6, detail, len);

			if (ret != 0)
				return ret;
		}
	return 0;
}

/* ---- verify ----------------------------------------------------------------- */

/* One read-back at generation gen: 1 drift, 0 equal, -EAGAIN the ruleset
 * changed while we read, -errno. */
static int verify_once(struct nft_conn *c, bool deep, uint32_t gen, char *detail, size_t len)
{
	uint32_t after;
	int ret = verify_shape(c, detail, len), ret2;

	if (ret == 0 && deep)
		ret = verify_elems(c, detail, len);
	if (ret < 0 && ret != -EAGAIN)
		return ret;
	if ((ret2 = get_gen(c, &after)) < 0)
		return ret2;
	if (after != gen)
		return -EAGAIN;
	if (ret != 0)
		return ret;
	/* equal at gen: later commits were about other tables */
	c->struct_ok = true;
	c->gen_struct = gen;
	if (deep) {
		c->all_ok = true;
		c->gen_all = gen;
		c->deep_next = false;
	}
	return 0;
}

int nft_conn_verify(struct nft_conn *c, bool deep, char *detail, size_t len)
{
	uint32_t gen;
	int ret = -EAGAIN;

	if (!c->applied) {
		snprintf(detail, len, "nothing applied on this connection yet");
		return -ENODATA;
	}
	if (c->unknown) {
		snprintf(detail, len, "the outcome of our last change is unknown: %s", c->unknown_why);
		return 1;
	}
	deep = deep || c->deep_next;
	for (int i = 0; i < VERIFY_TRIES && ret == -EAGAIN; i++) {
		if ((ret = get_gen(c, &gen)) < 0)
			break;
		/* no commit since the last time we knew: nothing to read */
		if ((c->all_ok && gen == c->gen_all) || (!deep && c->struct_ok && gen == c->gen_struct))
			ret = 0;
		else
			ret = verify_once(c, deep, gen, detail, len);
	}
	if (ret == 0 && len)
		detail[0] = '\0';
	else if (ret == -EAGAIN)
		snprintf(detail, len, "the ruleset kept changing while we read it");
	else if (ret < 0)
		snprintf(detail, len, "reading table inet %s back: %s", FW_TABLE_NAME, strerror(-ret));
	return ret;
}

/* ---- monitor ------------------------------------------------------------------ */

int nft_monitor_open(int *fd)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	int s = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_NETFILTER);
	int ret;

	if (s < 0)
		return -errno;
	ret = bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno
							      : set_membership(s, NETLINK_ADD_MEMBERSHIP);
	if (ret < 0) {
		close(s);
		return ret;
	}
	nft_grow_sockbuf(s, SO_RCVBUF, SO_RCVBUFFORCE, MONITOR_RCVBUF);
	*fd = s;
	return 0;
}

/* The most telling foreign event seen, and who committed it. */
struct watch {
	uint32_t our_portid;
	int rank;           /* 0: nothing foreign yet */
	uint32_t pid;       /* its netlink port: the NEWGEN that ends it has the same */
	char what[200];
	char by[64];
};

/* " (203.0.113.7)" when the first element of an element event is a start. */
static void first_elem(const struct nlattr *list, char *buf, size_t len)
{
	const struct nlattr *tb[NFTA_SET_ELEM_MAX + 1], *kt[NFTA_DATA_MAX + 1], *e;
	char a[INET6_ADDRSTRLEN];
	uint16_t klen;

	buf[0] = '\0';
	if (!list)
		return;
	mnl_attr_for_each_nested(e, list) {
		nest_attrs(e, tb, NFTA_SET_ELEM_MAX);
		if (!tb[NFTA_SET_ELEM_KEY] ||
		    attr_be32(tb[NFTA_SET_ELEM_FLAGS], 0) & NFT_SET_ELEM_INTERVAL_END)
			return;
		nest_attrs(tb[NFTA_SET_ELEM_KEY], kt, NFTA_DATA_MAX);
		klen = kt[NFTA_DATA_VALUE] ? mnl_attr_get_payload_len(kt[NFTA_DATA_VALUE]) : 0;
		if ((klen == 4 || klen == 16) &&
		    inet_ntop(klen == 4 ? AF_INET : AF_INET6,
			      mnl_attr_get_payload(kt[NFTA_DATA_VALUE]), a, sizeof(a)))
			snprintf(buf, len, " (%s)", a);
		return;
	}
}

/* Events about a table's contents, ranked by how much they say about the
 * damage (a deleted table says most). Text: before, the object's name
 * (attribute name_attr), after. */
static const struct event_kind {
	uint16_t type, name_attr;
	int rank;
	const char *before, *after;
} event_kinds[] = {
	{ NFT_MSG_DELTABLE, 0, 6, "table inet " FW_TABLE_NAME " deleted", "" },
	{ NFT_MSG_DELCHAIN, NFTA_CHAIN_NAME, 5, "chain ", " deleted" },
	{ NFT_MSG_NEWCHAIN, NFTA_CHAIN_NAME, 4, "chain ", " added or changed" },
	{ NFT_MSG_DELRULE, NFTA_RULE_CHAIN, 4, "rule deleted from chain ", "" },
	{ NFT_MSG_NEWRULE, NFTA_RULE_CHAIN, 4, "rule added to chain ", "" },
	{ NFT_MSG_DELSET, NFTA_SET_NAME, 3, "set ", " deleted" },
	{ NFT_MSG_NEWSET, NFTA_SET_NAME, 3, "set ", " added" },
	{ NFT_MSG_NEWTABLE, 0, 3, "table inet " FW_TABLE_NAME " added or changed", "" },
	{ NFT_MSG_DELSETELEM, NFTA_SET_ELEM_LIST_SET, 2, "element deleted from set ", "" },
	{ NFT_MSG_NEWSETELEM, NFTA_SET_ELEM_LIST_SET, 2, "element added to set ", "" },
	{ NFT_MSG_NEWOBJ, 0, 2, "object added to table inet " FW_TABLE_NAME, "" },
	{ NFT_MSG_DELOBJ, 0, 2, "object deleted from table inet " FW_TABLE_NAME, "" },
	{ NFT_MSG_NEWFLOWTABLE, 0, 2, "flowtable added to table inet " FW_TABLE_NAME, "" },
	{ NFT_MSG_DELFLOWTABLE, 0, 2, "flowtable deleted from table inet " FW_TABLE_NAME, "" },
};

/* Returns the event's rank (0: not one of the above) and its text. */
static int describe(uint16_t type, const struct nlattr **tb, char *buf, size_t len)
{
	for (size_t i = 0; i < ELEMENTSOF(event_kinds); i++) {
		const struct event_kind *k = &event_kinds[i];
		const char *name = k->name_attr ? attr_str(tb[k->name_attr]) : NULL;
		char elem[INET6_ADDRSTRLEN + 4] = "";

		if (k->type != type)
			continue;
		if (type == NFT_MSG_NEWSETELEM || type == NFT_MSG_DELSETELEM)
			first_elem(tb[NFTA_SET_ELEM_LIST_ELEMENTS], elem, sizeof(elem));
		snprintf(buf, len, "%s%s%s%s", k->before, name ? name : k->name_attr ? "?" : "",
			 k->after, elem);
		/* anonymous sets come and go with a rule, which says more */
		return name && !strncmp(name, "__set", 5) ? 1 : k->rank;
	}
	return 0;
}

static void on_gen_event(struct watch *w, const struct nlmsghdr *nlh)
{
	const struct nlattr *tb[TB_MAX + 1];
	const char *proc;
	uint32_t pid;

	if (!w->rank || w->by[0] || nlh->nlmsg_pid != w->pid)
		return;
	msg_attrs(nlh, tb, TB_MAX);
	proc = attr_str(tb[NFTA_GEN_PROC_NAME]);
	pid = attr_be32(tb[NFTA_GEN_PROC_PID], 0);
	if (proc || pid)
		snprintf(w->by, sizeof(w->by), " by %s[%u]", proc ? proc : "?", pid);
}

static void on_event(struct watch *w, const struct nlmsghdr *nlh)
{
	const struct nlattr *tb[TB_MAX + 1];
	uint16_t type = NFNL_MSG_TYPE(nlh->nlmsg_type);
	char what[sizeof(w->what)];
	int rank;

	if (!is_nftables(nlh))
		return;
	if (type == NFT_MSG_NEWGEN) {
		on_gen_event(w, nlh);
		return;
	}
	msg_attrs(nlh, tb, TB_MAX);
	/* the table name is attribute 1 of every object's messages; events
	 * carry the port of the socket whose commit caused them */
	if (!our_table(nlh, tb[1]) || nlh->nlmsg_pid == w->our_portid)
		return;
	rank = describe(type, tb, what, sizeof(what));
	if (rank > w->rank) {
		w->rank = rank;
		w->pid = nlh->nlmsg_pid;
		w->by[0] = '\0';
		memcpy(w->what, what, sizeof(w->what));
	}
}

static int monitor_drain(int fd, char *buf, struct watch *w, bool *overrun)
{
	for (;;) {
		ssize_t n = recv(fd, buf, NFT_REPLY_BUF_SIZE, MSG_DONTWAIT);
		const struct nlmsghdr *nlh = (const struct nlmsghdr *)buf;
		int len = (int)n;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == ENOBUFS) { /* the kernel dropped events */
			*overrun = true;
			continue;
		}
		if (n < 0)
			return errno == EAGAIN ? 0 : -errno;
		for (; mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len))
			on_event(w, nlh);
	}
}

int nft_monitor_read(int fd, uint32_t our_portid, char *detail, size_t len)
{
	struct watch w = { .our_portid = our_portid };
	bool overrun = false;
	char *buf = malloc(NFT_REPLY_BUF_SIZE);
	int ret;

	if (!buf)
		return -ENOMEM;
	ret = monitor_drain(fd, buf, &w, &overrun);
	free(buf);
	if (ret < 0)
		return ret;
	if (w.rank) {
		snprintf(detail, len, "%s%s", w.what, w.by);
		return 1;
	}
	return overrun ? -ENOBUFS : 0;
}
