/* Self-confinement (see sandbox.h and docs/hardening.md).
 *
 * The allowlist is data: one table, grouped by what the daemon does after
 * start-up (it never opens a listening socket, executes a program, mounts,
 * traces or loads anything privileged again). Argument filters where they
 * are cheap: socket() families, and of netlink only the netfilter protocol;
 * clone() only for threads, ioctl() only for the terminal and socket
 * queries stdio and curl make, mmap() never writable and executable at
 * once, mprotect() never executable, prlimit64() read-only. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/netlink.h>
#include <linux/securebits.h>
#include <pwd.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include "cleanup.h"
#include "sandbox.h"

/* ---- user ------------------------------------------------------------------ */

int sandbox_lookup_user(const char *name, struct sandbox_user *out, char *err, size_t len)
{
	char buf[4096];
	struct passwd pw, *res = NULL;
	int r = getpwnam_r(name, &pw, buf, sizeof(buf), &res);
	if (r != 0 || !res) {
		snprintf(err, len, "user \"%s\": %s", name, r ? strerror(r) : "no such user");
		return r ? -r : -ENOENT;
	}
	if (strlen(name) >= sizeof(out->name)) {
		snprintf(err, len, "user \"%s\": name too long", name);
		return -EINVAL;
	}
	out->set = true;
	out->uid = pw.pw_uid;
	out->gid = pw.pw_gid;
	snprintf(out->name, sizeof(out->name), "%s", name);
	return 0;
}

/* ---- capabilities ------------------------------------------------------------ */

static int caps_get(struct __user_cap_data_struct data[2])
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	return syscall(SYS_capget, &h, data) < 0 ? -errno : 0;
}

static int caps_set_only_net_admin(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2] = { { 0 } };
	data[CAP_NET_ADMIN / 32].effective = data[CAP_NET_ADMIN / 32].permitted =
		1u << (CAP_NET_ADMIN % 32);
	return syscall(SYS_capset, &h, data) < 0 ? -errno : 0;
}

static bool has_cap(const struct __user_cap_data_struct data[2], int cap, bool effective)
{
	uint32_t bits = effective ? data[cap / 32].effective : data[cap / 32].permitted;
	return bits & (1u << (cap % 32));
}

/* Effective and permitted hold CAP_NET_ADMIN alone, inheritable nothing
 * else. */
static bool only_net_admin(const struct __user_cap_data_struct c[2])
{
	const uint32_t na = 1u << (CAP_NET_ADMIN % 32);
	return c[0].effective == na && c[0].permitted == na && (c[0].inheritable & ~na) == 0 &&
	       !c[1].effective && !c[1].permitted && !c[1].inheritable;
}

/* Empties the bounding set but for CAP_NET_ADMIN. Needs CAP_SETPCAP for each
 * capability still in it; without it (started unprivileged, e.g. by a unit
 * with CapabilityBoundingSet=CAP_NET_ADMIN) there is nothing left to drop. */
static int drop_bounding(char *err, size_t len)
{
	for (int cap = 0; cap <= 63; cap++) {
		int in = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
		if (in < 0)
			break; /* past the kernel's last capability */
		if (!in || cap == CAP_NET_ADMIN)
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
			snprintf(err, len, "cannot drop capability %d from the bounding set: %s", cap,
				 strerror(errno));
			return -errno;
		}
	}
	return 0;
}

static int switch_user(const struct sandbox_user *u, char *err, size_t len)
{
	if (setgroups(0, NULL) < 0 || setresgid(u->gid, u->gid, u->gid) < 0 ||
	    setresuid(u->uid, u->uid, u->uid) < 0) {
		snprintf(err, len, "cannot become user %s (uid %u): %s", u->name, (unsigned)u->uid,
			 strerror(errno));
		return -errno;
	}
	return 0;
}

int sandbox_drop_privileges(const struct sandbox_user *u, char *err, size_t len)
{
	struct __user_cap_data_struct caps[2];
	int r = caps_get(caps);
	if (r < 0) {
		snprintf(err, len, "capget: %s", strerror(-r));
		return r;
	}
	if (!has_cap(caps, CAP_NET_ADMIN, false)) {
		snprintf(err, len, "CAP_NET_ADMIN is not permitted: cloudviz-agent cannot manage nftables without it");
		return -EPERM;
	}
	if (has_cap(caps, CAP_SETPCAP, true)) {
		/* uid 0 gets no capabilities back on execve or setuid, and the
		   change of uid below keeps the permitted set: locked, so
		   nothing later can undo it */
		if (prctl(PR_SET_SECUREBITS, SECBIT_NOROOT | SECBIT_NOROOT_LOCKED |
				SECBIT_NO_SETUID_FIXUP | SECBIT_NO_SETUID_FIXUP_LOCKED |
				SECBIT_KEEP_CAPS_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE |
				SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED, 0, 0, 0) < 0) {
			snprintf(err, len, "cannot set securebits: %s", strerror(errno));
			return -errno;
		}
		if ((r = drop_bounding(err, len)) < 0)
			return r;
	}
	if (u->set && (getuid() != u->uid || geteuid() != u->uid) &&
	    (r = switch_user(u, err, len)) < 0)
		return r;
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) {
		snprintf(err, len, "cannot clear the ambient capabilities: %s", strerror(errno));
		return -errno;
	}
	/* Under the unit (started as the user, CAP_NET_ADMIN alone in every
	   set) there is nothing left to take: the unit's filter denies capset,
	   so it is only called when it changes something. An inheritable
	   CAP_NET_ADMIN left there grants nothing without execve. */
	if ((r = caps_get(caps)) == 0 && !only_net_admin(caps))
		r = caps_set_only_net_admin();
	if (r < 0) {
		snprintf(err, len, "capset: %s", strerror(-r));
		return r;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		snprintf(err, len, "cannot set no_new_privs: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

void sandbox_no_dumps(void)
{
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

/* ---- the allowlist --------------------------------------------------------------- */

/* One row: a system call, and up to two argument conditions, all of which
 * must hold. Rows with the same name are alternatives (any one matching
 * allows the call). */
struct rule {
	const char *name;
	unsigned n_cmp;
	struct scmp_arg_cmp cmp[2];
};

/* datum_b is given even where the comparison ignores it: libseccomp's
 * SCMP_Ax() are positional initializers */
#define ALLOW(n) { .name = n }
#define ALLOW_IF(n, c) { .name = n, .n_cmp = 1, .cmp = { c } }
#define ALLOW_IF2(n, c1, c2) { .name = n, .n_cmp = 2, .cmp = { c1, c2 } }

static const struct rule allowlist[] = {
	/* process and threads (libcurl resolves names in a thread) */
	ALLOW("exit"), ALLOW("exit_group"), ALLOW("getpid"), ALLOW("gettid"), ALLOW("getppid"),
	ALLOW("tgkill"), ALLOW("futex"), ALLOW("set_robust_list"), ALLOW("get_robust_list"),
	ALLOW("rseq"), ALLOW("sched_yield"), ALLOW("sched_getaffinity"), ALLOW("set_tid_address"),
	ALLOW_IF("clone", SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD)),
	ALLOW("restart_syscall"),
	/* signals (sd-event's signalfd, glibc's abort and thread set-up) */
	ALLOW("rt_sigaction"), ALLOW("rt_sigprocmask"), ALLOW("rt_sigreturn"),
	ALLOW("sigaltstack"), ALLOW("signalfd4"),
	/* memory: never writable and executable at once; existing memory
	   never made executable (a read-only page of attacker-written bytes
	   would be one mprotect() from running). mmap() may still map code
	   read-only: the NSS modules glibc loads on the first name lookup
	   (libnss_* from nsswitch.conf, at any later reconnect) need it */
	ALLOW("brk"), ALLOW("munmap"), ALLOW("mremap"), ALLOW("madvise"), ALLOW("mlock"),
	ALLOW("munlock"), ALLOW("mlock2"),
	ALLOW_IF("mmap", SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)),
	ALLOW_IF("mmap", SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_WRITE, 0)),
	ALLOW_IF("mprotect", SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)),
	/* time and the event loop */
	ALLOW("clock_gettime"), ALLOW("clock_getres"), ALLOW("gettimeofday"), ALLOW("time"),
	ALLOW("nanosleep"), ALLOW("clock_nanosleep"), ALLOW("epoll_create1"), ALLOW("epoll_ctl"),
	ALLOW("epoll_wait"), ALLOW("epoll_pwait"), ALLOW("epoll_pwait2"), ALLOW("poll"),
	ALLOW("ppoll"), ALLOW("timerfd_create"), ALLOW("timerfd_settime"),
	ALLOW("timerfd_gettime"), ALLOW("eventfd2"), ALLOW("pipe2"), ALLOW("getrandom"),
	/* files: config, policy, list files and credentials on reload; the
	   state in state_dir; NSS and resolver files */
	ALLOW("openat"), ALLOW("close"), ALLOW("read"), ALLOW("pread64"), ALLOW("readv"),
	ALLOW("write"), ALLOW("pwrite64"), ALLOW("writev"), ALLOW("lseek"), ALLOW("fstat"),
	ALLOW("newfstatat"), ALLOW("statx"), ALLOW("fsync"), ALLOW("fdatasync"),
	ALLOW("rename"), ALLOW("renameat"), ALLOW("renameat2"), ALLOW("unlink"),
	ALLOW("unlinkat"), ALLOW("getdents64"), ALLOW("fcntl"), ALLOW("readlink"),
	ALLOW("access"), ALLOW("faccessat"), ALLOW("faccessat2"), ALLOW("dup"), ALLOW("dup3"),
	ALLOW("umask"), ALLOW("fstatfs"), ALLOW("uname"),
	ALLOW("sysinfo"), /* glibc's qsort sizes its buffer by physical memory */
	/* the journal (local detection, sd-journal): files mapped read-only
	   (mmap above), new and rotated files seen through inotify */
	ALLOW("inotify_init1"), ALLOW("inotify_add_watch"), ALLOW("inotify_rm_watch"),
	ALLOW("fadvise64"),
	ALLOW_IF("ioctl", SCMP_A1(SCMP_CMP_EQ, TCGETS, 0)),
	ALLOW_IF("ioctl", SCMP_A1(SCMP_CMP_EQ, FIONREAD, 0)),
	ALLOW_IF("ioctl", SCMP_A1(SCMP_CMP_EQ, FIONBIO, 0)),
	ALLOW_IF("prlimit64", SCMP_A2(SCMP_CMP_EQ, 0, 0)), /* read, never set */
	/* sockets: netlink for nftables only (NETLINK_ROUTE would rewrite
	   routes and addresses, NETLINK_XFRM IPsec state, generic netlink
	   read WireGuard keys: CAP_NET_ADMIN opens them all; glibc's
	   getaddrinfo() asks NETLINK_ROUTE which addresses the host has, and
	   is told no, see netlink_refused below), unix (journald, sd_notify,
	   the control socket, curl's wake-up pairs), inet (the control API,
	   DNS) */
	ALLOW_IF("socket", SCMP_A0(SCMP_CMP_EQ, AF_UNIX, 0)),
	ALLOW_IF2("socket", SCMP_A0(SCMP_CMP_EQ, AF_NETLINK, 0),
		  SCMP_A2(SCMP_CMP_EQ, NETLINK_NETFILTER, 0)),
	ALLOW_IF("socket", SCMP_A0(SCMP_CMP_EQ, AF_INET, 0)),
	ALLOW_IF("socket", SCMP_A0(SCMP_CMP_EQ, AF_INET6, 0)),
	ALLOW_IF("socketpair", SCMP_A0(SCMP_CMP_EQ, AF_UNIX, 0)),
	ALLOW("connect"), ALLOW("bind"), ALLOW("accept4"), ALLOW("getsockname"),
	ALLOW("getpeername"), ALLOW("getsockopt"), ALLOW("setsockopt"), ALLOW("shutdown"),
	ALLOW("sendto"), ALLOW("sendmsg"), ALLOW("sendmmsg"), ALLOW("recvfrom"),
	ALLOW("recvmsg"), ALLOW("recvmmsg"),
	/* identity, read only (credential owner checks, socket peers) */
	ALLOW("getuid"), ALLOW("geteuid"), ALLOW("getgid"), ALLOW("getegid"),
	ALLOW("getgroups"), ALLOW("getresuid"), ALLOW("getresgid"), ALLOW("capget"),
};

/* Refused with an error instead of killing: glibc's getaddrinfo() (in
 * curl's resolver thread) opens NETLINK_ROUTE to learn which address
 * families the host has, and without it assumes both (check_pf.c), which
 * is harmless; the socket itself would let the agent rewrite routes. */
static const struct rule netlink_refused[] = {
	ALLOW_IF2("socket", SCMP_A0(SCMP_CMP_EQ, AF_NETLINK, 0),
		  SCMP_A2(SCMP_CMP_EQ, NETLINK_ROUTE, 0)),
};

static const char *allowlist_names[ELEMENTSOF(allowlist)];

const char *const *sandbox_allowlist(size_t *n)
{
	for (size_t i = 0; i < ELEMENTSOF(allowlist); i++)
		allowlist_names[i] = allowlist[i].name;
	*n = ELEMENTSOF(allowlist);
	return allowlist_names;
}

/* trap mode: the names of system calls, resolved before the filter is in,
 * since the handler may not allocate */
#define SYSCALL_NAMES 512
static const char *syscall_name[SYSCALL_NAMES];

static void on_sigsys(int sig, siginfo_t *si, void *ctx)
{
	(void)ctx;
	char msg[160];
	int nr = si->si_syscall;
	const char *name = nr >= 0 && nr < SYSCALL_NAMES && syscall_name[nr] ? syscall_name[nr] : "?";
	int n = snprintf(msg, sizeof(msg),
			 "cloudviz-agent: seccomp: system call %d (%s) is not in the allowlist\n", nr,
			 name);
	if (n > 0) {
		ssize_t w = write(STDERR_FILENO, msg, (size_t)n);
		(void)w;
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static int prepare_trap(void)
{
	for (int nr = 0; nr < SYSCALL_NAMES; nr++) {
		char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
		syscall_name[nr] = name; /* kept for the life of the process */
	}
	struct sigaction sa = { .sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO };
	sigemptyset(&sa.sa_mask);
	return sigaction(SIGSYS, &sa, NULL) < 0 ? -errno : 0;
}

int sandbox_install_filter(bool trap, char *err, size_t len)
{
	int r = trap ? prepare_trap() : 0;
	scmp_filter_ctx ctx = r == 0 ? seccomp_init(trap ? SCMP_ACT_TRAP : SCMP_ACT_KILL_PROCESS) : NULL;
	if (!ctx) {
		snprintf(err, len, "cannot set up the seccomp filter: %s", strerror(r ? -r : ENOMEM));
		return r ? r : -ENOMEM;
	}
	/* glibc tries clone3 first and falls back to clone, whose flags can
	   be checked (clone3 passes them in memory) */
	int nr = seccomp_syscall_resolve_name("clone3");
	if (nr != __NR_SCMP_ERROR)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0);
	for (size_t i = 0; r == 0 && i < ELEMENTSOF(allowlist); i++) {
		const struct rule *a = &allowlist[i];
		nr = seccomp_syscall_resolve_name(a->name);
		if (nr == __NR_SCMP_ERROR)
			continue; /* not on this architecture */
		r = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, a->n_cmp, a->cmp);
		if (r < 0)
			snprintf(err, len, "seccomp rule for %s: %s", a->name, strerror(-r));
	}
	for (size_t i = 0; r == 0 && i < ELEMENTSOF(netlink_refused); i++) {
		const struct rule *a = &netlink_refused[i];
		r = seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO(EACCES),
					   seccomp_syscall_resolve_name(a->name), a->n_cmp, a->cmp);
		if (r < 0)
			snprintf(err, len, "seccomp rule for %s: %s", a->name, strerror(-r));
	}
	if (r == 0 && (r = seccomp_load(ctx)) < 0)
		snprintf(err, len, "cannot load the seccomp filter: %s", strerror(-r));
	seccomp_release(ctx);
	return r;
}
