/* The control API client (docs/control-api.md): long-polls
 * GET {url}/api/v1/agents/{node}/instructions over mutually authenticated
 * TLS and POSTs reports, with libcurl's multi interface driven by the
 * daemon's sd-event loop: no thread, no blocking call, no busy loop.
 *
 * This module owns the transport only: requests, timeouts, the size cap,
 * backoff, the report queue and journaling transport failures
 * (control_sync_failed, tls_error). What a reply means is the caller's
 * (hooks->on_reply): it is given the whole body of a 200 answer. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "creds.h"

struct control;

struct control_hooks {
	/* The cursor to send ("" for none, asking for a full snapshot). */
	const char *(*cursor)(void *ud);
	/* A 200 reply: body (len bytes, NUL-terminated) from server_ip (the
	 * address curl connected to, "" when unknown). Returns 0 when the
	 * reply was applied (polling goes on at once), or a negative errno
	 * when it was refused whole, with a one-line reason in err: the
	 * refusal is journaled as control_sync_failed and polling backs off. */
	int (*on_reply)(void *ud, const char *body, size_t len, const char *server_ip, char *err,
			size_t errlen);
	void *ud;
};

/* Starts polling at once. cfg must outlive the client or be replaced with
 * control_set_config(); creds is taken over (freed by the client). Returns 0
 * and *out, or a negative errno. */
int control_start(sd_event *ev, const char *node_id, const struct control_api_config *cfg,
		  struct creds *creds, const struct control_hooks *hooks, struct control **out);
/* Rotation: from now on requests use these credentials (taken over) and cfg;
 * a long poll in flight is restarted with them. The old credentials are
 * freed once no transfer uses them. With creds NULL only the cfg pointer
 * changes (the same settings, moved to a new config object). */
void control_set_config(struct control *c, const struct control_api_config *cfg,
			struct creds *creds);
/* Queues a report (JSON text, taken over) for POST .../reports; at most
 * CONTROL_REPORT_QUEUE wait, the oldest is dropped (and journaled) first. */
#define CONTROL_REPORT_QUEUE 100
void control_queue_report(struct control *c, char *json);
/* For `status`: "polling", "backing off 12s after: ...", counters. */
struct control_stats {
	uint64_t polls, replies, failures, reports_sent, reports_failed;
	size_t reports_queued;
	unsigned attempt;          /* consecutive failures */
	int64_t last_success;      /* wall clock seconds, 0 never */
	char last_error[256];      /* sanitized, "" none */
};
void control_get_stats(const struct control *c, struct control_stats *out);
/* Stops every transfer and frees everything, the credentials included. */
void control_free(struct control *c);
