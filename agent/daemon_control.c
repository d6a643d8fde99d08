/* The daemon's side of the control API (docs/control-api.md): credentials
 * at start and reload, and what a reply means for the blocklist.
 *
 * A reply is applied as one change (compute, send, swap: STYLE.md rule 16):
 * every instruction is staged in a change beside the live blocklist (struct
 * daemon_next), the state as the reply leaves it (entries, lockdown, cursor,
 * ids) is saved, and the kernel gets one transaction (a set delta, or the
 * whole table when lockdown flips). Only when both succeeded is the change
 * made current and the report queued. If either fails, nothing of the reply
 * was applied: the live blocklist was never touched, the cursor does not
 * move, and the same reply comes again after backoff. */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "daemon_internal.h"
#include "utf8.h"

#define EVENTS_PER_TARGET_MAX 1000 /* beyond: one summary entry per instruction */
#define REJECTS_JOURNALED_MAX 100
#define CERT_WARN_DAYS 30
#define CERT_CHECK_USEC (24 * 3600 * 1000000ULL)

/* ---- credentials ---------------------------------------------------------- */

/* Key and token may belong to root or to the user the agent runs as (the
 * configured user, before the switch as after it). */
static int load_creds(const struct daemon *d, const struct agent_config *cfg, struct creds **out,
		      char *err, size_t len)
{
	const struct control_api_config *cc = &cfg->control;
	struct creds_paths p = {
		.ca_file = cc->ca_file,
		.cert_file = cc->cert_file,
		.key_file = cc->key_file,
		.token_file = cc->token_file,
		.agent_uid = d->user.set ? d->user.uid : geteuid(),
	};
	return creds_load(&p, (int64_t)time(NULL), out, err, len);
}

static void check_cert_expiry(struct daemon *d)
{
	int64_t now = (int64_t)time(NULL);
	if (!d->cert_not_after)
		return;
	int64_t left = d->cert_not_after - now;
	int days = (int)((left >= 0 ? left : left - 86399) / 86400);
	if (days >= CERT_WARN_DAYS)
		return;
	struct audit_fields f = { .has_days = true, .days = days,
				  .detail = d->cfg->control.cert_file };
	audit(AE_CERT_EXPIRING, &f, "The control API client certificate %s expires in %d days",
	      d->cfg->control.cert_file, days);
}

static int on_cert_timer(sd_event_source *s, uint64_t usec, void *ud)
{
	check_cert_expiry(ud);
	sd_event_source_set_time_relative(s, CERT_CHECK_USEC);
	sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
	return 0;
}

/* ---- applying a reply ---------------------------------------------------------- */

/* What one reply did, for the journal and the report. */
struct outcome {
	json_t *applied;  /* ids */
	json_t *rejected; /* {id, target, reason} */
	size_t n_rejected, added, removed;
	bool lockdown_changed;
	const struct instr *lockdown_by;
	struct cvz_prefix *dropped; /* removed by a full snapshot, journaled once applied */
	size_t n_dropped;
	struct blocklist capped; /* block targets refused at the control entry limit */
};

/* Returns 0, or -ENOMEM: a target is never silently left out of the
 * report (its text is made valid UTF-8, so only memory can fail it). */
static int reject(struct outcome *o, const struct instr *in, const char *target, const char *why)
{
	if (json_array_append_new(o->rejected,
				  json_pack("{s:o, s:o, s:o}", "id", utf8_json_string(in->id),
					    "target", utf8_json_string(target), "reason",
					    utf8_json_string(why))) < 0)
		return -ENOMEM;
	if (o->n_rejected++ < REJECTS_JOURNALED_MAX) {
		struct audit_fields f = { .origin = "control", .instruction = in->id,
					  .incident = in->incident, .detail = why };
		audit(AE_BLOCK_REJECTED, &f, "Refused control API target %s of %s: %s", target,
		      in->id, why);
	}
	return 0;
}

static int carry_out(struct daemon *d, const struct instr *in, struct outcome *o,
		     struct daemon_next *n, int64_t now)
{
	char why[256];
	if (in->action == INSTR_LOCKDOWN) {
		if (!daemon_lockdown_admits(d->policy, in->enabled, why, sizeof(why)))
			return reject(o, in, "lockdown", why);
		if (n->sx.lockdown != in->enabled) {
			n->sx.lockdown = in->enabled;
			o->lockdown_changed = !o->lockdown_changed;
			o->lockdown_by = in;
		}
		return 0;
	}
	for (size_t t = 0; t < in->n_targets; t++) {
		const struct instr_target *tg = &in->targets[t];
		int r = tg->why[0] ? reject(o, in, tg->text, tg->why) : 0;
		if (r < 0)
			return r;
		if (tg->why[0])
			continue;
		if (in->action == INSTR_BLOCK) {
			r = bl_change_add(&n->bl, &tg->prefix, ORIGIN_CONTROL, in->ttl, in->reason,
					  in->incident, now);
			if (r == -ENOSPC) {
				/* per target, in reply order: the rest of the reply
				   (unblocks included) still applies and the cursor moves */
				snprintf(why, sizeof(why), "%zu control entries already, the limit",
					 bl_origin_max(ORIGIN_CONTROL));
				if ((r = reject(o, in, tg->text, why)) < 0)
					return r;
				if (bl_add(&o->capped, &tg->prefix, ORIGIN_CONTROL, 0, NULL, NULL, 0) < 0)
					return -ENOMEM; /* it would be journaled as blocked */
				continue;
			}
			if (r < 0)
				return r;
			o->added += r == 1;
		} else {
			r = bl_change_remove(&n->bl, &tg->prefix, ORIGIN_CONTROL);
			if (r == -ENOMEM)
				return r;
			o->removed += r == 0;
		}
	}
	return 0;
}

/* full:true: control entries named by no block instruction of the reply go. */
static int drop_unnamed(struct daemon *d, const struct instr_batch *b, struct outcome *o,
			struct daemon_next *n)
{
	struct blocklist named = { 0 };
	int r = 0;
	for (size_t i = 0; r == 0 && i < b->n; i++)
		for (size_t t = 0; r == 0 && b->v[i].action == INSTR_BLOCK && t < b->v[i].n_targets; t++)
			if (!b->v[i].targets[t].why[0])
				r = bl_add(&named, &b->v[i].targets[t].prefix, ORIGIN_CONTROL, 0, NULL,
					   NULL, 0) < 0 ? -ENOMEM : 0;
	for (size_t i = d->bl.n; r == 0 && i-- > 0;) {
		const struct bl_entry *e = &d->bl.v[i];
		/* staged entries are all named; a live one may be unblocked already */
		if (e->origin == ORIGIN_CONTROL && !bl_find(&named, &e->prefix, ORIGIN_CONTROL) &&
		    bl_change_find(&n->bl, &e->prefix, ORIGIN_CONTROL)) {
			if ((r = bl_change_remove(&n->bl, &e->prefix, ORIGIN_CONTROL)) < 0)
				break;
			struct cvz_prefix *nd = reallocarray(o->dropped, o->n_dropped + 1, sizeof(*nd));
			if (!nd) {
				r = -ENOMEM;
				break;
			}
			o->dropped = nd;
			nd[o->n_dropped++] = e->prefix;
			o->removed++;
		}
	}
	bl_free(&named);
	return r;
}

static void journal_targets(const struct instr_batch *b, const bool *skip, size_t total,
			    struct blocklist *capped)
{
	for (size_t i = 0; i < b->n; i++) {
		const struct instr *in = &b->v[i];
		if (in->action == INSTR_LOCKDOWN || skip[i])
			continue;
		bool blk = in->action == INSTR_BLOCK;
		struct audit_fields f = { .origin = "control", .instruction = in->id,
					  .reason = in->reason, .incident = in->incident,
					  .severity = in->severity, .has_ttl = blk && in->ttl,
					  .ttl = in->ttl };
		if (total > EVENTS_PER_TARGET_MAX) {
			audit(blk ? AE_ADDR_BLOCKED : AE_ADDR_UNBLOCKED, &f,
			      "Control API instruction %s: %s %zu targets", in->id,
			      blk ? "blocked" : "unblocked", in->n_targets);
			continue;
		}
		for (size_t t = 0; t < in->n_targets; t++) {
			char addr[CVZ_PREFIX_STRLEN];
			if (in->targets[t].why[0] ||
			    (blk && bl_find(capped, &in->targets[t].prefix, ORIGIN_CONTROL)))
				continue;
			f.addr = cvz_prefix_format(&in->targets[t].prefix, addr, sizeof(addr));
			audit(blk ? AE_ADDR_BLOCKED : AE_ADDR_UNBLOCKED, &f, "%s %s (control, %s%s%s)",
			      blk ? "Blocked" : "Unblocked", addr, in->id, in->reason ? ": " : "",
			      in->reason ? in->reason : "");
		}
	}
}

static void journal_dropped(const struct outcome *o, const char *cursor)
{
	struct audit_fields f = { .origin = "control", .cursor = cursor };
	if (o->n_dropped > EVENTS_PER_TARGET_MAX) {
		audit(AE_ADDR_UNBLOCKED, &f,
		      "Unblocked %zu control API entries the full snapshot no longer holds",
		      o->n_dropped);
		return;
	}
	for (size_t i = 0; i < o->n_dropped; i++) {
		char addr[CVZ_PREFIX_STRLEN];
		f.addr = cvz_prefix_format(&o->dropped[i], addr, sizeof(addr));
		audit(AE_ADDR_UNBLOCKED, &f,
		      "Unblocked %s (control): the full snapshot no longer holds it", addr);
	}
}

static char *report_json(struct daemon *d, const char *cursor, struct outcome *o)
{
	json_t *status = json_pack("{s:o, s:b, s:s, s:s}", "entries_by_origin",
				   daemon_entries_by_origin(d), "lockdown", d->sx.lockdown,
				   "policy_digest", d->digest, "agent_version", CVZ_VERSION);
	uint64_t dropped;
	json_t *alerts = daemon_detect_take_alerts(d, &dropped);
	json_t *root = json_pack("{s:s, s:O, s:O, s:o, s:o}", "cursor", cursor, "applied", o->applied,
				 "rejected", o->rejected, "status", status, "alerts", alerts);
	if (root && dropped)
		json_object_set_new(root, "alerts_dropped", json_integer((json_int_t)dropped));
	char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
	json_decref(root);
	return text;
}

void daemon_control_report_alerts(struct daemon *d)
{
	/* a report names the cursor it is about: none before the first reply
	   was applied, and the alerts wait for that one's report */
	if (!d->control || !d->sx.cursor[0])
		return;
	struct outcome o = { .applied = json_array(), .rejected = json_array() };
	char *text = o.applied && o.rejected ? report_json(d, d->sx.cursor, &o) : NULL;
	if (text)
		control_queue_report(d->control, text);
	json_decref(o.applied);
	json_decref(o.rejected);
}

static size_t count_targets(const struct instr_batch *b)
{
	size_t n = 0;
	for (size_t i = 0; i < b->n; i++)
		n += b->v[i].n_targets;
	return n;
}

/* skip[i]: instruction i was carried out before, in an earlier reply or
 * earlier in this one; it changes nothing. */
static int repeated_ids(const struct daemon *d, const struct instr_batch *b, bool **skip)
{
	*skip = calloc(b->n ? b->n : 1, sizeof(**skip));
	struct instr_seen *here = instr_seen_new(b->n ? b->n : 1);
	int r = *skip && here ? 0 : -ENOMEM;
	for (size_t i = 0; r == 0 && i < b->n; i++) {
		(*skip)[i] = instr_seen_has(d->seen, b->v[i].id) || instr_seen_has(here, b->v[i].id);
		r = instr_seen_add(here, b->v[i].id);
	}
	instr_seen_free(here);
	return r;
}

/* Stages the reply in n and commits it: saved, sent, made current. */
static int apply_batch(struct daemon *d, const struct instr_batch *b, const bool *skip,
		       struct outcome *o, struct daemon_next *n, char *err, size_t errlen)
{
	int64_t now = (int64_t)time(NULL) + 1; /* TTLs last at least as long as asked */
	/* a snapshot drops what it does not name first, so that the control
	   entry limit applies to the state it leaves, not to old + new */
	int r = b->full ? drop_unnamed(d, b, o, n) : 0;
	for (size_t i = 0; r == 0 && i < b->n; i++) {
		const struct instr *in = &b->v[i];
		json_array_append_new(o->applied, json_string(in->id));
		if (!skip[i])
			r = carry_out(d, in, o, n, now);
	}
	if (r < 0) {
		snprintf(err, errlen, "%s", strerror(-r));
		return r;
	}
	snprintf(n->sx.cursor, sizeof(n->sx.cursor), "%s", b->cursor);
	return daemon_commit(d, n, err, errlen);
}

/* The ids of a reply, for the state saved with it. */
static const char **batch_ids(const struct instr_batch *b)
{
	const char **ids = calloc(b->n ? b->n : 1, sizeof(*ids));
	for (size_t i = 0; ids && i < b->n; i++)
		ids[i] = b->v[i].id;
	return ids;
}

static void journal_lockdown(const struct daemon *d, const struct instr *by)
{
	struct audit_fields f = { .origin = "control", .instruction = by->id,
				  .incident = by->incident, .severity = by->severity,
				  .reason = by->reason, .digest = d->digest };
	audit(AE_LOCKDOWN_CHANGED, &f, "Lockdown %s by control API instruction %s%s%s",
	      d->sx.lockdown ? "enabled" : "disabled", by->id, by->incident ? " for " : "",
	      by->incident ? by->incident : "");
}

static int on_reply(void *ud, const char *body, size_t len, const char *server_ip, char *err,
		    size_t errlen)
{
	struct daemon *d = ud;
	const struct control_api_config *cc = &d->cfg->control;
	/* the address this reply came from is the API's for good (a name
	   may resolve to more than start-up saw) */
	if (daemon_protect_note(d, PROTECT_CONTROL_API, server_ip))
		daemon_protect_recarve(d);
	struct bl_guard *guards = NULL;
	size_t n_guards = 0;
	if (daemon_guards(d, d->policy, &guards, &n_guards) < 0) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	struct instr_limits lim = {
		.min_prefix_v4 = cc->min_prefix_v4,
		.min_prefix_v6 = cc->min_prefix_v6,
		.safelist = d->policy->safelist,
		.n_safelist = d->policy->n_safelist,
		.guards = guards,
		.n_guards = n_guards,
	};
	struct instr_batch b;
	int r = instr_parse(body, len, &lim, &b, err, errlen);
	free(guards);
	if (r < 0)
		return r;
	struct daemon_next n;
	daemon_next_init(&n, d);
	_cleanup_(freep) const char **ids = batch_ids(&b);
	n.ids = ids;
	n.n_ids = b.n;
	bool *skip = NULL;
	struct outcome o = { .applied = json_array(), .rejected = json_array() };
	r = ids && o.applied && o.rejected ? repeated_ids(d, &b, &skip) : -ENOMEM;
	if (r < 0)
		snprintf(err, errlen, "out of memory");
	else
		r = apply_batch(d, &b, skip, &o, &n, err, errlen);
	daemon_next_free(&n);
	if (r == 0) {
		journal_targets(&b, skip, count_targets(&b), &o.capped);
		journal_dropped(&o, b.cursor);
		if (o.lockdown_changed)
			journal_lockdown(d, o.lockdown_by);
		struct audit_fields f = { .origin = "control", .cursor = b.cursor };
		audit(AE_CONTROL_APPLIED, &f,
		      "Applied control API %s reply: %zu instructions, %zu entries added, %zu removed, %zu targets rejected",
		      b.full ? "snapshot" : "delta", b.n, o.added, o.removed, o.n_rejected);
		/* saved with the cursor before it was made current */
		control_queue_report(d->control, report_json(d, b.cursor, &o));
	}
	json_decref(o.applied);
	json_decref(o.rejected);
	free(o.dropped);
	bl_free(&o.capped);
	free(skip);
	instr_batch_free(&b);
	/* a snapshot's tree, batch and copies are tens of MB of freed heap */
	if (len > (1u << 20))
		malloc_trim(0);
	return r;
}

static const char *cursor_of(void *ud)
{
	return ((struct daemon *)ud)->sx.cursor;
}

/* ---- life cycle ------------------------------------------------------------------- */

int daemon_control_start(struct daemon *d, char *err, size_t errlen)
{
	struct creds *c = NULL;
	if (!d->cfg->has_control)
		return 0;
	int r = load_creds(d, d->cfg, &c, err, errlen);
	if (r < 0)
		return r;
	d->cert_not_after = c->not_after;
	struct control_hooks h = { .cursor = cursor_of, .on_reply = on_reply, .ud = d };
	r = control_start(d->ev, d->cfg->node_id, &d->cfg->control, c, &h, &d->control);
	if (r < 0) {
		snprintf(err, errlen, "cannot start the control API client: %s", strerror(-r));
		return r;
	}
	check_cert_expiry(d);
	r = sd_event_add_time_relative(d->ev, &d->cert_timer, CLOCK_MONOTONIC, CERT_CHECK_USEC,
				       60 * 1000000ULL, on_cert_timer, d);
	if (r < 0)
		snprintf(err, errlen, "cannot set up the event loop: %s", strerror(-r));
	return r;
}

void daemon_control_reload(struct daemon *d, struct agent_config *newcfg)
{
	char err[512];
	struct creds *c = NULL;
	if (!newcfg->has_control) {
		daemon_control_stop(d);
		return;
	}
	int r = load_creds(d, newcfg, &c, err, sizeof(err));
	if (r < 0) {
		struct audit_fields f = { .detail = err };
		audit(AE_CREDENTIALS_REJECTED, &f,
		      "New control API credentials rejected, the old ones stay in use: %s", err);
		/* the old section goes on with the old credentials */
		if (d->control) {
			struct control_api_config keep = newcfg->control;
			newcfg->control = d->cfg->control;
			d->cfg->control = keep;
			control_set_config(d->control, &newcfg->control, NULL);
		}
		newcfg->has_control = d->control != NULL;
		return;
	}
	struct audit_fields f = { .detail = c->subject };
	audit(AE_CREDENTIALS_RELOADED, &f,
	      "Control API credentials loaded: certificate %s (sha256 %.16s), valid for %d more days",
	      c->subject, c->fingerprint, creds_days_left(c, (int64_t)time(NULL)));
	d->cert_not_after = c->not_after;
	if (!d->control) {
		struct control_hooks h = { .cursor = cursor_of, .on_reply = on_reply, .ud = d };
		int r2 = control_start(d->ev, newcfg->node_id, &newcfg->control, c, &h, &d->control);
		if (r2 < 0) {
			struct audit_fields ff = { .detail = strerror(-r2) };
			audit(AE_CONTROL_SYNC_FAILED, &ff, "Cannot start the control API client: %s",
			      strerror(-r2));
			d->control = NULL;
		}
	} else {
		control_set_config(d->control, &newcfg->control, c);
	}
}

void daemon_control_stop(struct daemon *d)
{
	control_free(d->control);
	d->control = NULL;
	d->cert_timer = sd_event_source_disable_unref(d->cert_timer);
}

json_t *daemon_control_status(const struct daemon *d)
{
	struct control_stats s;
	if (!d->control)
		return json_null();
	control_get_stats(d->control, &s);
	/* last_error quotes the server (an error page in any language) */
	return json_pack("{s:o, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:i, s:I, s:o, s:I}", "url",
			 utf8_json_string(d->cfg->control.url), "cursor", d->sx.cursor, "polls", (json_int_t)s.polls,
			 "replies", (json_int_t)s.replies, "failures", (json_int_t)s.failures,
			 "reports_sent", (json_int_t)s.reports_sent, "reports_failed",
			 (json_int_t)s.reports_failed, "reports_queued", (json_int_t)s.reports_queued,
			 "consecutive_failures", (int)s.attempt, "last_success",
			 (json_int_t)s.last_success, "last_error", utf8_json_string(s.last_error), "cert_not_after",
			 (json_int_t)d->cert_not_after);
}
