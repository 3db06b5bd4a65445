/*
 * agent/preload.c - what `relive run` preloads: a shim that loads the agent
 * privately.
 *
 * A preloaded library and its dependencies join the program's global
 * symbol scope, so preloading the agent itself would let its libraries
 * (libelf, Zydis) bind symbols the program or its plugins look up by name.
 * This shim exports nothing and dlopens the agent with RTLD_LOCAL, exactly
 * as injection does, then takes itself out of LD_PRELOAD so the program and
 * the programs it starts see the environment they would have had.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PRELOAD_ENV "RELIVE_PRELOAD_AGENT"
#define ORIG_ENV "RELIVE_PRELOAD_ORIG"

__attribute__((constructor)) static void relive_preload(void)
{
	const char *agent = getenv(PRELOAD_ENV);
	const char *orig = getenv(ORIG_ENV);

	if (orig && *orig)
		setenv("LD_PRELOAD", orig, 1);
	else
		unsetenv("LD_PRELOAD");
	unsetenv(ORIG_ENV);
	if (!agent)
		return;
	if (!dlopen(agent, RTLD_NOW | RTLD_LOCAL) && getenv("RELIVE_AGENT_LOG"))
		fprintf(stderr, "relive-preload: %s\n", dlerror());
	unsetenv(PRELOAD_ENV);
}
