/* The control API client (see control.h).
 *
 * libcurl's multi interface is driven by the daemon's sd-event loop: curl
 * tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION) and when to wake
 * it (CURLMOPT_TIMERFUNCTION); sd-event calls curl_multi_socket_action() back.
 * Two transfers at most: the long poll and one report. Each keeps its easy
 * handle, so the multi handle's connection cache gives keep-alive.
 *
 * TLS is strict by construction: https only (also for redirects, which are
 * not followed anyway), TLS 1.2 minimum with the guide's TLS 1.2 ciphers,
 * peer and host name verified against ca_file only (no system CAs), optional
 * public key pinning, no proxy from the environment. Credentials are handed
 * to curl as in-memory blobs; the key blob is not copied by curl. */
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <time.h>

#include "audit.h"
#include "cleanup.h"
#include "control.h"
#include "utf8.h"

#define CONNECT_TIMEOUT_S 10L
#define REQUEST_SLACK_S 15L    /* request timeout: wait + this */
#define REPORT_TIMEOUT_S 30L
#define BACKOFF_CAP_MS 300000u /* 5 min */
#define TLS12_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!MD5:!DSS"
#define ERR_BODY_MAX 200       /* bytes of an error reply quoted in the journal */

/* Credentials shared by the transfers that started with them. */
struct cred_ref {
	struct creds *c;
	unsigned refs;
};

struct xfer {
	struct control *ctl;
	CURL *easy;
	bool active;
	bool is_report;
	struct cred_ref *creds;
	struct curl_slist *headers;
	char *buf; /* reply body */
	size_t len, cap;
	bool too_big;
	char *post; /* report: the body being sent */
	char errbuf[CURL_ERROR_SIZE];
	/* the first fatal TLS alert the server sent on a connection this
	   transfer opened (OpenSSL's description, lower case), "" if none */
	char alert[64];
	/* the last request got an HTTP answer: its connection may be kept */
	bool proven;
};

struct control {
	sd_event *ev;
	CURLM *multi;
	sd_event_source *curl_timer, *poll_timer, *report_timer;
	char node_id[64];
	const struct control_api_config *cfg;
	struct cred_ref *creds;
	struct control_hooks hooks;
	struct xfer poll, report;
	char *queue[CONTROL_REPORT_QUEUE];
	size_t qn;
	unsigned report_attempt;
	bool fresh_connect;
	struct control_stats stats;
};

/* ---- credentials --------------------------------------------------------- */

static struct cred_ref *cred_ref_new(struct creds *c)
{
	struct cred_ref *r = calloc(1, sizeof(*r));
	if (r)
		r->c = c;
	return r;
}

static void cred_ref_put(struct control *ctl, struct cred_ref *r)
{
	if (!r)
		return;
	if (r->refs)
		r->refs--;
	if (!r->refs && r != ctl->creds) {
		creds_free(r->c);
		free(r);
	}
}

/* ---- backoff --------------------------------------------------------------- */

/* Full jitter: a uniform delay in [0, min(cap, 1 s * 2^(attempt-1))]. */
static uint64_t backoff_usec(unsigned attempt)
{
	uint32_t window_ms = 1000;
	for (unsigned i = 1; i < attempt && window_ms < BACKOFF_CAP_MS; i++)
		window_ms *= 2;
	if (window_ms > BACKOFF_CAP_MS)
		window_ms = BACKOFF_CAP_MS;
	uint32_t rnd = 0;
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
		rnd = (uint32_t)time(NULL) * 2654435761u;
	return (uint64_t)(rnd % (window_ms + 1)) * 1000ULL;
}

static void arm(sd_event_source *s, uint64_t usec)
{
	sd_event_source_set_time_relative(s, usec);
	sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

/* ---- transfers ------------------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
	struct xfer *x = ud;
	size_t n = size * nmemb, max = (size_t)x->ctl->cfg->max_response_bytes;
	if (x->len + n > max) {
		x->too_big = true;
		return 0; /* aborts the transfer: nothing of it is used */
	}
	if (x->len + n + 1 > x->cap) {
		size_t ncap = x->cap ? x->cap : 16384;
		while (ncap < x->len + n + 1)
			ncap *= 2;
		char *nb = realloc(x->buf, ncap);
		if (!nb)
			return 0;
		x->buf = nb;
		x->cap = ncap;
	}
	memcpy(x->buf + x->len, data, n);
	x->len += n;
	x->buf[x->len] = '\0';
	return n;
}

/* Header strings hold the token: zero them before curl frees them. */
static void free_headers(struct xfer *x)
{
	for (struct curl_slist *h = x->headers; h; h = h->next)
		explicit_bzero(h->data, strlen(h->data));
	curl_slist_free_all(x->headers);
	x->headers = NULL;
}

static int build_headers(struct xfer *x, const struct creds *c)
{
	static const char prefix[] = "Authorization: Bearer ";
	size_t n = sizeof(prefix) + c->token.len;
	char *auth = malloc(n);
	if (!auth)
		return -ENOMEM;
	snprintf(auth, n, "%s%s", prefix, (const char *)c->token.p);
	struct curl_slist *h = curl_slist_append(NULL, auth);
	explicit_bzero(auth, n);
	free(auth);
	x->headers = h;
	if (h)
		h = curl_slist_append(h, "Accept: application/json");
	if (h && x->is_report)
		h = curl_slist_append(h, "Content-Type: application/json");
	if (!h) {
		free_headers(x);
		return -ENOMEM;
	}
	return 0;
}

/* ---- TLS alerts ------------------------------------------------------------ */

/* With TLS 1.3 the client's handshake is done before the server has checked
 * the client certificate: the server's refusal (certificate_required,
 * unknown_ca, bad_certificate) arrives once curl is already sending the
 * request, and curl then reports whatever the socket did first (a send error,
 * a broken pipe, "bad write retry", a reset) instead of the alert. OpenSSL
 * still processes the alert record when it reads it, at the latest when curl
 * drains the connection before closing it; its info callback tells us. The
 * SSL_CTX of each connection carries the transfer that opened it.
 *
 * curl closes a connection at once when a transfer fails while receiving,
 * but one whose request could not be sent goes back to the cache, its alert
 * unread until the next transfer finds it dead: too late for the journal.
 * So a transfer whose connection has not yet carried an answer (the first
 * request, any after a failure or new credentials) forbids reuse: its
 * connection is closed, the alert read, before curl says it is done. Once an
 * answer came the next requests keep the connection alive. */
static int alert_ex_index = -1;

static void on_tls_info(const SSL *ssl, int where, int ret)
{
	if (!(where & SSL_CB_READ_ALERT) || (ret >> 8) != SSL3_AL_FATAL)
		return;
	struct xfer *x = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), alert_ex_index);
	if (!x || x->alert[0])
		return;
	snprintf(x->alert, sizeof(x->alert), "%s", SSL_alert_desc_string_long(ret));
	for (char *p = x->alert; *p; p++)
		*p = (char)tolower((unsigned char)*p);
}

static CURLcode on_ssl_ctx(CURL *e, void *sslctx, void *ud)
{
	if (alert_ex_index < 0 || !SSL_CTX_set_ex_data(sslctx, alert_ex_index, ud))
		return CURLE_OK; /* the alert is then told only as curl tells it */
	SSL_CTX_set_info_callback(sslctx, on_tls_info);
	return CURLE_OK;
}

static int set_tls(CURL *e, const struct control_api_config *cfg, const struct creds *c,
		   struct xfer *x)
{
	struct curl_blob ca = { c->ca_pem, c->ca_len, CURL_BLOB_COPY };
	struct curl_blob cert = { c->cert_pem, c->cert_len, CURL_BLOB_COPY };
	/* the key stays in our non-dumpable mapping: curl only points at it */
	struct curl_blob key = { c->key.p, c->key.len, CURL_BLOB_NOCOPY };
	CURLcode r = CURLE_OK;
#define SET(opt, val) (r = r ? r : curl_easy_setopt(e, opt, val))
	SET(CURLOPT_PROTOCOLS_STR, "https");
	SET(CURLOPT_REDIR_PROTOCOLS_STR, "https");
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	SET(CURLOPT_SSL_CIPHER_LIST, TLS12_CIPHERS);
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	SET(CURLOPT_CAINFO, NULL); /* ca_file only: no system bundle */
	SET(CURLOPT_CAPATH, NULL);
	SET(CURLOPT_CAINFO_BLOB, &ca);
	SET(CURLOPT_SSLCERTTYPE, "PEM");
	SET(CURLOPT_SSLCERT_BLOB, &cert);
	SET(CURLOPT_SSLKEYTYPE, "PEM");
	SET(CURLOPT_SSLKEY_BLOB, &key);
	SET(CURLOPT_PINNEDPUBLICKEY, cfg->pinned_pubkey);
	SET(CURLOPT_PROXY, ""); /* never a proxy from the environment */
	SET(CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
	SET(CURLOPT_SSL_CTX_DATA, x);
#undef SET
	return r == CURLE_OK ? 0 : -EINVAL;
}

static int setup(struct xfer *x, const char *url, long timeout_s)
{
	struct control *ctl = x->ctl;
	CURL *e = x->easy;
	CURLcode r = CURLE_OK;
	x->len = 0;
	x->too_big = false;
	x->errbuf[0] = '\0';
	x->alert[0] = '\0';
	if (build_headers(x, ctl->creds->c) < 0)
		return -ENOMEM;
#define SET(opt, val) (r = r ? r : curl_easy_setopt(e, opt, val))
	SET(CURLOPT_URL, url);
	SET(CURLOPT_PRIVATE, x);
	SET(CURLOPT_HTTPHEADER, x->headers);
	SET(CURLOPT_USERAGENT, "cloudviz-agent/" CVZ_VERSION);
	SET(CURLOPT_WRITEFUNCTION, on_body);
	SET(CURLOPT_WRITEDATA, x);
	SET(CURLOPT_ERRORBUFFER, x->errbuf);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
	SET(CURLOPT_TIMEOUT, timeout_s);
	SET(CURLOPT_TCP_KEEPALIVE, 1L);
	SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)ctl->cfg->max_response_bytes);
	SET(CURLOPT_FRESH_CONNECT, ctl->fresh_connect && !x->is_report ? 1L : 0L);
	SET(CURLOPT_FORBID_REUSE, x->proven ? 0L : 1L);
#undef SET
	if (r != CURLE_OK || set_tls(e, ctl->cfg, ctl->creds->c, x) < 0) {
		free_headers(x);
		return -EINVAL;
	}
	x->creds = ctl->creds;
	x->creds->refs++;
	return 0;
}

static void xfer_done(struct xfer *x)
{
	if (x->active)
		curl_multi_remove_handle(x->ctl->multi, x->easy);
	x->active = false;
	free_headers(x);
	/* the key blob is ours: curl must not point at it once it may be freed */
	curl_easy_setopt(x->easy, CURLOPT_SSLKEY_BLOB, NULL);
	cred_ref_put(x->ctl, x->creds);
	x->creds = NULL;
}

static int start(struct xfer *x)
{
	if (curl_multi_add_handle(x->ctl->multi, x->easy) != CURLM_OK) {
		xfer_done(x);
		return -EIO;
	}
	x->active = true;
	return 0;
}

/* ---- failures ------------------------------------------------------------- */

static bool is_tls_failure(CURLcode r, const struct xfer *x)
{
	const char *errbuf = x->errbuf;
	if (x->alert[0]) /* the server said so, whatever curl's code */
		return true;
	switch (r) {
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_CLIENTCERT:
		return true;
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR: /* a TLS 1.3 server rejects our cert after the handshake */
		return strstr(errbuf, "SSL") || strstr(errbuf, "alert");
	default:
		return false;
	}
}

/* Journals why a request failed; returns the text (sanitized) in out. */
static void journal_failure(struct xfer *x, CURLcode r, long status, const char *what,
			    char *out, size_t len)
{
	struct audit_fields f = { 0 };
	char detail[512];
	if (r == CURLE_OK) {
		char body[ERR_BODY_MAX + 1] = "";
		if (x->buf && x->len)
			utf8_snprintf(body, sizeof(body), "%s", x->buf);
		utf8_snprintf(detail, sizeof(detail), "HTTP %ld%s%s", status, body[0] ? ": " : "", body);
		f.has_http = true;
		f.http_status = status;
	} else if (x->too_big || r == CURLE_FILESIZE_EXCEEDED) {
		snprintf(detail, sizeof(detail), "reply larger than max_response_bytes (%llu bytes)",
			 (unsigned long long)x->ctl->cfg->max_response_bytes);
	} else {
		snprintf(detail, sizeof(detail), "%s%s%s", curl_easy_strerror(r),
			 x->errbuf[0] ? ": " : "", x->errbuf);
	}
	if (r != CURLE_OK && x->alert[0] && !strstr(detail, x->alert)) {
		char alert[sizeof(detail)];
		snprintf(alert, sizeof(alert), "the server sent the TLS alert \"%s\" (%s)",
			 x->alert, detail);
		snprintf(detail, sizeof(detail), "%s", alert);
	}
	if (r != CURLE_OK && is_tls_failure(r, x)) {
		/* curl reports a chain verdict only when the chain was checked; it
		   starts at 1 (X509_V_ERR_UNSPECIFIED), which would blame the
		   certificate for a protocol or cipher mismatch */
		long vr = 0;
		if (r == CURLE_PEER_FAILED_VERIFICATION)
			curl_easy_getinfo(x->easy, CURLINFO_SSL_VERIFYRESULT, &vr);
		if (vr > X509_V_ERR_UNSPECIFIED && !strstr(detail, X509_verify_cert_error_string(vr)))
			snprintf(detail + strlen(detail), sizeof(detail) - strlen(detail),
				 " (verify result: %s)", X509_verify_cert_error_string(vr));
		f.detail = detail;
		audit(AE_TLS_ERROR, &f, "TLS with the control API failed (%s): %s", what, detail);
	} else {
		f.detail = detail;
		audit(AE_CONTROL_SYNC_FAILED, &f, "Control API %s failed: %s", what, detail);
	}
	audit_sanitize(detail, out, len);
}

/* ---- polling ---------------------------------------------------------------- */

static void start_poll(struct control *ctl)
{
	struct xfer *x = &ctl->poll;
	const char *cursor = ctl->hooks.cursor(ctl->hooks.ud);
	char *esc = cursor[0] ? curl_easy_escape(x->easy, cursor, 0) : NULL;
	char *url = NULL;
	int r = asprintf(&url, "%s/api/v1/agents/%s/instructions?wait=%u%s%s", ctl->cfg->url,
			 ctl->node_id, ctl->cfg->wait, esc ? "&cursor=" : "", esc ? esc : "");
	curl_free(esc);
	if (r < 0 || setup(x, url, (long)ctl->cfg->wait + REQUEST_SLACK_S) < 0 || start(x) < 0) {
		free(url);
		ctl->stats.attempt++;
		arm(ctl->poll_timer, backoff_usec(ctl->stats.attempt));
		return;
	}
	free(url);
	ctl->fresh_connect = false;
	ctl->stats.polls++;
}

static void poll_failed(struct control *ctl)
{
	ctl->stats.failures++;
	ctl->stats.attempt++;
	arm(ctl->poll_timer, backoff_usec(ctl->stats.attempt));
}

static void poll_finished(struct control *ctl, CURLcode r)
{
	struct xfer *x = &ctl->poll;
	long status = 0;
	char *ip = NULL, ipbuf[64] = "";
	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	if (curl_easy_getinfo(x->easy, CURLINFO_PRIMARY_IP, &ip) == CURLE_OK && ip)
		snprintf(ipbuf, sizeof(ipbuf), "%s", ip);
	xfer_done(x);
	x->proven = r == CURLE_OK;
	if (r != CURLE_OK || (status != 200 && status != 204)) {
		journal_failure(x, r, status, "poll", ctl->stats.last_error,
				sizeof(ctl->stats.last_error));
		poll_failed(ctl);
		return;
	}
	if (status == 200) {
		char err[512];
		int ar = ctl->hooks.on_reply(ctl->hooks.ud, x->buf ? x->buf : "", x->len, ipbuf, err,
					     sizeof(err));
		if (ar < 0) {
			struct audit_fields f = { .detail = err };
			audit(AE_CONTROL_SYNC_FAILED, &f,
			      "Control API reply refused, nothing of it applied: %s", err);
			audit_sanitize(err, ctl->stats.last_error, sizeof(ctl->stats.last_error));
			poll_failed(ctl);
			return;
		}
		ctl->stats.replies++;
	}
	/* a big snapshot's buffer is not kept for the next 204s */
	if (x->cap > (1u << 20)) {
		free(x->buf);
		x->buf = NULL;
		x->cap = 0;
	}
	x->len = 0;
	ctl->stats.attempt = 0;
	ctl->stats.last_success = (int64_t)time(NULL);
	ctl->stats.last_error[0] = '\0';
	start_poll(ctl);
}

static int on_poll_timer(sd_event_source *s, uint64_t usec, void *ud)
{
	struct control *ctl = ud;
	if (!ctl->poll.active)
		start_poll(ctl);
	return 0;
}

/* ---- reports ------------------------------------------------------------------ */

static void start_report(struct control *ctl)
{
	struct xfer *x = &ctl->report;
	if (x->active || !ctl->qn || sd_event_source_get_enabled(ctl->report_timer, NULL) > 0)
		return;
	char *url = NULL;
	if (asprintf(&url, "%s/api/v1/agents/%s/reports", ctl->cfg->url, ctl->node_id) < 0)
		return;
	x->post = ctl->queue[0];
	int r = setup(x, url, REPORT_TIMEOUT_S);
	free(url);
	if (r == 0 && (curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, x->post) != CURLE_OK ||
		       curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE_LARGE,
					(curl_off_t)strlen(x->post)) != CURLE_OK))
		r = -EINVAL;
	if (r == 0)
		r = start(x);
	else
		xfer_done(x);
	if (r < 0) {
		ctl->report_attempt++;
		arm(ctl->report_timer, backoff_usec(ctl->report_attempt));
	}
}

static void report_finished(struct control *ctl, CURLcode r)
{
	struct xfer *x = &ctl->report;
	long status = 0;
	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	xfer_done(x);
	x->proven = r == CURLE_OK;
	if (r != CURLE_OK || status < 200 || status > 299) {
		char why[256];
		journal_failure(x, r, status, "report", why, sizeof(why));
		ctl->stats.reports_failed++;
		ctl->report_attempt++;
		arm(ctl->report_timer, backoff_usec(ctl->report_attempt));
		return;
	}
	ctl->stats.reports_sent++;
	ctl->report_attempt = 0;
	free(ctl->queue[0]);
	memmove(ctl->queue, ctl->queue + 1, (ctl->qn - 1) * sizeof(ctl->queue[0]));
	ctl->qn--;
	x->post = NULL;
	start_report(ctl);
}

static int on_report_timer(sd_event_source *s, uint64_t usec, void *ud)
{
	struct control *ctl = ud;
	sd_event_source_set_enabled(s, SD_EVENT_OFF);
	start_report(ctl);
	return 0;
}

void control_queue_report(struct control *ctl, char *json)
{
	if (!json)
		return;
	if (ctl->qn == CONTROL_REPORT_QUEUE) {
		/* drop the oldest one not being sent right now */
		size_t victim = ctl->report.active ? 1 : 0;
		free(ctl->queue[victim]);
		memmove(ctl->queue + victim, ctl->queue + victim + 1,
			(ctl->qn - victim - 1) * sizeof(ctl->queue[0]));
		ctl->qn--;
		struct audit_fields f = { .detail = "report queue full" };
		audit(AE_CONTROL_SYNC_FAILED, &f,
		      "Control API unreachable for reports: %d queued, the oldest was dropped",
		      CONTROL_REPORT_QUEUE);
	}
	ctl->queue[ctl->qn++] = json;
	start_report(ctl);
}

/* ---- curl <-> sd-event ------------------------------------------------------- */

static void check_done(struct control *ctl)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(ctl->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		struct xfer *x = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		CURLcode r = m->data.result;
		if (x == &ctl->poll)
			poll_finished(ctl, r);
		else if (x == &ctl->report)
			report_finished(ctl, r);
	}
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *ud)
{
	struct control *ctl = ud;
	int running, mask = 0;
	if (revents & EPOLLIN)
		mask |= CURL_CSELECT_IN;
	if (revents & EPOLLOUT)
		mask |= CURL_CSELECT_OUT;
	if (revents & (EPOLLERR | EPOLLHUP))
		mask |= CURL_CSELECT_ERR;
	curl_multi_socket_action(ctl->multi, fd, mask, &running);
	check_done(ctl);
	return 0;
}

static int on_curl_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct control *ctl = userp;
	sd_event_source *src = socketp;
	if (what == CURL_POLL_REMOVE) {
		if (src) {
			sd_event_source_disable_unref(src);
			curl_multi_assign(ctl->multi, fd, NULL);
		}
		return 0;
	}
	uint32_t events = (what & CURL_POLL_IN ? EPOLLIN : 0u) | (what & CURL_POLL_OUT ? EPOLLOUT : 0u);
	if (!src) {
		if (sd_event_add_io(ctl->ev, &src, fd, events, on_io, ctl) < 0)
			return -1;
		curl_multi_assign(ctl->multi, fd, src);
		return 0;
	}
	return sd_event_source_set_io_events(src, events) < 0 ? -1 : 0;
}

static int on_curl_timer(sd_event_source *s, uint64_t usec, void *ud)
{
	struct control *ctl = ud;
	int running;
	curl_multi_socket_action(ctl->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(ctl);
	return 0;
}

static int curl_wants_timer(CURLM *m, long timeout_ms, void *userp)
{
	struct control *ctl = userp;
	if (timeout_ms < 0)
		sd_event_source_set_enabled(ctl->curl_timer, SD_EVENT_OFF);
	else
		arm(ctl->curl_timer, (uint64_t)timeout_ms * 1000ULL);
	return 0;
}

/* ---- life cycle ------------------------------------------------------------------- */

static int xfer_init(struct control *ctl, struct xfer *x, bool is_report)
{
	x->ctl = ctl;
	x->is_report = is_report;
	x->easy = curl_easy_init();
	return x->easy ? 0 : -ENOMEM;
}

int control_start(sd_event *ev, const char *node_id, const struct control_api_config *cfg,
		  struct creds *creds, const struct control_hooks *hooks, struct control **out)
{
	static bool global_done;
	if (!global_done) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return -EIO;
		alert_ex_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
		global_done = true;
	}
	struct control *ctl = calloc(1, sizeof(*ctl));
	if (!ctl)
		return -ENOMEM;
	ctl->ev = sd_event_ref(ev);
	ctl->cfg = cfg;
	ctl->hooks = *hooks;
	snprintf(ctl->node_id, sizeof(ctl->node_id), "%s", node_id);
	ctl->creds = cred_ref_new(creds);
	ctl->multi = curl_multi_init();
	int r = ctl->creds && ctl->multi ? 0 : -ENOMEM;
	if (!ctl->creds)
		creds_free(creds);
	r = r < 0 ? r : xfer_init(ctl, &ctl->poll, false);
	r = r < 0 ? r : xfer_init(ctl, &ctl->report, true);
	r = r < 0 ? r : sd_event_add_time(ev, &ctl->curl_timer, CLOCK_MONOTONIC, 0, 1000, on_curl_timer, ctl);
	r = r < 0 ? r : sd_event_add_time(ev, &ctl->poll_timer, CLOCK_MONOTONIC, 0, 1000, on_poll_timer, ctl);
	r = r < 0 ? r : sd_event_add_time(ev, &ctl->report_timer, CLOCK_MONOTONIC, 0, 1000, on_report_timer, ctl);
	if (r < 0) {
		control_free(ctl);
		return r;
	}
	sd_event_source_set_enabled(ctl->curl_timer, SD_EVENT_OFF);
	sd_event_source_set_enabled(ctl->report_timer, SD_EVENT_OFF);
	curl_multi_setopt(ctl->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
	curl_multi_setopt(ctl->multi, CURLMOPT_SOCKETDATA, ctl);
	curl_multi_setopt(ctl->multi, CURLMOPT_TIMERFUNCTION, curl_wants_timer);
	curl_multi_setopt(ctl->multi, CURLMOPT_TIMERDATA, ctl);
	arm(ctl->poll_timer, 0); /* the first poll, from the loop */
	*out = ctl;
	return 0;
}

void control_set_config(struct control *ctl, const struct control_api_config *cfg,
			struct creds *creds)
{
	if (!creds) { /* same section and credentials, moved to a new config */
		ctl->cfg = cfg;
		return;
	}
	struct cred_ref *nr = cred_ref_new(creds);
	if (!nr) {
		creds_free(creds);
		return;
	}
	struct cred_ref *old = ctl->creds;
	ctl->creds = nr;
	ctl->cfg = cfg;
	ctl->fresh_connect = true;
	ctl->poll.proven = ctl->report.proven = false;
	if (!old->refs) {
		creds_free(old->c);
		free(old);
	}
	/* a long poll may sit for minutes on the old credentials and URL */
	if (ctl->poll.active) {
		xfer_done(&ctl->poll);
		ctl->stats.attempt = 0;
		arm(ctl->poll_timer, 0);
	}
}

void control_get_stats(const struct control *ctl, struct control_stats *out)
{
	*out = ctl->stats;
	out->reports_queued = ctl->qn;
}

void control_free(struct control *ctl)
{
	if (!ctl)
		return;
	if (ctl->poll.easy) {
		xfer_done(&ctl->poll);
		curl_easy_cleanup(ctl->poll.easy);
	}
	if (ctl->report.easy) {
		xfer_done(&ctl->report);
		curl_easy_cleanup(ctl->report.easy);
	}
	free(ctl->poll.buf);
	free(ctl->report.buf);
	curl_multi_cleanup(ctl->multi);
	for (size_t i = 0; i < ctl->qn; i++)
		free(ctl->queue[i]);
	sd_event_source_disable_unref(ctl->curl_timer);
	sd_event_source_disable_unref(ctl->poll_timer);
	sd_event_source_disable_unref(ctl->report_timer);
	if (ctl->creds) {
		creds_free(ctl->creds->c);
		free(ctl->creds);
	}
	sd_event_unref(ctl->ev);
	free(ctl);
}
