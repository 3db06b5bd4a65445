/*
 * tests/unit/test_regs.c - cmocka tests of relive-build's register facts
 * (builder/regs.c): which call-clobbered registers code writes, and
 * whether a caller reads one after a call before writing it.  These decide
 * which callers of a changed function must be replaced with it (GCC's
 * IPA-RA lets a caller keep a value in a register its callee never
 * writes); a wrong "no" would let a new version destroy a caller's value.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dobj.h"

#define RAX (1u << 0)
#define RCX (1u << 1)
#define RDX (1u << 2)
#define RDI (1u << 4)
#define R10 (1u << 7)

/* Every sequence starts with the call whose aftermath is examined. */
#define CALL 0xe8, 0, 0, 0, 0
#define AFTER 5

static bool reads(const uint8_t *code, size_t size, regset set)
{
	return regs_read_after(code, size, AFTER, set);
}

static void test_read_after_the_call(void **state)
{
	/* mov %ecx,%eax; ret */
	static const uint8_t c[] = { CALL, 0x89, 0xc8, 0xc3 };

	(void)state;
	assert_true(reads(c, sizeof(c), RCX));
	/* rax is written, and r10 never used. */
	assert_false(reads(c, sizeof(c), R10));
}

static void test_written_before_read(void **state)
{
	/* mov $1,%ecx; mov %ecx,%eax; ret */
	static const uint8_t c[] = { CALL, 0xb9, 1, 0, 0, 0, 0x89, 0xc8, 0xc3 };

	(void)state;
	assert_false(reads(c, sizeof(c), RCX));
}

static void test_partial_write_keeps_the_rest(void **state)
{
	/* mov $1,%cl; mov %ecx,%eax; ret: the upper bits of rcx survive */
	static const uint8_t c[] = { CALL, 0xb1, 1, 0x89, 0xc8, 0xc3 };

	(void)state;
	assert_true(reads(c, sizeof(c), RCX));
}

static void test_branch_around_the_write(void **state)
{
	/* jz +6; mov $0,%r10d; mov %r10d,%eax; ret */
	static const uint8_t c[] = { CALL, 0x74, 6, 0x41, 0xba, 0, 0, 0, 0,
				     0x44, 0x89, 0xd0, 0xc3 };
	/* the same without the branch */
	static const uint8_t d[] = { CALL, 0x41, 0xba, 0, 0, 0, 0,
				     0x44, 0x89, 0xd0, 0xc3 };

	(void)state;
	assert_true(reads(c, sizeof(c), R10));
	assert_false(reads(d, sizeof(d), R10));
}

static void test_return_and_arguments_count_as_reads(void **state)
{
	static const uint8_t ret[] = { CALL, 0xc3 };
	static const uint8_t call[] = { CALL, CALL, 0xc3 };
	/* jmp *%rax: where it goes is unknown */
	static const uint8_t indirect[] = { CALL, 0xff, 0xe0 };

	(void)state;
	/* rdx may carry the caller's own return value. */
	assert_true(reads(ret, sizeof(ret), RDX));
	assert_false(reads(ret, sizeof(ret), R10));
	/* rdi is an argument of the next call; r10 is not. */
	assert_true(reads(call, sizeof(call), RDI));
	assert_false(reads(call, sizeof(call), R10));
	assert_true(reads(indirect, sizeof(indirect), R10));
}

static void test_written(void **state)
{
	/* mov %rax,%rdx; ret */
	static const uint8_t leaf[] = { 0x48, 0x89, 0xc2, 0xc3 };
	static const uint8_t calls[] = { CALL, CALL, 0xc3 };
	unsigned n;

	(void)state;
	assert_int_equal(regs_written(leaf, sizeof(leaf), &n) & (RDX | RAX | RCX),
			 RDX);
	assert_int_equal(n, 0);
	regs_written(calls, sizeof(calls), &n);
	assert_int_equal(n, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_after_the_call),
		cmocka_unit_test(test_written_before_read),
		cmocka_unit_test(test_partial_write_keeps_the_rest),
		cmocka_unit_test(test_branch_around_the_write),
		cmocka_unit_test(test_return_and_arguments_count_as_reads),
		cmocka_unit_test(test_written),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
