/*
 * agent/state.c - system states (kernel: kernel/livepatch/state.c).
 *
 * A state records that a patch changed something about the running program
 * beyond its code (a new data layout, a lock order) so that a later,
 * replacing patch can take it over.  klp_get_state() finds a state of the
 * calling patch; klp_get_prev_state() the same state as installed by the
 * patches already enabled.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "agent.h"

static struct relive_patch *patch_of_info(const void *info)
{
	struct relive_patch *p;

	for (p = agent_patches; p; p = p->next)
		if (p->info == info)
			return p;
	return NULL;
}

static struct klp_state *find_state(struct relive_patch *p, unsigned long id)
{
	struct klp_state *s = p->info->patch->states;

	for (; s && s->id; s++)
		if (s->id == id)
			return s;
	return NULL;
}

struct klp_state *state_get(const void *info, unsigned long id)
{
	struct relive_patch *p = patch_of_info(info);

	return p ? find_state(p, id) : NULL;
}

struct klp_state *state_get_prev(const void *info, unsigned long id)
{
	struct relive_patch *p, *self = patch_of_info(info);
	struct klp_state *found = NULL;

	for (p = agent_patches; p && p != self; p = p->next) {
		struct klp_state *s;

		if (!p->enabled)
			continue;
		s = find_state(p, id);
		if (s)
			found = s;
	}
	return found;
}

/*
 * kernel: klp_is_patch_compatible().  A replacing patch must carry every
 * state of the enabled patches at an equal or higher version; any patch
 * must not lower the version of a state it shares with them.
 */
int state_check_compatible(struct relive_patch *np)
{
	struct relive_patch *p;

	for (p = agent_patches; p; p = p->next) {
		struct klp_state *s = p->info->patch->states;

		if (!p->enabled || p == np)
			continue;
		for (; s && s->id; s++) {
			struct klp_state *ns = find_state(np, s->id);

			if (!ns && !np->replace)
				continue;
			if (!ns || ns->version < s->version) {
				agent_msg("patch '%s' is not compatible with "
					  "patch '%s': system state %lu is at "
					  "version %u there and %s%u here; a "
					  "patch must keep every state at an "
					  "equal or higher version",
					  np->name, p->name, s->id, s->version,
					  ns ? "" : "missing, needed at ",
					  ns ? ns->version : s->version);
				return -EINVAL;
			}
		}
	}
	return 0;
}
