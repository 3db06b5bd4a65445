/*
 * relive/unwind_load.c - the controller's side of the unwinder: loads
 * librelive-unwind.so (relive/unwind.c with elfutils libdw) the first time
 * a command unwinds a stack, and forwards to it.
 *
 * Most commands never unwind: the agent switches the threads that sleep
 * (agent/sleepers.c) and a request needs no stack of the program.  Loading
 * libdw and the compression libraries it needs (libz, liblzma, libbz2)
 * took 1.2-2.4 ms of CPU at every start of relive, a time during which the
 * target's threads that woke on relive's CPU waited; now only a command
 * that holds threads to check their stacks, or borrows one to inject the
 * agent, pays it.
 */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>

#include "background.h"
#include "libpath.h"
#include "unwind.h"

static const struct unwind_ops *ops;

static const struct unwind_ops *load(char *err, size_t errlen)
{
	char buf[PATH_MAX];
	const char *path;
	void *h;

	if (ops)
		return ops;
	path = libpath_find(RELIVE_UNWIND_FILE, RELIVE_UNWIND_INSTALLED, buf,
			    sizeof(buf));
	h = dlopen(path, RTLD_LAZY | RTLD_LOCAL);
	if (!h) {
		snprintf(err, errlen, "cannot load the unwinder: %s; %s was "
			 "looked for beside the relive executable and at %s; "
			 "reinstall relive", dlerror(), RELIVE_UNWIND_FILE,
			 RELIVE_UNWIND_INSTALLED);
		return NULL;
	}
	ops = dlsym(h, RELIVE_UNWIND_OPS);
	if (!ops) {
		snprintf(err, errlen, "%s has no %s: reinstall relive", path,
			 RELIVE_UNWIND_OPS);
		dlclose(h);
		return NULL;
	}
	ops->set_pace(background_step);
	background_step(); /* the load was a piece of work */
	return ops;
}

int unwind_open(pid_t pid, struct unwinder **u, char *err, size_t errlen)
{
	return load(err, errlen) ? ops->open(pid, u, err, errlen) : -ENOENT;
}

int unwind_get(pid_t pid, struct unwinder **u, char *err, size_t errlen)
{
	return load(err, errlen) ? ops->get(pid, u, err, errlen) : -ENOENT;
}

/* The others take an unwinder, which only a loaded library gave. */

void unwind_close(struct unwinder *u)
{
	if (ops)
		ops->close(u);
}

int unwind_refresh(struct unwinder *u)
{
	return ops->refresh(u);
}

int unwind_thread(struct unwinder *u, pid_t tid,
		  const struct user_regs_struct *regs,
		  int (*cb)(uint64_t pc, void *arg), void *arg, char *why,
		  size_t whylen)
{
	return ops->thread(u, tid, regs, cb, arg, why, whylen);
}

bool unwind_warm(struct unwinder *u, uint64_t pc, uint64_t *lo, uint64_t *hi)
{
	return ops->warm(u, pc, lo, hi);
}

void unwind_warm_exe(struct unwinder *u)
{
	ops->warm_exe(u);
}

void unwind_drop_files(void)
{
	if (ops)
		ops->drop_files();
}
