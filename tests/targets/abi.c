/*
 * tests/targets/abi.c - functions that use every part of the x86-64 calling
 * convention a redirection must preserve: stack-passed integer and floating
 * arguments, struct returns in memory and in registers, a variadic call
 * (%al), recursion and mutual recursion, an endbr64 prologue (abi_cet.c),
 * and hand-placed prologues (abi_asm.S).  See abi.h for each function's
 * original and patched behaviour.
 *
 * Commands (besides those of target.h); X is an integer:
 *     ints X       -> many_ints(X, X+1, ..., X+9)
 *     doubles X    -> many_doubles(X+0.5, X+1.5, ..., X+9.5, X)  "%.3f"
 *     triple X     -> make_triple(X)  "A B C"
 *     pair X       -> make_pair(X)    "N D" with D "%.3f"
 *     variadic X   -> var_sum(6, (long)X, X+0.5, (long)X+1, X+1.5, (long)X+2,
 *                     X+2.5)  "%.3f"
 *     rec X        -> rec_sum(X)
 *     mutual X     -> ping(X)
 *     cet X        -> cet_value(X)
 *     pagecross X  -> page_cross(X)
 *     tiny X       -> "tiny_value(X) after_tiny(X)"
 *     backjump X   -> backjump_sum(X)
 *     landing X    -> "far_landing(X) near_landing(X)"
 *     addr NAME    -> NAME's address in hex, for NAME in the list below
 *     peek NAME    -> NAME's first 16 bytes in hex
 *     recwait X    -> a worker thread starts rec_sum(X) and blocks at the
 *                     bottom of the recursion; answers "waiting" once it is
 *                     there
 *     recgo        -> releases it; answers with the result of that call
 */
#include "abi.h"
#include "target.h"

#include <pthread.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

volatile long abi_zero;

PATCHABLE long many_ints(int a, int b, int c, int d, int e, int f, int g,
			 int h, int i, int j)
{
	return abi_zero + a + b + c + d + e + f + g + h + i + j;
}

PATCHABLE double many_doubles(double a, double b, double c, double d,
			      double e, double f, double g, double h, double i,
			      double j, int k)
{
	return (double)abi_zero + a + b + c + d + e + f + g + h + i + j + k;
}

PATCHABLE struct triple make_triple(long x)
{
	struct triple t = { x + abi_zero, x + 1, x + 2 };

	return t;
}

PATCHABLE struct pair make_pair(long x)
{
	struct pair p = { x + abi_zero, (double)x / 2.0 };

	return p;
}

PATCHABLE double var_sum(int n, ...)
{
	double sum = (double)abi_zero;
	va_list ap;

	va_start(ap, n);
	for (int i = 0; i < n; i++)
		sum += i % 2 == 0 ? (double)va_arg(ap, long) :
				    va_arg(ap, double);
	va_end(ap);
	return sum;
}

/* Set by recwait: the call at depth 0 waits on rec_go once. */
static sem_t rec_there, rec_go;
static volatile int rec_block;

static void rec_bottom(void)
{
	if (rec_block) {
		rec_block = 0;
		sem_post(&rec_there);
		while (sem_wait(&rec_go) != 0)
			;
	}
}

/* The volatile local keeps the recursive call a real call (no loop, no
 * tail call), so n frames of rec_sum are on the stack at the bottom. */
PATCHABLE long rec_sum(long n)
{
	volatile long below;

	if (n <= 0) {
		rec_bottom();
		return abi_zero;
	}
	below = rec_sum(n - 1);
	return n + below;
}

PATCHABLE long ping(long n)
{
	volatile long r;

	if (n <= 0)
		return abi_zero;
	r = pong(n - 1);
	return 1 + r;
}

PATCHABLE long pong(long n)
{
	volatile long r;

	if (n <= 0)
		return abi_zero;
	r = ping(n - 1);
	return 2 + r;
}

static long rec_arg, rec_result;

static void *rec_main(void *arg)
{
	rec_result = rec_sum(rec_arg);
	return arg;
}

static const struct {
	const char *name;
	const void *addr;
} funcs[] = {
	{ "many_ints", (const void *)many_ints },
	{ "many_doubles", (const void *)many_doubles },
	{ "make_triple", (const void *)make_triple },
	{ "make_pair", (const void *)make_pair },
	{ "var_sum", (const void *)var_sum },
	{ "rec_sum", (const void *)rec_sum },
	{ "ping", (const void *)ping },
	{ "pong", (const void *)pong },
	{ "cet_value", (const void *)cet_value },
	{ "page_cross", (const void *)page_cross },
	{ "tiny_value", (const void *)tiny_value },
	{ "after_tiny", (const void *)after_tiny },
	{ "backjump_sum", (const void *)backjump_sum },
	{ "far_landing", (const void *)far_landing },
	{ "near_landing", (const void *)near_landing },
};

static const void *func_addr(const char *name)
{
	for (size_t i = 0; i < sizeof(funcs) / sizeof(funcs[0]); i++)
		if (strcmp(funcs[i].name, name) == 0)
			return funcs[i].addr;
	return NULL;
}

int main(void)
{
	char line[512];
	pthread_t rec_thread;
	bool rec_running = false;
	long x;

	sem_init(&rec_there, 0, 0);
	sem_init(&rec_go, 0, 0);
	target_idle_threads(1);
	target_reply("ready");

	while (target_next(line, sizeof(line))) {
		if (target_common(line))
			continue;
		if (target_arg(line, "ints", &x)) {
			int v = (int)x;

			target_reply("%ld", many_ints(v, v + 1, v + 2, v + 3, v + 4,
						      v + 5, v + 6, v + 7, v + 8,
						      v + 9));
		} else if (target_arg(line, "doubles", &x)) {
			double v = (double)x;

			target_reply("%.3f",
				     many_doubles(v + 0.5, v + 1.5, v + 2.5,
						  v + 3.5, v + 4.5, v + 5.5,
						  v + 6.5, v + 7.5, v + 8.5,
						  v + 9.5, (int)x));
		} else if (target_arg(line, "triple", &x)) {
			struct triple t = make_triple(x);

			target_reply("%ld %ld %ld", t.a, t.b, t.c);
		} else if (target_arg(line, "pair", &x)) {
			struct pair p = make_pair(x);

			target_reply("%ld %.3f", p.n, p.d);
		} else if (target_arg(line, "variadic", &x)) {
			double v = (double)x;

			target_reply("%.3f", var_sum(6, x, v + 0.5, x + 1,
						     v + 1.5, x + 2, v + 2.5));
		} else if (target_arg(line, "rec", &x)) {
			target_reply("%ld", rec_sum(x));
		} else if (target_arg(line, "mutual", &x)) {
			target_reply("%ld", ping(x));
		} else if (target_arg(line, "cet", &x)) {
			target_reply("%d", cet_value((int)x));
		} else if (target_arg(line, "pagecross", &x)) {
			target_reply("%d", page_cross((int)x));
		} else if (target_arg(line, "tiny", &x)) {
			target_reply("%d %d", tiny_value((int)x),
				     after_tiny((int)x));
		} else if (target_arg(line, "backjump", &x)) {
			target_reply("%d", backjump_sum((int)x));
		} else if (target_arg(line, "landing", &x)) {
			target_reply("%d %d", far_landing((int)x),
				     near_landing((int)x));
		} else if (strncmp(line, "addr ", 5) == 0) {
			const void *a = func_addr(line + 5);

			if (a)
				target_reply("%#lx", (unsigned long)(uintptr_t)a);
			else
				target_reply("error no function '%s'", line + 5);
		} else if (strncmp(line, "peek ", 5) == 0) {
			const unsigned char *a = func_addr(line + 5);
			char hex[40];

			if (!a) {
				target_reply("error no function '%s'", line + 5);
				continue;
			}
			for (int i = 0; i < 16; i++)
				snprintf(hex + 2 * i, 3, "%02x", a[i]);
			target_reply("%s", hex);
		} else if (target_arg(line, "recwait", &x)) {
			if (rec_running) {
				target_reply("error recwait already running");
				continue;
			}
			rec_arg = x;
			rec_block = 1;
			if (pthread_create(&rec_thread, NULL, rec_main, NULL)) {
				target_reply("error pthread_create");
				continue;
			}
			rec_running = true;
			while (sem_wait(&rec_there) != 0)
				;
			target_reply("waiting");
		} else if (strcmp(line, "recgo") == 0) {
			if (!rec_running) {
				target_reply("error no recwait running");
				continue;
			}
			sem_post(&rec_go);
			pthread_join(rec_thread, NULL);
			rec_running = false;
			target_reply("%ld", rec_result);
		} else {
			target_reply("error unknown command '%s'", line);
		}
	}
	return 0;
}
