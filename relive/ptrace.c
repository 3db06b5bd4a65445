/*
 * relive/ptrace.c - holding one thread of the target still for an instant,
 * and borrowing it to call a function.
 *
 * relive uses PTRACE_SEIZE and PTRACE_INTERRUPT only: never SIGSTOP, never
 * PTRACE_ATTACH, so the target's parent never sees a stop or a continue.
 * Every stop ends with PTRACE_DETACH, so between two steps of a command the
 * target is not traced at all and its signals are delivered as usual.  One
 * thread is traced without being stopped: relive's own boot thread, while
 * relive waits for it to end (pt_wait_exit); and a borrowed thread may run
 * traced until it makes that thread (pt_call_until_clone).
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
#include <elf.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "relive.h"

/* A ptrace request on tid just failed: says so in err, returns -errno. */
static int thread_failed(pid_t tid, char *err, size_t errlen)
{
	int rc = -errno;

	snprintf(err, errlen, "thread %d: %s", tid, strerror(-rc));
	return rc;
}

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

/* Traces the thread without stopping it. */
static int pt_seize(pid_t tid, struct stopped *st, char *err, size_t errlen)
{
	int rc;

	memset(st, 0, sizeof(*st));
	st->tid = tid;
	if (ptrace(PTRACE_SEIZE, tid, 0, PTRACE_O_TRACESYSGOOD)) {
		rc = -errno;
		snprintf(err, errlen, "cannot trace thread %d: %s", tid,
			 strerror(errno));
		return rc;
	}
	return 0;
}

/* First half of a stop of a seized thread: ask it to stop, without
 * waiting. */
static int pt_interrupt_seized(struct stopped *st, char *err, size_t errlen)
{
	pid_t tid = st->tid;
	int rc;

	if (ptrace(PTRACE_INTERRUPT, tid, 0, 0)) {
		rc = -errno;
		snprintf(err, errlen, "cannot interrupt thread %d: %s", tid,
			 strerror(errno));
		ptrace(PTRACE_DETACH, tid, 0, 0);
		return rc;
	}
	return 0;
}

/* First half of a stop: trace the thread and ask it to stop. */
static int pt_interrupt(pid_t tid, struct stopped *st, char *err,
			size_t errlen)
{
	int rc = pt_seize(tid, st, err, errlen);

	return rc ? rc : pt_interrupt_seized(st, err, errlen);
}

/* Second half: wait until it is stopped and read its registers. */
static int pt_collect(struct stopped *st, char *err, size_t errlen)
{
	pid_t tid = st->tid;
	int status, rc;

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
			return thread_failed(tid, err, errlen);
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

int pt_stop(pid_t tid, struct stopped *st, char *err, size_t errlen)
{
	int rc = pt_interrupt(tid, st, err, errlen);

	return rc ? rc : pt_collect(st, err, errlen);
}

int pt_flush_regs(struct stopped *st)
{
	if (!st->dirty)
		return 0;
	if (ptrace(PTRACE_SETREGS, st->tid, 0, &st->regs))
		return -errno;
	st->dirty = false;
	return 0;
}

int pt_release(struct stopped *st)
{
	int rc = 0;

	if (st->released)
		return 0;
	st->released = true;
	if (st->dirty && ptrace(PTRACE_SETREGS, st->tid, 0, &st->regs))
		rc = -errno;
	if (ptrace(PTRACE_DETACH, st->tid, 0, 0) && !rc)
		rc = -errno;
	return rc;
}

/*
 * The kernel's signal frame (arch/x86/include/asm/sigframe.h), which
 * rt_sigreturn reads back: a borrowed thread returns from the function it
 * was made to call into `mov $15,%rax; syscall` with this frame on its
 * stack, and rt_sigreturn puts back every register, the FPU/vector state
 * and the signal mask exactly as they were at the stop.  The thread needs
 * no help from the controller to get home, so a controller killed in the
 * middle of a call leaves the target as it was.
 */
struct k_sigcontext {
	uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
	uint64_t rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, eflags;
	uint16_t cs, gs, fs, ss;
	uint64_t err, trapno, oldmask, cr2, fpstate;
	uint64_t reserved1[8];
};

struct k_ucontext {
	uint64_t uc_flags;
	uint64_t uc_link;
	struct {
		uint64_t ss_sp;
		int32_t ss_flags;
		int32_t pad;
		uint64_t ss_size;
	} uc_stack;
	struct k_sigcontext uc_mcontext;
	uint64_t uc_sigmask;
};

struct k_rt_sigframe {
	uint64_t pretcode;
	struct k_ucontext uc;
	uint8_t info[128];
};

#define UC_FP_XSTATE 0x1
#define UC_SIGCONTEXT_SS 0x2
#define UC_STRICT_RESTORE_SS 0x4
#ifndef FP_XSTATE_MAGIC1
#define FP_XSTATE_MAGIC1 0x46505853u
#define FP_XSTATE_MAGIC2 0x46505845u
#endif
#define SW_BYTES_OFF 464
#define ERESTARTSYS 512
#define ERESTARTNOINTR 513
#define ERESTARTNOHAND 514
#define ERESTART_RESTARTBLOCK 516

/* The registers the thread must resume with so that a system call it was
 * stopped in is re-entered, as the kernel would have done. */
static struct user_regs_struct resume_regs(const struct user_regs_struct *r)
{
	struct user_regs_struct o = *r;
	long rax = (long)r->rax;

	if ((long)r->orig_rax < 0)
		return o;
	if (rax == -ERESTARTSYS || rax == -ERESTARTNOINTR ||
	    rax == -ERESTARTNOHAND || rax == -ERESTART_RESTARTBLOCK ||
	    rax == -EINTR) {
		/* RESTARTBLOCK calls (nanosleep, poll) are re-issued with their
		 * own arguments: rt_sigreturn resets the restart block. */
		o.rax = r->orig_rax;
		o.rip -= 2;
	}
	return o;
}

bool pt_in_restartblock(const struct stopped *st)
{
	return (long)st->regs.orig_rax >= 0 &&
	       (long)st->regs.rax == -ERESTART_RESTARTBLOCK;
}

bool pt_is_newborn(pid_t pid, const struct stopped *st)
{
	uint8_t insn[2];

	if (st->regs.rax != 0 || (st->regs.orig_rax != __NR_clone &&
				  st->regs.orig_rax != __NR_clone3))
		return false;
	return proc_read(pid, st->regs.rip - 2, insn, sizeof(insn)) == 0 &&
	       insn[0] == 0x0f && insn[1] == 0x05; /* syscall */
}

/*
 * The thread is stopped on its way into the rt_sigreturn of the frame at
 * `frame`, func having returned: makes it call next first, untraced,
 * returning through the same frame (its return address, the restorer, is
 * still in the frame's first word).  The system call is skipped (number
 * -1), so the frame is left as it is for next's own return.  Then lets
 * the thread go.
 */
static int chain_and_detach(pid_t tid, uint64_t next, uint64_t frame,
			    char *err, size_t errlen)
{
	struct user_regs_struct r;
	int rc;

	if (ptrace(PTRACE_GETREGS, tid, 0, &r) == 0) {
		r.orig_rax = (uint64_t)-1;
		r.rax = 0;
		r.rip = next;
		r.rsp = frame;
		if (ptrace(PTRACE_SETREGS, tid, 0, &r) == 0) {
			ptrace(PTRACE_DETACH, tid, 0, 0);
			return 0;
		}
	}
	rc = -errno;
	snprintf(err, errlen, "thread %d: cannot make its next call: %s",
		 tid, strerror(errno));
	ptrace(PTRACE_DETACH, tid, 0, 0); /* it goes home as it is */
	return rc;
}

/*
 * Writes on the stopped thread's stack the signal frame that brings it
 * home (below its red zone) and fills *c with the registers that make it
 * call func(args...) returning into the restorer: the thread then needs
 * nothing more from relive.  *mask: its signal mask, as in the frame.
 */
static int call_frame(struct stopped *st, uint64_t func, const uint64_t *args,
		      int nargs, uint64_t restorer, struct user_regs_struct *c,
		      uint64_t *frame_out, uint64_t *mask_out, char *err,
		      size_t errlen)
{
	struct user_regs_struct r = resume_regs(&st->regs);
	static uint8_t xstate[16384];
	struct iovec iov = { xstate, sizeof(xstate) };
	struct k_rt_sigframe fr;
	uint64_t mask = 0, fp, frame, top;
	uint32_t magic2 = FP_XSTATE_MAGIC2, xsize;
	pid_t tid = st->tid;
	int rc;

	proc_maps_forget(); /* the call may map or unmap objects */
	if (ptrace(PTRACE_GETREGSET, tid, NT_X86_XSTATE, &iov) ||
	    ptrace(PTRACE_GETSIGMASK, tid, sizeof(mask), &mask)) {
		rc = -errno;
		snprintf(err, errlen, "thread %d: cannot read its state: %s",
			 tid, strerror(errno));
		return rc;
	}
	xsize = iov.iov_len;
	if (xsize < 576) {
		snprintf(err, errlen, "thread %d: unexpected FPU state format",
			 tid);
		return -EPROTO;
	}
	{
		/* ptrace leaves XCR0 where a signal frame has its software
		 * bytes (struct _fpx_sw_bytes): fill them in so rt_sigreturn
		 * restores every extended state, not only x87/SSE. */
		uint64_t xcr0;
		uint32_t sw[12] = { 0 };

		memcpy(&xcr0, xstate + SW_BYTES_OFF, sizeof(xcr0));
		sw[0] = FP_XSTATE_MAGIC1;
		sw[1] = xsize + sizeof(magic2);
		memcpy(&sw[2], &xcr0, sizeof(xcr0));
		sw[4] = xsize;
		memcpy(xstate + SW_BYTES_OFF, sw, sizeof(sw));
	}
	top = st->regs.rsp - 128; /* the red zone stays untouched */
	fp = (top - xsize - sizeof(magic2)) & ~63ull;
	frame = ((fp - sizeof(fr)) & ~15ull) - 8;

	memset(&fr, 0, sizeof(fr));
	fr.pretcode = restorer;
	fr.uc.uc_flags = UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS;
	fr.uc.uc_stack.ss_flags = 7; /* invalid: sigaltstack stays as it is */
	fr.uc.uc_mcontext = (struct k_sigcontext){
		.r8 = r.r8, .r9 = r.r9, .r10 = r.r10, .r11 = r.r11,
		.r12 = r.r12, .r13 = r.r13, .r14 = r.r14, .r15 = r.r15,
		.rdi = r.rdi, .rsi = r.rsi, .rbp = r.rbp, .rbx = r.rbx,
		.rdx = r.rdx, .rax = r.rax, .rcx = r.rcx, .rsp = r.rsp,
		.rip = r.rip, .eflags = r.eflags, .cs = r.cs, .ss = r.ss,
		.fpstate = fp,
	};
	fr.uc.uc_sigmask = mask;
	if (proc_write(tid, fp, xstate, xsize) ||
	    proc_write(tid, fp + xsize, &magic2, sizeof(magic2)) ||
	    proc_write(tid, frame, &fr, sizeof(fr))) {
		snprintf(err, errlen, "thread %d: cannot write its stack", tid);
		return -EFAULT;
	}
	*c = st->regs;
	c->rsp = frame;
	c->rip = func;
	c->rax = 0;
	c->orig_rax = -1; /* no syscall restart for the call itself */
	if (nargs > 0) c->rdi = args[0];
	if (nargs > 1) c->rsi = args[1];
	if (nargs > 2) c->rdx = args[2];
	if (nargs > 3) c->rcx = args[3];
	if (nargs > 4) c->r8 = args[4];
	if (nargs > 5) c->r9 = args[5];
	*frame_out = frame;
	*mask_out = mask;
	return 0;
}

/*
 * Calls func(args...) on the stopped thread.  restorer is the address of a
 * `mov $15,%rax; syscall` sequence (rt_sigreturn) in the target.  Returns
 * once func has returned and the thread is on its way back, untraced; with
 * detach, as soon as the thread is on its way into func, untraced.  Either
 * way the thread is released (pt_release must not be called again).
 * Without detach, then (or NULL) may chain another call, untraced (see
 * struct pt_then); an error then means the chained call was not made.
 */
int pt_call(struct stopped *st, uint64_t func, const uint64_t *args,
	    int nargs, uint64_t restorer, bool detach,
	    const struct pt_then *then, char *err, size_t errlen)
{
	struct user_regs_struct c;
	uint64_t frame = 0, mask = 0;
	pid_t tid = st->tid;
	int status, rc;

	rc = call_frame(st, func, args, nargs, restorer, &c, &frame, &mask,
			err, errlen);
	if (rc)
		return rc;
	if (detach) {
		/* The thread makes the call and gets home untraced; the
		 * caller learns of the end by other means. */
		st->released = true;
		if (ptrace(PTRACE_SETREGS, tid, 0, &c)) {
			rc = thread_failed(tid, err, errlen);
			ptrace(PTRACE_DETACH, tid, 0, 0); /* as it was */
			return rc;
		}
		if (ptrace(PTRACE_DETACH, tid, 0, 0)) {
			return thread_failed(tid, err, errlen);
		}
		return 0;
	}
	if (ptrace(PTRACE_SETREGS, tid, 0, &c) ||
	    ptrace(PTRACE_SYSCALL, tid, 0, 0)) {
		return thread_failed(tid, err, errlen);
	}
	/* From here on the thread gets home by itself. */
	st->released = true;
	for (;;) {
		struct __ptrace_syscall_info si;
		int sig = 0;

		rc = wait_stop(tid, &status);
		if (rc) {
			snprintf(err, errlen, "the target exited during a call");
			return rc;
		}
		if (WSTOPSIG(status) == (SIGTRAP | 0x80)) {
			if (ptrace(PTRACE_GET_SYSCALL_INFO, tid, sizeof(si),
				   &si) > 0 &&
			    si.op == PTRACE_SYSCALL_INFO_ENTRY &&
			    si.entry.nr == 15 &&
			    si.instruction_pointer == restorer + 9 &&
			    si.stack_pointer == frame + 8) {
				/* Our frame's rt_sigreturn (the call's `ret`
				 * popped pretcode), not that of a signal
				 * handler run meanwhile, which returns
				 * through the same restorer. */
				uint64_t next = then ? then->next(then->arg) : 0;

				if (next)
					return chain_and_detach(tid, next,
								frame, err,
								errlen);
				ptrace(PTRACE_DETACH, tid, 0, 0);
				return 0;
			}
		} else if (status >> 16 == 0) {
			sig = WSTOPSIG(status); /* the program's own signal */
		}
		if (ptrace(PTRACE_SYSCALL, tid, 0, sig)) {
			return thread_failed(tid, err, errlen);
		}
	}
}

int pt_wait_exit(pid_t pid, pid_t tid, const char *comm)
{
	struct stopped st;
	char err[128];
	int status;

	if (ptrace(PTRACE_SEIZE, tid, 0, 0))
		return errno == ESRCH ? 0 : -errno; /* ESRCH: gone already */
	/* Traced, the number can no longer be reused: it names the thread
	 * meant, or one of the program's that got the number first. */
	if (!proc_thread_named(pid, tid, comm)) {
		/* Or it ended just now, and waits to be reaped by us. */
		if (waitpid(tid, &status, __WALL | WNOHANG) == tid &&
		    (WIFEXITED(status) || WIFSIGNALED(status)))
			return 0;
		memset(&st, 0, sizeof(st));
		st.tid = tid;
		if (!pt_interrupt_seized(&st, err, sizeof(err)) &&
		    !pt_collect(&st, err, sizeof(err)))
			pt_release(&st);
		return 1;
	}
	return pt_wait_exit_traced(tid);
}

void pt_detach(pid_t tid)
{
	ptrace(PTRACE_DETACH, tid, 0, 0);
}

int pt_wait_exit_traced(pid_t tid)
{
	int status;

	ptrace(PTRACE_CONT, tid, 0, 0); /* when held by pt_call_until_clone */
	for (;;) {
		if (waitpid(tid, &status, __WALL) < 0) {
			if (errno == EINTR)
				continue;
			return 0; /* ECHILD: reaped with its process */
		}
		if (WIFEXITED(status) || WIFSIGNALED(status))
			return 0;
		if (!WIFSTOPPED(status))
			continue;
		if (status >> 16 == PTRACE_EVENT_STOP) {
			int sig = WSTOPSIG(status);

			/* A group stop stays one until the program is
			 * continued; any other event stop ends at once. */
			if (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN ||
			    sig == SIGTTOU)
				ptrace(PTRACE_LISTEN, tid, 0, 0);
			else
				ptrace(PTRACE_CONT, tid, 0, 0);
		} else {
			/* A signal on its way to the thread: deliver it. */
			ptrace(PTRACE_CONT, tid, 0, WSTOPSIG(status));
		}
	}
}

/* A signal the thread does not block, blocked for the length of a call
 * so that /proc shows when the call has ended (rt_sigreturn puts the
 * mask back): one whose delivery can wait that long, never one the
 * kernel raises for a fault. */
static uint64_t call_marker(uint64_t mask)
{
	static const int candidates[] = { SIGURG, SIGWINCH, 64, 63 };
	size_t i;

	for (i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++) {
		uint64_t bit = 1ull << (candidates[i] - 1);

		if (!(mask & bit))
			return bit;
	}
	return 0;
}

int pt_call_until_clone(pid_t pid, struct stopped *st, uint64_t func,
			const uint64_t *args, int nargs, uint64_t restorer,
			pid_t *child, char *err, size_t errlen)
{
	struct user_regs_struct c;
	uint64_t frame = 0, mask = 0, marker, now;
	unsigned long msg;
	double t0 = 0, next_look = 100e3; /* us */
	pid_t tid = st->tid;
	int status, rc;
	unsigned n;

	*child = 0;
	rc = call_frame(st, func, args, nargs, restorer, &c, &frame, &mask,
			err, errlen);
	if (rc)
		return rc;
	marker = call_marker(mask);
	if (!marker)
		return -ENOSYS; /* nothing changed yet: the caller follows */
	now = mask | marker;
	if (ptrace(PTRACE_SETOPTIONS, tid, 0,
		   PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACECLONE) ||
	    ptrace(PTRACE_SETSIGMASK, tid, sizeof(now), &now) ||
	    ptrace(PTRACE_SETREGS, tid, 0, &c) ||
	    ptrace(PTRACE_CONT, tid, 0, 0)) {
		rc = thread_failed(tid, err, errlen);
		/* as it was, unless the registers were set already: it
		 * then makes the call and goes home alone */
		ptrace(PTRACE_SETSIGMASK, tid, sizeof(mask), &mask);
		return rc;
	}
	/* From here on the thread gets home by itself. */
	st->released = true;
	for (n = 0;; n++) {
		pid_t r = waitpid(tid, &status, __WALL | WNOHANG);
		int sig = 0;

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 || (r > 0 && (WIFEXITED(status) ||
					WIFSIGNALED(status)))) {
			snprintf(err, errlen, "the target exited during a call");
			return -ESRCH;
		}
		if (r == 0) {
			uint64_t blk;

			/* Home already, with no thread made?  Only there
			 * is the marker unblocked (dlopen and pthread_create
			 * only ever block more). */
			if (n % 4 == 3 && proc_thread_sigmask(pid, tid, &blk) &&
			    !(blk & marker)) {
				struct stopped h = { .tid = tid };

				if (!pt_interrupt_seized(&h, err, errlen) &&
				    !pt_collect(&h, err, errlen))
					pt_release(&h);
				return 1;
			}
			/* A program that blocks the marker itself once home
			 * (ppoll's mask, say): every 100 ms, stop the thread
			 * and look at its stack too; inside the call it
			 * runs below the frame. */
			if (n % 4 == 3 && mono_us() - t0 >= next_look) {
				next_look += 100e3;
				ptrace(PTRACE_INTERRUPT, tid, 0, 0);
			}
			poll_pause(n, &t0);
			continue;
		}
		if (status >> 8 == (SIGTRAP | (PTRACE_EVENT_CLONE << 8))) {
			if (ptrace(PTRACE_GETEVENTMSG, tid, 0, &msg))
				msg = 0;
			/* The caller's thread goes on and home alone. */
			ptrace(PTRACE_DETACH, tid, 0, 0);
			*child = (pid_t)msg;
			if (!msg)
				return 1;
			/* The new thread starts traced (the option is
			 * inherited), with a stop before its first
			 * instruction: held there, without options, for
			 * the caller (pt_wait_exit_traced or pt_detach). */
			while (waitpid(*child, &status, __WALL) < 0 &&
			       errno == EINTR)
				;
			ptrace(PTRACE_SETOPTIONS, *child, 0, 0);
			return 0;
		}
		if (status >> 16 == PTRACE_EVENT_STOP) {
			/* Our interrupt, or a group stop: home? */
			struct stopped h = { .tid = tid, .released = false };
			uint64_t blk = 0;

			if (!ptrace(PTRACE_GETREGS, tid, 0, &h.regs) &&
			    !ptrace(PTRACE_GETSIGMASK, tid, sizeof(blk), &blk) &&
			    (!(blk & marker) || h.regs.rsp > frame)) {
				if ((long)h.regs.orig_rax >= 0 &&
				    (long)h.regs.rax == -EINTR) {
					restart_eintr(&h.regs);
					h.dirty = true;
				}
				pt_release(&h);
				return 1;
			}
		} else if (status >> 16 == 0) {
			sig = WSTOPSIG(status); /* the program's own signal */
		}
		if (ptrace(PTRACE_CONT, tid, 0, sig)) {
			return thread_failed(tid, err, errlen);
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
		size_t nt, i, first = cnt;

		again = false;
		if (proc_tasks(pid, &tids, &nt)) {
			pt_release_all(l, cnt);
			snprintf(err, errlen, "process %d is gone", pid);
			return -ESRCH;
		}
		if (cnt + nt > cap) {
			struct stopped *nl;

			cap = 2 * (cnt + nt);
			nl = realloc(l, cap * sizeof(*nl));
			if (!nl) {
				free(tids);
				pt_release_all(l, cnt);
				snprintf(err, errlen, "out of memory");
				return -ENOMEM;
			}
			l = nl;
		}
		/* Trace every new thread first (that holds no one), then ask
		 * them all to stop, then wait for them all: the stops overlap,
		 * so holding N threads costs about one scheduling delay, not N
		 * of them, and the first one held does not wait for the others
		 * to be traced. */
		for (i = 0; i < nt; i++) {
			char e[256];
			int rc;

			if (known(l, cnt, tids[i]))
				continue;
			rc = pt_seize(tids[i], &l[cnt], e, sizeof(e));
			if (rc) {
				/* A thread that exits meanwhile cannot be
				 * traced any more: it needs no holding. */
				char st = proc_thread_state(pid, tids[i]);

				if (rc == -ESRCH || !st || st == 'Z' ||
				    st == 'X')
					continue;
				free(tids);
				/* those traced but not stopped yet */
				for (size_t j = first; j < cnt; j++)
					if (!pt_interrupt_seized(&l[j], e,
								 sizeof(e)) &&
					    !pt_collect(&l[j], e, sizeof(e)))
						pt_release(&l[j]);
				pt_release_all(l, first);
				snprintf(err, errlen, "%s", e);
				return rc;
			}
			cnt++;
			again = true;
		}
		free(tids);
		if (!first && cnt)
			vlog("holding every thread");
		for (i = first; i < cnt;) {
			char e[256], st;
			int rc = pt_interrupt_seized(&l[i], e, sizeof(e));

			if (!rc) {
				i++;
				continue;
			}
			st = proc_thread_state(pid, l[i].tid);
			if (rc == -ESRCH || !st || st == 'Z' || st == 'X') {
				l[i] = l[--cnt]; /* exited meanwhile */
				continue;
			}
			/* Cannot hold it: let every other one go. */
			for (size_t j = first; j < cnt; j++) {
				char e2[256];

				if (j == i)
					continue;
				if (j > i && pt_interrupt_seized(&l[j], e2,
								 sizeof(e2)))
					continue;
				if (!pt_collect(&l[j], e2, sizeof(e2)))
					pt_release(&l[j]);
			}
			pt_release_all(l, first);
			snprintf(err, errlen, "%s", e);
			return rc;
		}
		for (i = first; i < cnt;) {
			char e[256];

			if (pt_collect(&l[i], e, sizeof(e))) {
				/* exited before it stopped: forget it */
				l[i] = l[--cnt];
				continue;
			}
			i++;
		}
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
