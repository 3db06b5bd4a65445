/*
 * agent/objects.c - objects that come and go (kernel: klp_module_coming,
 * klp_module_going, and the .klp.rela relocations that klp-convert makes).
 *
 * A patch may name a library the process has not loaded yet.  The dynamic
 * loader tells debuggers about every change of its list of objects by
 * calling _dl_debug_state() (r_debug.r_brk), after mapping new objects and
 * before relocating them or running any of their constructors.  The agent
 * redirects that empty function to objects_hook() once, like any patched
 * function (the write is planned with the first patch and carried out by
 * the controller while every thread is held), and from then on patches each
 * new object itself, before any code of it can run: no transition is
 * needed, no thread can have its code on the stack.
 *
 * An object going away is noticed through its own destructors: when it is
 * patched, the agent registers a handler with __cxa_atexit() for the
 * object's __dso_handle, which the object's finalizer runs when it is
 * dlclose()d, before it is unmapped.  The handler unpatches its functions,
 * runs the callbacks and clears every reference of every patch into it, so
 * that loading it again patches it again cleanly.
 *
 * References from a patch to symbols of a target object that are not
 * exported (KLP_SYMBOL) are weak undefined symbols with unique names: the
 * loader resolves them to 0, and this file fills their GOT slots from the
 * object's full symbol table when the object is present, and clears them
 * when it goes.  KLP_ORIGINAL names the original code of a function the
 * patch replaces: its relocated copy.
 *
 * Lock order: the dynamic loader's lock, then agent_lock.  objects_hook()
 * and the going handler run with the loader's lock held and take
 * agent_lock; nothing in the agent calls into the loader with agent_lock
 * held.
 */
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "agent.h"
#include "elfsym.h"
#include "klpref.h"

#define SYM_PREFIX RELIVE_KLP_SYM_PREFIX
#define ORIG_PREFIX RELIVE_KLP_ORIG_PREFIX

struct klp_reloc {
	uintptr_t where;       /* the slot in the patch */
	uint32_t type;
	int64_t addend;
	char *obj;             /* "main" or the object's name */
	char *sym;
	unsigned long sympos;
	bool original;         /* KLP_ORIGINAL: the original code's copy */
	bool applied;
	struct relive_ops *ops; /* KLP_ORIGINAL: whose copy it is */
};

/* --- code segments -------------------------------------------------------- */

struct seg_find {
	uintptr_t addr, lo, hi;
};

static int seg_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct seg_find *sf = arg;
	int i;

	for (i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr;

		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X) &&
		    sf->addr >= lo && sf->addr < lo + ph->p_memsz) {
			sf->lo = lo;
			sf->hi = lo + ph->p_memsz;
			return 1;
		}
	}
	return 0;
}

/* The program's DT_NEEDED names, searched for one. */
struct needed_find {
	const char *name;   /* base name of the object's file */
	const char *path;
	bool found;
};

static int needed_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct needed_find *nf = arg;
	const ElfW(Dyn) *d = NULL, *x;
	uintptr_t strtab = 0;
	int i;

	(void)size;
	for (i = 0; i < info->dlpi_phnum && !d; i++)
		if (info->dlpi_phdr[i].p_type == PT_DYNAMIC)
			d = (const ElfW(Dyn) *)(info->dlpi_addr +
						info->dlpi_phdr[i].p_vaddr);
	if (!d)
		return 1;
	for (x = d; x->d_tag != DT_NULL; x++)
		if (x->d_tag == DT_STRTAB)
			strtab = x->d_un.d_ptr;
	/* The loader relocates the entry in place where the section is
	 * writable; else it is still the link-time address. */
	if (!strtab)
		return 1;
	if (strtab < info->dlpi_addr)
		strtab += info->dlpi_addr;
	for (x = d; x->d_tag != DT_NULL && !nf->found; x++)
		if (x->d_tag == DT_NEEDED) {
			const char *n = (const char *)(strtab + x->d_un.d_val);

			nf->found = strchr(n, '/') ? !strcmp(n, nf->path) :
						     !strcmp(n, nf->name);
		}
	return 1; /* the program is listed first */
}

bool objects_permanent(const char *path)
{
	const char *slash = strrchr(path, '/');
	struct needed_find nf = { .name = slash ? slash + 1 : path,
				  .path = path };

	dl_iterate_phdr(needed_cb, &nf);
	return nf.found;
}

bool code_segment_of(uintptr_t addr, uintptr_t *lo, uintptr_t *hi)
{
	struct seg_find sf = { .addr = addr };

	if (!dl_iterate_phdr(seg_cb, &sf))
		return false;
	*lo = sf.lo;
	*hi = sf.hi;
	return true;
}

/* --- reading the references of a patch ------------------------------------ */

/* The parts of a reference's name after its prefix (common/klpref.c). */
static int parse_ref(const char *s, struct klp_reloc *r)
{
	struct relive_klp_ref ref;

	if (relive_klp_ref_parse(s, &ref))
		return -1;
	r->sympos = ref.sympos;
	r->obj = strndup(ref.obj, ref.objlen);
	r->sym = strndup(ref.sym, ref.symlen);
	return r->obj && r->sym ? 0 : -1;
}

void klp_relocs_free(struct relive_patch *p)
{
	size_t i;

	for (i = 0; i < p->nrelocs; i++) {
		free(p->relocs[i].obj);
		free(p->relocs[i].sym);
	}
	free(p->relocs);
	p->relocs = NULL;
	p->nrelocs = 0;
}

static int add_reloc(struct relive_patch *p, const struct klp_reloc *r)
{
	struct klp_reloc *n = realloc(p->relocs,
				      (p->nrelocs + 1) * sizeof(*n));

	if (!n)
		return -ENOMEM;
	p->relocs = n;
	p->relocs[p->nrelocs++] = *r;
	return 0;
}

/* One dynamic relocation of the patch, whose symbol is named name: kept
 * when the name is a KLP_SYMBOL or KLP_ORIGINAL reference.  Returns 0 or
 * a negative errno (the message set). */
static int klp_reloc_add(struct relive_patch *p, uintptr_t base,
			 const ElfW(Rela) *rela, const char *name)
{
	struct klp_reloc r = { 0 };

	if (!strncmp(name, SYM_PREFIX, strlen(SYM_PREFIX))) {
		name += strlen(SYM_PREFIX);
	} else if (!strncmp(name, ORIG_PREFIX, strlen(ORIG_PREFIX))) {
		name += strlen(ORIG_PREFIX);
		r.original = true;
	} else {
		return 0;
	}
	r.where = base + rela->r_offset;
	r.type = ELF64_R_TYPE(rela->r_info);
	r.addend = rela->r_addend;
	switch (r.type) {
	case R_X86_64_GLOB_DAT:
	case R_X86_64_JUMP_SLOT:
	case R_X86_64_64:
		break;
	case R_X86_64_DTPMOD64:
	case R_X86_64_DTPOFF64:
		if (!r.original)
			break;
		/* fall through */
	default:
		agent_msg("%s: reference to '%s' uses relocation type %u, "
			  "which relive cannot resolve (build the patch with "
			  "-fPIC)", p->file, name, r.type);
		return -ENOTSUP;
	}
	if (parse_ref(name, &r)) {
		agent_msg("%s: malformed reference '%s'; use "
			  "KLP_SYMBOL(\"obj\", sym, pos)", p->file, name);
		free(r.obj);
		free(r.sym);
		return -EINVAL;
	}
	return add_reloc(p, &r);
}

/* The loaded patch's segments, to tell its dynamic section's addresses
 * apart: the loader rewrites some entries of a writable dynamic section
 * to absolute addresses (glibc on x86-64), others stay offsets from the
 * load address. */
struct patch_image {
	uintptr_t base;
	const ElfW(Dyn) *dyn;
	uintptr_t lo[8], hi[8];
	int nload;
};

static int image_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct patch_image *im = arg;
	bool mine = false;
	int i;

	(void)size;
	if (info->dlpi_addr != im->base)
		return 0;
	for (i = 0; i < info->dlpi_phnum; i++)
		if (info->dlpi_phdr[i].p_type == PT_DYNAMIC &&
		    info->dlpi_addr + info->dlpi_phdr[i].p_vaddr ==
			    (uintptr_t)im->dyn)
			mine = true;
	if (!mine)
		return 0;
	for (i = 0; i < info->dlpi_phnum && im->nload < 8; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type != PT_LOAD)
			continue;
		im->lo[im->nload] = info->dlpi_addr + ph->p_vaddr;
		im->hi[im->nload] = im->lo[im->nload] + ph->p_memsz;
		im->nload++;
	}
	return 1;
}

/* The address of len bytes that the dynamic entry value v names, or 0
 * when neither v nor base + v lies within one of the patch's segments. */
static uintptr_t image_addr(const struct patch_image *im, uintptr_t v,
			    size_t len)
{
	uintptr_t c[2] = { v, im->base + v };

	for (int k = 0; k < 2; k++)
		for (int i = 0; i < im->nload; i++)
			if (c[k] >= im->lo[i] && c[k] <= im->hi[i] &&
			    len <= im->hi[i] - c[k])
				return c[k];
	return 0;
}

/* Reads the loaded patch's dynamic relocations (DT_RELA and DT_JMPREL,
 * from its image in memory: no file is read) against KLP_SYMBOL and
 * KLP_ORIGINAL names.  Without agent_lock (it asks the loader for the
 * patch's load address). */
int klp_relocs_read(struct relive_patch *p)
{
	uintptr_t rela = 0, jmprel = 0, symtab = 0, strtab = 0;
	size_t relasz = 0, jmprelsz = 0, strsz = 0;
	size_t relaent = sizeof(ElfW(Rela)), syment = sizeof(ElfW(Sym));
	struct patch_image im = { 0 };
	struct link_map *lm = NULL;
	const ElfW(Dyn) *d;
	int rc;

	if (dlinfo(p->handle, RTLD_DI_LINKMAP, &lm) || !lm || !lm->l_ld)
		return 0;
	im.base = lm->l_addr;
	im.dyn = lm->l_ld;
	if (!dl_iterate_phdr(image_cb, &im)) {
		agent_msg("%s: cannot find the loaded patch's segments",
			  p->file);
		return -ENOEXEC;
	}
	for (d = lm->l_ld; d->d_tag != DT_NULL; d++) {
		switch (d->d_tag) {
		case DT_RELA: rela = d->d_un.d_ptr; break;
		case DT_RELASZ: relasz = d->d_un.d_val; break;
		case DT_RELAENT: relaent = d->d_un.d_val; break;
		case DT_JMPREL: jmprel = d->d_un.d_ptr; break;
		case DT_PLTRELSZ: jmprelsz = d->d_un.d_val; break;
		case DT_SYMTAB: symtab = d->d_un.d_ptr; break;
		case DT_SYMENT: syment = d->d_un.d_val; break;
		case DT_STRTAB: strtab = d->d_un.d_ptr; break;
		case DT_STRSZ: strsz = d->d_un.d_val; break;
		}
	}
	if (!relasz && !jmprelsz)
		return 0;
	if (relaent != sizeof(ElfW(Rela)) || syment != sizeof(ElfW(Sym)) ||
	    !(symtab = image_addr(&im, symtab, syment)) ||
	    !(strtab = image_addr(&im, strtab, strsz)) ||
	    (relasz && !(rela = image_addr(&im, rela, relasz))) ||
	    (jmprelsz && !(jmprel = image_addr(&im, jmprel, jmprelsz)))) {
		agent_msg("%s: the loaded patch's dynamic section is not "
			  "understood (relocation or symbol tables outside "
			  "the patch)", p->file);
		return -ENOEXEC;
	}
	/* Some linkers make DT_RELA's range cover DT_JMPREL's too. */
	if (jmprelsz && relasz && jmprel >= rela &&
	    jmprel + jmprelsz <= rela + relasz)
		jmprelsz = 0;
	for (int t = 0; t < 2; t++) {
		const ElfW(Rela) *r = (const ElfW(Rela) *)(t ? jmprel : rela);
		size_t n = (t ? jmprelsz : relasz) / sizeof(*r);

		for (size_t i = 0; i < n; i++) {
			size_t si = ELF64_R_SYM(r[i].r_info);
			const ElfW(Sym) *sym;

			if (!si)
				continue;
			sym = (const ElfW(Sym) *)(symtab + si * syment);
			/* The symbol table's end is not in the dynamic
			 * section: each entry is checked to lie in the patch. */
			if (!image_addr(&im, (uintptr_t)sym, sizeof(*sym)) ||
			    sym->st_name >= strsz)
				continue;
			rc = klp_reloc_add(p, im.base, &r[i],
					   (const char *)strtab + sym->st_name);
			if (rc)
				return rc; /* the caller frees what was kept */
		}
	}
	return 0;
}

/* --- writing references -------------------------------------------------- */

/* The protection of the page at addr, or -1. */
static int page_prot(uintptr_t addr)
{
	struct codemem_vma v;

	return codemem_vma_at(addr, &v) == 1 ? v.prot : -1;
}

/* An aligned 8-byte store into the patch's GOT (read-only after
 * relocation), seen whole by patch code running on other threads; the
 * page's protection is put back as it was. */
static int write_slot(uintptr_t where, uint64_t value)
{
	uintptr_t page = where & ~(uintptr_t)4095;
	int prot = page_prot(where);

	if ((where & 7) == 0 && prot >= 0 && !(prot & PROT_EXEC) &&
	    !mprotect((void *)page, 4096, prot | PROT_WRITE)) {
		__atomic_store_n((uint64_t *)where, value, __ATOMIC_RELEASE);
		if (!(prot & PROT_WRITE))
			mprotect((void *)page, 4096, prot);
		return 0;
	}
	return codemem_write((void *)where, &value, sizeof(value));
}

struct modid_find {
	uintptr_t bias;
	const char *path;
	size_t modid;
};

static int modid_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct modid_find *mf = arg;

	if (info->dlpi_addr != mf->bias)
		return 0;
	mf->modid = info->dlpi_tls_modid;
	return 1;
}

static bool same_object(const char *ref, const char *name)
{
	return !strcmp(ref, name ? name : "main") ||
	       (!name && !strcmp(ref, "main"));
}

/* relive's answer for r, a reference into an object whose mapped
 * build-id is running, one of p's own or (a KLP_SYMBOL) another one
 * relive read (agent/resolution.c); NULL: the agent looks it up itself.
 * Not a KLP_ORIGINAL of a function the patch does not replace in that
 * object (its code would be decoded here): the original
 * of one it replaces is the copy its ops made already.  (A thread-local
 * variable's module is found from the loaded object, its offset is the
 * symbol's value.) */
static const struct relive_res_ref *served(struct relive_patch *p,
					   const struct klp_reloc *r,
					   const char *running)
{
	const struct relive_res_func *rf;
	const struct relive_res_ref *rr;
	struct relive_object *o = NULL;
	size_t i;

	for (i = 0; i < p->nobjs && !o; i++)
		if (same_object(r->obj, p->objs[i].name))
			o = &p->objs[i];
	if (!o)
		return r->original ? NULL :
				     resolution_xref(p, r->obj, running, r->sym,
						     r->sympos);
	if (!(rr = resolution_ref(o, running, r->sym, r->sympos,
				  r->original)))
		return NULL;
	if (!r->original)
		return rr;
	if (rr->type != STT_FUNC || !(rf = resolution_object(o, running)))
		return NULL;
	for (i = 0; i < o->nfuncs; i++)
		if (rf[i].value == rr->value && rf[i].size == rr->size)
			return rr;
	return NULL;
}

bool klp_relocs_served(struct relive_patch *p)
{
	char path[4096], running[RELIVE_RES_ID];
	const char *obj = NULL; /* the object running is of */
	size_t i;

	for (i = 0; i < p->nrelocs; i++) {
		const struct klp_reloc *r = &p->relocs[i];
		uintptr_t bias;

		/* a patch's references are mostly into one object: the
		 * loader's list is walked again only when it changes */
		if (!obj || strcmp(obj, r->obj)) {
			if (!find_loaded_file(strcmp(r->obj, "main") ? r->obj :
								      NULL,
					      path, sizeof(path), &bias))
				return false;
			resolution_running_build_id(bias, running,
						    sizeof(running));
			obj = r->obj;
		}
		if (!served(p, r, running))
			return false;
	}
	return true;
}

/* Resolves and writes the references of p into the object named objname,
 * loaded from path at bias: from relive's resolution where it serves
 * them, else from the object's symbol table.  Returns 0 or an error with
 * the message set. */
static int apply_object(struct relive_patch *p, const char *objname,
			const char *path, uintptr_t bias)
{
	struct elfsym_file *f = NULL;
	char err[512], running[RELIVE_RES_ID];
	size_t i, nserved = 0;
	int rc = 0;

	resolution_running_build_id(bias, running, sizeof(running));
	for (i = 0; i < p->nrelocs && !rc; i++) {
		struct klp_reloc *r = &p->relocs[i];
		const struct relive_res_ref *rr;
		struct elfsym_sym sym;
		unsigned count = 0;
		uint64_t v;

		if (!same_object(r->obj, objname))
			continue;
		if ((rr = served(p, r, running))) {
			memset(&sym, 0, sizeof(sym));
			sym.value = rr->value;
			sym.size = rr->size;
			sym.type = (int)rr->type;
			nserved++;
			goto resolved;
		}
		if (!f) {
			rc = elfsym_open(path, &f, err, sizeof(err));
			if (rc) {
				agent_msg("patch '%s': %s", p->name, err);
				break;
			}
			/* The references go into the code that runs. */
			if (!resolution_file_runs(f, bias,
						  objname ? objname : "main",
						  path)) {
				rc = -ESTALE;
				break;
			}
		}
		rc = elfsym_lookup(f, r->sym, r->sympos, &sym, &count);
		if (rc) {
			elfsym_strerror(rc, r->sym, r->sympos, count, r->obj,
					err, sizeof(err));
			agent_msg("patch '%s': %s", p->name, err);
			break;
		}
resolved:
		if (r->original) {
			char what[300];
			struct relive_ops *o;

			if (sym.type != STT_FUNC) {
				agent_msg("patch '%s': KLP_ORIGINAL(%s) in %s is "
					  "not a function", p->name, r->sym,
					  r->obj);
				rc = -EINVAL;
				break;
			}
			snprintf(what, sizeof(what), "'%s' in %s", r->sym,
				 r->obj);
			o = ops_get(bias + sym.value, sym.size, what, NULL);
			if (!o) {
				rc = -EINVAL;
				break;
			}
			v = o->site.copy_addr;
			r->ops = o;
		} else if (r->type == R_X86_64_DTPMOD64) {
			struct modid_find mf = { .bias = bias };

			dl_iterate_phdr(modid_cb, &mf);
			v = mf.modid;
		} else if (r->type == R_X86_64_DTPOFF64) {
			v = sym.value + r->addend;
		} else if (sym.type == STT_TLS) {
			agent_msg("patch '%s': '%s' in %s is a thread-local "
				  "variable; declare it __thread", p->name,
				  r->sym, r->obj);
			rc = -EINVAL;
			break;
		} else {
			v = bias + sym.value +
			    (r->type == R_X86_64_64 ? r->addend : 0);
		}
		rc = write_slot(r->where, v);
		if (rc) {
			agent_msg("patch '%s': cannot write its reference to %s",
				  p->name, r->sym);
			break;
		}
		r->applied = true;
	}
	if (f)
		elfsym_close(f);
	if (!rc && nserved)
		agent_log("'%s': %zu reference%s into %s as resolved by relive",
			  p->name, nserved, nserved == 1 ? "" : "s",
			  objname ? objname : "main");
	return rc;
}

static void bury(struct relive_ops *ops);

/* Clears the references of p into objname (kernel: "clear relocation
 * targets on a module removal").  gone: the object is being unloaded, so
 * the ops made for its original code go too. */
static void clear_object(struct relive_patch *p, const char *objname,
			 bool gone)
{
	size_t i;

	for (i = 0; i < p->nrelocs; i++) {
		struct klp_reloc *r = &p->relocs[i];

		if (r->applied && same_object(r->obj, objname)) {
			write_slot(r->where, 0);
			r->applied = false;
			if (gone && r->ops)
				bury(r->ops);
			r->ops = NULL;
		}
	}
}

/* At load: the references into every object that is present now. */
int klp_relocs_apply_all(struct relive_patch *p)
{
	size_t i;
	int rc;

	for (i = 0; i < p->nrelocs; i++) {
		struct klp_reloc *r = &p->relocs[i];
		const char *name = strcmp(r->obj, "main") ? r->obj : NULL;
		char path[4096];
		uintptr_t bias;

		if (r->applied)
			continue;
		if (!find_loaded_object(name, path, sizeof(path), &bias))
			continue;
		/* does every reference into that object */
		rc = apply_object(p, name, path, bias);
		if (rc)
			return rc;
	}
	return 0;
}

/* --- the loader's notifications ------------------------------------------ */

static struct relive_ops *hook_ops;
static bool hook_planned;

/* Libraries the agent watches for dlclose: one __cxa_atexit registration
 * per load of a library. */
struct watched {
	char *name;            /* object name as the patches spell it */
	uintptr_t bias;
	bool gone;
	struct watched *next;
};
static struct watched *watched;

extern int __cxa_atexit(void (*fn)(void *), void *arg, void *dso);

static void object_going(void *arg);

/* The ops of an object that goes, freed once every patch let go of them
 * (kernel: klp_ops is freed when its func_stack is empty). */
static struct relive_ops **dead;
static size_t ndead, capdead;

static void bury(struct relive_ops *ops)
{
	size_t i;

	for (i = 0; i < ndead; i++)
		if (dead[i] == ops)
			return;
	if (ndead == capdead) {
		size_t cap = capdead ? 2 * capdead : 16;
		struct relive_ops **n = realloc(dead, cap * sizeof(*n));

		if (!n)
			return; /* leaked, never freed twice */
		dead = n;
		capdead = cap;
	}
	dead[ndead++] = ops;
}

static void unpatch_object(struct relive_object *o)
{
	struct klp_callbacks *cb = o->kobj ? &o->kobj->callbacks : NULL;
	size_t j;

	if (o->post_patch_ran && cb && cb->pre_unpatch)
		cb->pre_unpatch(o->kobj);
	for (j = 0; j < o->nfuncs; j++) {
		struct relive_func *f = &o->funcs[j];

		if (f->on_stack)
			ops_remove(f->ops, f);
		if (f->ops)
			bury(f->ops);
		f->ops = NULL;
	}
	if (o->pre_patch_ran && cb && cb->post_unpatch)
		cb->post_unpatch(o->kobj);
	o->pre_patch_ran = o->post_patch_ran = false;
	o->patched = false;
	o->loaded = false;
	o->refused[0] = '\0';
}

/* kernel: klp_module_going().  The object at bias is being unloaded. */
static void going(const char *name, uintptr_t bias)
{
	struct relive_patch *p;
	size_t i;

	for (p = agent_patches; p; p = p->next) {
		for (i = 0; i < p->nobjs + p->n_nop_objs; i++) {
			struct relive_object *o = i < p->nobjs ?
				&p->objs[i] : &p->nop_objs[i - p->nobjs];

			if (o->loaded && o->bias == bias && o->name &&
			    !strcmp(o->name, name)) {
				agent_log("'%s': object '%s' going", p->name,
					  name);
				unpatch_object(o);
			}
		}
		clear_object(p, name, true);
	}
	for (i = 0; i < ndead; i++) {
		transition_forget_ops(dead[i]);
		ops_forget(dead[i]);
	}
	ndead = 0;
}

static void object_going(void *arg)
{
	struct watched *w = arg;

	pthread_mutex_lock(&agent_lock);
	if (!w->gone) {
		going(w->name, w->bias);
		w->gone = true;
	}
	core_snapshot();
	pthread_mutex_unlock(&agent_lock);
}

/* Arranges for object_going() to run when the object at bias, loaded from
 * path, is unloaded: from its own finalizer, before it is unmapped. */
static void watch(const char *name, const char *path, uintptr_t bias)
{
	char running[RELIVE_RES_ID];
	struct elfsym_file *f;
	struct elfsym_sym sym;
	struct watched *w;
	char err[256];

	for (w = watched; w; w = w->next)
		if (w->bias == bias && !w->gone && !strcmp(w->name, name))
			return;
	if (elfsym_open(path, &f, err, sizeof(err)))
		return;
	/* Another build's __dso_handle would be the wrong address. */
	if (!resolution_same_build(f, bias, running, sizeof(running))) {
		elfsym_close(f);
		agent_log("object '%s': %s is no longer the file mapped: its "
			  "unloading is noticed after it is unmapped", name,
			  path);
		return;
	}
	if (elfsym_lookup(f, "__dso_handle", 0, &sym, NULL)) {
		elfsym_close(f);
		agent_log("object '%s' has no __dso_handle symbol: its "
			  "unloading is noticed after it is unmapped", name);
		return;
	}
	elfsym_close(f);
	w = calloc(1, sizeof(*w));
	if (!w || !(w->name = strdup(name))) {
		free(w);
		return;
	}
	w->bias = bias;
	w->next = watched;
	watched = w;
	__cxa_atexit(object_going, w, (void *)(bias + sym.value));
}

/* kernel: klp_module_coming().  Patches object o of p, just mapped and
 * not yet relocated or initialised. */
static void coming(struct relive_patch *p, struct relive_object *o,
		   const char *path)
{
	struct klp_callbacks *cb = o->kobj ? &o->kobj->callbacks : NULL;
	struct relive_patch *q;
	size_t j;
	int rc;

	o->loaded = true;
	o->refused[0] = '\0';
	rc = resolve_object(o, path);
	for (j = 0; !rc && j < o->nfuncs; j++)
		rc = ops_reserve(o->funcs[j].ops);
	if (rc) {
		snprintf(o->refused, sizeof(o->refused), "%s",
			 relive_agent_ctl.msg);
		agent_log("'%s': object '%s' left unpatched: %s", p->name,
			  o->name, o->refused);
		return;
	}
	/* The references into it, of this patch and of every other one; a
	 * patch whose references cannot be resolved leaves it unpatched. */
	for (q = agent_patches; q; q = q->next)
		if (apply_object(q, o->name, path, o->bias)) {
			agent_log("'%s': %s", q->name, relive_agent_ctl.msg);
			if (q == p) {
				snprintf(o->refused, sizeof(o->refused), "%s",
					 relive_agent_ctl.msg);
				clear_object(p, o->name, false);
				return;
			}
		}
	watch(o->name, path, o->bias);
	if (cb && cb->pre_patch && (rc = cb->pre_patch(o->kobj))) {
		snprintf(o->refused, sizeof(o->refused),
			 "pre_patch callback failed (%d)", rc);
		agent_log("'%s': object '%s' left unpatched: %s", p->name,
			  o->name, o->refused);
		return;
	}
	o->pre_patch_ran = true;
	for (j = 0; j < o->nfuncs; j++) {
		struct relive_ops *ops = o->funcs[j].ops;

		if (!ops->redirected) {
			uint8_t jump[RELIVE_ARCH_JUMP_LEN];

			/* No thread can run this code yet: write directly. */
			if (relive_arch_encode_jump(ops->site.site_addr,
						    (uintptr_t)ops->stub, jump) ||
			    codemem_write((void *)ops->site.site_addr, jump,
					  sizeof(jump))) {
				snprintf(o->refused, sizeof(o->refused),
					 "cannot write the entry of %s",
					 ops->name);
				return;
			}
			ops->redirected = true;
		}
		ops_push(ops, &o->funcs[j]);
		ops_set_target(ops, ops_top_target(ops));
	}
	o->patched = true;
	agent_log("'%s': object '%s' patched as it loads", p->name, o->name);
	/* post_patch now, or when the patch's transition completes */
	if (transition_patch() != p && cb && cb->post_patch) {
		cb->post_patch(o->kobj);
		o->post_patch_ran = true;
	} else if (transition_patch() != p) {
		o->post_patch_ran = true;
	}
}

/* Objects that went away without their finalizer telling us (no
 * __dso_handle to watch): noticed at the loader's next notification. */
static void vanished(void)
{
	struct relive_patch *p;
	char path[4096];
	uintptr_t bias;
	size_t i;

	for (p = agent_patches; p; p = p->next)
		for (i = 0; i < p->nobjs; i++) {
			struct relive_object *o = &p->objs[i];

			if (o->loaded && o->name &&
			    (!find_loaded_object(o->name, path, sizeof(path),
						 &bias) || bias != o->bias))
				going(o->name, o->bias);
		}
}

/* The objects mapped at the loader's last notification: an object not
 * among them was mapped since, and none of its code has run yet. */
static uintptr_t *seen;
static size_t nseen, capseen;

static int seen_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	if (nseen == capseen) {
		size_t cap = capseen ? 2 * capseen : 64;
		uintptr_t *n = realloc(seen, cap * sizeof(*n));

		if (!n)
			return 1;
		seen = n;
		capseen = cap;
	}
	seen[nseen++] = info->dlpi_addr;
	return 0;
}

static void remember_mappings(void)
{
	nseen = 0;
	dl_iterate_phdr(seen_cb, NULL);
}

static bool is_new(uintptr_t bias)
{
	size_t i;

	for (i = 0; i < nseen; i++)
		if (seen[i] == bias)
			return false;
	return true;
}

static void objects_hook(void)
{
	struct relive_patch *p;
	char path[4096];
	uintptr_t bias;
	size_t i;

	if (_r_debug.r_state != RT_CONSISTENT)
		return;
	pthread_mutex_lock(&agent_lock);
	vanished();
	for (p = agent_patches; p; p = p->next) {
		bool active = p->enabled && (transition_patch() != p ||
					     transition_patching());

		if (!active)
			continue;
		for (i = 0; i < p->nobjs; i++) {
			struct relive_object *o = &p->objs[i];

			if (!o->name)
				continue;
			if (o->loaded) {
				/* The same library again, from another path:
				 * the patch names one object, the first. */
				if (find_other_copy(o->name, o->bias, path,
						    sizeof(path), &bias) &&
				    is_new(bias))
					snprintf(o->refused, sizeof(o->refused),
						 "another copy of %s was loaded "
						 "from %s and is not patched",
						 o->name, path);
				continue;
			}
			if (!find_loaded_object(o->name, path, sizeof(path),
						&bias)) {
				o->refused[0] = '\0'; /* no copy left */
				continue;
			}
			if (!is_new(bias)) {
				/* Its code may have run already: patching it
				 * now would need a transition. */
				snprintf(o->refused, sizeof(o->refused),
					 "%s (from %s) was loaded before the "
					 "patch could follow it; it is not "
					 "patched", o->name, path);
				continue;
			}
			o->bias = bias;
			coming(p, o, path);
		}
	}
	remember_mappings();
	core_snapshot();
	pthread_mutex_unlock(&agent_lock);
}

/*
 * The redirection of _dl_debug_state: a 1-byte `ret` (or endbr64; ret)
 * followed by alignment padding, so the 5-byte jump covers only the ret
 * and padding no thread can be executing.
 */
int objects_plan_hook(void)
{
	/* bytes of nop and int3 padding */
	static const uint8_t padding[] = { 0x90, 0x66, 0x2e, 0x0f, 0x1f, 0x84,
					   0x00, 0x40, 0x44, 0x80, 0xcc };
	uintptr_t brk = _r_debug.r_brk, site = brk;
	const uint8_t *b = (const uint8_t *)brk;
	unsigned i;

	if (hook_ops)
		return ops_plan_redirect(hook_ops); /* an earlier run was cut */
	if (hook_planned || !brk)
		return 0;
	if (b[0] == 0xf3 && b[1] == 0x0f && b[2] == 0x1e && b[3] == 0xfa)
		site += 4;
	b = (const uint8_t *)site;
	if (b[0] != 0xc3 || ((site + RELIVE_ARCH_JUMP_LEN - 1) | 15) !=
				    (site | 15)) {
		agent_log("the dynamic loader's notification function has an "
			  "unexpected shape: late-loaded objects are not "
			  "patched");
		hook_planned = true;
		return 0;
	}
	for (i = 1; i < RELIVE_ARCH_JUMP_LEN; i++)
		if (!memchr(padding, b[i], sizeof(padding))) {
			agent_log("no room after the dynamic loader's "
				  "notification function: late-loaded objects "
				  "are not patched");
			hook_planned = true;
			return 0;
		}
	hook_ops = ops_get_hook(site, (uintptr_t)objects_hook);
	if (!hook_ops)
		return -ENOMEM;
	remember_mappings();
	hook_planned = true;
	return ops_plan_redirect(hook_ops);
}

void objects_init(void)
{
	const char *root = getenv("RELIVE_DEBUG_ROOT");

	/* Where separate debug files are looked for (/usr/lib/debug). */
	if (root && *root)
		elfsym_set_debug_root(root);
}
