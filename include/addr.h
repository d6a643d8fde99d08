/* IPv4/IPv6 addresses, prefixes and normalised interval sets.
 *
 * Pure C, no allocation per address beyond the growing arrays of a range set.
 * Every function that can fail returns 0 or a negative errno and writes its
 * out-parameters only on success. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* One address or CIDR prefix. addr is in network byte order; an IPv4 prefix
 * uses addr[0..3] and leaves the rest zero. */
struct cvz_prefix {
	uint8_t family; /* AF_INET or AF_INET6 */
	uint8_t len;    /* 0..32 or 0..128 */
	uint8_t addr[16];
};

/* Longest text cvz_prefix_format() writes, with its NUL. */
#define CVZ_PREFIX_STRLEN 50

/* Parses "203.0.113.7", "198.51.100.0/24", "2001:db8::/32", "::1".
 * No prefix length means a single host (/32 or /128). Host bits set below the
 * prefix length are an error ("10.1.2.3/8"). An IPv4-mapped IPv6 address or
 * prefix (::ffff:a.b.c.d, length >= 96) is returned as the IPv4 equivalent.
 * Returns 0, or -EINVAL with *why set to a static English message that names
 * the problem ("not an IPv4 or IPv6 address", "prefix length 33 out of range
 * 0-32", "host bits set (did you mean 10.0.0.0/8?)"). For host bits, the
 * suggestion is written into the caller's why_buf (may be NULL: then a generic
 * message is used). */
int cvz_prefix_parse(const char *s, struct cvz_prefix *out, const char **why,
		     char *why_buf, size_t why_buf_len);

/* Writes the canonical text: "203.0.113.7" for a single host (no /32),
 * "198.51.100.0/24", compressed IPv6 ("2001:db8:bad::/48"). Returns buf. */
char *cvz_prefix_format(const struct cvz_prefix *p, char *buf, size_t len);

/* True when inner lies entirely inside outer (same family). */
bool cvz_prefix_contains(const struct cvz_prefix *outer,
			 const struct cvz_prefix *inner);
/* True when the two share at least one address (same family). */
bool cvz_prefix_overlaps(const struct cvz_prefix *a, const struct cvz_prefix *b);

/* Inclusive address ranges, host byte order, one array per family. Kept
 * compact on purpose: 8 bytes per IPv4 range, 32 per IPv6 range. */
struct cvz_range4 {
	uint32_t lo, hi;
};
struct cvz_range6 {
	unsigned __int128 lo, hi;
};

struct cvz_rangeset {
	struct cvz_range4 *v4;
	size_t n4, cap4;
	struct cvz_range6 *v6;
	size_t n6, cap6;
};

/* Appends the addresses of p. Returns 0 or -ENOMEM. The set is not kept
 * normalised by this call; call cvz_rangeset_normalize() afterwards. */
int cvz_rangeset_add_prefix(struct cvz_rangeset *s, const struct cvz_prefix *p);
int cvz_rangeset_add4(struct cvz_rangeset *s, uint32_t lo, uint32_t hi);
int cvz_rangeset_add6(struct cvz_rangeset *s, unsigned __int128 lo,
		      unsigned __int128 hi);
/* Sorts and merges overlapping and adjacent ranges, in place. */
void cvz_rangeset_normalize(struct cvz_rangeset *s);
/* Removes from s every address covered by minus. Both must be normalised;
 * s stays normalised. Returns 0 or -ENOMEM (s unchanged on error). */
int cvz_rangeset_subtract(struct cvz_rangeset *s, const struct cvz_rangeset *minus);
/* True when the normalised set s covers any address of p. */
bool cvz_rangeset_overlaps_prefix(const struct cvz_rangeset *s,
				  const struct cvz_prefix *p);
void cvz_rangeset_free(struct cvz_rangeset *s);

/* Longest text cvz_range4/6_format() writes, with its NUL: two IPv6
 * addresses of up to 45 characters and the '-'. */
#define CVZ_RANGE_STRLEN 100

/* Range <-> text: a range that is exactly one prefix prints as that prefix
 * ("10.0.0.0/8", "192.0.2.1"), anything else as "lo-hi". Returns buf. */
char *cvz_range4_format(const struct cvz_range4 *r, char *buf, size_t len);
char *cvz_range6_format(const struct cvz_range6 *r, char *buf, size_t len);
