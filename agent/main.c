/* cloudviz-agent: command line entry point. Subcommands are defined once in
 * the table below; the usage text comes from the same table.
 *
 * Exit codes: 0 done, 1 invalid input or refused by the kernel, 2 usage error
 * or unreadable file. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "diag.h"
#include "nft.h"
#include "policy.h"
#include "render.h"

enum { EXIT_OK = 0, EXIT_INVALID = 1, EXIT_USAGE = 2 };

struct command {
	const char *name;
	const char *args;
	const char *help;
	int min_args, max_args; /* max -1: any number */
	int (*run)(int argc, char **argv);
};

static const struct command *find_command(const char *name);
static void usage(FILE *f);

/* Loads and validates one policy, printing every error. Returns the exit
 * code that describes the outcome. */
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

static int cmd_check(int argc, char **argv)
{
	int rc = EXIT_OK;
	for (int i = 0; i < argc; i++) {
		struct policy *p = NULL;
		int r = load(argv[i], &p);
		if (r == EXIT_OK)
			printf("%s: valid\n", argv[i]);
		if (r > rc)
			rc = r;
		policy_free(p);
	}
	return rc;
}

static int load_and_compile(const char *file, struct fw_table *t)
{
	struct policy *p = NULL;
	int rc = load(file, &p);
	if (rc != EXIT_OK)
		return rc;
	int r = policy_compile(p, t);
	policy_free(p);
	if (r < 0) {
		fprintf(stderr, "%s: error: cannot compile policy: %s\n", file, strerror(-r));
		return EXIT_INVALID;
	}
	return EXIT_OK;
}

static int cmd_render(int argc, char **argv)
{
	struct fw_table t;
	int rc = load_and_compile(argv[0], &t);
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

static int cmd_apply(int argc, char **argv)
{
	struct fw_table t;
	int rc = load_and_compile(argv[0], &t);
	if (rc != EXIT_OK)
		return rc;
	char err[1024] = "";
	int r = nft_apply_table(&t, err, sizeof(err));
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
	printf("%s: applied to table inet %s: %zu rules, %zu IPv4 and %zu IPv6 blocked ranges\n",
	       argv[0], FW_TABLE_NAME, count_rules(&t), n4, n6);
	fw_table_free(&t);
	return EXIT_OK;
}

static int cmd_help(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	usage(stdout);
	return EXIT_OK;
}

static const struct command commands[] = {
	{ "check", "FILE...", "validate policy files; print every error as FILE:LINE:COL", 1, -1, cmd_check },
	{ "render", "FILE", "print the table the policy compiles to, as an nft script", 1, 1, cmd_render },
	{ "apply", "FILE", "validate the policy and replace table inet cloudviz atomically", 1, 1, cmd_apply },
	{ "help", "", "show this help", 0, 0, cmd_help },
};

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < ELEMENTSOF(commands); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: cloudviz-agent COMMAND [ARGS]\n\nCommands:\n");
	for (size_t i = 0; i < ELEMENTSOF(commands); i++)
		fprintf(f, "  %-7s %-8s %s\n", commands[i].name, commands[i].args, commands[i].help);
	fprintf(f, "\nOptions:\n  --version  print the version\n  --help     show this help\n"
		   "\nExit status: 0 done, 1 invalid policy or refused by the kernel, 2 usage error or unreadable file.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("cloudviz-agent %s\n", CVZ_VERSION);
		return EXIT_OK;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
		return cmd_help(0, NULL);
	const struct command *c = find_command(argv[1]);
	if (!c) {
		fprintf(stderr, "cloudviz-agent: unknown command \"%s\"\n\n", argv[1]);
		usage(stderr);
		return EXIT_USAGE;
	}
	int nargs = argc - 2;
	if (nargs < c->min_args || (c->max_args >= 0 && nargs > c->max_args)) {
		fprintf(stderr, "cloudviz-agent: usage: cloudviz-agent %s %s\n", c->name, c->args);
		return EXIT_USAGE;
	}
	return c->run(nargs, argv + 2);
}
