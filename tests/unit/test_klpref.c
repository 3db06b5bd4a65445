/*
 * tests/unit/test_klpref.c - cmocka tests of common/klpref.c.
 *
 * Why this exists: relive and the agent each split a reference's name
 * into object, symbol and position, relive to resolve it when it checks a
 * patch, the agent to find relive's answer or look the symbol up itself.
 * A name split differently on the two sides would be resolved against the
 * wrong symbol, so the one rule is tested here on both forms and on the
 * names it must refuse.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "klpref.h"

static void split(const char *s, const char *obj, const char *sym,
		  unsigned long pos)
{
	struct relive_klp_ref r;

	assert_int_equal(relive_klp_ref_parse(s, &r), 0);
	assert_int_equal(r.objlen, strlen(obj));
	assert_memory_equal(r.obj, obj, r.objlen);
	assert_int_equal(r.symlen, strlen(sym));
	assert_memory_equal(r.sym, sym, r.symlen);
	assert_int_equal(r.sympos, pos);
}

static void test_dotted_form(void **state)
{
	(void)state;
	/* KLP_SYMBOL("obj", sym, pos): the symbol between the last dots */
	split("main.counter.0", "main", "counter", 0);
	split("libplug.so.helper.2", "libplug.so", "helper", 2);
	split("libc.so.6.labs.12", "libc.so.6", "labs", 12);
}

static void test_colon_form(void **state)
{
	(void)state;
	/* relive-build's "OBJ:SYM.POS": dots of the symbol's own */
	split("main:count.0.3", "main", "count.0", 3);
	split("libplug.so:f.isra.0.1", "libplug.so", "f.isra.0", 1);
	split("main:plain.0", "main", "plain", 0);
	/* the colon splits even where OBJ has dots */
	split("a.b:c.0", "a.b", "c", 0);
}

static void test_refused(void **state)
{
	static const char *const bad[] = {
		"", "main", "main.", ".0", "main.counter", "main.counter.",
		"main.counter.x1", "main.counter.1x", "main..0", "counter.0",
		"main.counter.+1", "main.counter.-1",
	};
	struct relive_klp_ref r;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (relive_klp_ref_parse(bad[i], &r) == 0)
			fail_msg("'%s' was split", bad[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dotted_form),
		cmocka_unit_test(test_colon_form),
		cmocka_unit_test(test_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
