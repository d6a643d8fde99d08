/* libFuzzer target: the policy parser, position finder and compiler must
 * neither crash nor leak on any input. Build with `make fuzz`. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct diags d = { 0 };
	struct policy *p = NULL;
	if (policy_parse("fuzz.json", (const char *)data, size, &p, &d) == 0) {
		struct fw_table t;
		if (policy_compile(p, &t) == 0)
			fw_table_free(&t);
		struct compile_opts lockdown = { .lockdown = true };
		if (policy_compile_opts(p, &lockdown, &t) == 0)
			fw_table_free(&t);
		policy_lockdown_usable(p, NULL, 0);
		policy_free(p);
	}
	diags_free(&d);
	return 0;
}
