/*
 * common/elfsym.h - symbols and identity of one ELF object file, read with
 * elfutils libelf.  Used by the agent (in the target, to resolve what a
 * patch replaces) and by the controller (to check a patch before touching
 * the target), so both sides resolve a name the same way.
 *
 * Resolution follows the kernel's klp_find_object_symbol(): a name is
 * looked up among the defined function, object and TLS symbols of the
 * object's full symbol table (.symtab when the file has one; otherwise the
 * .symtab of the separate debug file /usr/lib/debug/.build-id/xx/rest.debug
 * found by build-id; otherwise .dynsym).  old_sympos 0 means the name must be
 * unique; N picks the Nth symbol of that name in table order.
 *
 * Versioned symbols ("memcpy@GLIBC_2.2.5", "memcpy@@GLIBC_2.14": so named in
 * .symtab, built from .gnu.version for .dynsym) match their plain name.
 * When a plain name has default-version or unversioned definitions, the
 * non-default versions ("name@VER") do not count, as for dlsym(); a name
 * given with its version ("memcpy@GLIBC_2.2.5") matches that version only.
 * Symbols of one name at one address (aliases, such as glibc's local "memcpy"
 * and "memcpy@@GLIBC_2.14") are one definition: only the first counts.
 */
#ifndef RELIVE_ELFSYM_H
#define RELIVE_ELFSYM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct elfsym_file;

struct elfsym_sym {
	uint64_t value;   /* st_value: link-time address (add the load bias) */
	uint64_t size;    /* st_size */
	int type;         /* STT_FUNC, STT_OBJECT, STT_TLS, STT_GNU_IFUNC ... */
	int bind;         /* STB_LOCAL, STB_GLOBAL, STB_WEAK */
};

/* Opens path.  Returns 0, or a negative errno with err filled
 * ("path: not an ELF file"). */
int elfsym_open(const char *path, struct elfsym_file **out, char *err,
		size_t errlen);
/* The same with the dynamic symbols only (.dynsym: what the object
 * exports), never a debug file: cheaper for a large library. */
int elfsym_open_dynsym(const char *path, struct elfsym_file **out, char *err,
		       size_t errlen);
/* The same, reading only what the headers say (build-id, DT_SONAME, type,
 * first address): cheap; lookups find nothing. */
int elfsym_open_header(const char *path, struct elfsym_file **out, char *err,
		       size_t errlen);
void elfsym_close(struct elfsym_file *f);

/* The GNU build-id in lower-case hex, or "" when the file has none. */
const char *elfsym_build_id(const struct elfsym_file *f);
/* DT_SONAME, or NULL. */
const char *elfsym_soname(const struct elfsym_file *f);
/* e_type: ET_EXEC or ET_DYN. */
int elfsym_type(const struct elfsym_file *f);
/* The lowest PT_LOAD p_vaddr rounded down to its page (0 for most DSOs and
 * PIEs): load bias = address of the first mapping - this. */
uint64_t elfsym_first_vaddr(const struct elfsym_file *f);
/* Which table lookups use: ".symtab", "debug .symtab" or ".dynsym". */
const char *elfsym_table(const struct elfsym_file *f);
/* The file's own libelf handle, kept while its symbols are indexed (read
 * only, no descriptor: libelf reads nothing more, so in the controller,
 * which maps files, elf_rawfile() gives the mapping); NULL when the
 * symbols came from a debug file or the file has none. */
struct Elf;
struct Elf *elfsym_elf(const struct elfsym_file *f);

/*
 * Looks name up with the sympos rule above.  Returns 0 with *sym filled;
 * -ENOENT when the name is not defined; -EEXIST when sympos is 0 and the name
 * is defined several times (*count says how often); -ERANGE when sympos is
 * greater than the number of definitions (*count says how many).  count may
 * be NULL.
 */
int elfsym_lookup(const struct elfsym_file *f, const char *name,
		  unsigned long sympos, struct elfsym_sym *sym,
		  unsigned *count);

/* The function symbol (with a size) that starts at value, whatever its
 * name: 0, or -ENOENT.  name, when not NULL, gets the symbol's name as its
 * table spells it (a .dynsym's without its version), valid until
 * elfsym_close(). */
int elfsym_func_at(struct elfsym_file *f, uint64_t value,
		   struct elfsym_sym *sym);
int elfsym_func_name_at(struct elfsym_file *f, uint64_t value,
			struct elfsym_sym *sym, const char **name);

/* The function symbol (with a size) whose bytes hold addr: the one
 * starting nearest at or before it (or an alias of it).  Returns 0, or
 * -ENOENT (addr lies between functions, or in one that another function's
 * symbol starts inside) or -ENOMEM. */
int elfsym_func_containing(struct elfsym_file *f, uint64_t addr,
			   struct elfsym_sym *sym);

/* Formats a lookup error the way relive reports it:
 * "symbol 'bar' is ambiguous in libx.so.1 (3 definitions); set old_sympos",
 * "symbol 'bar' not found in libx.so.1",
 * "symbol 'bar' has no position 4 in libx.so.1 (2 definitions)". */
void elfsym_strerror(int rc, const char *name, unsigned long sympos,
		     unsigned count, const char *objname, char *buf,
		     size_t buflen);

/*
 * Where separate debug files are looked for (default "/usr/lib/debug"; NULL
 * restores it).  Process-wide setting, meant for tests and configuration:
 * call it before any elfsym_open(), not concurrently with one.
 */
void elfsym_set_debug_root(const char *dir);

/*
 * Whether files are mapped (true) or read (false, the default).  The index
 * uses the symbol and string tables where libelf holds them, until
 * elfsym_close().  Reading copies each section into fresh heap memory,
 * inside one read(2): the kernel faults in each page of that buffer
 * without giving the CPU away (on a kernel built without preemption),
 * which for a table of 10000 symbols held a CPU for about 3 ms.  Mapping
 * uses the page cache's pages in place.  The controller maps; the agent
 * reads, since it changes no mapping of the process it runs in, and since
 * a file truncated while mapped would kill the program with SIGBUS at the
 * next access.  The controller takes that risk for the files it keeps
 * open for one command (relive/filecache.c), as its unwinder (libdw, which
 * maps the files it reads) already does.  A file that cannot be mapped is
 * read instead (libelf falls back on its own).  Process-wide setting,
 * like the debug root.
 */
void elfsym_set_mapped(bool mapped);

#endif
