/*
 * relive/patchfile.h - what a patch file says, read without loading it.
 *
 * The controller checks a patch before it touches the target: the file is a
 * relive patch (it defines relive_patch_info with the right magic and ABI),
 * every object and function it names, every new function it points to.  The
 * descriptor is data with pointers, so the reader applies the file's
 * R_X86_64_RELATIVE relocations (and R_X86_64_64 against symbols defined in
 * the file) to follow them.
 */
#ifndef RELIVE_PATCHFILE_H
#define RELIVE_PATCHFILE_H

#include <stdbool.h>
#include <stddef.h>

struct pf_func {
	char *old_name;
	unsigned long old_sympos;
	bool has_new_func;     /* new_func is non-NULL and defined in the file */
	uint64_t new_value;    /* its address in the file (link-time) */
};

struct pf_object {
	char *name;            /* NULL for the main executable */
	char *build_id;        /* NULL when not pinned */
	struct pf_func *funcs;
	size_t nfuncs;
	bool has_callbacks[4]; /* pre_patch, post_patch, pre_unpatch, post_unpatch */
};

struct pf_state {
	unsigned long id;
	unsigned int version;
};

/* A KLP_SYMBOL or KLP_ORIGINAL reference of the patch (common/klpref.h),
 * as its dynamic relocations name it (GLOB_DAT, JUMP_SLOT, 64: an
 * address; DTPMOD64, DTPOFF64: a thread-local variable); each (kind,
 * object, symbol, position) once. */
struct pf_ref {
	char *obj;             /* "main" for the executable */
	char *sym;
	unsigned long sympos;
	bool original;         /* KLP_ORIGINAL: the function's original code */
};

struct patchfile {
	char *path;
	char *name;            /* file name without directory and ".so" */
	bool replace;
	struct pf_object *objs;
	size_t nobjs;
	struct pf_state *states;
	size_t nstates;
	struct pf_ref *refs;
	size_t nrefs;
};

/*
 * Reads path.  Returns 0, or -1 with err filled with a message that says
 * what is wrong and where ("fix.o: not a shared object; build the patch
 * with cc -shared -fPIC", "fix.so: no relive_patch_info: not a relive patch
 * (use RELIVE_PATCH())", "fix.so: function 'foo' of object 'main' has no
 * new_func", "fix.so: new_func of 'foo' is not defined in the patch file").
 */
int patchfile_read(const char *path, struct patchfile *pf, char *err,
		   size_t errlen);
void patchfile_free(struct patchfile *pf);

#endif
