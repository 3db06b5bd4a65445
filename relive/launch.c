/*
 * relive/launch.c - the relive executable: starts the controller without
 * making the target's threads wait behind its start.
 *
 * relive runs beside the threads of the process it patches, often on a
 * machine with few CPUs.  Linux lets a program that just started run its
 * whole time slice before a thread woken on the same CPU gets it, and a
 * program's start-up (the exec, then the dynamic loader mapping and
 * relocating every library it needs) runs before the program can ask to
 * give way (common/background.c).  With elfutils linked in, that start-up
 * was 0.7 ms of CPU without a break, against 0.4 ms for a program that
 * needs only the C library; a thread of the target woken meanwhile was
 * late by up to that much.  So the executable needs only the C library:
 * it marks itself as giving way, yields once, then loads the controller's
 * libraries one at a time, yielding between them, and the controller last
 * (librelive-controller.so, all of relive but this file), and calls it.
 * The work is the same; it comes in pieces the waiting threads can
 * interleave with.  docs/performance.md ("Pause") has the measurements.
 */
#include <dlfcn.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "background.h"
#include "libpath.h"

#define CONTROLLER_FILE "librelive-controller.so"

/* The controller's own libraries, each with what it needs in turn: loaded
 * ahead of it to split the loading into pieces.  A name missing here (a
 * library renamed by a later elfutils) is loaded by the controller's own
 * dlopen, in one piece with it: only the pacing depends on this list. */
static const char *const early[] = { "libelf.so.1" };

int main(int argc, char **argv)
{
	char buf[PATH_MAX];
	const char *path;
	int (*controller_main)(int, char **);
	void *h;
	size_t i;

	/* Every command but run (whose program inherits it) works beside
	 * the target's threads: let any of them that wakes up go first. */
	if (argc < 2 || strcmp(argv[1], "run"))
		background_thread();
	sched_yield(); /* the exec and the loader ran without a break */
	for (i = 0; i < sizeof(early) / sizeof(early[0]); i++) {
		(void)dlopen(early[i], RTLD_LAZY | RTLD_LOCAL);
		sched_yield();
	}
	path = libpath_find(CONTROLLER_FILE, RELIVE_CONTROLLER_INSTALLED, buf,
			    sizeof(buf));
	h = dlopen(path, RTLD_LAZY | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "relive: cannot load the controller: %s\n"
			"relive: %s was looked for beside the relive "
			"executable and at %s; reinstall relive\n",
			dlerror(), CONTROLLER_FILE,
			RELIVE_CONTROLLER_INSTALLED);
		return 1;
	}
	controller_main = (int (*)(int, char **))dlsym(h, "relive_main");
	if (!controller_main) {
		fprintf(stderr, "relive: %s has no relive_main: %s; reinstall "
			"relive\n", path, dlerror());
		return 1;
	}
	sched_yield();
	return controller_main(argc, argv);
}
