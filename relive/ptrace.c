/*
 * relive/ptrace.c - holding one thread of the target still for an instant,
 * and borrowing it to call a function.
 *
 * relive uses PTRACE_SEIZE and PTRACE_INTERRUPT only: never SIGSTOP, never
 * PTRACE_ATTACH, so the target's parent never sees a stop or a continue.
 * Every stop ends with PTRACE_DETACH, so between two steps of a command the
 * target is not traced at all and its signals are delivered as usual.
 *
 * A thread interrupted inside a system call must not notice.  Calls the
 * kernel restarts by itself (-ERESTART* in %rax at the stop) are restarted
 * when the thread resumes.  Calls that return -EINTR because of any stop
 * (epoll_wait and the others in signal(7)) are re-entered here: the PC goes
 * back over the 2-byte `syscall` and %rax gets the call's number again.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>

#include "relive.h"

/* Waits for tid's next stop; passes on signals meant for the program. */
static int wait_stop(pid_t tid, int *status)
{
	for (;;) {
		pid_t r = waitpid(tid, status, __WALL);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (WIFEXITED(*status) || WIFSIGNALED(*status))
			return -ESRCH;
		return 0;
	}
}

/* Re-enter a system call that the stop made fail with EINTR. */
static void restart_eintr(struct user_regs_struct *r)
{
	if ((long)r->orig_rax >= 0 && (long)r->rax == -EINTR) {
		r->rax = r->orig_rax;
		r->rip -= 2;
	}
}

int pt_stop(pid_t tid, struct stopped *st, char *err, size_t errlen)
{
	int status, rc;

	memset(st, 0, sizeof(*st));
	st->tid = tid;
	if (ptrace(PTRACE_SEIZE, tid, 0, 0)) {
		rc = -errno;
		snprintf(err, errlen, "cannot trace thread %d: %s", tid,
			 strerror(errno));
		return rc;
	}
	if (ptrace(PTRACE_INTERRUPT, tid, 0, 0)) {
		rc = -errno;
		snprintf(err, errlen, "cannot interrupt thread %d: %s", tid,
			 strerror(errno));
		return rc;
	}
	for (;;) {
		rc = wait_stop(tid, &status);
		if (rc) {
			snprintf(err, errlen, "thread %d exited", tid);
			return rc;
		}
		if (status >> 16 == PTRACE_EVENT_STOP)
			break;
		/* A signal for the program arrived first: deliver it, our
		 * interrupt stays pending. */
		if (ptrace(PTRACE_CONT, tid, 0, WSTOPSIG(status))) {
			rc = -errno;
			snprintf(err, errlen, "thread %d: %s", tid,
				 strerror(errno));
			return rc;
		}
	}
	if (ptrace(PTRACE_GETREGS, tid, 0, &st->regs)) {
		rc = -errno;
		snprintf(err, errlen, "thread %d: cannot read registers: %s",
			 tid, strerror(errno));
		ptrace(PTRACE_DETACH, tid, 0, 0);
		return rc;
	}
	if ((long)st->regs.orig_rax >= 0 && (long)st->regs.rax == -EINTR) {
		restart_eintr(&st->regs);
		st->dirty = true;
	}
	return 0;
}

int pt_release(struct stopped *st)
{
	int rc = 0;

	if (st->dirty && ptrace(PTRACE_SETREGS, st->tid, 0, &st->regs))
		rc = -errno;
	if (ptrace(PTRACE_DETACH, st->tid, 0, 0) && !rc)
		rc = -errno;
	return rc;
}

/*
 * Calls func(args...) on the stopped thread and waits for it to return.
 * The call runs on the thread's own stack, below its red zone, and returns
 * to address 0: the fault that follows is the controller's signal that the
 * call is over, and is never delivered.  The thread's registers are
 * restored by pt_release().
 */
int pt_call(struct stopped *st, uint64_t func, const uint64_t *args,
	    int nargs, uint64_t *ret, char *err, size_t errlen)
{
	struct user_regs_struct r = st->regs;
	uint64_t zero = 0;
	int status, rc;
	pid_t pid = st->tid;

	r.rsp = ((st->regs.rsp - 1024) & ~0xfull) - 8;
	if (proc_write(pid, r.rsp, &zero, sizeof(zero)) &&
	    ptrace(PTRACE_POKEDATA, pid, r.rsp, 0)) {
		snprintf(err, errlen, "thread %d: cannot write its stack", pid);
		return -EFAULT;
	}
	r.rip = func;
	r.rax = 0;
	r.orig_rax = -1; /* no syscall restart for the call itself */
	if (nargs > 0) r.rdi = args[0];
	if (nargs > 1) r.rsi = args[1];
	if (nargs > 2) r.rdx = args[2];
	if (nargs > 3) r.rcx = args[3];
	if (nargs > 4) r.r8 = args[4];
	if (nargs > 5) r.r9 = args[5];
	if (ptrace(PTRACE_SETREGS, pid, 0, &r) ||
	    ptrace(PTRACE_CONT, pid, 0, 0)) {
		rc = -errno;
		snprintf(err, errlen, "thread %d: %s", pid, strerror(errno));
		return rc;
	}
	st->dirty = true;
	for (;;) {
		rc = wait_stop(pid, &status);
		if (rc) {
			snprintf(err, errlen, "the target exited during a call");
			return rc;
		}
		if (status >> 16 == 0 && WSTOPSIG(status) == SIGSEGV) {
			if (ptrace(PTRACE_GETREGS, pid, 0, &r)) {
				rc = -errno;
				snprintf(err, errlen, "thread %d: %s", pid,
					 strerror(errno));
				return rc;
			}
			if (r.rip == 0) {
				*ret = r.rax;
				return 0;
			}
		}
		/* Anything else is the program's own business: deliver it
		 * (a group-stop event is resumed with no signal). */
		int sig = (status >> 16) ? 0 : WSTOPSIG(status);
		if (ptrace(PTRACE_CONT, pid, 0, sig)) {
			rc = -errno;
			snprintf(err, errlen, "thread %d: %s", pid,
				 strerror(errno));
			return rc;
		}
	}
}

static bool known(const struct stopped *l, size_t n, pid_t tid)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (l[i].tid == tid)
			return true;
	return false;
}

/*
 * Holds every thread of pid.  A running thread may create another until it
 * is held, so the task list is read again until a pass finds no thread it
 * has not held yet.
 */
int pt_stop_all(pid_t pid, struct stopped **list, size_t *n, char *err,
		size_t errlen)
{
	struct stopped *l = NULL;
	size_t cnt = 0, cap = 0;
	bool again = true;

	while (again) {
		pid_t *tids;
		size_t nt, i;

		again = false;
		if (proc_tasks(pid, &tids, &nt)) {
			pt_release_all(l, cnt);
			snprintf(err, errlen, "process %d is gone", pid);
			return -ESRCH;
		}
		for (i = 0; i < nt; i++) {
			char e[256];

			if (known(l, cnt, tids[i]))
				continue;
			if (cnt == cap) {
				cap = cap ? 2 * cap : 64;
				struct stopped *nl = realloc(l, cap * sizeof(*nl));
				if (!nl) {
					free(tids);
					pt_release_all(l, cnt);
					snprintf(err, errlen, "out of memory");
					return -ENOMEM;
				}
				l = nl;
			}
			if (pt_stop(tids[i], &l[cnt], e, sizeof(e))) {
				if (errno == ESRCH || !strstr(e, "cannot"))
					continue; /* exited meanwhile */
				free(tids);
				pt_release_all(l, cnt);
				snprintf(err, errlen, "%s", e);
				return -EPERM;
			}
			cnt++;
			again = true;
		}
		free(tids);
	}
	*list = l;
	*n = cnt;
	return 0;
}

void pt_release_all(struct stopped *l, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		pt_release(&l[i]);
	free(l);
}
