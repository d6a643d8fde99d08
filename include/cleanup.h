/* Small ownership helpers in the style of systemd's cleanup-fundamental.h:
 * a variable declared _cleanup_(freep) is freed when it leaves scope, and
 * TAKE_PTR() hands ownership on explicitly. */
#pragma once
#include <stdlib.h>

#define _cleanup_(f) __attribute__((cleanup(f)))

static inline void freep(void *p) { free(*(void **)p); }

#define TAKE_PTR(p)                                                            \
	({                                                                     \
		__typeof__(p) _take_tmp = (p);                                 \
		(p) = NULL;                                                    \
		_take_tmp;                                                     \
	})

#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))

#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)                                \
	static inline void func##p(type *p)                                    \
	{                                                                      \
		if (*p)                                                        \
			func(*p);                                              \
	}
