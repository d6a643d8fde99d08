/* The audit journal: one structured journald entry per action the agent
 * takes. Each event type has a fixed MESSAGE_ID and priority (see
 * docs/audit-events.md and systemd/cloudviz-agent.catalog). Text from outside
 * (reasons, server messages, file contents) is sanitized before it is logged.
 *
 * Logging never blocks and never fails the caller: entries go to journald's
 * native socket without waiting; when journald is not there they are written
 * to stderr as one logfmt line each; when journald's socket is full they are
 * counted and the count is reported with the next entry. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum audit_event {
	AE_AGENT_STARTED,
	AE_AGENT_STOPPING,
	AE_POLICY_APPLIED,
	AE_POLICY_REJECTED,
	AE_POLICY_REVERTED,
	AE_POLICY_CONFIRMED,
	AE_ADDR_BLOCKED,
	AE_ADDR_UNBLOCKED,
	AE_BLOCK_REJECTED,
	AE_BLOCK_EXPIRED,
	AE_STATE_RESTORED,
	AE_STATE_CORRUPT,
	AE_STATE_WRITE_FAILED,
	AE_RULESET_DRIFT_REPAIRED,
	AE_CTL_DENIED,
	AE_KERNEL_ERROR,
	AE_CONTROL_APPLIED,
	AE_CONTROL_SYNC_FAILED,
	AE_TLS_ERROR,
	AE_CERT_EXPIRING,
	AE_CREDENTIALS_RELOADED,
	AE_CREDENTIALS_REJECTED,
	AE_LOCKDOWN_CHANGED,
	AE_SECURITY_ALERT,
	AE_COUNT
};

/* Optional fields; NULL / has_* false leaves a field out. reason, incident,
 * severity and detail are sanitized; addr, origin and digest are the agent's
 * own values and must not hold outside text; instruction and cursor are
 * sanitized. */
struct audit_fields {
	const char *addr;     /* normalised: "203.0.113.7", "198.51.100.0/24" */
	const char *origin;   /* policy, file, operator, control, crowdsec, detect */
	const char *reason;
	const char *incident;
	const char *severity;
	const char *digest;   /* policy digest */
	const char *detail;   /* free text: an error, what drifted */
	bool has_ttl;
	uint64_t ttl;         /* seconds */
	bool has_actor;
	uint32_t actor_uid;
	int32_t actor_pid;
	const char *instruction; /* control API instruction id */
	const char *cursor;      /* control API cursor */
	bool has_days;
	int days;                /* cert_expiring: whole days left */
	bool has_http;
	long http_status;        /* control API: the HTTP status of a failed request */
	/* security_alert (local detection, docs/detect.md) */
	const char *alert_type;  /* "multiple_failed_logins" */
	const char *source;      /* "sshd", "cloudviz-api" */
	const char *user;        /* sanitized: a client chose it */
	bool has_attempts;
	unsigned attempts;
};

/* Event name ("addr_blocked") and its MESSAGE_ID as 32 hex digits. */
const char *audit_event_name(enum audit_event ev);
const char *audit_event_id(enum audit_event ev);

/* Sends one entry. fmt builds MESSAGE (one readable sentence); it is
 * sanitized too, so it may quote outside text. */
void audit_emit(enum audit_event ev, const struct audit_fields *f, const char *file,
		int line, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
#define audit(ev, f, ...) audit_emit((ev), (f), __FILE__, __LINE__, __VA_ARGS__)

/* Redacts secrets (the guide's DataSanitizer: password=, secret=, key=,
 * token= values, "Bearer ..." and 20+ character alphanumeric runs become
 * ***REDACTED***), escapes control characters and bytes that are not
 * well-formed UTF-8 as \xNN, and caps the result at max-1 bytes (marking a
 * cut with "...") without splitting a character. Always NUL-terminates out;
 * the result is always valid UTF-8. */
void audit_sanitize(const char *in, char *out, size_t max);
