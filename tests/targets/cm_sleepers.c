/*
 * tests/targets/cm_sleepers.c - threads asleep in system calls inside code
 * that no patch touches, while a transition switches them: one in
 * epoll_wait (an eventfd), one in read() of a pipe, one in nanosleep for a
 * requested time measured with CLOCK_MONOTONIC.  None may see EINTR and the
 * nanosleep may not be shortened.
 *
 * Commands (besides those of target.h):
 *     value N    -> cm_sleep_value(N)    original N + 1, cm_sleep_fix N + 100
 *     status     -> "epoll=A read=B": returns of the epoll_wait and read
 *                   threads so far (0 until "wake")
 *     nap MS     -> "napping TID": the napper is about to call nanosleep
 *                   for MS milliseconds
 *     napres     -> waits for the nap to end: "ret=R errno=E elapsed_ns=N"
 *     wake       -> writes the eventfd and the pipe, waits for both threads
 *                   to return: "epoll=RET/ERRNO read=RET/ERRNO"
 *     sigpark    -> "sigparked TID": a thread waiting in pause() got SIGUSR1
 *                   and its handler, on an alternate signal stack inside
 *                   the thread's own stack (a local array, above pause's
 *                   frames), blocks on a pipe
 *     sigrelease -> lets the handler return: "sigreleased"
 *     spin       -> "spinning TID": a thread (made at the first spin) runs
 *                   a loop outside any patched function, never asleep
 *     unspin     -> the loop ends and the thread waits on the condition
 *                   variable again: "unspun"
 *
 * With CM_SIG_RESETHAND=1 in the environment, the handler is installed
 * with SA_RESETHAND: its signal then leaves the set of caught signals as
 * soon as the handler starts, and its restorer shows nowhere else (the
 * process has no other handler).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* gettid */
#endif
#include "target.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

volatile int cm_one = 1;

PATCHABLE int cm_sleep_value(int x)
{
	return x + cm_one;
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;

static int efd, epfd, pipefd[2];
static int epoll_returns, read_returns;
static long epoll_ret, read_ret;
static int epoll_errno, read_errno;

static long nap_ms = -1;           /* requested, -1 none */
static volatile int nap_tid;
static int nap_done;
static long nap_ret;
static int nap_errno;
static int64_t nap_elapsed_ns;

static void *epoll_main(void *arg)
{
	struct epoll_event ev;

	for (;;) {
		long r = epoll_wait(epfd, &ev, 1, -1);
		int e = r < 0 ? errno : 0;
		uint64_t v;

		if (r > 0 && read(efd, &v, sizeof(v)) < 0)
			e = errno;
		pthread_mutex_lock(&lock);
		epoll_returns++;
		epoll_ret = r;
		epoll_errno = e;
		pthread_cond_broadcast(&cond);
		pthread_mutex_unlock(&lock);
	}
	return arg;
}

static void *read_main(void *arg)
{
	for (;;) {
		char c;
		long r = read(pipefd[0], &c, 1);
		int e = r < 0 ? errno : 0;

		pthread_mutex_lock(&lock);
		read_returns++;
		read_ret = r;
		read_errno = e;
		pthread_cond_broadcast(&cond);
		pthread_mutex_unlock(&lock);
	}
	return arg;
}

static int64_t ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

static void *nap_main(void *arg)
{
	pthread_mutex_lock(&lock);
	for (;;) {
		struct timespec req, t0, t1;
		long ms, r;
		int e;

		while (nap_ms < 0)
			pthread_cond_wait(&cond, &lock);
		ms = nap_ms;
		pthread_mutex_unlock(&lock);

		req.tv_sec = ms / 1000;
		req.tv_nsec = (ms % 1000) * 1000000;
		__atomic_store_n(&nap_tid, gettid(), __ATOMIC_SEQ_CST);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		r = nanosleep(&req, NULL);
		e = r < 0 ? errno : 0;
		clock_gettime(CLOCK_MONOTONIC, &t1);

		pthread_mutex_lock(&lock);
		nap_ret = r;
		nap_errno = e;
		nap_elapsed_ns = ns(&t1) - ns(&t0);
		nap_ms = -1;
		nap_done = 1;
		pthread_cond_broadcast(&cond);
	}
	return arg;
}

static int sigpipe[2];
static volatile int sig_tid, sig_in_handler;

static void on_usr1(int sig)
{
	char c;

	(void)sig;
	__atomic_store_n(&sig_in_handler, 1, __ATOMIC_SEQ_CST);
	while (read(sigpipe[0], &c, 1) != 1)
		;
	__atomic_store_n(&sig_in_handler, 0, __ATOMIC_SEQ_CST);
}

static void *sig_main(void *arg)
{
	static __thread char *altp;
	char alt[64 * 1024];
	stack_t ss = { .ss_sp = alt, .ss_size = sizeof(alt) };
	struct sigaction sa = { .sa_handler = on_usr1, .sa_flags = SA_ONSTACK };

	altp = alt; /* the array stays in this frame */
	sigemptyset(&sa.sa_mask);
	if (getenv("CM_SIG_RESETHAND"))
		sa.sa_flags |= SA_RESETHAND;
	if (sigaltstack(&ss, NULL) || sigaction(SIGUSR1, &sa, NULL))
		abort();
	__atomic_store_n(&sig_tid, gettid(), __ATOMIC_SEQ_CST);
	for (;;)
		pause();
	return altp ? arg : NULL;
}

static int spin_on, spin_tid, spinner_made;

static void *spin_main(void *arg)
{
	pthread_mutex_lock(&lock);
	for (;;) {
		while (!spin_on)
			pthread_cond_wait(&cond, &lock);
		pthread_mutex_unlock(&lock);
		__atomic_store_n(&spin_tid, gettid(), __ATOMIC_SEQ_CST);
		while (__atomic_load_n(&spin_on, __ATOMIC_SEQ_CST))
			;
		pthread_mutex_lock(&lock);
		__atomic_store_n(&spin_tid, 0, __ATOMIC_SEQ_CST);
		pthread_cond_broadcast(&cond);
	}
	return arg;
}

int main(void)
{
	struct epoll_event ev = { .events = EPOLLIN };
	char line[256];
	long n;
	pthread_t t;

	efd = eventfd(0, EFD_CLOEXEC);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (efd < 0 || epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, efd, &ev) ||
	    pipe(pipefd) || pipe(sigpipe)) {
		perror("cm_sleepers");
		return 1;
	}
	if (pthread_create(&t, NULL, epoll_main, NULL) ||
	    pthread_create(&t, NULL, read_main, NULL) ||
	    pthread_create(&t, NULL, nap_main, NULL) ||
	    pthread_create(&t, NULL, sig_main, NULL)) {
		perror("pthread_create");
		return 1;
	}
	while (!__atomic_load_n(&sig_tid, __ATOMIC_SEQ_CST))
		sched_yield();
	target_reply("ready");

	while (target_next(line, sizeof(line))) {
		if (target_common(line))
			continue;
		if (target_arg(line, "value", &n)) {
			target_reply("%d", cm_sleep_value((int)n));
		} else if (strcmp(line, "status") == 0) {
			pthread_mutex_lock(&lock);
			target_reply("epoll=%d read=%d", epoll_returns,
				     read_returns);
			pthread_mutex_unlock(&lock);
		} else if (target_arg(line, "nap", &n)) {
			pthread_mutex_lock(&lock);
			nap_tid = 0;
			nap_done = 0;
			nap_ms = n;
			pthread_cond_broadcast(&cond);
			pthread_mutex_unlock(&lock);
			while (!__atomic_load_n(&nap_tid, __ATOMIC_SEQ_CST))
				sched_yield();
			target_reply("napping %d", nap_tid);
		} else if (strcmp(line, "sigpark") == 0) {
			syscall(SYS_tgkill, getpid(), sig_tid, SIGUSR1);
			while (!__atomic_load_n(&sig_in_handler,
						__ATOMIC_SEQ_CST))
				sched_yield();
			target_reply("sigparked %d", sig_tid);
		} else if (strcmp(line, "sigrelease") == 0) {
			if (write(sigpipe[1], "x", 1) != 1) {
				target_reply("error write");
				continue;
			}
			while (__atomic_load_n(&sig_in_handler,
					       __ATOMIC_SEQ_CST))
				sched_yield();
			target_reply("sigreleased");
		} else if (strcmp(line, "spin") == 0) {
			if (!spinner_made &&
			    pthread_create(&t, NULL, spin_main, NULL)) {
				target_reply("error pthread_create");
				continue;
			}
			spinner_made = 1;
			pthread_mutex_lock(&lock);
			__atomic_store_n(&spin_on, 1, __ATOMIC_SEQ_CST);
			pthread_cond_broadcast(&cond);
			pthread_mutex_unlock(&lock);
			while (!__atomic_load_n(&spin_tid, __ATOMIC_SEQ_CST))
				sched_yield();
			target_reply("spinning %d", spin_tid);
		} else if (strcmp(line, "unspin") == 0) {
			pthread_mutex_lock(&lock);
			__atomic_store_n(&spin_on, 0, __ATOMIC_SEQ_CST);
			while (__atomic_load_n(&spin_tid, __ATOMIC_SEQ_CST))
				pthread_cond_wait(&cond, &lock);
			pthread_mutex_unlock(&lock);
			target_reply("unspun");
		} else if (strcmp(line, "napres") == 0) {
			pthread_mutex_lock(&lock);
			while (!nap_done)
				pthread_cond_wait(&cond, &lock);
			target_reply("ret=%ld errno=%d elapsed_ns=%lld",
				     nap_ret, nap_errno,
				     (long long)nap_elapsed_ns);
			pthread_mutex_unlock(&lock);
		} else if (strcmp(line, "wake") == 0) {
			uint64_t one = 1;
			int e0, r0;

			pthread_mutex_lock(&lock);
			e0 = epoll_returns;
			r0 = read_returns;
			pthread_mutex_unlock(&lock);
			if (write(efd, &one, sizeof(one)) != sizeof(one) ||
			    write(pipefd[1], "x", 1) != 1) {
				target_reply("error write");
				continue;
			}
			pthread_mutex_lock(&lock);
			while (epoll_returns == e0 || read_returns == r0)
				pthread_cond_wait(&cond, &lock);
			target_reply("epoll=%ld/%d read=%ld/%d", epoll_ret,
				     epoll_errno, read_ret, read_errno);
			pthread_mutex_unlock(&lock);
		} else {
			target_reply("error unknown command '%s'", line);
		}
	}
	return 0;
}
