/* Developer self-test for nftd.c (run by nftd_selftest.sh, inside network
 * namespaces it creates; foreign changes are made with the nft CLI).
 *
 *   nftd_selftest suite          everything that fits in one process
 *   nftd_selftest hold FLAGS     apply with FLAGS (0 or 6), print "portid N",
 *                                keep the connection until stdin closes
 *   nftd_selftest retake         a new connection applies owner+persist over
 *                                whatever is there; checks it owns the table
 *   nftd_selftest info [TABLE]   "absent" or "flags F owner P use U" of
 *                                table inet TABLE (cloudviz)
 *   nftd_selftest bench [N [D [FLAGS]]]
 *                                N-range blocklist_v4 (1000000) applied with
 *                                FLAGS (6), one range added to and deleted
 *                                from blocklist_v4 and from dynamic_v4, one
 *                                delta of D ranges (10000), verify and
 *                                monitor, with timings */
#include <arpa/inet.h>
#include <errno.h>
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

#include "nft.h"
#include "ruleset.h"

#define OWNER_PERSIST NFT_TABLE_OWNER_PERSIST
#define F_PERSIST 0x4u

static int failures, passes;

__attribute__((noreturn)) static void die(const char *what, const char *detail)
{
	fprintf(stderr, "%s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
	exit(2);
}

static void expect(bool ok, const char *what, const char *detail)
{
	printf("%s: %s%s%s\n", ok ? "PASS" : "FAIL", what, detail ? ": " : "", detail ? detail : "");
	fflush(stdout);
	if (ok)
		passes++;
	else
		failures++;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- the nft CLI, as the foreign process ---------------------------------- */

/* Runs cmd with 2>&1; returns its exit status and output. */
static int run(const char *cmd, char *out, size_t len)
{
	char full[1024];
	FILE *f;
	size_t n = 0;
	int st;

	snprintf(full, sizeof(full), "%s 2>&1", cmd);
	if (!(f = popen(full, "r")))
		die("popen", strerror(errno));
	if (out && len) {
		n = fread(out, 1, len - 1, f);
		out[n] = '\0';
		while (n && out[n - 1] == '\n')
			out[--n] = '\0';
	} else {
		char sink[4096];
		while (fread(sink, 1, sizeof(sink), f) > 0)
			;
	}
	st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 255;
}

/* The table's contents; without its header, where nft 1.0.6 prints the
 * owner's name ("# progname nftd_selftest") and the flags it knows. */
static void listing(char *out, size_t len)
{
	run("nft list table inet cloudviz | grep -v -e '^table ' -e '^\tflags '", out, len);
}

/* The elements of a set as one line: "10.0.0.0/8,192.0.2.1". */
static void set_elems(const char *set, char *out, size_t len)
{
	char cmd[128], raw[1 << 16];
	const char *p, *q;
	size_t n = 0;

	snprintf(cmd, sizeof(cmd), "nft list set inet cloudviz %s", set);
	run(cmd, raw, sizeof(raw));
	out[0] = '\0';
	if (!(p = strstr(raw, "elements = {")) || !(q = strchr(p, '}')))
		return;
	for (p += strlen("elements = {"); p < q && n + 1 < len; p++)
		if (*p != ' ' && *p != '\t' && *p != '\n')
			out[n++] = *p;
	out[n] = '\0';
}

static void expect_elems(const char *set, const char *want, const char *what)
{
	char got[1 << 16], d[(1 << 16) + 64];

	set_elems(set, got, sizeof(got));
	snprintf(d, sizeof(d), "%s = {%s}", set, got);
	expect(!strcmp(got, want), what, d);
}

/* ---- raw netlink reads, independent of nftd.c --------------------------------- */

struct tinfo {
	bool present;
	uint32_t flags, owner, use;
};

static int tinfo_cb(const struct nlmsghdr *nlh, void *data)
{
	struct tinfo *ti = data;
	const struct nlattr *a;

	ti->present = true;
	mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg)) {
		if (mnl_attr_get_type(a) == NFTA_TABLE_FLAGS)
			ti->flags = ntohl(mnl_attr_get_u32(a));
		if (mnl_attr_get_type(a) == NFTA_TABLE_OWNER)
			ti->owner = ntohl(mnl_attr_get_u32(a));
		if (mnl_attr_get_type(a) == NFTA_TABLE_USE)
			ti->use = ntohl(mnl_attr_get_u32(a));
	}
	return MNL_CB_OK;
}

static int gen_cb(const struct nlmsghdr *nlh, void *data)
{
	const struct nlattr *a;

	mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg))
		if (mnl_attr_get_type(a) == NFTA_GEN_ID)
			*(uint32_t *)data = ntohl(mnl_attr_get_u32(a));
	return MNL_CB_OK;
}

static int ask(uint16_t type, const char *table, mnl_cb_t cb, void *data);
static struct tinfo table_info_of(const char *table);

static int ask(uint16_t type, const char *table, mnl_cb_t cb, void *data)
{
	static char buf[1 << 16];
	struct mnl_socket *nl = mnl_socket_open(NETLINK_NETFILTER);
	struct nlmsghdr *nlh;
	int ret;

	if (!nl || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0)
		die("netlink", strerror(errno));
	nlh = nftnl_nlmsg_build_hdr(buf, type, table ? NFPROTO_INET : AF_UNSPEC, NLM_F_ACK, 1);
	if (table)
		mnl_attr_put_strz(nlh, NFTA_TABLE_NAME, table);
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		die("send", strerror(errno));
	do {
		ret = (int)mnl_socket_recvfrom(nl, buf, sizeof(buf));
		if (ret > 0)
			ret = mnl_cb_run(buf, (size_t)ret, 1, mnl_socket_get_portid(nl), cb, data);
	} while (ret > 0);
	mnl_socket_close(nl);
	return ret;
}

static struct tinfo table_info_of(const char *table)
{
	struct tinfo ti = { 0 };

	ask(NFT_MSG_GETTABLE, table, tinfo_cb, &ti);
	return ti;
}

static struct tinfo table_info(void)
{
	return table_info_of("cloudviz");
}

static uint32_t genid(void)
{
	uint32_t g = 0;

	ask(NFT_MSG_GETGEN, NULL, gen_cb, &g);
	return g;
}

/* ---- tables ------------------------------------------------------------------- */

static struct cvz_prefix prefix(const char *s)
{
	struct cvz_prefix p;
	const char *why;

	if (cvz_prefix_parse(s, &p, &why, NULL, 0) < 0)
		die(s, why);
	return p;
}

/* "10.0.0.0/8 192.0.2.1 10.0.0.0-10.1.2.2" -> normalised range set */
static void ranges(struct cvz_rangeset *rs, const char *list)
{
	char *copy = strdup(list), *save = NULL;

	for (char *tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		char *dash = strchr(tok, '-');
		int ret;

		if (dash) {
			*dash = '\0';
			struct cvz_prefix a = prefix(tok), b = prefix(dash + 1);
			uint32_t lo, hi;

			memcpy(&lo, a.addr, sizeof(lo));
			memcpy(&hi, b.addr, sizeof(hi));
			ret = cvz_rangeset_add4(rs, ntohl(lo), ntohl(hi));
		} else {
			struct cvz_prefix p = prefix(tok);
			ret = cvz_rangeset_add_prefix(rs, &p);
		}
		if (ret < 0)
			die("bad range", tok);
	}
	free(copy);
	cvz_rangeset_normalize(rs);
}

static struct fw_rule *rule(struct fw_table *t, enum fw_hook h, const char *origin)
{
	struct fw_rule *r = fw_chain_add_rule(&t->chains[h]);

	if (!r)
		die("out of memory", NULL);
	r->origin = strdup(origin);
	return r;
}

/* The blocklist sets, both pairs, in the compiler's order. */
static const char *const bl_names[4] = { "blocklist_v4", "blocklist_v6", "dynamic_v4",
					 "dynamic_v6" };

/* contents: "10.0.0.0/8 192.0.2.1" per set of bl_names */
static void blocklist_sets(struct fw_table *t, const char *const contents[4])
{
	for (int i = 0; i < 4; i++) {
		struct fw_set *s = fw_table_add_set(t);

		snprintf(s->name, sizeof(s->name), "%s", bl_names[i]);
		s->kind = FW_SET_ADDR, s->family = i % 2 ? NFPROTO_IPV6 : NFPROTO_IPV4;
		s->origin = strdup(bl_names[i]);
		ranges(&s->elems, contents[i]);
	}
}

/* The shape the compiler produces: both pairs of blocklist sets (dynamic
 * holding d4 and d6) and their drop rules in every chain, a few ordinary
 * rules (one with an anonymous set). */
static void build_dyn(struct fw_table *t, const char *v4, const char *v6, const char *d4,
		      const char *d6)
{
	const char *const contents[4] = { v4, v6, d4, d6 };
	struct fw_rule *r;

	memset(t, 0, sizeof(*t));
	blocklist_sets(t, contents);
	for (int h = 0; h < FW_HOOK_COUNT; h++) {
		bool out = h == FW_HOOK_OUTPUT;

		t->chains[h].hook = (enum fw_hook)h;
		for (int i = 0; i < 4; i++) {
			r = rule(t, (enum fw_hook)h, bl_names[i]);
			r->family = i % 2 ? NFPROTO_IPV6 : NFPROTO_IPV4;
			r->counter = true, r->verdict = FW_VERDICT_DROP;
			*(out ? &r->daddr_set : &r->saddr_set) = bl_names[i];
		}
	}
	t->chains[FW_HOOK_FORWARD].policy_drop = true;
	r = rule(t, FW_HOOK_INPUT, "p:1");
	r->ct_state = FW_CT_ESTABLISHED | FW_CT_RELATED, r->verdict = FW_VERDICT_ACCEPT;
	r = rule(t, FW_HOOK_INPUT, "p:2");
	r->l4proto[r->n_l4proto++] = IPPROTO_TCP;
	r->dport = calloc(3, sizeof(*r->dport));
	r->dport[0] = (struct fw_portrange){ 22, 22 };
	r->dport[1] = (struct fw_portrange){ 80, 80 };
	r->dport[2] = (struct fw_portrange){ 443, 443 };
	r->n_dport = 3, r->verdict = FW_VERDICT_ACCEPT;
}

/* The same with the dynamic sets empty, as `apply` installs it. */
static void build(struct fw_table *t, const char *v4, const char *v6)
{
	build_dyn(t, v4, v6, "", "");
}

static int apply(struct nft_conn *c, uint32_t flags, const char *v4, const char *v6,
		 char *err, size_t len)
{
	struct fw_table t;
	int ret;

	build(&t, v4, v6);
	ret = nft_conn_apply_table(c, &t, flags, err, len);
	fw_table_free(&t);
	return ret;
}

#define BASE_V4 "10.0.0.0/8 192.0.2.1"
#define BASE_V6 "2001:db8::/32"

static struct nft_conn *conn(void)
{
	struct nft_conn *c;
	int ret = nft_conn_open(&c);

	if (ret < 0)
		die("nft_conn_open", strerror(-ret));
	return c;
}

/* ---- monitor ------------------------------------------------------------------ */

static int mon_fd = -1;

static void expect_monitor(struct nft_conn *c, int want, const char *want_text, const char *what)
{
	char detail[512] = "", d[700];
	int ret = nft_monitor_read(mon_fd, nft_conn_portid(c), detail, sizeof(detail));

	snprintf(d, sizeof(d), "ret %d \"%s\"", ret, detail);
	expect(ret == want && (!want_text || strstr(detail, want_text)), what, d);
}

static void expect_verify(struct nft_conn *c, bool deep, int want, const char *want_text,
			  const char *what)
{
	char detail[512] = "", d[700];
	double t0 = now_ms();
	int ret = nft_conn_verify(c, deep, detail, sizeof(detail));

	snprintf(d, sizeof(d), "ret %d \"%s\" (%.1f ms)", ret, ret ? detail : "", now_ms() - t0);
	expect(ret == want && (!want_text || strstr(detail, want_text)), what, d);
}

/* ---- suite ---------------------------------------------------------------------- */

static void t_probe(struct nft_conn *c)
{
	char out[4096], d[64];
	uint32_t g0 = genid();
	bool have = nft_have_owner_persist(c);

	snprintf(d, sizeof(d), "%s", have ? "supported" : "not supported");
	expect(have, "probe: owner+persist supported on this kernel", d);
	expect(nft_have_owner_persist(c) == have, "probe: cached answer", NULL);
	run("nft list tables", out, sizeof(out));
	expect(!strstr(out, "probe"), "probe: no table left behind", out[0] ? out : "(no tables)");
	expect(genid() == g0, "probe: nothing committed (generation unchanged)", NULL);
}

/* A foreign command against the owned table: refused or skipped, the table unchanged. */
static void foreign_refused(const char *cmd, bool want_fail, const char *want_err)
{
	char before[1 << 16], after[1 << 16], out[1024], d[1400];
	int st;

	listing(before, sizeof(before));
	st = run(cmd, out, sizeof(out));
	listing(after, sizeof(after));
	snprintf(d, sizeof(d), "exit %d: %s", st, out[0] ? out : "(no output)");
	expect((want_fail ? st != 0 && strstr(out, want_err) : st == 0) && !strcmp(before, after),
	       cmd, d);
}

static void t_owned(struct nft_conn *c)
{
	char err[512];
	struct tinfo ti;
	int ret = apply(c, OWNER_PERSIST, BASE_V4, BASE_V6, err, sizeof(err));

	expect(ret == 0, "apply with owner+persist", err);
	ti = table_info();
	snprintf(err, sizeof(err), "flags 0x%x owner %u, our port %u", ti.flags, ti.owner,
		 nft_conn_portid(c));
	expect(ti.present && ti.flags == OWNER_PERSIST && ti.owner == nft_conn_portid(c),
	       "table owned by our socket", err);
	expect_monitor(c, 0, NULL, "monitor: our own apply is not foreign");
	expect_verify(c, false, 0, NULL, "verify after apply (cheap)");
	expect_verify(c, true, 0, NULL, "verify after apply (deep)");
	foreign_refused("nft flush ruleset", false, "");
	foreign_refused("nft delete table inet cloudviz", true, "Operation not permitted");
	foreign_refused("nft add rule inet cloudviz input drop", true, "Operation not permitted");
	foreign_refused("nft delete element inet cloudviz blocklist_v4 { 192.0.2.1 }", true,
			"Operation not permitted");
	foreign_refused("nft add chain inet cloudviz sneaky", true, "Operation not permitted");
	foreign_refused("nft 'add table inet cloudviz { flags dormant; }'", true, "");
	expect_monitor(c, 0, NULL, "monitor: refused foreign commands leave no events");
	expect_verify(c, true, 0, NULL, "verify: still what we installed");
}

/* A second live agent cannot take the table. */
static void t_second_owner(void)
{
	struct nft_conn *c2 = conn();
	char err[512], before[1 << 16], after[1 << 16];
	int ret;

	listing(before, sizeof(before));
	ret = apply(c2, OWNER_PERSIST, "198.51.100.0/24", "", err, sizeof(err));
	listing(after, sizeof(after));
	expect(ret == -EPERM && strstr(err, "owned by another process") && !strcmp(before, after),
	       "a second connection is refused while the first owns the table", err);
	nft_conn_close(c2);
}

static void t_orphan_and_retake(struct nft_conn *c)
{
	char before[1 << 16], after[1 << 16], err[512];
	struct tinfo ti;
	struct nft_conn *c2;
	int ret;

	listing(before, sizeof(before));
	nft_conn_close(c);
	ti = table_info();
	listing(after, sizeof(after));
	snprintf(err, sizeof(err), "present %d flags 0x%x owner %u", ti.present, ti.flags, ti.owner);
	expect(ti.present && ti.flags == F_PERSIST && !ti.owner && !strcmp(before, after),
	       "connection closed: table stays, persist only, no owner", err);
	c2 = conn();
	ret = apply(c2, OWNER_PERSIST, BASE_V4, BASE_V6, err, sizeof(err));
	expect(ret == 0, "new connection replaces the orphan", err);
	ti = table_info();
	snprintf(err, sizeof(err), "flags 0x%x owner %u, our port %u", ti.flags, ti.owner,
		 nft_conn_portid(c2));
	expect(ti.flags == OWNER_PERSIST && ti.owner == nft_conn_portid(c2),
	       "new connection owns the table", err);
	expect_verify(c2, true, 0, NULL, "verify on the new connection");
	foreign_refused("nft delete table inet cloudviz", true, "Operation not permitted");
	/* back to no flags on the same connection: owner and persist go */
	ret = apply(c2, 0, BASE_V4, BASE_V6, err, sizeof(err));
	ti = table_info();
	snprintf(err + strlen(err), sizeof(err) - strlen(err), " flags 0x%x", ti.flags);
	expect(ret == 0 && ti.flags == 0, "owned table replaced by one without flags", err);
	nft_conn_close(c2);
	expect(table_info().present, "table without flags stays after close", NULL);
}

static void t_foreign_events(struct nft_conn *c)
{
	char err[512];
	int ret = apply(c, 0, BASE_V4, BASE_V6, err, sizeof(err));

	expect(ret == 0, "apply without flags", err);
	expect_monitor(c, 0, NULL, "monitor: own apply");
	run("nft add table inet other; nft add chain inet other c; nft add rule inet other c counter",
	    NULL, 0);
	run("nft add table ip cloudviz; nft delete table ip cloudviz", NULL, 0);
	expect_monitor(c, 0, NULL, "monitor: other tables (inet other, ip cloudviz) ignored");
	expect_verify(c, false, 0, NULL, "verify: other tables changed, ours did not");
	expect_verify(c, false, 0, NULL, "verify again (generation remembered)");
	run("nft flush ruleset", NULL, 0);
	expect_monitor(c, 1, "table inet cloudviz deleted by nft[", "monitor: foreign flush ruleset");
	expect_verify(c, false, 1, "is gone", "verify: table gone");
	ret = apply(c, 0, BASE_V4, BASE_V6, err, sizeof(err));
	expect(ret == 0, "repair", err);
	expect_monitor(c, 0, NULL, "monitor: own repair");
	run("nft delete table inet cloudviz", NULL, 0);
	expect_monitor(c, 1, "table inet cloudviz deleted by nft[", "monitor: foreign delete table");
	apply(c, 0, BASE_V4, BASE_V6, err, sizeof(err));
	nft_monitor_read(mon_fd, nft_conn_portid(c), err, sizeof(err));
	run("nft add rule inet cloudviz input drop", NULL, 0);
	expect_monitor(c, 1, "rule added to chain input by nft[", "monitor: foreign add rule");
	expect_verify(c, false, 1, "rule added to chain input", "verify (cheap): foreign rule");
	apply(c, 0, BASE_V4, BASE_V6, err, sizeof(err));
	run("nft delete rule inet cloudviz output handle "
	    "$(nft -a list chain inet cloudviz output | awk '/dynamic_v6/ {print $NF}')", NULL, 0);
	expect_monitor(c, 1, "rule deleted from chain output by nft[", "monitor: foreign delete rule");
	expect_verify(c, false, 1, "rule deleted from chain output", "verify (cheap): deleted rule");
	apply(c, 0, BASE_V4, BASE_V6, err, sizeof(err));
	nft_monitor_read(mon_fd, nft_conn_portid(c), err, sizeof(err));
	run("nft delete element inet cloudviz blocklist_v4 { 192.0.2.1 }", NULL, 0);
	expect_monitor(c, 1, "element deleted from set blocklist_v4 (192.0.2.1) by nft[",
		       "monitor: foreign delete element");
	expect_verify(c, false, 0, NULL, "verify (cheap) does not read elements");
	expect_verify(c, true, 1, "set blocklist_v4 lacks 192.0.2.1", "verify (deep): element gone");
	run("nft add element inet cloudviz blocklist_v4 { 192.0.2.1, 198.51.100.0/24 }", NULL, 0);
	expect_verify(c, true, 1, "set blocklist_v4 holds 198.51.100.0/24, which we did not install",
		      "verify (deep): element added");
	run("nft chain inet cloudviz forward '{ policy accept; }'", NULL, 0);
	expect_verify(c, false, 1, "chain forward has policy accept", "verify (cheap): policy");
	expect_monitor(c, 1, "by nft[", "monitor: the events since");
	apply(c, 0, BASE_V4, BASE_V6, err, sizeof(err));
	run("nft add counter inet cloudviz sneaky", NULL, 0);
	expect_verify(c, false, 1, "chains, named sets and objects", "verify (cheap): object added");
	apply(c, 0, BASE_V4, BASE_V6, err, sizeof(err));
	nft_monitor_read(mon_fd, nft_conn_portid(c), err, sizeof(err));
	expect_verify(c, true, 0, NULL, "verify (deep) after repair");
}

/* One transaction on one pair of sets. */
static int delta_on(struct nft_conn *c, enum nft_blset pair, const char *del4, const char *add4,
		    char *err, size_t len, const char *del6, const char *add6)
{
	struct cvz_rangeset del = { 0 }, add = { 0 };
	struct nft_bl_delta d[NFT_BL_COUNT] = { { 0 } };
	int ret;

	ranges(&del, del4);
	ranges(&add, add4);
	if (del6)
		ranges(&del, del6);
	if (add6)
		ranges(&add, add6);
	d[pair] = (struct nft_bl_delta){ &del, &add };
	ret = nft_conn_set_delta(c, d, err, len);
	cvz_rangeset_free(&del);
	cvz_rangeset_free(&add);
	return ret;
}

/* ... on the lists' pair, blocklist_v4/_v6 */
static int delta(struct nft_conn *c, const char *del4, const char *add4, char *err, size_t len,
		 const char *del6, const char *add6)
{
	return delta_on(c, NFT_BL_LISTS, del4, add4, err, len, del6, add6);
}

static void t_deltas(struct nft_conn *c)
{
	char err[512];
	int ret = apply(c, 0, BASE_V4, BASE_V6, err, sizeof(err));

	expect(ret == 0, "apply for deltas", err);
	nft_monitor_read(mon_fd, nft_conn_portid(c), err, sizeof(err));
	ret = delta(c, "", "203.0.113.0/24", err, sizeof(err), NULL, NULL);
	expect(ret == 0, "delta: add 203.0.113.0/24", err);
	expect_elems("blocklist_v4", "10.0.0.0/8,192.0.2.1,203.0.113.0/24", "set after add");
	ret = delta(c, "10.0.0.0/8", "10.0.0.0-10.1.2.2 10.1.2.4-10.255.255.255", err, sizeof(err),
		    NULL, NULL);
	expect(ret == 0, "delta: carve 10.1.2.3 out of 10.0.0.0/8 in one transaction", err);
	expect_elems("blocklist_v4", "10.0.0.0-10.1.2.2,10.1.2.4-10.255.255.255,192.0.2.1,203.0.113.0/24",
		     "set after carve");
	ret = delta(c, "10.0.0.0-10.1.2.2 10.1.2.4-10.255.255.255 192.0.2.1",
		    "0.0.0.0/8 10.0.0.0/8 255.255.255.0/24", err, sizeof(err), NULL, NULL);
	expect(ret == 0, "delta: merge back, add at 0 and at the top", err);
	expect_elems("blocklist_v4", "0.0.0.0/8,10.0.0.0/8,203.0.113.0/24,255.255.255.0/24",
		     "set with ranges at both ends");
	ret = delta(c, "0.0.0.0/8 255.255.255.0/24", "", err, sizeof(err), "2001:db8::/32",
		    "2001:db8::/33 2001:db8:8000::1 ffff::/16");
	expect(ret == 0, "delta: IPv4 and IPv6 together, IPv6 at the top", err);
	expect_elems("blocklist_v4", "10.0.0.0/8,203.0.113.0/24", "IPv4 set");
	expect_elems("blocklist_v6", "2001:db8::/33,2001:db8:8000::1,ffff::/16", "IPv6 set");
	ret = delta(c, "", "", err, sizeof(err), "ffff::/16 2001:db8:8000::1", "::/8");
	expect(ret == 0, "delta: IPv6 top range deleted, range at :: added", err);
	expect_elems("blocklist_v6", "::/8,2001:db8::/33", "IPv6 set after");
	expect_monitor(c, 0, NULL, "monitor: own deltas");
	expect_verify(c, true, 0, NULL, "verify (deep) after deltas: nothing since, nothing read");
	run("nft add table inet unrelated", NULL, 0); /* now verify must read back */
	expect_verify(c, true, 0, NULL, "verify (deep) reads the sets back: our record is exact");
	ret = delta(c, "", "203.0.113.0/24", err, sizeof(err), NULL, NULL);
	expect(ret == -EEXIST &&
	       !strcmp(err, "kernel refused adding 203.0.113.0/24 to blocklist_v4: File exists"),
	       "delta error names the element", err);
	ret = delta(c, "198.51.100.0/24", "", err, sizeof(err), NULL, NULL);
	expect(ret == -ENOENT && strstr(err, "kernel refused deleting 198.51.100.0/24 from "
					     "blocklist_v4: No such file or directory"),
	       "delta error names the element (delete)", err);
	ret = delta(c, "", "192.0.2.0/24", err, sizeof(err), "", "2001:db8::/32");
	expect(ret == -EEXIST && strstr(err, "2001:db8::/32 to blocklist_v6"),
	       "delta error: IPv6 overlap, after a good IPv4 element", err);
	expect_elems("blocklist_v4", "10.0.0.0/8,203.0.113.0/24", "refused deltas changed nothing");
	expect_verify(c, true, 0, NULL, "verify (deep) after refused deltas");
}

/* The runtime blocks' pair: deltas there leave the lists' pair alone; both
 * pairs change in one transaction; an address may be in both; errors and
 * verify name the dynamic set. */
static void t_dynamic(struct nft_conn *c)
{
	struct cvz_rangeset ld = { 0 }, la = { 0 }, dd = { 0 }, da = { 0 };
	struct nft_bl_delta both[NFT_BL_COUNT] = { { &ld, &la }, { &dd, &da } };
	struct fw_table t;
	char err[512];
	uint32_t g0;
	int ret;

	build_dyn(&t, BASE_V4, BASE_V6, "198.51.100.7", "2001:db8:bad::/48");
	ret = nft_conn_apply_table(c, &t, 0, err, sizeof(err));
	fw_table_free(&t);
	expect(ret == 0, "dynamic: apply with runtime blocks in the dynamic sets", err);
	expect_elems("dynamic_v4", "198.51.100.7", "dynamic: dynamic_v4 applied");
	expect_elems("dynamic_v6", "2001:db8:bad::/48", "dynamic: dynamic_v6 applied");
	expect_verify(c, true, 0, NULL, "dynamic: verify (deep) after apply");
	nft_monitor_read(mon_fd, nft_conn_portid(c), err, sizeof(err));
	ret = delta_on(c, NFT_BL_DYNAMIC, "198.51.100.7", "10.1.2.3 198.51.100.0/24", err,
		       sizeof(err), NULL, NULL);
	expect(ret == 0, "dynamic: delta (10.1.2.3 is in blocklist_v4 too)", err);
	expect_elems("dynamic_v4", "10.1.2.3,198.51.100.0/24", "dynamic: dynamic_v4 after the delta");
	expect_elems("blocklist_v4", "10.0.0.0/8,192.0.2.1", "dynamic: blocklist_v4 untouched");
	ret = delta_on(c, NFT_BL_DYNAMIC, "", "", err, sizeof(err), "2001:db8:bad::/48", "::2");
	expect(ret == 0, "dynamic: IPv6 delta", err);
	expect_elems("dynamic_v6", "::2", "dynamic: dynamic_v6 after the delta");
	expect_elems("blocklist_v6", "2001:db8::/32", "dynamic: blocklist_v6 untouched");
	run("nft add table inet unrelated; nft delete table inet unrelated", NULL, 0);
	expect_verify(c, true, 0, NULL, "dynamic: verify (deep) reads both pairs back: record exact");
	ret = delta_on(c, NFT_BL_DYNAMIC, "", "198.51.100.128/25", err, sizeof(err), NULL, NULL);
	expect(ret == -EEXIST &&
	       !strcmp(err, "kernel refused adding 198.51.100.128/25 to dynamic_v4: File exists"),
	       "dynamic: delta error names the dynamic set", err);
	ret = delta_on(c, NFT_BL_DYNAMIC, "203.0.113.9", "", err, sizeof(err), NULL, NULL);
	expect(ret == -ENOENT && strstr(err, "deleting 203.0.113.9 from dynamic_v4"),
	       "dynamic: delta error names the dynamic set (delete)", err);
	/* a reload: both pairs in one transaction, one generation */
	ranges(&ld, "192.0.2.1");
	ranges(&la, "192.0.2.0/24");
	ranges(&dd, "10.1.2.3");
	g0 = genid();
	ret = nft_conn_set_delta(c, both, err, sizeof(err));
	expect(ret == 0 && genid() == g0 + 1, "dynamic: both pairs in one transaction", err);
	expect_elems("blocklist_v4", "10.0.0.0/8,192.0.2.0/24", "dynamic: blocklist_v4 after both");
	expect_elems("dynamic_v4", "198.51.100.0/24", "dynamic: dynamic_v4 after both");
	/* refused in the second pair: the first pair's part is not committed */
	ret = nft_conn_set_delta(c, (struct nft_bl_delta[NFT_BL_COUNT]){ { &la, &ld }, { &dd, &dd } },
				 err, sizeof(err));
	expect(ret == -ENOENT && strstr(err, "deleting 10.1.2.3 from dynamic_v4"),
	       "dynamic: a refusal in one pair aborts both", err);
	expect_elems("blocklist_v4", "10.0.0.0/8,192.0.2.0/24", "dynamic: blocklist_v4 unchanged");
	expect_monitor(c, 0, NULL, "dynamic: monitor: own deltas");
	run("nft delete element inet cloudviz dynamic_v4 { 198.51.100.0/24 }", NULL, 0);
	expect_monitor(c, 1, "element deleted from set dynamic_v4 (198.51.100.0) by nft[",
		       "dynamic: monitor: foreign delete element");
	expect_verify(c, true, 1, "set dynamic_v4 lacks 198.51.100.0/24",
		      "dynamic: verify (deep) names dynamic_v4");
	cvz_rangeset_free(&ld);
	cvz_rangeset_free(&la);
	cvz_rangeset_free(&dd);
}

/* A monitor that cannot keep up reports the loss, once, and then works. */
static void t_overrun(struct nft_conn *c)
{
	int small = 4096;
	char err[512], v4[64 * 20] = "";

	for (int i = 0; i < 60; i++)
		snprintf(v4 + strlen(v4), sizeof(v4) - strlen(v4), "198.18.%d.0/24 ", i * 2);
	nft_monitor_read(mon_fd, nft_conn_portid(c), err, sizeof(err));
	if (setsockopt(mon_fd, SOL_SOCKET, SO_RCVBUFFORCE, &small, sizeof(small)) < 0)
		die("SO_RCVBUFFORCE", strerror(errno));
	for (int i = 0; i < 5; i++)
		apply(c, 0, v4, BASE_V6, err, sizeof(err));
	expect_monitor(c, -ENOBUFS, NULL, "monitor: overrun reported");
	expect_verify(c, true, 0, NULL, "verify (deep) after the overrun: our commit, by generation");
	run("nft delete element inet cloudviz blocklist_v4 { 198.18.2.0/24 }", NULL, 0);
	expect_monitor(c, 1, "element deleted from set blocklist_v4 (198.18.2.0) by nft[",
		       "monitor works after the overrun");
}

/* With a monitor too small for 12000 element events, a connection that
 * knows the monitor unsubscribes it during its big commits. */
static void t_pause(struct nft_conn *c)
{
	struct fw_table t;
	struct cvz_rangeset add = { 0 }, del = { 0 };
	char err[512];
	int ret;

	build(&t, "", "");
	for (uint32_t i = 0; i < 6000; i++)
		cvz_rangeset_add4(&t.sets[0].elems, 0x0a000000u + i * 4, 0x0a000000u + i * 4 + 1);
	nft_conn_set_monitor(c, mon_fd);
	ret = nft_conn_apply_table(c, &t, 0, err, sizeof(err));
	expect(ret == 0, "pause: apply 6000 ranges", err);
	expect_monitor(c, 0, NULL, "pause: monitor unsubscribed during our big apply (no overrun)");
	expect_verify(c, true, 0, NULL, "pause: verify (deep): no gap, by generation");
	for (uint32_t i = 0; i < 6000; i++)
		cvz_rangeset_add4(&add, 0x0b000000u + i * 4, 0x0b000000u + i * 4 + 1);
	ret = nft_conn_set_delta(c, (struct nft_bl_delta[NFT_BL_COUNT]){ { &del, &add } }, err,
				 sizeof(err));
	expect(ret == 0, "pause: delta of 6000 ranges", err);
	expect_monitor(c, 0, NULL, "pause: monitor unsubscribed during our big delta");
	run("nft add rule inet cloudviz output counter", NULL, 0);
	expect_monitor(c, 1, "rule added to chain output by nft[", "pause: monitor subscribed again");
	nft_conn_set_monitor(c, -1);
	cvz_rangeset_free(&add);
	fw_table_free(&t);
}

static int cmd_suite(void)
{
	struct nft_conn *c = conn();
	int ret = nft_monitor_open(&mon_fd);

	if (ret < 0)
		die("nft_monitor_open", strerror(-ret));
	t_probe(c);
	t_owned(c);
	t_second_owner();
	t_orphan_and_retake(c); /* closes c */
	c = conn();
	t_foreign_events(c);
	t_deltas(c);
	t_dynamic(c);
	t_overrun(c);
	t_pause(c);
	nft_conn_close(c);
	close(mon_fd);
	printf("suite: %d passed, %d failed\n", passes, failures);
	return failures ? 1 : 0;
}

/* ---- commands for the script ------------------------------------------------------ */

static int cmd_hold(uint32_t flags)
{
	struct nft_conn *c = conn();
	char err[512], line[64];
	int ret = apply(c, flags, BASE_V4, BASE_V6, err, sizeof(err));

	if (ret < 0)
		die("apply", err);
	printf("portid %u\n", nft_conn_portid(c));
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin))
		;
	nft_conn_close(c);
	return 0;
}

static int cmd_retake(void)
{
	struct nft_conn *c = conn();
	char err[512];
	int ret = apply(c, OWNER_PERSIST, BASE_V4, BASE_V6, err, sizeof(err));
	struct tinfo ti = table_info();

	snprintf(err + strlen(err), sizeof(err) - strlen(err), "flags 0x%x owner %u, our port %u",
		 ti.flags, ti.owner, nft_conn_portid(c));
	expect(ret == 0 && ti.flags == OWNER_PERSIST && ti.owner == nft_conn_portid(c),
	       "retake: a new process owns the table", err);
	nft_conn_close(c);
	return failures ? 1 : 0;
}

static int cmd_info(const char *table)
{
	struct tinfo ti = table_info_of(table);

	if (!ti.present)
		printf("absent\n");
	else
		printf("flags %u owner %u use %u\n", ti.flags, ti.owner, ti.use);
	return 0;
}

/* n ranges of 1, 4 or 8 addresses spread over 10.0.0.0/8 and beyond. */
static void big_set(struct fw_set *s, size_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		uint32_t lo = 0x0a000000u + i * 16;

		if (cvz_rangeset_add4(&s->elems, lo, lo + (i % 3 == 0 ? 0 : i % 3 == 1 ? 3 : 7)) < 0)
			die("out of memory", NULL);
	}
}

static void bench_delta(struct nft_conn *c, const struct cvz_rangeset *cur, size_t d)
{
	struct cvz_rangeset del = { 0 }, add = { 0 };
	char err[512], detail[700];
	double t0;
	int ret;

	/* half deleted, half new ranges between existing ones */
	for (size_t i = 0; i < d / 2; i++) {
		const struct cvz_range4 *r = &cur->v4[i * (cur->n4 / (d / 2))];

		cvz_rangeset_add4(&del, r->lo, r->hi);
		cvz_rangeset_add4(&add, r->lo + 10, r->lo + 12);
	}
	t0 = now_ms();
	ret = nft_conn_set_delta(c, (struct nft_bl_delta[NFT_BL_COUNT]){ { &del, &add } }, err,
				 sizeof(err));
	snprintf(detail, sizeof(detail), "%.1f ms %s", now_ms() - t0, ret ? err : "");
	expect(ret == 0, "bench: delta", detail);
	cvz_rangeset_free(&del);
	cvz_rangeset_free(&add);
}

/* One block and its unblock (198.51.100.7) in one pair, timed: the kernel
 * walks a whole rbtree set in each commit that touches it. */
static void bench_block(struct nft_conn *c, enum nft_blset pair, const char *what)
{
	struct cvz_rangeset one = { 0 }, none = { 0 };
	struct nft_bl_delta d[NFT_BL_COUNT] = { { 0 } };
	char err[512], detail[700];
	double t0, t1, t2;
	int ret;

	cvz_rangeset_add4(&one, 0xc6336407, 0xc6336407);
	d[pair] = (struct nft_bl_delta){ &none, &one };
	t0 = now_ms();
	ret = nft_conn_set_delta(c, d, err, sizeof(err));
	t1 = now_ms();
	d[pair] = (struct nft_bl_delta){ &one, &none };
	if (ret == 0)
		ret = nft_conn_set_delta(c, d, err, sizeof(err));
	t2 = now_ms();
	snprintf(detail, sizeof(detail), "add %.2f ms, delete %.2f ms %s", t1 - t0, t2 - t1,
		 ret ? err : "");
	expect(ret == 0, what, detail);
	cvz_rangeset_free(&one);
}

static int cmd_bench(size_t n, size_t d, uint32_t flags)
{
	struct nft_conn *c = conn();
	struct fw_table t;
	char err[512], detail[700];
	double t0;
	int ret;

	/* NFTD_BENCH_NOMON=1: no listener, so the kernel skips the events;
	 * NFTD_BENCH_NOPAUSE=1: a listener that stays subscribed */
	bool mon = !getenv("NFTD_BENCH_NOMON"), pause = mon && !getenv("NFTD_BENCH_NOPAUSE");

	if (mon && (ret = nft_monitor_open(&mon_fd)) < 0)
		die("nft_monitor_open", strerror(-ret));
	if (pause)
		nft_conn_set_monitor(c, mon_fd);
	build(&t, "", "");
	big_set(&t.sets[0], n);
	t0 = now_ms();
	ret = nft_conn_apply_table(c, &t, flags, err, sizeof(err));
	snprintf(detail, sizeof(detail), "%zu ranges, flags %u, monitor %s, %.0f ms %s", n, flags,
		 !mon ? "none" : pause ? "paused" : "listening", now_ms() - t0, ret ? err : "");
	expect(ret == 0, "bench: apply", detail);
	if (mon && !pause && n >= 100000) /* 2n element events: more than the monitor holds */
		expect_monitor(c, -ENOBUFS, NULL, "bench: monitor overrun after our apply");
	else if (mon)
		expect_monitor(c, 0, NULL, "bench: monitor after our apply");
	expect_verify(c, true, 0, NULL, "bench: verify (deep) right after apply: generation");
	run("nft add table inet other", NULL, 0);
	expect_verify(c, false, 0, NULL, "bench: verify (cheap) after an unrelated commit");
	expect_verify(c, true, 0, NULL, "bench: verify (deep) after an unrelated commit");
	bench_block(c, NFT_BL_LISTS, "bench: one range in blocklist_v4 (the big set)");
	bench_block(c, NFT_BL_DYNAMIC, "bench: one range in dynamic_v4");
	bench_delta(c, &t.sets[0].elems, d);
	if (mon)
		expect_monitor(c, 0, NULL, "bench: monitor after our delta");
	expect_verify(c, true, 0, NULL, "bench: verify (deep) after the delta: generation");
	run("nft delete table inet other", NULL, 0);
	expect_verify(c, true, 0, NULL, "bench: verify (deep) after an unrelated commit");
	fw_table_free(&t);
	nft_conn_close(c);
	if (mon)
		close(mon_fd);
	printf("bench: %d passed, %d failed\n", passes, failures);
	return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "suite"))
		return cmd_suite();
	if (argc == 3 && !strcmp(argv[1], "hold"))
		return cmd_hold((uint32_t)atoi(argv[2]));
	if (argc == 2 && !strcmp(argv[1], "retake"))
		return cmd_retake();
	if (argc >= 2 && !strcmp(argv[1], "info"))
		return cmd_info(argc > 2 ? argv[2] : "cloudviz");
	if (argc >= 2 && !strcmp(argv[1], "bench"))
		return cmd_bench(argc > 2 ? (size_t)atol(argv[2]) : 1000000,
				 argc > 3 ? (size_t)atol(argv[3]) : 10000,
				 argc > 4 ? (uint32_t)atoi(argv[4]) : OWNER_PERSIST);
	die("usage: nftd_selftest suite | hold FLAGS | retake | info [TABLE] | bench [N [D [FLAGS]]]",
	    NULL);
}
