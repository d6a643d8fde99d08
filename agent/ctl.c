/* Control protocol client and helpers (see ctl.h). */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "ctl.h"
#include "cvz_limits.h"

int parse_duration(const char *s, uint64_t *out)
{
	static const struct {
		char unit;
		uint64_t secs;
	} units[] = { { 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 } };
	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	char *end;
	errno = 0;
	unsigned long long n = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	uint64_t mult = 1;
	if (*end) {
		size_t i;
		for (i = 0; i < ELEMENTSOF(units); i++)
			if (*end == units[i].unit)
				break;
		if (i == ELEMENTSOF(units) || end[1])
			return -EINVAL;
		mult = units[i].secs;
	}
	if (n > UINT64_MAX / mult || n * mult > (uint64_t)CVZ_TTL_MAX)
		return -EINVAL; /* more than ten years is a typo */
	*out = n * mult;
	return 0;
}

char *format_duration(uint64_t secs, char *buf, size_t len)
{
	uint64_t d = secs / 86400, h = secs / 3600 % 24, m = secs / 60 % 60, s = secs % 60;
	size_t off = 0;
	buf[0] = '\0';
	if (d)
		off += (size_t)snprintf(buf + off, len - off, "%llud", (unsigned long long)d);
	if (h && off < len)
		off += (size_t)snprintf(buf + off, len - off, "%lluh", (unsigned long long)h);
	if (m && off < len)
		off += (size_t)snprintf(buf + off, len - off, "%llum", (unsigned long long)m);
	if ((s || !secs) && off < len)
		snprintf(buf + off, len - off, "%llus", (unsigned long long)s);
	return buf;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for fd to be ready for events until the deadline. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd p = { .fd = fd, .events = events };
		int r = poll(&p, 1, (int)left);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

static int send_all(int fd, const char *s, size_t n, int64_t deadline)
{
	while (n) {
		int r = wait_fd(fd, POLLOUT, deadline);
		if (r < 0)
			return r;
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (w < 0)
			return -errno;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads until EOF (the server closes after its reply). */
static int recv_all(int fd, char **out, int64_t deadline)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	while (buf) {
		int r = wait_fd(fd, POLLIN, deadline);
		if (r < 0) {
			free(buf);
			return r;
		}
		if (len + 1 == cap) {
			char *nb = cap < (64u << 20) ? realloc(buf, cap * 2) : NULL;
			if (!nb)
				break;
			buf = nb;
			cap *= 2;
		}
		ssize_t n = recv(fd, buf + len, cap - len - 1, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0) {
			int err = -errno;
			free(buf);
			return err;
		}
		if (n == 0) {
			buf[len] = '\0';
			*out = buf;
			return 0;
		}
		len += (size_t)n;
	}
	free(buf);
	return -ENOMEM;
}

int ctl_call(const char *socket_path, json_t *req, int timeout_ms, json_t **reply)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(socket_path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, socket_path, strlen(socket_path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int64_t deadline = now_ms() + timeout_ms;
	char *text = NULL, *answer = NULL;
	int r = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
	if (r == 0) {
		text = json_dumps(req, JSON_COMPACT);
		r = text ? 0 : -ENOMEM;
	}
	if (r == 0)
		r = send_all(fd, text, strlen(text), deadline);
	if (r == 0)
		r = send_all(fd, "\n", 1, deadline);
	if (r == 0)
		r = recv_all(fd, &answer, deadline);
	close(fd);
	free(text);
	if (r < 0)
		return r;
	json_error_t je;
	json_t *j = json_loads(answer, 0, &je);
	free(answer);
	if (!j || !json_is_object(j)) {
		json_decref(j);
		return -EBADMSG;
	}
	*reply = j;
	return 0;
}
