/* cloudviz-agent: command line entry point. Subcommands and options are
 * defined once, in the tables below; the usage text comes from the same
 * tables.
 *
 * Exit codes: 0 done; 1 invalid input, refused by the agent or the kernel;
 * 2 usage error or unreadable file; 3 the agent is not reachable. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "config.h"
#include "ctl.h"
#include "daemon.h"
#include "diag.h"
#include "nft.h"
#include "policy.h"
#include "render.h"

enum { EXIT_OK = 0, EXIT_INVALID = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

/* Options, each valid for the commands whose bit is set in `cmds`. */
enum {
	C_RUN = 1 << 0, C_CHECK = 1 << 1, C_RENDER = 1 << 2, C_APPLY = 1 << 3,
	C_STATUS = 1 << 4, C_LIST = 1 << 5, C_BLOCK = 1 << 6, C_UNBLOCK = 1 << 7,
	C_RELOAD = 1 << 8, C_CONFIRM = 1 << 9, C_HELP = 1 << 10, C_LOCKDOWN = 1 << 11,
	C_SOCKET = C_STATUS | C_LIST | C_BLOCK | C_UNBLOCK | C_RELOAD | C_CONFIRM | C_LOCKDOWN,
};

struct opts {
	const char *config;
	const char *socket;
	bool json;
	bool no_seccomp;
	const char *origin;
	const char *ttl;
	const char *reason;
	const char *incident;
	const char *confirm_within;
	bool lockdown;
};

static const struct opt_def {
	const char *name;
	const char *arg; /* NULL: a flag */
	const char *help;
	int short_name;
	unsigned cmds;
} opt_defs[] = {
	{ "config", "FILE", "agent config (default " CONFIG_DEFAULT_PATH ")", 'c', C_RUN | C_CHECK },
	{ "socket", "PATH", "control socket (default " CTL_DEFAULT_SOCKET ")", 's', C_SOCKET },
	{ "json", NULL, "print JSON", 'j', C_STATUS | C_LIST },
	{ "origin", "NAME", "list: only entries from policy, file, operator, control, crowdsec or detect; unblock: operator (default) or detect", 'o', C_LIST | C_UNBLOCK },
	{ "ttl", "DURATION", "expire after 90s, 30m, 1h, 7d (default: never)", 't', C_BLOCK },
	{ "reason", "TEXT", "why (journaled, sanitized)", 'r', C_BLOCK },
	{ "incident", "ID", "incident id", 'i', C_BLOCK },
	{ "confirm-within", "DURATION", "revert unless `confirm` arrives in time", 'w', C_RELOAD },
	{ "no-seccomp", NULL, "debugging only: run without the system call filter", 'S', C_RUN },
	{ "lockdown", NULL, "with the policy's lockdown section switched on", 'L',
	  C_CHECK | C_RENDER | C_APPLY },
};

struct command {
	const char *name;
	unsigned bit;
	const char *args;
	int min_args, max_args; /* max -1: any number */
	const char *help;
	int (*run)(const struct opts *o, int argc, char **argv);
};

static void usage(FILE *f);

/* ---- policy commands --------------------------------------------------------- */

/* Loads and validates one policy, printing every error. */
static int load(const char *file, struct policy **out)
{
	struct diags d = { 0 };
	int r = policy_load(file, out, &d);
	diags_print(&d, stderr);
	diags_free(&d);
	if (r == 0)
		return EXIT_OK;
	return r == -EINVAL ? EXIT_INVALID : EXIT_USAGE;
}

/* With --lockdown: a policy whose lockdown would leave no way in is
 * refused, as the daemon refuses to switch it on. */
static int lockdown_ok(const struct opts *o, const char *file, const struct policy *p)
{
	char why[512];
	if (!o->lockdown || policy_lockdown_usable(p, why, sizeof(why)))
		return EXIT_OK;
	fprintf(stderr, "%s: error: cannot lock down: %s\n", file, why);
	return EXIT_INVALID;
}

static int check_config(const struct opts *o, const char *file)
{
	struct diags d = { 0 };
	struct agent_config *cfg = NULL;
	int r = config_load(file, &cfg, &d);
	diags_print(&d, stderr);
	diags_free(&d);
	if (r < 0)
		return r == -EINVAL ? EXIT_INVALID : EXIT_USAGE;
	printf("%s: valid\n", file);
	struct policy *p = NULL;
	int rc = load(cfg->policy, &p);
	if (rc == EXIT_OK)
		rc = lockdown_ok(o, cfg->policy, p);
	if (rc == EXIT_OK)
		printf("%s: valid%s\n", cfg->policy, o->lockdown ? ", lockdown usable" : "");
	policy_free(p);
	config_free(cfg);
	return rc;
}

static int cmd_check(const struct opts *o, int argc, char **argv)
{
	if (o->config)
		return argc ? EXIT_USAGE : check_config(o, o->config);
	if (argc == 0) {
		fprintf(stderr, "cloudviz-agent: check: name policy files, or -c CONFIG\n");
		return EXIT_USAGE;
	}
	int rc = EXIT_OK;
	for (int i = 0; i < argc; i++) {
		struct policy *p = NULL;
		int r = load(argv[i], &p);
		if (r == EXIT_OK)
			r = lockdown_ok(o, argv[i], p);
		if (r == EXIT_OK)
			printf("%s: valid%s\n", argv[i], o->lockdown ? ", lockdown usable" : "");
		if (r > rc)
			rc = r;
		policy_free(p);
	}
	return rc;
}

static int load_and_compile(const struct opts *o, const char *file, struct fw_table *t)
{
	struct policy *p = NULL;
	int rc = load(file, &p);
	if (rc == EXIT_OK)
		rc = lockdown_ok(o, file, p);
	if (rc != EXIT_OK) {
		policy_free(p);
		return rc;
	}
	const struct compile_opts co = { .lockdown = o->lockdown };
	int r = policy_compile_opts(p, &co, t);
	policy_free(p);
	if (r < 0) {
		fprintf(stderr, "%s: error: cannot compile policy: %s\n", file, strerror(-r));
		return EXIT_INVALID;
	}
	return EXIT_OK;
}

static int cmd_render(const struct opts *o, int argc, char **argv)
{
	struct fw_table t;
	int rc = load_and_compile(o, argv[0], &t);
	if (rc != EXIT_OK)
		return rc;
	int r = render_table(&t, stdout, true);
	if (r == 0 && fflush(stdout) != 0)
		r = -errno;
	fw_table_free(&t);
	if (r < 0) {
		fprintf(stderr, "cloudviz-agent: render: cannot write: %s\n", strerror(-r));
		return EXIT_INVALID;
	}
	return EXIT_OK;
}

static size_t count_rules(const struct fw_table *t)
{
	size_t n = 0;
	for (int h = 0; h < FW_HOOK_COUNT; h++)
		n += t->chains[h].n_rules;
	return n;
}

static int cmd_apply(const struct opts *o, int argc, char **argv)
{
	struct fw_table t;
	int rc = load_and_compile(o, argv[0], &t);
	if (rc != EXIT_OK)
		return rc;
	char err[1024] = "";
	/* through a connection like the daemon's, so a table a stopped daemon
	   left behind (persistent, without owner) is replaced too */
	struct nft_conn *c = NULL;
	int r = nft_conn_open(&c);
	if (r == 0)
		r = nft_conn_apply_table(c, &t, 0, err, sizeof(err));
	nft_conn_close(c);
	if (r < 0) {
		fprintf(stderr, "%s: error: not applied, the ruleset is unchanged: %s\n", argv[0],
			err[0] ? err : strerror(-r));
		fw_table_free(&t);
		return EXIT_INVALID;
	}
	size_t n4 = 0, n6 = 0;
	for (size_t i = 0; i < t.n_sets; i++) {
		n4 += t.sets[i].kind == FW_SET_ADDR ? t.sets[i].elems.n4 : 0;
		n6 += t.sets[i].kind == FW_SET_ADDR ? t.sets[i].elems.n6 : 0;
	}
	printf("%s: applied to table inet %s%s: %zu rules, %zu IPv4 and %zu IPv6 blocked ranges\n",
	       argv[0], FW_TABLE_NAME, o->lockdown ? " with lockdown on" : "", count_rules(&t), n4, n6);
	fw_table_free(&t);
	return EXIT_OK;
}

/* The daemon. Its start-up order, written down in daemon_run(): load and
 * validate config, policy and keys; open the netlink, journald and control
 * sockets; drop privileges (CAP_NET_ADMIN alone, the configured user,
 * no_new_privs); install the seccomp filter; then serve. */
static int cmd_run(const struct opts *o, int argc, char **argv)
{
	struct daemon_options d = {
		.config_path = o->config ? o->config : CONFIG_DEFAULT_PATH,
		.no_seccomp = o->no_seccomp,
	};
	return daemon_run(&d);
}

/* ---- socket commands ------------------------------------------------------- */

/* Sends a request; prints the refusal; returns the exit code and, on
 * success, the reply. */
static int call(const struct opts *o, json_t *req, json_t **reply)
{
	const char *path = o->socket ? o->socket : CTL_DEFAULT_SOCKET;
	json_t *r = NULL;
	int e = req ? ctl_call(path, req, 30000, &r) : -ENOMEM;
	json_decref(req);
	if (e == -EACCES || e == -EPERM) {
		/* the socket's mode keeps out anyone but root and its group */
		fprintf(stderr, "cloudviz-agent: permission denied on %s: only root and members of "
				"the socket's group may control the agent\n", path);
		return EXIT_INVALID;
	}
	if (e < 0) {
		fprintf(stderr, "cloudviz-agent: cannot reach the agent at %s: %s\n", path,
			strerror(-e));
		return EXIT_UNREACHABLE;
	}
	if (!json_is_true(json_object_get(r, "ok"))) {
		const char *why = json_string_value(json_object_get(r, "error"));
		fprintf(stderr, "cloudviz-agent: %s\n", why ? why : "refused");
		json_decref(r);
		return EXIT_INVALID;
	}
	if (reply)
		*reply = r;
	else
		json_decref(r);
	return EXIT_OK;
}

static void print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (s)
		puts(s);
	free(s);
}

/* The control API line of `status`: where, how it goes, what failed last. */
static void print_control(const json_t *c)
{
	if (!json_is_object(c)) {
		printf("  control: not configured (local only)\n");
		return;
	}
	long long fails = json_integer_value(json_object_get(c, "consecutive_failures"));
	time_t last = (time_t)json_integer_value(json_object_get(c, "last_success"));
	char when[64] = "never";
	if (last)
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", gmtime(&last));
	printf("  control: %s, %s; last success %s; %lld replies, %lld reports sent, %lld queued\n",
	       json_string_value(json_object_get(c, "url")),
	       fails ? "backing off" : "polling", when,
	       json_integer_value(json_object_get(c, "replies")),
	       json_integer_value(json_object_get(c, "reports_sent")),
	       json_integer_value(json_object_get(c, "reports_queued")));
	const char *err = json_string_value(json_object_get(c, "last_error"));
	if (err && err[0])
		printf("  control: %lld failures in a row, last: %s\n", fails, err);
}

static int cmd_status(const struct opts *o, int argc, char **argv)
{
	json_t *r;
	int rc = call(o, json_pack("{s:s}", "cmd", "status"), &r);
	if (rc != EXIT_OK)
		return rc;
	if (o->json) {
		json_object_del(r, "ok");
		print_json(r);
	} else {
		printf("cloudviz-agent %s on node %s\n", json_string_value(json_object_get(r, "version")),
		       json_string_value(json_object_get(r, "node_id")));
		printf("  status:  %s\n", json_string_value(json_object_get(r, "status")));
		printf("  policy:  %s (%.12s)\n", json_string_value(json_object_get(r, "policy")),
		       json_string_value(json_object_get(r, "policy_digest")));
		printf("  kernel:  %lld IPv4 and %lld IPv6 blocked ranges, table %s\n",
		       json_integer_value(json_object_get(r, "kernel_ranges_v4")),
		       json_integer_value(json_object_get(r, "kernel_ranges_v6")),
		       json_is_true(json_object_get(r, "table_owned")) ? "owned and persistent"
									   : "watched for changes");
		const char *k;
		json_t *v;
		printf("  entries:");
		json_object_foreach(json_object_get(r, "entries_by_origin"), k, v)
			printf(" %s %lld", k, json_integer_value(v));
		printf("\n");
		print_control(json_object_get(r, "control"));
	}
	json_decref(r);
	return EXIT_OK;
}

static void print_entry(json_t *e, time_t now)
{
	char left[32] = "never";
	json_t *exp = json_object_get(e, "expires");
	if (json_is_integer(exp)) {
		long long l = json_integer_value(exp) - (long long)now;
		format_duration(l > 0 ? (uint64_t)l : 0, left, sizeof(left));
	}
	const char *reason = json_string_value(json_object_get(e, "reason"));
	const char *src = json_string_value(json_object_get(e, "source"));
	printf("%-40s %-9s %-10s %s\n", json_string_value(json_object_get(e, "addr")),
	       json_string_value(json_object_get(e, "origin")), left,
	       reason ? reason : (src ? src : ""));
}

static int cmd_list(const struct opts *o, int argc, char **argv)
{
	json_t *req = json_pack("{s:s}", "cmd", "list"), *r;
	if (req && o->origin)
		json_object_set_new(req, "origin", json_string(o->origin));
	int rc = call(o, req, &r);
	if (rc != EXIT_OK)
		return rc;
	json_t *entries = json_object_get(r, "entries");
	if (o->json) {
		print_json(entries);
	} else {
		size_t i;
		json_t *e;
		time_t now = time(NULL);
		printf("%-40s %-9s %-10s %s\n", "ADDRESS", "ORIGIN", "EXPIRES", "REASON/SOURCE");
		json_array_foreach(entries, i, e)
			print_entry(e, now);
	}
	json_decref(r);
	return EXIT_OK;
}

static int cmd_block(const struct opts *o, int argc, char **argv)
{
	json_t *req = json_pack("{s:s, s:s}", "cmd", "block", "addr", argv[0]);
	uint64_t ttl = 0;
	if (o->ttl && parse_duration(o->ttl, &ttl) < 0) {
		fprintf(stderr, "cloudviz-agent: bad --ttl \"%s\": use 90s, 30m, 1h or 7d\n", o->ttl);
		json_decref(req);
		return EXIT_USAGE;
	}
	if (req && ttl)
		json_object_set_new(req, "ttl", json_integer((json_int_t)ttl));
	if (req && o->reason)
		json_object_set_new(req, "reason", json_string(o->reason));
	if (req && o->incident)
		json_object_set_new(req, "incident", json_string(o->incident));
	int rc = call(o, req, NULL);
	if (rc == EXIT_OK)
		printf("blocked %s\n", argv[0]);
	return rc;
}

static int cmd_unblock(const struct opts *o, int argc, char **argv)
{
	json_t *req = json_pack("{s:s, s:s}", "cmd", "unblock", "addr", argv[0]);
	if (req && o->origin)
		json_object_set_new(req, "origin", json_string(o->origin));
	int rc = call(o, req, NULL);
	if (rc == EXIT_OK)
		printf("unblocked %s\n", argv[0]);
	return rc;
}

static int cmd_reload(const struct opts *o, int argc, char **argv)
{
	json_t *req = json_pack("{s:s}", "cmd", "reload");
	uint64_t secs = 0;
	if (o->confirm_within && (parse_duration(o->confirm_within, &secs) < 0 || secs == 0)) {
		fprintf(stderr, "cloudviz-agent: bad --confirm-within \"%s\"\n", o->confirm_within);
		json_decref(req);
		return EXIT_USAGE;
	}
	if (req && secs)
		json_object_set_new(req, "confirm_within", json_integer((json_int_t)secs));
	int rc = call(o, req, NULL);
	if (rc == EXIT_OK && secs)
		printf("reloaded; run `cloudviz-agent confirm` within %llus or the previous policy returns\n",
		       (unsigned long long)secs);
	else if (rc == EXIT_OK)
		printf("reloaded\n");
	return rc;
}

static int cmd_confirm(const struct opts *o, int argc, char **argv)
{
	int rc = call(o, json_pack("{s:s}", "cmd", "confirm"), NULL);
	if (rc == EXIT_OK)
		printf("confirmed\n");
	return rc;
}

/* The local switch: works when the control plane cannot be reached, which
 * is when lockdown is most likely to need switching off. */
static int cmd_lockdown(const struct opts *o, int argc, char **argv)
{
	bool on = strcmp(argv[0], "on") == 0;
	if (!on && strcmp(argv[0], "off") != 0) {
		fprintf(stderr, "cloudviz-agent: lockdown: expected on or off, got \"%.32s\"\n", argv[0]);
		return EXIT_USAGE;
	}
	json_t *reply = NULL;
	int rc = call(o, json_pack("{s:s, s:b}", "cmd", "lockdown", "enabled", on), &reply);
	if (rc == EXIT_OK) {
		printf("lockdown %s%s\n", on ? "on" : "off",
		       json_is_true(json_object_get(reply, "changed")) ? "" : " (it already was)");
		json_decref(reply);
	}
	return rc;
}

static int cmd_help(const struct opts *o, int argc, char **argv)
{
	usage(stdout);
	return EXIT_OK;
}

static const struct command commands[] = {
	{ "run", C_RUN, "", 0, 0, "run the agent in the foreground", cmd_run },
	{ "check", C_CHECK, "FILE... | -c CONFIG", 0, -1, "validate policies (or a config and its policy)", cmd_check },
	{ "render", C_RENDER, "[--lockdown] FILE", 1, 1, "print the nft script a policy compiles to", cmd_render },
	{ "apply", C_APPLY, "[--lockdown] FILE", 1, 1, "replace table inet cloudviz with a policy, atomically", cmd_apply },
	{ "status", C_STATUS, "", 0, 0, "show what the running agent enforces", cmd_status },
	{ "list", C_LIST, "", 0, 0, "list blocklist entries", cmd_list },
	{ "block", C_BLOCK, "ADDR[/PREFIX]", 1, 1, "block an address or prefix", cmd_block },
	{ "unblock", C_UNBLOCK, "ADDR[/PREFIX]", 1, 1, "remove an operator (or, with --origin detect, a detect) block", cmd_unblock },
	{ "reload", C_RELOAD, "", 0, 0, "re-read config and policy", cmd_reload },
	{ "confirm", C_CONFIRM, "", 0, 0, "keep a reload made with --confirm-within", cmd_confirm },
	{ "lockdown", C_LOCKDOWN, "on|off", 1, 1, "switch lockdown on or off in the running agent", cmd_lockdown },
	{ "help", C_HELP, "", 0, 0, "show this help", cmd_help },
};

static void usage(FILE *f)
{
	fprintf(f, "Usage: cloudviz-agent COMMAND [OPTIONS] [ARGS]\n\nCommands:\n");
	for (size_t i = 0; i < ELEMENTSOF(commands); i++)
		fprintf(f, "  %-8s %-20s %s\n", commands[i].name, commands[i].args, commands[i].help);
	fprintf(f, "\nOptions:\n");
	for (size_t i = 0; i < ELEMENTSOF(opt_defs); i++) {
		char names[64];
		snprintf(names, sizeof(names), "-%c, --%s%s%s", opt_defs[i].short_name, opt_defs[i].name,
			 opt_defs[i].arg ? " " : "", opt_defs[i].arg ? opt_defs[i].arg : "");
		fprintf(f, "  %-32s %s (", names, opt_defs[i].help);
		for (size_t c = 0, n = 0; c < ELEMENTSOF(commands); c++)
			if (opt_defs[i].cmds & commands[c].bit)
				fprintf(f, "%s%s", n++ ? ", " : "", commands[c].name);
		fprintf(f, ")\n");
	}
	fprintf(f, "  %-32s print the version\n\n"
		   "Exit status: 0 done, 1 invalid or refused, 2 usage error or unreadable file,\n"
		   "3 the agent is not reachable.\n", "--version");
}

/* Parses the options valid for command c into o. Returns 0 or EXIT_USAGE. */
static int parse_opts(const struct command *c, int argc, char **argv, struct opts *o)
{
	struct option lopts[ELEMENTSOF(opt_defs) + 1];
	/* options may follow the arguments: block ADDR --ttl 1h */
	char sopts[3 * ELEMENTSOF(opt_defs) + 2] = "";
	size_t n = 0, sl = 0;
	for (size_t i = 0; i < ELEMENTSOF(opt_defs); i++) {
		if (!(opt_defs[i].cmds & c->bit))
			continue;
		lopts[n++] = (struct option){ opt_defs[i].name, opt_defs[i].arg ? required_argument : no_argument,
					      NULL, opt_defs[i].short_name };
		sopts[sl++] = (char)opt_defs[i].short_name;
		if (opt_defs[i].arg)
			sopts[sl++] = ':';
	}
	lopts[n] = (struct option){ 0 };
	sopts[sl] = '\0';
	optind = 1;
	int ch;
	while ((ch = getopt_long(argc, argv, sopts, lopts, NULL)) != -1) {
		switch (ch) {
		case 'c': o->config = optarg; break;
		case 's': o->socket = optarg; break;
		case 'j': o->json = true; break;
		case 'o': o->origin = optarg; break;
		case 't': o->ttl = optarg; break;
		case 'r': o->reason = optarg; break;
		case 'i': o->incident = optarg; break;
		case 'w': o->confirm_within = optarg; break;
		case 'S': o->no_seccomp = true; break;
		case 'L': o->lockdown = true; break;
		default: return EXIT_USAGE;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
		printf("cloudviz-agent %s\n", CVZ_VERSION);
		return EXIT_OK;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return EXIT_OK;
	}
	const struct command *c = NULL;
	for (size_t i = 0; i < ELEMENTSOF(commands); i++)
		if (strcmp(commands[i].name, argv[1]) == 0)
			c = &commands[i];
	if (!c) {
		fprintf(stderr, "cloudviz-agent: unknown command \"%s\"\n\n", argv[1]);
		usage(stderr);
		return EXIT_USAGE;
	}
	struct opts o = { 0 };
	if (parse_opts(c, argc - 1, argv + 1, &o) != 0) {
		fprintf(stderr, "cloudviz-agent: usage: cloudviz-agent %s %s (see --help)\n", c->name, c->args);
		return EXIT_USAGE;
	}
	int nargs = argc - 1 - optind;
	if (nargs < c->min_args || (c->max_args >= 0 && nargs > c->max_args)) {
		fprintf(stderr, "cloudviz-agent: usage: cloudviz-agent %s %s\n", c->name, c->args);
		return EXIT_USAGE;
	}
	return c->run(&o, nargs, argv + 1 + optind);
}
