/*
 * agent/libs_table.c - librelive-agent-libs.so: the agent's way to libelf
 * and Zydis.
 *
 * The agent is not linked with them (agent/libs.c says why): this small
 * library is, and exports one table of their functions.  Loading it loads
 * them, wherever the dynamic loader finds the versions relive was built
 * with; the agent then calls them through the table.
 */
#include "libs.h"

#define RELIVE_LIBS_INIT(f) .f = f,

__attribute__((visibility("default"))) const struct relive_libs
	relive_agent_libs = {
	.size = sizeof(struct relive_libs),
	RELIVE_LIBS_FUNCS(RELIVE_LIBS_INIT)
};
