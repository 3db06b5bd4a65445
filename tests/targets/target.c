/*
 * tests/targets/target.c - the line protocol of the test targets; see
 * target.h.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* dladdr, RTLD_DEFAULT */
#endif
#include "target.h"

#include <dirent.h>
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <ucontext.h>

static pthread_mutex_t reply_lock = PTHREAD_MUTEX_INITIALIZER;

void target_reply(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&reply_lock);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	pthread_mutex_unlock(&reply_lock);
}

bool target_next(char *line, size_t size)
{
	size_t len;

	if (!fgets(line, (int)size, stdin))
		return false;
	len = strlen(line);
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		line[--len] = '\0';
	return true;
}

bool target_arg(const char *line, const char *cmd, long *arg)
{
	size_t n = strlen(cmd);
	char *end;

	if (strncmp(line, cmd, n) != 0 || line[n] != ' ')
		return false;
	*arg = strtol(line + n + 1, &end, 0);
	return end != line + n + 1 && *end == '\0';
}

static int count_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* sigblock: each thread, in a handler of SIGPWR, makes the mask its
 * return restores the full one. */
static volatile int blocked_threads;

static void on_block(int sig, siginfo_t *si, void *ctx)
{
	ucontext_t *uc = ctx;

	(void)sig;
	(void)si;
	sigfillset(&uc->uc_sigmask);
	__atomic_add_fetch(&blocked_threads, 1, __ATOMIC_RELEASE);
}

static int block_everywhere(void)
{
	struct sigaction sa = { .sa_sigaction = on_block,
				.sa_flags = SA_SIGINFO | SA_RESTART };
	struct dirent *d;
	int n = 0;
	DIR *dir;

	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGPWR, &sa, NULL) || !(dir = opendir("/proc/self/task")))
		return -1;
	blocked_threads = 0;
	while ((d = readdir(dir)))
		if (d->d_name[0] != '.' &&
		    !syscall(SYS_tgkill, getpid(), atoi(d->d_name), SIGPWR))
			n++;
	closedir(dir);
	while (__atomic_load_n(&blocked_threads, __ATOMIC_ACQUIRE) < n)
		usleep(1000);
	return n;
}

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

/* SIGALRM every us microseconds, handled (SA_RESTART) by whichever thread
 * the kernel picks. */
static bool start_alarms(long us)
{
	struct sigaction sa = { .sa_handler = on_alarm, .sa_flags = SA_RESTART };
	struct itimerval it = {
		.it_interval = { .tv_sec = us / 1000000, .tv_usec = us % 1000000 },
		.it_value = { .tv_sec = us / 1000000, .tv_usec = us % 1000000 },
	};

	sigemptyset(&sa.sa_mask);
	return us > 0 && !sigaction(SIGALRM, &sa, NULL) &&
	       !setitimer(ITIMER_REAL, &it, NULL);
}

bool target_common(const char *line)
{
	if (strcmp(line, "pid") == 0) {
		target_reply("%d", (int)getpid());
	} else if (strcmp(line, "threads") == 0) {
		target_reply("%d", count_threads());
	} else if (strncmp(line, "sym ", 4) == 0) {
		const char *name = line + 4;
		void *addr = dlsym(RTLD_DEFAULT, name);
		Dl_info info;
		const char *file;

		if (!addr) {
			target_reply("sym %s none", name);
			return true;
		}
		if (!dladdr(addr, &info) || !info.dli_fname || !*info.dli_fname)
			file = "main";
		else
			file = strrchr(info.dli_fname, '/') ?
				strrchr(info.dli_fname, '/') + 1 : info.dli_fname;
		target_reply("sym %s %s", name, file);
	} else if (strncmp(line, "alarms ", 7) == 0) {
		target_reply(start_alarms(atol(line + 7)) ? "alarms on" :
							    "alarms failed");
	} else if (strcmp(line, "alarmed") == 0) {
		target_reply("%ld", (long)alarms);
	} else if (strcmp(line, "fork") == 0) {
		/* A child that keeps the parent's memory (and agent) and
		 * only waits to be killed. */
		pid_t child = fork();

		if (child == 0)
			for (;;)
				pause();
		target_reply("%d", (int)child);
	} else if (strncmp(line, "closefd ", 8) == 0) {
		int fd = atoi(line + 8);

		target_reply(close(fd) == 0 ? "closed %d" : "not closed %d", fd);
	} else if (strcmp(line, "sigblock") == 0) {
		target_reply("blocked %d", block_everywhere());
	} else if (strcmp(line, "quit") == 0) {
		target_reply("bye");
		exit(0);
	} else {
		return false;
	}
	return true;
}

static pthread_mutex_t idle_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t idle_cond = PTHREAD_COND_INITIALIZER;

static void *idle_main(void *arg)
{
	pthread_mutex_lock(&idle_lock);
	for (;;)
		pthread_cond_wait(&idle_cond, &idle_lock);
	return arg;
}

void target_idle_threads(int n)
{
	pthread_t t;

	for (int i = 0; i < n; i++) {
		if (pthread_create(&t, NULL, idle_main, NULL) != 0) {
			perror("pthread_create");
			exit(1);
		}
		pthread_detach(t);
	}
}
