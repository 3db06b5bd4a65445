/*
 * tests/targets/libcalc.c - the shared library of the basic target: one
 * function to patch, and exported functions whose names an agent might also
 * use, to prove that loading the agent changes no symbol binding.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* dladdr, RTLD_DEFAULT */
#endif
#include "calc.h"
#include "target.h"

#include <dlfcn.h>
#include <stddef.h>
#include <string.h>

volatile int calc_two = 2;

/* Original behaviour: x + 2.  The volatile load (RIP-relative through the
 * GOT) makes the prologue longer than a jump. */
PATCHABLE int calc_value(int x)
{
	return x + calc_two;
}

/*
 * Default visibility and called from inside the library: without
 * -Bsymbolic every call goes through the PLT and binds to the first
 * definition in the global scope, so an agent exporting one of these names
 * would capture the calls.  Each returns its own marker.
 */
#define OWN(name, marker)                                                      \
	int name(void);                                                        \
	__attribute__((noinline)) int name(void) { return marker; }

OWN(init, 101)
OWN(request, 102)
OWN(patch_apply, 103)
OWN(core_init, 104)
OWN(shadow_get, 105)
OWN(codemem_alloc, 106)
OWN(insn_relocate, 107)
OWN(stub_build, 108)
OWN(agent_request, 109)
OWN(log_msg, 110)
OWN(klp_enable_patch, 111)
OWN(transition_start, 112)

static const struct {
	const char *name;
	int (*call)(void);
	int marker;
} own[] = {
	{ "init", init, 101 },
	{ "request", request, 102 },
	{ "patch_apply", patch_apply, 103 },
	{ "core_init", core_init, 104 },
	{ "shadow_get", shadow_get, 105 },
	{ "codemem_alloc", codemem_alloc, 106 },
	{ "insn_relocate", insn_relocate, 107 },
	{ "stub_build", stub_build, 108 },
	{ "agent_request", agent_request, 109 },
	{ "log_msg", log_msg, 110 },
	{ "klp_enable_patch", klp_enable_patch, 111 },
	{ "transition_start", transition_start, 112 },
};

const char *calc_own_check(void)
{
	Dl_info info;

	for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
		void *addr = dlsym(RTLD_DEFAULT, own[i].name);

		if (own[i].call() != own[i].marker)
			return own[i].name;
		if (!addr || !dladdr(addr, &info) || !info.dli_fname ||
		    !strstr(info.dli_fname, "libcalc"))
			return own[i].name;
	}
	return NULL;
}
