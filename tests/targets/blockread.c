/*
 * tests/targets/blockread.c - every thread asleep in a system call, the
 * state in which relive usually finds a server.  The main thread sits in a
 * bare read(2) of stdin (no stdio buffering); the others in epoll_wait,
 * poll, nanosleep, sigtimedwait and a pipe read that nothing will ever
 * satisfy.  Stopping a thread to inject or patch must be invisible: the
 * main thread's read returns the line written, with errno 0, and no other
 * thread's call ever returns (each return is counted).
 *
 * Protocol: one read(2) per command line; the answer is
 *     "read=R errno=E ANSWER"
 * where R and E are what read(2) returned and errno right after it, and
 * ANSWER is:
 *     call N  -> blockread_value(N)       original N + 1, fix_blockread N + 100
 *     status  -> "epoll=A poll=B nanosleep=C sigtimedwait=D pipe=E" counts of
 *                returns of the sleeping calls (all 0 when nothing
 *                disturbed them), then " last=NAME:RET:ERRNO" if any
 *     pid, quit (as in target.h)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pipe2 */
#endif
#include "target.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

volatile int blockread_one = 1;

/* Original behaviour: x + 1.  Patch fix_blockread: x + 100. */
PATCHABLE int blockread_value(int x)
{
	return x + blockread_one;
}

/* The main thread's read, kept in its own frame so a test can see it on
 * the main thread's stack. */
PATCHABLE ssize_t wait_command(char *buf, size_t size)
{
	return read(0, buf, size);
}

enum { EPOLL, POLL, NANOSLEEP, SIGTIMEDWAIT, PIPE, NSLEEPERS };
static const char *const sleeper_name[NSLEEPERS] = {
	"epoll", "poll", "nanosleep", "sigtimedwait", "pipe",
};
static unsigned long returns[NSLEEPERS];
static pthread_mutex_t returns_lock = PTHREAD_MUTEX_INITIALIZER;
static char last[128];
static int quiet_fd = -1;  /* read end of a pipe no one writes */

static void returned(int which, long ret, int err)
{
	pthread_mutex_lock(&returns_lock);
	returns[which]++;
	snprintf(last, sizeof(last), "%s:%ld:%d", sleeper_name[which], ret,
		 err);
	pthread_mutex_unlock(&returns_lock);
}

static void *sleeper_main(void *arg)
{
	int which = (int)(long)arg;
	int epfd = -1, efd = -1;
	struct epoll_event ev = { .events = EPOLLIN };
	sigset_t usr1;

	if (which == EPOLL) {
		epfd = epoll_create1(EPOLL_CLOEXEC);
		efd = eventfd(0, EFD_CLOEXEC);
		if (epfd < 0 || efd < 0 ||
		    epoll_ctl(epfd, EPOLL_CTL_ADD, efd, &ev) < 0) {
			perror("epoll");
			exit(1);
		}
	}
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);

	for (;;) {
		long ret = 0;

		switch (which) {
		case EPOLL:
			ret = epoll_wait(epfd, &ev, 1, -1);
			break;
		case POLL: {
			struct pollfd p = { .fd = quiet_fd, .events = POLLIN };

			ret = poll(&p, 1, -1);
			break;
		}
		case NANOSLEEP: {
			struct timespec ts = { .tv_sec = 24 * 3600 };

			ret = nanosleep(&ts, NULL);
			break;
		}
		case SIGTIMEDWAIT: {
			struct timespec ts = { .tv_sec = 24 * 3600 };

			ret = sigtimedwait(&usr1, NULL, &ts);
			break;
		}
		case PIPE: {
			char c;

			ret = read(quiet_fd, &c, 1);
			break;
		}
		}
		returned(which, ret, ret < 0 ? errno : 0);
	}
	return NULL;
}

static void status(char *out, size_t size)
{
	size_t len = 0;

	pthread_mutex_lock(&returns_lock);
	for (int i = 0; i < NSLEEPERS; i++)
		len += (size_t)snprintf(out + len, size - len, "%s%s=%lu",
					i ? " " : "", sleeper_name[i],
					returns[i]);
	if (last[0])
		snprintf(out + len, size - len, " last=%s", last);
	pthread_mutex_unlock(&returns_lock);
}

int main(void)
{
	char buf[256], answer[512];
	int fds[2];
	sigset_t usr1;

	/* SIGUSR1 is blocked everywhere, so only sigtimedwait takes it. */
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1, NULL);
	if (pipe2(fds, O_CLOEXEC) < 0) {
		perror("pipe2");
		return 1;
	}
	quiet_fd = fds[0];
	for (long i = 0; i < NSLEEPERS; i++) {
		pthread_t t;

		if (pthread_create(&t, NULL, sleeper_main, (void *)i) != 0) {
			perror("pthread_create");
			return 1;
		}
		pthread_detach(t);
	}
	target_reply("ready");

	for (;;) {
		ssize_t r;
		int err;
		long n;

		errno = 0;
		r = wait_command(buf, sizeof(buf) - 1);
		err = errno;
		if (r == 0)
			return 0;
		if (r < 0) {
			/* Report the failed read and keep going: the test
			 * sees EINTR instead of a silent retry. */
			target_reply("read=%zd errno=%d", r, err);
			continue;
		}
		buf[r] = '\0';
		buf[strcspn(buf, "\r\n")] = '\0';

		if (target_arg(buf, "call", &n)) {
			snprintf(answer, sizeof(answer), "%d",
				 blockread_value((int)n));
		} else if (strcmp(buf, "status") == 0) {
			status(answer, sizeof(answer));
		} else if (strcmp(buf, "pid") == 0) {
			snprintf(answer, sizeof(answer), "%d", (int)getpid());
		} else if (strcmp(buf, "quit") == 0) {
			target_reply("read=%zd errno=%d bye", r, err);
			return 0;
		} else {
			snprintf(answer, sizeof(answer),
				 "error unknown command '%s'", buf);
		}
		target_reply("read=%zd errno=%d %s", r, err, answer);
	}
}
