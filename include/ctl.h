/* The local control protocol: one request and one reply per connection on a
 * Unix stream socket, each a single line of JSON.
 *
 *   -> {"cmd": "block", "addr": "203.0.113.7", "ttl": 3600, "reason": "..."}
 *   <- {"ok": true, ...} or {"ok": false, "error": "why"}
 *
 * Commands: status, list, block, unblock, reload, confirm, lockdown. The server side
 * lives in the daemon; this is the client side and the shared helpers. */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define CTL_DEFAULT_SOCKET "/run/cloudviz-agent/control.sock"
#define CTL_MAX_REQUEST 65536

/* Sends req to the agent at socket_path and waits (up to timeout_ms) for the
 * reply. Returns 0 and *reply (json_decref it), -ECONNREFUSED/-ENOENT when no
 * agent listens, -ETIMEDOUT, or another -errno. */
int ctl_call(const char *socket_path, json_t *req, int timeout_ms, json_t **reply);

/* "90s", "30m", "1h", "7d", "3600" -> seconds. Returns 0 or -EINVAL. */
int parse_duration(const char *s, uint64_t *out);
/* 3725 -> "1h2m5s". Returns buf. */
char *format_duration(uint64_t secs, char *buf, size_t len);
