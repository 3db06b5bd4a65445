/*
 * tests/unit/test_diffobj.c - cmocka tests of relive-build's object
 * comparison (builder/compare.c, with object.c and linemap.c).
 *
 * Why this exists: relive-build decides what a live patch contains, and
 * what it must refuse, by comparing the original and the patched build of
 * each source file function by function.  A function wrongly found the
 * same leaves the bug in the running program; a variable wrongly found
 * the same, or a change to data not refused, corrupts it.  Each test
 * compares one pair of small objects that meson compiles from
 * tests/unit/fixtures/diff (NAME.orig.c and NAME.patched.c) the way
 * relive-build compiles a tree (-O2 -ffunction-sections -fdata-sections),
 * and checks the status of each function and variable by name, and the
 * refusals and their advice.
 *
 * Needs -DRELIVE_SRCDIR="<source root>" and -DDIFF_OBJDIR="<where meson
 * put the fixture objects>".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dobj.h"

#ifndef RELIVE_SRCDIR
#error "build with -DRELIVE_SRCDIR=\"<relive source root>\""
#endif
#ifndef DIFF_OBJDIR
#error "build with -DDIFF_OBJDIR=\"<directory of the fixture objects>\""
#endif

#define FIXTURES RELIVE_SRCDIR "/tests/unit/fixtures/diff"

/* ---- loading a pair ----------------------------------------------------- */

struct pair {
	struct dobj *orig, *patched;
	struct linemap *lines;
	struct ddiff d;
	bool compared;
};

/* Two slots: a test may compare two pairs (two files, or one pair with
 * and without the diff).  The teardown frees them even when a test
 * fails half way. */
static struct pair pairs[2];

static int teardown(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		struct pair *x = &pairs[i];

		if (x->compared)
			ddiff_free(&x->d);
		dobj_close(x->orig);
		dobj_close(x->patched);
		linemap_free(x->lines);
		memset(x, 0, sizeof(*x));
	}
	return 0;
}

/* Compares DIFF_OBJDIR/diff_NAME.orig.o with diff_NAME.patched.o, with the
 * unified diff FIXTURES/DIFF when diff is not NULL. */
static struct ddiff *compare(int slot, const char *name, const char *diff)
{
	struct pair *x = &pairs[slot];
	char a[512], b[512], err[1024];

	snprintf(a, sizeof(a), "%s/diff_%s.orig.o", DIFF_OBJDIR, name);
	snprintf(b, sizeof(b), "%s/diff_%s.patched.o", DIFF_OBJDIR, name);
	if (diff) {
		char path[512];

		snprintf(path, sizeof(path), "%s/%s", FIXTURES, diff);
		x->lines = linemap_read(path, err, sizeof(err));
		if (!x->lines)
			fail_msg("%s", err);
	}
	if (dobj_open(a, &x->orig, err, sizeof(err)) ||
	    dobj_open(b, &x->patched, err, sizeof(err)))
		fail_msg("%s", err);
	if (diff_objects(x->orig, x->patched, x->lines, &x->d, err, sizeof(err)))
		fail_msg("%s", err);
	x->compared = true;
	return &x->d;
}

/* ---- expectations ------------------------------------------------------- */

static void dump(const struct ddiff *d)
{
	size_t i;

	print_error("comparison of %s:\n", d->file ? d->file : "(no file name)");
	for (i = 0; i < d->n; i++)
		print_error("  %-8s %-6s %s%s%s%s\n", dstatus_name(d->e[i].status),
			    d->e[i].type == STT_FUNC ? "func" : "data",
			    d->e[i].name, d->e[i].cold ? " (cold)" : "",
			    d->e[i].oldname ? " was " : "",
			    d->e[i].oldname ? d->e[i].oldname : "");
	for (i = 0; i < d->nrefusals; i++)
		print_error("  REFUSED %s\n", d->refusals[i].what);
}

/* The entry for name (patched-build name), which must have status st and
 * type type; the test fails with the whole comparison shown if not. */
#define expect(d, name, type, st) expect_at(d, name, type, st, __FILE__, __LINE__)

static const struct dentry *expect_at(const struct ddiff *d, const char *name,
				      int type, enum dstatus st,
				      const char *file, int line)
{
	const struct dentry *e = ddiff_get(d, name);

	if (!e) {
		dump(d);
		print_error("%s: no entry\n", name);
		_fail(file, line);
	}
	if (e->status != st || e->type != type) {
		dump(d);
		print_error("%s: %s %s, expected %s %s\n", name,
			    dstatus_name(e->status),
			    e->type == STT_FUNC ? "function" : "data",
			    dstatus_name(st),
			    type == STT_FUNC ? "function" : "data");
		_fail(file, line);
	}
	return e;
}

/* The entry matched name in the original build to patched in the patched
 * one. */
#define expect_was(d, patched, orig) expect_was_at(d, patched, orig, __FILE__, __LINE__)

static void expect_was_at(const struct ddiff *d, const char *patched,
			  const char *orig, const char *file, int line)
{
	const struct dentry *e = ddiff_get(d, patched);

	if (!e || !e->oldname || strcmp(e->oldname, orig)) {
		dump(d);
		print_error("%s: matched to %s, expected %s\n", patched,
			    e && e->oldname ? e->oldname : "nothing", orig);
		_fail(file, line);
	}
}

#define expect_refusals(d, n) expect_refusals_at(d, n, __FILE__, __LINE__)

static void expect_refusals_at(const struct ddiff *d, size_t n,
			       const char *file, int line)
{
	if (d->nrefusals != n) {
		dump(d);
		print_error("%zu refusals, expected %zu\n", d->nrefusals, n);
		_fail(file, line);
	}
}

/* The refusal whose message has every one of the NULL-terminated
 * substrings, or NULL. */
static const char *refusal_with(const struct ddiff *d, ...)
{
	size_t i;

	for (i = 0; i < d->nrefusals; i++) {
		const char *what = d->refusals[i].what, *s;
		bool all = true;
		va_list ap;

		va_start(ap, d);
		while (all && (s = va_arg(ap, const char *)))
			all = strstr(what, s) != NULL;
		va_end(ap);
		if (all)
			return what;
	}
	return NULL;
}

/* Nothing but D_SAME in d, and no refusal. */
static void expect_nothing_changed(const struct ddiff *d)
{
	if (ddiff_count(d, D_CHANGED, 0) || ddiff_count(d, D_NEW, 0) ||
	    ddiff_count(d, D_REMOVED, 0) || d->nrefusals) {
		dump(d);
		fail_msg("a change where there is none");
	}
}

/* The name of the one writable variable that function func of o refers
 * to: which numbered static local belongs to which function, as the
 * compiler numbered them. */
static const char *variable_of(const struct dobj *o, const char *func)
{
	long f = dobj_find(o, func), found = -1;
	const struct dsec *s;
	size_t k;

	assert_true(f >= 0);
	s = &o->secs[o->syms[f].sym.st_shndx];
	for (k = 0; k < s->nrels; k++) {
		long named;
		int64_t off;

		dobj_rel_target(o, &s->rels[k], &named, &off);
		if (named < 0 || o->syms[named].type != STT_OBJECT ||
		    !dobj_is_writable(o, (size_t)named))
			continue;
		assert_true(found < 0 || found == named);
		found = named;
	}
	assert_true(found >= 0);
	return o->syms[found].name;
}

/* ---- the cases ---------------------------------------------------------- */

/* The same source compiled twice: nothing to patch, nothing refused. */
static void test_no_change(void **state)
{
	const struct ddiff *d = compare(0, "same", NULL);

	expect(d, "twice", STT_FUNC, D_SAME);
	expect(d, "step", STT_FUNC, D_SAME);
	expect(d, "greeting", STT_FUNC, D_SAME);
	expect(d, "total", STT_OBJECT, D_SAME);
	assert_int_equal(d->n, 4);
	expect_nothing_changed(d);
	assert_string_equal(d->file, "same.orig.c");
}

/* A changed static function; its caller, unchanged, stays. */
static void test_static_function(void **state)
{
	const struct ddiff *d = compare(0, "staticfn", NULL);

	expect(d, "clamp", STT_FUNC, D_CHANGED);
	expect_was(d, "clamp", "clamp");
	expect(d, "apply", STT_FUNC, D_SAME);
	assert_int_equal(ddiff_count(d, D_CHANGED, 0), 1);
	expect_refusals(d, 0);
}

/* Two files with a fix each: each comparison finds its own. */
static void test_several_files(void **state)
{
	const struct ddiff *a = compare(0, "multi_a", NULL);
	const struct ddiff *b = compare(1, "multi_b", NULL);

	expect(a, "fixed_a", STT_FUNC, D_CHANGED);
	expect(a, "unchanged_a", STT_FUNC, D_SAME);
	assert_int_equal(ddiff_count(a, D_CHANGED, 0), 1);
	expect_refusals(a, 0);
	expect(b, "fixed_b", STT_FUNC, D_CHANGED);
	expect(b, "unchanged_b", STT_FUNC, D_SAME);
	assert_int_equal(ddiff_count(b, D_CHANGED, 0), 1);
	expect_refusals(b, 0);
	assert_string_equal(a->file, "multi_a.orig.c");
	assert_string_equal(b->file, "multi_b.orig.c");
}

/* Functions only the patched build has are new, with no old name. */
static void test_new_functions(void **state)
{
	const struct ddiff *d = compare(0, "newfn", NULL);

	assert_null(expect(d, "new_helper", STT_FUNC, D_NEW)->oldname);
	assert_null(expect(d, "new_entry", STT_FUNC, D_NEW)->oldname);
	expect(d, "old_one", STT_FUNC, D_SAME);
	assert_int_equal(ddiff_count(d, D_NEW, STT_FUNC), 2);
	assert_int_equal(ddiff_count(d, D_CHANGED, 0), 0);
	expect_refusals(d, 0);
}

/* New static data is new, not a change to the program's data: not
 * refused; the existing variable stays the running program's. */
static void test_new_static_data(void **state)
{
	const struct ddiff *d = compare(0, "newdata", NULL);

	expect(d, "misses", STT_OBJECT, D_NEW);
	expect(d, "weights", STT_OBJECT, D_NEW);
	expect(d, "hits", STT_OBJECT, D_SAME);
	expect(d, "count", STT_FUNC, D_CHANGED);
	expect_refusals(d, 0);
}

/* A changed string literal changes the function that uses it. */
static void test_changed_string(void **state)
{
	const struct ddiff *d = compare(0, "strings", NULL);

	expect(d, "greet", STT_FUNC, D_CHANGED);
	expect(d, "part", STT_FUNC, D_SAME);
	expect_refusals(d, 0);
}

/* A changed function inlined into its caller: the caller is changed,
 * and the inlined function has no symbol of its own. */
static void test_inlined(void **state)
{
	const struct ddiff *d = compare(0, "inline", NULL);

	expect(d, "score", STT_FUNC, D_CHANGED);
	expect(d, "other", STT_FUNC, D_SAME);
	assert_null(ddiff_get(d, "weight"));
	expect_refusals(d, 0);
}

/* Functions added before the function under test: its callee's symbol,
 * section and index move, its code does not. */
static void test_callee_moved(void **state)
{
	const struct ddiff *d = compare(0, "calleemoved", NULL);

	expect(d, "under_test", STT_FUNC, D_SAME);
	expect(d, "helper", STT_FUNC, D_SAME);
	expect(d, "added", STT_FUNC, D_NEW);
	expect(d, "added_entry", STT_FUNC, D_NEW);
	assert_int_equal(ddiff_count(d, D_CHANGED, 0), 0);
	expect_refusals(d, 0);
}

/* .constprop: the changed clone, renumbered, is matched to the original
 * build's and changed; nothing is removed. */
static void test_constprop(void **state)
{
	const struct ddiff *d = compare(0, "constprop", NULL);

	assert_true(dobj_find(pairs[0].orig, "scale.constprop.0") >= 0);
	expect(d, "scale.constprop.1", STT_FUNC, D_CHANGED);
	expect_was(d, "scale.constprop.1", "scale.constprop.0");
	assert_null(ddiff_get(d, "scale.constprop.0"));
	expect(d, "use1", STT_FUNC, D_SAME);
	expect(d, "use2", STT_FUNC, D_SAME);
	expect(d, "use0", STT_FUNC, D_NEW);
	assert_int_equal(ddiff_count(d, D_REMOVED, 0), 0);
	expect_refusals(d, 0);
}

/* .constprop: a new clone takes the number of an unchanged one; each is
 * matched by what it is: the unchanged one is the same, the new one new,
 * and nothing is changed. */
static void test_constprop_new_clone(void **state)
{
	const struct ddiff *d = compare(0, "constprop_new", NULL);

	/* What the fixture is about: the k = 1 clone took number 0. */
	assert_true(dobj_find(pairs[0].patched, "scale.constprop.0") >= 0);
	expect(d, "scale.constprop.1", STT_FUNC, D_SAME);
	expect_was(d, "scale.constprop.1", "scale.constprop.0");
	expect(d, "scale.constprop.0", STT_FUNC, D_NEW);
	expect(d, "use1", STT_FUNC, D_SAME);
	expect(d, "use2", STT_FUNC, D_SAME);
	expect(d, "use3", STT_FUNC, D_NEW);
	expect(d, "use4", STT_FUNC, D_NEW);
	assert_int_equal(ddiff_count(d, D_CHANGED, 0), 0);
	expect_refusals(d, 0);
}

/* .isra: the changed clone is changed; the unchanged one, renumbered
 * through the .constprop clone it derives from, is matched and the same. */
static void test_isra(void **state)
{
	const struct ddiff *d = compare(0, "isra", NULL);

	expect(d, "getb.isra.0", STT_FUNC, D_CHANGED);
	expect_was(d, "getb.isra.0", "getb.isra.0");
	expect(d, "pick.constprop.1.isra.0", STT_FUNC, D_SAME);
	expect_was(d, "pick.constprop.1.isra.0", "pick.constprop.0.isra.0");
	expect(d, "use1", STT_FUNC, D_SAME);
	expect(d, "use2", STT_FUNC, D_SAME);
	assert_int_equal(ddiff_count(d, D_REMOVED, 0), 0);
	expect_refusals(d, 0);
}

/* .part: the changed body is changed; the callers, into which only the
 * unchanged test was inlined, are not (the body calls another file, so
 * they rely on nothing of it); the renumbered unchanged one is matched. */
static void test_part(void **state)
{
	const struct ddiff *d = compare(0, "part", NULL);

	expect(d, "check.part.0", STT_FUNC, D_CHANGED);
	expect_was(d, "check.part.0", "check.part.0");
	expect(d, "check1", STT_FUNC, D_SAME);
	expect(d, "check2", STT_FUNC, D_SAME);
	expect(d, "maybe.part.0.constprop.1", STT_FUNC, D_SAME);
	expect_was(d, "maybe.part.0.constprop.1", "maybe.part.0.constprop.0");
	assert_int_equal(ddiff_count(d, D_REMOVED, 0), 0);
	expect_refusals(d, 0);
}

/* .cold: a changed cold part is flagged cold and changed, and its parent
 * is changed with it; also when the clone it belongs to is renumbered. */
static void test_cold(void **state)
{
	const struct ddiff *d = compare(0, "cold", NULL);
	const struct dentry *e;

	e = expect(d, "checked.cold", STT_FUNC, D_CHANGED);
	assert_true(e->cold);
	e = expect(d, "checked", STT_FUNC, D_CHANGED);
	assert_false(e->cold);
	e = expect(d, "scale.constprop.1.cold", STT_FUNC, D_CHANGED);
	assert_true(e->cold);
	expect_was(d, "scale.constprop.1.cold", "scale.constprop.0.cold");
	e = expect(d, "scale.constprop.1", STT_FUNC, D_CHANGED);
	assert_false(e->cold);
	expect_was(d, "scale.constprop.1", "scale.constprop.0");
	assert_true(expect(d, "use0.cold", STT_FUNC, D_NEW)->cold);
	assert_int_equal(ddiff_count(d, D_REMOVED, 0), 0);
	expect_refusals(d, 0);
}

/* A static local variable is the running program's: the function that
 * uses it changed, the variable did not, nothing is refused. */
static void test_static_local(void **state)
{
	const struct ddiff *d = compare(0, "staticlocal", NULL);
	const char *was = variable_of(pairs[0].orig, "counter");
	const char *now = variable_of(pairs[0].patched, "counter");

	expect(d, "counter", STT_FUNC, D_CHANGED);
	expect(d, now, STT_OBJECT, D_SAME);
	expect_was(d, now, was);
	expect_refusals(d, 0);
}

/* Same-named static locals renumbered by a function added after: each is
 * matched by what it is, not by the compiler's number. */
static void test_static_local_renumbered(void **state)
{
	const struct ddiff *d = compare(0, "staticlocal_renum", NULL);
	const char *was = variable_of(pairs[0].orig, "counter");
	const char *now = variable_of(pairs[0].patched, "counter");
	const char *added = variable_of(pairs[0].patched, "later");

	/* What the fixture is about: the compiler did renumber. */
	assert_string_not_equal(was, now);
	expect(d, "counter", STT_FUNC, D_CHANGED);
	expect(d, "later", STT_FUNC, D_NEW);
	expect(d, now, STT_OBJECT, D_SAME);
	expect_was(d, now, was);
	/* later()'s variable is new: were it matched to the running
	 * counter()'s, the patched later() would share counter()'s count. */
	expect(d, added, STT_OBJECT, D_NEW);
	expect_refusals(d, 0);
}

/* __LINE__ churn: lines added above a function move the line number it
 * passes on; with the diff that is D_LINES, without it a change. */
static void test_line_churn(void **state)
{
	const struct ddiff *d = compare(0, "line", "line.diff");
	const struct ddiff *nodiff = compare(1, "line", NULL);

	/* The object names the file as the diff does. */
	assert_string_equal(d->file, "line.c");
	assert_true(linemap_touches(pairs[0].lines, d->file));

	expect(d, "where", STT_FUNC, D_LINES);
	expect(d, "first", STT_FUNC, D_CHANGED);
	expect(d, "fixed", STT_FUNC, D_CHANGED);
	expect_refusals(d, 0);

	expect(nodiff, "where", STT_FUNC, D_CHANGED);
	expect(nodiff, "first", STT_FUNC, D_CHANGED);
	expect(nodiff, "fixed", STT_FUNC, D_CHANGED);
	expect_refusals(nodiff, 0);
}

/* Refused: a new initial value for an existing static variable. */
static void test_refuse_initial_value(void **state)
{
	const struct ddiff *d = compare(0, "initval", NULL);
	const char *why;

	expect(d, "limit", STT_OBJECT, D_CHANGED);
	expect(d, "over", STT_FUNC, D_SAME);
	expect(d, "set_limit", STT_FUNC, D_SAME);
	expect_refusals(d, 1);
	why = refusal_with(d, "'limit'", (char *)NULL);
	assert_non_null(why);
	assert_non_null(strstr(why, "shadow"));
	assert_non_null(strstr(why, "callback"));
}

/* Refused: an existing static struct gains a field, a static array
 * grows. */
static void test_refuse_layout(void **state)
{
	const struct ddiff *d = compare(0, "layout", NULL);
	const char *why;

	expect(d, "conf", STT_OBJECT, D_CHANGED);
	expect(d, "slots", STT_OBJECT, D_CHANGED);
	expect(d, "setting", STT_FUNC, D_CHANGED);
	expect_refusals(d, 2);
	why = refusal_with(d, "'conf'", (char *)NULL);
	assert_non_null(why);
	assert_non_null(strstr(why, "shadow"));
	assert_non_null(strstr(why, "callback"));
	why = refusal_with(d, "'slots'", (char *)NULL);
	assert_non_null(why);
	assert_non_null(strstr(why, "shadow"));
	assert_non_null(strstr(why, "callback"));
}

/* Refused: a global variable's initial value, said to be a global. */
static void test_refuse_global(void **state)
{
	const struct ddiff *d = compare(0, "global", NULL);
	const char *why;

	expect(d, "threshold", STT_OBJECT, D_CHANGED);
	expect(d, "above", STT_FUNC, D_SAME);
	expect_refusals(d, 1);
	why = refusal_with(d, "global variable", "'threshold'", (char *)NULL);
	assert_non_null(why);
	assert_non_null(strstr(why, "shadow"));
	assert_non_null(strstr(why, "callback"));
}

/* Refused: a changed routine written in assembly (.S), compiled as a
 * build compiles it. */
static void test_refuse_assembly(void **state)
{
	const struct ddiff *d = compare(0, "asm", NULL);

	expect(d, "fast_one", STT_FUNC, D_CHANGED);
	expect_refusals(d, 1);
	assert_non_null(refusal_with(d, "assembly", (char *)NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_no_change, teardown),
		cmocka_unit_test_teardown(test_static_function, teardown),
		cmocka_unit_test_teardown(test_several_files, teardown),
		cmocka_unit_test_teardown(test_new_functions, teardown),
		cmocka_unit_test_teardown(test_new_static_data, teardown),
		cmocka_unit_test_teardown(test_changed_string, teardown),
		cmocka_unit_test_teardown(test_inlined, teardown),
		cmocka_unit_test_teardown(test_callee_moved, teardown),
		cmocka_unit_test_teardown(test_constprop, teardown),
		cmocka_unit_test_teardown(test_constprop_new_clone, teardown),
		cmocka_unit_test_teardown(test_isra, teardown),
		cmocka_unit_test_teardown(test_part, teardown),
		cmocka_unit_test_teardown(test_cold, teardown),
		cmocka_unit_test_teardown(test_static_local, teardown),
		cmocka_unit_test_teardown(test_static_local_renumbered, teardown),
		cmocka_unit_test_teardown(test_line_churn, teardown),
		cmocka_unit_test_teardown(test_refuse_initial_value, teardown),
		cmocka_unit_test_teardown(test_refuse_layout, teardown),
		cmocka_unit_test_teardown(test_refuse_global, teardown),
		cmocka_unit_test_teardown(test_refuse_assembly, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
