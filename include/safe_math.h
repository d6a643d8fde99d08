/* Checked arithmetic for numbers that come from outside (a TTL, an expiry, a
 * size or a count): the result, or false when the exact result does not fit
 * the type of *ret. *ret is written only on success. The compiler's builtins,
 * in the shape of systemd's ADD_SAFE/MUL_SAFE (src/basic/macro.h). */
#pragma once
#include <stdbool.h>

#define ADD_SAFE(ret, a, b)                                                    \
	({                                                                     \
		__typeof__(*(ret)) _add_r;                                     \
		bool _add_ok = !__builtin_add_overflow((a), (b), &_add_r);     \
		if (_add_ok)                                                   \
			*(ret) = _add_r;                                       \
		_add_ok;                                                       \
	})

#define MUL_SAFE(ret, a, b)                                                    \
	({                                                                     \
		__typeof__(*(ret)) _mul_r;                                     \
		bool _mul_ok = !__builtin_mul_overflow((a), (b), &_mul_r);     \
		if (_mul_ok)                                                   \
			*(ret) = _mul_r;                                       \
		_mul_ok;                                                       \
	})
