/*
 * relive/sites.c - the sites of the functions a patch replaces, decoded by
 * relive instead of inside every target.
 *
 * Redirecting a function means decoding its first instructions and the
 * whole function for branches into them, and building the relocated copy
 * (agent/arch/x86_64/insn.c).  The agent did it inside the target, where
 * the decoder's first use in a request walks Zydis's tables: 94 us of the
 * 1.2-1.5 ms request that loads a one-function patch into a preloaded
 * process with 1000 processes alive, in every process of `relive patch
 * --all` (docs/performance.md, "Many processes", round 18).  relive decodes the same bytes, read from the
 * process just before the request, once per process in one warm process
 * of its own, and sends the site with the resolution (common/ctl.h, struct
 * relive_res_site).
 *
 * It is a shortcut, never an authority, like the rest of the resolution:
 * the agent takes a site only when the function's bytes it runs still hash
 * to what relive decoded, and moves it to the copy it places
 * (relive_arch_rebase_site); anything else, and it decodes the function
 * itself, which also gives the refusal messages.  A function relive cannot
 * prepare is left to the agent for the same reason.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "patchfile.h"
#include "relive.h"

/* Larger functions are left to the agent: the read is per process. */
#define SITE_READ_MAX (64u << 10)

static uint8_t code[SITE_READ_MAX];

void sites_prepare(struct relive_res *r, const struct patchfile *pf,
		   size_t obj, size_t func, pid_t pid, uint64_t addr,
		   uint64_t size)
{
	struct relive_res_site *s = resolution_site(r, pf, obj, func);
	char err[256];

	if (!s)
		return;
	memset(s, 0, sizeof(*s));
	if (!size || size > SITE_READ_MAX || proc_read(pid, addr, code, size))
		return;
	/* The copy at the function itself: always within reach; the agent
	 * moves it to the copy it places. */
	if (relive_arch_prepare_site(code, size, addr, addr, &s->site, err,
				     sizeof(err)))
		return; /* the agent decodes it and says why */
	s->hash = relive_code_hash(code, size);
	/* For tests (tests/scenarios/test_resolution.py): a hash that no
	 * bytes have, as if the function changed after relive read it. */
	if (getenv("RELIVE_TEST_SITE_STALE"))
		s->hash = ~s->hash;
	s->size = size;
	s->ok = 1;
}
