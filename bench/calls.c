/*
 * bench/calls.c - the target of the call-cost benchmarks (steady state and
 * during a transition).
 *
 * Four functions with the same tiny body, x + 1:
 *   bench_u   never patched: the plain call, for reference;
 *   bench_k   patched by calls_k.so (bench_k_v2), whose transition
 *             completes first: a steady-state patched call;
 *   bench_f   patched by calls_fgh.so (bench_f_v2), together with
 *   bench_g, bench_h   which call a callback: a thread inside the old
 *             bench_g or bench_h keeps the transition of calls_fgh.so open.
 * Made by "load" without relive, on pages within reach of the loaded
 * bench_f_v2:
 *   J  one direct jump to it, what relive's direct entry is, on a page
 *      beside the executable's code (as far from bench_f_v2 as bench_f's
 *      entry).  A call through J against a call through a pointer to
 *      bench_f_v2 is the floor of a patched call through a pointer;
 *   D  a copy of bench_loop_f (calls_loop.S) on a page beside the
 *      executable's code, its call leading to bench_f_v2: the direct call
 *      to the new function that variant c, bench_loop_f itself calling
 *      bench_f, becomes once relive made that call direct; the same
 *      instructions, at the same distance from bench_f_v2;
 *   C  the same copy on a page 1 MiB or so from bench_f_v2.  On some
 *      machines a call over a long distance costs more in some processes
 *      than in others (where the loader put things): C shows it beside D.
 * The new versions return x + 2, so each measurement also says which
 * version ran (ret=1 old, ret=2 new).
 *
 * Threads besides main (which reads the commands):
 *   P  on "park", enters the old bench_g and stays there until "release";
 *   U  on "uenter", enters the old bench_h and runs measurements from
 *      inside it (a thread that cannot switch) until "release";
 *   S  waits in pthread_cond_wait (outside any patched function, so relive
 *      switches it) and runs measurements.
 *
 * Commands (one answer line each):
 *   load PATH           dlopen(PATH, RTLD_NOLOAD) the patch the agent
 *                       loaded, and take its exported bench_f_v2 and
 *                       bench_k_v2 as the direct calls F and K
 *   run WHO VARS REPS N WHO main|S|U; VARS letters among u f k F K J
 *                       (called through a function pointer) and c C D
 *                       (loops of their own with a direct call).
 *                       Each of REPS rounds makes N calls of each variant,
 *                       in BLOCKS blocks with
 *                       the variants taking turns (ABBA order), so that a
 *                       slow spell of the machine falls on all of them;
 *                       answers "V=MEDIAN,MIN,MAX,RET ..." in ns per call,
 *                       "RV=T1/T2/..." each variant's per-round times,
 *                       "r=R1/R2/..." the per-round ratios of the first two
 *                       variants, "q=..." those of the next two and
 *                       "p=..." those of the first and the third
 *   park, uenter, release, quit
 */
#include <dlfcn.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#if !defined(__x86_64__)
#error "bench/calls.c writes x86-64 jumps and calls (make_code)"
#endif

#define PATCHABLE __attribute__((noinline, noipa))

volatile long bench_one = 1;

PATCHABLE long bench_u(long x) { return x + bench_one; }
PATCHABLE long bench_k(long x) { return x + bench_one; }
PATCHABLE long bench_f(long x) { return x + bench_one; }

/* The asm after the call keeps the frame: no sibling call. */
PATCHABLE void bench_g(void (*cb)(void))
{
	cb();
	__asm__ volatile("" ::: "memory");
}

PATCHABLE void bench_h(void (*cb)(void))
{
	cb();
	__asm__ volatile("" ::: "memory");
}

typedef long (*fn_t)(long);

static fn_t direct_f, direct_k, jump_f;

/* bench/calls_loop.S */
long bench_loop_f(long n);
extern const unsigned char bench_loop_f_call[], bench_loop_f_end[];
typedef long (*loop_t)(long n);
static loop_t copy_loop, beside_loop;

/*
 * len bytes of code, on a page of their own 1 to 128 MiB below near and
 * within reach of target, with the rel32 at offset rel_at made to lead to
 * target (the end of its instruction is the end of the rel32: a jmp or
 * call rel32).
 */
static void *make_code(void *target, const void *code, size_t len,
		       size_t rel_at, const void *near)
{
	uintptr_t to = (uintptr_t)target;
	uintptr_t page = (uintptr_t)near & ~(uintptr_t)4095;

	if (len > 4096)
		return NULL;
	for (uintptr_t d = (uintptr_t)1 << 20; d < ((uintptr_t)1 << 27);
	     d += (uintptr_t)1 << 20) {
		unsigned char *p;
		int64_t rel = (int64_t)(to - (page - d + rel_at + 4));

		if (rel != (int32_t)rel)
			continue;
		p = mmap((void *)(page - d), 4096, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
			 -1, 0);
		if (p == MAP_FAILED)
			continue;
		if (p != (void *)(page - d)) {
			munmap(p, 4096);
			continue;
		}
		memcpy(p, code, len);
		memcpy(p + rel_at, &(int32_t){ (int32_t)rel }, 4);
		if (mprotect(p, 4096, PROT_READ | PROT_EXEC)) {
			munmap(p, 4096);
			return NULL;
		}
		return p;
	}
	return NULL;
}

/* J: one direct jump to target, what relive's direct entry is, below
 * bench_f. */
static fn_t make_jump(fn_t target)
{
	static const unsigned char jmp[5] = { 0xe9 };

	return (fn_t)make_code((void *)target, jmp, sizeof(jmp), 1,
			       (void *)bench_f);
}

/* C and D: bench_loop_f, its call leading to target instead of bench_f,
 * on a page below near. */
static loop_t make_loop(fn_t target, const void *near)
{
	const unsigned char *code = (const unsigned char *)(void *)bench_loop_f;

	return (loop_t)make_code((void *)target, code,
				 (size_t)(bench_loop_f_end - code),
				 (size_t)(bench_loop_f_call - code) + 1, near);
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;

/* One job slot per worker thread. */
struct job {
	bool pending, done;
	char vars[16];
	int reps;
	long n;
	char answer[8192];
};

static struct job job_s, job_u;
static bool park_req, parked, uenter_req, uentered, release_req;
static int inside; /* threads inside bench_g / bench_h */

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static fn_t variant(char v)
{
	switch (v) {
	case 'u': return bench_u;
	case 'k': return bench_k;
	case 'f': return bench_f;
	case 'F': return direct_f;
	case 'K': return direct_k;
	case 'J': return jump_f;
	}
	return NULL;
}

/* The loop of a variant that is a loop of its own (c, C), or NULL. */
static loop_t own_loop(char v)
{
	switch (v) {
	case 'c': return bench_loop_f;
	case 'C': return copy_loop;
	case 'D': return beside_loop;
	}
	return NULL;
}

/* N calls through fp: the same indirect call whatever fp points to. */
__attribute__((noinline)) static long loop(fn_t volatile *fpp, long n)
{
	fn_t fp = *fpp;
	long acc = 0;

	for (long i = 0; i < n; i++)
		acc += fp(i);
	return acc;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* " KEY=" then the per-round ratios of variants a and b. */
static size_t put_ratios(struct job *j, size_t off, char key, int reps,
			 double t[][64], int a, int b)
{
	off += (size_t)snprintf(j->answer + off, sizeof(j->answer) - off,
				" %c=", key);
	for (int k = 0; k < reps; k++)
		off += (size_t)snprintf(j->answer + off, sizeof(j->answer) - off,
					"%s%.4f", k ? "/" : "",
					t[a][k] / t[b][k]);
	return off;
}

enum { BLOCKS = 30 };

static void run_job(struct job *j)
{
	int nv = (int)strlen(j->vars), reps = j->reps;
	double t[16][64], s[16][64];
	long per = j->n / BLOCKS;
	long ret[16];
	size_t off = 0;

	if (reps > 64)
		reps = 64;
	for (int v = 0; v < nv; v++) {
		fn_t volatile fp = variant(j->vars[v]);
		loop_t own = own_loop(j->vars[v]);

		if (own) {
			ret[v] = own(1); /* bench_f(0): which version ran */
			own(j->n / 10);  /* warm up */
			continue;
		}
		if (!fp) {
			snprintf(j->answer, sizeof(j->answer),
				 "error no variant %c", j->vars[v]);
			return;
		}
		ret[v] = fp(0);
		loop(&fp, j->n / 10); /* warm up */
	}
	if (per < 1)
		per = 1;
	for (int k = 0; k < reps; k++) {
		for (int v = 0; v < nv; v++)
			t[v][k] = 0;
		for (int b = 0; b < BLOCKS; b++)
			for (int i = 0; i < nv; i++) {
				int v = b % 2 ? nv - 1 - i : i;
				fn_t volatile fp = variant(j->vars[v]);
				loop_t own = own_loop(j->vars[v]);
				double t0 = now();

				if (own)
					own(per);
				else
					loop(&fp, per);
				t[v][k] += now() - t0;
			}
		for (int v = 0; v < nv; v++)
			t[v][k] *= 1e9 / (double)(per * BLOCKS);
	}
	memcpy(s, t, sizeof(s)); /* per round, before the sort */
	for (int v = 0; v < nv; v++) {
		qsort(t[v], (size_t)reps, sizeof(double), cmp_double);
		off += (size_t)snprintf(j->answer + off, sizeof(j->answer) - off,
					"%s%c=%.4f,%.4f,%.4f,%ld", v ? " " : "",
					j->vars[v], t[v][reps / 2], t[v][0],
					t[v][reps - 1], ret[v]);
	}
	/* every variant's per-round times: "R<variant>=T1/T2/..." */
	for (int v = 0; v < nv; v++) {
		off += (size_t)snprintf(j->answer + off, sizeof(j->answer) - off,
					" R%c=", j->vars[v]);
		for (int k = 0; k < reps; k++)
			off += (size_t)snprintf(j->answer + off,
						sizeof(j->answer) - off,
						"%s%.4f", k ? "/" : "", s[v][k]);
	}
	if (nv >= 2)
		off = put_ratios(j, off, 'r', reps, s, 0, 1);
	if (nv >= 4) {
		off = put_ratios(j, off, 'q', reps, s, 2, 3);
		off = put_ratios(j, off, 'p', reps, s, 0, 2);
	}
}

/* Runs the jobs given to this thread until *stop (lock held). */
static void serve_jobs(struct job *j, bool *stop)
{
	while (!*stop) {
		if (j->pending) {
			j->pending = false;
			pthread_mutex_unlock(&lock);
			run_job(j);
			pthread_mutex_lock(&lock);
			j->done = true;
			pthread_cond_broadcast(&cond);
			continue;
		}
		pthread_cond_wait(&cond, &lock);
	}
}

static void *s_main(void *arg)
{
	static bool never;

	pthread_mutex_lock(&lock);
	serve_jobs(&job_s, &never);
	pthread_mutex_unlock(&lock);
	return arg;
}

static void park_cb(void)
{
	pthread_mutex_lock(&lock);
	parked = true;
	inside++;
	pthread_cond_broadcast(&cond);
	while (!release_req)
		pthread_cond_wait(&cond, &lock);
	inside--;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
}

static void *p_main(void *arg)
{
	for (;;) {
		pthread_mutex_lock(&lock);
		while (!park_req)
			pthread_cond_wait(&cond, &lock);
		park_req = false;
		pthread_mutex_unlock(&lock);
		bench_g(park_cb);
	}
	return arg;
}

static void u_cb(void)
{
	pthread_mutex_lock(&lock);
	uentered = true;
	inside++;
	pthread_cond_broadcast(&cond);
	serve_jobs(&job_u, &release_req);
	inside--;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
}

static void *u_main(void *arg)
{
	for (;;) {
		pthread_mutex_lock(&lock);
		while (!uenter_req)
			pthread_cond_wait(&cond, &lock);
		uenter_req = false;
		pthread_mutex_unlock(&lock);
		bench_h(u_cb);
	}
	return arg;
}

static void give(struct job *j, const char *vars, int reps, long n)
{
	pthread_mutex_lock(&lock);
	snprintf(j->vars, sizeof(j->vars), "%s", vars);
	j->reps = reps;
	j->n = n;
	j->done = false;
	j->pending = true;
	pthread_cond_broadcast(&cond);
	while (!j->done)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);
	printf("%s\n", j->answer);
}

int main(void)
{
	char line[4096], who[16], vars[16];
	pthread_t t;
	int reps;
	long n;

	setvbuf(stdout, NULL, _IOLBF, 0);
	pthread_create(&t, NULL, s_main, NULL);
	pthread_create(&t, NULL, p_main, NULL);
	pthread_create(&t, NULL, u_main, NULL);
	printf("ready %d\n", (int)getpid());
	while (fgets(line, sizeof(line), stdin)) {
		line[strcspn(line, "\n")] = '\0';
		if (!strncmp(line, "load ", 5)) {
			void *h = dlopen(line + 5, RTLD_NOW | RTLD_NOLOAD);
			fn_t f = h ? (fn_t)dlsym(h, "bench_f_v2") : NULL;
			fn_t k = h ? (fn_t)dlsym(h, "bench_k_v2") : NULL;

			if (f) {
				direct_f = f;
				jump_f = make_jump(f);
				copy_loop = make_loop(f, (void *)f);
				beside_loop = make_loop(
					f, (void *)bench_loop_f);
			}
			if (k)
				direct_k = k;
			printf(h && (f || k) ? "ok\n" : "error %s\n",
			       dlerror());
		} else if (sscanf(line, "run %15s %15s %d %ld", who, vars,
				  &reps, &n) == 4) {
			if (!strcmp(who, "main")) {
				struct job j = { .reps = reps, .n = n };

				snprintf(j.vars, sizeof(j.vars), "%s", vars);
				run_job(&j);
				printf("%s\n", j.answer);
			} else if (!strcmp(who, "S")) {
				give(&job_s, vars, reps, n);
			} else if (!strcmp(who, "U") && uentered) {
				give(&job_u, vars, reps, n);
			} else {
				printf("error no such thread\n");
			}
		} else if (!strcmp(line, "park") || !strcmp(line, "uenter")) {
			bool *req = line[0] == 'p' ? &park_req : &uenter_req;
			bool *ok = line[0] == 'p' ? &parked : &uentered;

			pthread_mutex_lock(&lock);
			*ok = false;
			release_req = false;
			*req = true;
			pthread_cond_broadcast(&cond);
			while (!*ok)
				pthread_cond_wait(&cond, &lock);
			pthread_mutex_unlock(&lock);
			printf("ok\n");
		} else if (!strcmp(line, "release")) {
			pthread_mutex_lock(&lock);
			release_req = true;
			pthread_cond_broadcast(&cond);
			while (inside)
				pthread_cond_wait(&cond, &lock);
			parked = uentered = false;
			pthread_mutex_unlock(&lock);
			printf("ok\n");
		} else if (!strcmp(line, "quit")) {
			break;
		} else {
			printf("error unknown command\n");
		}
	}
	return 0;
}
