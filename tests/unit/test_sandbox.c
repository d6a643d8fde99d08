/* The sandbox, applied for real in child processes: each child drops to
 * CAP_NET_ADMIN as user nobody, installs the daemon's seccomp filter,
 * reports that it is still alive (so a filter that kills too early cannot
 * pass for one that kills the right call), then attempts one forbidden
 * thing. The parent asserts how it was denied: killed by SIGSYS, or the
 * call failed with the errno the design expects. Needs root (to switch
 * user); skipped otherwise. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/netlink.h>
#include <netdb.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "sandbox.h"

enum attempt {
	A_EXECVE, A_PTRACE, A_SHADOW, A_PACKET, A_MOUNT, A_NETLINK, A_NETLINK_ROUTE,
	A_NETLINK_XFRM, A_NETLINK_GENERIC, A_MPROTECT_EXEC, A_MMAP_RX, A_MMAP_WX,
	A_GETADDRINFO, A_NONE
};

/* A page that is read-only now and made executable: what an exploit that
 * wrote its code somewhere does next. */
static int mprotect_exec(void)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -1;
	if (mprotect(p, 4096, PROT_READ) < 0) /* allowed: relro does this */
		return -1;
	return mprotect(p, 4096, PROT_READ | PROT_EXEC);
}

static int mmap_prot(int prot)
{
	void *p = mmap(NULL, 4096, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? -1 : munmap(p, 4096);
}

/* What curl's resolver thread does: glibc asks NETLINK_ROUTE for the
 * host's addresses first (refused), then reads /etc/hosts. */
static int resolve_localhost(void)
{
	struct addrinfo *res = NULL, hints = { .ai_socktype = SOCK_STREAM,
					       .ai_flags = AI_ADDRCONFIG };
	int r = getaddrinfo("localhost", "443", &hints, &res);
	if (r != 0) {
		errno = r == EAI_SYSTEM ? errno : EHOSTUNREACH;
		return -1;
	}
	freeaddrinfo(res);
	return 0;
}

/* In the child: the forbidden call; returns its errno (0: it worked). */
static int attempt(enum attempt a)
{
	int r = 0;
	switch (a) {
	case A_EXECVE: {
		char *argv[] = { "/bin/true", NULL };
		r = execve("/bin/true", argv, NULL);
		break;
	}
	case A_PTRACE:
		r = (int)ptrace(PTRACE_ATTACH, getppid(), NULL, NULL);
		break;
	case A_SHADOW:
		r = open("/etc/shadow", O_WRONLY | O_CLOEXEC);
		break;
	case A_PACKET:
		r = socket(AF_PACKET, SOCK_RAW, 0);
		break;
	case A_MOUNT:
		r = mount("none", "/mnt", "tmpfs", 0, NULL);
		break;
	case A_NETLINK: /* allowed: what the daemon needs */
		r = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
		break;
	case A_NETLINK_ROUTE:
		r = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
		break;
	case A_NETLINK_XFRM:
		r = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_XFRM);
		break;
	case A_NETLINK_GENERIC:
		r = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_GENERIC);
		break;
	case A_MPROTECT_EXEC:
		r = mprotect_exec();
		break;
	case A_MMAP_RX:
		r = mmap_prot(PROT_READ | PROT_EXEC);
		break;
	case A_MMAP_WX:
		r = mmap_prot(PROT_READ | PROT_WRITE | PROT_EXEC);
		break;
	case A_GETADDRINFO:
		r = resolve_localhost();
		break;
	case A_NONE:
		break;
	}
	return r < 0 ? errno : 0;
}

/* Forks a child that confines itself like the daemon (user nobody, then the
 * filter) and runs body(fd), which reports on fd. Returns what the child
 * wrote (NUL-terminated in buf) and its wait status. */
static int run_confined(void (*body)(int fd, void *arg), void *arg, char *buf, size_t len)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		char err[256];
		struct sandbox_user u;
		if (sandbox_lookup_user("nobody", &u, err, sizeof(err)) < 0 ||
		    sandbox_drop_privileges(&u, err, sizeof(err)) < 0 ||
		    sandbox_install_filter(false, err, sizeof(err)) < 0) {
			dprintf(p[1], "E%s\n", err);
			_exit(2);
		}
		body(p[1], arg);
		_exit(0);
	}
	close(p[1]);
	size_t n = 0;
	ssize_t k;
	while (n < len - 1 && (k = read(p[0], buf + n, len - 1 - n)) > 0)
		n += (size_t)k;
	buf[n] = '\0';
	close(p[0]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (buf[0] == 'E')
		fail_msg("child could not confine itself: %s", buf + 1);
	return st;
}

struct outcome {
	bool alive;   /* the child reported in after confining itself */
	int sig;      /* killed by this signal, or 0 */
	bool returned;
	int err;      /* errno of the attempt when it returned */
};

static void attempt_body(int fd, void *arg)
{
	dprintf(fd, "A\n");
	int e = attempt(*(enum attempt *)arg);
	dprintf(fd, "R%d\n", e);
}

static struct outcome run_child(enum attempt a)
{
	char buf[512];
	int st = run_confined(attempt_body, &a, buf, sizeof(buf));
	struct outcome o = { .alive = buf[0] == 'A' };
	const char *ret = strstr(buf, "\nR");
	if (ret) {
		o.returned = true;
		o.err = atoi(ret + 2);
	}
	if (WIFSIGNALED(st))
		o.sig = WTERMSIG(st);
	return o;
}

static void expect_killed(enum attempt a, const char *what)
{
	struct outcome o = run_child(a);
	if (!o.alive || o.sig != SIGSYS)
		fail_msg("%s: alive %d, signal %d, returned %d errno %d", what, o.alive, o.sig,
			 o.returned, o.err);
}

static void expect_errno(enum attempt a, int want, const char *what)
{
	struct outcome o = run_child(a);
	if (!o.alive || o.sig || !o.returned || o.err != want)
		fail_msg("%s: alive %d, signal %d, returned %d errno %d (want %d)", what, o.alive,
			 o.sig, o.returned, o.err, want);
}

static int need_root(void **state)
{
	(void)state;
	if (geteuid() != 0) {
		print_message("skipped: switching to user nobody needs root\n");
		skip();
	}
	return 0;
}

static void test_execve_killed(void **state)
{
	(void)state;
	expect_killed(A_EXECVE, "execve");
}

static void test_ptrace_killed(void **state)
{
	(void)state;
	expect_killed(A_PTRACE, "ptrace");
}

static void test_packet_socket_killed(void **state)
{
	(void)state;
	expect_killed(A_PACKET, "socket(AF_PACKET)");
}

static void test_mount_killed(void **state)
{
	(void)state;
	expect_killed(A_MOUNT, "mount");
}

/* openat is needed (reloads read files), so the filter lets it through:
 * the user switch and the dropped CAP_DAC_OVERRIDE deny it */
static void test_shadow_write_denied(void **state)
{
	(void)state;
	expect_errno(A_SHADOW, EACCES, "open(/etc/shadow, O_WRONLY)");
}

/* the daemon's own needs pass: the filter does not kill everything */
static void test_netlink_allowed(void **state)
{
	(void)state;
	expect_errno(A_NETLINK, 0, "socket(AF_NETLINK, NETLINK_NETFILTER)");
	expect_errno(A_NONE, 0, "nothing");
}

/* CAP_NET_ADMIN opens every netlink protocol: routes and addresses
 * (refused with an error, glibc's resolver asks for it and copes),
 * IPsec state and generic netlink (WireGuard keys) kill. */
static void test_netlink_route_refused(void **state)
{
	(void)state;
	expect_errno(A_NETLINK_ROUTE, EACCES, "socket(AF_NETLINK, NETLINK_ROUTE)");
}

static void test_netlink_xfrm_killed(void **state)
{
	(void)state;
	expect_killed(A_NETLINK_XFRM, "socket(AF_NETLINK, NETLINK_XFRM)");
}

static void test_netlink_generic_killed(void **state)
{
	(void)state;
	expect_killed(A_NETLINK_GENERIC, "socket(AF_NETLINK, NETLINK_GENERIC)");
}

/* The resolver still works without NETLINK_ROUTE. */
static void test_getaddrinfo_works(void **state)
{
	(void)state;
	expect_errno(A_GETADDRINFO, 0, "getaddrinfo(localhost)");
}

static void test_mprotect_exec_killed(void **state)
{
	(void)state;
	expect_killed(A_MPROTECT_EXEC, "mprotect(PROT_READ|PROT_EXEC)");
}

/* Writable and executable at once never; read-only code stays mappable,
 * since glibc loads NSS modules (nsswitch.conf) at the first lookup, long
 * after confinement (docs/hardening.md). */
static void test_mmap_exec(void **state)
{
	(void)state;
	expect_killed(A_MMAP_WX, "mmap(PROT_WRITE|PROT_EXEC)");
	expect_errno(A_MMAP_RX, 0, "mmap(PROT_READ|PROT_EXEC)");
}

static void status_body(int fd, void *arg)
{
	(void)arg;
	char line[256];
	FILE *f = fopen("/proc/self/status", "re");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "Cap", 3) || !strncmp(line, "NoNewPrivs", 10) ||
		    !strncmp(line, "Seccomp:", 8) || !strncmp(line, "Uid:", 4))
			dprintf(fd, "%s", line);
}

/* The process status as the kernel reports it. */
static void test_proc_status(void **state)
{
	(void)state;
	char buf[2048];
	int st = run_confined(status_body, NULL, buf, sizeof(buf));
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	/* CAP_NET_ADMIN is bit 12 */
	assert_non_null(strstr(buf, "CapInh:\t0000000000000000\n"));
	assert_non_null(strstr(buf, "CapPrm:\t0000000000001000\n"));
	assert_non_null(strstr(buf, "CapEff:\t0000000000001000\n"));
	assert_non_null(strstr(buf, "CapBnd:\t0000000000001000\n"));
	assert_non_null(strstr(buf, "CapAmb:\t0000000000000000\n"));
	assert_non_null(strstr(buf, "NoNewPrivs:\t1\n"));
	assert_non_null(strstr(buf, "Seccomp:\t2\n"));
	assert_non_null(strstr(buf, "Uid:\t65534\t65534\t65534\t65534\n"));
}

static void test_allowlist_table(void **state)
{
	(void)state;
	size_t n;
	const char *const *names = sandbox_allowlist(&n);
	assert_true(n > 50);
	for (size_t i = 0; i < n; i++) {
		/* never: these would undo the sandbox */
		static const char *const never[] = { "execve", "execveat", "ptrace", "mount",
						     "setuid", "setresuid", "capset", "prctl",
						     "seccomp", "bpf", "init_module", "kexec_load",
						     "unshare", "setns", "chroot", "pivot_root" };
		for (size_t j = 0; j < sizeof(never) / sizeof(never[0]); j++)
			if (strcmp(names[i], never[j]) == 0)
				fail_msg("%s is in the allowlist", names[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_allowlist_table),
		cmocka_unit_test_setup(test_execve_killed, need_root),
		cmocka_unit_test_setup(test_ptrace_killed, need_root),
		cmocka_unit_test_setup(test_packet_socket_killed, need_root),
		cmocka_unit_test_setup(test_mount_killed, need_root),
		cmocka_unit_test_setup(test_shadow_write_denied, need_root),
		cmocka_unit_test_setup(test_netlink_allowed, need_root),
		cmocka_unit_test_setup(test_netlink_route_refused, need_root),
		cmocka_unit_test_setup(test_netlink_xfrm_killed, need_root),
		cmocka_unit_test_setup(test_netlink_generic_killed, need_root),
		cmocka_unit_test_setup(test_getaddrinfo_works, need_root),
		cmocka_unit_test_setup(test_mprotect_exec_killed, need_root),
		cmocka_unit_test_setup(test_mmap_exec, need_root),
		cmocka_unit_test_setup(test_proc_status, need_root),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
