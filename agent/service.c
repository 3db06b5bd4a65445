/*
 * agent/service.c - the agent's own thread, which serves the controller's
 * requests so that no thread of the program is held while they run.
 *
 * Without it, every request borrows a thread of the program: the
 * controller stops one, checks its stack, and makes it call
 * relive_agent_request(); that thread is then away from the program for
 * the whole request (a dlopen of the patch, stubs for every function).
 * With it, the controller writes the request into the control block and
 * one byte into a pipe; this thread wakes, serves the request, and sleeps
 * again.  No ptrace, no stop, no stack check per request.
 *
 * The thread blocks every signal (process-directed signals keep going to
 * the program's threads, as before), is named "relive-agent", and owns
 * both ends of one pipe, close-on-exec.  The controller reaches the pipe
 * through /proc/PID/fd/svc_fd and checks its inode first, so a descriptor
 * the program closed and reused is never written to.  A fork child has no
 * such thread: its first request borrows a thread, which starts one.
 *
 * The way back is a page of shared memory (ctl.h, done_page): the number
 * of the request served goes into its first word, a futex, so that the
 * controller sleeps until it is woken instead of polling the control
 * block.  The page is a memfd the agent maps and closes at once: no
 * descriptor is left in the program; the controller maps the same page
 * through /proc/PID/map_files (which needs CAP_SYS_ADMIN; without it, the
 * controller polls as before).
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent.h"
#include "background.h"

static pthread_mutex_t service_lock = PTHREAD_MUTEX_INITIALIZER;
static int service_pipe[2] = { -1, -1 };
static bool atfork_done;

#define DONE_PAGE_SIZE 4096

/* The page shared with the controller; its first word is the low half of
 * the last done_seq. */
static uint32_t *done_page;

/* Makes the shared page; without it (no memfd_create, a seccomp filter,
 * no memory) the controller polls. */
static void done_page_make(void)
{
	struct relive_ctl *c = &relive_agent_ctl;
	struct stat st;
	void *m;
	int fd;

	if (done_page)
		return;
	fd = memfd_create("relive-agent-done", MFD_CLOEXEC);
	if (fd < 0)
		return;
	if (ftruncate(fd, DONE_PAGE_SIZE) || fstat(fd, &st)) {
		close(fd);
		return;
	}
	m = mmap(NULL, DONE_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		 0);
	close(fd);
	if (m == MAP_FAILED)
		return;
	done_page = m;
	*done_page = (uint32_t)__atomic_load_n(&c->done_seq, __ATOMIC_ACQUIRE);
	c->done_ino = st.st_ino;
	__atomic_store_n(&c->done_page, (uint64_t)(uintptr_t)m,
			 __ATOMIC_RELEASE);
}

void service_done(uint64_t seq)
{
	uint32_t *w = __atomic_load_n(&done_page, __ATOMIC_ACQUIRE);

	if (!w)
		return;
	__atomic_store_n(w, (uint32_t)seq, __ATOMIC_RELEASE);
	syscall(SYS_futex, w, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* The child of a fork has no service thread and must not share the
 * parent's pipe: a byte meant for the child would wake the parent. */
static void service_forked(void)
{
	struct relive_ctl *c = &relive_agent_ctl;

	if (service_pipe[0] >= 0) {
		close(service_pipe[0]);
		close(service_pipe[1]);
	}
	service_pipe[0] = service_pipe[1] = -1;
	c->svc_tid = 0;
	c->svc_fd = -1;
	c->svc_ino = 0;
	/* The page is the parent's too: the child makes its own. */
	c->done_page = 0;
	c->done_ino = 0;
	if (done_page)
		munmap(done_page, DONE_PAGE_SIZE);
	done_page = NULL;
	pthread_mutex_init(&service_lock, NULL);
}

/* The object holding libc's thread start (start_thread), where the
 * service thread's stack begins: when it is libc itself, the thread's
 * stack is the agent's code over libc's (transition.c, self_switch). */
static uintptr_t thread_start_base;

uintptr_t service_thread_start_object(void)
{
	return __atomic_load_n(&thread_start_base, __ATOMIC_ACQUIRE);
}

static void *service_main(void *arg)
{
	struct relive_ctl *c = &relive_agent_ctl;
	int fd = (int)(intptr_t)arg;
	const char *bn;
	Dl_info di;
	char b;

	if (dladdr(__builtin_return_address(0), &di) && di.dli_fname &&
	    (bn = strrchr(di.dli_fname, '/')) &&
	    !strncmp(bn + 1, "libc.so.", 8))
		__atomic_store_n(&thread_start_base, (uintptr_t)di.dli_fbase,
				 __ATOMIC_RELEASE);
	pthread_setname_np(pthread_self(), "relive-agent");
	/* Never make a thread of the program wait for this one's slice. */
	background_thread();
	/* Before the thread says it is there: a request then finds it
	 * ready (warm.c). */
	warm_thread();
	__atomic_store_n(&c->svc_tid, (uint32_t)gettid(), __ATOMIC_RELEASE);
	for (;;) {
		ssize_t r = read(fd, &b, 1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r != 1)
			break; /* the program closed the pipe: borrow again */
		if (__atomic_load_n(&c->req_seq, __ATOMIC_ACQUIRE) ==
		    __atomic_load_n(&c->done_seq, __ATOMIC_ACQUIRE))
			continue; /* a second ring for a served request */
		relive_agent_request();
	}
	agent_log("the service thread stops: its pipe was closed");
	/* The descriptors are the program's now: forget them, never close
	 * them.  The next borrowed request starts a new thread. */
	pthread_mutex_lock(&service_lock);
	c->svc_tid = 0;
	c->svc_fd = -1;
	c->svc_ino = 0;
	service_pipe[0] = service_pipe[1] = -1;
	pthread_mutex_unlock(&service_lock);
	return NULL;
}

/*
 * pthread_create leaves its return addresses in the stack below its
 * caller's frame, where the program's frames will later have their
 * uninitialised slots (the preloaded agent starts its thread before
 * main): a look at a sleeping thread's stack for pthread_create
 * (sleepers.c) would take them for live frames, and leave the thread to
 * the controller.  Clearing the area where they were spares it that.
 */
static __attribute__((noinline)) void scrub_stack_below(void)
{
	char area[16384];

	explicit_bzero(area, sizeof(area));
}

void service_start(void)
{
	struct relive_ctl *c = &relive_agent_ctl;
	sigset_t all, old;
	pthread_attr_t attr;
	pthread_t t;
	struct stat st;
	int p[2];

	pthread_mutex_lock(&service_lock);
	if (c->svc_tid || service_pipe[0] >= 0)
		goto out;
	if (!atfork_done && pthread_atfork(NULL, NULL, service_forked))
		goto out;
	atfork_done = true;
	done_page_make();
	if (pipe2(p, O_CLOEXEC))
		goto out;
	if (fstat(p[0], &st)) {
		close(p[0]);
		close(p[1]);
		goto out;
	}
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 1 << 20);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if (pthread_create(&t, &attr, service_main, (void *)(intptr_t)p[0])) {
		close(p[0]);
		close(p[1]);
	} else {
		/* Named here too, not only by itself: a look at the
		 * process right after the start finds it by its name. */
		pthread_setname_np(t, "relive-agent");
		service_pipe[0] = p[0];
		service_pipe[1] = p[1];
		c->svc_ino = st.st_ino;
		c->svc_fd = p[0];
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	scrub_stack_below();
out:
	pthread_mutex_unlock(&service_lock);
}
