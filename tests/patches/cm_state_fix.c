/*
 * The system-state patches of the cm_multi target (kernel: klp_state,
 * klp_get_state, klp_get_prev_state), one source built with different
 * definitions (tests/patches/meson.build):
 *
 *     CM_PATCH_NAME   the patch's name
 *     STATE_VERSION   when defined, the patch carries state CM_STATE_ID at
 *                     that version
 *     REPLACE         an atomic-replace patch
 *
 * pre_patch sets up the state's data: it takes over the data of the state
 * installed by an enabled patch (klp_get_prev_state) and adds 1 to it, or
 * allocates new data holding 777.  It logs "state_takeover" or
 * "state_fresh" (cm_cblog.h).  post_unpatch frees the data (it runs only
 * when the patch is disabled, never when a replacing patch took over).
 *
 * cm_state_probe() returns VERSION * 100000 + the value of the data, as
 * klp_get_state() of this patch sees it; 9 for a patch without state.
 */
#include "cm_cblog.h"

#define CM_STATE_ID 4242

#ifdef STATE_VERSION
static struct klp_state states[] = {
	{ .id = CM_STATE_ID, .version = STATE_VERSION },
	{ 0 }
};

static int state_pre_patch(struct klp_object *obj)
{
	struct klp_state *s = klp_get_state(CM_STATE_ID);
	struct klp_state *prev = klp_get_prev_state(CM_STATE_ID);

	if (!s) {
		cm_cblog("state_missing", obj);
		return -22;
	}
	if (prev && prev->data) {
		s->data = prev->data;
		(*(long *)s->data)++;
		cm_cblog("state_takeover", obj);
	} else {
		s->data = malloc(sizeof(long));
		if (!s->data)
			return -12;
		*(long *)s->data = 777;
		cm_cblog("state_fresh", obj);
	}
	return cm_pre_patch(obj);
}

static void state_post_unpatch(struct klp_object *obj)
{
	struct klp_state *s = klp_get_state(CM_STATE_ID);

	cm_post_unpatch(obj);
	if (s && s->data) {
		free(s->data);
		s->data = NULL;
	}
}

static long new_cm_state_probe(void)
{
	struct klp_state *s = klp_get_state(CM_STATE_ID);

	if (!s || !s->data)
		return -1;
	return (long)s->version * 100000 + *(long *)s->data;
}
#else
static int state_pre_patch(struct klp_object *obj)
{
	return cm_pre_patch(obj);
}

static void state_post_unpatch(struct klp_object *obj)
{
	cm_post_unpatch(obj);
}

static long new_cm_state_probe(void)
{
	return 9;
}
#endif

static struct klp_func funcs[] = {
	{ .old_name = "cm_state_probe", .new_func = new_cm_state_probe },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = NULL, .funcs = funcs,
	  .callbacks = { .pre_patch = state_pre_patch,
			 .post_patch = cm_post_patch,
			 .pre_unpatch = cm_pre_unpatch,
			 .post_unpatch = state_post_unpatch } },
	{ 0 }
};

static struct klp_patch patch = {
	.objs = objs,
#ifdef STATE_VERSION
	.states = states,
#endif
#ifdef REPLACE
	.replace = true,
#endif
};
RELIVE_PATCH(patch);
