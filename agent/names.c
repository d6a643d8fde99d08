/* Protocol constant names, as nftables 1.0.x spells them. */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "cleanup.h"
#include "names.h"
#include "ruleset.h"

struct named {
	uint8_t value;
	const char *name;
};

static const struct named icmp_types[] = {
	{ 0, "echo-reply" },
	{ 3, "destination-unreachable" },
	{ 4, "source-quench" },
	{ 5, "redirect" },
	{ 8, "echo-request" },
	{ 9, "router-advertisement" },
	{ 10, "router-solicitation" },
	{ 11, "time-exceeded" },
	{ 12, "parameter-problem" },
	{ 13, "timestamp-request" },
	{ 14, "timestamp-reply" },
	{ 15, "info-request" },
	{ 16, "info-reply" },
	{ 17, "address-mask-request" },
	{ 18, "address-mask-reply" },
};

static const struct named icmpv6_types[] = {
	{ 1, "destination-unreachable" },
	{ 2, "packet-too-big" },
	{ 3, "time-exceeded" },
	{ 4, "parameter-problem" },
	{ 128, "echo-request" },
	{ 129, "echo-reply" },
	{ 130, "mld-listener-query" },
	{ 131, "mld-listener-report" },
	{ 132, "mld-listener-done" },
	{ 133, "nd-router-solicit" },
	{ 134, "nd-router-advert" },
	{ 135, "nd-neighbor-solicit" },
	{ 136, "nd-neighbor-advert" },
	{ 137, "nd-redirect" },
	{ 138, "router-renumbering" },
	{ 141, "ind-neighbor-solicit" },
	{ 142, "ind-neighbor-advert" },
	{ 143, "mld2-listener-report" },
};

static const struct named *table_for(uint8_t proto, size_t *n)
{
	if (proto == IPPROTO_ICMPV6) {
		*n = ELEMENTSOF(icmpv6_types);
		return icmpv6_types;
	}
	*n = ELEMENTSOF(icmp_types);
	return icmp_types;
}

const char *icmp_type_name(uint8_t proto, uint8_t type)
{
	size_t n;
	const struct named *t = table_for(proto, &n);
	for (size_t i = 0; i < n; i++)
		if (t[i].value == type)
			return t[i].name;
	return NULL;
}

int icmp_type_lookup(uint8_t proto, const char *name, uint8_t *type)
{
	size_t n;
	const struct named *t = table_for(proto, &n);
	for (size_t i = 0; i < n; i++)
		if (strcmp(t[i].name, name) == 0) {
			*type = t[i].value;
			return 0;
		}
	return -ENOENT;
}

void icmp_type_names(uint8_t proto, char *buf, size_t len)
{
	size_t n, off = 0;
	const struct named *t = table_for(proto, &n);
	if (len)
		buf[0] = '\0';
	for (size_t i = 0; i < n && off < len; i++) {
		int w = snprintf(buf + off, len - off, "%s%s", i ? ", " : "", t[i].name);
		if (w < 0)
			break;
		off += (size_t)w;
	}
}

static const struct {
	uint32_t bit;
	const char *name;
} ct_states[] = {
	{ FW_CT_INVALID, "invalid" },
	{ FW_CT_ESTABLISHED, "established" },
	{ FW_CT_RELATED, "related" },
	{ FW_CT_NEW, "new" },
	{ FW_CT_UNTRACKED, "untracked" },
};

const char *ct_state_name(uint32_t bit)
{
	for (size_t i = 0; i < ELEMENTSOF(ct_states); i++)
		if (ct_states[i].bit == bit)
			return ct_states[i].name;
	return NULL;
}

int ct_state_lookup(const char *name, uint32_t *bit)
{
	for (size_t i = 0; i < ELEMENTSOF(ct_states); i++)
		if (strcmp(ct_states[i].name, name) == 0) {
			*bit = ct_states[i].bit;
			return 0;
		}
	return -ENOENT;
}
