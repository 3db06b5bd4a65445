/*
 * tests/unit/test_text.c - the agent's string copies and number reads
 * (agent/text.c), which stand in for snprintf("%s") and sscanf in a
 * request: they must truncate, terminate and refuse exactly where those
 * would, on the /proc lines the agent reads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "agent.h"

static void test_copy(void **state)
{
	char b[8];

	(void)state;
	memset(b, 'x', sizeof(b));
	assert_int_equal(text_copy(b, sizeof(b), "abc"), 3);
	assert_string_equal(b, "abc");
	/* Truncated to size - 1 and terminated, as snprintf would. */
	assert_int_equal(text_copy(b, sizeof(b), "0123456789"), 7);
	assert_string_equal(b, "0123456");
	assert_int_equal(text_copy(b, 1, "abc"), 0);
	assert_string_equal(b, "");
	b[0] = 'q';
	assert_int_equal(text_copy(b, 0, "abc"), 0);
	assert_int_equal(b[0], 'q'); /* nothing written at all */
	/* "%.*s": at most n, and never past the string's end. */
	assert_int_equal(text_copyn(b, sizeof(b), "func' in x", 4), 4);
	assert_string_equal(b, "func");
	assert_int_equal(text_copyn(b, sizeof(b), "ab", 5), 2);
	assert_string_equal(b, "ab");
	assert_int_equal(text_copyn(b, sizeof(b), "0123456789", 9), 7);
	assert_string_equal(b, "0123456");
}

static void test_append(void **state)
{
	char b[32], s[6];
	size_t n;

	(void)state;
	n = text_append_dec(b, sizeof(b), text_copy(b, sizeof(b), "/t/"), 0);
	assert_string_equal(b, "/t/0");
	n = text_append_dec(b, sizeof(b), text_copy(b, sizeof(b), "/t/"),
			    4194304);
	assert_int_equal(n, strlen("/t/4194304"));
	text_copy(b + n, sizeof(b) - n, "/syscall");
	assert_string_equal(b, "/t/4194304/syscall");
	n = text_append_dec(b, sizeof(b), 0, UINT64_MAX);
	assert_string_equal(b, "18446744073709551615");
	assert_int_equal(n, 20);
	/* Truncation: the result stays terminated within size. */
	n = text_append(s, sizeof(s), text_copy(s, sizeof(s), "abc"), "defg");
	assert_string_equal(s, "abcde");
	assert_int_equal(n, 5);
	assert_int_equal(text_append(s, sizeof(s), n, "x"), 5);
	assert_string_equal(s, "abcde");
	n = text_append_dec(s, sizeof(s), 2, 98765);
	assert_string_equal(s, "ab987");
}

static void test_u64(void **state)
{
	uint64_t v = 7;
	const char *e;

	(void)state;
	e = text_u64("  123 456", &v, 10);
	assert_non_null(e);
	assert_int_equal(v, 123);
	assert_string_equal(e, " 456");
	e = text_u64("0x7ffd4a3c1f08 0x7f", &v, 16);
	assert_non_null(e);
	assert_true(v == 0x7ffd4a3c1f08ull);
	assert_string_equal(e, " 0x7f");
	assert_non_null(text_u64("DEADbeef", &v, 16));
	assert_true(v == 0xdeadbeefull);
	assert_non_null(text_u64("18446744073709551615", &v, 10));
	assert_true(v == UINT64_MAX);
	/* Refused, v untouched: no digit, a sign, too large. */
	v = 7;
	assert_null(text_u64("running\n", &v, 10));
	assert_null(text_u64("-1 0x7ffd 0x7f\n", &v, 10));
	assert_null(text_u64("", &v, 10));
	assert_null(text_u64("0x", &v, 16));
	assert_null(text_u64("18446744073709551616", &v, 10));
	assert_null(text_u64("0x10000000000000000", &v, 16));
	assert_int_equal(v, 7);
	/* Base 10 stops at a hex digit, as %llu does. */
	assert_non_null(e = text_u64("12ab", &v, 10));
	assert_int_equal(v, 12);
	assert_string_equal(e, "ab");
}

static void test_fields(void **state)
{
	/* /proc/PID/task/TID/syscall of a thread in read(2), and
	 * /proc/.../schedstat. */
	const char *line = "0 0x3 0x7ffd4a3c0f00 0x1000 0x0 0x0 0x0 "
			   "0x7ffd4a3c0ed8 0x7f0c2e4f1a5d\n";
	const char *s = line;
	uint64_t nr, sp, pc, runs;
	int i;

	(void)state;
	assert_non_null(s = text_u64(s, &nr, 10));
	assert_int_equal(nr, 0);
	for (i = 0; i < 6; i++)
		assert_non_null(s = text_skip_field(s));
	assert_non_null(s = text_u64(s, &sp, 16));
	assert_non_null(s = text_u64(s, &pc, 16));
	assert_true(sp == 0x7ffd4a3c0ed8ull);
	assert_true(pc == 0x7f0c2e4f1a5dull);
	assert_string_equal(s, "\n");
	/* The end of the line is no field. */
	assert_null(text_skip_field(s));
	assert_null(text_skip_field("   "));
	s = "18741728 3396874 14\n";
	assert_non_null(s = text_skip_field(s));
	assert_non_null(s = text_skip_field(s));
	assert_non_null(text_u64(s, &runs, 10));
	assert_int_equal(runs, 14);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_copy),
		cmocka_unit_test(test_append),
		cmocka_unit_test(test_u64),
		cmocka_unit_test(test_fields),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
