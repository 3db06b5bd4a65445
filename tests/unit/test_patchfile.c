/*
 * tests/unit/test_patchfile.c - cmocka tests of relive/patchfile.c.
 *
 * Why this exists: the controller decides from patchfile_read() alone
 * whether a patch may be sent to a target, so it must read exactly what the
 * dynamic loader will see (pointers that only relocations fill in) and must
 * refuse, with a message that says what to fix, every file that is not a
 * sound relive patch.  The patches are compiled here, at run time, from
 * tests/unit/fixtures/patch.c (variants chosen with -D) against
 * include/relive/livepatch.h.
 *
 * Needs -DRELIVE_SRCDIR="<source root>" and cc.
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "failmalloc.h"

#include "patchfile.h"

#ifndef RELIVE_SRCDIR
#error "build with -DRELIVE_SRCDIR=\"<relive source root>\""
#endif

#define FIXTURES RELIVE_SRCDIR "/tests/unit/fixtures"
#define CC "cc -shared -fPIC -I" RELIVE_SRCDIR "/include"

static char tmp[256];
static bool have_relr;

/* ---- malloc failure injection: failmalloc.c ----------------------------- */

/* ---- helpers ------------------------------------------------------------ */

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	rc = system(cmd);
	if (rc != 0)
		fprintf(stderr, "command failed (%d): %s\n", rc, cmd);
	assert_int_equal(rc, 0);
}

static char *tpath(const char *name)
{
	static char buf[4][512];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", tmp, name);
	return buf[i];
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;
}

/* Builds fixtures/patch.c with extra flags into tmp/name. */
static void build(const char *name, const char *flags)
{
	sh("%s %s -o %s %s/patch.c", CC, flags, tpath(name), FIXTURES);
}

static void read_ok(const char *name, struct patchfile *pf)
{
	char err[512] = "";
	int rc = patchfile_read(tpath(name), pf, err, sizeof(err));

	if (rc)
		fprintf(stderr, "patchfile_read(%s): %s\n", name, err);
	assert_int_equal(rc, 0);
	assert_string_equal(err, "");
}

/* Expects name to be refused with "<path>: <msg>". */
static void refused(const char *name, const char *msg)
{
	struct patchfile pf;
	char err[512], want[1024];
	int fds = count_fds();

	memset(&pf, 0x5a, sizeof(pf));
	assert_int_equal(patchfile_read(tpath(name), &pf, err, sizeof(err)),
			 -1);
	snprintf(want, sizeof(want), "%s: %s", tpath(name), msg);
	if (strcmp(err, want) != 0)
		fprintf(stderr, "got:  %s\nwant: %s\n", err, want);
	assert_string_equal(err, want);
	/* Nothing is left to free. */
	assert_null(pf.objs);
	assert_null(pf.states);
	assert_null(pf.name);
	assert_null(pf.path);
	assert_int_equal(pf.nobjs, 0);
	patchfile_free(&pf);
	assert_int_equal(count_fds(), fds);
}

/* ---- setup -------------------------------------------------------------- */

static int setup(void **state)
{
	const char *t = getenv("TMPDIR");
	char cmd[1024];

	(void)state;
	snprintf(tmp, sizeof(tmp), "%s/test_patchfile.XXXXXX", t ? t : "/tmp");
	if (!mkdtemp(tmp))
		return -1;
	build("fix.so", "");
	build("fix-O2.so", "-O2");
	/* Packed relative relocations need binutils 2.38: optional. */
	snprintf(cmd, sizeof(cmd), "%s -Wl,-z,pack-relative-relocs -o %s "
		 "%s/patch.c 2>/dev/null", CC, tpath("fix-relr.so"), FIXTURES);
	have_relr = system(cmd) == 0;
	build("my.cumulative.so", "-DREPLACE=true");
	build("noinfo.so", "-DNO_INFO");
	build("badmagic.so", "-DINFO_MAGIC=0x12345678 -DINFO_ABI=1");
	build("badabi.so", "-DINFO_MAGIC=RELIVE_PATCH_MAGIC -DINFO_ABI=99");
	build("extern.so", "-DEXTERN_NEW_FUNC");
	build("undef.so", "-DUNDEF_NEW_FUNC");
	build("null.so", "-DNULL_NEW_FUNC");
	build("data.so", "-DDATA_NEW_FUNC");
	build("noobjs.so", "-DNO_OBJS");
	build("nullobjs.so", "-DNULL_OBJS");
	build("nofuncs.so", "-DNO_FUNCS");
	build("dupfunc.so", "-DDUP_FUNC");
	build("samename.so", "-DSAME_NAME");
	build("dupobj.so", "-DDUP_OBJ");
	build("badid.so", "-DBAD_BUILD_ID");
	build("externcb.so", "-DEXTERN_CALLBACK");
	build("refs.so", "-DREFS");
	sh("cc -c -fPIC -I%s/include -o %s %s/patch.c", RELIVE_SRCDIR,
	   tpath("fix.o"), FIXTURES);
	sh("cc -no-pie -o %s %s/exe.c", tpath("fix-exec"), FIXTURES);
	sh("echo 'not a patch' > %s && : > %s", tpath("text.so"),
	   tpath("empty.so"));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	if (tmp[0] && !getenv("KEEP_TMP"))
		sh("rm -rf '%s'", tmp);
	return 0;
}

/* ---- tests -------------------------------------------------------------- */

static void check_fix(const char *name, const char *patchname)
{
	struct patchfile pf;
	const struct pf_object *o;

	read_ok(name, &pf);
	assert_string_equal(pf.path, tpath(name));
	assert_string_equal(pf.name, patchname);
	assert_false(pf.replace);
	assert_int_equal(pf.nobjs, 2);

	o = &pf.objs[0];
	assert_null(o->name);
	assert_null(o->build_id);
	assert_int_equal(o->nfuncs, 2);
	assert_string_equal(o->funcs[0].old_name, "foo");
	assert_int_equal(o->funcs[0].old_sympos, 0);
	assert_true(o->funcs[0].has_new_func);
	assert_string_equal(o->funcs[1].old_name, "bar");
	assert_int_equal(o->funcs[1].old_sympos, 2);
	assert_true(o->funcs[1].has_new_func);
	assert_true(o->has_callbacks[0]);
	assert_false(o->has_callbacks[1]);
	assert_false(o->has_callbacks[2]);
	assert_true(o->has_callbacks[3]);

	o = &pf.objs[1];
	assert_string_equal(o->name, "libplug.so.1");
	/* Pinned build-ids are kept in lower case, like elfsym_build_id(). */
	assert_string_equal(o->build_id, "0123456789abcdefabcdef");
	assert_int_equal(o->nfuncs, 1);
	assert_string_equal(o->funcs[0].old_name, "plug_fn");
	assert_int_equal(o->funcs[0].old_sympos, 0);
	assert_true(o->funcs[0].has_new_func);
	assert_false(o->has_callbacks[0]);
	assert_true(o->has_callbacks[1]);
	assert_true(o->has_callbacks[2]);
	assert_false(o->has_callbacks[3]);

	assert_int_equal(pf.nstates, 2);
	assert_int_equal(pf.states[0].id, 1);
	assert_int_equal(pf.states[0].version, 2);
	assert_int_equal(pf.states[1].id, 0x1234);
	assert_int_equal(pf.states[1].version, 7);
	patchfile_free(&pf);
	assert_null(pf.objs);
	patchfile_free(&pf); /* twice is harmless */
}

static void test_valid_patch(void **state)
{
	int fds = count_fds();

	(void)state;
	check_fix("fix.so", "fix");
	assert_int_equal(count_fds(), fds);
}

/* One name at three positions is three functions; the same name at the
 * same position twice is refused (test_bad_descriptor), wherever the two
 * are in the list. */
static void test_same_name_other_positions(void **state)
{
	struct patchfile pf;

	(void)state;
	read_ok("samename.so", &pf);
	assert_int_equal(pf.objs[0].nfuncs, 4);
	assert_string_equal(pf.objs[0].funcs[3].old_name, "bar");
	assert_int_equal(pf.objs[0].funcs[3].old_sympos, 3);
	patchfile_free(&pf);
}

static void test_optimised_and_relr(void **state)
{
	(void)state;
	check_fix("fix-O2.so", "fix-O2");
	/* Packed relative relocations: addresses are in the file itself. */
	if (have_relr)
		check_fix("fix-relr.so", "fix-relr");
}

/* The references relive resolves for the agent (relive/resolution.c):
 * each (kind, object, symbol, position) once, both name forms of
 * KLP_SYMBOL, a thread-local variable's, KLP_ORIGINAL's; a patch without
 * any has none. */
static void test_references(void **state)
{
	struct patchfile pf;
	bool count = false, helper = false, dotted = false, orig = false;
	bool tls = false;
	size_t i;

	(void)state;
	read_ok("fix.so", &pf);
	assert_int_equal(pf.nrefs, 0);
	patchfile_free(&pf);
	read_ok("refs.so", &pf);
	assert_int_equal(pf.nrefs, 5);
	for (i = 0; i < pf.nrefs; i++) {
		const struct pf_ref *r = &pf.refs[i];

		if (r->original) {
			assert_string_equal(r->obj, "main");
			assert_string_equal(r->sym, "bar");
			assert_int_equal(r->sympos, 2);
			orig = true;
		} else if (!strcmp(r->sym, "ref_count")) {
			assert_string_equal(r->obj, "main");
			assert_int_equal(r->sympos, 0);
			count = true;
		} else if (!strcmp(r->sym, "ref_tls")) {
			assert_string_equal(r->obj, "main");
			assert_int_equal(r->sympos, 0);
			tls = true;
		} else if (!strcmp(r->sym, "ref_helper")) {
			assert_string_equal(r->obj, "libplug.so.1");
			assert_int_equal(r->sympos, 2);
			helper = true;
		} else {
			assert_string_equal(r->sym, "count.0");
			assert_string_equal(r->obj, "main");
			assert_int_equal(r->sympos, 3);
			dotted = true;
		}
	}
	assert_true(count && helper && dotted && orig && tls);
	patchfile_free(&pf);
	assert_null(pf.refs);
}

static void test_replace(void **state)
{
	struct patchfile pf;

	(void)state;
	read_ok("my.cumulative.so", &pf);
	assert_string_equal(pf.name, "my.cumulative");
	assert_true(pf.replace);
	assert_int_equal(pf.nobjs, 2);
	assert_int_equal(pf.nstates, 0);
	assert_null(pf.states);
	patchfile_free(&pf);
}

static void test_not_a_patch(void **state)
{
	(void)state;
	refused("noinfo.so",
		"no relive_patch_info: not a relive patch (use RELIVE_PATCH())");
	refused("badmagic.so",
		"relive_patch_info has magic 0x12345678, not 0x4b4c5052: not a "
		"relive patch (use RELIVE_PATCH())");
	refused("badabi.so",
		"patch ABI version 99, this relive supports 1: rebuild the "
		"patch with this relive's <relive/livepatch.h>");
}

static void test_new_func_not_defined(void **state)
{
	const char *msg =
		"new function for 'foo' (object main) is not defined in the "
		"patch file";

	(void)state;
	refused("extern.so", msg);
	refused("undef.so", msg);
	refused("null.so", msg);
	refused("data.so", "new function for 'foo' (object main) does not "
			   "point to code in the patch file");
	refused("externcb.so", "pre_patch callback of object main is not "
			       "defined in the patch file");
}

static void test_bad_descriptor(void **state)
{
	(void)state;
	refused("noobjs.so", "the patch has no objects (objs is empty)");
	refused("nullobjs.so", "the patch has no objects (objs is NULL)");
	refused("nofuncs.so", "object libplug.so.1 has no functions");
	refused("dupfunc.so", "function 'bar' (old_sympos 2) of object main "
			      "is listed twice");
	refused("dupobj.so", "object libplug.so.1 is listed twice");
	refused("badid.so", "build_id of object libplug.so.1 is not hex: "
			    "'0123-not-hex'");
}

static void test_not_shared_object(void **state)
{
	(void)state;
	refused("fix.o", "not a shared object; build it with cc -shared -fPIC");
	refused("fix-exec",
		"not a shared object; build it with cc -shared -fPIC");
	refused("text.so", "not an ELF file");
	refused("empty.so", "not an ELF file");
	refused("nosuch.so", "No such file or directory");
}

static void test_no_err_buffer(void **state)
{
	struct patchfile pf;

	(void)state;
	assert_int_equal(patchfile_read(tpath("noinfo.so"), &pf, NULL, 0), -1);
	assert_int_equal(patchfile_read(tpath("fix.so"), &pf, NULL, 0), 0);
	patchfile_free(&pf);
}

static void test_malloc_failures(void **state)
{
	const char *names[] = { "fix.so", "extern.so", "text.so" };
	int fds = count_fds();
	size_t i;

	(void)state;
	if (!injection_works())
		skip();
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		long k;

		for (k = 1; k < 10000; k++) {
			struct patchfile pf;
			char err[512] = "";
			long used, before = live;
			int rc;

			nallocs = 0;
			fail_at = k;
			rc = patchfile_read(tpath(names[i]), &pf, err,
					    sizeof(err));
			used = nallocs;
			fail_at = 0;
			assert_int_equal(count_fds(), fds);
			if (rc == 0) {
				assert_int_equal(pf.nobjs, 2);
				patchfile_free(&pf);
			} else {
				assert_int_equal(rc, -1);
				assert_true(err[0] != '\0');
				assert_null(pf.objs);
			}
			assert_int_equal(live, before); /* nothing leaked */
			if (used < k)
				break;
		}
		assert_true(k > 1);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_patch),
		cmocka_unit_test(test_same_name_other_positions),
		cmocka_unit_test(test_optimised_and_relr),
		cmocka_unit_test(test_references),
		cmocka_unit_test(test_replace),
		cmocka_unit_test(test_not_a_patch),
		cmocka_unit_test(test_new_func_not_defined),
		cmocka_unit_test(test_bad_descriptor),
		cmocka_unit_test(test_not_shared_object),
		cmocka_unit_test(test_no_err_buffer),
		cmocka_unit_test(test_malloc_failures),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
