/*
 * relive/transition.c - driving a patch from one state to the other
 * (kernel: kernel/livepatch/transition.c).
 *
 * NOTE: this version switches every thread at once: the agent points the
 * slots at the new versions in one step.  The per-thread consistency model
 * (each thread switched after a reliable unwind of its stack shows none of
 * the functions being replaced) is designed in (see docs/architecture.md)
 * but not driven from here yet.
 */
#include <errno.h>
#include <stdio.h>

#include "relive.h"

int transition_enable(struct agent *a, const char *name, double timeout,
		      char *err, size_t errlen)
{
	(void)timeout;
	return agent_request(a, RELIVE_OP_ENABLE, name, err, errlen);
}

int transition_disable(struct agent *a, const char *name, double timeout,
		       char *err, size_t errlen)
{
	int rc;

	(void)timeout;
	rc = agent_request(a, RELIVE_OP_DISABLE, name, err, errlen);
	if (rc)
		return rc;
	/* Take away the entry jumps no version uses any more. */
	rc = agent_request(a, RELIVE_OP_UNUSED_SITES, NULL, err, errlen);
	if (rc)
		return rc;
	return codewrite_apply(a, err, errlen);
}
