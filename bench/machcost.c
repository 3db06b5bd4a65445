/*
 * bench/machcost.c - what this machine charges for the kernel's basic
 * services, beside the many-processes benchmark.
 *
 * A live patch of a process that was not running costs mostly what the
 * kernel charges for it: system calls, page faults (a library's pages, a
 * new thread's stack, the copy of a code page written), and the loader's
 * work.  On a virtual machine a page fault can cost ten times a system
 * call, so a figure measured here is read against these, with no relive:
 *
 *     machcost EMPTY.so
 *
 * prints one line
 *
 *     syscall_us S mmap_us M fault_us F dlopen_us D
 *
 * S: a system call that does nothing (getppid); M: mmap and munmap of one
 * anonymous page never touched; F: what writing that page once adds (the
 * page fault, and the munmap of a page that is present); D: the first
 * dlopen() of EMPTY.so (a library with nothing in it) in a process just
 * started (this program run again, "machcost --child EMPTY.so").  Each is
 * the median of rounds (S, M and F: rounds of 200 operations; D: 21
 * processes).  Exit status 1 on a failure.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define OPS 200
#define ROUNDS 21

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp);
	return v[n / 2];
}

/* One round of OPS anonymous pages mapped and unmapped, each written once
 * when touch; microseconds per page, or -1. */
static double map_round(int touch)
{
	double t0 = now_us();

	for (int i = 0; i < OPS; i++) {
		volatile char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
					MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED)
			return -1;
		if (touch)
			p[0] = 1;
		munmap((void *)p, 4096);
	}
	return (now_us() - t0) / OPS;
}

/* The child: the time of its first dlopen, printed in microseconds. */
static int child(const char *lib)
{
	double t0 = now_us();
	void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
	double t = now_us() - t0;

	if (!h) {
		fprintf(stderr, "machcost: %s\n", dlerror());
		return 1;
	}
	printf("%.1f\n", t);
	return 0;
}

/* Runs this program as a child; its first dlopen's time, or -1. */
static double dlopen_round(const char *self, const char *lib)
{
	char buf[64] = "";
	int fd[2], status;
	ssize_t n;
	pid_t pid;

	if (pipe(fd))
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		dup2(fd[1], 1);
		close(fd[0]);
		close(fd[1]);
		execl(self, self, "--child", lib, (char *)NULL);
		_exit(127);
	}
	close(fd[1]);
	n = read(fd[0], buf, sizeof(buf) - 1);
	close(fd[0]);
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
	    WEXITSTATUS(status) || n <= 0)
		return -1;
	return atof(buf);
}

int main(int argc, char **argv)
{
	double sys[ROUNDS], map[ROUNDS], fault[ROUNDS], dl[ROUNDS];

	if (argc == 3 && !strcmp(argv[1], "--child"))
		return child(argv[2]);
	if (argc != 2) {
		fprintf(stderr, "usage: machcost EMPTY.so\n");
		return 1;
	}
	for (int r = 0; r < ROUNDS; r++) {
		double t0 = now_us(), m, f;

		for (int i = 0; i < OPS; i++)
			getppid();
		sys[r] = (now_us() - t0) / OPS;
		/* side by side: untouched, then touched */
		m = map_round(0);
		f = map_round(1);
		if (m < 0 || f < 0) {
			perror("machcost: mmap");
			return 1;
		}
		map[r] = m;
		fault[r] = f - m;
		dl[r] = dlopen_round("/proc/self/exe", argv[1]);
		if (dl[r] < 0) {
			fprintf(stderr, "machcost: the dlopen child failed\n");
			return 1;
		}
	}
	printf("syscall_us %.2f mmap_us %.2f fault_us %.2f dlopen_us %.1f\n",
	       median(sys, ROUNDS), median(map, ROUNDS),
	       median(fault, ROUNDS), median(dl, ROUNDS));
	return 0;
}
