/*
 * builder/main.c - relive-diff-object, the part of relive-build that reads
 * object files (kpatch-build's create-diff-object plays this role for the
 * kernel).  The relive-build script drives it:
 *
 *   relive-diff-object compare [--diff FIX.diff] ORIG.o PATCHED.o
 *       prints what differs; exit 0 nothing, 1 something to patch,
 *       2 a change that cannot be patched live (refused), 3 an error.
 *   relive-diff-object emit --diff FIX.diff --target RUNNING --object NAME
 *       --serial N --descriptor FILE --large LARGE.o -o OUT.o ORIG.o PATCHED.o
 *       writes the patch's object for one source file; exit 0, 2 (refused),
 *       3 (error) or 4 (the file has no code in the target: nothing
 *       written).
 *   relive-diff-object samecode RUNNING REBUILT
 *       exit 0 when every function has the same code, 1 when not, 3 error.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dobj.h"

static int usage(void)
{
	fprintf(stderr,
		"usage: relive-diff-object compare [--diff FIX.diff] ORIG.o PATCHED.o\n"
		"       relive-diff-object emit --diff FIX.diff --target RUNNING "
		"--object NAME\n"
		"           --serial N --descriptor FILE --large LARGE.o -o OUT.o "
		"ORIG.o PATCHED.o\n"
		"       relive-diff-object samecode RUNNING REBUILT\n");
	return 3;
}

static void print_diff(const struct ddiff *d)
{
	size_t i;

	for (i = 0; i < d->n; i++) {
		const struct dentry *e = &d->e[i];

		if (e->status == D_SAME)
			continue;
		char was[300] = "";

		if (e->oldname && strcmp(e->oldname, e->name))
			snprintf(was, sizeof(was), " (was %s)", e->oldname);
		printf("  %-9s %s %s%s%s%s%s\n",
		       e->status == D_LINES ? "moved" : dstatus_name(e->status),
		       e->type == STT_FUNC ? "function" : "data", e->name,
		       e->cold ? " (cold part)" : "", was,
		       e->why ? ": " : "", e->why ? e->why : "");
	}
	for (i = 0; i < d->nrefusals; i++)
		printf("  REFUSED   %s\n", d->refusals[i].what);
}

static int load(const char *diff, const char *a, const char *b,
		struct linemap **lm, struct dobj **oa, struct dobj **ob,
		struct ddiff *d)
{
	char err[1024];

	*lm = NULL;
	*oa = *ob = NULL;
	if (diff && !(*lm = linemap_read(diff, err, sizeof(err))))
		goto bad;
	if (dobj_open(a, oa, err, sizeof(err)) || dobj_open(b, ob, err, sizeof(err)))
		goto bad;
	if (diff_objects(*oa, *ob, *lm, d, err, sizeof(err)))
		goto bad;
	return 0;
bad:
	fprintf(stderr, "relive-diff-object: %s\n", err);
	return -1;
}

static int cmd_compare(int argc, char **argv)
{
	const char *diff = NULL;
	struct linemap *lm;
	struct dobj *a, *b;
	struct ddiff d;
	int rc;

	if (argc >= 3 && !strcmp(argv[1], "--diff")) {
		diff = argv[2];
		argc -= 2;
		argv += 2;
	}
	if (argc != 3)
		return usage();
	if (load(diff, argv[1], argv[2], &lm, &a, &b, &d))
		return 3;
	printf("%s:\n", d.file ? d.file : argv[2]);
	print_diff(&d);
	rc = d.nrefusals ? 2
	     : (ddiff_count(&d, D_CHANGED, 0) || ddiff_count(&d, D_NEW, STT_FUNC)) ? 1
												   : 0;
	ddiff_free(&d);
	dobj_close(a);
	dobj_close(b);
	linemap_free(lm);
	return rc;
}

static int cmd_emit(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "diff", required_argument, NULL, 'd' },
		{ "target", required_argument, NULL, 't' },
		{ "object", required_argument, NULL, 'O' },
		{ "serial", required_argument, NULL, 's' },
		{ "descriptor", required_argument, NULL, 'D' },
		{ "large", required_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 },
	};
	const char *diff = NULL, *large = NULL, *out = NULL, *desc = NULL;
	struct emit_opts eo = { .objname = "main", .report = stdout };
	struct linemap *lm;
	struct dobj *a, *b, *l = NULL;
	struct ddiff d;
	char err[1024];
	int c, rc = 3;

	optind = 1;
	while ((c = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
		switch (c) {
		case 'd': diff = optarg; break;
		case 't': eo.target = optarg; break;
		case 'O': eo.objname = optarg; break;
		case 's': eo.serial = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'D': desc = optarg; break;
		case 'l': large = optarg; break;
		case 'o': out = optarg; break;
		default: return usage();
		}
	}
	if (optind + 2 != argc || !eo.target || !large || !out || !desc)
		return usage();
	if (load(diff, argv[optind], argv[optind + 1], &lm, &a, &b, &d))
		return 3;
	printf("%s:\n", d.file ? d.file : argv[optind + 1]);
	print_diff(&d);
	if (d.nrefusals) {
		rc = 2;
		goto out;
	}
	if (!(eo.descriptor = fopen(desc, "a"))) {
		perror(desc);
		goto out;
	}
	if (dobj_open(large, &l, err, sizeof(err)) ||
	    (c = emit_patch_object(l, a, &d, &eo, out, err, sizeof(err))) < 0) {
		fprintf(stderr, "relive-diff-object: %s\n", err);
		goto out;
	}
	rc = c == EMIT_NOT_IN_TARGET ? 4 : 0;
out:
	if (eo.descriptor)
		fclose(eo.descriptor);
	dobj_close(l);
	ddiff_free(&d);
	dobj_close(a);
	dobj_close(b);
	linemap_free(lm);
	return rc;
}

static int cmd_samecode(int argc, char **argv)
{
	char err[1024];
	long n;

	if (argc != 3)
		return usage();
	n = samecode_compare(argv[1], argv[2], stdout, 10, err, sizeof(err));
	if (n < 0) {
		fprintf(stderr, "relive-diff-object: %s\n", err);
		return 3;
	}
	if (n)
		printf("  %ld function%s differ%s\n", n, n == 1 ? "" : "s",
		       n == 1 ? "s" : "");
	return n ? 1 : 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2)
		return usage();
	if (!strcmp(argv[1], "compare"))
		return cmd_compare(argc - 1, argv + 1);
	if (!strcmp(argv[1], "emit"))
		return cmd_emit(argc - 1, argv + 1);
	if (!strcmp(argv[1], "samecode"))
		return cmd_samecode(argc - 1, argv + 1);
	return usage();
}
