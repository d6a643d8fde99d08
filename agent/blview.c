/* The blocklist as the kernel must hold it, in two pairs of sets (see
 * docs/blocklists.md).
 *
 * The policy and list entries (a million, say) are normalised and carved
 * once per policy: that is the view's `lists`, loaded into blocklist_v4/_v6.
 * The runtime entries go to dynamic_v4/_v6, recomputed whole on every block:
 * their number, not the lists', sets the cost. */
#include "blocklist.h"

int bl_view_init(struct bl_view *v, const struct cvz_prefix *policy_blocked, size_t n_policy,
		 const struct cvz_prefix *safelist, size_t n_safe)
{
	struct bl_view w = { 0 };
	int err = bl_never_blockable(&w.safe);
	for (size_t i = 0; !err && i < n_safe; i++)
		err = cvz_rangeset_add_prefix(&w.safe, &safelist[i]);
	for (size_t i = 0; !err && i < n_policy; i++)
		err = cvz_rangeset_add_prefix(&w.lists, &policy_blocked[i]);
	if (!err) {
		cvz_rangeset_normalize(&w.safe);
		cvz_rangeset_normalize(&w.lists);
		err = cvz_rangeset_subtract(&w.lists, &w.safe);
	}
	if (err) {
		bl_view_free(&w);
		return err;
	}
	*v = w;
	return 0;
}

void bl_view_free(struct bl_view *v)
{
	cvz_rangeset_free(&v->lists);
	cvz_rangeset_free(&v->safe);
}

int bl_view_dynamic(const struct bl_view *v, const struct blocklist *b, struct cvz_rangeset *out)
{
	struct bl_change none;
	bl_change_init(&none, b); /* allocates nothing */
	return bl_view_dynamic_next(v, &none, out);
}

int bl_view_dynamic_next(const struct bl_view *v, const struct bl_change *c,
			 struct cvz_rangeset *out)
{
	struct cvz_rangeset rt = { 0 };
	const struct bl_entry *e;
	size_t it = 0;
	int err = 0;
	while (!err && (e = bl_change_next(c, &it)))
		err = cvz_rangeset_add_prefix(&rt, &e->prefix);
	if (!err) {
		cvz_rangeset_normalize(&rt);
		/* a safelist added by a reload also carves entries made before */
		err = cvz_rangeset_subtract(&rt, &v->safe);
	}
	if (err) {
		cvz_rangeset_free(&rt);
		return err;
	}
	*out = rt;
	return 0;
}
