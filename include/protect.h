/* Addresses the agent must keep reaching whatever it is told to block: the
 * resolvers it looks names up with, and the control plane's addresses
 * (docs/control-api.md#protected-addresses). This module reads and resolves
 * them; the daemon turns them into bl_guard entries that every block, from
 * any source, is checked against and that the kernel's sets are carved by.
 * A later source (the CrowdSec LAPI) adds a source, nothing else. */
#pragma once
#include <stddef.h>

#include "addr.h"

#define PROTECT_MAX 16                 /* addresses kept per source */
#define RESOLV_CONF_MAX_BYTES 65536    /* a larger resolv.conf is refused */
#define RESOLV_CONF "/etc/resolv.conf"
/* systemd-resolved's list of its upstream servers, read as well when
 * resolv.conf names only its stub 127.0.0.53 */
#define RESOLVED_UPSTREAMS "/run/systemd/resolve/resolv.conf"

enum protect_source {
	PROTECT_RESOLVER,    /* nameservers from resolv.conf */
	PROTECT_CONTROL_API, /* every address of the control API's host */
	PROTECT_SOURCES,
};

/* The words a refusal names a source's address with ("resolver"). */
const char *protect_source_what(enum protect_source s);

/* The addresses of the "nameserver ADDR" lines of the resolv.conf-format
 * file at path, in order, without duplicates, at most max (later lines are
 * ignored, as glibc ignores more than three). An IPv6 zone ("%eth0") is
 * dropped; a line glibc would not use (a bad address) is skipped. Returns
 * the count, or -errno with err saying why (missing, not a regular file,
 * larger than RESOLV_CONF_MAX_BYTES). out is written only on success. */
int protect_read_resolv_conf(const char *path, struct cvz_prefix *out, size_t max, char *err,
			     size_t errlen);

/* The addresses of the host of url (parsed by libcurl's URL API): an IP
 * literal as it is, a name resolved with getaddrinfo() (blocking: at start
 * and reload only), every address, without duplicates, at most max.
 * Returns the count, or -errno (-EINVAL a URL without a host, -EHOSTUNREACH
 * a name that does not resolve) with err saying why. out is written only
 * on success. */
int protect_resolve_url(const char *url, struct cvz_prefix *out, size_t max, char *err,
			size_t errlen);

/* Adds p to v (n of cap) unless it is there; when full, the oldest (v[0])
 * goes. Returns true when v changed. */
bool protect_add(struct cvz_prefix *v, size_t *n, size_t cap, const struct cvz_prefix *p);
