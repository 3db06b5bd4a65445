/*
 * builder/dobj.h - the patch builder's view of object files (relive-build).
 *
 * relive-build compiles the original and the patched source tree with
 * -ffunction-sections -fdata-sections, so that every function and every
 * variable sits in a section of its own, and then works object file by
 * object file, the way kpatch-build's create-diff-object does for the
 * kernel:
 *
 *   object.c    reads a relocatable object (sections, symbols, relocations)
 *               with libelf and names what each relocation points at;
 *   linemap.c   reads the unified diff, to tell a line number that only
 *               moved (__LINE__ churn) from a real change;
 *   compare.c   compares two builds of one source file function by
 *               function and data object by data object, and refuses what
 *               cannot be patched live;
 *   regs.c      finds the callers that keep a value in a register across
 *               a call to a changed function (GCC's IPA-RA);
 *   emit.c      writes the relocatable object that becomes the patch: the
 *               changed and new functions, with every reference to the
 *               unchanged code and data of the target turned into a
 *               relive per-object reference (KLP_SYMBOL);
 *   samecode.c  checks that a rebuilt binary has the same code as the one
 *               that runs (the reproducibility check);
 *   main.c      the relive-diff-object command the relive-build script runs.
 */
#ifndef RELIVE_DOBJ_H
#define RELIVE_DOBJ_H

#include <gelf.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct drel {
	uint64_t offset;
	uint32_t type;
	int64_t addend;
	size_t sym; /* index into dobj.syms */
};

struct dsec {
	const char *name;
	GElf_Shdr sh;
	const uint8_t *bytes; /* NULL for SHT_NOBITS */
	struct drel *rels;
	size_t nrels;
};

struct dsym {
	const char *name;
	char *norm; /* name without its numeric suffixes ("calls.1" -> "calls") */
	char *canon; /* the name identities use: after diff_objects(), the
			original build's name of the same thing */
	GElf_Sym sym;
	int type, bind;
};

struct dobj {
	char *path;
	int fd;
	Elf *elf;
	struct dsec *secs;
	size_t nsecs;
	struct dsym *syms;
	size_t nsyms;
	const char *file; /* the first STT_FILE name: the source file */
	bool from_asm;    /* assembled from .s/.S (a compiler always leaves
			     a .comment section and a file symbol) */
};

/* Opens a relocatable x86-64 object.  Returns 0, or -1 with err filled. */
int dobj_open(const char *path, struct dobj **out, char *err, size_t errlen);
void dobj_close(struct dobj *o);

/* A name without the numeric parts the compiler numbers per build:
 * "foo.constprop.0.isra.0" -> "foo.constprop.isra", "count.12" -> "count".
 * Returns a malloc'd string. */
char *dobj_normalize(const char *name);

/* The defined function or object symbol of that (exact) name, or -1. */
long dobj_find(const struct dobj *o, const char *name);
/* The same by normalized name; -1 when none, -2 when several. */
long dobj_find_norm(const struct dobj *o, const char *norm, int type);
/* The named function or object symbol that covers offset off of section
 * shndx, or -1. */
long dobj_sym_at(const struct dobj *o, size_t shndx, uint64_t off);
/* The bytes a relocation of this type patches (4 or 8), 0 if unknown. */
int dobj_rel_width(uint32_t type);
/* How far a PC-relative relocation's addend is from the referenced offset
 * for the usual instruction forms (4), 0 for absolute ones. */
int dobj_rel_pcbias(uint32_t type);
/* Whether symbol i is a function or object symbol defined in a section. */
bool dobj_is_defined(const struct dobj *o, size_t i);
bool dobj_is_writable(const struct dobj *o, size_t i);

/*
 * What a relocation points at, as a string that is equal in two builds when
 * the thing referred to is the same: "fn:helper+0", "obj:counter+4",
 * "ext:memcpy+0", "str:\"hello\"", "anon:<hash>"; read-only data carries a
 * hash of its content, so a changed constant changes every function that
 * uses it.  Writes at most len bytes.
 */
void dobj_rel_ident(const struct dobj *o, const struct drel *r, char *buf,
		    size_t len);

/* Whether r is relative to a section (a section symbol, or a label such
 * as ".LC0"): *shndx and *addend (from the section's start) filled. */
bool dobj_rel_section(const struct dobj *o, const struct drel *r,
		      size_t *shndx, int64_t *addend);
/* Symbol index of a section symbol resolved to a named symbol: when r
 * points into a named symbol, *named gets it and *off the offset inside;
 * otherwise *named is -1. */
void dobj_rel_target(const struct dobj *o, const struct drel *r, long *named,
		     int64_t *off);

/* ---- linemap.c ---- */

struct linemap;
/* Reads a unified diff.  NULL on error with err filled. */
struct linemap *linemap_read(const char *diffpath, char *err, size_t errlen);
void linemap_free(struct linemap *m);
/* Whether the diff moves line oldline of the file whose base name is file
 * to newline, without changing it. */
bool linemap_moved(const struct linemap *m, const char *file,
		   unsigned long oldline, unsigned long newline);
/* Whether the diff touches a file of that base name at all. */
bool linemap_touches(const struct linemap *m, const char *file);

/* ---- compare.c ---- */

enum dstatus {
	D_SAME,     /* identical code */
	D_LINES,    /* differs only in line numbers the diff moved */
	D_CHANGED,  /* its code changed: the patch replaces it */
	D_NEW,      /* only in the patched build */
	D_REMOVED,  /* only in the original build */
};

struct dentry {
	char *name;     /* name in the patched build (orig for D_REMOVED) */
	char *oldname;  /* name in the original build, NULL for D_NEW */
	int type;       /* STT_FUNC or STT_OBJECT */
	enum dstatus status;
	bool cold;      /* a .cold part: goes with its parent, never replaced
			   on its own */
	const char *why; /* for D_CHANGED code that did not change: why it is
			    included anyway */
	bool tiny;      /* shorter than the 5-byte jump: carried by its
			   callers, never redirected itself */
};

struct drefusal {
	char *what; /* one line: what, where, what to do instead */
};

struct ddiff {
	struct dentry *e;
	size_t n;
	struct drefusal *refusals;
	size_t nrefusals;
	const char *file; /* source file */
};

/* Compares the original and the patched build of one object file.  lines
 * may be NULL (no line-number tolerance).  Returns 0, or -1 with err filled
 * when the objects cannot be compared at all. */
int diff_objects(struct dobj *orig, struct dobj *patched,
		 const struct linemap *lines, struct ddiff *d, char *err,
		 size_t errlen);
void ddiff_free(struct ddiff *d);
/* Number of entries with that status and type (type 0: any). */
size_t ddiff_count(const struct ddiff *d, enum dstatus st, int type);
/* The entry for a patched-build name, or NULL. */
const struct dentry *ddiff_get(const struct ddiff *d, const char *name);
const char *dstatus_name(enum dstatus st);

/* ---- emit.c ---- */

struct emit_opts {
	const char *objname;   /* "main", or the target library's soname */
	const char *target;    /* the running binary: positions of local names */
	unsigned serial;       /* makes the descriptor's names unique */
	FILE *descriptor;      /* gets "FUNC old_name sympos alias" lines */
	FILE *report;          /* gets human-readable lines */
};

/* emit_patch_object()'s return when the source file has no code in the
 * target (an object of another program of the same tree). */
#define EMIT_NOT_IN_TARGET 1

/* Writes out_path: the functions d includes, taken from large (the patched
 * source compiled with -mcmodel=large), references to everything else
 * turned into relive references.  orig is the original build of the same
 * source (for the names the target knows).  Returns 0, EMIT_NOT_IN_TARGET
 * (nothing written), or -1 with err. */
int emit_patch_object(const struct dobj *large, const struct dobj *orig,
		      struct ddiff *d, const struct emit_opts *opts,
		      const char *out_path, char *err, size_t errlen);

/* ---- regs.c ---- */

/* Call-clobbered registers as bits: rax rcx rdx rsi rdi r8-r11, xmm0-15,
 * and one for anything else. */
typedef uint32_t regset;
#define REGS_ALL ((1u << 26) - 1)
#define REGS_KNOWN (1u << 31)
/* The registers code writes; *calls gets the number of call instructions. */
regset regs_written(const uint8_t *code, size_t size, unsigned *calls);
/* Whether, from offset from, some path reads a register of set before
 * writing all of it (returning, a call's arguments and leaving the code
 * count as reads). */
bool regs_read_after(const uint8_t *code, size_t size, size_t from,
		     regset set);
/* Marks D_CHANGED (with a reason) every unchanged function of orig that
 * keeps a value across a call to a changed function in a register that the
 * function's new version (in large) writes and the old one, with what it
 * calls, did not.  Until nothing more changes.  Returns 0 or -1. */
int ipa_ra_callers(const struct dobj *orig, const struct dobj *large,
		   struct ddiff *d, FILE *report);

/* ---- samecode.c ---- */

/* Compares the code of every function of two linked binaries, addresses
 * compared as the symbols they point at.  Returns the number of functions
 * that differ or exist in one only (their names go to report, at most
 * maxshow), or -1 with err filled. */
long samecode_compare(const char *running, const char *rebuilt, FILE *report,
		      int maxshow, char *err, size_t errlen);

#endif
