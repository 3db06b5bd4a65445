/*
 * common/klpref.h - the names a patch's references into an object carry
 * (kernel: the ".klp.sym.OBJ.SYM,POS" names of klp relocations).
 *
 * KLP_SYMBOL("obj", sym, pos) and KLP_ORIGINAL(...) (include/relive/
 * livepatch.h) name an undefined symbol "relive.klp.sym.OBJ.SYM.POS" or
 * "relive.klp.orig.OBJ.SYM.POS"; relive-build writes "OBJ:SYM.POS", a form
 * in which SYM may hold dots ("count.0", "f.isra.0").  The agent resolves
 * such references where it loads a patch, and relive resolves the same
 * ones when it checks the patch (relive/resolution.c): both split a name
 * with the one rule below.
 */
#ifndef RELIVE_KLPREF_H
#define RELIVE_KLPREF_H

#include <stddef.h>

#define RELIVE_KLP_SYM_PREFIX "relive.klp.sym."
#define RELIVE_KLP_ORIG_PREFIX "relive.klp.orig."

/* A reference's parts, pointing into the name split. */
struct relive_klp_ref {
	const char *obj;       /* "main" for the executable */
	size_t objlen;
	const char *sym;
	size_t symlen;
	unsigned long sympos;
};

/*
 * Splits s, the name after its prefix: "OBJ:SYM.POS", else "OBJ.SYM.POS"
 * where SYM is what lies between the last two dots (OBJ may hold dots:
 * "libplug.so").  POS is decimal digits.  Returns 0, or -1 when s has
 * neither form.
 */
int relive_klp_ref_parse(const char *s, struct relive_klp_ref *r);

#endif
