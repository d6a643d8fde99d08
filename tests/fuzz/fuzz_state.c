/* libFuzzer target: state.json loading. Any bytes in state_dir/state.json
 * must neither crash nor leak the loader; a file refused leaves nothing
 * behind (no entries, no seen ids: all or nothing); a file accepted holds
 * only entries that could have been saved, and saving it and loading it
 * again through the real files (state_save, state_load in a private
 * directory) gives the same state. Build with `make fuzz`; seeds in
 * corpus_state/. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "state.h"
#include "statedir.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct statedir sd = { .fd = -1 };
static char dir[64];

static void remove_dir(void)
{
	unlinkat(sd.fd, STATE_FILE, 0);
	statedir_close(&sd);
	rmdir(dir);
}

static void open_dir(void)
{
	char err[512] = "";
	snprintf(dir, sizeof(dir), "/tmp/cvz-fuzz-state-XXXXXX");
	if (!mkdtemp(dir) || statedir_open(dir, geteuid(), false, &sd, err, sizeof(err)) < 0) {
		fprintf(stderr, "fuzz_state: cannot set up %s: %s\n", dir, err);
		abort();
	}
	atexit(remove_dir);
}

static void same_state(const struct blocklist *a, const struct state_extra *x,
		       const struct blocklist *b, const struct state_extra *y)
{
	if (a->n != b->n || x->lockdown != y->lockdown ||
	    x->confirm_deadline != y->confirm_deadline || strcmp(x->cursor, y->cursor) != 0 ||
	    strcmp(x->trial_digest, y->trial_digest) != 0 ||
	    strcmp(x->reverted_digest, y->reverted_digest) != 0 ||
	    instr_seen_count(x->seen) != instr_seen_count(y->seen) ||
	    strcmp(x->detect_cursor, y->detect_cursor) != 0 ||
	    x->detect_cursor_us != y->detect_cursor_us || x->n_offenders != y->n_offenders)
		abort();
	for (size_t i = 0; i < x->n_offenders; i++)
		if (memcmp(&x->offenders[i].addr, &y->offenders[i].addr, sizeof(x->offenders[i].addr)) ||
		    x->offenders[i].blocked_at != y->offenders[i].blocked_at ||
		    x->offenders[i].ttl != y->offenders[i].ttl ||
		    x->offenders[i].offences != y->offenders[i].offences)
			abort();
	for (size_t i = 0; i < a->n; i++)
		if (a->v[i].expires != b->v[i].expires || a->v[i].origin != b->v[i].origin ||
		    memcmp(&a->v[i].prefix, &b->v[i].prefix, sizeof(a->v[i].prefix)) != 0)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (sd.fd < 0)
		open_dir();
	/* a copy of exactly size bytes, so reading past len is caught by ASan */
	char *buf = malloc(size ? size : 1);
	struct instr_seen *seen = instr_seen_new(64), *seen2 = instr_seen_new(64);
	if (!buf || !seen || !seen2)
		abort();
	if (size)
		memcpy(buf, data, size);
	struct blocklist b = { 0 }, b2 = { 0 };
	struct state_extra x = { .seen = seen }, x2 = { .seen = seen2 };
	char err[512], moved[4200];
	int r = state_parse(buf, size, &b, &x, err, sizeof(err));
	if (r < 0) {
		if (b.n || instr_seen_count(seen) || x.lockdown || x.cursor[0] || x.offenders ||
		    x.detect_cursor[0] || !err[0])
			abort(); /* a refused file must leave nothing behind */
	} else {
		for (size_t i = 0; i < b.n; i++)
			if (b.v[i].origin == ORIGIN_POLICY || b.v[i].origin == ORIGIN_FILE ||
			    b.v[i].expires < 0)
				abort();
		if (state_save(&sd, &b, &x) < 0 ||
		    state_load(&sd, &b2, &x2, err, sizeof(err), moved, sizeof(moved)) < 0)
			abort(); /* what we accepted, we can write and read back */
		same_state(&b, &x, &b2, &x2);
	}
	bl_free(&b);
	bl_free(&b2);
	free(x.offenders);
	free(x2.offenders);
	instr_seen_free(seen);
	instr_seen_free(seen2);
	free(buf);
	return 0;
}
