/*
 * tests/unit/test_elfsym.c - cmocka tests of common/elfsym.c.
 *
 * Why this exists: the agent and the controller both trust elfsym to turn
 * (object, name, old_sympos) into an address and to say who an object is
 * (build-id, soname).  A wrong answer patches the wrong function, so each
 * answer is checked against binutils (readelf) on objects compiled here, at
 * run time, from tests/unit/fixtures: duplicate static names, a stripped
 * copy with a separate debug file, symbol versions, executables, libc, a
 * large table, malloc failures and file descriptor leaks.
 *
 * Needs -DRELIVE_SRCDIR="<source root>" and cc, readelf, objcopy, strip.
 */
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>
#include <elf.h>

#include <cmocka.h>

#include "failmalloc.h"

#include "elfsym.h"

#ifndef RELIVE_SRCDIR
#error "build with -DRELIVE_SRCDIR=\"<relive source root>\""
#endif

#define FIXTURES RELIVE_SRCDIR "/tests/unit/fixtures"
#define NBIG 20000

static char tmp[256];

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

/* The build-id that readelf -n prints for path. */
static void readelf_build_id(const char *path, char *out, size_t len)
{
	char cmd[1024], line[512];
	FILE *p;

	out[0] = '\0';
	snprintf(cmd, sizeof(cmd), "readelf -n '%s'", path);
	p = popen(cmd, "r");
	assert_non_null(p);
	while (fgets(line, sizeof(line), p)) {
		char *s = strstr(line, "Build ID: ");

		if (s) {
			snprintf(out, len, "%s", s + strlen("Build ID: "));
			out[strcspn(out, " \n")] = '\0';
		}
	}
	pclose(p);
}

/*
 * The values of the symbols called name in table (".symtab", ".dynsym") of
 * path, in table order, as readelf -sW prints them (with "@VER" for
 * versioned names).  Returns how many.
 */
static int readelf_values(const char *path, const char *table,
			  const char *name, uint64_t *values, int max)
{
	char cmd[1024], line[1024], hdr[64];
	int n = 0, in = 0;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "readelf -sW '%s'", path);
	snprintf(hdr, sizeof(hdr), "Symbol table '%s'", table);
	p = popen(cmd, "r");
	assert_non_null(p);
	while (fgets(line, sizeof(line), p)) {
		char sname[512], ndx[32];
		unsigned long long v;

		if (strstr(line, "Symbol table '")) {
			in = strstr(line, hdr) != NULL;
			continue;
		}
		if (!in)
			continue;
		if (sscanf(line, " %*u: %llx %*s %*s %*s %*s %31s %511s", &v,
			   ndx, sname) != 3)
			continue;
		if (strcmp(ndx, "UND") == 0 || strcmp(ndx, "ABS") == 0)
			continue;
		if (strcmp(sname, name) == 0 && n < max)
			values[n++] = v;
	}
	pclose(p);
	return n;
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
	return n - 1; /* the directory itself */
}

static struct elfsym_file *open_ok(const char *path)
{
	struct elfsym_file *f = NULL;
	char err[512] = "";
	int rc = elfsym_open(path, &f, err, sizeof(err));

	if (rc)
		fprintf(stderr, "elfsym_open(%s): %d %s\n", path, rc, err);
	assert_int_equal(rc, 0);
	assert_non_null(f);
	return f;
}

static uint64_t value_of(struct elfsym_file *f, const char *name,
			 unsigned long sympos)
{
	struct elfsym_sym sym;
	unsigned count;
	int rc = elfsym_lookup(f, name, sympos, &sym, &count);

	if (rc)
		fprintf(stderr, "lookup %s/%lu: %d\n", name, sympos, rc);
	assert_int_equal(rc, 0);
	return sym.value;
}

/* The file name of the libc this test runs with. */
static int find_libc(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	if (strstr(info->dlpi_name, "/libc.so")) {
		snprintf(data, 512, "%s", info->dlpi_name);
		return 1;
	}
	return 0;
}

/* ---- setup -------------------------------------------------------------- */

static int setup(void **state)
{
	const char *t = getenv("TMPDIR");
	char id[128];
	FILE *big;
	int i;

	(void)state;
	snprintf(tmp, sizeof(tmp), "%s/test_elfsym.XXXXXX", t ? t : "/tmp");
	if (!mkdtemp(tmp))
		return -1;

	/* libx.so.1: duplicate statics, its stripped copy, its debug file. */
	sh("cc -O0 -shared -fPIC -Wl,--build-id -Wl,-soname,libx.so.1 "
	   "-o %s %s/dup_a.c %s/dup_b.c",
	   tpath("libx.so.1"), FIXTURES, FIXTURES);
	sh("strip --strip-all -o %s %s", tpath("libx-stripped.so"),
	   tpath("libx.so.1"));
	sh("objcopy --only-keep-debug %s %s", tpath("libx.so.1"),
	   tpath("libx.debug"));
	readelf_build_id(tpath("libx.so.1"), id, sizeof(id));
	if (strlen(id) < 3)
		return -1;
	sh("mkdir -p %s/debug/.build-id/%.2s && cp %s %s/debug/.build-id/%.2s/%s.debug",
	   tmp, id, tpath("libx.debug"), tmp, id, id + 2);

	/* A debug file at the right place but of another build. */
	sh("cc -O0 -shared -fPIC -Wl,--build-id -o %s %s/dup_a.c",
	   tpath("other.so"), FIXTURES);
	sh("objcopy --only-keep-debug %s %s", tpath("other.so"),
	   tpath("other.debug"));
	sh("mkdir -p %s/baddebug/.build-id/%.2s && cp %s %s/baddebug/.build-id/%.2s/%s.debug",
	   tmp, id, tpath("other.debug"), tmp, id, id + 2);

	sh("cc -O0 -shared -fPIC -Wl,--version-script=%s/vers.map -o %s %s/vers.c",
	   FIXTURES, tpath("libvers.so"), FIXTURES);
	sh("strip --strip-all -o %s %s", tpath("libvers-stripped.so"),
	   tpath("libvers.so"));
	sh("cc -O0 -no-pie -o %s %s/exe.c", tpath("exe-nopie"), FIXTURES);
	sh("cc -O0 -pie -fPIE -o %s %s/exe.c", tpath("exe-pie"), FIXTURES);
	sh("cc -O0 -shared -fPIC -Wl,--build-id=none -o %s %s/dup_b.c",
	   tpath("noid.so"), FIXTURES);
	sh("echo 'not an elf file' > %s && : > %s", tpath("text.txt"),
	   tpath("empty"));

	/*
	 * A large table: NBIG global functions and NBIG local objects, in
	 * assembly (as fast to build as it is big).
	 */
	big = fopen(tpath("big.s"), "w");
	if (!big)
		return -1;
	for (i = 0; i < NBIG; i++)
		fprintf(big, "\t.text\n\t.globl f%d\n\t.type f%d, @function\n"
			     "f%d:\tret\n\t.size f%d, 1\n"
			     "\t.data\n\t.type s%d, @object\n"
			     "s%d:\t.long %d\n\t.size s%d, 4\n",
			i, i, i, i, i, i, i, i);
	fprintf(big, "\t.section .note.GNU-stack,\"\",@progbits\n");
	fclose(big);
	sh("cc -shared -o %s %s", tpath("big.so"), tpath("big.s"));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	elfsym_set_debug_root(NULL);
	if (tmp[0] && !getenv("KEEP_TMP"))
		sh("rm -rf '%s'", tmp);
	return 0;
}

/* ---- tests -------------------------------------------------------------- */

static void test_identity(void **state)
{
	struct elfsym_file *f = open_ok(tpath("libx.so.1"));
	char id[128];

	(void)state;
	readelf_build_id(tpath("libx.so.1"), id, sizeof(id));
	assert_true(strlen(id) == 40);
	assert_string_equal(elfsym_build_id(f), id);
	assert_non_null(elfsym_soname(f));
	assert_string_equal(elfsym_soname(f), "libx.so.1");
	assert_int_equal(elfsym_type(f), ET_DYN);
	assert_int_equal(elfsym_first_vaddr(f), 0);
	assert_string_equal(elfsym_table(f), ".symtab");
	elfsym_close(f);
}

/* The header-only open tells the same identity and finds no symbol. */
static void test_header_only(void **state)
{
	struct elfsym_file *full = open_ok(tpath("libx.so.1")), *f;
	char err[256];
	unsigned count = 7;

	(void)state;
	assert_int_equal(elfsym_open_header(tpath("libx.so.1"), &f, err,
					    sizeof(err)), 0);
	assert_string_equal(elfsym_build_id(f), elfsym_build_id(full));
	assert_string_equal(elfsym_soname(f), "libx.so.1");
	assert_int_equal(elfsym_type(f), elfsym_type(full));
	assert_int_equal(elfsym_first_vaddr(f), elfsym_first_vaddr(full));
	assert_string_equal(elfsym_table(f), "none");
	assert_int_equal(elfsym_lookup(f, "uses_b", 0, NULL, &count), -ENOENT);
	elfsym_close(f);
	elfsym_close(full);
	assert_int_equal(elfsym_open_header("/nonexistent/libq.so", &f, err,
					    sizeof(err)), -ENOENT);
	assert_null(f);
}

/* Functions are found by address too, whatever their name or binding. */
static void test_func_at(void **state)
{
	struct elfsym_file *f = open_ok(tpath("libx.so.1"));
	struct elfsym_sym by_name, by_addr;
	unsigned count;

	(void)state;
	assert_int_equal(elfsym_lookup(f, "uses_b", 0, &by_name, &count), 0);
	assert_int_equal(elfsym_func_at(f, by_name.value, &by_addr), 0);
	assert_int_equal(by_addr.value, by_name.value);
	assert_int_equal(by_addr.size, by_name.size);
	assert_int_equal(by_addr.type, STT_FUNC);
	/* a static one, the second "helper" */
	assert_int_equal(elfsym_lookup(f, "helper", 2, &by_name, NULL), 0);
	assert_int_equal(elfsym_func_at(f, by_name.value, &by_addr), 0);
	assert_int_equal(by_addr.size, by_name.size);
	assert_int_equal(by_addr.bind, STB_LOCAL);
	assert_int_equal(elfsym_func_at(f, by_name.value + 1, &by_addr),
			 -ENOENT);
	assert_int_equal(elfsym_func_at(f, 0, &by_addr), -ENOENT);
	elfsym_close(f);
}

/* The function that holds an address: its first byte, its last, not the
 * byte after it. */
static void test_func_containing(void **state)
{
	struct elfsym_file *f = open_ok(tpath("libx.so.1"));
	struct elfsym_sym by_name, in;

	(void)state;
	assert_int_equal(elfsym_lookup(f, "uses_b", 0, &by_name, NULL), 0);
	assert_true(by_name.size > 1);
	assert_int_equal(elfsym_func_containing(f, by_name.value, &in), 0);
	assert_int_equal(in.value, by_name.value);
	assert_int_equal(elfsym_func_containing(f, by_name.value +
						by_name.size - 1, &in), 0);
	assert_int_equal(in.value, by_name.value);
	assert_int_equal(in.size, by_name.size);
	if (elfsym_func_containing(f, by_name.value + by_name.size, &in) == 0)
		assert_true(in.value >= by_name.value + by_name.size);
	assert_int_equal(elfsym_func_containing(f, 0, &in), -ENOENT);
	elfsym_close(f);
}

static void test_sympos(void **state)
{
	struct elfsym_file *f = open_ok(tpath("libx.so.1"));
	uint64_t want[4];
	struct elfsym_sym sym;
	unsigned count = 99;

	(void)state;
	assert_int_equal(readelf_values(tpath("libx.so.1"), ".symtab",
					"helper", want, 4), 2);
	assert_int_not_equal(want[0], want[1]);

	assert_int_equal(elfsym_lookup(f, "helper", 0, &sym, &count), -EEXIST);
	assert_int_equal(count, 2);
	assert_int_equal(elfsym_lookup(f, "helper", 1, &sym, &count), 0);
	assert_int_equal(count, 2);
	assert_int_equal(sym.value, want[0]);
	assert_int_equal(sym.type, STT_FUNC);
	assert_int_equal(sym.bind, STB_LOCAL);
	assert_true(sym.size > 0);
	assert_int_equal(value_of(f, "helper", 2), want[1]);
	count = 99;
	assert_int_equal(elfsym_lookup(f, "helper", 3, &sym, &count), -ERANGE);
	assert_int_equal(count, 2);
	assert_int_equal(elfsym_lookup(f, "helper", 3, NULL, NULL), -ERANGE);

	assert_int_equal(readelf_values(tpath("libx.so.1"), ".symtab",
					"counter", want, 4), 2);
	assert_int_equal(elfsym_lookup(f, "counter", 0, NULL, &count), -EEXIST);
	assert_int_equal(elfsym_lookup(f, "counter", 2, &sym, NULL), 0);
	assert_int_equal(sym.value, want[1]);
	assert_int_equal(sym.type, STT_OBJECT);

	/* A unique global: sympos 0 and 1 both find it. */
	assert_int_equal(readelf_values(tpath("libx.so.1"), ".symtab",
					"uses_a", want, 4), 1);
	assert_int_equal(elfsym_lookup(f, "uses_a", 0, &sym, &count), 0);
	assert_int_equal(count, 1);
	assert_int_equal(sym.value, want[0]);
	assert_int_equal(sym.bind, STB_GLOBAL);
	assert_int_equal(value_of(f, "uses_a", 1), want[0]);
	assert_int_equal(elfsym_lookup(f, "uses_a", 2, &sym, &count), -ERANGE);
	assert_int_equal(count, 1);

	assert_int_equal(elfsym_lookup(f, "tls_var", 0, &sym, NULL), 0);
	assert_int_equal(sym.type, STT_TLS);

	/* Undefined here (puts), section and file symbols, unknown names. */
	assert_int_equal(elfsym_lookup(f, "puts", 0, &sym, &count), -ENOENT);
	assert_int_equal(count, 0);
	assert_int_equal(elfsym_lookup(f, "dup_a.c", 0, &sym, NULL), -ENOENT);
	assert_int_equal(elfsym_lookup(f, "", 0, &sym, NULL), -ENOENT);
	assert_int_equal(elfsym_lookup(f, "nosuch", 1, &sym, NULL), -ENOENT);
	assert_int_equal(elfsym_lookup(f, "helpe", 0, &sym, NULL), -ENOENT);
	assert_int_equal(elfsym_lookup(f, "helperx", 0, &sym, NULL), -ENOENT);
	elfsym_close(f);
}

static void test_strerror(void **state)
{
	char buf[256];

	(void)state;
	elfsym_strerror(-EEXIST, "bar", 0, 3, "libx.so.1", buf, sizeof(buf));
	assert_string_equal(buf, "symbol 'bar' is ambiguous in libx.so.1 "
				 "(3 definitions); set old_sympos");
	elfsym_strerror(-ENOENT, "bar", 0, 0, "libx.so.1", buf, sizeof(buf));
	assert_string_equal(buf, "symbol 'bar' not found in libx.so.1");
	elfsym_strerror(-ERANGE, "bar", 4, 2, "libx.so.1", buf, sizeof(buf));
	assert_string_equal(buf, "symbol 'bar' has no position 4 in libx.so.1 "
				 "(2 definitions)");
	elfsym_strerror(-ERANGE, "bar", 2, 1, "main", buf, sizeof(buf));
	assert_string_equal(buf, "symbol 'bar' has no position 2 in main "
				 "(1 definition)");
	elfsym_strerror(-EIO, "bar", 0, 0, "main", buf, sizeof(buf));
	assert_non_null(strstr(buf, "'bar'"));
	/* Truncation is safe. */
	elfsym_strerror(-EEXIST, "bar", 0, 3, "libx.so.1", buf, 8);
	assert_string_equal(buf, "symbol ");
	elfsym_strerror(-EEXIST, "bar", 0, 3, "libx.so.1", NULL, 0);

	/* With a real lookup. */
	{
		struct elfsym_file *f = open_ok(tpath("libx.so.1"));
		unsigned count;
		int rc = elfsym_lookup(f, "helper", 0, NULL, &count);

		elfsym_strerror(rc, "helper", 0, count, "libx.so.1", buf,
				sizeof(buf));
		assert_string_equal(buf, "symbol 'helper' is ambiguous in "
					 "libx.so.1 (2 definitions); set old_sympos");
		rc = elfsym_lookup(f, "helper", 5, NULL, &count);
		elfsym_strerror(rc, "helper", 5, count, "libx.so.1", buf,
				sizeof(buf));
		assert_string_equal(buf, "symbol 'helper' has no position 5 in "
					 "libx.so.1 (2 definitions)");
		elfsym_close(f);
	}
}

static void test_stripped_dynsym(void **state)
{
	struct elfsym_file *full = open_ok(tpath("libx.so.1"));
	struct elfsym_file *f;
	struct elfsym_sym sym;

	(void)state;
	elfsym_set_debug_root(tmp); /* no debug files there */
	f = open_ok(tpath("libx-stripped.so"));
	assert_string_equal(elfsym_table(f), ".dynsym");
	assert_string_equal(elfsym_build_id(f), elfsym_build_id(full));
	assert_string_equal(elfsym_soname(f), "libx.so.1");
	assert_int_equal(elfsym_lookup(f, "helper", 0, &sym, NULL), -ENOENT);
	assert_int_equal(value_of(f, "uses_a", 0), value_of(full, "uses_a", 0));
	assert_int_equal(value_of(f, "libx_unique", 0),
			 value_of(full, "libx_unique", 0));
	assert_int_equal(elfsym_lookup(f, "tls_var", 0, &sym, NULL), 0);
	assert_int_equal(sym.type, STT_TLS);
	assert_int_equal(elfsym_lookup(f, "puts", 0, &sym, NULL), -ENOENT);
	elfsym_close(f);
	elfsym_close(full);
	elfsym_set_debug_root(NULL);
}

static void test_debug_file(void **state)
{
	struct elfsym_file *full = open_ok(tpath("libx.so.1"));
	struct elfsym_file *f;
	char root[512];
	unsigned count;

	(void)state;
	snprintf(root, sizeof(root), "%s/debug", tmp);
	elfsym_set_debug_root(root);
	f = open_ok(tpath("libx-stripped.so"));
	assert_string_equal(elfsym_table(f), "debug .symtab");
	/* Identity still comes from the object itself. */
	assert_string_equal(elfsym_soname(f), "libx.so.1");
	assert_int_equal(elfsym_type(f), ET_DYN);
	assert_int_equal(elfsym_lookup(f, "helper", 0, NULL, &count), -EEXIST);
	assert_int_equal(count, 2);
	assert_int_equal(value_of(f, "helper", 1), value_of(full, "helper", 1));
	assert_int_equal(value_of(f, "helper", 2), value_of(full, "helper", 2));
	assert_int_equal(value_of(f, "counter", 2), value_of(full, "counter", 2));
	assert_int_equal(value_of(f, "uses_b", 0), value_of(full, "uses_b", 0));
	elfsym_close(f);

	/* A file with .symtab never looks for a debug file. */
	f = open_ok(tpath("libx.so.1"));
	assert_string_equal(elfsym_table(f), ".symtab");
	elfsym_close(f);

	/* A debug file of another build is not used. */
	snprintf(root, sizeof(root), "%s/baddebug", tmp);
	elfsym_set_debug_root(root);
	f = open_ok(tpath("libx-stripped.so"));
	assert_string_equal(elfsym_table(f), ".dynsym");
	assert_int_equal(elfsym_lookup(f, "helper", 1, NULL, NULL), -ENOENT);
	elfsym_close(f);

	/* Nor is the system's, for our fresh build-id. */
	elfsym_set_debug_root(NULL);
	f = open_ok(tpath("libx-stripped.so"));
	assert_string_equal(elfsym_table(f), ".dynsym");
	elfsym_close(f);
	elfsym_close(full);
}

static void check_versions(const char *path, const char *table)
{
	struct elfsym_file *f = open_ok(path);
	uint64_t v1, v2, old;
	struct elfsym_sym sym;
	unsigned count;

	assert_string_equal(elfsym_table(f), table);
	assert_int_equal(readelf_values(path, ".dynsym", "foo@V1", &v1, 1), 1);
	assert_int_equal(readelf_values(path, ".dynsym", "foo@@V2", &v2, 1), 1);
	assert_int_equal(readelf_values(path, ".dynsym", "old_only@V1", &old,
					1), 1);
	/* The plain name is the default version, as for dlsym(). */
	assert_int_equal(elfsym_lookup(f, "foo", 0, &sym, &count), 0);
	assert_int_equal(count, 1);
	assert_int_equal(sym.value, v2);
	assert_int_equal(value_of(f, "foo@@V2", 0), v2);
	assert_int_equal(value_of(f, "foo@V1", 0), v1);
	assert_int_equal(elfsym_lookup(f, "foo@V3", 0, &sym, NULL), -ENOENT);
	/* Only a non-default version: the plain name still finds it. */
	assert_int_equal(value_of(f, "old_only", 0), old);
	assert_int_equal(value_of(f, "old_only@V1", 0), old);
	/* An alias at the same address is the same definition. */
	assert_int_equal(readelf_values(path, ".dynsym", "bar@@V2", &v2, 1), 1);
	assert_int_equal(elfsym_lookup(f, "bar", 0, &sym, &count), 0);
	assert_int_equal(count, 1);
	assert_int_equal(sym.value, v2);
	assert_int_equal(elfsym_lookup(f, "bar", 2, &sym, &count), -ERANGE);
	/* Version definition symbols (V1, V2) are not code or data. */
	assert_int_equal(elfsym_lookup(f, "V1", 0, &sym, NULL), -ENOENT);
	elfsym_close(f);
}

static void test_versions(void **state)
{
	(void)state;
	elfsym_set_debug_root(tmp);
	check_versions(tpath("libvers.so"), ".symtab");
	check_versions(tpath("libvers-stripped.so"), ".dynsym");
	elfsym_set_debug_root(NULL);
}

static void test_executables(void **state)
{
	struct elfsym_file *f;
	uint64_t want;

	(void)state;
	f = open_ok(tpath("exe-nopie"));
	assert_int_equal(elfsym_type(f), ET_EXEC);
	assert_int_equal(elfsym_first_vaddr(f), 0x400000);
	assert_null(elfsym_soname(f));
	assert_int_equal(readelf_values(tpath("exe-nopie"), ".symtab",
					"compute", &want, 1), 1);
	assert_int_equal(value_of(f, "compute", 0), want);
	assert_true(value_of(f, "main", 0) >= 0x400000);
	elfsym_close(f);

	f = open_ok(tpath("exe-pie"));
	assert_int_equal(elfsym_type(f), ET_DYN);
	assert_int_equal(elfsym_first_vaddr(f), 0);
	assert_null(elfsym_soname(f));
	assert_int_equal(readelf_values(tpath("exe-pie"), ".symtab",
					"compute", &want, 1), 1);
	assert_int_equal(value_of(f, "compute", 0), want);
	elfsym_close(f);
}

static void test_no_build_id(void **state)
{
	struct elfsym_file *f = open_ok(tpath("noid.so"));

	(void)state;
	assert_string_equal(elfsym_build_id(f), "");
	assert_null(elfsym_soname(f));
	assert_true(value_of(f, "helper", 0) != value_of(f, "uses_b", 0));
	elfsym_close(f);
}

static void test_errors(void **state)
{
	struct elfsym_file *f = (struct elfsym_file *)1;
	char err[512], want[600];
	int fds = count_fds();

	(void)state;
	assert_int_equal(elfsym_open(tpath("text.txt"), &f, err, sizeof(err)),
			 -ENOEXEC);
	assert_null(f);
	snprintf(want, sizeof(want), "%s: not an ELF file", tpath("text.txt"));
	assert_string_equal(err, want);

	assert_true(elfsym_open(tpath("empty"), &f, err, sizeof(err)) < 0);
	assert_null(f);
	assert_non_null(strstr(err, tpath("empty")));

	assert_int_equal(elfsym_open(tpath("nosuch"), &f, err, sizeof(err)),
			 -ENOENT);
	assert_null(f);
	snprintf(want, sizeof(want), "%s: No such file or directory",
		 tpath("nosuch"));
	assert_string_equal(err, want);

	assert_int_equal(elfsym_open(tmp, &f, err, sizeof(err)) < 0, 1);
	assert_null(f);

	/* err may be omitted. */
	assert_int_equal(elfsym_open(tpath("nosuch"), &f, NULL, 0), -ENOENT);
	assert_int_equal(count_fds(), fds);
}

static void test_no_fd_left(void **state)
{
	struct elfsym_file *f;
	char root[512];
	int fds = count_fds();

	(void)state;
	snprintf(root, sizeof(root), "%s/debug", tmp);
	elfsym_set_debug_root(root);
	f = open_ok(tpath("libx-stripped.so"));
	assert_string_equal(elfsym_table(f), "debug .symtab");
	assert_int_equal(count_fds(), fds);
	elfsym_close(f);
	f = open_ok(tpath("libx.so.1"));
	assert_int_equal(count_fds(), fds);
	elfsym_close(f);
	elfsym_set_debug_root(NULL);
}

/* Lines of /proc/self/maps that name a file of the test's directory. */
static int mappings_of_tmp(void)
{
	FILE *m = fopen("/proc/self/maps", "r");
	char line[1024];
	int n = 0;

	assert_non_null(m);
	while (fgets(line, sizeof(line), m))
		if (strstr(line, tmp))
			n++;
	fclose(m);
	return n;
}

static bool files_mapped; /* the group of tests running */

/* A file read is never mapped (the agent changes no mapping of the process
 * it runs in); a file mapped stays so while its index uses it, and not a
 * moment longer. */
static void test_no_mapping_left(void **state)
{
	struct elfsym_file *f, *g;
	struct elfsym_sym sym;

	(void)state;
	f = open_ok(tpath("big.so"));
	assert_int_equal(mappings_of_tmp(), files_mapped ? 1 : 0);
	assert_int_equal(elfsym_lookup(f, "f100", 0, &sym, NULL), 0);
	g = open_ok(tpath("libx.so.1"));
	assert_int_equal(mappings_of_tmp(), files_mapped ? 2 : 0);
	elfsym_close(f);
	assert_int_equal(mappings_of_tmp(), files_mapped ? 1 : 0);
	assert_int_equal(elfsym_lookup(g, "f100", 0, &sym, NULL), -ENOENT);
	elfsym_close(g);
	assert_int_equal(mappings_of_tmp(), 0);
	/* only what the headers say: nothing kept */
	f = NULL;
	assert_int_equal(elfsym_open_header(tpath("big.so"), &f, NULL, 0), 0);
	assert_int_equal(mappings_of_tmp(), 0);
	elfsym_close(f);
}

static void check_libc(const char *path, const char *table)
{
	struct elfsym_file *f;
	struct elfsym_sym sym;
	struct timespec a, b;
	unsigned count;
	char id[128];
	double ms;
	int i;

	clock_gettime(CLOCK_MONOTONIC, &a);
	f = open_ok(path);
	for (i = 0; i < 1000; i++)
		assert_int_equal(elfsym_lookup(f, "malloc", 0, &sym, NULL), 0);
	clock_gettime(CLOCK_MONOTONIC, &b);
	ms = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
	if (ms >= 1000)
		fprintf(stderr, "libc (%s): %.1f ms\n", elfsym_table(f), ms);
	assert_true(ms < 1000); /* linear, not quadratic */

	if (table)
		assert_string_equal(elfsym_table(f), table);
	readelf_build_id(path, id, sizeof(id));
	assert_string_equal(elfsym_build_id(f), id);
	assert_string_equal(elfsym_soname(f), "libc.so.6");
	assert_int_equal(elfsym_lookup(f, "malloc", 0, &sym, &count), 0);
	assert_int_equal(count, 1);
	assert_true(sym.type == STT_FUNC || sym.type == STT_GNU_IFUNC);
	/*
	 * memcpy: memcpy@GLIBC_2.2.5 and memcpy@@GLIBC_2.14 (and, in the
	 * debug .symtab, a local alias "memcpy"): the plain name is the
	 * default version.
	 */
	assert_int_equal(elfsym_lookup(f, "memcpy", 0, &sym, &count), 0);
	assert_int_equal(count, 1);
	assert_int_equal(sym.value, value_of(f, "memcpy@@GLIBC_2.14", 0));
	assert_int_not_equal(sym.value, value_of(f, "memcpy@GLIBC_2.2.5", 0));
	assert_int_equal(elfsym_lookup(f, "relive_no_such", 0, &sym, NULL), -ENOENT);
	elfsym_close(f);
}

static void test_libc(void **state)
{
	char path[512] = "";

	(void)state;
	dl_iterate_phdr(find_libc, path);
	if (!path[0])
		skip();
	/* Its .dynsym (no debug files under tmp)... */
	elfsym_set_debug_root(tmp);
	check_libc(path, ".dynsym");
	/* ...and whatever this system has (libc6-dbg: debug .symtab). */
	elfsym_set_debug_root(NULL);
	check_libc(path, NULL);
}

static void test_big_table(void **state)
{
	struct elfsym_file *f;
	struct elfsym_sym sym;
	struct timespec a, b;
	char name[32];
	uint64_t prev = 0;
	double ms;
	int i;

	(void)state;
	clock_gettime(CLOCK_MONOTONIC, &a);
	f = open_ok(tpath("big.so"));
	for (i = 0; i < NBIG; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		assert_int_equal(elfsym_lookup(f, name, 0, &sym, NULL), 0);
		assert_int_equal(sym.type, STT_FUNC);
		assert_true(sym.value > prev); /* f0, f1 ... in address order */
		prev = sym.value;
		snprintf(name, sizeof(name), "s%d", i);
		assert_int_equal(elfsym_lookup(f, name, 0, &sym, NULL), 0);
		assert_int_equal(sym.type, STT_OBJECT);
	}
	assert_int_equal(elfsym_lookup(f, "f20000", 0, &sym, NULL), -ENOENT);
	clock_gettime(CLOCK_MONOTONIC, &b);
	elfsym_close(f);
	ms = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
	assert_true(ms < 3000); /* linear, not quadratic */
}

static void test_malloc_failures(void **state)
{
	const char *paths[] = { "libx-stripped.so", "libvers-stripped.so",
				"libx.so.1", "text.txt" };
	char root[512];
	int fds = count_fds();
	size_t p;

	(void)state;
	if (!injection_works())
		skip();
	snprintf(root, sizeof(root), "%s/debug", tmp);
	elfsym_set_debug_root(root);
	for (p = 0; p < sizeof(paths) / sizeof(paths[0]); p++) {
		long k;

		for (k = 1; k < 10000; k++) {
			struct elfsym_file *f = NULL;
			char err[512] = "";
			long used, before = live;
			int rc;

			nallocs = 0;
			fail_at = k;
			rc = elfsym_open(tpath(paths[p]), &f, err, sizeof(err));
			used = nallocs;
			fail_at = 0;
			assert_int_equal(count_fds(), fds);
			if (rc == 0) {
				assert_non_null(f);
				assert_int_equal(elfsym_lookup(f, "uses_b", 0,
							       NULL, NULL),
						 strcmp(paths[p], "libvers-stripped.so") ?
						 0 : -ENOENT);
				elfsym_close(f);
			} else {
				assert_null(f);
				assert_true(err[0] != '\0');
			}
			assert_int_equal(live, before); /* nothing leaked */
			if (used < k) /* nothing failed: all paths tried */
				break;
		}
		assert_true(k > 1);
	}
	elfsym_set_debug_root(NULL);
}

/* The same tests with the files mapped, as the controller opens them. */
static int setup_mapped(void **state)
{
	elfsym_set_mapped(true);
	files_mapped = true;
	return setup(state);
}

static int teardown_mapped(void **state)
{
	elfsym_set_mapped(false);
	files_mapped = false;
	return teardown(state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_identity),
		cmocka_unit_test(test_header_only),
		cmocka_unit_test(test_func_at),
		cmocka_unit_test(test_func_containing),
		cmocka_unit_test(test_sympos),
		cmocka_unit_test(test_strerror),
		cmocka_unit_test(test_stripped_dynsym),
		cmocka_unit_test(test_debug_file),
		cmocka_unit_test(test_versions),
		cmocka_unit_test(test_executables),
		cmocka_unit_test(test_no_build_id),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_no_fd_left),
		cmocka_unit_test(test_no_mapping_left),
		cmocka_unit_test(test_libc),
		cmocka_unit_test(test_big_table),
		cmocka_unit_test(test_malloc_failures),
	};

	int failed = cmocka_run_group_tests_name("elfsym, files read", tests,
						 setup, teardown);

	return failed + cmocka_run_group_tests_name("elfsym, files mapped",
						    tests, setup_mapped,
						    teardown_mapped);
}
