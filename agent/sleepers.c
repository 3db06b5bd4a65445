/*
 * agent/sleepers.c - switching, from inside the process, the threads that
 * sleep in a system call (kernel: klp_try_switch_task() on a task that is
 * not running, checked under its runqueue lock so that it cannot start
 * running meanwhile).
 *
 * Most threads of an idle service sleep in a system call (epoll_wait,
 * read, nanosleep, a futex).  The controller switches a thread by holding
 * it in a ptrace stop and unwinding its stack (relive/transition.c): a
 * wake-up of the thread, a few system calls of the controller and an
 * unwind per thread, then one more request to the agent to complete.  The
 * request that starts a transition can instead switch the sleepers itself
 * and complete the transition at once, holding no thread:
 *
 *   1. Read the thread's count of times it was scheduled in (pcount,
 *      /proc/self/task/TID/schedstat) and its system call with its stack
 *      pointer and PC (/proc/self/task/TID/syscall: "running" when it is
 *      not asleep in one).
 *   2. Find its thread pointer (its robust-futex list head, which glibc
 *      registers at a fixed offset in every thread's descriptor: the
 *      offset is the agent's own thread's), hence its state word.
 *   3. Set the word to a tentative value: the top bit and the generation.
 *      It is not the generation, so the dispatcher still sends the thread
 *      to the world it is in (and takes the word back to 0 if it meets it:
 *      agent/arch/x86_64/stub.c).
 *   4. Look at every word from the stack pointer to the stack's base and
 *      at the PC (agent/stackscan.c): nothing of what the thread leaves,
 *      no pthread_create (see relive/transition.c, thread_creation_range),
 *      no signal frame (a handler on an alternate stack would hide the
 *      frames it interrupted).
 *   5. Read 1 again: the same count and the same system call, stack
 *      pointer and PC mean the thread did not run since 1, so the stack
 *      looked at is the stack it has, and it still sleeps.
 *   6. Turn the tentative word into the generation with one atomic
 *      operation (flipping the top bit), and read it back.
 *
 * If the thread woke after 5 and called a patched function before 6, the
 * dispatcher found the tentative word and took it back to 0 with a
 * compare-exchange: 6 then yields 0x80000000, not the generation, and the
 * thread stays in the world it is in, consistently (a top-bit word is
 * never the generation).  If it woke but called no patched function, it
 * entered nothing of what it leaves since 4, and 6 switches it, as the
 * kernel would have switched it asleep.  Anything else (running, woken
 * between 1 and 5, something on the stack, a stack not where it is
 * expected) takes the word back to 0 and leaves the thread to the
 * controller, as before.  A tentative or taken-back word is never the
 * generation, so a thread's world never changes but at 6.
 *
 * Every access to another thread's memory goes through the kernel
 * (/proc/self/mem, codemem_read/codemem_write, and the futex operation
 * FUTEX_WAKE_OP for the atomic flip), which fails on memory that is gone
 * instead of faulting: a thread may exit, and its stack be unmapped, at
 * any moment.  A write through /proc/self/mem need not be atomic, so the tentative value is
 * written in two steps, 0x80000000 first: every mix of old and new bytes
 * is then a value below the old word or one with the top bit set, never
 * the generation, which is above every word a thread had before.
 *
 * The threads in the target world already (born from the TLS image after
 * the rewrite) are looked at only for pthread_create and signal frames;
 * once a look at the task list finds no thread left to look at, every
 * thread is in the target world and the transition completes in the same
 * request.  RELIVE_NO_SLEEPER_SWITCH in the process's environment turns
 * this off (every thread is then the controller's), for tests.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "background.h"

#define TENTATIVE 0x80000000u
#define SCAN_MAX (512u * 1024)  /* bytes of one stack looked at, at most */
#define TRIES 3                 /* per thread, when it woke meanwhile */
#define ROUNDS 8                /* looks at the task list */
#define BUSY 4                  /* awake threads that end a round early */

enum verdict {
	SWITCHED,       /* in the target world now (or already) */
	LEFT,           /* left to the controller */
	WOKE,           /* ran meanwhile: worth another try */
};

static bool disabled;
static const char *gate;        /* RELIVE_TEST_SLEEPER_GATE: tests only */
static const char *round_gate;  /* RELIVE_TEST_SLEEPER_ROUND_GATE: tests */
static int robust_state;        /* 0: not known yet, 1: ok, -1: unusable */
static uintptr_t robust_off;    /* robust list head - thread pointer */
static uintptr_t main_stack_end;
static uintptr_t create_lo, create_hi;

static struct relive_ctl_range *sorted;
static size_t capsorted;
static uintptr_t scanbuf[512]; /* one page: a fresh process faults it in once */
static uintptr_t restorers[8];
static size_t nrestorers;

/* Where the C library's restorer may be, around its sigaction. */
#define RESTORER_WINDOW 1024

/*
 * The C library's restorer (glibc's __restore_rt), which it gives every
 * handler it installs, found before any handler shows it: its code,
 * once, within RESTORER_WINDOW bytes of libc's own sigaction (glibc
 * defines both in one file).  Seeded into the restorers collected at
 * each request (collect_restorers), it spares a process that never
 * installed a handler the question about all 62 actions at every request
 * (about 60 us).  Not found, or found twice: nothing is seeded, and the
 * actions are asked as before.
 */
static void find_libc_restorer(void *libc)
{
	static const uint8_t code[] = RELIVE_ARCH_RESTORER_CODE;
	uintptr_t fn, lo, hi, from, to, found = 0;
	const uint8_t *p, *end;

	fn = libc ? (uintptr_t)dlsym(libc, "sigaction") : 0;
	if (!fn || !code_segment_of(fn, &lo, &hi))
		return;
	from = fn - lo > RESTORER_WINDOW ? fn - RESTORER_WINDOW : lo;
	to = hi - fn > RESTORER_WINDOW ? fn + RESTORER_WINDOW : hi;
	end = (const uint8_t *)to - sizeof(code);
	for (p = (const uint8_t *)from; p <= end; p++) {
		if (memcmp(p, code, sizeof(code)))
			continue;
		if (found)
			return; /* which one? */
		found = (uintptr_t)p;
	}
	if (found) {
		restorers[0] = found;
		nrestorers = 1;
	}
}

void sleepers_init(void)
{
	const ElfW(Sym) *sym = NULL;
	void **end, *libc, *fn;
	Dl_info di;

	disabled = getenv("RELIVE_NO_SLEEPER_SWITCH") != NULL;
	gate = getenv("RELIVE_TEST_SLEEPER_GATE");
	round_gate = getenv("RELIVE_TEST_SLEEPER_ROUND_GATE");
	end = dlsym(RTLD_DEFAULT, "__libc_stack_end");
	if (end)
		main_stack_end = (uintptr_t)*end;
	/* libc's own pthread_create, not an interposer's (a sanitizer's
	 * may tail-call the real one). */
	libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
	fn = libc ? dlsym(libc, "pthread_create") : NULL;
	if (fn && dladdr1(fn, &di, (void **)&sym, RTLD_DL_SYMENT) && sym &&
	    sym->st_size) {
		create_lo = (uintptr_t)di.dli_saddr;
		create_hi = create_lo + sym->st_size;
	}
	find_libc_restorer(libc);
	if (libc)
		dlclose(libc);
	if (!main_stack_end || !create_lo) {
		agent_log("sleeping threads: %s not found; the controller "
			  "switches every thread",
			  main_stack_end ? "pthread_create" :
					   "__libc_stack_end");
		disabled = true;
	}
}

/* --- the kernel's view of a thread ---------------------------------------- */

/* An atomic operation on a word of this process that fails instead of
 * faulting when the word is gone. */
static int word_op(uintptr_t word, unsigned op, unsigned arg)
{
	static uint32_t unused;
	/* FUTEX_OP(), in unsigned arithmetic (the operation lands in the
	 * top bits) */
	uint32_t enc = (op & 0xfu) << 28 | (FUTEX_OP_CMP_EQ & 0xfu) << 24 |
		       (arg & 0xfffu) << 12;

	return syscall(SYS_futex, &unused, FUTEX_WAKE_OP_PRIVATE, 0, NULL,
		       (uint32_t *)word, (unsigned long)enc) < 0 ? -1 : 0;
}

struct look {
	uint64_t runs;          /* pcount */
	char call[256];         /* the syscall file */
	uintptr_t sp, pc;
	bool asleep;            /* in a system call */
};

/* Whether the syscall file's line says the thread sleeps in a system
 * call: "NR ARG1 ... ARG6 SP PC" with NR >= 0 ("-1 SP PC" out of one,
 * "running" when running), and its SP and PC. */
static bool in_syscall(const char *s, uintptr_t *sp, uintptr_t *pc)
{
	uint64_t nr, a, b;
	int i;

	if (!(s = text_u64(s, &nr, 10)))
		return false; /* "running", or "-1 ..." */
	for (i = 0; i < 6; i++)
		if (!(s = text_skip_field(s)))
			return false;
	if (!(s = text_u64(s, &a, 16)) || !(s = text_u64(s, &b, 16)))
		return false;
	*sp = (uintptr_t)a;
	*pc = (uintptr_t)b;
	return true;
}

static int look(int fsched, int fcall, struct look *l)
{
	char buf[128];
	const char *s = buf;
	uint64_t runs;
	ssize_t n;

	n = pread(fsched, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* "RUNTIME WAITTIME PCOUNT" */
	if (!(s = text_skip_field(s)) || !(s = text_skip_field(s)) ||
	    !text_u64(s, &runs, 10))
		return -1;
	l->runs = runs;
	n = pread(fcall, l->call, sizeof(l->call) - 1, 0);
	if (n <= 0)
		return -1;
	l->call[n] = '\0';
	l->asleep = in_syscall(l->call, &l->sp, &l->pc);
	return 0;
}

/* The thread pointer of thread tid, from its robust list head. */
static int thread_pointer_of(pid_t tid, uintptr_t *tp)
{
	void *head;
	size_t len;
	uintptr_t t, self;

	if (robust_state == 0) {
		robust_state = -1;
		if (syscall(SYS_get_robust_list, 0, &head, &len) == 0 && head) {
			robust_off = (uintptr_t)head -
				     relive_arch_thread_pointer();
			robust_state = 1;
		}
	}
	if (robust_state < 0 ||
	    syscall(SYS_get_robust_list, tid, &head, &len) || !head)
		return -1;
	t = (uintptr_t)head - robust_off;
	if (codemem_read(&self, t + RELIVE_ARCH_TP_SELF, sizeof(self)) ||
	    self != t)
		return -1;
	*tp = t;
	return 0;
}

/* The signals with a handler: sigcatch, field 34 of /proc/self/stat (a
 * 64-bit word on this architecture: every signal). */
static int caught_signals(uint64_t *mask)
{
	char buf[1024], *p;
	int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC), field;
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	p = strrchr(buf, ')'); /* after the command name, which may hold
				  anything */
	if (!p)
		return -1;
	for (field = 2; field < 34 && p; field++)
		p = strchr(p + 1, ' ');
	if (!p || !text_u64(p + 1, mask, 10))
		return -1;
	return 0;
}

/*
 * The return addresses of signal frames: the restorers of the handlers.
 * Those of the signals with a handler now, and every restorer seen
 * before (a handler installed with SA_RESETHAND loses its bit when its
 * signal arrives but may still be running; glibc gives every handler the
 * same restorer, found at start: find_libc_restorer).  While none is
 * known, every signal is asked.  The set only grows: a restorer no longer
 * used costs a false alarm at most.  SIZE_MAX: not known.
 */

static int add_restorer(int sig)
{
	struct {
		uintptr_t handler;
		unsigned long flags;
		uintptr_t restorer;
		uint64_t mask;
	} k;
	size_t i;

	if (syscall(SYS_rt_sigaction, sig, NULL, &k, sizeof(k.mask)) ||
	    !k.restorer)
		return 0;
	for (i = 0; i < nrestorers; i++)
		if (restorers[i] == k.restorer)
			return 0;
	if (nrestorers == sizeof(restorers) / sizeof(restorers[0]))
		return -1; /* too many to look for */
	restorers[nrestorers++] = k.restorer;
	return 0;
}

static size_t collect_restorers(void)
{
	uint64_t caught;
	bool every = nrestorers == 0;
	int sig;

	if (caught_signals(&caught))
		return SIZE_MAX;
	for (sig = 1; sig <= 64; sig++)
		if ((every && sig != SIGKILL && sig != SIGSTOP) ||
		    (caught & (1ull << (sig - 1))))
			if (add_restorer(sig))
				return SIZE_MAX;
	return nrestorers;
}

/* --- one thread ------------------------------------------------------------ */

/*
 * For tests (tests/scenarios/test_sleepers.py), two gates, each a FIFO
 * named in the process's environment where the agent waits once for one
 * byte:
 *   RELIVE_TEST_SLEEPER_GATE        the first look that found a thread
 *       switchable waits there, between the last look and the flip: the
 *       test makes the thread call a patched function meanwhile, the one
 *       window no other test can aim at;
 *   RELIVE_TEST_SLEEPER_ROUND_GATE  the first pause between two rounds
 *       (sleepers_switch) waits there instead: the test puts to sleep a
 *       thread the first round found awake.
 */
static void wait_at_gate(const char **which)
{
	char c;
	int fd;

	if (!*which)
		return;
	fd = open(*which, O_RDONLY | O_CLOEXEC);
	*which = NULL;
	if (fd >= 0) {
		if (read(fd, &c, 1) < 0)
			agent_log("test gate: %s", strerror(errno));
		close(fd);
	}
}

static enum verdict check(pid_t tid, const struct stackscan *tmpl,
			  uint32_t gen, const char **why)
{
	struct stackscan sc = *tmpl;
	struct look a, b;
	char path[64];
	size_t n;
	int fsched, fcall;
	uintptr_t tp, word, top, at;
	uint32_t w, v;
	const char *hit = NULL;
	enum verdict res = LEFT;

	n = text_append_dec(path, sizeof(path),
			    text_copy(path, sizeof(path), "/proc/self/task/"),
			    (uint64_t)tid);
	text_copy(path + n, sizeof(path) - n, "/schedstat");
	fsched = open(path, O_RDONLY | O_CLOEXEC);
	text_copy(path + n, sizeof(path) - n, "/syscall");
	fcall = open(path, O_RDONLY | O_CLOEXEC);
	*why = "gone";
	if (fsched < 0 || fcall < 0 || look(fsched, fcall, &a))
		goto out;
	*why = "running";
	if (!a.asleep) {
		res = WOKE;
		goto out;
	}
	*why = "no thread pointer";
	if (thread_pointer_of(tid, &tp))
		goto out;
	word = tp + (uintptr_t)relive_agent_ctl.tls_offset;
	if (codemem_read(&w, word, sizeof(w)))
		goto out;
	sc.any_world = w == gen;
	/* The stack's base: the main thread's is where the loader found
	 * it; a thread of pthread_create has its descriptor (and the thread
	 * pointer) just above its stack. */
	top = tid == getpid() ? main_stack_end + sizeof(uintptr_t) : tp;
	*why = "stack not where it is expected";
	if (a.sp >= top || top - a.sp > SCAN_MAX || (a.sp & 7))
		goto out;
	if (!sc.any_world) {
		uint32_t first = TENTATIVE, tent = TENTATIVE | gen;

		*why = "cannot write its state";
		if (codemem_write((void *)word, &first, sizeof(first)) ||
		    codemem_write((void *)word, &tent, sizeof(tent)))
			goto back;
	}
	hit = stackscan_pc(&sc, a.pc);
	for (at = a.sp; !hit && at < top;) {
		size_t len = top - at;

		if (len > sizeof(scanbuf))
			len = sizeof(scanbuf);
		*why = "stack unreadable";
		if (codemem_read(scanbuf, at, len))
			goto back;
		hit = stackscan_words(&sc, scanbuf, len / sizeof(uintptr_t));
		at += len;
	}
	*why = "gone";
	if (look(fsched, fcall, &b))
		goto back;
	if (b.runs != a.runs || strcmp(a.call, b.call)) {
		*why = "woke meanwhile";
		res = WOKE;
		goto back;
	}
	if (hit) {
		*why = hit;
		goto back;
	}
	if (sc.any_world) {
		res = SWITCHED;
		goto out;
	}
	wait_at_gate(&gate);
	/* 6: the tentative word becomes the generation, unless the thread
	 * took it back first. */
	*why = "woke and called a patched function";
	if (word_op(word, FUTEX_OP_XOR | FUTEX_OP_OPARG_SHIFT, 31))
		goto back;
	if (codemem_read(&v, word, sizeof(v)))
		goto out;
	if (v == gen) {
		res = SWITCHED;
	} else {
		agent_log("thread %d called a patched function before it was "
			  "switched: looked at again", tid);
		res = WOKE;
	}
	goto out;
back:
	/* Back to a word of the world it is in (any value but the
	 * generation), atomically: the thread may be running. */
	if (!sc.any_world)
		(void)word_op(word, FUTEX_OP_SET, 0);
out:
	if (fsched >= 0)
		close(fsched);
	if (fcall >= 0)
		close(fcall);
	return res;
}

/* --- the threads of the process --------------------------------------------- */

/*
 * The threads of the process now.  *fd is /proc/self/task, opened at the
 * first look and rewound for the next ones (a /proc directory is listed
 * afresh from its start), so that each round after the first costs its
 * listing only; the caller closes it.
 */
static pid_t *list_tasks(int *fd, size_t *n)
{
	char buf[4096];
	pid_t *t = NULL, *nt;
	size_t cap = 0;
	long got;

	*n = 0;
	if (*fd < 0)
		*fd = open("/proc/self/task",
			   O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	else if (lseek(*fd, 0, SEEK_SET) != 0)
		return NULL;
	if (*fd < 0)
		return NULL;
	while ((got = syscall(SYS_getdents64, *fd, buf, sizeof(buf))) > 0) {
		for (long off = 0; off < got;) {
			struct dirent64 *e = (struct dirent64 *)(buf + off);
			uint64_t id;

			off += e->d_reclen;
			if (!text_u64(e->d_name, &id, 10) || !id ||
			    id > INT32_MAX)
				continue; /* ".", "..", nothing else */
			if (*n == cap) {
				cap = cap ? 2 * cap : 64;
				nt = realloc(t, cap * sizeof(*t));
				if (!nt) {
					free(t);
					return NULL;
				}
				t = nt;
			}
			t[(*n)++] = (pid_t)id;
		}
	}
	if (got < 0) {
		free(t);
		return NULL;
	}
	return t;
}

static bool seen(const pid_t *done, size_t n, pid_t tid)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (done[i] == tid)
			return true;
	return false;
}

/* The pause before looking again at the threads a round caught awake:
 * 50 us, doubling each round up to 400 us (under 2 ms over the rounds).
 * A woken thread of a service runs for microseconds, but may first wait
 * for a CPU behind others. */
static void pause_awake(unsigned round)
{
	long us = 50L << (round < 3 ? round : 3);
	struct timespec ts = { 0, us * 1000 };

	if (round_gate) {
		wait_at_gate(&round_gate);
		return;
	}
	nanosleep(&ts, NULL);
}

bool sleepers_switch(void)
{
	struct relive_ctl *c = &relive_agent_ctl;
	const char *patch = c->trans_patch;
	struct stackscan sc = { 0 };
	pid_t me = gettid(), *tids = NULL, *done = NULL, *nd;
	size_t ndone = 0, capdone = 0, n, i, nr;
	int taskfd = -1;
	unsigned round, switched = 0, idle = 0;
	bool all = false;

	if (disabled || !c->trans_active || !c->trans_after_is_target ||
	    !transition_gen_rising() ||
	    !c->svc_tid || (pid_t)c->svc_tid != me ||
	    c->svc_switched_gen != c->trans_gen ||
	    c->svc_switched_to != c->trans_gen)
		return false;
	nr = collect_restorers();
	if (nr == SIZE_MAX)
		return false;
	if (c->nranges > capsorted) {
		struct relive_ctl_range *s = realloc(sorted, c->nranges *
						     sizeof(*s));

		if (!s)
			return false;
		sorted = s;
		capsorted = c->nranges;
	}
	if (c->nranges) {
		memcpy(sorted, (void *)(uintptr_t)c->ranges,
		       c->nranges * sizeof(*sorted));
		stackscan_sort(sorted, c->nranges, &sc.maxlen);
	}
	sc.r = sorted;
	sc.n = c->nranges;
	sc.world = 0;
	sc.create_lo = create_lo;
	sc.create_hi = create_hi;
	sc.restorers = restorers;
	sc.nrestorers = nr;
	stackscan_bounds(&sc);

	/* Until a look at the task list finds no thread left to look at
	 * (a thread born meanwhile is in the target world, but is looked at
	 * for pthread_create like the others).  A thread caught awake is
	 * looked at again in the next round, after a pause that lets it go
	 * back to sleep: one left to the controller makes it hold every
	 * thread of the process.  The agent gives up after two rounds in a
	 * row that switched none, and at once for a process whose threads
	 * run (BUSY of them awake before as many were switched). */
	for (round = 0; round < ROUNDS; round++) {
		size_t looked = 0, awake = 0, progress = 0;
		pid_t last_awake = 0;
		const char *last_why = "";

		tids = list_tasks(&taskfd, &n);
		if (!tids)
			break;
		for (i = 0; i < n; i++) {
			enum verdict v = LEFT;
			const char *why = "";
			unsigned t;

			if (tids[i] == me || seen(done, ndone, tids[i]))
				continue;
			looked++;
			for (t = 0; t < TRIES; t++) {
				v = check(tids[i], &sc, c->trans_gen, &why);
				if (v != WOKE)
					break;
				sched_yield(); /* let it go back to sleep */
			}
			if (v == WOKE) {
				awake++;
				last_awake = tids[i];
				last_why = why;
				if (awake >= BUSY && awake > progress)
					break; /* a busy process */
				continue;
			}
			if (v != SWITCHED) {
				agent_log("'%s': thread %d left to the "
					  "controller: %s", patch, tids[i],
					  why);
				goto out;
			}
			if (ndone == capdone) {
				capdone = capdone ? 2 * capdone : 64;
				nd = realloc(done, capdone * sizeof(*nd));
				if (!nd)
					goto out;
				done = nd;
			}
			done[ndone++] = tids[i];
			switched++;
			progress++;
			background_step();
		}
		free(tids);
		tids = NULL;
		if (!looked) {
			all = true;
			break;
		}
		if (!awake)
			continue; /* one more look, for threads born meanwhile */
		idle = progress ? 0 : idle + 1;
		if ((awake >= BUSY && awake > progress) || idle == 2 ||
		    round + 1 == ROUNDS) {
			agent_log("'%s': thread %d left to the controller: %s",
				  patch, last_awake, last_why);
			break;
		}
		pause_awake(round);
	}
out:
	if (taskfd >= 0)
		close(taskfd);
	free(tids);
	free(done);
	if (all)
		agent_log("'%s': %u sleeping thread%s switched by the agent, "
			  "none held", patch, switched, switched == 1 ? "" : "s");
	return all;
}
