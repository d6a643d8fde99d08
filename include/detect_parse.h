/* Local detection's line parsers (docs/detect.md; each form, its example
 * and what it counts: docs/detect-lines.md): what one journal MESSAGE of
 * sshd or of the CloudViz API says about a failed login. Pure: no journal,
 * no clock, no state; only detect_parse_api() allocates (jansson's tree of
 * one line, freed before it returns). Which process wrote the line is the
 * caller's business (journald's trusted fields, detect.h); these functions
 * only read text, and never let text that a client chose (a user name, a
 * certificate's key ID) supply the address.
 *
 * sshd's lines must come through syslog (_TRANSPORT=syslog, Debian's
 * default): there sshd escapes every byte of a user name that is not
 * printable ASCII, newlines included. Under `sshd -e` its lines go to
 * stderr, where newlines are not escaped and a user name can write a whole
 * line of its own. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"

/* A user name as logged, sanitized later by the caller; longer names are
 * cut (the cut is marked by truncated). */
#define DETECT_USER_MAX 64

enum sshd_kind {
	SSHD_OTHER,         /* not a line about a failed login: ignored */
	/* "Failed <method> for [invalid user ]U from A port P ssh2" (for
	   publickey, hostbased, gssapi-with-mic followed by ": " and the key
	   or name, which sshd always writes for them): one failed attempt,
	   except method "none" (the client's probe, which sshd does not count
	   either): attempts 0 */
	SSHD_FAILED,
	/* "Invalid user U from A port P": a connection named an unknown user */
	SSHD_INVALID_USER,
	/* "error: maximum authentication attempts exceeded for [invalid user ]U
	   from A port P ssh2 [preauth]" */
	SSHD_MAX_ATTEMPTS,
	/* "pam_unix(sshd:auth): authentication failure; ... rhost=A[ user=U]"
	   (no port) */
	SSHD_PAM_FAILURE,
	/* "PAM N more authentication failures; ... rhost=A[ user=U]" (no port) */
	SSHD_PAM_MORE,
	/* "Connection closed|reset by authenticating|invalid user U A port P
	   [preauth]", "Disconnected from authenticating|invalid user U A port P
	   [preauth]", "Disconnecting authenticating|invalid user U A port P:
	   Too many authentication failures [preauth]" */
	SSHD_PREAUTH_END,
};

/* What one line is worth. A connection's failed attempts are
 * max(sum of attempts of its lines, largest floor of its lines): see
 * docs/detect.md for why each form counts what it counts. */
struct sshd_line {
	enum sshd_kind kind;
	struct cvz_prefix addr;     /* the source, a host prefix (/32, /128);
				       IPv4-mapped IPv6 given as IPv4 */
	bool has_port;
	uint16_t port;
	unsigned attempts;          /* failed attempts this line itself reports */
	unsigned floor;             /* the connection made at least this many */
	bool invalid_user;          /* the user does not exist */
	char user[DETECT_USER_MAX + 1]; /* raw bytes as logged ("" unknown) */
	bool user_truncated;
	char method[32];            /* SSHD_FAILED: "password", "publickey", ... */
};

/* Parses one sshd MESSAGE (msg[0..len), not NUL-terminated, any bytes).
 * Returns true and fills *out for the forms above; false (*out zeroed,
 * kind SSHD_OTHER) for any other line, a line whose address is not a
 * literal IPv4/IPv6 address (a host name, a scoped fe80::1%eth0), one that
 * is malformed, and one that sshd may have cut short (sshd hands syslog at
 * most 500 bytes: such a line can end inside a user name). Never reads
 * past len. */
bool detect_parse_sshd(const char *msg, size_t len, struct sshd_line *out);

enum api_kind {
	API_OTHER,
	API_AUTH_FAILED,  /* "event": "authentication_event", "success": false */
	API_SECURITY,     /* "event": "security_event", severity high/critical */
};

struct api_line {
	enum api_kind kind;
	struct cvz_prefix addr;               /* "source_ip" */
	char user[DETECT_USER_MAX + 1];       /* "user_id" ("" none) */
	bool user_truncated;
	char severity[16];                    /* API_SECURITY: "high", "critical" */
	char event_type[64];                  /* "event_type", cut to fit */
};

/* Parses one CloudViz API MESSAGE: a JSON object as structlog's JSON
 * renderer writes it (the guide's AuditLogger). Returns true for the two
 * kinds above with a literal source_ip; false (*out zeroed, kind API_OTHER)
 * for anything else (other events, success true, "false", 0 or missing,
 * low/medium severity, bad JSON, a duplicate key, nesting deeper than
 * DETECT_API_DEPTH_MAX, a source_ip that is not a host address, more than
 * DETECT_API_LINE_MAX bytes, out of memory). "severity" is compared
 * without regard to ASCII case and given back lowercase; user_id may be a
 * string, an integer (given as its digits), null or missing. Python's
 * JSON that jansson alone would refuse is read (a lone surrogate escape
 * becomes U+FFFD, NaN and Infinity 0), so that a client cannot hide an
 * event by putting such a value in a logged field. Never reads past len. */
#define DETECT_API_LINE_MAX 65536
#define DETECT_API_DEPTH_MAX 32
bool detect_parse_api(const char *msg, size_t len, struct api_line *out);
