/* The daemon: start-up, reconcile, timers, signals (see daemon.h).
 *
 * One reconcile path: every source of change (policy reload, block, unblock,
 * expiry, drift) ends in one transaction: the whole table when the rules
 * changed (or a repair forces it), otherwise only the changed set elements.
 * A block, unblock or expiry touches only the dynamic sets, whatever the
 * size of the lists (docs/blocklists.md). Nothing else talks to nft.c. */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "daemon.h"
#include "daemon_internal.h"
#include "jparse.h"
#include "render.h"

#define SAVE_DELAY_USEC (200 * 1000ULL)      /* coalesce bursts of changes */
#define VERIFY_INTERVAL_USEC (30 * 1000000ULL) /* periodic read-back */
#define REPAIR_DELAY_USEC (50 * 1000ULL)     /* let a burst of foreign events end */
#define POLICY_PREVIOUS "policy.previous.json"
#define POLICY_LAST_GOOD "policy.last-good.json" /* kept after a revert */
#define POLICY_FILE_MAX (64u << 20) /* the policy file and its copies in state_dir */
#define SEEN_IDS_MAX 10000 /* control API instruction ids remembered */

static int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

/* The current second rounded up: a TTL counted from it lasts at least as
 * long as asked, never a fraction of a second less. */
static int64_t now_ceil_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec + (ts.tv_nsec > 0);
}

static void sha256_hex(const char *buf, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned int n = 0;
	if (!EVP_Digest(buf, len, md, &n, EVP_sha256(), NULL))
		n = 0;
	for (unsigned i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", i < n ? md[i] : 0);
}

/* Loads, validates and fingerprints a policy; its bytes are kept (*text) so
 * a commit-confirmed reload can put exactly this policy back, even after the
 * file on disk was overwritten. Errors go to d. */
static int load_policy(const char *file, struct policy **out, char digest[65], char **text,
		       size_t *text_len, struct diags *d)
{
	char *buf;
	size_t len;
	int r = jp_read_file(file, "policy", POLICY_FILE_MAX, &buf, &len, d);
	if (r < 0)
		return r;
	r = policy_parse(file, buf, len, out, d);
	if (r < 0) {
		free(buf);
		return r;
	}
	sha256_hex(buf, len, digest);
	*text = buf;
	*text_len = len;
	return 0;
}

/* All errors of a diags list on one line, for the journal. */
static void diags_line(const struct diags *dg, char *out, size_t len)
{
	size_t off = 0;
	out[0] = '\0';
	for (size_t i = 0; i < dg->n && off + 1 < len; i++) {
		char one[1024];
		int w = snprintf(out + off, len - off, "%s%s", i ? "; " : "",
				 diag_format(&dg->v[i], one, sizeof(one)));
		if (w < 0)
			break;
		off += (size_t)w;
	}
	if (diags_more(dg) && off + 1 < len)
		snprintf(out + off, len - off, "; ... and %zu more errors (%zu in all)", diags_more(dg),
			 dg->total);
}

/* ---- status and persistence ------------------------------------------ */

void daemon_status_line(const struct daemon *d, char *buf, size_t len)
{
	size_t entries = d->bl.n + (d->policy ? d->policy->n_blocked : 0);
	snprintf(buf, len, "policy %.8s, %zu blocked, lockdown %s%s", d->digest, entries,
		 d->sx.lockdown ? "on" : "off",
		 d->sx.confirm_deadline ? ", reload awaiting confirmation" : "");
}

void daemon_notify_status(const struct daemon *d)
{
	char line[256];
	daemon_status_line(d, line, sizeof(line));
	sd_notifyf(0, "STATUS=%s", line);
}

static void journal_write_failed(const struct daemon *d, int r)
{
	struct audit_fields f = { .detail = strerror(-r) };
	audit(AE_STATE_WRITE_FAILED, &f, "Could not write the state to %s: %s", d->sd.path,
	      strerror(-r));
}

static int save_now(struct daemon *d)
{
	if (!d->state_dirty)
		return 0;
	int r = state_save(&d->sd, &d->bl, &d->sx);
	if (r < 0) {
		journal_write_failed(d, r);
		return r; /* stays dirty: the next change retries */
	}
	d->state_dirty = false;
	return 0;
}

static int on_save_timer(sd_event_source *s, uint64_t usec, void *ud)
{
	save_now(ud);
	return 0;
}

/* Marks the state changed; it is written once a burst of changes ends
 * (expiry, bulk sources). */
static void state_changed(struct daemon *d)
{
	d->state_dirty = true;
	daemon_notify_status(d);
	if (d->save_timer) {
		sd_event_source_set_time_relative(d->save_timer, SAVE_DELAY_USEC);
		sd_event_source_set_enabled(d->save_timer, SD_EVENT_ONESHOT);
	}
}

void daemon_state_dirty(struct daemon *d)
{
	state_changed(d);
}

/* Writes the state before the caller acknowledges: a block the operator was
 * told about must survive a crash a millisecond later. */
void daemon_state_changed_now(struct daemon *d)
{
	state_changed(d);
	save_now(d);
}

/* ---- reconcile --------------------------------------------------------- */

/* The normalised blocklist of policy p; built once per policy applied.
 * Carved by everything no block may cover (daemon_never_blocked()). */
static int view_of(const struct daemon *d, const struct policy *p, struct bl_view *v)
{
	struct cvz_prefix *safe = NULL;
	size_t n_safe = 0;
	if (!p)
		return -EINVAL;
	int r = daemon_never_blocked(d, p, &safe, &n_safe);
	if (r == 0)
		r = bl_view_init(v, p->blocked, p->n_blocked, safe, n_safe);
	free(safe);
	return r;
}

/* ---- the lockdown invariant ------------------------------------------------ */

bool daemon_lockdown_admits(const struct policy *p, bool lockdown, char *why, size_t len)
{
	return !lockdown || policy_lockdown_usable(p, why, len);
}

/* For the transitions nobody can be refused at (a start, a revert when the
 * confirmation window closes): lockdown goes off instead of locking
 * everyone out. Returns the lockdown to apply p with, and in why (len > 0)
 * the reason when that is off although d->sx.lockdown is on, else "". */
static bool lockdown_or_off(const struct daemon *d, const struct policy *p, char *why, size_t len)
{
	why[0] = '\0';
	return daemon_lockdown_admits(p, d->sx.lockdown, why, len) && d->sx.lockdown;
}

/* Once the kernel took the table without it: the journal says why. */
static void journal_lockdown_off(const char *digest, const char *when, const char *why)
{
	struct audit_fields f = { .detail = why, .digest = digest };
	if (why[0])
		audit(AE_LOCKDOWN_CHANGED, &f, "Lockdown disabled %s: %s", when, why);
}

/* The table without its blocklist elements, as text: two policies with the
 * same skeleton differ only in blocked addresses, so a reload between them
 * needs only a set delta. */
static char *table_skeleton(const struct fw_table *t, uint32_t flags)
{
	struct fw_table bare = *t;
	struct fw_set *sets = calloc(t->n_sets ? t->n_sets : 1, sizeof(*sets));
	char *text = NULL;
	size_t len = 0;
	FILE *f = sets ? open_memstream(&text, &len) : NULL;
	if (!f) {
		free(sets);
		return NULL;
	}
	for (size_t i = 0; i < t->n_sets; i++) {
		sets[i] = t->sets[i];
		if (sets[i].kind == FW_SET_ADDR)
			memset(&sets[i].elems, 0, sizeof(sets[i].elems));
	}
	bare.sets = sets;
	fprintf(f, "flags %u\n", flags);
	int r = render_table(&bare, f, false);
	fclose(f);
	free(sets);
	if (r < 0) {
		free(text);
		return NULL;
	}
	return text;
}

/* Takes dynamic as what the kernel's dynamic sets hold after a successful
 * change. */
static void kernel_now(struct daemon *d, struct cvz_rangeset *dynamic, uint64_t sent)
{
	cvz_rangeset_free(&d->dynamic);
	d->dynamic = *dynamic;
	memset(dynamic, 0, sizeof(*dynamic));
	d->elements_sent += sent;
}

/* Sends, in one transaction, the ranges that differ between the kernel's
 * blocklist sets and view's lists (NULL: the lists are unchanged) and
 * dynamic; on success the kernel's copy of dynamic takes it. */
static int send_delta(struct daemon *d, const struct bl_view *view, struct cvz_rangeset *dynamic,
		      char *err, size_t len)
{
	struct cvz_rangeset del[NFT_BL_COUNT] = { { 0 } }, add[NFT_BL_COUNT] = { { 0 } };
	struct nft_bl_delta delta[NFT_BL_COUNT];
	size_t n = 0;
	int r = view ? rangeset_diff(&d->view.lists, &view->lists, &del[NFT_BL_LISTS],
				     &add[NFT_BL_LISTS])
		     : 0;
	if (r == 0)
		r = rangeset_diff(&d->dynamic, dynamic, &del[NFT_BL_DYNAMIC], &add[NFT_BL_DYNAMIC]);
	for (int k = 0; k < NFT_BL_COUNT; k++) {
		delta[k] = (struct nft_bl_delta){ &del[k], &add[k] };
		n += del[k].n4 + del[k].n6 + add[k].n4 + add[k].n6;
	}
	if (r < 0)
		snprintf(err, len, "%s", strerror(-r));
	else if (n)
		r = nft_conn_set_delta(d->nft, delta, err, len);
	for (int k = 0; k < NFT_BL_COUNT; k++) {
		cvz_rangeset_free(&del[k]);
		cvz_rangeset_free(&add[k]);
	}
	if (r == 0)
		kernel_now(d, dynamic, n);
	return r;
}

/* Makes the kernel hold policy p plus every live entry. With force, or when
 * the rules differ from what the kernel holds, the whole table is replaced in
 * one transaction; otherwise only the changed set elements are sent. On
 * success p's view becomes d->view: its lists are what blocklist_v4/_v6
 * hold from then on. */
static int apply_with(struct daemon *d, const struct policy *p, bool lockdown, bool force,
		      char *err, size_t len)
{
	struct bl_change none;
	bl_change_init(&none, &d->bl); /* allocates nothing */
	return daemon_apply_policy_next(d, p, &none, lockdown, force, err, len);
}

int daemon_apply_policy_next(struct daemon *d, const struct policy *p, const struct bl_change *c,
			     bool lockdown, bool force, char *err, size_t len)
{
	struct cvz_rangeset dyn = { 0 };
	struct fw_table t;
	struct bl_view view;
	/* the last line of defence of the invariant: every path to the
	   kernel passes here */
	if (!daemon_lockdown_admits(p, lockdown, err, len))
		return -EPERM;
	int r = view_of(d, p, &view);
	if (r == 0) {
		r = bl_view_dynamic_next(&view, c, &dyn);
		if (r < 0)
			bl_view_free(&view);
	}
	if (r < 0) {
		snprintf(err, len, "%s", strerror(-r));
		return r;
	}
	struct compile_opts co = { .lists = &view.lists, .dynamic = &dyn, .lockdown = lockdown };
	r = policy_compile_opts(p, &co, &t);
	if (r < 0) {
		snprintf(err, len, "cannot compile: %s", strerror(-r));
		cvz_rangeset_free(&dyn);
		bl_view_free(&view);
		return r;
	}
	char *skel = table_skeleton(&t, d->table_flags);
	bool full = force || !d->kernel_applied || !skel || !d->skeleton || strcmp(skel, d->skeleton);
	if (!full) {
		free(skel);
		r = send_delta(d, &view, &dyn, err, len);
	} else {
		r = nft_conn_apply_table(d->nft, &t, d->table_flags, err, len);
		if (r == 0) {
			free(d->skeleton);
			d->skeleton = skel;
			d->kernel_applied = true;
			kernel_now(d, &dyn, view.lists.n4 + view.lists.n6 + dyn.n4 + dyn.n6);
		} else {
			free(skel);
		}
	}
	fw_table_free(&t);
	cvz_rangeset_free(&dyn);
	if (r == 0) { /* the caller makes p the policy in force */
		bl_view_free(&d->view);
		d->view = view;
		d->sx.lockdown = lockdown;
	} else {
		bl_view_free(&view);
	}
	if (r == 0 && full)
		malloc_trim(0); /* see release_memory() */
	return r;
}

int daemon_apply_policy(struct daemon *d, const struct policy *p, bool force, char *err,
			size_t len)
{
	return apply_with(d, p, d->sx.lockdown, force, err, len);
}

/* A big list leaves tens of MB of freed batch pages, copies and the old
 * policy in the heap after an apply or reload: give them back instead of
 * idling on them. */
static void release_memory(void)
{
	malloc_trim(0);
}

static int apply_full(struct daemon *d, const struct policy *p, char *err, size_t len)
{
	return daemon_apply_policy(d, p, true, err, len);
}

/* For a staged change of the runtime entries: recomputes the dynamic sets
 * whole and sends what changed. The lists' sets are not touched, so the
 * cost does not grow with their size (docs/blocklists.md). */
static int sync_dynamic_next(struct daemon *d, const struct bl_change *c, char *err, size_t len)
{
	struct cvz_rangeset want;
	/* only refreshes of live entries (a repeated block): the sets, which
	   hold prefixes alone, are as they are */
	if (c->gone.n == 0 && c->n_shadow == c->set.n && c->set.n)
		return 0;
	int r = bl_view_dynamic_next(&d->view, c, &want);
	if (r < 0) {
		snprintf(err, len, "%s", strerror(-r));
		return r;
	}
	r = send_delta(d, NULL, &want, err, len);
	cvz_rangeset_free(&want);
	return r;
}

/* Compute, send, swap (STYLE.md rule 16): n's change is made current only
 * after the kernel took it, and, with n->save_first, only after the state
 * as it will be was saved: a change acknowledged is a change saved, and a
 * change that cannot be saved is refused with nothing changed. If the
 * kernel then refuses, the file is written back from the live state. The
 * live blocklist and state are never modified and rolled back. */
int daemon_commit(struct daemon *d, struct daemon_next *n, char *err, size_t len)
{
	int r = bl_change_reserve(&n->bl, &d->bl);
	if (r < 0) {
		snprintf(err, len, "out of memory");
		return r;
	}
	if (n->save_first) {
		r = state_save_next(&d->sd, &n->bl, &n->sx, n->ids, n->n_ids);
		if (r < 0) {
			struct audit_fields f = { .detail = strerror(-r) };
			audit(AE_STATE_WRITE_FAILED, &f,
			      "Could not write the state to %s: %s; the change was refused",
			      d->sd.path, strerror(-r));
			snprintf(err, len, "cannot save the state in %s: %s; nothing was changed",
				 d->sd.path, strerror(-r));
			return r;
		}
	}
	if (n->sx.lockdown != d->sx.lockdown)
		r = daemon_apply_policy_next(d, d->policy, &n->bl, n->sx.lockdown, false, err, len);
	else
		r = sync_dynamic_next(d, &n->bl, err, len);
	if (r < 0) {
		n->kernel_refused = true;
		if (n->save_first) { /* the file holds the refused change: put the live state back */
			d->state_dirty = true;
			save_now(d);
		}
		return r;
	}
	for (size_t i = 0; n->on_gone && i < n->bl.gone.n; i++) {
		const struct bl_entry *g = &n->bl.gone.v[i];
		n->on_gone(bl_find(&d->bl, &g->prefix, (enum bl_origin)g->origin), n->on_gone_arg);
	}
	bl_change_commit(&n->bl, &d->bl);
	d->sx.lockdown = n->sx.lockdown;
	memcpy(d->sx.cursor, n->sx.cursor, sizeof(d->sx.cursor));
	memcpy(d->sx.detect_cursor, n->sx.detect_cursor, sizeof(d->sx.detect_cursor));
	d->sx.detect_cursor_us = n->sx.detect_cursor_us;
	d->sx.offenders = n->sx.offenders;
	d->sx.n_offenders = n->sx.n_offenders;
	for (size_t i = 0; i < n->n_ids; i++)
		if (d->seen && instr_seen_add(d->seen, n->ids[i]) < 0)
			break; /* out of memory: a replay would only re-apply the same */
	if (n->save_first) {
		d->state_dirty = false;
		daemon_notify_status(d);
	} else {
		state_changed(d);
	}
	daemon_arm_expiry(d);
	return 0;
}

void daemon_next_init(struct daemon_next *n, const struct daemon *d)
{
	memset(n, 0, sizeof(*n));
	bl_change_init(&n->bl, &d->bl);
	n->sx = d->sx;
	n->save_first = true;
}

void daemon_next_free(struct daemon_next *n)
{
	bl_change_free(&n->bl);
}

/* ---- expiry ------------------------------------------------------------ */

/* not_before: see bl_expiry_timer_usec(); never a time already past after
 * an expiry run, so the timer cannot fire in a loop. */
static void arm_expiry_from(struct daemon *d, int64_t not_before)
{
	uint64_t usec;
	if (bl_expiry_timer_usec(&d->bl, not_before, &usec) < 0) {
		sd_event_source_set_enabled(d->expiry_timer, SD_EVENT_OFF);
		return;
	}
	/* wall clock, because expiry times are absolute and survive restarts */
	sd_event_source_set_time(d->expiry_timer, usec);
	sd_event_source_set_enabled(d->expiry_timer, SD_EVENT_ONESHOT);
}

void daemon_arm_expiry(struct daemon *d)
{
	arm_expiry_from(d, now_s());
}

static void journal_expired(const struct bl_entry *e, void *arg)
{
	(void)arg;
	char addr[CVZ_PREFIX_STRLEN];
	struct audit_fields f = {
		.addr = cvz_prefix_format(&e->prefix, addr, sizeof(addr)),
		.origin = bl_origin_name((enum bl_origin)e->origin),
		.reason = e->reason,
		.incident = e->incident,
	};
	audit(AE_BLOCK_EXPIRED, &f, "Block of %s (%s) expired", addr, f.origin);
}

/* Expired entries leave the blocklist only once the kernel dropped them;
 * if it refuses, they stay (and are journaled) and the removal is tried
 * again a second later. Returns 0 or a negative errno. */
static int expire_now(struct daemon *d)
{
	char err[512];
	int64_t now = now_s();
	struct daemon_next n;
	daemon_next_init(&n, d);
	n.save_first = false; /* saved once the burst ends, as before */
	n.on_gone = journal_expired;
	int r = 0;
	for (size_t i = 0; r == 0 && i < d->bl.n; i++) {
		const struct bl_entry *e = &d->bl.v[i];
		if (e->expires && e->expires <= now)
			r = bl_change_remove(&n.bl, &e->prefix, (enum bl_origin)e->origin);
	}
	if (r == 0 && bl_change_empty(&n.bl)) {
		daemon_next_free(&n);
		return 0;
	}
	if (r < 0)
		snprintf(err, sizeof(err), "%s", strerror(-r));
	else
		r = daemon_commit(d, &n, err, sizeof(err));
	if (r < 0) {
		struct audit_fields f = { .detail = err };
		audit(AE_KERNEL_ERROR, &f, "Could not remove expired blocks: %s", err);
	}
	daemon_next_free(&n);
	return r;
}

static int on_expiry_timer(sd_event_source *s, uint64_t usec, void *ud)
{
	struct daemon *d = ud;
	if (expire_now(d) < 0) { /* the entries are still there: retry shortly */
		sd_event_source_set_time(s, (uint64_t)(now_s() + 1) * 1000000ULL);
		sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
		return 0;
	}
	arm_expiry_from(d, now_s() + 1);
	return 0;
}

/* ---- block / unblock ----------------------------------------------------- */

static void actor_fields(struct audit_fields *f, const struct actor *a)
{
	if (a && a->known) {
		f->has_actor = true;
		f->actor_uid = a->uid;
		f->actor_pid = a->pid;
	}
}

int daemon_block(struct daemon *d, const struct cvz_prefix *p, enum bl_origin origin,
		 uint64_t ttl, const char *raw_reason, const char *raw_incident,
		 const struct actor *a, char *err, size_t errlen)
{
	char addr[CVZ_PREFIX_STRLEN], why[256], rbuf[BL_REASON_MAX], ibuf[BL_INCIDENT_MAX];
	/* stored sanitized: the reason shows up again in list, state and reports */
	const char *reason = raw_reason ? (audit_sanitize(raw_reason, rbuf, sizeof(rbuf)), rbuf) : NULL;
	const char *incident =
		raw_incident ? (audit_sanitize(raw_incident, ibuf, sizeof(ibuf)), ibuf) : NULL;
	struct audit_fields f = {
		.addr = cvz_prefix_format(p, addr, sizeof(addr)),
		.origin = bl_origin_name(origin),
		.reason = reason,
		.incident = incident,
		.has_ttl = ttl > 0,
		.ttl = ttl,
	};
	actor_fields(&f, a);
	const char *no = bl_refusal(p, d->policy->safelist, d->policy->n_safelist, why, sizeof(why));
	if (!no)
		no = daemon_guard_refusal(d, p, why, sizeof(why));
	if (no) {
		snprintf(err, errlen, "refused: %s", no);
		f.detail = no;
		audit(AE_BLOCK_REJECTED, &f, "Refused to block %s: %s", addr, no);
		return -EPERM;
	}
	/* the live entry, if any, stays as it is unless the change is taken */
	struct daemon_next n;
	daemon_next_init(&n, d);
	int r = bl_change_add(&n.bl, p, origin, ttl, reason, incident, now_ceil_s());
	if (r == -ENOSPC) {
		daemon_next_free(&n);
		snprintf(err, errlen, "refused: %zu %s entries already, the limit (unblock some first)",
			 bl_origin_max(origin), bl_origin_name(origin));
		f.detail = err;
		audit(AE_BLOCK_REJECTED, &f, "Refused to block %s: %s", addr, err);
		return r;
	}
	if (r < 0)
		snprintf(err, errlen, r == -ERANGE ? "ttl %llu is out of range (at most %lld seconds)"
						   : "out of memory",
			 (unsigned long long)ttl, (long long)CVZ_TTL_MAX);
	else
		r = daemon_commit(d, &n, err, errlen);
	daemon_next_free(&n);
	if (r < 0) {
		f.detail = err;
		if (n.kernel_refused)
			audit(AE_KERNEL_ERROR, &f, "Could not block %s: %s", addr, err);
		else
			audit(AE_BLOCK_REJECTED, &f, "Refused to block %s: %s", addr, err);
		return r;
	}
	audit(AE_ADDR_BLOCKED, &f, "Blocked %s (%s%s%s)", addr, f.origin, reason ? ": " : "",
	      reason ? reason : "");
	return 0;
}

int daemon_unblock(struct daemon *d, const struct cvz_prefix *p, enum bl_origin origin,
		   const struct actor *a, char *err, size_t errlen)
{
	char addr[CVZ_PREFIX_STRLEN];
	struct audit_fields f = {
		.addr = cvz_prefix_format(p, addr, sizeof(addr)),
		.origin = bl_origin_name(origin),
	};
	actor_fields(&f, a);
	struct daemon_next n;
	daemon_next_init(&n, d);
	int r = bl_change_remove(&n.bl, p, origin);
	if (r == -ENOENT) {
		daemon_next_free(&n);
		snprintf(err, errlen, "%s is not blocked by origin %s", addr, f.origin);
		return r;
	}
	if (r < 0)
		snprintf(err, errlen, "out of memory");
	else
		r = daemon_commit(d, &n, err, errlen);
	daemon_next_free(&n);
	if (r < 0) {
		f.detail = err;
		if (n.kernel_refused) /* else state_write_failed was journaled */
			audit(AE_KERNEL_ERROR, &f, "Could not unblock %s: %s", addr, err);
		return r;
	}
	audit(AE_ADDR_UNBLOCKED, &f, "Unblocked %s (%s)", addr, f.origin);
	return 0;
}

int daemon_set_lockdown(struct daemon *d, bool on, const struct actor *a, char *err,
			size_t errlen)
{
	char why[512];
	struct audit_fields f = { .origin = "operator", .digest = d->digest };
	actor_fields(&f, a);
	if (d->sx.lockdown == on)
		return 0;
	if (!daemon_lockdown_admits(d->policy, on, why, sizeof(why))) {
		snprintf(err, errlen, "refused: %s", why);
		f.detail = why;
		audit(AE_POLICY_REJECTED, &f, "Refused to enable lockdown: %s", why);
		return -EPERM;
	}
	/* saved, then sent, then made current, like every runtime change */
	struct daemon_next n;
	daemon_next_init(&n, d);
	n.sx.lockdown = on;
	int r = daemon_commit(d, &n, err, errlen);
	daemon_next_free(&n);
	if (r < 0) {
		f.detail = err;
		if (n.kernel_refused) /* else state_write_failed was journaled */
			audit(AE_KERNEL_ERROR, &f, "Could not %s lockdown: %s",
			      on ? "enable" : "disable", err);
		return r;
	}
	audit(AE_LOCKDOWN_CHANGED, &f, "Lockdown %s by the local operator (uid %u)",
	      on ? "enabled" : "disabled", a && a->known ? a->uid : 0);
	return 0;
}

/* ---- reload and commit-confirmed -----------------------------------------
 *
 * The files in state_dir and the state that names them are written in an
 * order that leaves the last confirmed policy in force whenever the agent
 * dies, at any step (docs/config.md, "Commit-confirmed"):
 *   open:    policy.previous.json, then state.json (window, both digests),
 *            then the kernel;
 *   revert:  policy.last-good.json, the kernel, then state.json (reverted),
 *            then policy.previous.json is removed;
 *   confirm: state.json (no window), then the copies are removed.
 * A file is only believed when state.json records its sha256, and the
 * window or the revert only when the policy file still holds the policy
 * they were about (see restore_confirm_window, keep_last_good). */

/* A policy kept in state_dir, read through the checked directory and
 * believed only when its bytes are the ones state.json recorded (want). */
static int load_stored_policy(struct daemon *d, const char *name, const char *want,
			      struct policy **out, char **text, size_t *len, char *detail,
			      size_t dlen)
{
	_cleanup_(freep) char *buf = NULL;
	char path[4200], digest[65];
	size_t n = 0;
	if (!want[0]) {
		snprintf(detail, dlen, "state.json records no digest for %s/%s", d->sd.path, name);
		return -EBADMSG;
	}
	int r = statedir_read(&d->sd, name, POLICY_FILE_MAX, &buf, &n, detail, dlen);
	if (r < 0)
		return r;
	sha256_hex(buf, n, digest);
	snprintf(path, sizeof(path), "%s/%s", d->sd.path, name);
	if (strcmp(digest, want) != 0) {
		snprintf(detail, dlen, "%s: its sha256 %.12s is not the %.12s recorded in %s", path,
			 digest, want, STATE_FILE);
		return -EBADMSG;
	}
	struct diags dg = { 0 };
	r = policy_parse(path, buf, n, out, &dg);
	if (r < 0)
		diags_line(&dg, detail, dlen);
	diags_free(&dg);
	if (r < 0)
		return r;
	*text = TAKE_PTR(buf);
	*len = n;
	return 0;
}

/* Writes nx with the runtime entries and makes it current only once it is
 * on disk. */
static int save_extra(struct daemon *d, const struct state_extra *nx)
{
	int r = state_save(&d->sd, &d->bl, nx);
	if (r < 0) {
		journal_write_failed(d, r);
		return r;
	}
	d->sx = *nx;
	d->state_dirty = false;
	daemon_notify_status(d);
	return 0;
}

/* Removes the policy copies the state on disk no longer names. */
static void tidy_state_dir(struct daemon *d)
{
	if (d->state_dirty)
		return; /* the file on disk may still name them */
	if (!d->sx.confirm_deadline)
		statedir_remove(&d->sd, POLICY_PREVIOUS);
	if (!d->sx.reverted_digest[0])
		statedir_remove(&d->sd, POLICY_LAST_GOOD);
}

static void close_window(struct state_extra *x)
{
	x->confirm_deadline = 0;
	x->trial_digest[0] = '\0';
	x->previous_digest[0] = '\0';
}

static void drop_previous(struct daemon *d)
{
	policy_free(d->previous);
	d->previous = NULL;
	free(d->previous_text);
	d->previous_text = NULL;
	sd_event_source_set_enabled(d->confirm_timer, SD_EVENT_OFF);
}

static void revert_now(struct daemon *d)
{
	char err[1024];
	struct audit_fields f = { .digest = d->previous_digest };
	/* the policy file still holds the reverted policy: keep the restored
	   one's bytes before the state says so, so a restart never applies the
	   reverted one without a window. Harmless if we die right after: no
	   state names the copy yet, or it names these same bytes. */
	int r = statedir_write_buf(&d->sd, POLICY_LAST_GOOD, d->previous_text, d->previous_len);
	if (r < 0) {
		journal_write_failed(d, r);
		return; /* keep the window open: the timer retries */
	}
	/* a revert is not refused: it is what keeps the node reachable */
	char why[512];
	bool lockdown = lockdown_or_off(d, d->previous, why, sizeof(why));
	r = apply_with(d, d->previous, lockdown, false, err, sizeof(err));
	if (r < 0) {
		f.detail = err;
		audit(AE_KERNEL_ERROR, &f, "Could not restore the previous policy: %s", err);
		return; /* keep the window open: the timer retries */
	}
	journal_lockdown_off(d->previous_digest,
			     "by the revert: the previous policy's lockdown would admit nobody", why);
	struct state_extra nx = d->sx; /* with the lockdown the kernel now holds */
	close_window(&nx);
	memcpy(nx.reverted_digest, d->digest, sizeof(d->digest));
	memcpy(nx.last_good_digest, d->previous_digest, sizeof(d->previous_digest));
	struct policy *tmp = d->policy;
	d->policy = d->previous;
	d->previous = tmp;
	char *text = d->policy_text;
	d->policy_text = d->previous_text;
	d->policy_len = d->previous_len;
	d->previous_text = text;
	memcpy(d->digest, d->previous_digest, sizeof(d->digest));
	audit(AE_POLICY_REVERTED, &f,
	      "Reload was not confirmed in time: restored the previous policy %.12s", d->digest);
	drop_previous(d);
	if (save_extra(d, &nx) < 0) {
		/* the kernel holds the restored policy; the file on disk still
		   names the closed window, so a restart reverts again: retry */
		d->sx = nx;
		state_changed(d);
		return;
	}
	tidy_state_dir(d);
}

static int on_confirm_timer(sd_event_source *s, uint64_t usec, void *ud)
{
	struct daemon *d = ud;
	revert_now(d);
	if (d->previous) { /* the revert failed: try again shortly */
		sd_event_source_set_time_relative(s, 1000000ULL);
		sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
	}
	return 0;
}

static void arm_confirm(struct daemon *d)
{
	int64_t left = d->sx.confirm_deadline - now_s();
	sd_event_source_set_time_relative(d->confirm_timer,
					  left > 0 ? (uint64_t)left * 1000000ULL : 1);
	sd_event_source_set_enabled(d->confirm_timer, SD_EVENT_ONESHOT);
}

static int reload_rejected(const char *what, const char *detail, const struct actor *a, char *err,
			   size_t errlen, int r)
{
	struct audit_fields f = { .detail = detail };
	actor_fields(&f, a);
	snprintf(err, errlen, "%s rejected, the running firewall is unchanged: %s", what, detail);
	audit(AE_POLICY_REJECTED, &f, "%s rejected, the running firewall is unchanged: %s", what,
	      detail);
	return r;
}

/* Records the window before the kernel sees the trial policy (digest):
 * from here on a crash restarts into the window, which reverts. */
static int open_window(struct daemon *d, const char *digest, uint64_t confirm_within,
		       char *detail, size_t dlen)
{
	int r = statedir_write_buf(&d->sd, POLICY_PREVIOUS, d->policy_text, d->policy_len);
	struct state_extra nx = d->sx;
	nx.confirm_deadline = now_s() + (int64_t)confirm_within;
	memcpy(nx.trial_digest, digest, sizeof(nx.trial_digest));
	memcpy(nx.previous_digest, d->digest, sizeof(nx.previous_digest));
	if (r == 0)
		r = save_extra(d, &nx);
	if (r < 0)
		snprintf(detail, dlen, "cannot keep a copy of the running policy in %s: %s",
			 d->sd.path, strerror(-r));
	return r;
}

int daemon_reload(struct daemon *d, uint64_t confirm_within, const struct actor *a, char *err,
		  size_t errlen)
{
	char detail[2048], digest[65], *text = NULL;
	size_t text_len = 0;
	struct diags dg = { 0 };
	struct agent_config *cfg = NULL;
	struct policy *p = NULL;
	/* a confirmation is the operator's explicit word: a SIGHUP from a
	   deploy hook must neither confirm the trial nor stack another one */
	if (d->sx.confirm_deadline) {
		snprintf(detail, sizeof(detail),
			 "the reload of policy %.12s is awaiting confirmation for %llds more: confirm it (cloudviz-agent confirm) or let it revert, then reload",
			 d->digest, (long long)(d->sx.confirm_deadline - now_s()));
		return reload_rejected("Reload", detail, a, err, errlen, -EBUSY);
	}
	int r = config_load(d->config_path, &cfg, &dg);
	if (r == 0)
		r = load_policy(cfg->policy, &p, digest, &text, &text_len, &dg);
	if (r < 0) {
		diags_line(&dg, detail, sizeof(detail));
		diags_free(&dg);
		config_free(cfg);
		return reload_rejected("Reload", detail, a, err, errlen, r);
	}
	diags_free(&dg);
	if (!confirm_within && d->sx.reverted_digest[0] && strcmp(digest, d->sx.reverted_digest) == 0) {
		snprintf(detail, sizeof(detail),
			 "%s holds the policy %.12s that was not confirmed and was reverted; fix the file, or try it again with reload --confirm-within",
			 cfg->policy, digest);
		policy_free(p);
		free(text);
		config_free(cfg);
		return reload_rejected("Reload", detail, a, err, errlen, -EPERM);
	}
	/* the operator is there to be told: refuse, rather than switch lockdown
	   off behind their back or lock everyone out */
	if (!daemon_lockdown_admits(p, d->sx.lockdown, detail, sizeof(detail))) {
		char why[2200];
		snprintf(why, sizeof(why),
			 "lockdown is on and the new policy's lockdown would admit nobody (%s); switch it off first (cloudviz-agent lockdown off) or fix the policy",
			 detail);
		policy_free(p);
		free(text);
		config_free(cfg);
		return reload_rejected("Reload", why, a, err, errlen, -EPERM);
	}
	daemon_protect_refresh(d, cfg); /* the apply below carves by them */
	if (confirm_within && (r = open_window(d, digest, confirm_within, err, errlen)) < 0) {
		policy_free(p);
		free(text);
		config_free(cfg);
		return r;
	}
	r = daemon_apply_policy(d, p, false, detail, sizeof(detail));
	if (r < 0) {
		policy_free(p);
		free(text);
		config_free(cfg);
		if (confirm_within) { /* nothing changed: take the window back */
			struct state_extra nx = d->sx;
			close_window(&nx);
			if (save_extra(d, &nx) == 0)
				tidy_state_dir(d);
		}
		return reload_rejected("Policy", detail, a, err, errlen, r);
	}
	if (confirm_within) {
		d->previous = d->policy;
		d->previous_text = d->policy_text;
		d->previous_len = d->policy_len;
		memcpy(d->previous_digest, d->digest, sizeof(d->digest));
		arm_confirm(d);
	} else {
		policy_free(d->policy);
		free(d->policy_text);
		/* a policy other than the reverted one is in force for good */
		d->sx.reverted_digest[0] = d->sx.last_good_digest[0] = '\0';
	}
	d->policy = p;
	d->policy_text = text;
	d->policy_len = text_len;
	memcpy(d->digest, digest, sizeof(d->digest));
	/* socket and state_dir changes need a restart; the rest applies now */
	free(cfg->socket);
	free(cfg->state_dir);
	cfg->socket = strdup(d->cfg->socket);
	cfg->state_dir = strdup(d->cfg->state_dir);
	daemon_control_reload(d, cfg);
	daemon_detect_reload(d, cfg);
	config_free(d->cfg);
	d->cfg = cfg;
	release_memory();
	struct audit_fields f = { .digest = d->digest };
	actor_fields(&f, a);
	if (confirm_within)
		audit(AE_POLICY_APPLIED, &f,
		      "Applied policy %.12s from %s; it is reverted unless confirmed within %llus",
		      d->digest, d->cfg->policy, (unsigned long long)confirm_within);
	else
		audit(AE_POLICY_APPLIED, &f, "Applied policy %.12s from %s", d->digest, d->cfg->policy);
	daemon_state_changed_now(d);
	tidy_state_dir(d);
	return 0;
}

int daemon_confirm(struct daemon *d, const struct actor *a, char *err, size_t errlen)
{
	if (!d->sx.confirm_deadline || !d->previous) {
		snprintf(err, errlen, "no reload is awaiting confirmation");
		return -ENOENT;
	}
	/* recorded first: until state.json says so, a restart still reverts */
	struct state_extra nx = d->sx;
	close_window(&nx);
	nx.reverted_digest[0] = nx.last_good_digest[0] = '\0';
	int r = save_extra(d, &nx);
	if (r < 0) {
		snprintf(err, errlen,
			 "cannot record the confirmation in %s: %s; the reload is still awaiting confirmation",
			 d->sd.path, strerror(-r));
		return r;
	}
	struct audit_fields f = { .digest = d->digest };
	actor_fields(&f, a);
	audit(AE_POLICY_CONFIRMED, &f, "Policy %.12s confirmed", d->digest);
	drop_previous(d);
	tidy_state_dir(d);
	return 0;
}

/* ---- drift repair ---------------------------------------------------------- */

static void repair_soon(struct daemon *d)
{
	sd_event_source_set_time_relative(d->repair_timer, REPAIR_DELAY_USEC);
	sd_event_source_set_enabled(d->repair_timer, SD_EVENT_ONESHOT);
}

static void repair_now(struct daemon *d, const char *what)
{
	char err[1024];
	int r = apply_full(d, d->policy, err, sizeof(err));
	struct audit_fields f = { .digest = d->digest, .detail = what };
	if (r < 0) {
		f.detail = err;
		audit(AE_KERNEL_ERROR, &f, "Could not repair table inet cloudviz: %s", err);
		repair_soon(d); /* keep trying */
		return;
	}
	audit(AE_RULESET_DRIFT_REPAIRED, &f, "Restored table inet cloudviz after a foreign change: %s",
	      what);
}

static char drift_detail[512];

static int on_repair_timer(sd_event_source *s, uint64_t usec, void *ud)
{
	repair_now(ud, drift_detail[0] ? drift_detail : "changed by another process");
	drift_detail[0] = '\0';
	return 0;
}

static int on_monitor(sd_event_source *s, int fd, uint32_t revents, void *ud)
{
	struct daemon *d = ud;
	char detail[512] = "";
	int r = nft_monitor_read(fd, nft_conn_portid(d->nft), detail, sizeof(detail));
	if (r == -ENOBUFS) /* events were lost: find out by reading back */
		r = nft_conn_verify(d->nft, true, detail, sizeof(detail));
	if (r > 0) {
		if (!drift_detail[0])
			snprintf(drift_detail, sizeof(drift_detail), "%s", detail);
		repair_soon(d);
	}
	return 0;
}

static int on_verify_timer(sd_event_source *s, uint64_t usec, void *ud)
{
	struct daemon *d = ud;
	char detail[512] = "";
	if (nft_conn_verify(d->nft, false, detail, sizeof(detail)) > 0) {
		snprintf(drift_detail, sizeof(drift_detail), "%s", detail);
		repair_soon(d);
	}
	sd_event_source_set_time_relative(s, VERIFY_INTERVAL_USEC);
	sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
	return 0;
}

/* ---- signals ---------------------------------------------------------------- */

static int on_sigterm(sd_event_source *s, const struct signalfd_siginfo *si, void *ud)
{
	struct daemon *d = ud;
	audit(AE_AGENT_STOPPING, NULL,
	      "Stopping on signal %u; table inet cloudviz stays in force", si->ssi_signo);
	sd_notify(0, "STOPPING=1");
	save_now(d);
	return sd_event_exit(sd_event_source_get_event(s), 0);
}

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *ud)
{
	char err[2048];
	struct actor a = { .known = true, .uid = si->ssi_uid, .pid = (int32_t)si->ssi_pid };
	sd_notify(0, "RELOADING=1");
	daemon_reload(ud, 0, &a, err, sizeof(err));
	sd_notify(0, "READY=1");
	daemon_notify_status(ud);
	return 0;
}

/* ---- start-up ----------------------------------------------------------------- */

static int startup_failed(const char *what, const char *detail)
{
	struct audit_fields f = { .detail = detail };
	fprintf(stderr, "cloudviz-agent: %s: %s\n", what, detail);
	audit(AE_POLICY_REJECTED, &f, "Not starting: %s: %s", what, detail);
	return 1;
}

/* Restores runtime entries; a corrupt file is moved aside and the agent goes
 * on from the policy alone (no crash loop). */
static void restore_state(struct daemon *d)
{
	char err[1024], moved[4200];
	int r = state_load(&d->sd, &d->bl, &d->sx, err, sizeof(err), moved, sizeof(moved));
	struct audit_fields f = { .detail = err };
	if (r == -EBADMSG)
		audit(AE_STATE_CORRUPT, &f, "State file is corrupt or not trusted (%s); moved to %s, starting from the policy alone",
		      err, moved);
	else if (r < 0 && r != -ENOENT)
		audit(AE_STATE_CORRUPT, &f, "State file is unreadable (%s); starting from the policy alone", err);
	else if (r == 0)
		audit(AE_STATE_RESTORED, NULL, "Restored %zu blocklist entries from %s/%s", d->bl.n,
		      d->sd.path, STATE_FILE);
	if (r == 0 && d->sx.dropped) {
		f.detail = d->sx.dropped_why;
		audit(AE_STATE_CORRUPT, &f,
		      "Left out %zu entries of %s/%s with impossible times, kept the rest; first: %s",
		      d->sx.dropped, d->sd.path, STATE_FILE, d->sx.dropped_why);
	}
	bl_expire(&d->bl, now_s(), journal_expired, NULL);
}

/* A reload that was awaiting confirmation when the agent stopped. The
 * window is believed only when the policy file still holds the policy put
 * on trial: a changed file is the operator's newer word and wins, and a
 * window not bound to both policies by digest (planted, or written by an
 * older version) never overrides the file. */
static void restore_confirm_window(struct daemon *d)
{
	char detail[2048];
	const char *why = NULL;
	if (!d->sx.confirm_deadline)
		return;
	if (!d->sx.trial_digest[0] || !d->sx.previous_digest[0])
		why = "it does not record the digests of the policies it is about";
	else if (strcmp(d->digest, d->sx.trial_digest) != 0)
		why = "the policy file changed since the window opened";
	int r = why ? 0
		    : load_stored_policy(d, POLICY_PREVIOUS, d->sx.previous_digest, &d->previous,
					 &d->previous_text, &d->previous_len, detail,
					 sizeof(detail));
	if (why || r < 0) {
		struct audit_fields f = { .digest = d->digest, .detail = why ? why : detail };
		audit(AE_STATE_CORRUPT, &f,
		      "Not resuming the confirmation window recorded in %s/%s (%s): running the policy file %s (%.12s)",
		      d->sd.path, STATE_FILE, f.detail, d->cfg->policy, d->digest);
		close_window(&d->sx);
		d->state_dirty = true;
		return;
	}
	memcpy(d->previous_digest, d->sx.previous_digest, sizeof(d->previous_digest));
}

/* The policy file still holds a policy that was reverted (the agent cannot
 * write /etc): start with the last confirmed one kept in state_dir, so a
 * restart or reboot never applies an unconfirmed policy without its window.
 * Only then: any other content of the file (or a copy whose digest is not
 * the recorded one) and the file wins. */
static void keep_last_good(struct daemon *d)
{
	char detail[2048], *text = NULL;
	size_t len = 0;
	struct policy *p = NULL;
	if (!d->sx.reverted_digest[0] || d->sx.confirm_deadline)
		return;
	if (strcmp(d->digest, d->sx.reverted_digest) != 0) {
		/* the operator changed the file: the revert is history */
		d->sx.reverted_digest[0] = d->sx.last_good_digest[0] = '\0';
		d->state_dirty = true;
		return;
	}
	struct audit_fields f = { .digest = d->sx.reverted_digest };
	if (load_stored_policy(d, POLICY_LAST_GOOD, d->sx.last_good_digest, &p, &text, &len,
			       detail, sizeof(detail)) < 0) {
		f.detail = detail;
		audit(AE_STATE_CORRUPT, &f,
		      "%s holds the reverted policy %.12s, but the last confirmed one cannot be used (%s): applying the file",
		      d->cfg->policy, d->sx.reverted_digest, detail);
		d->sx.reverted_digest[0] = d->sx.last_good_digest[0] = '\0';
		d->state_dirty = true;
		return;
	}
	policy_free(d->policy);
	free(d->policy_text);
	d->policy = p;
	d->policy_text = text;
	d->policy_len = len;
	memcpy(d->digest, d->sx.last_good_digest, sizeof(d->digest));
	audit(AE_POLICY_REVERTED, &f,
	      "%s still holds the policy %.12s that was not confirmed and was reverted: running the last confirmed policy %.12s from %s/%s; fix the file, or try it again with reload --confirm-within",
	      d->cfg->policy, d->sx.reverted_digest, d->digest, d->sd.path, POLICY_LAST_GOOD);
}

static int add_timers(struct daemon *d)
{
	int r = 0;
	r = r < 0 ? r : sd_event_add_time(d->ev, &d->expiry_timer, CLOCK_REALTIME, 0, 0, on_expiry_timer, d);
	r = r < 0 ? r : sd_event_add_time(d->ev, &d->save_timer, CLOCK_MONOTONIC, 0, 0, on_save_timer, d);
	r = r < 0 ? r : sd_event_add_time(d->ev, &d->confirm_timer, CLOCK_MONOTONIC, 0, 0, on_confirm_timer, d);
	r = r < 0 ? r : sd_event_add_time(d->ev, &d->repair_timer, CLOCK_MONOTONIC, 0, 0, on_repair_timer, d);
	r = r < 0 ? r : sd_event_add_time_relative(d->ev, &d->verify_timer, CLOCK_MONOTONIC,
						   VERIFY_INTERVAL_USEC, 1000000ULL, on_verify_timer, d);
	if (r < 0)
		return r;
	/* sd-event's default accuracy is 250 ms: expiry and repair must be
	   prompt (a repair within a second is promised) */
	sd_event_source_set_time_accuracy(d->expiry_timer, 1000);
	sd_event_source_set_time_accuracy(d->repair_timer, 1000);
	sd_event_source_set_time_accuracy(d->confirm_timer, 1000);
	sd_event_source_set_enabled(d->expiry_timer, SD_EVENT_OFF);
	sd_event_source_set_enabled(d->save_timer, SD_EVENT_OFF);
	sd_event_source_set_enabled(d->confirm_timer, SD_EVENT_OFF);
	sd_event_source_set_enabled(d->repair_timer, SD_EVENT_OFF);
	return 0;
}

static int add_signals(struct daemon *d)
{
	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &ss, NULL) < 0)
		return -errno;
	int r = sd_event_add_signal(d->ev, NULL, SIGTERM, on_sigterm, d);
	r = r < 0 ? r : sd_event_add_signal(d->ev, NULL, SIGINT, on_sigterm, d);
	return r < 0 ? r : sd_event_add_signal(d->ev, NULL, SIGHUP, on_sighup, d);
}

/* Chooses table flags: owner+persist only together (owner alone would take
 * the firewall down with the agent). */
static void choose_table_flags(struct daemon *d)
{
	d->table_flags = 0;
	if (d->cfg->table_owner == TABLE_OWNER_AUTO && nft_have_owner_persist(d->nft))
		d->table_flags = NFT_TABLE_OWNER_PERSIST;
}

static int open_kernel(struct daemon *d)
{
	char err[1024];
	int r = nft_conn_open(&d->nft);
	if (r < 0)
		return startup_failed("cannot open netlink", strerror(-r));
	choose_table_flags(d);
	/* a reload awaiting confirmation whose window closed while we were down */
	if (d->sx.confirm_deadline && d->sx.confirm_deadline <= now_s() && d->previous)
		revert_now(d);
	if (!d->kernel_applied) {
		/* nobody to refuse at a start: a lockdown (from the state) the
		   policy cannot keep goes off rather than lock everyone out */
		char why[512];
		bool lockdown = lockdown_or_off(d, d->policy, why, sizeof(why));
		r = apply_with(d, d->policy, lockdown, true, err, sizeof(err));
		if (r < 0)
			return startup_failed("cannot apply the policy", err);
		journal_lockdown_off(d->digest, "at start: the policy's lockdown would admit nobody",
				     why);
	}
	if (d->sx.confirm_deadline)
		arm_confirm(d);
	r = nft_monitor_open(&d->monitor_fd);
	if (r < 0)
		return startup_failed("cannot watch nftables events", strerror(-r));
	/* the kernel queues an event per element for every listener: our own
	   big commits are made with our monitor unsubscribed */
	nft_conn_set_monitor(d->nft, d->monitor_fd);
	r = sd_event_add_io(d->ev, NULL, d->monitor_fd, EPOLLIN, on_monitor, d);
	return r < 0 ? startup_failed("cannot watch nftables events", strerror(-r)) : 0;
}

static int load_all(struct daemon *d)
{
	struct diags dg = { 0 };
	int r = config_load(d->config_path, &d->cfg, &dg);
	if (r == 0)
		r = load_policy(d->cfg->policy, &d->policy, d->digest, &d->policy_text,
				&d->policy_len, &dg);
	if (r < 0) {
		diags_print(&dg, stderr);
		char detail[2048];
		diags_line(&dg, detail, sizeof(detail));
		diags_free(&dg);
		struct audit_fields f = { .detail = detail };
		audit(AE_POLICY_REJECTED, &f, "Not starting: invalid configuration or policy: %s", detail);
		return 1;
	}
	diags_free(&dg);
	char err[512];
	if (d->cfg->user && sandbox_lookup_user(d->cfg->user, &d->user, err, sizeof(err)) < 0)
		return startup_failed("config", err);
	/* the one check of state_dir: from here on it is only reached through
	   this descriptor */
	uid_t owner = d->user.set ? d->user.uid : geteuid();
	if (statedir_open(d->cfg->state_dir, owner, true, &d->sd, err, sizeof(err)) < 0)
		return startup_failed("state_dir", err);
	return 0;
}

/* Started as root: the state must stay writable for whoever we are after
 * the drop (no CAP_DAC_OVERRIDE then), the configured user or uid 0. A
 * unit's StateDirectory= does this by itself. Never follows a symlink.
 * Best effort: where it fails (a read-only file system), saving fails later
 * and is journaled as state_write_failed, as it would without the sandbox. */
static void hand_over_state_dir(struct daemon *d)
{
	static const char *const files[] = { STATE_FILE, POLICY_PREVIOUS, POLICY_LAST_GOOD };
	if (geteuid() != 0)
		return;
	uid_t uid = d->user.set ? d->user.uid : 0;
	gid_t gid = d->user.set ? d->user.gid : 0;
	(void)statedir_hand_over(&d->sd, uid, gid, files, ELEMENTSOF(files));
}

/* Everything that needs privilege is open: keep CAP_NET_ADMIN alone, become
 * the configured user, and install the system call filter. */
static int confine(struct daemon *d, const struct daemon_options *opt)
{
	char err[512];
	hand_over_state_dir(d);
	if (sandbox_drop_privileges(&d->user, err, sizeof(err)) < 0)
		return startup_failed("cannot drop privileges", err);
	if (opt->no_seccomp)
		return 0;
	sandbox_no_dumps();
	const char *trap = getenv("CVZ_SECCOMP_TRAP");
	if (sandbox_install_filter(trap && strcmp(trap, "1") == 0, err, sizeof(err)) < 0)
		return startup_failed("cannot install the system call filter", err);
	return 0;
}

static void daemon_free(struct daemon *d)
{
	daemon_detect_stop(d);
	free(d->sx.offenders); /* loaded, detection never started */
	ctl_server_stop(d);
	daemon_control_stop(d);
	instr_seen_free(d->seen);
	sd_event_source_unref(d->expiry_timer);
	sd_event_source_unref(d->save_timer);
	sd_event_source_unref(d->confirm_timer);
	sd_event_source_unref(d->verify_timer);
	sd_event_source_unref(d->repair_timer);
	if (d->monitor_fd >= 0)
		close(d->monitor_fd);
	nft_conn_close(d->nft);
	sd_event_unref(d->ev);
	policy_free(d->policy);
	policy_free(d->previous);
	free(d->policy_text);
	free(d->previous_text);
	config_free(d->cfg);
	bl_free(&d->bl);
	cvz_rangeset_free(&d->dynamic);
	free(d->skeleton);
	bl_view_free(&d->view);
	statedir_close(&d->sd);
}

/* The start-up order:
 *  1. load and validate config, policy and (control API) credentials, and
 *     look up the user to become: any problem ends the start here, before
 *     the kernel is touched;
 *  2. restore the state;
 *  3. open the netlink sockets and apply, open the journald connection
 *     (the first audit entry did) and the control socket;
 *  4. drop privileges: CAP_NET_ADMIN alone, the configured user,
 *     no_new_privs;
 *  5. install the seccomp filter;
 *  6. tell systemd we are ready, and serve. */
int daemon_run(const struct daemon_options *opt)
{
	struct daemon d = { .config_path = opt->config_path, .monitor_fd = -1, .ctl_fd = -1,
			    .sd = { .fd = -1 } };
	char err[1024];
	int rc = load_all(&d);
	if (rc == 0 && !(d.seen = d.sx.seen = instr_seen_new(SEEN_IDS_MAX)))
		rc = startup_failed("cannot start", strerror(ENOMEM));
	if (rc == 0)
		restore_state(&d);
	if (rc == 0)
		restore_confirm_window(&d);
	if (rc == 0)
		keep_last_good(&d);
	if (rc == 0)
		daemon_protect_refresh(&d, d.cfg);
	if (rc == 0 && (sd_event_default(&d.ev) < 0 || add_signals(&d) < 0 || add_timers(&d) < 0))
		rc = startup_failed("cannot set up the event loop", strerror(errno));
	if (rc == 0 && daemon_control_start(&d, err, sizeof(err)) < 0)
		rc = startup_failed("control API", err);
	if (rc == 0)
		rc = open_kernel(&d);
	if (rc == 0 && daemon_detect_start(&d, err, sizeof(err)) < 0)
		rc = startup_failed("detect", err);
	if (rc == 0 && ctl_server_start(&d) < 0)
		rc = 1;
	if (rc == 0)
		rc = confine(&d, opt);
	if (rc == 0) {
		sd_event_set_watchdog(d.ev, true);
		daemon_arm_expiry(&d);
		char status[256];
		daemon_status_line(&d, status, sizeof(status));
		struct audit_fields f = {
			.digest = d.digest,
			.detail = opt->no_seccomp ? "system call filter OFF (--no-seccomp, debugging only)" : NULL,
		};
		audit(AE_AGENT_STARTED, &f, "cloudviz-agent %s started on node %s: %s%s%s%s%s", CVZ_VERSION,
		      d.cfg->node_id, status, d.table_flags ? "; table owned and persistent" : "",
		      d.user.set ? "; running as " : "", d.user.set ? d.user.name : "",
		      opt->no_seccomp ? "; WITHOUT the system call filter (--no-seccomp)" : "");
		sd_notifyf(0, "READY=1\nSTATUS=%s", status);
		release_memory();
		d.state_dirty = true;
		if (save_now(&d) == 0)
			tidy_state_dir(&d);
		rc = sd_event_loop(d.ev) < 0 ? 1 : 0;
	}
	daemon_free(&d);
	return rc;
}
