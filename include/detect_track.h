/* Local detection's memory (docs/detect.md): failed attempts per source
 * address within a sliding window, the sshd connections they came from
 * (so that a connection's several lines about one attempt count once), and
 * the repeat offenders whose next block is longer. Pure: no journal, no
 * clock of its own (every observation carries its journal time), no
 * logging. Memory is bounded by max_tracked: beyond it the least recently
 * seen address (connection, offender) is forgotten first. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"

/* The thresholds of one source (config.h: struct detect_source). */
struct detect_limits {
	uint32_t max_failures; /* 1..DETECT_MAX_FAILURES_MAX */
	uint32_t window;       /* seconds, 1..86400 */
	uint64_t ttl;          /* seconds of the first block, >= 1 */
	uint32_t escalate;     /* 1..100: factor per repeat offence */
	uint64_t max_ttl;      /* seconds, >= ttl */
};
#define DETECT_MAX_FAILURES_MAX 100
#define DETECT_SOURCES_MAX 4

/* One line's worth, from detect_parse.h, with where it came from. */
struct detect_obs {
	unsigned source;         /* 0..DETECT_SOURCES_MAX-1; counts are per source */
	struct cvz_prefix addr;  /* a host prefix */
	int64_t when_us;         /* the journal entry's realtime, microseconds */
	/* the connection (sshd): the writing process and the client's port.
	   pid 0: no connection (an API event): attempts count as they are */
	uint32_t pid;
	bool has_port;
	uint16_t port;
	unsigned attempts;       /* as struct sshd_line; an API failure: 1 */
	unsigned floor;          /* as struct sshd_line; an API high event: max_failures */
	bool ends_connection;    /* the connection is over (SSHD_PREAUTH_END) */
};

/* What detect_track_feed() decided. */
struct detect_verdict {
	unsigned added;          /* failures this observation added (0 for a
				    line about an attempt already counted) */
	unsigned in_window;      /* the address's failures within the window,
				    this one included */
	bool trigger;            /* in_window reached max_failures: block now.
				    The address's count is reset already,
				    for every source (detect_track_reset) */
};

struct detect_tracker;

/* A tracker for at most max_tracked addresses (and as many connections and
 * offenders), 1..DETECT_TRACKED_MAX. NULL when out of memory (or errno
 * EINVAL: max_tracked out of range). Memory grows with what is tracked up
 * to max_tracked, then stays: about 160 bytes an address with max_failures
 * 5 and one connection (8 bytes more for each max_failures above 5). */
#define DETECT_TRACKED_MAX (1u << 20) /* about 170 MB at max_failures 5: MemoryMax=1G */
struct detect_tracker *detect_track_new(size_t max_tracked);
void detect_track_free(struct detect_tracker *t);

/* Counts observation o with the limits of its source. A connection's
 * failures are max(sum of attempts, largest floor) over its lines; only
 * the growth is added to the address.
 *
 * Connections (pid != 0) of one source and address: a line with a port
 * belongs to the connection of the same pid and port, else to the one a
 * line without a port started (PAM logs before "Failed password" for an
 * existing user; the line then names it), else to a new one. A line
 * without a port (PAM) belongs to the most recent connection of the same
 * pid, else to the most recent one (keyboard-interactive PAM runs in a
 * child), else to a new one. ends_connection forgets the connection after
 * the line; so does no line for max(window, 600 s) of journal time. At
 * most 128 connections per source and address: beyond, the least recently
 * seen of them is forgotten.
 *
 * The window: failures within lim->window seconds (inclusive) before the
 * address's newest failure count. Entries may come out of order: one older
 * than the newest still counts if it falls within the window, and never
 * slides the window back; one older than the window adds to its
 * connection but counts nowhere. A trigger forgets the address's failures
 * of every source. Returns 0 and *v, or -ENOMEM (nothing changed), or
 * -EINVAL (bad source, limits or address family). */
int detect_track_feed(struct detect_tracker *t, const struct detect_obs *o,
		      const struct detect_limits *lim, struct detect_verdict *v);

/* Forgets addr's count for every source (after a block made otherwise). */
void detect_track_reset(struct detect_tracker *t, const struct cvz_prefix *addr);

/* A repeat offender: the last block detection made of addr. */
struct detect_offender {
	struct cvz_prefix addr;
	int64_t blocked_at;  /* seconds since the epoch */
	uint64_t ttl;        /* seconds */
	uint32_t offences;   /* 1 for the first block */
};

/* The TTL of a block of addr made at now: lim->ttl, or, when detection's
 * previous block of addr ended less than lim->max_ttl seconds before now
 * (or has not ended), that block's ttl times lim->escalate, capped at
 * lim->max_ttl (checked arithmetic), and never less than lim->ttl.
 * *offences (may be NULL) gets the offence number this block would be (1
 * for a first offence; saturating). */
uint64_t detect_track_next_ttl(const struct detect_tracker *t, const struct cvz_prefix *addr,
			       int64_t now, const struct detect_limits *lim, uint32_t *offences);
/* Records a block made (or, from state.json, one made before a restart),
 * replacing addr's record. Beyond max_tracked the least recently recorded
 * is forgotten: restore oldest first. Returns 0 or -ENOMEM (the record is
 * then not kept), -EINVAL for NULL. */
int detect_track_offender(struct detect_tracker *t, const struct detect_offender *o);
/* The offenders still within reach of escalation at now (their block ended
 * less than max_ttl seconds before now, or has not), up to max into out,
 * most recent first: by blocked_at, then the longer ttl, then by address,
 * so the order is total. Returns how many were written. */
size_t detect_track_offenders(const struct detect_tracker *t, int64_t now, uint64_t max_ttl,
			      struct detect_offender *out, size_t max);

/* Counters, for status and the memory bench. */
struct detect_track_stats {
	size_t addresses, connections, offenders;
	uint64_t evicted;    /* addresses forgotten to stay within max_tracked */
	size_t bytes;        /* memory held by the tracker, allocations included
				(their sizes as asked of malloc) */
};
void detect_track_stats(const struct detect_tracker *t, struct detect_track_stats *s);
