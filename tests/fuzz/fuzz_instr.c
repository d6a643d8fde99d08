/* libFuzzer target: the control API reply parser must neither crash nor
 * leak on any body the network can send, and every batch it accepts must
 * hold only checked targets. Build with `make fuzz`; seeds in corpus_instr/. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "instr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A small safelist and one API address of each family, so that every target
 * rule can fire. Filled in network byte order by hand: no parsing here. */
static const struct cvz_prefix safelist[] = {
	{ .family = AF_INET, .len = 32, .addr = { 10, 1, 2, 3 } },
	{ .family = AF_INET6, .len = 48, .addr = { 0x20, 0x01, 0x0d, 0xb8, 0, 1 } },
};
static const struct bl_guard api[] = {
	{ { .family = AF_INET, .len = 32, .addr = { 192, 0, 2, 10 } }, "control API's own address" },
	{ { .family = AF_INET6, .len = 128,
	    .addr = { 0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, [15] = 0x10 } },
	  "control API's own address" },
};
static const struct instr_limits lim = {
	.min_prefix_v4 = 8, .min_prefix_v6 = 32,
	.safelist = safelist, .n_safelist = 2,
	.guards = api, .n_guards = 2,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct instr_batch b;
	char err[256];
	/* a copy of exactly size bytes, so reading past len is caught by ASan */
	char *body = malloc(size ? size : 1);
	if (!body)
		return 0;
	if (size)
		memcpy(body, data, size);
	if (instr_parse(body, size, &lim, &b, err, sizeof(err)) == 0) {
		for (size_t i = 0; i < b.n; i++)
			for (size_t k = 0; k < b.v[i].n_targets; k++) {
				const struct instr_target *t = &b.v[i].targets[k];
				/* touch every string: a dangling pointer shows here */
				if (strlen(t->text) >= INSTR_TEXT_MAX ||
				    strlen(t->why) >= INSTR_WHY_MAX)
					abort();
			}
		instr_batch_free(&b);
	} else if (strnlen(err, sizeof(err)) == sizeof(err)) {
		abort();
	}
	free(body);
	return 0;
}
