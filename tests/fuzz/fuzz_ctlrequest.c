/* libFuzzer target: control-socket requests. Each input is what a client
 * writes on a fresh connection; its first line goes through
 * ctl_request_reply(), the server's own request->reply code, and must get
 * exactly one reply line that is a JSON object with a boolean "ok" (and a
 * non-empty "error" string when ok is false). The fixed "internal: reply
 * could not be built" fallback counts as a finding too: it means some text
 * could not be turned into JSON. abort() on any of these.
 *
 * The daemon is a minimal struct with a small policy and the real runtime
 * blocklist; the operations that would reach the kernel (daemon_block,
 * _unblock, _reload, _confirm, _set_lockdown) and the status pieces built
 * elsewhere (daemon_status_line, daemon_control_status, daemon_protect_status) are defined here, so the
 * archive's daemon.o and daemon_control.o are not linked. The stand-ins
 * keep the real checks that shape a reply (bl_refusal, bl_add's limits,
 * audit_sanitize) and write their errors with plain snprintf cut short,
 * the way a careless lower layer would, to test that the server's reply
 * building holds whatever text reaches it. Seeds in corpus_ctlrequest/. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "cleanup.h"
#include "ctl.h"
#include "daemon_internal.h"
#include "utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct daemon d;
static struct agent_config cfg = { .node_id = "fuzz-node" };
static struct policy pol;
static struct cvz_prefix safelist[] = {
	{ .family = AF_INET, .len = 32, .addr = { 10, 1, 2, 3 } },
	{ .family = AF_INET6, .len = 48, .addr = { 0x20, 0x01, 0x0d, 0xb8, 0, 1 } },
};
static struct cvz_prefix blocked[] = {
	{ .family = AF_INET, .len = 24, .addr = { 192, 0, 2 } },
	{ .family = AF_INET, .len = 32, .addr = { 198, 51, 100, 7 } },
};
static uint16_t blocked_src[] = { 0, 1 };
static char list_file[] = "/etc/cloudviz-agent/lists/caf\xc3\xa9.txt";
static char *list_files[] = { list_file };
static char policy_file[] = "/etc/cloudviz-agent/policy.json";
/* outside text kept between requests, as a control-plane error is */
static char last_error[256];

static void setup(void)
{
	pol.file = policy_file;
	pol.safelist = safelist;
	pol.n_safelist = ELEMENTSOF(safelist);
	pol.blocked = blocked;
	pol.blocked_src = blocked_src;
	pol.n_blocked = ELEMENTSOF(blocked);
	pol.list_files = list_files;
	pol.n_list_files = 1;
	d.cfg = &cfg;
	d.policy = &pol;
	d.ctl_fd = -1;
	memcpy(d.digest, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", 65);
}

/* A cut at a byte count, as a lower layer might make it (not UTF-8-aware). */
static void careless(char *err, size_t errlen, const char *what, const char *text)
{
	size_t n = errlen < 41 ? errlen : 41;
	snprintf(err, n, "%s: %s", what, text ? text : "");
	snprintf(last_error, sizeof(last_error), "%s", err);
}

int daemon_block(struct daemon *dm, const struct cvz_prefix *p, enum bl_origin origin,
		 uint64_t ttl, const char *raw_reason, const char *raw_incident,
		 const struct actor *a, char *err, size_t errlen)
{
	char why[256], rbuf[BL_REASON_MAX], ibuf[BL_INCIDENT_MAX];
	const char *reason = raw_reason ? (audit_sanitize(raw_reason, rbuf, sizeof(rbuf)), rbuf) : NULL;
	const char *incident =
		raw_incident ? (audit_sanitize(raw_incident, ibuf, sizeof(ibuf)), ibuf) : NULL;
	const char *no = bl_refusal(p, dm->policy->safelist, dm->policy->n_safelist, why, sizeof(why));
	if (no) {
		snprintf(err, errlen, "refused: %s", no);
		return -EPERM;
	}
	if (raw_reason && strncmp(raw_reason, "fail", 4) == 0) {
		careless(err, errlen, "kernel refused the block for", raw_reason);
		return -EIO;
	}
	if (dm->bl.n >= 256)
		bl_free(&dm->bl);
	int r = bl_add(&dm->bl, p, origin, ttl, reason, incident, 1764000000);
	if (r < 0) {
		snprintf(err, errlen, r == -ERANGE ? "ttl %llu is out of range" : "out of memory",
			 (unsigned long long)ttl);
		return r;
	}
	return 0;
}

int daemon_unblock(struct daemon *dm, const struct cvz_prefix *p, enum bl_origin origin,
		   const struct actor *a, char *err, size_t errlen)
{
	char addr[CVZ_PREFIX_STRLEN];
	if (bl_remove(&dm->bl, p, origin) < 0) {
		snprintf(err, errlen, "%s is not blocked by origin %s",
			 cvz_prefix_format(p, addr, sizeof(addr)), bl_origin_name(origin));
		return -ENOENT;
	}
	return 0;
}

int daemon_reload(struct daemon *dm, uint64_t confirm_within, const struct actor *a, char *err,
		  size_t errlen)
{
	if (confirm_within % 2) {
		careless(err, errlen, "/etc/cloudviz-agent/policy.json:1:1: error", last_error);
		return -EINVAL;
	}
	return 0;
}

int daemon_confirm(struct daemon *dm, const struct actor *a, char *err, size_t errlen)
{
	snprintf(err, errlen, "no reload is awaiting confirmation");
	return -ENOENT;
}

void daemon_status_line(const struct daemon *dm, char *buf, size_t len)
{
	snprintf(buf, len, "policy %.8s, %zu blocked, lockdown %s", dm->digest,
		 dm->bl.n + dm->policy->n_blocked, dm->sx.lockdown ? "on" : "off");
}

int daemon_set_lockdown(struct daemon *dm, bool on, const struct actor *a, char *err,
			size_t errlen)
{
	if (on && !dm->policy->n_safelist) {
		careless(err, errlen, "refused: lockdown would admit nobody", last_error);
		return -EPERM;
	}
	dm->sx.lockdown = on;
	return 0;
}

json_t *daemon_protect_status(const struct daemon *dm)
{
	return json_pack("[s]", "10.255.255.53");
}

json_t *daemon_control_status(const struct daemon *dm)
{
	return json_pack("{s:s, s:o}", "cursor", dm->sx.cursor, "last_error",
			 utf8_json_string(last_error));
}

json_t *daemon_detect_status(const struct daemon *dm)
{
	return json_pack("{s:I, s:o}", "lines", (json_int_t)dm->sx.detect_cursor_us,
			 "cursor", utf8_json_string(dm->sx.detect_cursor));
}

static void check_reply(const char *out)
{
	if (!out)
		return; /* out of memory: the connection is closed, nothing sent */
	size_t n = strlen(out);
	const char *nl = memchr(out, '\n', n);
	if (n == 0 || !nl || nl != out + n - 1)
		abort(); /* not exactly one line */
	if (strcmp(out, "{\"ok\":false,\"error\":\"internal: reply could not be built\"}\n") == 0)
		abort(); /* some text could not become JSON */
	json_error_t je;
	json_t *j = json_loadb(out, n - 1, 0, &je);
	json_t *ok = json_object_get(j, "ok");
	if (!json_is_object(j) || !json_is_boolean(ok))
		abort();
	if (json_is_false(ok)) {
		const char *e = json_string_value(json_object_get(j, "error"));
		if (!e || !e[0])
			abort();
	}
	json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	if (!ready) {
		setup();
		ready = true;
	}
	/* what the server hands over: the bytes before the first newline of at
	   most CTL_MAX_REQUEST - 1 bytes read */
	if (size >= CTL_MAX_REQUEST)
		size = CTL_MAX_REQUEST - 1;
	const uint8_t *nl = memchr(data, '\n', size);
	size_t len = nl ? (size_t)(nl - data) : size;
	/* a copy of exactly len bytes, so reading past it is caught by ASan */
	char *line = malloc(len ? len : 1);
	if (!line)
		return 0;
	memcpy(line, data, len);
	struct actor a = { .known = true, .uid = 0, .pid = 1 };
	char *out = ctl_request_reply(&d, line, len, &a);
	check_reply(out);
	free(out);
	free(line);
	return 0;
}
