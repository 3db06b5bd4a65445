/*
 * tests/unit/test_stub.c - the dispatcher (agent/arch/x86_64/stub.c).
 *
 * The stub is emitted into a page of this program, with its data on the
 * next page and the state word of the calling thread in this program's
 * own TLS, then called: it must reach the "before" version unless the
 * thread's state word equals "switched", and leave every register a
 * called function may receive (the six argument registers, %rax for a
 * variadic call, %r10 for a static chain) and the stack as the caller
 * set them.  The scenario tests see the same through whole patches; this
 * test pins the contract of the few bytes on their own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <asm/prctl.h>

#include <cmocka.h>

#include "agent.h"

static __thread uint32_t state_word;

typedef long (*six_fn)(long, long, long, long, long, long);

static long before_v(long a, long b, long c, long d, long e, long f)
{
	return 1000000 + a + 2 * b + 3 * c + 4 * d + 5 * e + 6 * f;
}

static long after_v(long a, long b, long c, long d, long e, long f)
{
	return 2000000 + a + 2 * b + 3 * c + 4 * d + 5 * e + 6 * f;
}

/* Versions that give back what the caller put in %rax and %r10, and the
 * stack pointer they see (which must be the caller's, minus the return
 * address). */
extern long echo_before(void), echo_after(void);
__asm__(".text\n"
	"echo_before:\n"
	"\tmovq %rax, %rdx\n"        /* caller's %rax */
	"\tmovq %r10, %rcx\n"        /* caller's %r10 */
	"\tmovq %rsp, %rsi\n"
	"\tmovq $1, %rax\n"
	"\tret\n"
	"echo_after:\n"
	"\tmovq %rax, %rdx\n"
	"\tmovq %r10, %rcx\n"
	"\tmovq %rsp, %rsi\n"
	"\tmovq $2, %rax\n"
	"\tret\n");

struct page {
	uint8_t *code;
	struct relive_stub_data *data;
};

static struct page page;

static int setup(void **state)
{
	uint64_t fs = 0;
	uint8_t buf[RELIVE_STUB_SIZE];
	void *p = mmap(NULL, 8192, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	(void)state;
	if (p == MAP_FAILED ||
	    syscall(SYS_arch_prctl, ARCH_GET_FS, &fs))
		return -1;
	page.code = p;
	page.data = (struct relive_stub_data *)((uint8_t *)p + 4096);
	memset(buf, 0xcc, sizeof(buf));
	arch_emit_stub(buf, (uintptr_t)page.code, page.data,
		       (int64_t)((uintptr_t)&state_word - fs));
	memcpy(page.code, buf, sizeof(buf));
	return mprotect(p, 4096, PROT_READ | PROT_EXEC);
}

static int teardown(void **state)
{
	(void)state;
	munmap(page.code, 8192);
	return 0;
}

static long call_six(void)
{
	return ((six_fn)(void *)page.code)(1, 10, 100, 1000, 10000, 100000);
}

static const long six_sum = 1 + 20 + 300 + 4000 + 50000 + 600000;

static void test_picks_by_state_word(void **state)
{
	(void)state;
	page.data->before = (uintptr_t)before_v;
	page.data->after = (uintptr_t)after_v;

	/* Steady state: no thread has the value "switched" holds. */
	page.data->switched = RELIVE_STATE_NEVER;
	state_word = 0;
	assert_int_equal(call_six(), 1000000 + six_sum);
	state_word = 7;
	assert_int_equal(call_six(), 1000000 + six_sum);

	/* In transition to generation 7: a thread with 7 is switched. */
	page.data->switched = 7;
	assert_int_equal(call_six(), 2000000 + six_sum);
	state_word = 6;
	assert_int_equal(call_six(), 1000000 + six_sum);
	state_word = 0;
	assert_int_equal(call_six(), 1000000 + six_sum);
	/* Only the low 32 bits are the state word. */
	state_word = 0x107;
	assert_int_equal(call_six(), 1000000 + six_sum);

	/* The targets are read at each call. */
	state_word = 7;
	page.data->after = (uintptr_t)before_v;
	assert_int_equal(call_six(), 1000000 + six_sum);
}

/* Calls the stub with %rax and %r10 set; returns the version's answer and
 * what it saw. */
static long call_echo(uint64_t rax, uint64_t r10, uint64_t *seen_rax,
		      uint64_t *seen_r10, uint64_t *sp_delta)
{
	register uint64_t r10v __asm__("r10") = r10;
	uint64_t ret, d, c, s, sp;

	/* Below the red zone this function may use, then the call. */
	__asm__ volatile("subq $128, %%rsp\n\t"
			 "movq %%rsp, %[sp]\n\t"
			 "call *%[stub]\n\t"
			 "addq $128, %%rsp"
			 : "=a"(ret), "=d"(d), "=c"(c), "=S"(s), [sp] "=&r"(sp),
			   "+r"(r10v)
			 : [stub] "r"(page.code), "a"(rax)
			 : "rdi", "r8", "r9", "r11", "memory", "cc");
	*seen_rax = d;
	*seen_r10 = c;
	*sp_delta = sp - s;
	return (long)ret;
}

static void test_leaves_rax_r10_and_stack(void **state)
{
	uint64_t rax, r10, delta;

	(void)state;
	page.data->before = (uintptr_t)echo_before;
	page.data->after = (uintptr_t)echo_after;
	page.data->switched = 3;
	for (uint32_t w = 2; w <= 3; w++) {
		state_word = w;
		assert_int_equal(call_echo(0x1122334455667788ull,
					   0x99aabbccddeeff00ull, &rax, &r10,
					   &delta),
				 w == 3 ? 2 : 1);
		assert_true(rax == 0x1122334455667788ull);
		assert_true(r10 == 0x99aabbccddeeff00ull);
		/* Only the return address is on the stack: no push, no
		 * red-zone use visible to the version. */
		assert_int_equal(delta, 8);
	}
}

/* A word with its top bit set is a switch the agent began and has not
 * confirmed (agent/sleepers.c): the thread stays in its world ("before",
 * since such a word is never the generation) and takes the word back to 0,
 * so that the agent's confirmation fails. */
static void test_tentative_word_taken_back(void **state)
{
	uint64_t rax, r10, delta;

	(void)state;
	page.data->before = (uintptr_t)before_v;
	page.data->after = (uintptr_t)after_v;
	page.data->switched = 7;
	state_word = 7u | 0x80000000u;
	assert_int_equal(call_six(), 1000000 + six_sum);
	assert_int_equal(state_word, 0);
	/* Any top-bit value, in steady state too. */
	page.data->switched = RELIVE_STATE_NEVER;
	state_word = 0x80000000u;
	assert_int_equal(call_six(), 1000000 + six_sum);
	assert_int_equal(state_word, 0);
	/* The word the agent confirmed (the generation) is left alone. */
	page.data->switched = 7;
	state_word = 7;
	assert_int_equal(call_six(), 2000000 + six_sum);
	assert_int_equal(state_word, 7);

	/* The path that saves %rax gives the version the caller's %rax,
	 * %r10 and stack. */
	page.data->before = (uintptr_t)echo_before;
	page.data->after = (uintptr_t)echo_after;
	state_word = 7u | 0x80000000u;
	assert_int_equal(call_echo(0x1122334455667788ull,
				   0x99aabbccddeeff00ull, &rax, &r10, &delta),
			 1);
	assert_true(rax == 0x1122334455667788ull);
	assert_true(r10 == 0x99aabbccddeeff00ull);
	assert_int_equal(delta, 8);
	assert_int_equal(state_word, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_picks_by_state_word),
		cmocka_unit_test(test_leaves_rax_r10_and_stack),
		cmocka_unit_test(test_tentative_word_taken_back),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
