/*
 * tests/unit/test_proc.c - cmocka tests of relive/proc.c's map reader.
 *
 * Why this exists: every step of relive that finds an object, the agent or
 * libc in a process goes through proc_maps(), which parses
 * /proc/PID/maps by hand (sscanf cost a fifth of relive's CPU in
 * `--all`) and keeps the map of one step (see proc.c).  These tests read
 * this program's own map and check each file mapping against the kernel's
 * text parsed the plain way, including a path with spaces, and an
 * anonymous mapping; and that the kept map is the one read until
 * proc_maps_forget() says it may have changed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "relive.h"

/* relive.h's logging, which proc.c does not use but other files declare */
void vlog(const char *fmt, ...)
{
	(void)fmt;
}

static bool has(const struct proc_map *m, size_t n, uint64_t lo)
{
	for (size_t i = 0; i < n; i++)
		if (m[i].lo == lo)
			return true;
	return false;
}

/* Every line of the kernel's text, parsed with sscanf, equals the entry
 * proc_maps() made of it. */
static void test_matches_the_kernel_text(void **state)
{
	char tmpl[] = "/tmp/relive test map XXXXXX";
	struct proc_map *m;
	char line[8192];
	size_t n, i = 0;
	void *file, *anon;
	FILE *f;
	int fd;

	(void)state;
	fd = mkstemp(tmpl); /* a path with spaces */
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 8192), 0);
	file = mmap(NULL, 8192, PROT_READ, MAP_PRIVATE, fd, 4096);
	assert_true(file != MAP_FAILED);
	anon = mmap(NULL, 4096, PROT_READ | PROT_EXEC,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(anon != MAP_FAILED);

	proc_maps_forget();
	assert_int_equal(proc_maps(getpid(), &m, &n), 0);
	f = fopen("/proc/self/maps", "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi, off;
		char perms[8], path[4096] = "";
		int pos = 0;

		assert_true(sscanf(line, "%lx-%lx %7s %lx %*s %*s%n", &lo, &hi,
				   perms, &off, &pos) >= 4);
		sscanf(line + pos, " %4095[^\n]", path);
		/* Anonymous memory may grow or merge between the two reads
		 * (the allocator, AddressSanitizer's regions): compare the
		 * file mappings, which nothing here changes, and the one
		 * anonymous mapping this test made. */
		if (path[0] != '/' && lo != (uintptr_t)anon)
			continue;
		for (i = 0; i < n && m[i].lo != lo; i++)
			;
		assert_true(i < n);
		assert_int_equal(m[i].hi, hi);
		assert_int_equal(m[i].off, off);
		assert_string_equal(m[i].perms, perms);
		assert_string_equal(m[i].path, path);
	}
	fclose(f);
	assert_true(has(m, n, (uintptr_t)file));
	assert_true(has(m, n, (uintptr_t)anon));
	for (i = 0; i < n; i++)
		if (m[i].lo == (uintptr_t)file) {
			assert_string_equal(m[i].path, tmpl);
			assert_int_equal(m[i].off, 4096);
			assert_string_equal(m[i].perms, "r--p");
		} else if (m[i].lo == (uintptr_t)anon) {
			assert_string_equal(m[i].path, "");
			assert_string_equal(m[i].perms, "r-xp");
		}
	free(m);
	munmap(file, 8192);
	munmap(anon, 4096);
	close(fd);
	unlink(tmpl);
}

/* The map read in a step is kept: a mapping made since shows only after
 * proc_maps_forget(). */
static void test_kept_until_forgotten(void **state)
{
	struct proc_map *m;
	size_t n;
	void *p;

	(void)state;
	proc_maps_forget();
	assert_int_equal(proc_maps(getpid(), &m, &n), 0);
	free(m);
	p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(p != MAP_FAILED);
	assert_int_equal(proc_maps(getpid(), &m, &n), 0);
	assert_false(has(m, n, (uintptr_t)p));
	free(m);
	proc_maps_forget();
	assert_int_equal(proc_maps(getpid(), &m, &n), 0);
	assert_true(has(m, n, (uintptr_t)p));
	free(m);
	munmap(p, 4096);
}

static bool has_path(const struct proc_map *m, size_t n, const char *path)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(m[i].path, path))
			return true;
	return false;
}

/* Another process is never answered from this one's kept map: this
 * program's file is in its own map, not in its parent's (the test runner). */
static void test_other_process(void **state)
{
	char exe[4096];
	struct proc_map *m;
	ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	size_t n;

	(void)state;
	assert_true(len > 0);
	exe[len] = '\0';
	proc_maps_forget();
	assert_int_equal(proc_maps(getpid(), &m, &n), 0);
	assert_true(has_path(m, n, exe));
	free(m);
	assert_int_equal(proc_maps(getppid(), &m, &n), 0);
	assert_true(n > 0);
	assert_false(has_path(m, n, exe));
	free(m);
	assert_true(proc_maps(999999999, &m, &n) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_matches_the_kernel_text),
		cmocka_unit_test(test_kept_until_forgotten),
		cmocka_unit_test(test_other_process),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
