/*
 * relive/patchfile.c - read a patch file's descriptor without loading it.
 *
 * Why this exists: the controller must refuse a bad patch before it touches
 * the target, and loading the patch into the controller (dlopen) would run
 * its constructors and bind its symbols.  So the descriptor that
 * RELIVE_PATCH() emits (struct relive_patch_info -> klp_patch -> objects ->
 * functions, states) is read as data with libelf: the file is checked to be
 * an x86-64 shared object, the relive_patch_info dynamic symbol gives the
 * address of the descriptor, PT_LOAD segments translate addresses to file
 * offsets, and the dynamic relocations tell where each pointer field will
 * point once loaded (a pointer field holds 0 in the file; the loader fills
 * it from an R_X86_64_RELATIVE relocation, or from an R_X86_64_64/GLOB_DAT
 * relocation against a symbol).  A pointer bound to a symbol the file does
 * not define is "external": it cannot be followed, and a new function or a
 * callback that is external is refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <relive/livepatch.h>

#include "klpref.h"
#include "patchfile.h"

_Static_assert(sizeof(void *) == 8 && sizeof(long) == 8,
	       "patchfile.c reads x86-64 descriptors with the host's layout");

#define MAX_ENTRIES 65536   /* objects, functions or states: sanity bound */
#define MAX_STRING 4096

enum ptr_kind {
	PTR_NULL,
	PTR_INTERNAL,       /* an address in the file */
	PTR_EXTERNAL,       /* bound to a symbol the file does not define */
	PTR_OTHER,          /* a relocation that does not make an address */
};

struct reloc {
	uint64_t offset;
	enum ptr_kind kind;
	uint64_t target;    /* PTR_INTERNAL */
	const char *sym;    /* PTR_EXTERNAL, tls: the symbol (owned by elf) */
	bool tls;           /* DTPMOD64 or DTPOFF64 against an undefined
			       symbol (PTR_OTHER: no address) */
};

struct ptr {
	enum ptr_kind kind;
	uint64_t target;
	const char *sym;
};

struct reader {
	const char *path;
	Elf *elf;
	const char *raw;
	size_t rawsize;
	GElf_Phdr *loads;
	size_t nloads;
	struct reloc *relocs;
	size_t nrelocs;
	char *err;
	size_t errlen;
};

static int fail(struct reader *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int fail(struct reader *r, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!r->err || !r->errlen)
		return -1;
	n = snprintf(r->err, r->errlen, "%s: ", r->path);
	if (n < 0 || (size_t)n >= r->errlen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(r->err + n, r->errlen - n, fmt, ap);
	va_end(ap);
	return -1;
}

static int nomem(struct reader *r)
{
	return fail(r, "out of memory");
}

/* ---- memory image ------------------------------------------------------- */

static const GElf_Phdr *segment_of(const struct reader *r, uint64_t vaddr)
{
	size_t i;

	for (i = 0; i < r->nloads; i++) {
		const GElf_Phdr *ph = &r->loads[i];

		if (vaddr >= ph->p_vaddr && vaddr - ph->p_vaddr < ph->p_memsz)
			return ph;
	}
	return NULL;
}

/* Copies len bytes at vaddr as loaded (zeros past p_filesz).  Returns 0, or
 * -1 when the range is not inside one segment of the file. */
static int read_mem(const struct reader *r, uint64_t vaddr, void *buf,
		    size_t len)
{
	const GElf_Phdr *ph = segment_of(r, vaddr);
	uint64_t off, end;

	if (!ph || len > ph->p_memsz - (vaddr - ph->p_vaddr))
		return -1;
	off = vaddr - ph->p_vaddr;
	end = off + len;
	memset(buf, 0, len);
	if (off < ph->p_filesz) {
		uint64_t n = (end < ph->p_filesz ? end : ph->p_filesz) - off;

		if (ph->p_offset > r->rawsize ||
		    off + n > r->rawsize - ph->p_offset)
			return -1;
		memcpy(buf, r->raw + ph->p_offset + off, n);
	}
	return 0;
}

static int read_u64(const struct reader *r, uint64_t vaddr, uint64_t *v)
{
	return read_mem(r, vaddr, v, sizeof(*v));
}

/* Copies the NUL-terminated string at vaddr.  Returns 0, -1 when it is not
 * a string of the file, -ENOMEM. */
static int read_string(const struct reader *r, uint64_t vaddr, char **out)
{
	const GElf_Phdr *ph = segment_of(r, vaddr);
	uint64_t off, avail;
	const char *p, *nul;

	*out = NULL;
	if (!ph)
		return -1;
	off = vaddr - ph->p_vaddr;
	if (off >= ph->p_filesz || ph->p_offset > r->rawsize ||
	    ph->p_filesz > r->rawsize - ph->p_offset)
		return -1;
	avail = ph->p_filesz - off;
	if (avail > MAX_STRING)
		avail = MAX_STRING;
	p = r->raw + ph->p_offset + off;
	nul = memchr(p, '\0', avail);
	if (!nul)
		return -1;
	*out = strndup(p, nul - p);
	return *out ? 0 : -ENOMEM;
}

static bool is_code(const struct reader *r, uint64_t vaddr)
{
	const GElf_Phdr *ph = segment_of(r, vaddr);

	return ph && (ph->p_flags & PF_X) && vaddr - ph->p_vaddr < ph->p_filesz;
}

/* ---- relocations ------------------------------------------------------- */

static int cmp_reloc(const void *a, const void *b)
{
	const struct reloc *x = a, *y = b;

	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int add_relocs(struct reader *r, Elf_Scn *scn, const GElf_Shdr *shdr)
{
	Elf_Scn *symscn = elf_getscn(r->elf, shdr->sh_link);
	Elf_Data *data = elf_getdata(scn, NULL), *symdata = NULL;
	GElf_Shdr symshdr;
	size_t i, n;
	struct reloc *p;

	if (!data || !shdr->sh_entsize)
		return fail(r, "cannot read relocations: %s", elf_errmsg(-1));
	if (symscn && gelf_getshdr(symscn, &symshdr))
		symdata = elf_getdata(symscn, NULL);
	n = shdr->sh_size / shdr->sh_entsize;
	if (!n)
		return 0;
	p = realloc(r->relocs, (r->nrelocs + n) * sizeof(*p));
	if (!p)
		return nomem(r);
	r->relocs = p;
	for (i = 0; i < n; i++) {
		struct reloc *rel = &r->relocs[r->nrelocs];
		GElf_Rela rela;
		GElf_Sym sym;

		if (!gelf_getrela(data, (int)i, &rela))
			return fail(r, "cannot read relocations: %s",
				    elf_errmsg(-1));
		rel->offset = rela.r_offset;
		rel->kind = PTR_OTHER;
		rel->target = 0;
		rel->sym = NULL;
		rel->tls = false;
		switch (GELF_R_TYPE(rela.r_info)) {
		case R_X86_64_RELATIVE:
		case R_X86_64_IRELATIVE:
			rel->kind = PTR_INTERNAL;
			rel->target = rela.r_addend;
			break;
		case R_X86_64_64:
		case R_X86_64_GLOB_DAT:
		case R_X86_64_JUMP_SLOT:
			if (!symdata ||
			    !gelf_getsym(symdata, (int)GELF_R_SYM(rela.r_info),
					 &sym))
				break;
			if (sym.st_shndx == SHN_UNDEF) {
				rel->kind = PTR_EXTERNAL;
				rel->sym = elf_strptr(r->elf, symshdr.sh_link,
						      sym.st_name);
			} else {
				rel->kind = PTR_INTERNAL;
				rel->target = sym.st_value;
				if (GELF_R_TYPE(rela.r_info) == R_X86_64_64)
					rel->target += rela.r_addend;
			}
			break;
		case R_X86_64_DTPMOD64:
		case R_X86_64_DTPOFF64:
			/* a thread-local variable's module and offset:
			 * kept by name for the references (read_refs) */
			if (symdata &&
			    gelf_getsym(symdata, (int)GELF_R_SYM(rela.r_info),
					&sym) &&
			    sym.st_shndx == SHN_UNDEF) {
				rel->tls = true;
				rel->sym = elf_strptr(r->elf, symshdr.sh_link,
						      sym.st_name);
			}
			break;
		default:
			break;
		}
		r->nrelocs++;
	}
	return 0;
}

static int read_relocs(struct reader *r)
{
	Elf_Scn *scn = NULL;

	while ((scn = elf_nextscn(r->elf, scn)) != NULL) {
		GElf_Shdr shdr;

		if (!gelf_getshdr(scn, &shdr) || shdr.sh_type != SHT_RELA ||
		    !(shdr.sh_flags & SHF_ALLOC))
			continue;
		if (add_relocs(r, scn, &shdr))
			return -1;
	}
	if (r->nrelocs)
		qsort(r->relocs, r->nrelocs, sizeof(*r->relocs), cmp_reloc);
	return 0;
}

/*
 * What the pointer field at vaddr will hold once loaded.  Without a
 * relocation, the file's own bytes are the value (0: NULL; with packed
 * relative relocations, DT_RELR, the link-time address is stored in place).
 */
static int read_ptr(const struct reader *r, uint64_t vaddr, struct ptr *p)
{
	struct reloc key = { .offset = vaddr };
	const struct reloc *rel;
	uint64_t v;

	p->sym = NULL;
	p->target = 0;
	rel = r->nrelocs ? bsearch(&key, r->relocs, r->nrelocs,
				   sizeof(*rel), cmp_reloc) : NULL;
	if (rel) {
		p->kind = rel->kind;
		p->target = rel->target;
		p->sym = rel->sym;
		return 0;
	}
	if (read_u64(r, vaddr, &v))
		return -1;
	p->kind = v ? PTR_INTERNAL : PTR_NULL;
	p->target = v;
	return 0;
}

/* ---- the descriptor ----------------------------------------------------- */

static const char *objname(const struct pf_object *o)
{
	return o->name ? o->name : "main";
}

static int read_opt_string(struct reader *r, uint64_t vaddr, char **out,
			   const char *what, const char *obj, size_t index)
{
	char where[64];
	struct ptr p;
	int rc;

	*out = NULL;
	if (obj)
		snprintf(where, sizeof(where), "object %s", obj);
	else
		snprintf(where, sizeof(where), "object %zu", index);
	if (read_ptr(r, vaddr, &p))
		return fail(r, "%s of %s cannot be read", what, where);
	switch (p.kind) {
	case PTR_NULL:
		return 0;
	case PTR_INTERNAL:
		rc = read_string(r, p.target, out);
		if (rc == -ENOMEM)
			return nomem(r);
		if (rc)
			return fail(r, "%s of %s is not a string in the patch file",
				    what, where);
		return 0;
	case PTR_EXTERNAL:
		return fail(r, "%s of %s is not defined in the patch file (it refers to '%s')",
			    what, where, p.sym ? p.sym : "?");
	default:
		return fail(r, "%s of %s is not a pointer in the patch file",
			    what, where);
	}
}

static int check_build_id(struct reader *r, struct pf_object *o)
{
	char *s;

	if (!o->build_id)
		return 0;
	if (!o->build_id[0])
		return fail(r, "build_id of object %s is empty (use NULL to not pin a build)",
			    objname(o));
	for (s = o->build_id; *s; s++) {
		if (*s >= 'A' && *s <= 'F')
			*s = (char)(*s - 'A' + 'a');
		else if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return fail(r, "build_id of object %s is not hex: '%s'",
				    objname(o), o->build_id);
	}
	return 0;
}

static int by_name_pos(const void *a, const void *b)
{
	const struct pf_func *x = *(const struct pf_func *const *)a;
	const struct pf_func *y = *(const struct pf_func *const *)b;
	int c = strcmp(x->old_name, y->old_name);

	if (c)
		return c;
	return x->old_sympos < y->old_sympos ? -1 :
	       x->old_sympos > y->old_sympos;
}

/* A function listed twice in one object: sorted by name and position, the
 * two are neighbours (a patch may list 10000 functions). */
static int check_twice(struct reader *r, const struct pf_object *o)
{
	const struct pf_func **v = calloc(o->nfuncs, sizeof(*v));
	size_t i;

	if (!v)
		return nomem(r);
	for (i = 0; i < o->nfuncs; i++)
		v[i] = &o->funcs[i];
	qsort(v, o->nfuncs, sizeof(*v), by_name_pos);
	for (i = 1; i < o->nfuncs; i++)
		if (!by_name_pos(&v[i - 1], &v[i])) {
			const struct pf_func *f = v[i];

			free(v);
			return fail(r, "function '%s' (old_sympos %lu) of object %s is listed twice",
				    f->old_name, f->old_sympos, objname(o));
		}
	free(v);
	return 0;
}

static int read_funcs(struct reader *r, struct pf_object *o, uint64_t funcs)
{
	size_t i, cap = 0;

	for (i = 0;; i++) {
		uint64_t base = funcs + i * sizeof(struct klp_func);
		struct pf_func *f;
		struct ptr p;
		uint64_t sympos;
		char *name;
		int rc;

		if (i >= MAX_ENTRIES)
			return fail(r, "funcs of object %s has no end (no entry with old_name NULL)",
				    objname(o));
		if (read_ptr(r, base + offsetof(struct klp_func, old_name), &p))
			return fail(r, "funcs of object %s has no end (no entry with old_name NULL)",
				    objname(o));
		if (p.kind == PTR_NULL)
			break;
		if (p.kind != PTR_INTERNAL)
			return fail(r, "old_name of function %zu of object %s is not defined in the patch file",
				    i, objname(o));
		rc = read_string(r, p.target, &name);
		if (rc == -ENOMEM)
			return nomem(r);
		if (rc)
			return fail(r, "old_name of function %zu of object %s is not a string in the patch file",
				    i, objname(o));
		if (!name[0]) {
			free(name);
			return fail(r, "function %zu of object %s has an empty old_name",
				    i, objname(o));
		}
		if (o->nfuncs == cap) {
			cap = cap ? 2 * cap : 16;
			f = realloc(o->funcs, cap * sizeof(*f));
			if (!f) {
				free(name);
				return nomem(r);
			}
			o->funcs = f;
		}
		f = &o->funcs[o->nfuncs++];
		memset(f, 0, sizeof(*f));
		f->old_name = name;
		if (read_u64(r, base + offsetof(struct klp_func, old_sympos),
			     &sympos) ||
		    read_ptr(r, base + offsetof(struct klp_func, new_func), &p))
			return fail(r, "function '%s' of object %s cannot be read",
				    name, objname(o));
		f->old_sympos = sympos;
		if (p.kind != PTR_INTERNAL)
			return fail(r, "new function for '%s' (object %s) is not defined in the patch file",
				    name, objname(o));
		if (!is_code(r, p.target))
			return fail(r, "new function for '%s' (object %s) does not point to code in the patch file",
				    name, objname(o));
		f->has_new_func = true;
		f->new_value = p.target;
	}
	if (!o->nfuncs)
		return fail(r, "object %s has no functions", objname(o));
	return check_twice(r, o);
}

static int read_callbacks(struct reader *r, struct pf_object *o,
			  uint64_t base)
{
	static const char *const names[4] = {
		"pre_patch", "post_patch", "pre_unpatch", "post_unpatch",
	};
	static const size_t offs[4] = {
		offsetof(struct klp_callbacks, pre_patch),
		offsetof(struct klp_callbacks, post_patch),
		offsetof(struct klp_callbacks, pre_unpatch),
		offsetof(struct klp_callbacks, post_unpatch),
	};
	size_t i;

	for (i = 0; i < 4; i++) {
		struct ptr p;

		if (read_ptr(r, base + offsetof(struct klp_object, callbacks) +
				     offs[i], &p))
			return fail(r, "callbacks of object %s cannot be read",
				    objname(o));
		if (p.kind == PTR_NULL)
			continue;
		if (p.kind != PTR_INTERNAL)
			return fail(r, "%s callback of object %s is not defined in the patch file",
				    names[i], objname(o));
		if (!is_code(r, p.target))
			return fail(r, "%s callback of object %s does not point to code in the patch file",
				    names[i], objname(o));
		o->has_callbacks[i] = true;
	}
	return 0;
}

static int read_objects(struct reader *r, struct patchfile *pf, uint64_t objs)
{
	size_t i, j;

	for (i = 0;; i++) {
		uint64_t base = objs + i * sizeof(struct klp_object);
		struct pf_object *o;
		struct ptr funcs;

		if (i >= MAX_ENTRIES ||
		    read_ptr(r, base + offsetof(struct klp_object, funcs), &funcs))
			return fail(r, "objs has no end (no entry with funcs NULL)");
		if (funcs.kind == PTR_NULL)
			break;
		o = realloc(pf->objs, (pf->nobjs + 1) * sizeof(*o));
		if (!o)
			return nomem(r);
		pf->objs = o;
		o = &pf->objs[pf->nobjs++];
		memset(o, 0, sizeof(*o));
		if (read_opt_string(r, base + offsetof(struct klp_object, name),
				    &o->name, "name", NULL, i))
			return -1;
		if (o->name && !o->name[0])
			return fail(r, "object %zu has an empty name (use NULL for the main executable)",
				    i);
		for (j = 0; j + 1 < pf->nobjs; j++)
			if ((!o->name && !pf->objs[j].name) ||
			    (o->name && pf->objs[j].name &&
			     strcmp(o->name, pf->objs[j].name) == 0))
				return fail(r, "object %s is listed twice",
					    objname(o));
		if (read_opt_string(r, base + offsetof(struct klp_object, build_id),
				    &o->build_id, "build_id", objname(o), i) ||
		    check_build_id(r, o) || read_callbacks(r, o, base))
			return -1;
		if (funcs.kind != PTR_INTERNAL)
			return fail(r, "funcs of object %s is not defined in the patch file",
				    objname(o));
		if (read_funcs(r, o, funcs.target))
			return -1;
	}
	if (!pf->nobjs)
		return fail(r, "the patch has no objects (objs is empty)");
	return 0;
}

static int read_states(struct reader *r, struct patchfile *pf,
		       uint64_t states)
{
	size_t i, j;

	for (i = 0;; i++) {
		uint64_t base = states + i * sizeof(struct klp_state);
		struct pf_state *s;
		uint64_t id;
		uint32_t version;

		if (i >= MAX_ENTRIES ||
		    read_u64(r, base + offsetof(struct klp_state, id), &id) ||
		    read_mem(r, base + offsetof(struct klp_state, version),
			     &version, sizeof(version)))
			return fail(r, "states has no end (no entry with id 0)");
		if (!id)
			break;
		for (j = 0; j < pf->nstates; j++)
			if (pf->states[j].id == id)
				return fail(r, "state %lu is listed twice",
					    (unsigned long)id);
		s = realloc(pf->states, (pf->nstates + 1) * sizeof(*s));
		if (!s)
			return nomem(r);
		pf->states = s;
		s[pf->nstates].id = id;
		s[pf->nstates].version = version;
		pf->nstates++;
	}
	return 0;
}

/* Finds relive_patch_info among the dynamic symbols. */
static int find_info(struct reader *r, GElf_Sym *out)
{
	Elf_Scn *scn = NULL;

	while ((scn = elf_nextscn(r->elf, scn)) != NULL) {
		GElf_Shdr shdr;
		Elf_Data *data;
		size_t i, n;

		if (!gelf_getshdr(scn, &shdr) || shdr.sh_type != SHT_DYNSYM ||
		    !shdr.sh_entsize)
			continue;
		data = elf_getdata(scn, NULL);
		if (!data)
			continue;
		n = shdr.sh_size / shdr.sh_entsize;
		for (i = 1; i < n; i++) {
			const char *name;

			if (!gelf_getsym(data, (int)i, out) ||
			    out->st_shndx == SHN_UNDEF)
				continue;
			name = elf_strptr(r->elf, shdr.sh_link, out->st_name);
			if (name && strcmp(name, "relive_patch_info") == 0)
				return 0;
		}
	}
	return fail(r, "no relive_patch_info: not a relive patch (use RELIVE_PATCH())");
}

static int read_segments(struct reader *r)
{
	size_t i, phnum;

	if (elf_getphdrnum(r->elf, &phnum) != 0)
		return fail(r, "cannot read program headers: %s", elf_errmsg(-1));
	r->loads = calloc(phnum ? phnum : 1, sizeof(*r->loads));
	if (!r->loads)
		return nomem(r);
	for (i = 0; i < phnum; i++) {
		GElf_Phdr ph;

		if (gelf_getphdr(r->elf, (int)i, &ph) && ph.p_type == PT_LOAD)
			r->loads[r->nloads++] = ph;
	}
	if (!r->nloads)
		return fail(r, "no loadable segment");
	return 0;
}

static int set_name(struct reader *r, struct patchfile *pf, const char *path)
{
	const char *base = strrchr(path, '/');
	size_t len;

	base = base ? base + 1 : path;
	len = strlen(base);
	if (len > 3 && strcmp(base + len - 3, ".so") == 0)
		len -= 3;
	pf->path = strdup(path);
	pf->name = strndup(base, len);
	if (!pf->path || !pf->name)
		return nomem(r);
	return 0;
}

/* The KLP_SYMBOL and KLP_ORIGINAL references among the relocations
 * (read_relocs: those that make an address, and a thread-local
 * variable's), each once; a name of neither form is left to the agent,
 * which refuses the patch with its message. */
static int read_refs(struct reader *r, struct patchfile *pf)
{
	size_t slen = strlen(RELIVE_KLP_SYM_PREFIX);
	size_t olen = strlen(RELIVE_KLP_ORIG_PREFIX), i, k;

	for (i = 0; i < r->nrelocs; i++) {
		const char *name = r->relocs[i].sym;
		struct relive_klp_ref ref;
		bool original;
		struct pf_ref *n;

		if ((r->relocs[i].kind != PTR_EXTERNAL && !r->relocs[i].tls) ||
		    !name)
			continue;
		if (!strncmp(name, RELIVE_KLP_SYM_PREFIX, slen)) {
			original = false;
			name += slen;
		} else if (!strncmp(name, RELIVE_KLP_ORIG_PREFIX, olen)) {
			original = true;
			name += olen;
		} else {
			continue;
		}
		if (relive_klp_ref_parse(name, &ref))
			continue;
		for (k = 0; k < pf->nrefs; k++)
			if (pf->refs[k].original == original &&
			    pf->refs[k].sympos == ref.sympos &&
			    strlen(pf->refs[k].obj) == ref.objlen &&
			    !strncmp(pf->refs[k].obj, ref.obj, ref.objlen) &&
			    strlen(pf->refs[k].sym) == ref.symlen &&
			    !strncmp(pf->refs[k].sym, ref.sym, ref.symlen))
				break;
		if (k < pf->nrefs)
			continue;
		n = realloc(pf->refs, (pf->nrefs + 1) * sizeof(*n));
		if (!n)
			return nomem(r);
		pf->refs = n;
		n = &pf->refs[pf->nrefs];
		n->obj = strndup(ref.obj, ref.objlen);
		n->sym = strndup(ref.sym, ref.symlen);
		n->sympos = ref.sympos;
		n->original = original;
		if (!n->obj || !n->sym) {
			free(n->obj);
			free(n->sym);
			return nomem(r);
		}
		pf->nrefs++;
	}
	return 0;
}

static int read_patch(struct reader *r, struct patchfile *pf)
{
	struct relive_patch_info info;
	struct ptr patch, objs, states;
	GElf_Ehdr ehdr;
	GElf_Sym sym;
	uint8_t replace;

	if (elf_kind(r->elf) != ELF_K_ELF || !gelf_getehdr(r->elf, &ehdr))
		return fail(r, "not an ELF file");
	if (gelf_getclass(r->elf) != ELFCLASS64 || ehdr.e_machine != EM_X86_64)
		return fail(r, "not an x86-64 ELF64 file");
	if (ehdr.e_type != ET_DYN)
		return fail(r, "not a shared object; build it with cc -shared -fPIC");
	r->raw = elf_rawfile(r->elf, &r->rawsize);
	if (!r->raw)
		return fail(r, "cannot read: %s", elf_errmsg(-1));
	if (read_segments(r) || read_relocs(r) || find_info(r, &sym))
		return -1;
	if (sym.st_size && sym.st_size < sizeof(info))
		return fail(r, "relive_patch_info is %lu bytes, not %zu: not a relive patch (use RELIVE_PATCH())",
			    (unsigned long)sym.st_size, sizeof(info));
	if (read_mem(r, sym.st_value, &info, sizeof(info)))
		return fail(r, "relive_patch_info is not in a loadable segment");
	if (info.magic != RELIVE_PATCH_MAGIC)
		return fail(r, "relive_patch_info has magic 0x%08x, not 0x%08x: not a relive patch (use RELIVE_PATCH())",
			    info.magic, RELIVE_PATCH_MAGIC);
	if (info.abi != RELIVE_ABI_VERSION)
		return fail(r, "patch ABI version %u, this relive supports %u: rebuild the patch with this relive's <relive/livepatch.h>",
			    info.abi, RELIVE_ABI_VERSION);
	if (read_ptr(r, sym.st_value + offsetof(struct relive_patch_info, patch),
		     &patch) || patch.kind != PTR_INTERNAL)
		return fail(r, "relive_patch_info.patch does not point to a klp_patch in the patch file");
	if (read_ptr(r, patch.target + offsetof(struct klp_patch, objs), &objs) ||
	    read_ptr(r, patch.target + offsetof(struct klp_patch, states),
		     &states) ||
	    read_mem(r, patch.target + offsetof(struct klp_patch, replace),
		     &replace, sizeof(replace)))
		return fail(r, "the klp_patch cannot be read");
	pf->replace = replace != 0;
	if (objs.kind == PTR_NULL)
		return fail(r, "the patch has no objects (objs is NULL)");
	if (objs.kind != PTR_INTERNAL)
		return fail(r, "objs of the patch is not defined in the patch file");
	if (read_objects(r, pf, objs.target) || read_refs(r, pf))
		return -1;
	if (states.kind == PTR_NULL)
		return 0;
	if (states.kind != PTR_INTERNAL)
		return fail(r, "states of the patch is not defined in the patch file");
	return read_states(r, pf, states.target);
}

int patchfile_read(const char *path, struct patchfile *pf, char *err,
		   size_t errlen)
{
	struct reader r = {
		.path = path, .err = err, .errlen = errlen,
	};
	int fd, rc;

	memset(pf, 0, sizeof(*pf));
	if (err && errlen)
		err[0] = '\0';
	if (elf_version(EV_CURRENT) == EV_NONE)
		return fail(&r, "libelf: %s", elf_errmsg(-1));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (err && errlen)
			snprintf(err, errlen, "%s: %m", path);
		return -1;
	}
	r.elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!r.elf)
		rc = fail(&r, "cannot read: %s", elf_errmsg(-1));
	else
		rc = set_name(&r, pf, path) || read_patch(&r, pf) ? -1 : 0;
	free(r.relocs);
	free(r.loads);
	elf_end(r.elf);
	close(fd);
	if (rc)
		patchfile_free(pf);
	return rc;
}

void patchfile_free(struct patchfile *pf)
{
	size_t i, j;

	if (!pf)
		return;
	for (i = 0; i < pf->nobjs; i++) {
		struct pf_object *o = &pf->objs[i];

		for (j = 0; j < o->nfuncs; j++)
			free(o->funcs[j].old_name);
		free(o->funcs);
		free(o->name);
		free(o->build_id);
	}
	free(pf->objs);
	free(pf->states);
	for (i = 0; i < pf->nrefs; i++) {
		free(pf->refs[i].obj);
		free(pf->refs[i].sym);
	}
	free(pf->refs);
	free(pf->path);
	free(pf->name);
	memset(pf, 0, sizeof(*pf));
}
