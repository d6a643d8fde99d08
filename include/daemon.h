/* The long-running agent: an sd-event loop that keeps table inet cloudviz
 * equal to the policy plus the runtime blocklist, serves the control socket,
 * repairs drift and journals every action. */
#pragma once
#include <stdbool.h>

struct daemon_options {
	const char *config_path;
	bool no_seccomp; /* debugging only; journaled when used */
};

/* Runs until SIGTERM/SIGINT. Returns the process exit code: 0 after a clean
 * stop (the firewall stays in force), 1 when start-up failed (the reason is
 * printed to stderr and journaled). */
int daemon_run(const struct daemon_options *opt);
