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
 * private copies before it, the sites are written a span of code at a time
 * (relive/codespan.c), and relive holds the threads at real-time priority
 * when it may, so those it lets go do not preempt it.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "background.h"
#include "codespan.h"
#include "relive.h"

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

/* A span of code (codespan.h) and its bytes. */
struct span {
	struct codespan c;
	uint8_t *before;   /* read while every thread ran */
	uint8_t *after;    /* what the hold writes */
	uint8_t *held;     /* read again in the hold (the undo) */
};

static void free_spans(struct span *spans, size_t ns)
{
	size_t i;

	for (i = 0; spans && i < ns; i++) {
		free(spans[i].before);
		free(spans[i].after);
		free(spans[i].held);
	}
	free(spans);
}

/* Reads every span and checks each of its sites (codespan_splice). */
static int check_spans(int fd, struct relive_ctl_write *plan,
		       const size_t *order, struct span *spans, size_t ns,
		       size_t *todo, char *err, size_t errlen)
{
	size_t i, bad;

	for (i = 0; i < ns; i++) {
		struct span *s = &spans[i];
		size_t len = s->c.len;

		s->before = malloc(len);
		s->after = malloc(len);
		s->held = malloc(len);
		if (!s->before || !s->after || !s->held) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		if (pread(fd, s->before, len, s->c.start) != (ssize_t)len) {
			snprintf(err, errlen, "cannot read code at %#llx",
				 (unsigned long long)s->c.start);
			return -EIO;
		}
		if (codespan_splice(plan, order, &s->c, s->before, s->after,
				    todo, &bad)) {
			snprintf(err, errlen, "the code at %#llx is not what "
				 "relive expects (another tool or a debugger "
				 "changed it?); nothing was written",
				 (unsigned long long)plan[bad].addr);
			return -EBUSY;
		}
	}
	return 0;
}

/* Gives each page to be written its private copy now, while every thread
 * runs: the first write through /proc/PID/mem to a page of a file mapping
 * copies it (a page fault, a TLB flush), and that cost stays out of the
 * hold.  The byte written is the one there: nothing changes. */
static int copy_pages(int fd, const struct span *spans, size_t ns,
		      char *err, size_t errlen)
{
	uint64_t psz = (uint64_t)sysconf(_SC_PAGESIZE), last = (uint64_t)-1;
	size_t i;

	for (i = 0; i < ns; i++) {
		const struct codespan *c = &spans[i].c;
		uint64_t a;

		if (!c->todo)
			continue;
		for (a = c->start; a < c->start + c->len;
		     a = (a | (psz - 1)) + 1) {
			if ((a & ~(psz - 1)) == last)
				continue;
			last = a & ~(psz - 1);
			if (pwrite(fd, spans[i].before + (a - c->start), 1,
				   (off_t)a) != 1) {
				snprintf(err, errlen, "cannot write code at "
					 "%#llx; nothing was changed",
					 (unsigned long long)a);
				return -EIO;
			}
		}
	}
	return 0;
}

/* In the hold: each span is read again (nothing may have changed since
 * the check) and written with its sites' new bytes.  On failure what was
 * written is put back: the writes are neutral, but the agent must know
 * exactly what is in place. */
static int write_spans(int fd, struct span *spans, size_t ns, char *err,
		       size_t errlen)
{
	size_t i;
	int rc = 0;

	for (i = 0; i < ns; i++) {
		struct span *s = &spans[i];
		size_t len = s->c.len;
		off_t at = (off_t)s->c.start;

		if (!s->c.todo)
			continue;
		if (pread(fd, s->held, len, at) != (ssize_t)len) {
			rc = -EIO;
			snprintf(err, errlen, "cannot read code at %#llx",
				 (unsigned long long)s->c.start);
			break;
		}
		if (memcmp(s->held, s->before, len)) {
			rc = -EBUSY;
			snprintf(err, errlen, "the code at %#llx changed while "
				 "relive was about to write it (another tool "
				 "or a debugger?); nothing was written",
				 (unsigned long long)s->c.start);
			break;
		}
		errno = 0;
		if (pwrite(fd, s->after, len, at) != (ssize_t)len) {
			rc = errno ? -errno : -EIO;
			snprintf(err, errlen, "writing code at %#llx failed: "
				 "%s; nothing was written",
				 (unsigned long long)s->c.start, strerror(-rc));
			(void)!pwrite(fd, s->held, len, at);
			break;
		}
	}
	if (rc)
		while (i-- > 0)
			if (spans[i].c.todo)
				(void)!pwrite(fd, spans[i].held, spans[i].c.len,
					      (off_t)spans[i].c.start);
	return rc;
}

int codewrite_apply(struct agent *a, char *err, size_t errlen)
{
	struct relive_ctl_write *plan;
	struct stopped *held = NULL;
	struct codespan *cs = NULL;
	struct span *spans = NULL;
	size_t *order = NULL;
	size_t nheld = 0, i, j, n, ns = 0, todo = 0, nspans = 0, bad;
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
	order = calloc(n, sizeof(*order));
	cs = calloc(n, sizeof(*cs));
	if (!plan || !order || !cs) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	rc = proc_read(a->pid, a->c.plan, plan, n * sizeof(*plan));
	if (rc) {
		snprintf(err, errlen, "cannot read the agent's plan");
		goto out;
	}
	for (i = 0; i < n; i++)
		if (plan[i].len > sizeof(plan[i].bytes)) {
			rc = -EINVAL;
			snprintf(err, errlen, "the agent's plan is corrupt "
				 "(write %zu: %u bytes)", i, plan[i].len);
			goto out;
		}
	codespan_sort(plan, n, order);
	ns = codespan_group(plan, order, n, cs);
	spans = calloc(ns, sizeof(*spans));
	if (!spans) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (i = 0; i < ns; i++)
		spans[i].c = cs[i];
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
	rc = check_spans(fd, plan, order, spans, ns, &todo, err, errlen);
	if (rc)
		goto out;
	if (!todo)
		goto release; /* an interrupted run wrote everything */
	rc = copy_pages(fd, spans, ns, err, errlen);
	if (rc)
		goto out;
	for (i = 0; i < ns; i++)
		nspans += spans[i].c.todo;
	/* While it holds every thread, relive must not wait behind them:
	 * each thread it lets go wakes up and would preempt it (and on a
	 * small machine, take the CPU it needs to let the next one go).  A
	 * real-time priority for the hold, when relive may take one, keeps
	 * the hold as short as the system calls it makes. */
	vlog("%zu code write%s to make in %zu span%s of code", todo,
	     todo == 1 ? "" : "s", nspans, nspans == 1 ? "" : "s");
	rt = hold_priority(&old_policy, &old_param, &old_slice);
	vlog("tracing every thread%s", rt ? " (real-time priority)" : "");
	rc = pt_stop_all(a->pid, &held, &nheld, err, errlen);
	if (rc)
		goto out; /* pt_stop_all let go of those it held */
	vlog("%zu threads held for %zu code write%s", nheld, todo,
	     todo == 1 ? "" : "s");
	for (j = 0; j < nheld; j++) {
		uint64_t pc = held[j].regs.rip, to;
		int moved = codespan_fix_pc(plan, order, n, pc, &to, &bad);

		if (moved < 0) {
			rc = -EFAULT;
			snprintf(err, errlen, "thread %d is inside the "
				 "instruction at %#llx that relive must "
				 "replace; nothing was written", held[j].tid,
				 (unsigned long long)pc);
			goto release;
		}
		if (moved) {
			held[j].regs.rip = to;
			held[j].dirty = true;
			vlog("thread %d moved from %#llx into the original "
			     "copy", held[j].tid, (unsigned long long)pc);
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
	rc = write_spans(fd, spans, ns, err, errlen);
	if (!rc)
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
	free_spans(spans, spans ? ns : 0);
	free(cs);
	free(order);
	free(plan);
	return rc;
}
