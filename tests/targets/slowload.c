/*
 * tests/targets/slowload.c - a library whose loading takes as long as a
 * test wants: its constructor waits until a file named like the library
 * with ".go" appended exists (at most 60 s).  Copied in place of the
 * agent, it holds relive's boot thread inside its dlopen, so a test can
 * stop and continue the process meanwhile (tests/scenarios/test_service.py).
 */
#include <dlfcn.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static int slowload_anchor;

__attribute__((constructor)) static void slowload_wait(void)
{
	struct timespec ms = { 0, 1000000 };
	char go[4096];
	Dl_info info;
	int i;

	if (!dladdr(&slowload_anchor, &info) || !info.dli_fname)
		return;
	snprintf(go, sizeof(go), "%s.go", info.dli_fname);
	for (i = 0; i < 60000 && access(go, F_OK) != 0; i++)
		nanosleep(&ms, NULL);
}
