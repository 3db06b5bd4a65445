/*
 * tests/unit/test_unwind.c - cmocka tests of relive/unwind.c.
 *
 * Why this exists: relive lets a thread switch to patched code only when a
 * reliable unwind of its stack shows none of the replaced functions, the
 * kernel livepatch way.  The unwinder must therefore never call a stack
 * complete when it is not (a frame without CFI, a frame-pointer guess, a
 * walk that stops short), and must call ordinary stacks complete or the
 * transition never ends.  Each case here forks the test program itself (so
 * the child's functions are at the parent's addresses), puts the child in
 * a known state under the call chain level1 -> level2 -> level3, holds it
 * with PTRACE_SEIZE + PTRACE_INTERRUPT as relive does, and checks what
 * unwind_thread says: blocked in a system call, spinning, a second thread,
 * inside the vDSO, in a signal handler on an alternate stack, in code
 * without CFI (first frame, middle frame, a library built without it, an
 * address elfutils wrongly attributes to the object below it), in a library
 * with only .debug_frame, in a library mapped after unwind_open
 * (unwind_refresh), deleted after it was mapped, or mapped from another
 * mount namespace, stacks libdwfl ends early without an error (a return
 * address of 0, an unreadable stack), many random stops of a busy thread,
 * an unrelated stripped program, early stop by the callback, fd leaks, and
 * the cost (printed).
 *
 * Needs ptrace permission on its own children and cc (for the library
 * cases, which are skipped without it).  An optional argument is a cmocka
 * test filter ("*exec*").
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>
#include <sys/auxv.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>

#include <elfutils/libdwfl.h>

#include <cmocka.h>

#include "unwind.h"

#define MAXF 128

enum mode {
	M_READ,   /* level3 blocks in read() */
	M_SPIN,   /* level3 spins */
	M_THREAD, /* a second thread sleeps in nanosleep() under level3 */
	M_JIT,    /* level3 calls a `jmp .` in an anonymous RWX page */
	M_JITMID, /* level3 calls anonymous code that calls level4, spinning */
	M_VDSO,   /* level3 calls clock_gettime() in a loop */
	M_BUSY,   /* level3 calls malloc, snprintf, ... in a loop */
	M_LIB,    /* level3 dlopens g_lib when told and spins in lib_spin() */
	M_LIBNS,  /* M_LIB, from a tmpfs in a mount namespace of its own */
	M_SIGNAL, /* level3 is interrupted by a signal whose handler spins on
		     an alternate signal stack */
};

/* What the child tells the parent when it is in place. */
struct ready {
	pid_t tid;
	uint64_t addr;
};

/* ---- the child ---------------------------------------------------------- */

static int g_ctl = -1; /* child reads; the parent writes only to M_LIB */
static int g_st = -1;  /* child writes struct ready */
static char g_lib[512];
static uint64_t g_hint; /* where M_JIT maps its page, if free */
static char g_nsdir[512];
#define ALTSTACK 65536
static char *g_altstack;
volatile unsigned long sink;

static void notify(uint64_t addr)
{
	struct ready r = { gettid(), addr };

	if (write(g_st, &r, sizeof(r)) != sizeof(r))
		_exit(2);
}

__attribute__((noinline, noclone)) void level4(void)
{
	notify(0);
	for (;;)
		sink++;
}

/* Zeros, at the same address in the child: a return address of 0. */
volatile unsigned long zeros[4];

__attribute__((noinline, noclone)) static void on_signal(int sig)
{
	(void)sig;
	notify(0);
	for (;;)
		sink++;
}

__attribute__((noinline, noclone)) static void busy(void)
{
	char buf[128];
	struct timespec ts;
	char *p = malloc(sink % 1000 + sizeof(buf));

	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(buf, sizeof(buf), "%lu %f %ld", sink, (double)sink / 3,
		 (long)ts.tv_nsec);
	if (p) {
		memcpy(p, buf, strlen(buf) + 1);
		sink += strlen(p);
	}
	free(p);
	sink += (unsigned long)getppid();
}

static bool copy_file(const char *from, const char *to)
{
	char buf[4096];
	ssize_t n;
	int in = open(from, O_RDONLY | O_CLOEXEC), out;
	bool ok = true;

	if (in < 0)
		return false;
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	if (out < 0) {
		close(in);
		return false;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		ok = ok && write(out, buf, (size_t)n) == n;
	ok = ok && n == 0;
	close(in);
	return close(out) == 0 && ok;
}

static unsigned char *rwx_page(void)
{
	unsigned char *p = MAP_FAILED;

	if (g_hint)
		p = mmap((void *)(uintptr_t)g_hint, 4096,
			 PROT_READ | PROT_WRITE | PROT_EXEC,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1,
			 0);
	if (p == MAP_FAILED)
		p = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		_exit(3);
	return p;
}

__attribute__((noinline, noclone)) void level3(int mode)
{
	char c;

	switch (mode) {
	case M_READ:
		notify(0);
		for (;;)
			if (read(g_ctl, &c, 1) <= 0 && errno != EINTR)
				break;
		break;
	case M_SPIN:
		notify(0);
		for (;;)
			sink++;
	case M_THREAD:
		notify(0);
		for (;;) {
			struct timespec ts = { 100, 0 };

			nanosleep(&ts, NULL);
		}
	case M_JIT: {
		unsigned char *p = rwx_page();

		p[0] = 0xeb; /* jmp . */
		p[1] = 0xfe;
		notify((uintptr_t)p);
		((void (*)(void))p)();
		break;
	}
	case M_JITMID: {
		static const unsigned char code[] = {
			0x55,             /* push %rbp */
			0x48, 0x89, 0xe5, /* mov %rsp,%rbp */
			0xff, 0xd7,       /* call *%rdi */
			0xeb, 0xfe,       /* jmp . */
		};
		unsigned char *p = rwx_page();

		memcpy(p, code, sizeof(code));
		((void (*)(void (*)(void)))p)(level4);
		break;
	}
	case M_VDSO:
		notify(0);
		for (;;) {
			struct timespec ts;

			clock_gettime(CLOCK_MONOTONIC, &ts);
			sink += (unsigned long)ts.tv_nsec;
		}
	case M_BUSY:
		notify(0);
		for (;;)
			busy();
	case M_SIGNAL: {
		/* Above level3's frame: the stack pointer goes down from
		   the signal frame to the interrupted one. */
		stack_t ss = { .ss_sp = g_altstack, .ss_size = ALTSTACK };
		struct sigaction sa = { .sa_handler = on_signal,
					.sa_flags = SA_ONSTACK };

		if (sigaltstack(&ss, NULL) != 0 ||
		    sigaction(SIGUSR1, &sa, NULL) != 0)
			_exit(7);
		notify(0);
		for (;;)
			sink++;
	}
	case M_LIB:
	case M_LIBNS: {
		void *h;
		void (*f)(volatile unsigned long *);
		char path[600];

		notify(0);
		if (read(g_ctl, &c, 1) != 1)
			_exit(4);
		snprintf(path, sizeof(path), "%s", g_lib);
		if (mode == M_LIBNS) {
			snprintf(path, sizeof(path), "%s/lib.so", g_nsdir);
			if (unshare(CLONE_NEWNS) != 0 ||
			    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE,
				  NULL) != 0 ||
			    mount("tmpfs", g_nsdir, "tmpfs", 0, NULL) != 0 ||
			    !copy_file(g_lib, path))
				notify(0); /* addr 0: no namespace here */
		}
		h = dlopen(path, RTLD_NOW);
		f = h ? (void (*)(volatile unsigned long *))dlsym(h, "lib_spin")
		      : NULL;
		if (!f)
			_exit(5);
		notify((uintptr_t)f);
		f(&sink);
		break;
	}
	}
	sink++;
}

__attribute__((noinline, noclone)) void level2(int mode)
{
	level3(mode);
	sink++;
}

__attribute__((noinline, noclone)) void level1(int mode)
{
	level2(mode);
	sink++;
}

static void *thread_fn(void *arg)
{
	(void)arg;
	level1(M_THREAD);
	return NULL;
}

__attribute__((noreturn)) static void child_main(int mode)
{
	char altstack[ALTSTACK];

	g_altstack = altstack;
	if (mode == M_THREAD) {
		pthread_t t;

		if (pthread_create(&t, NULL, thread_fn, NULL) != 0)
			_exit(6);
		for (;;)
			pause();
	}
	level1(mode);
	_exit(0);
}

/* ---- the parent --------------------------------------------------------- */

struct child {
	pid_t pid;
	pid_t tid;    /* the thread that is unwound */
	uint64_t addr;
	int ctl, st;
	bool seized, stopped;
};

static void wait_ready(struct child *c)
{
	struct ready r;

	assert_int_equal(read(c->st, &r, sizeof(r)), sizeof(r));
	c->tid = r.tid;
	c->addr = r.addr;
}

static void start(struct child *c, int mode)
{
	int ctl[2], st[2];

	memset(c, 0, sizeof(*c));
	assert_int_equal(pipe2(ctl, O_CLOEXEC), 0);
	assert_int_equal(pipe2(st, O_CLOEXEC), 0);
	fflush(NULL);
	c->pid = fork();
	assert_true(c->pid >= 0);
	if (c->pid == 0) {
		close(ctl[1]);
		close(st[0]);
		g_ctl = ctl[0];
		g_st = st[1];
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		/* A crash kills the child, not back into cmocka's runner. */
		for (int s = 1; s < NSIG; s++)
			if (s == SIGSEGV || s == SIGBUS || s == SIGILL ||
			    s == SIGFPE || s == SIGABRT)
				signal(s, SIG_DFL);
		child_main(mode);
	}
	close(ctl[0]);
	close(st[1]);
	c->ctl = ctl[1];
	c->st = st[0];
	wait_ready(c);
}

/* Waits until the thread sleeps (state S), i.e. is blocked in its call. */
static void wait_sleeping(pid_t pid, pid_t tid)
{
	char path[64], buf[512];

	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid,
		 (int)tid);
	for (int i = 0; i < 5000; i++) {
		FILE *f = fopen(path, "r");
		char *p = NULL;

		if (f) {
			if (fgets(buf, sizeof(buf), f))
				p = strrchr(buf, ')');
			fclose(f);
		}
		if (p && p[1] == ' ' && p[2] == 'S')
			return;
		usleep(1000);
	}
	fail_msg("thread %d never went to sleep", (int)tid);
}

/* Waits (up to 10 s) until the child's count in sink moves on: the child
 * has left what it did before (the write of its notice) and is in the
 * loop that counts.  The child is a fork: sink has the same address there.
 * A sleep of a fixed length instead failed now and then on a busy
 * machine, stopping the child still inside its write. */
static void wait_spinning(struct child *c)
{
	unsigned long first, now;
	struct iovec l = { &first, sizeof(first) };
	struct iovec r = { (void *)&sink, sizeof(sink) };
	const struct timespec ms = { 0, 1000000 };

	assert_int_equal(process_vm_readv(c->pid, &l, 1, &r, 1, 0),
			 sizeof(first));
	l.iov_base = &now;
	for (int i = 0; i < 10000; i++) {
		assert_int_equal(process_vm_readv(c->pid, &l, 1, &r, 1, 0),
				 sizeof(now));
		if (now != first)
			return;
		nanosleep(&ms, NULL);
	}
	fail_msg("process %d never reached its loop", (int)c->pid);
}

static void stop(struct child *c, struct user_regs_struct *regs)
{
	int status;

	if (!c->seized) {
		assert_int_equal(ptrace(PTRACE_SEIZE, c->tid, 0, 0), 0);
		c->seized = true;
	}
	assert_int_equal(ptrace(PTRACE_INTERRUPT, c->tid, 0, 0), 0);
	assert_int_equal(waitpid(c->tid, &status, __WALL), c->tid);
	assert_true(WIFSTOPPED(status));
	assert_int_equal(status >> 16, PTRACE_EVENT_STOP);
	c->stopped = true;
	assert_int_equal(ptrace(PTRACE_GETREGS, c->tid, 0, regs), 0);
}

static void resume(struct child *c)
{
	assert_int_equal(ptrace(PTRACE_CONT, c->tid, 0, 0), 0);
	c->stopped = false;
}

static void detach(struct child *c)
{
	if (c->stopped)
		assert_int_equal(ptrace(PTRACE_DETACH, c->tid, 0, 0), 0);
	c->stopped = false;
	c->seized = false;
}

static void finish(struct child *c)
{
	int status;

	detach(c);
	kill(c->pid, SIGKILL);
	assert_int_equal(waitpid(c->pid, &status, 0), c->pid);
	close(c->ctl);
	close(c->st);
}

/* The frames unwind_thread reported. */
struct frames {
	int n;
	int stop_at; /* the callback returns 1 at this frame (1-based) */
	uint64_t pc[MAXF];
};

static int collect(uint64_t pc, void *arg)
{
	struct frames *f = arg;

	if (f->n < MAXF)
		f->pc[f->n] = pc;
	f->n++;
	return f->stop_at && f->n >= f->stop_at;
}

static int unwind(struct unwinder *u, struct child *c,
		  const struct user_regs_struct *regs, struct frames *f,
		  char *why, size_t whylen)
{
	int stop_at = f->stop_at;

	memset(f, 0, sizeof(*f));
	f->stop_at = stop_at;
	return unwind_thread(u, c->tid, regs, collect, f, why, whylen);
}

/* Symbols of the test program's own PCs: the child is a fork of it. */
static Dwfl *self;
static char *self_debuginfo_path;
static const Dwfl_Callbacks self_callbacks = {
	.find_elf = dwfl_linux_proc_find_elf,
	.find_debuginfo = dwfl_standard_find_debuginfo,
	.debuginfo_path = &self_debuginfo_path,
};

static int setup(void **state)
{
	(void)state;
	self = dwfl_begin(&self_callbacks);
	if (!self)
		return -1;
	dwfl_report_begin(self);
	if (dwfl_linux_proc_report(self, getpid()) != 0)
		return -1;
	return dwfl_report_end(self, NULL, NULL) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	dwfl_end(self);
	self = NULL;
	return 0;
}

static const char *sym(const struct frames *f, int i)
{
	uint64_t a = i == 0 ? f->pc[0] : f->pc[i] - 1;
	Dwfl_Module *m = dwfl_addrmodule(self, a);
	const char *s = m ? dwfl_module_addrname(m, a) : NULL;

	return s ? s : "?";
}

static const char *modname(uint64_t pc)
{
	Dwfl_Module *m = dwfl_addrmodule(self, pc);
	const char *s = m ? dwfl_module_info(m, NULL, NULL, NULL, NULL, NULL,
					     NULL, NULL)
			  : NULL;

	return s ? s : "?";
}

static void show(const char *what, const struct frames *f)
{
	char line[1024];
	size_t len = 0;

	for (int i = 0; i < f->n && i < MAXF && len < sizeof(line) - 64; i++)
		len += (size_t)snprintf(line + len, sizeof(line) - len, "%s%s",
					i ? " <- " : "", sym(f, i));
	print_message("[ %s ] %s\n", what, line);
}

static int find(const struct frames *f, const char *name)
{
	for (int i = 0; i < f->n && i < MAXF; i++)
		if (strcmp(sym(f, i), name) == 0)
			return i;
	return -1;
}

/* level3 <- level2 <- level1, in that order, somewhere in the stack. */
static void assert_chain(const struct frames *f)
{
	int i3 = find(f, "level3"), i2 = find(f, "level2"),
	    i1 = find(f, "level1");

	assert_true(i3 >= 0);
	assert_int_equal(i2, i3 + 1);
	assert_int_equal(i1, i2 + 1);
}

static void open_unwinder(struct child *c, struct unwinder **u)
{
	char err[256] = "";
	int r = unwind_open(c->pid, u, err, sizeof(err));

	if (r != 0)
		fail_msg("unwind_open: %d %s", r, err);
	assert_non_null(*u);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* The descriptors open once unwinders have let go of the object files
 * they keep for the next process (unwind_drop_files). */
static int count_fds_unused(void)
{
	unwind_drop_files();
	return count_fds();
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the cases ---------------------------------------------------------- */

/* (a) blocked in read() under level3: the first PC is in libc. */
static void test_blocked_in_read(void **state)
{
	struct child c;
	struct user_regs_struct regs;
	struct unwinder *u;
	struct frames f = { 0 };
	char why[256] = "";
	int r;

	(void)state;
	start(&c, M_READ);
	wait_sleeping(c.pid, c.tid);
	stop(&c, &regs);
	open_unwinder(&c, &u);
	r = unwind(u, &c, &regs, &f, why, sizeof(why));
	show("read", &f);
	if (r != 0)
		fail_msg("unwind_thread: %d %s", r, why);
	assert_non_null(strstr(modname(f.pc[0]), "libc"));
	assert_int_equal(f.pc[0], regs.rip);
	assert_chain(&f);
	assert_int_equal(find(&f, "level3"), 1);
	assert_string_equal(sym(&f, f.n - 1), "_start");
	unwind_close(u);
	finish(&c);
}

/* (b) spinning in level3: the first PC is level3's. */
static void test_spinning(void **state)
{
	struct child c;
	struct user_regs_struct regs;
	struct unwinder *u;
	struct frames f = { 0 };
	char why[256] = "";
	int r;

	(void)state;
	start(&c, M_SPIN);
	wait_spinning(&c);
	stop(&c, &regs);
	open_unwinder(&c, &u);
	for (int i = 0; i < 20; i++) {
		r = unwind(u, &c, &regs, &f, why, sizeof(why));
		if (r != 0)
			fail_msg("unwind_thread: %d %s", r, why);
		assert_chain(&f);
		assert_int_equal(find(&f, "level3"), 0);
		assert_string_equal(sym(&f, f.n - 1), "_start");
		resume(&c);
		usleep(1000);
		stop(&c, &regs);
	}
	show("spin", &f);
	unwind_close(u);
	finish(&c);
}

/* (c) a second thread, in nanosleep(): the walk ends in clone3. */
static void test_thread(void **state)
{
	struct child c;
	struct user_regs_struct regs;
	struct unwinder *u;
	struct frames f = { 0 };
	char why[256] = "";
	int r;

	(void)state;
	start(&c, M_THREAD);
	assert_int_not_equal(c.tid, c.pid);
	wait_sleeping(c.pid, c.tid);
	stop(&c, &regs);
	open_unwinder(&c, &u);
	r = unwind(u, &c, &regs, &f, why, sizeof(why));
	show("thread", &f);
	if (r != 0)
		fail_msg("unwind_thread: %d %s", r, why);
	assert_chain(&f);
	assert_int_equal(find(&f, "thread_fn"), find(&f, "level1") + 1);
	assert_true(find(&f, "start_thread") > find(&f, "thread_fn"));
	assert_non_null(strstr(sym(&f, f.n - 1), "clone"));
	unwind_close(u);
	finish(&c);
}

/* (d) spinning in an anonymous page without CFI: unreliable. */
static void test_no_cfi(void **state)
{
	struct child c;
	struct user_regs_struct regs;
	struct unwinder *u;
	struct frames f = { 0 };
	char why[256] = "", want[64];
	uint64_t hint;
	int r;

	(void)state;
	/*
	 * In the free space just above the dynamic linker, the last object:
	 * elfutils 0.188's dwfl_addrmodule returns the module below such an
	 * address, and unwind.c must not believe it.
	 */
	g_hint = 0;
	{
		FILE *maps = fopen("/proc/self/maps", "r");
		char line[512];
		unsigned long long a, b;

		assert_non_null(maps);
		while (fgets(line, sizeof(line), maps))
			if (strstr(line, "/ld-linux") &&
			    sscanf(line, "%llx-%llx", &a, &b) == 2)
				g_hint = b + 0x100000;
		fclose(maps);
	}
	hint = g_hint;
	start(&c, M_JIT);
	g_hint = 0;
	for (int i = 0;; i++) {
		usleep(1000);
		stop(&c, &regs);
		if (regs.rip == c.addr)
			break;
		assert_true(i < 1000);
		resume(&c);
	}
	open_unwinder(&c, &u);
	r = unwind(u, &c, &regs, &f, why, sizeof(why));
	print_message("[ no cfi ] %s\n", why);
	assert_int_equal(r, -EAGAIN);
	assert_int_equal(f.n, 0);
	snprintf(want, sizeof(want), "0x%llx", (unsigned long long)c.addr);
	assert_non_null(strstr(why, "no unwind information"));
	assert_non_null(strstr(why, want));
	if (c.addr == hint)
		assert_non_null(strstr(why, "not in any mapped object"));
	else
		print_message("[ no cfi ] (the page is not above ld.so)\n");
	unwind_close(u);
	finish(&c);
}

/*
 * (d') a middle frame in code without CFI (which sets up %rbp, so elfutils'
 * frame-pointer fallback would walk on through it): unreliable.
 */
static void test_no_cfi_middle(void **state)
{
	struct child c;
	struct user_regs_struct regs;
	struct unwinder *u;
	struct frames f = { 0 };
	char why[256] = "";
	int r;

	(void)state;
	start(&c, M_JITMID);
	wait_spinning(&c);
	stop(&c, &regs);
	open_unwinder(&c, &u);
	r = unwind(u, &c, &regs, &f, why, sizeof(why));
	print_message("[ no cfi, middle ] %s\n", why);
	assert_int_equal(r, -EAGAIN);
	assert_int_equal(f.n, 1);
	assert_string_equal(sym(&f, 0), "level4");
	assert_non_null(strstr(why, "no unwind information"));
	unwind_close(u);
	finish(&c);
}

/* (e) the callback stops the walk: 1, and no more frames. */
static void test_early_stop(void **state)
{
	struct child c;
	struct user_regs_struct regs;
	struct unwinder *u;
	struct frames f = { .stop_at = 2 };
	char why[256] = "";

	(void)state;
	start(&c, M_READ);
	wait_sleeping(c.pid, c.tid);
	stop(&c, &regs);
	open_unwinder(&c, &u);
	assert_int_equal(unwind(u, &c, &regs, &f, why, sizeof(why)), 1);
	assert_int_equal(f.n, 2);
	assert_string_equal(sym(&f, 1), "level3");
	f.stop_at = 0;
	assert_int_equal(unwind(u, &c, &regs, &f, why, sizeof(why)), 0);
	assert_true(f.n > 5);
	/* A NULL callback only checks. */
	assert_int_equal(unwind_thread(u, c.tid, &regs, NULL, NULL, why,
				       sizeof(why)), 0);
	unwind_close(u);
	finish(&c);
}

/* (f) stopped inside the vDSO: unwound with the vDSO's own CFI. */
static void test_vdso(void **state)
{
	struct child c;
	struct user_regs_struct regs;
	struct unwinder *u;
	struct frames f = { 0 };
	char why[256] = "";
	uint64_t lo = getauxval(AT_SYSINFO_EHDR), hi = 0;
	int hits = 0, fds = count_fds_unused(), r;
	FILE *maps = fopen("/proc/self/maps", "r");
	char line[256];

	(void)state;
	if (!lo) {
		fclose(maps);
		skip();
	}
	while (fgets(line, sizeof(line), maps)) {
		unsigned long long a, b;

		if (strstr(line, "[vdso]") &&
		    sscanf(line, "%llx-%llx", &a, &b) == 2 && a == lo)
			hi = b;
	}
	fclose(maps);
	assert_true(hi > lo);

	start(&c, M_VDSO);
	open_unwinder(&c, &u);
	for (int i = 0; i < 20000 && hits < 20; i++) {
		stop(&c, &regs);
		if (regs.rip >= lo && regs.rip < hi) {
			r = unwind(u, &c, &regs, &f, why, sizeof(why));
			if (hits == 0)
				show("vdso", &f);
			if (r != 0)
				fail_msg("unwind_thread: %d %s", r, why);
			assert_non_null(strstr(modname(f.pc[0]), "vdso"));
			assert_chain(&f);
			assert_string_equal(sym(&f, f.n - 1), "_start");
			hits++;
		}
		resume(&c);
		usleep(50 + (unsigned)(i % 7) * 30);
	}
	print_message("[ vdso ] %d stops in the vDSO unwound\n", hits);
	assert_true(hits > 0);
	unwind_close(u);
	finish(&c);
	assert_int_equal(count_fds_unused(), fds);
}

/* (g) random stops of a busy thread: never a wrong "reliable". */
static void test_random_stops(void **state)
{
	struct child c;
	struct user_regs_struct regs;
	struct unwinder *u;
	struct frames f = { 0 };
	char why[256] = "";
	int ok = 0, bad = 0;

	(void)state;
	start(&c, M_BUSY);
	open_unwinder(&c, &u);
	for (int i = 0; i < 500; i++) {
		usleep(20 + (unsigned)(i * 37 % 200));
		stop(&c, &regs);
		int r = unwind(u, &c, &regs, &f, why, sizeof(why));
		if (r == 0) {
			assert_chain(&f);
			assert_string_equal(sym(&f, f.n - 1), "_start");
			ok++;
		} else {
			assert_int_equal(r, -EAGAIN);
			assert_true(why[0] != '\0');
			if (bad++ < 5)
				print_message("[ busy ] unreliable at %s: %s\n",
					      sym(&f, 0), why);
		}
		resume(&c);
	}
	print_message("[ busy ] %d reliable, %d unreliable\n", ok, bad);
	assert_true(ok > 400);
	unwind_close(u);
	finish(&c);
}

/* An unrelated (stripped, distribution-built) program, blocked. */
static void test_exec(void **state)
{
	struct child c;
	struct user_regs_struct regs;
	struct unwinder *u;
	struct frames f = { 0 };
	char why[256] = "";
	int fds = count_fds_unused(), open_fds, r;

	(void)state;
	memset(&c, 0, sizeof(c));
	c.ctl = c.st = -1;
	fflush(NULL);
	c.pid = fork();
	assert_true(c.pid >= 0);
	if (c.pid == 0) {
		execl("/bin/sleep", "sleep", "100", (char *)NULL);
		_exit(127);
	}
	c.tid = c.pid;
	for (int i = 0; i < 5000; i++) {
		char exe[64], buf[256];
		ssize_t n;

		snprintf(exe, sizeof(exe), "/proc/%d/exe", (int)c.pid);
		n = readlink(exe, buf, sizeof(buf) - 1);
		if (n > 0 && (buf[n] = '\0', strstr(buf, "sleep")))
			break;
		usleep(1000);
	}
	wait_sleeping(c.pid, c.tid);
	stop(&c, &regs);
	open_unwinder(&c, &u);
	r = unwind_thread(u, c.tid, &regs, collect, &f, why, sizeof(why));
	print_message("[ sleep ] %d frames\n", f.n);
	if (r != 0)
		fail_msg("unwind_thread: %d %s", r, why);
	assert_true(f.n >= 3);
	assert_int_equal(unwind_refresh(u), 0);
	assert_int_equal(unwind_thread(u, c.tid, &regs, NULL, NULL, why,
				       sizeof(why)), 0);
	unwind_close(u);
	/* The files stay open for the next unwinder, which opens none. */
	open_fds = count_fds();
	assert_true(open_fds > fds);
	open_unwinder(&c, &u);
	assert_int_equal(unwind_thread(u, c.tid, &regs, NULL, NULL, why,
				       sizeof(why)), 0);
	unwind_close(u);
	assert_int_equal(count_fds(), open_fds);
	detach(&c);
	kill(c.pid, SIGKILL);
	assert_int_equal(waitpid(c.pid, NULL, 0), c.pid);
	assert_int_equal(count_fds_unused(), fds);
}

/* ---- libraries built here --------------------------------------------- */

static const char lib_src[] =
	"void lib_spin(volatile unsigned long *p)\n"
	"{\n"
	"\tfor (;;)\n"
	"\t\t(*p)++;\n"
	"}\n";

static char tmpdir[256];

/* Builds lib_src with flags into tmpdir/name; false without a compiler. */
static bool build_lib(const char *name, const char *flags, char *out,
		      size_t outlen)
{
	char src[512], cmd[2048];
	FILE *f;

	if (!tmpdir[0]) {
		snprintf(tmpdir, sizeof(tmpdir), "/tmp/relive-unwind-XXXXXX");
		if (!mkdtemp(tmpdir)) {
			tmpdir[0] = '\0';
			return false;
		}
	}
	snprintf(src, sizeof(src), "%s/lib.c", tmpdir);
	f = fopen(src, "w");
	assert_non_null(f);
	fputs(lib_src, f);
	fclose(f);
	snprintf(out, outlen, "%s/%s", tmpdir, name);
	snprintf(cmd, sizeof(cmd),
		 "cc -shared -fPIC %s -o '%s' '%s' 2>/dev/null", flags, out,
		 src);
	return system(cmd) == 0;
}

/* Starts an M_LIB child and lets it load lib; returns spinning there. */
static void start_lib(struct child *c, const char *lib,
		      struct unwinder **u_before)
{
	snprintf(g_lib, sizeof(g_lib), "%s", lib);
	start(c, M_LIB);
	if (u_before) {
		struct user_regs_struct regs;

		wait_sleeping(c->pid, c->tid);
		stop(c, &regs);
		open_unwinder(c, u_before);
		detach(c);
	}
	assert_int_equal(write(c->ctl, "g", 1), 1);
	wait_ready(c);
	wait_spinning(c);
}

/* A library mapped after unwind_open is unknown until unwind_refresh. */
static void test_refresh(void **state)
{
	struct child c;
	struct user_regs_struct regs;
	struct unwinder *u;
	struct frames f = { 0 };
	char why[256] = "", lib[512];
	int r;

	(void)state;
	if (!build_lib("libplain.so", "-O2 -g", lib, sizeof(lib)))
		skip();
	start_lib(&c, lib, &u);
	stop(&c, &regs);
	assert_true(regs.rip >= c.addr && regs.rip < c.addr + 64);
	r = unwind(u, &c, &regs, &f, why, sizeof(why));
	print_message("[ before refresh ] %s\n", why);
	assert_int_equal(r, -EAGAIN);
	assert_non_null(strstr(why, "not in any mapped object"));
	assert_int_equal(unwind_refresh(u), 0);
	r = unwind(u, &c, &regs, &f, why, sizeof(why));
	if (r != 0)
		fail_msg("unwind_thread: %d %s", r, why);
	assert_chain(&f);
	assert_int_equal(find(&f, "level3"), 1);
	assert_string_equal(sym(&f, f.n - 1), "_start");
	unwind_close(u);
	finish(&c);
}

/* A library without any CFI: unreliable, naming the library. */
static void test_lib_no_cfi(void **state)
{
	struct child c;
	struct user_regs_struct regs;
	struct unwinder *u;
	struct frames f = { 0 };
	char why[256] = "", lib[512];

	(void)state;
	if (!build_lib("libnocfi.so",
		       "-O2 -fno-asynchronous-unwind-tables -fno-unwind-tables",
		       lib, sizeof(lib)))
		skip();
	start_lib(&c, lib, NULL);
	stop(&c, &regs);
	open_unwinder(&c, &u);
	assert_int_equal(unwind(u, &c, &regs, &f, why, sizeof(why)), -EAGAIN);
	print_message("[ lib without cfi ] %s\n", why);
	assert_non_null(strstr(why, "no unwind information"));
	assert_non_null(strstr(why, "libnocfi.so"));
	unwind_close(u);
	finish(&c);
}

/* A library with .debug_frame only: reliable. */
static void test_lib_debug_frame(void **state)
{
	struct child c;
	struct user_regs_struct regs;
	struct unwinder *u;
	struct frames f = { 0 };
	char why[256] = "", lib[512];
	int r;

	(void)state;
	if (!build_lib("libdbgframe.so",
		       "-O2 -g -fno-asynchronous-unwind-tables "
		       "-fno-unwind-tables", lib, sizeof(lib)))
		skip();
	start_lib(&c, lib, NULL);
	stop(&c, &regs);
	open_unwinder(&c, &u);
	r = unwind(u, &c, &regs, &f, why, sizeof(why));
	if (r != 0)
		fail_msg("unwind_thread: %d %s", r, why);
	assert_chain(&f);
	assert_int_equal(find(&f, "level3"), 1);
	unwind_close(u);
	finish(&c);
}

/*
 * A library the target mapped from its own mount namespace, while another
 * file (without CFI) has the same name here: the target's file is used.
 */
static void test_lib_namespace(void **state)
{
	struct child c;
	struct user_regs_struct regs;
	struct unwinder *u;
	struct frames f = { 0 };
	char why[256] = "", lib[512], nocfi[512], there[600];
	int r;

	(void)state;
	if (!build_lib("libplain.so", "-O2", lib, sizeof(lib)) ||
	    !build_lib("libnocfi.so",
		       "-O2 -fno-asynchronous-unwind-tables -fno-unwind-tables",
		       nocfi, sizeof(nocfi)))
		skip();
	snprintf(g_nsdir, sizeof(g_nsdir), "%s/ns", tmpdir);
	assert_true(mkdir(g_nsdir, 0755) == 0 || errno == EEXIST);
	snprintf(g_lib, sizeof(g_lib), "%s", lib);
	start(&c, M_LIBNS);
	assert_int_equal(write(c.ctl, "g", 1), 1);
	wait_ready(&c);
	if (c.addr == 0) {
		finish(&c);
		skip(); /* no CAP_SYS_ADMIN */
	}
	wait_spinning(&c);
	snprintf(there, sizeof(there), "%s/lib.so", g_nsdir);
	assert_true(copy_file(nocfi, there));
	stop(&c, &regs);
	open_unwinder(&c, &u);
	r = unwind(u, &c, &regs, &f, why, sizeof(why));
	if (r != 0)
		fail_msg("unwind_thread: %d %s", r, why);
	assert_chain(&f);
	assert_int_equal(find(&f, "level3"), 1);
	unwind_close(u);
	finish(&c);
}

/* A library whose file was deleted after it was mapped: read from memory. */
static void test_lib_deleted(void **state)
{
	struct child c;
	struct user_regs_struct regs;
	struct unwinder *u;
	struct frames f = { 0 };
	char why[256] = "", lib[512];
	int r;

	(void)state;
	if (!build_lib("libdeleted.so", "-O2", lib, sizeof(lib)))
		skip();
	start_lib(&c, lib, NULL);
	assert_int_equal(unlink(lib), 0);
	stop(&c, &regs);
	open_unwinder(&c, &u);
	r = unwind(u, &c, &regs, &f, why, sizeof(why));
	if (r != 0)
		fail_msg("unwind_thread: %d %s", r, why);
	assert_chain(&f);
	assert_int_equal(find(&f, "level3"), 1);
	unwind_close(u);
	finish(&c);
}

/* In a signal handler on an alternate stack: through the signal frame. */
static void test_signal(void **state)
{
	struct child c;
	struct user_regs_struct regs;
	struct unwinder *u;
	struct frames f = { 0 };
	char why[256] = "";
	int r;

	(void)state;
	start(&c, M_SIGNAL);
	wait_spinning(&c); /* in level3's loop */
	assert_int_equal(kill(c.pid, SIGUSR1), 0);
	wait_ready(&c);
	wait_spinning(&c); /* in the handler's loop */
	stop(&c, &regs);
	open_unwinder(&c, &u);
	r = unwind(u, &c, &regs, &f, why, sizeof(why));
	show("signal", &f);
	if (r != 0)
		fail_msg("unwind_thread: %d %s", r, why);
	assert_int_equal(find(&f, "on_signal"), 0);
	/* __restore_rt, which has no symbol in a stripped libc */
	assert_non_null(strstr(modname(f.pc[1]), "libc"));
	/* The interrupted PC, exact, then its callers. */
	assert_int_equal(find(&f, "level3"), 2);
	assert_int_equal(find(&f, "level2"), 3);
	assert_int_equal(find(&f, "level1"), 4);
	assert_string_equal(sym(&f, f.n - 1), "_start");
	unwind_close(u);
	finish(&c);
}

/*
 * Stacks libdwfl ends "successfully" although they are cut short: a return
 * address of 0 read from the stack, and a stack that cannot be read.
 */
static void test_cut_short(void **state)
{
	struct child c;
	struct user_regs_struct regs, fake;
	struct unwinder *u;
	struct frames f = { 0 };
	char why[256] = "";

	(void)state;
	start(&c, M_READ);
	wait_sleeping(c.pid, c.tid);
	stop(&c, &regs);
	open_unwinder(&c, &u);

	/* At level4's first instruction, the return address is at (%rsp). */
	fake = regs;
	fake.rip = (uintptr_t)level4;
	fake.rsp = (uintptr_t)&zeros[0];
	assert_int_equal(unwind(u, &c, &fake, &f, why, sizeof(why)), -EAGAIN);
	print_message("[ ra 0 ] %s\n", why);
	assert_int_equal(f.n, 1);
	assert_non_null(strstr(why, "not at the thread's outermost frame"));

	fake.rsp = 0x1000;
	assert_int_equal(unwind(u, &c, &fake, &f, why, sizeof(why)), -EAGAIN);
	print_message("[ no stack ] %s\n", why);
	assert_non_null(strstr(why, "cannot read target memory at 0x1000"));

	/* The real registers still unwind. */
	assert_int_equal(unwind(u, &c, &regs, &f, why, sizeof(why)), 0);
	unwind_close(u);
	finish(&c);
}

/* unwind_warm opens the object at a PC (its file, its bounds around the
 * PC), refuses an address nothing is mapped at, and changes no unwind:
 * the frames after warming libc and the executable are those of a cold
 * unwinder.  unwind_warm_exe opens the executable's file. */
static void test_warm(void **state)
{
	struct child c;
	struct user_regs_struct regs;
	struct unwinder *cold, *warm;
	struct frames fc = { 0 }, fw = { 0 };
	char why[256] = "";
	uint64_t lo = 0, hi = 0;
	int fds;

	(void)state;
	start(&c, M_READ);
	wait_sleeping(c.pid, c.tid);
	stop(&c, &regs);
	open_unwinder(&c, &warm);
	fds = count_fds_unused();
	assert_true(unwind_warm(warm, regs.rip, &lo, &hi));
	assert_true(lo <= regs.rip && regs.rip < hi);
	assert_true(count_fds() > fds); /* libc's file */
	lo = hi = 7;
	assert_false(unwind_warm(warm, 16, &lo, &hi));
	assert_int_equal(lo, 7);
	assert_int_equal(hi, 7);
	fds = count_fds();
	unwind_warm_exe(warm);
	assert_true(count_fds() > fds); /* the executable's */
	unwind_warm_exe(NULL);
	open_unwinder(&c, &cold);
	assert_false(unwind_warm(NULL, regs.rip, &lo, &hi));
	assert_int_equal(unwind(cold, &c, &regs, &fc, why, sizeof(why)), 0);
	assert_int_equal(unwind(warm, &c, &regs, &fw, why, sizeof(why)), 0);
	assert_int_equal(fw.n, fc.n);
	assert_memory_equal(fw.pc, fc.pc, fc.n * sizeof(fc.pc[0]));
	assert_chain(&fw);
	unwind_close(cold);
	unwind_close(warm);
	finish(&c);
}

/* The cost of unwind_open and of one unwind_thread; no fd leaks. */
static void test_cost(void **state)
{
	struct child c;
	struct user_regs_struct regs;
	struct unwinder *u;
	struct frames f = { 0 };
	char why[256] = "";
	int fds = count_fds_unused(), fds_child, n = 20, m = 1000;
	double t0, t_open, t_first, t_thread;

	(void)state;
	start(&c, M_READ);
	wait_sleeping(c.pid, c.tid);
	stop(&c, &regs);
	fds_child = count_fds();
	t0 = now();
	for (int i = 0; i < n; i++) {
		open_unwinder(&c, &u);
		unwind_close(u);
	}
	t_open = (now() - t0) / n;
	assert_int_equal(count_fds(), fds_child);

	open_unwinder(&c, &u);
	t0 = now();
	assert_int_equal(unwind(u, &c, &regs, &f, why, sizeof(why)), 0);
	t_first = now() - t0;
	t0 = now();
	for (int i = 0; i < m; i++)
		assert_int_equal(unwind(u, &c, &regs, &f, why, sizeof(why)), 0);
	t_thread = (now() - t0) / m;
	print_message("[ cost ] unwind_open %.0f us, first unwind_thread "
		      "%.0f us, then %.1f us per unwind_thread (%d frames)\n",
		      t_open * 1e6, t_first * 1e6, t_thread * 1e6, f.n);
	t0 = now();
	for (int i = 0; i < n; i++)
		assert_int_equal(unwind_refresh(u), 0);
	print_message("[ cost ] unwind_refresh %.0f us\n",
		      (now() - t0) / n * 1e6);
	assert_int_equal(unwind(u, &c, &regs, &f, why, sizeof(why)), 0);
	unwind_close(u);
	finish(&c);
	assert_int_equal(count_fds_unused(), fds);
}

static void test_bad_pid(void **state)
{
	struct unwinder *u = (struct unwinder *)1;
	char err[256] = "";

	(void)state;
	assert_true(unwind_open(0x3fffffff, &u, err, sizeof(err)) < 0);
	assert_null(u);
	assert_true(err[0] != '\0');
	unwind_close(NULL);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_blocked_in_read),
		cmocka_unit_test(test_warm),
		cmocka_unit_test(test_spinning),
		cmocka_unit_test(test_thread),
		cmocka_unit_test(test_no_cfi),
		cmocka_unit_test(test_no_cfi_middle),
		cmocka_unit_test(test_early_stop),
		cmocka_unit_test(test_vdso),
		cmocka_unit_test(test_random_stops),
		cmocka_unit_test(test_exec),
		cmocka_unit_test(test_refresh),
		cmocka_unit_test(test_lib_no_cfi),
		cmocka_unit_test(test_lib_debug_frame),
		cmocka_unit_test(test_lib_deleted),
		cmocka_unit_test(test_lib_namespace),
		cmocka_unit_test(test_signal),
		cmocka_unit_test(test_cut_short),
		cmocka_unit_test(test_cost),
		cmocka_unit_test(test_bad_pid),
	};
	int r;

	if (argc > 1)
		cmocka_set_test_filter(argv[1]);
	r = cmocka_run_group_tests(tests, setup, teardown);
	if (tmpdir[0]) {
		char cmd[512];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			r = 1;
	}
	return r;
}
