/*
 * relive/transition.c - the controller's half of the consistency model
 * (kernel: kernel/livepatch/transition.c, klp_try_complete_transition).
 *
 * The agent starts a transition by pointing the patch's functions at the
 * dispatcher; from then on each thread runs the versions of its own world.
 * This file switches threads, one at a time: it holds a thread for an
 * instant, reads its state word, and unwinds its stack; if the unwind is
 * reliable and shows none of the versions the thread would leave, it writes
 * the thread's new state word and lets it go.  Threads that cannot switch
 * now are retried on a schedule, and reported (kernel: "is sleeping on
 * function ...") in the listing.  When every thread is in the target world
 * the agent completes the transition.
 *
 * Nothing here is needed for safety between two passes: a controller that
 * dies, or gives up at its timeout, leaves a valid state (each thread wholly
 * in one world) that a later command continues, reverses or forces.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "elfsym.h"
#include "background.h"
#include "relive.h"
#include "unwind.h"

struct pending {
	pid_t tid;
	char function[112];
	const char *reason;
	char why[160];
};

struct drive {
	struct agent *a;
	struct unwinder *u;
	struct relive_ctl_range *ranges; /* sorted by lo */
	size_t nranges;
	uint64_t maxlen;                 /* of the longest range */
	pid_t *done;             /* threads switched in this run */
	size_t ndone, capdone;
	struct pending *pend;
	size_t npend, cappend;
	size_t nthreads;
	uint64_t create_lo, create_hi; /* libc's pthread_create */
	struct proc_map *sys;          /* code of libc and the loader */
	size_t nsys;
	double longest_hold;           /* of one thread, in this pass (s) */
	bool warm;                     /* warm_unwinder() was called */
};

struct stack_check {
	const struct drive *d;
	bool any_world;          /* only look for thread creation */
	uint32_t world;
	unsigned frame;
	const char *hit;
	bool top;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int frame_cb(uint64_t pc, void *arg)
{
	struct stack_check *sc = arg;
	size_t i;

	/* A return address may be one past the end of its caller. */
	if (sc->frame++ > 0)
		pc--;
	if (pc >= sc->d->create_lo && pc < sc->d->create_hi) {
		sc->hit = "pthread_create";
		sc->top = false;
		return 1;
	}
	if (sc->any_world)
		return 0;
	/* The ranges starting at or below pc, back to the longest range's
	 * reach: a patch of many functions has many ranges. */
	size_t lo = 0, hi = sc->d->nranges;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (sc->d->ranges[mid].lo <= pc)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (i = lo; i-- > 0;) {
		const struct relive_ctl_range *r = &sc->d->ranges[i];

		if (r->lo + sc->d->maxlen <= pc)
			break;
		if (r->world == sc->world && pc < r->hi) {
			sc->hit = r->name;
			sc->top = sc->frame == 1;
			return 1;
		}
	}
	return 0;
}

static bool is_done(const struct drive *d, pid_t tid)
{
	size_t i;

	for (i = 0; i < d->ndone; i++)
		if (d->done[i] == tid)
			return true;
	return false;
}

static int tid_cmp(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;

	return (x > y) - (x < y);
}

/* Drops the threads that exited from the switched ones: the kernel may
 * give an exited thread's id to a new thread, which must be checked like
 * any other, not taken for the one switched before.  The id would have to
 * come round again (pid_max allocations) between two readings of the task
 * list for that to be missed. */
static void forget_exited(struct drive *d, pid_t *tids, size_t n)
{
	size_t i, k = 0;

	qsort(tids, n, sizeof(*tids), tid_cmp);
	for (i = 0; i < d->ndone; i++)
		if (bsearch(&d->done[i], tids, n, sizeof(*tids), tid_cmp))
			d->done[k++] = d->done[i];
	d->ndone = k;
}

static int mark_done(struct drive *d, pid_t tid)
{
	if (d->ndone == d->capdone) {
		size_t cap = d->capdone ? 2 * d->capdone : 64;
		pid_t *n = realloc(d->done, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		d->done = n;
		d->capdone = cap;
	}
	d->done[d->ndone++] = tid;
	return 0;
}

static void add_pending(struct drive *d, pid_t tid, const char *function,
			const char *reason, const char *why)
{
	struct pending *p;

	if (d->npend == d->cappend) {
		size_t cap = d->cappend ? 2 * d->cappend : 16;
		struct pending *n = realloc(d->pend, cap * sizeof(*n));

		if (!n)
			return;
		d->pend = n;
		d->cappend = cap;
	}
	p = &d->pend[d->npend++];
	p->tid = tid;
	snprintf(p->function, sizeof(p->function), "%s", function ? function : "");
	p->reason = reason;
	snprintf(p->why, sizeof(p->why), "%s", why ? why : "");
}

static bool in_sys(const struct drive *d, uint64_t pc)
{
	size_t i;

	for (i = 0; i < d->nsys; i++)
		if (pc >= d->sys[i].lo && pc < d->sys[i].hi)
			return true;
	return false;
}

static int check_and_switch(struct drive *d, pid_t tid);

/* Tries to switch one thread, holding it only for its own check: the time
 * of the call is the thread's hold (from the interrupt to the release; the
 * bookkeeping around them is negligible).  Returns 0 (switched or gone), 1
 * (pending), or a negative errno. */
static int try_switch(struct drive *d, pid_t tid)
{
	double t0 = now(), held;
	int rc = check_and_switch(d, tid);

	held = now() - t0;
	if (held > d->longest_hold)
		d->longest_hold = held;
	return rc;
}

static int check_and_switch(struct drive *d, pid_t tid)
{
	const struct relive_ctl *c = &d->a->c;
	struct stack_check sc = { .d = d };
	struct stopped st;
	char err[256], why[256] = "";
	uint32_t v, target;
	uint64_t addr;
	bool in_after;
	int rc;

	if (pt_stop(tid, &st, err, sizeof(err)))
		return 0; /* exited: forgotten */
	addr = st.regs.fs_base + c->tls_offset;
	if (proc_read(d->a->pid, addr, &v, sizeof(v))) {
		pt_release(&st);
		add_pending(d, tid, NULL, "unreliable stack",
			    "cannot read its state");
		return 1;
	}
	in_after = v == c->trans_gen;
	sc.world = in_after ? 1 : 0;
	/* A thread already in the target world only needs the check for
	 * thread creation (see the comment at thread_creation_range). */
	sc.any_world = in_after == (bool)c->trans_after_is_target;
	if (pt_is_newborn(d->a->pid, &st)) {
		/* Its first instruction, on a stack of its own with nothing
		 * on it (no unwind table covers that instruction: glibc ends
		 * clone's before the system call).  A thread made with
		 * clone(2) where a program's function made the call starts
		 * inside that function, so its PC is checked like a frame. */
		rc = frame_cb(st.regs.rip, &sc);
		vlog("thread %d has not run yet", tid);
	} else {
		rc = unwind_thread(d->u, tid, &st.regs, frame_cb, &sc, why,
				   sizeof(why));
	}
	if (sc.any_world && (rc == 0 || (rc < 0 &&
					 !in_sys(d, st.regs.rip)))) {
		/* Unreliable, but stopped outside libc and the loader: not
		 * inside pthread_create, which calls nothing else. */
		pt_release(&st);
		return mark_done(d, tid);
	}
	if (rc == 0) {
		target = c->trans_after_is_target ? c->trans_gen : 0;
		rc = proc_write(d->a->pid, addr, &target, sizeof(target));
		pt_release(&st);
		if (rc) {
			add_pending(d, tid, NULL, "unreliable stack",
				    "cannot write its state");
			return 1;
		}
		vlog("thread %d switched", tid);
		return mark_done(d, tid);
	}
	pt_release(&st);
	if (rc == 1)
		add_pending(d, tid, sc.hit, sc.top ? "running" : "on stack",
			    NULL);
	else
		add_pending(d, tid, NULL, "unreliable stack", why);
	return 1;
}

static void json_str(char *buf, size_t len, size_t *off, const char *s)
{
	if (*off < len)
		*off += snprintf(buf + *off, len - *off, "\"");
	for (; *s && *off + 8 < len; s++) {
		if (*s == '"' || *s == '\\')
			*off += snprintf(buf + *off, len - *off, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			*off += snprintf(buf + *off, len - *off, " ");
		else
			buf[(*off)++] = *s;
	}
	if (*off < len)
		*off += snprintf(buf + *off, len - *off, "\"");
}

/* Publishes the pending threads for `relive list`. */
static void publish_pending(struct drive *d)
{
	char buf[sizeof(((struct relive_ctl *)0)->pending)];
	size_t off = 0, i;

	off += snprintf(buf + off, sizeof(buf) - off, "[");
	for (i = 0; i < d->npend && off + 400 < sizeof(buf); i++) {
		const struct pending *p = &d->pend[i];

		off += snprintf(buf + off, sizeof(buf) - off,
				"%s{\"tid\":%d,\"function\":", i ? "," : "",
				p->tid);
		if (p->function[0])
			json_str(buf, sizeof(buf), &off, p->function);
		else
			off += snprintf(buf + off, sizeof(buf) - off, "null");
		off += snprintf(buf + off, sizeof(buf) - off, ",\"reason\":");
		json_str(buf, sizeof(buf), &off, p->reason);
		if (p->why[0]) {
			off += snprintf(buf + off, sizeof(buf) - off,
					",\"detail\":");
			json_str(buf, sizeof(buf), &off, p->why);
		}
		off += snprintf(buf + off, sizeof(buf) - off, "}");
	}
	snprintf(buf + off, sizeof(buf) - off, "]");
	proc_write(d->a->pid,
		   d->a->ctl + offsetof(struct relive_ctl, pending), buf,
		   strlen(buf) + 1);
}

/*
 * A new thread takes its state word from the agent's TLS image, which the
 * agent rewrites when a transition starts or reverses.  pthread_create
 * copies the image into the new thread's TLS well before the clone(2) that
 * makes the thread visible in /proc: a creator that copied the image just
 * before the rewrite may clone a thread with a stale word after the last
 * pass looked at the task list, and that thread would run in the wrong
 * world until completion moves it mid-call.  So a thread inside
 * pthread_create is "on stack" until it has left it: once every thread was
 * seen outside it after the rewrite, every thread born of a stale copy is
 * in the task list, and the last look at that list finds it.  The kernel
 * closes the same gap with tasklist_lock in copy_process().
 */
static void thread_creation_range(struct drive *d)
{
	struct elfsym_sym sym;
	unsigned cnt = 0;
	uint64_t bias;
	const struct elfsym_file *f = proc_libc(d->a->pid, &bias);

	if (proc_sys_code(d->a->pid, &d->sys, &d->nsys)) {
		d->sys = NULL;
		d->nsys = 0;
	}

	if (!f)
		return; /* no libc: threads are not made by pthread_create */
	/* Versioned aliases (pthread_create@GLIBC_2.2.5, @@GLIBC_2.34) are
	 * one function; the first definition gives its range. */
	if (elfsym_lookup(f, "pthread_create", 0, &sym, &cnt) == 0 ||
	    (cnt > 1 && elfsym_lookup(f, "pthread_create", 1, &sym,
				      NULL) == 0)) {
		d->create_lo = bias + sym.value;
		d->create_hi = bias + sym.value + sym.size;
	}
}

static int range_cmp(const void *a, const void *b)
{
	const struct relive_ctl_range *x = a, *y = b;

	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static int load_ranges(struct drive *d)
{
	const struct relive_ctl *c = &d->a->c;
	size_t i;
	int rc;

	free(d->ranges);
	d->ranges = NULL;
	d->nranges = c->nranges;
	if (!d->nranges)
		return 0;
	d->ranges = calloc(d->nranges, sizeof(*d->ranges));
	if (!d->ranges)
		return -ENOMEM;
	rc = proc_read(d->a->pid, c->ranges, d->ranges,
		       d->nranges * sizeof(*d->ranges));
	if (rc)
		return rc;
	qsort(d->ranges, d->nranges, sizeof(*d->ranges), range_cmp);
	d->maxlen = 0;
	for (i = 0; i < d->nranges; i++)
		if (d->ranges[i].hi - d->ranges[i].lo > d->maxlen)
			d->maxlen = d->ranges[i].hi - d->ranges[i].lo;
	return 0;
}

/*
 * Opens, before the first thread is held, the unwind tables a stack check
 * is bound to need: libc's (every thread's outermost frames), the
 * executable's (main's), and those of each object with a function in
 * transition.  The first check used to do it while holding its thread:
 * 0.3 to 1.5 ms, the longest hold of the transition.  The loader's, rarely
 * on a stack, is left to the first frame in it: with `--all`, each table
 * costs every process.
 */
static void warm_unwinder(struct drive *d)
{
	uint64_t lo = 0, hi = 0;
	size_t i;

	if (d->create_lo)
		unwind_warm(d->u, d->create_lo, &lo, &hi);
	unwind_warm_exe(d->u);
	/* Sorted by address: one look per object. */
	lo = hi = 0;
	for (i = 0; i < d->nranges; i++) {
		uint64_t pc = d->ranges[i].lo;

		if ((pc < lo || pc >= hi) &&
		    !unwind_warm(d->u, pc, &lo, &hi))
			lo = hi = 0;
	}
}

/* The agent's own thread switched itself for this transition (and this
 * direction of it) when it served the request that started or reversed
 * it (agent/transition.c, self_switch). */
static bool self_switched(const struct drive *d, pid_t tid)
{
	const struct relive_ctl *c = &d->a->c;

	return c->svc_tid && tid == (pid_t)c->svc_tid &&
	       c->svc_switched_gen && c->svc_switched_gen == c->trans_gen &&
	       c->svc_switched_to ==
		       (c->trans_after_is_target ? c->trans_gen : 0);
}

/*
 * One pass over the threads (kernel: klp_try_complete_transition).
 * Returns 0 when the transition completed (or none is in progress), 1 when
 * threads are still pending, a negative errno on failure.
 */
static int pass(struct drive *d, char *err, size_t errlen)
{
	pid_t *tids;
	size_t n, i;
	unsigned round;
	int rc;

	/* The copy the request that started the transition read as it
	 * ended serves the first pass. */
	if (!d->a->ctl_fresh && agent_read_ctl(d->a))
		return -ESRCH;
	d->a->ctl_fresh = false;
	if (!d->a->c.trans_active)
		return 0;
	rc = load_ranges(d);
	if (rc)
		return rc;
	if (!d->warm) {
		warm_unwinder(d);
		d->warm = true;
		vlog("transition: unwind tables loaded");
	}
	d->npend = 0;
	/* Until a look at the task list finds no thread left to check: one
	 * born meanwhile started in the target world, but is checked too
	 * (see thread_creation_range).  A process that makes threads faster
	 * than they are checked gets another pass later. */
	for (round = 0;; round++) {
		size_t checked = 0;

		if (round == 64)
			return 1;
		if (proc_tasks(d->a->pid, &tids, &n))
			return -ESRCH;
		d->nthreads = n;
		forget_exited(d, tids, n);
		for (i = 0; i < n; i++) {
			if (is_done(d, tids[i]))
				continue;
			if (self_switched(d, tids[i])) {
				rc = mark_done(d, tids[i]);
				if (rc < 0) {
					free(tids);
					return rc;
				}
				continue;
			}
			checked++;
			background_step();
			rc = try_switch(d, tids[i]);
			if (rc < 0) {
				free(tids);
				return rc;
			}
		}
		free(tids);
		if (d->npend) {
			publish_pending(d);
			return 1;
		}
		if (!checked)
			break;
	}
	publish_pending(d);
	rc = agent_request(d->a, RELIVE_OP_COMPLETE, NULL, err, errlen);
	d->a->completed = rc == 0;
	return rc == -EALREADY ? 0 : rc;
}

static void progress(const struct drive *d, bool final)
{
	const struct relive_ctl *c = &d->a->c;
	size_t sw = d->nthreads >= d->npend ? d->nthreads - d->npend : 0;

	fprintf(stderr, "relive: transition of '%s' to %s: %zu/%zu threads "
		"switched%s", c->trans_patch,
		c->trans_target ? "patched" : "unpatched", sw, d->nthreads,
		final ? "\n" : "\r");
}

/*
 * Drives the transition in progress until it completes (0), the timeout
 * passes (EXIT_TIMEOUT-worthy: returns 1), or something fails (< 0).
 */
int transition_drive(struct agent *a, double timeout, char *err,
		     size_t errlen)
{
	struct drive d = { .a = a };
	double deadline = now() + timeout, last = now();
	bool shown = false;
	useconds_t backoff = 1000;
	int rc;

	if (!a->c.trans_active) {
		/* The request completed it (agent/sleepers.c), or none is in
		 * progress: nothing to drive, no unwinder to set up. */
		a->completed = a->c.completed_seq &&
			       a->c.completed_seq == a->c.done_seq;
		if (a->completed)
			vlog("transition completed by the agent: every other "
			     "thread switched asleep, none held");
		return 0;
	}
	rc = unwind_get(a->pid, &d.u, err, errlen);
	if (rc)
		return rc;
	thread_creation_range(&d);
	vlog("transition: unwinder ready");
	for (;;) {
		d.longest_hold = 0;
		rc = pass(&d, err, errlen);
		vlog("transition: pass done (%zu threads, %zu pending, longest "
		     "hold of one thread %.0f us)", d.nthreads, d.npend,
		     d.longest_hold * 1e6);
		if (rc <= 0)
			break;
		if (now() - last > 0.5) {
			progress(&d, false);
			last = now();
			shown = true;
		}
		if (now() >= deadline) {
			progress(&d, true);
			size_t i;

			for (i = 0; i < d.npend && i < 8; i++)
				fprintf(stderr, "relive: thread %d is blocking: "
					"%s%s%s%s%s%s\n", d.pend[i].tid,
					d.pend[i].reason,
					d.pend[i].function[0] ? " in " : "",
					d.pend[i].function,
					d.pend[i].why[0] ? " (" : "",
					d.pend[i].why,
					d.pend[i].why[0] ? ")" : "");
			snprintf(err, errlen, "the transition did not finish "
				 "within %g seconds; it stays in progress "
				 "(relive list shows why); continue it with "
				 "relive wait, reverse it, or force it",
				 timeout);
			rc = 1;
			break;
		}
		usleep(backoff);
		if (backoff < 100000)
			backoff *= 2;
		unwind_refresh(d.u);
	}
	if (shown && rc == 0)
		fprintf(stderr, "\n");
	free(d.ranges);
	free(d.sys);
	free(d.done);
	free(d.pend);
	return rc;
}

int transition_enable(struct agent *a, const char *name, double timeout,
		      char *err, size_t errlen)
{
	int rc = agent_request(a, RELIVE_OP_ENABLE, name, err, errlen);

	if (rc)
		return rc;
	return transition_drive(a, timeout, err, errlen);
}

/* After a transition: take away the entry jumps no version uses.  The
 * COMPLETE request this command made planned that already (and made the
 * one-byte removals) when the agent says so in plan_after; otherwise (the
 * transition completed some other way, or an agent that does not) ask. */
int transition_cleanup(struct agent *a, char *err, size_t errlen)
{
	int rc = 0;

	if (!a->completed || !a->c.plan_after)
		rc = agent_request(a, RELIVE_OP_UNUSED_SITES, NULL, err, errlen);
	a->completed = false;
	if (rc)
		return rc;
	return codewrite_apply(a, err, errlen);
}

int transition_disable(struct agent *a, const char *name, double timeout,
		       char *err, size_t errlen)
{
	int rc = agent_request(a, RELIVE_OP_DISABLE, name, err, errlen);

	if (rc)
		return rc;
	rc = transition_drive(a, timeout, err, errlen);
	if (rc)
		return rc;
	return transition_cleanup(a, err, errlen);
}
