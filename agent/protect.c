/* Protected addresses: resolvers and the control plane (see protect.h). */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "protect.h"

const char *protect_source_what(enum protect_source s)
{
	switch (s) {
	case PROTECT_RESOLVER:
		return "resolver";
	case PROTECT_CONTROL_API:
		return "control API's own address";
	case PROTECT_SOURCES:
		break;
	}
	return "protected address";
}

static bool same(const struct cvz_prefix *a, const struct cvz_prefix *b)
{
	return a->family == b->family && a->len == b->len && memcmp(a->addr, b->addr, 16) == 0;
}

bool protect_add(struct cvz_prefix *v, size_t *n, size_t cap, const struct cvz_prefix *p)
{
	for (size_t i = 0; i < *n; i++)
		if (same(&v[i], p))
			return false;
	if (cap == 0)
		return false;
	if (*n == cap) {
		memmove(v, v + 1, (cap - 1) * sizeof(*v));
		(*n)--;
	}
	v[(*n)++] = *p;
	return true;
}

/* One host address (no prefix length), an IPv6 zone dropped. */
static int parse_host(const char *s, size_t len, struct cvz_prefix *out)
{
	char buf[64];
	size_t zone = strcspn(s, "%");
	if (zone < len)
		len = zone;
	if (len == 0 || len >= sizeof(buf) || memchr(s, '/', len))
		return -EINVAL;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return cvz_prefix_parse(buf, out, NULL, NULL, 0);
}

static int read_bounded(const char *path, char **out, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	struct stat st = { 0 };
	char *buf = NULL;
	size_t got = 0;
	int r = fd < 0 || fstat(fd, &st) < 0 ? -errno : 0;
	if (r == 0 && !S_ISREG(st.st_mode))
		r = -EINVAL;
	else if (r == 0 && st.st_size > RESOLV_CONF_MAX_BYTES)
		r = -EFBIG;
	else if (r == 0 && !(buf = malloc(RESOLV_CONF_MAX_BYTES + 1)))
		r = -ENOMEM;
	/* one byte more than the cap: a file that grew after the fstat */
	while (r == 0 && buf && got < RESOLV_CONF_MAX_BYTES + 1) {
		ssize_t k = read(fd, buf + got, RESOLV_CONF_MAX_BYTES + 1 - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			r = -errno;
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	if (fd >= 0)
		close(fd);
	if (r == 0 && got > RESOLV_CONF_MAX_BYTES)
		r = -EFBIG;
	if (r < 0 || !buf) {
		free(buf);
		snprintf(err, errlen, "%s: %s", path,
			 r == -EINVAL ? "not a regular file"
			 : r == -EFBIG ? "larger than 65536 bytes"
				       : strerror(r < 0 ? -r : ENOMEM));
		return r < 0 ? r : -ENOMEM;
	}
	buf[got] = '\0';
	*out = buf;
	return 0;
}

int protect_read_resolv_conf(const char *path, struct cvz_prefix *out, size_t max, char *err,
			     size_t errlen)
{
	char *text = NULL;
	int r = read_bounded(path, &text, err, errlen);
	if (r < 0)
		return r;
	struct cvz_prefix found[PROTECT_MAX] = { { 0 } };
	size_t n = 0, cap = max < PROTECT_MAX ? max : PROTECT_MAX;
	for (char *line = text, *next; line && n < cap; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		/* glibc: the keyword at the start of the line, then blanks */
		if (strncmp(line, "nameserver", 10) != 0 || (line[10] != ' ' && line[10] != '\t'))
			continue;
		const char *a = line + 10 + strspn(line + 10, " \t");
		struct cvz_prefix p;
		bool dup = false;
		if (parse_host(a, strcspn(a, " \t\r#;"), &p) < 0)
			continue;
		for (size_t i = 0; i < n; i++)
			dup |= same(&found[i], &p);
		if (!dup)
			found[n++] = p;
	}
	free(text);
	memcpy(out, found, n * sizeof(*out));
	return (int)n;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(CURLU *, curl_url_cleanup)

int protect_resolve_url(const char *url, struct cvz_prefix *out, size_t max, char *err,
			size_t errlen)
{
	_cleanup_(curl_url_cleanupp) CURLU *u = curl_url();
	char *host = NULL;
	if (!u) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, 0);
	if (uc == CURLUE_OK)
		uc = curl_url_get(u, CURLUPART_HOST, &host, 0);
	if (uc != CURLUE_OK) {
		snprintf(err, errlen, "\"%.80s\": %s", url, curl_url_strerror(uc));
		return -EINVAL;
	}
	/* an IPv6 literal comes back in brackets */
	size_t len = strlen(host);
	const char *h = host;
	if (len >= 2 && h[0] == '[' && h[len - 1] == ']') {
		h++;
		len -= 2;
	}
	struct cvz_prefix p;
	size_t cap = max < PROTECT_MAX ? max : PROTECT_MAX, n = 0;
	struct cvz_prefix found[PROTECT_MAX] = { { 0 } };
	if (parse_host(h, len, &p) == 0) {
		curl_free(host);
		if (cap)
			out[0] = p;
		return cap ? 1 : 0;
	}
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	int g = getaddrinfo(host, NULL, &hints, &res);
	if (g != 0) {
		snprintf(err, errlen, "%s: %s", host, gai_strerror(g));
		curl_free(host);
		return g == EAI_MEMORY ? -ENOMEM : -EHOSTUNREACH;
	}
	curl_free(host);
	for (const struct addrinfo *ai = res; ai && n < cap; ai = ai->ai_next) {
		char text[INET6_ADDRSTRLEN];
		const void *a = ai->ai_family == AF_INET
					? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
				: ai->ai_family == AF_INET6
					? (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr
					: NULL;
		if (!a || !inet_ntop(ai->ai_family, a, text, sizeof(text)) ||
		    cvz_prefix_parse(text, &p, NULL, NULL, 0) < 0)
			continue;
		protect_add(found, &n, cap, &p);
	}
	freeaddrinfo(res);
	memcpy(out, found, n * sizeof(*out));
	return (int)n;
}
