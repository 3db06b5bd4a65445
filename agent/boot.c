/*
 * agent/boot.c - librelive-boot.so: loads the agent into a running process
 * from a thread of its own.
 *
 * Why: relive borrows a thread of the program for a dlopen() and needs to
 * know how it went.  Following that thread system call by system call
 * (PTRACE_SYSCALL, two stops each) through the agent's own dlopen would be
 * about 45 system calls (85 when the agent brought libelf and Zydis,
 * agent/libs.c), 90 stops, milliseconds.  So the borrowed thread loads
 * this library instead, which depends on nothing but the C library, and
 * its constructor calls relive_boot_start(): it starts a thread that makes
 * the dlopen of the agent beside this library and reports in relive_boot
 * how it went.  relive follows the borrowed thread only until it makes
 * that thread (PTRACE_O_TRACECLONE: one stop), then lets it finish its
 * dlopen and get home alone (relive/inject.c, boot_inject).  When the
 * library was loaded already (a relive killed before it was done),
 * relive makes the borrowed thread call relive_boot_start() itself.
 *
 * The thread ("relive-boot") blocks every signal, so signals meant for the
 * program never run on it, and it ends as soon as the dlopen returns.  When
 * the agent cannot be loaded, relive unloads this library again (dlclose on
 * the handle kept here) once the thread has ended, so a failed injection
 * leaves nothing of relive's code behind.
 *
 * Nothing here is exported but relive_boot and relive_boot_start, and the
 * layout of relive_boot is shared with relive/inject.c (ctl.h).
 */
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "ctl.h"

__attribute__((visibility("default"))) struct relive_boot relive_boot = {
	.state = RELIVE_BOOT_IDLE,
};

static void *boot_thread(void *arg)
{
	struct relive_boot *b = &relive_boot;
	void *h;

	(void)arg;
	prctl(PR_SET_NAME, "relive-boot");
	b->tid = (uint32_t)gettid();
	h = dlopen(b->path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		const char *e = dlerror();

		snprintf(b->error, sizeof(b->error), "%s",
			 e ? e : "dlopen failed");
	}
	__atomic_store_n(&b->state, h ? RELIVE_BOOT_LOADED : RELIVE_BOOT_FAILED,
			 __ATOMIC_RELEASE);
	return NULL;
}

/*
 * Starts the boot thread on relive_boot.path, or when that is empty on the
 * agent beside this library.  Called by the constructor, on the thread
 * relive borrowed for the dlopen of this library, or by that thread
 * directly when the library was loaded already (a relive killed before it
 * was done).  Sets RUNNING before anything else (relive reads it to know
 * the thread it sees made is this one), then starts the thread.  Returns 0, or an errno
 * when the thread could not be started (relive_boot.state says so too).
 */
__attribute__((visibility("default"))) int relive_boot_start(void)
{
	struct relive_boot *b = &relive_boot;
	pthread_attr_t attr;
	sigset_t all, old;
	struct link_map *self = NULL;
	pthread_t t;
	Dl_info info;
	int rc;

	b->tid = 0;
	b->error[0] = '\0';
	if (dladdr1(&relive_boot, &info, (void **)&self, RTLD_DL_LINKMAP) &&
	    info.dli_fname) {
		/* The handle relive closes this library with if the agent
		 * fails to load: the C library's handle of an object is its
		 * link map.  (Not a dlopen of this library: from its
		 * constructor, that would run inside the dlopen still
		 * loading it.) */
		b->handle = (uint64_t)(uintptr_t)self;
		if (!b->path[0]) {
			const char *slash = strrchr(info.dli_fname, '/');
			int dir = slash ? (int)(slash - info.dli_fname) : 0;

			snprintf(b->path, sizeof(b->path), "%.*s/%s", dir,
				 info.dli_fname, RELIVE_AGENT_FILE);
		}
	}
	__atomic_store_n(&b->state, RELIVE_BOOT_RUNNING, __ATOMIC_RELEASE);
	sigfillset(&all);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 512 * 1024);
	/* The new thread inherits the mask: all blocked from its first
	 * instruction. */
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&t, &attr, boot_thread, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (rc) {
		snprintf(b->error, sizeof(b->error),
			 "cannot start a thread: %s", strerror(rc));
		__atomic_store_n(&b->state, RELIVE_BOOT_FAILED,
				 __ATOMIC_RELEASE);
	}
	return rc;
}

/* Loaded by relive's borrowed thread: start at once.  The boot thread's
 * dlopen waits for the loader, which this dlopen holds until it returns. */
__attribute__((constructor)) static void boot_init(void)
{
	relive_boot_start();
}
