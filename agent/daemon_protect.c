/* What no block may cover, in the daemon: the policy's safelist and
 * lockdown.allow_from, and the protected addresses (resolvers, the control
 * API's host) read at start and reload and learnt on every control API
 * connection. See docs/control-api.md#protected-addresses. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon_internal.h"
#include "protect.h"

int daemon_guards(const struct daemon *d, const struct policy *p, struct bl_guard **out,
		  size_t *n)
{
	size_t n_allow = p->lockdown.has_allow_from ? p->lockdown.n_allow_from : 0;
	size_t total = p->n_safelist + n_allow;
	for (int s = 0; s < PROTECT_SOURCES; s++)
		total += d->protect[s].n;
	struct bl_guard *g = calloc(total ? total : 1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	size_t k = 0;
	for (size_t i = 0; i < p->n_safelist; i++)
		g[k++] = (struct bl_guard){ p->safelist[i], "safelisted" };
	for (size_t i = 0; i < n_allow; i++)
		g[k++] = (struct bl_guard){ p->lockdown.allow_from[i], "lockdown.allow_from range" };
	for (int s = 0; s < PROTECT_SOURCES; s++)
		for (size_t i = 0; i < d->protect[s].n; i++)
			g[k++] = (struct bl_guard){ d->protect[s].v[i],
						    protect_source_what((enum protect_source)s) };
	*out = g;
	*n = k;
	return 0;
}

int daemon_never_blocked(const struct daemon *d, const struct policy *p, struct cvz_prefix **out,
			 size_t *n)
{
	struct bl_guard *g;
	size_t k;
	int r = daemon_guards(d, p, &g, &k);
	if (r < 0)
		return r;
	struct cvz_prefix *v = calloc(k ? k : 1, sizeof(*v));
	if (!v) {
		free(g);
		return -ENOMEM;
	}
	for (size_t i = 0; i < k; i++)
		v[i] = g[i].prefix;
	free(g);
	*out = v;
	*n = k;
	return 0;
}

const char *daemon_guard_refusal(const struct daemon *d, const struct cvz_prefix *p, char *buf,
				 size_t len)
{
	struct bl_guard *g;
	size_t n;
	if (daemon_guards(d, d->policy, &g, &n) < 0) {
		snprintf(buf, len, "out of memory");
		return buf;
	}
	const char *why = bl_guard_refusal(p, g, n, buf, len);
	free(g);
	return why;
}

static bool set_changed(const struct protected_set *a, const struct cvz_prefix *v, size_t n)
{
	return a->n != n || memcmp(a->v, v, n * sizeof(*v)) != 0;
}

/* The resolvers: resolv.conf's nameservers, and systemd-resolved's
 * upstreams when resolv.conf names its stub (127.0.0.53 is loopback and
 * never blockable anyway; the servers it forwards to are what matter). */
static int read_resolvers(struct cvz_prefix *v, size_t *n, char *err, size_t errlen)
{
	static const struct cvz_prefix stub = { .family = AF_INET, .len = 32,
						.addr = { 127, 0, 0, 53 } };
	int r = protect_read_resolv_conf(RESOLV_CONF, v, PROTECT_MAX, err, errlen);
	if (r < 0)
		return r;
	*n = (size_t)r;
	bool via_stub = false;
	for (size_t i = 0; i < *n; i++)
		via_stub |= memcmp(&v[i], &stub, sizeof(stub)) == 0;
	struct cvz_prefix up[PROTECT_MAX];
	char ignored[256];
	int k = via_stub ? protect_read_resolv_conf(RESOLVED_UPSTREAMS, up, PROTECT_MAX, ignored,
						    sizeof(ignored))
			 : 0;
	for (int i = 0; i < k; i++)
		protect_add(v, n, PROTECT_MAX, &up[i]);
	return 0;
}

bool daemon_protect_refresh(struct daemon *d, const struct agent_config *cfg)
{
	struct cvz_prefix v[PROTECT_MAX];
	size_t n = 0;
	char err[512];
	bool changed = false;
	/* a file that cannot be read keeps what was read before: protection
	   never shrinks because of an error */
	if (read_resolvers(v, &n, err, sizeof(err)) == 0 && set_changed(&d->protect[PROTECT_RESOLVER], v, n)) {
		memcpy(d->protect[PROTECT_RESOLVER].v, v, n * sizeof(*v));
		d->protect[PROTECT_RESOLVER].n = n;
		changed = true;
	}
	struct protected_set *api = &d->protect[PROTECT_CONTROL_API];
	int r = cfg->has_control ? protect_resolve_url(cfg->control.url, v, PROTECT_MAX, err,
						       sizeof(err))
				 : 0;
	if (r < 0) {
		/* keep the old addresses (DNS may be down): the connection's
		   own address is added when it connects */
		struct audit_fields f = { .detail = err };
		audit(AE_CONTROL_SYNC_FAILED, &f,
		      "Cannot resolve the control API's host to protect its addresses: %s", err);
	} else if (set_changed(api, v, (size_t)r)) {
		memcpy(api->v, v, (size_t)r * sizeof(*v));
		api->n = (size_t)r;
		changed = true;
	}
	return changed;
}

bool daemon_protect_note(struct daemon *d, enum protect_source s, const char *ip)
{
	struct cvz_prefix p;
	if (!ip || !ip[0] || cvz_prefix_parse(ip, &p, NULL, NULL, 0) < 0 ||
	    p.len != (p.family == AF_INET ? 32 : 128))
		return false;
	return protect_add(d->protect[s].v, &d->protect[s].n, PROTECT_MAX, &p);
}

void daemon_protect_recarve(struct daemon *d)
{
	char err[1024];
	if (!d->kernel_applied || !d->policy)
		return;
	int r = daemon_apply_policy(d, d->policy, false, err, sizeof(err));
	if (r < 0) {
		struct audit_fields f = { .detail = err };
		audit(AE_KERNEL_ERROR, &f, "Could not carve protected addresses out of the blocklist: %s",
		      err);
	}
}

json_t *daemon_protect_status(const struct daemon *d)
{
	json_t *a = json_array();
	for (int s = 0; a && s < PROTECT_SOURCES; s++)
		for (size_t i = 0; i < d->protect[s].n; i++) {
			char addr[CVZ_PREFIX_STRLEN];
			json_array_append_new(
				a, json_pack("{s:s, s:s}", "addr",
					     cvz_prefix_format(&d->protect[s].v[i], addr, sizeof(addr)),
					     "what", protect_source_what((enum protect_source)s)));
		}
	return a ? a : json_null();
}
