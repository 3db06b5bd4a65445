/*
 * relive/codewrite.c - carrying out the agent's plan of code writes.
 *
 * The only writes into the target's own code are entry jumps and their
 * removal, and each is behaviour-neutral (the stub already runs what runs
 * now).  The one-byte writes (a stub at the site's landing) need no thread
 * held, and the agent makes them itself; what reaches this file are the
 * others (docs/architecture.md, "Code writes").  They go through
 * /proc/PID/mem, which leaves the pages' protections as they were, while
 * every thread is held: no thread can fetch a half-written instruction.  A
 * held thread whose PC is inside the bytes a jump displaces is moved to
 * the same instruction in the relocated copy, so it is never resumed in
 * the middle of the new jump.  The hold is kept short: the pages get their
 * private copies before it, and relive holds the threads at real-time
 * priority when it may, so those it lets go do not preempt it.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "background.h"
#include "relive.h"

/* Moves a held thread out of the displaced bytes of a redirected site. */
static int fix_pc(struct stopped *st, const struct relive_ctl_write *w)
{
	uint64_t pc = st->regs.rip;
	unsigned i;

	if (!w->redirect || pc <= w->addr)
		return 0;
	for (i = 1; i < w->n_insns; i++)
		if (pc == w->addr + w->old_off[i]) {
			st->regs.rip = w->copy + w->new_off[i];
			st->dirty = true;
			vlog("thread %d moved from %#llx into the original copy",
			     st->tid, (unsigned long long)pc);
			return 0;
		}
	if (pc < w->addr + w->len)
		return -EFAULT; /* inside an instruction: cannot happen */
	return 0;
}

/* Raises relive to the lowest real-time priority; false if it may not.
 * *old_slice is what background_restore() puts back afterwards. */
static bool hold_priority(int *old_policy, struct sched_param *old_param,
			  uint64_t *old_slice)
{
	struct sched_param p = { .sched_priority = 1 };

	*old_slice = background_slice();
	*old_policy = sched_getscheduler(0);
	if (*old_policy < 0 || sched_getparam(0, old_param))
		return false;
	if (*old_policy == SCHED_FIFO || *old_policy == SCHED_RR)
		return false; /* already real-time: leave it */
	return sched_setscheduler(0, SCHED_FIFO, &p) == 0;
}

int codewrite_apply(struct agent *a, char *err, size_t errlen)
{
	struct relive_ctl_write *plan;
	struct stopped *held = NULL;
	size_t nheld = 0, i, j, n, todo = 0;
	char path[64], msg[512];
	struct sched_param old_param;
	uint64_t old_slice = 0;
	int fd = -1, rc, old_policy;
	bool rt = false;

	if (agent_read_ctl(a))
		return -EIO;
	n = a->c.nplan;
	if (!n)
		return 0;
	plan = calloc(n, sizeof(*plan));
	if (!plan)
		return -ENOMEM;
	rc = proc_read(a->pid, a->c.plan, plan, n * sizeof(*plan));
	if (rc) {
		snprintf(err, errlen, "cannot read the agent's plan");
		goto out;
	}
	snprintf(path, sizeof(path), "/proc/%d/mem", a->pid);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot open %s: %s", path,
			 strerror(errno));
		goto out;
	}
	/* Check everything before writing anything, and before holding
	 * the threads: nothing but relive writes these bytes. */
	for (i = 0; i < n; i++) {
		uint8_t cur[32];

		if (pread(fd, cur, plan[i].len, plan[i].addr) != plan[i].len) {
			rc = -EIO;
			snprintf(err, errlen, "cannot read code at %#llx",
				 (unsigned long long)plan[i].addr);
			goto out;
		}
		if (!memcmp(cur, plan[i].bytes, plan[i].len)) {
			plan[i].len = 0; /* done by an interrupted run */
			continue;
		}
		if (memcmp(cur, plan[i].expect, plan[i].len)) {
			rc = -EBUSY;
			snprintf(err, errlen, "the code at %#llx is not what "
				 "relive expects (another tool or a debugger "
				 "changed it?); nothing was written",
				 (unsigned long long)plan[i].addr);
			goto out;
		}
		todo++;
	}
	if (!todo)
		goto release; /* an interrupted run wrote everything */
	/* Give each page its private copy now, while every thread runs: the
	 * first write through /proc/PID/mem to a page of a file mapping
	 * copies it (a page fault, a TLB flush), and that cost stays out of
	 * the hold.  The byte written is the one there: nothing changes. */
	for (i = 0; i < n; i++)
		if (plan[i].len &&
		    pwrite(fd, plan[i].expect, 1, plan[i].addr) != 1) {
			rc = -EIO;
			snprintf(err, errlen, "cannot write code at %#llx; "
				 "nothing was changed",
				 (unsigned long long)plan[i].addr);
			goto out;
		}
	/* While it holds every thread, relive must not wait behind them:
	 * each thread it lets go wakes up and would preempt it (and on a
	 * small machine, take the CPU it needs to let the next one go).  A
	 * real-time priority for the hold, when relive may take one, keeps
	 * the hold as short as the system calls it makes. */
	rt = hold_priority(&old_policy, &old_param, &old_slice);
	vlog("tracing every thread%s", rt ? " (real-time priority)" : "");
	rc = pt_stop_all(a->pid, &held, &nheld, err, errlen);
	if (rc)
		goto out; /* pt_stop_all let go of those it held */
	vlog("%zu threads held for %zu code write%s", nheld, todo,
	     todo == 1 ? "" : "s");
	for (i = 0; i < n; i++) {
		if (!plan[i].len)
			continue;
		for (j = 0; j < nheld; j++)
			if (fix_pc(&held[j], &plan[i])) {
				rc = -EFAULT;
				snprintf(err, errlen, "thread %d is inside an "
					 "instruction at %#llx", held[j].tid,
					 (unsigned long long)held[j].regs.rip);
				goto release;
			}
	}
	/* Threads leave the displaced bytes before any byte changes: a
	 * controller killed between the two steps leaves them in the copy,
	 * which runs the same instructions. */
	for (j = 0; j < nheld; j++) {
		rc = pt_flush_regs(&held[j]);
		if (rc == -ESRCH)
			rc = 0; /* killed meanwhile: it never runs again */
		if (rc) {
			snprintf(err, errlen, "thread %d: cannot move it out of "
				 "the code to be written; nothing was written",
				 held[j].tid);
			goto release;
		}
	}
	for (i = 0; i < n; i++) {
		if (!plan[i].len)
			continue;
		if (pwrite(fd, plan[i].bytes, plan[i].len, plan[i].addr) !=
		    plan[i].len) {
			rc = -errno;
			snprintf(err, errlen, "writing code at %#llx failed: %s",
				 (unsigned long long)plan[i].addr,
				 strerror(errno));
			/* Undo what was written: the writes are neutral, but
			 * the agent must know exactly what is in place. */
			while (i-- > 0)
				if (plan[i].len)
					(void)!pwrite(fd, plan[i].expect,
						      plan[i].len, plan[i].addr);
			goto release;
		}
	}
	vlog("%zu code write%s done", todo, todo == 1 ? "" : "s");
release:
	pt_release_all(held, nheld);
	held = NULL;
	if (rt) {
		sched_setscheduler(0, old_policy, &old_param);
		background_restore(old_slice);
	}
	rt = false;
	if (nheld)
		vlog("threads released");
	if (!rc)
		rc = agent_request(a, RELIVE_OP_WRITTEN, NULL, msg,
				   sizeof(msg));
out:
	if (rt) {
		sched_setscheduler(0, old_policy, &old_param);
		background_restore(old_slice);
	}
	if (fd >= 0)
		close(fd);
	free(plan);
	return rc;
}
