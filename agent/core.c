/*
 * agent/core.c - patches and objects (kernel: kernel/livepatch/core.c).
 *
 * A request to load a patch dlopens it, checks its descriptor, finds each
 * object it names among the objects the dynamic loader has mapped, resolves
 * each function with the object's full symbol table, and builds the ops of
 * each function (patch.c).  Loading changes nothing that runs: only enabling
 * pushes the new versions on the func_stacks and arms the stubs.
 * Every check that can fail is made before the first change, so a refused
 * patch leaves the process as it was.
 */
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "agent.h"
#include "background.h"
#include "elfsym.h"
#include "libs.h"

struct relive_patch *agent_patches;

struct relive_patch *core_find(const char *name)
{
	struct relive_patch *p;

	for (p = agent_patches; p; p = p->next)
		if (!strcmp(p->name, name))
			return p;
	return NULL;
}

static const char *objname(const struct relive_object *o)
{
	return o->name ? o->name : "main";
}

/* --- finding a loaded object --------------------------------------------- */

struct find_obj {
	const char *name;   /* NULL: main executable */
	uintptr_t skip;     /* a copy at this bias does not count */
	char path[4096];
	uintptr_t bias;
	bool found;
	bool first;
	bool by_soname;     /* second pass: no file has the name */
	bool no_soname;     /* no second pass */
};

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

/* Is [addr, addr + len) inside one of the object's loaded segments? */
static bool in_segments(const struct dl_phdr_info *info, uintptr_t addr,
			size_t len)
{
	int i;

	for (i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr;

		if (ph->p_type == PT_LOAD && addr >= lo &&
		    addr - lo <= ph->p_memsz && len <= ph->p_memsz - (addr - lo))
			return true;
	}
	return false;
}

/* Is the object's DT_SONAME name?  Read from its dynamic section as the
 * loader mapped it, not from its file: this runs in the loader's
 * notification of every dlopen and dlclose of the program, for each loaded
 * object, and needs no library.  The dynamic loader has made DT_STRTAB an
 * address (on this architecture it relocates the section in place); a
 * value below the load bias is the link-time one.  Everything read is
 * first checked to lie in the object's loaded segments. */
static bool soname_is(const struct dl_phdr_info *info, const char *name)
{
	const ElfW(Dyn) *d = NULL;
	uintptr_t strtab = 0, soname = 0, at;
	size_t n = strlen(name) + 1, count = 0;
	bool has_soname = false;
	int i;

	for (i = 0; i < info->dlpi_phnum && !d; i++)
		if (info->dlpi_phdr[i].p_type == PT_DYNAMIC) {
			d = (const ElfW(Dyn) *)(info->dlpi_addr +
						info->dlpi_phdr[i].p_vaddr);
			count = info->dlpi_phdr[i].p_memsz / sizeof(*d);
		}
	if (!d || !in_segments(info, (uintptr_t)d, count * sizeof(*d)))
		return false;
	for (; count-- && d->d_tag != DT_NULL; d++) {
		if (d->d_tag == DT_STRTAB)
			strtab = d->d_un.d_ptr;
		else if (d->d_tag == DT_SONAME) {
			soname = d->d_un.d_val;
			has_soname = true;
		}
	}
	if (!strtab || !has_soname)
		return false;
	if (strtab < info->dlpi_addr)
		strtab += info->dlpi_addr;
	at = strtab + soname;
	return at >= strtab && in_segments(info, at, n) &&
	       !memcmp((const void *)at, name, n);
}

static int find_obj_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct find_obj *fo = arg;
	bool first = fo->first;
	bool match = false;

	fo->first = false;
	if (!fo->name) {
		if (!first)
			return 0;
		ssize_t n = readlink("/proc/self/exe", fo->path,
				     sizeof(fo->path) - 1);
		if (n < 0)
			return 0;
		fo->path[n] = '\0';
		fo->bias = info->dlpi_addr;
		fo->found = true;
		return 1;
	}
	if (!info->dlpi_name || !info->dlpi_name[0])
		return 0;
	if (!fo->by_soname) {
		match = !strcmp(base_name(info->dlpi_name), fo->name);
	} else if (info->dlpi_name[0] == '/') {
		match = soname_is(info, fo->name);
	}
	if (!match || (fo->skip && info->dlpi_addr == fo->skip))
		return 0;
	text_copy(fo->path, sizeof(fo->path), info->dlpi_name);
	fo->bias = info->dlpi_addr;
	fo->found = true;
	return 1;
}

/* The loaded objects, by file name first; by DT_SONAME (which takes
 * reading each file's header) only when no file has the name, as the
 * controller does (relive/proc.c, proc_find_object). */
static void find_obj(struct find_obj *fo)
{
	dl_iterate_phdr(find_obj_cb, fo);
	if (!fo->found && fo->name && !fo->no_soname) {
		fo->by_soname = true;
		dl_iterate_phdr(find_obj_cb, fo);
	}
}

/* find_obj() as fo says; its path and bias copied out when found. */
static bool find_copy_out(struct find_obj *fo, char *path, size_t pathlen,
			  uintptr_t *bias)
{
	find_obj(fo);
	if (!fo->found)
		return false;
	text_copy(path, pathlen, fo->path);
	*bias = fo->bias;
	return true;
}

bool find_other_copy(const char *name, uintptr_t skip, char *path,
		     size_t pathlen, uintptr_t *bias)
{
	struct find_obj fo = { .name = name, .first = true, .skip = skip };

	return find_copy_out(&fo, path, pathlen, bias);
}

bool find_loaded_object(const char *name, char *path, size_t pathlen,
			uintptr_t *bias)
{
	struct find_obj fo = { .name = name, .first = true };

	return find_copy_out(&fo, path, pathlen, bias);
}

bool find_loaded_file(const char *name, char *path, size_t pathlen,
		      uintptr_t *bias)
{
	struct find_obj fo = { .name = name, .first = true, .no_soname = true };

	return find_copy_out(&fo, path, pathlen, bias);
}

/* --- loading ------------------------------------------------------------ */

static void patch_free(struct relive_patch *p)
{
	size_t i;

	if (!p)
		return;
	core_free_nops(p);
	klp_relocs_free(p);
	for (i = 0; i < p->nobjs; i++)
		free(p->objs[i].funcs);
	free(p->objs);
	free(p->file);
	free(p);
}

static const char *patch_name_of(const char *path, char *buf, size_t len)
{
	const char *b = base_name(path);
	size_t n = strlen(b);

	if (n > 3 && !strcmp(b + n - 3, ".so"))
		n -= 3;
	if (n >= len)
		n = len - 1;
	memcpy(buf, b, n);
	buf[n] = '\0';
	return buf;
}

/* GCC moves the unlikely code of a function NAME into a separate
 * function "NAME.cold", entered only by jumps from NAME: a thread there is
 * running NAME.  Its range, when the name is unique. */
static void cold_part(struct elfsym_file *f, const char *name, uintptr_t bias,
		      uintptr_t *lo, uintptr_t *hi)
{
	struct elfsym_sym sym;
	char cold[512];

	if (*hi || !f || !name)
		return;
	text_append(cold, sizeof(cold), text_copy(cold, sizeof(cold), name),
		    ".cold");
	if (elfsym_lookup(f, cold, 0, &sym, NULL) == 0 &&
	    sym.type == STT_FUNC && sym.size) {
		*lo = bias + sym.value;
		*hi = *lo + sym.size;
	}
}


/* The direct calls to o's functions, for when their entries go direct
 * (direct.c); none found only costs calls the entry's jump.  f may be NULL:
 * the file at path is then read only if a call needs its symbols, and
 * used only if it is the object the process runs. */
static void find_calls(struct relive_object *o, struct elfsym_file *f,
		       const char *path, const struct relive_res_func *rf)
{
	struct relive_ops **ops = calloc(o->nfuncs ? o->nfuncs : 1,
					 sizeof(*ops));
	size_t i, n = 0;

	if (!ops)
		return;
	for (i = 0; i < o->nfuncs; i++) {
		const uint64_t *calls;
		size_t ncalls;

		/* relive found them in the file: where to look */
		if (rf && resolution_calls(o, &rf[i], &calls, &ncalls))
			direct_take_calls(o->funcs[i].ops, o->bias, calls,
					  ncalls);
		else
			ops[n++] = o->funcs[i].ops;
	}
	direct_find_calls(f, path, o->bias, ops, n);
	free(ops);
}

/* Reads the symbols of o's file at path, which must be the object the
 * process runs.  Returns 0 or a negative errno with the message set. */
static int open_object_file(struct relive_object *o, const char *path,
			    struct elfsym_file **f)
{
	char err[512];
	int rc;

	rc = elfsym_open(path, f, err, sizeof(err));
	background_step(); /* a symbol table read: up to half a ms */
	if (rc) {
		agent_msg("object '%s': %s", objname(o), err);
		return rc;
	}
	if (!resolution_file_runs(*f, o->bias, objname(o), path)) {
		elfsym_close(*f);
		*f = NULL;
		return -ESTALE;
	}
	return 0;
}

/* Resolves one object's functions and builds their ops.  The object must
 * be loaded.  Its symbols come from the controller's resolution when it
 * was read from the build-id the process runs (resolution.c), else from
 * the file.  Returns 0 or a negative errno with the message set. */
int resolve_object(struct relive_object *o, const char *path)
{
	const struct relive_res_func *rf;
	struct elfsym_file *f = NULL;
	char running[RELIVE_RES_ID];
	char err[512];
	size_t i;
	int rc;

	resolution_running_build_id(o->bias, running, sizeof(running));
	rf = resolution_object(o, running);
	if (rf) {
		text_copy(o->build_id, sizeof(o->build_id), running);
		agent_log("object '%s': %zu function%s as resolved by relive",
			  objname(o), o->nfuncs, o->nfuncs == 1 ? "" : "s");
	} else {
		rc = open_object_file(o, path, &f);
		if (rc)
			return rc;
		text_copy(o->build_id, sizeof(o->build_id),
			  elfsym_build_id(f));
	}
	if (o->kobj && o->kobj->build_id && o->kobj->build_id[0] &&
	    strcasecmp(o->kobj->build_id, o->build_id)) {
		agent_msg("object '%s' (%s) has build-id %s, the patch was built for %s; "
			  "rebuild the patch against the running binary",
			  objname(o), path,
			  o->build_id[0] ? o->build_id : "(none)",
			  o->kobj->build_id);
		elfsym_close(f);
		return -ENOEXEC;
	}
	for (i = 0; i < o->nfuncs; i++) {
		struct relive_func *fn = &o->funcs[i];
		struct elfsym_sym sym;
		unsigned count = 0;
		char what[512];
		size_t n;

		if (rf) {
			sym.value = rf[i].value;
			sym.size = rf[i].size;
			sym.type = STT_FUNC;
		} else {
			background_step();
			rc = elfsym_lookup(f, fn->old_name, fn->old_sympos,
					   &sym, &count);
			if (rc) {
				elfsym_strerror(rc, fn->old_name,
						fn->old_sympos, count,
						objname(o), err, sizeof(err));
				agent_msg("%s", err);
				elfsym_close(f);
				return rc;
			}
		}
		if (sym.type != STT_FUNC) {
			agent_msg("symbol '%s' in %s is not a function; only "
				  "functions can be replaced", fn->old_name,
				  objname(o));
			elfsym_close(f);
			return -EINVAL;
		}
		n = text_append(what, sizeof(what),
				text_copy(what, sizeof(what), "'"),
				fn->old_name);
		text_append(what, sizeof(what),
			    text_append(what, sizeof(what), n, "' in "),
			    objname(o));
		fn->ops = ops_get(o->bias + sym.value, sym.size, what,
				  rf ? resolution_site(o, &rf[i]) : NULL);
		if (!fn->ops) {
			elfsym_close(f);
			return -EINVAL;
		}
		if (rf && rf[i].cold_size && !fn->ops->cold_hi) {
			fn->ops->cold_lo = o->bias + rf[i].cold;
			fn->ops->cold_hi = fn->ops->cold_lo + rf[i].cold_size;
		} else if (!rf) {
			cold_part(f, fn->old_name, o->bias, &fn->ops->cold_lo,
				  &fn->ops->cold_hi);
		}
	}
	find_calls(o, f, path, rf);
	elfsym_close(f);
	return 0;
}

static int build_patch(struct relive_patch *p)
{
	struct klp_patch *kp = p->info->patch;
	size_t n = 0, i, j;

	if (!kp || !kp->objs) {
		agent_msg("patch '%s' has no objects", p->name);
		return -EINVAL;
	}
	while (kp->objs[n].funcs)
		n++;
	if (!n) {
		agent_msg("patch '%s' has no objects", p->name);
		return -EINVAL;
	}
	p->objs = calloc(n, sizeof(*p->objs));
	if (!p->objs)
		return -ENOMEM;
	p->nobjs = n;
	p->replace = kp->replace;
	for (i = 0; i < n; i++) {
		struct klp_object *ko = &kp->objs[i];
		struct relive_object *o = &p->objs[i];
		size_t nf = 0;

		o->kobj = ko;
		o->name = ko->name && strcmp(ko->name, "main") ? ko->name : NULL;
		o->patch = p;
		while (ko->funcs[nf].old_name)
			nf++;
		if (!nf) {
			agent_msg("object '%s' of patch '%s' has no functions",
				  objname(o), p->name);
			return -EINVAL;
		}
		o->funcs = calloc(nf, sizeof(*o->funcs));
		if (!o->funcs)
			return -ENOMEM;
		o->nfuncs = nf;
		for (j = 0; j < nf; j++) {
			struct klp_func *kf = &ko->funcs[j];

			if (!kf->new_func) {
				agent_msg("function '%s' of object '%s' has no "
					  "new_func", kf->old_name, objname(o));
				return -EINVAL;
			}
			o->funcs[j].old_name = kf->old_name;
			o->funcs[j].new_func = kf->new_func;
			o->funcs[j].old_sympos = kf->old_sympos;
			o->funcs[j].obj = o;
		}
	}
	return 0;
}

/* The code of a new version (kernel: func->new_size): its symbol when the
 * patch exports it, else (a static function) its symbol in the patch's
 * .symtab, else the patch's whole executable segment, which is
 * conservative: a thread anywhere in the patch counts. */
static void new_func_range(struct relive_func *f, struct elfsym_file *pf,
			   uintptr_t bias)
{
	Dl_info info;
	const ElfW(Sym) *sym = NULL;
	struct elfsym_sym es;
	const struct relive_res_func *rf;
	uintptr_t rbias;

	const char *name = NULL;

	if ((rf = resolution_new(f, &rbias)) && rf->new_size) {
		f->new_lo = (uintptr_t)f->new_func;
		f->new_hi = f->new_lo + rf->new_size;
		if (rf->new_cold_size) {
			f->new_cold_lo = rbias + rf->new_cold;
			f->new_cold_hi = f->new_cold_lo + rf->new_cold_size;
		}
		return;
	}
	if (rf)
		goto segment; /* no function symbol in the patch */

	if (dladdr1(f->new_func, &info, (void **)&sym, RTLD_DL_SYMENT) &&
	    sym && info.dli_saddr == f->new_func && sym->st_size) {
		f->new_lo = (uintptr_t)f->new_func;
		f->new_hi = f->new_lo + sym->st_size;
		cold_part(pf, info.dli_sname, bias, &f->new_cold_lo,
			  &f->new_cold_hi);
		return;
	}
	if (pf && elfsym_func_name_at(pf, (uintptr_t)f->new_func - bias, &es,
				      &name) == 0) {
		f->new_lo = (uintptr_t)f->new_func;
		f->new_hi = f->new_lo + es.size;
		cold_part(pf, name, bias, &f->new_cold_lo, &f->new_cold_hi);
		return;
	}
segment:
	if (!code_segment_of((uintptr_t)f->new_func, &f->new_lo, &f->new_hi)) {
		f->new_lo = (uintptr_t)f->new_func;
		f->new_hi = f->new_lo + 1;
	}
}

/* Does the controller's resolution give every new version of p? */
static bool all_new_resolved(const struct relive_patch *p)
{
	uintptr_t bias;
	size_t i, j;

	for (i = 0; i < p->nobjs; i++)
		for (j = 0; j < p->objs[i].nfuncs; j++)
			if (!resolution_new(&p->objs[i].funcs[j], &bias))
				return false;
	return true;
}

/*
 * Could loading p, or patching its objects later, need libelf or Zydis
 * (libs.c)?  Not when relive's resolution serves every part of it: the
 * new versions, each object's functions read from the build-id the
 * process runs, each entry decoded from the bytes it has now, each
 * reference resolved by relive (klp_relocs_served, objects.c: into one
 * of the patch's objects, a KLP_ORIGINAL only of a function the patch
 * replaces), the direct calls to each replaced
 * function found by relive or no byte pattern of one to decode, each
 * object loaded (by file name) and one the program itself needs, which is
 * never unloaded and loaded again (objects that come later are read from
 * their files, in the loader's notification, where nothing can be
 * loaded).  Anything else, and the libraries are loaded before agent_lock
 * is taken.  A function already patched passes the entry's check: relive
 * decoded its entry jump and hashed the bytes it has now.
 */
static bool needs_libs(struct relive_patch *p)
{
	uintptr_t *entry = NULL;
	bool need = false;
	size_t i, j;

	if (libs_wanted() || !p->res.table || !p->res.new_ok ||
	    !klp_relocs_served(p))
		return true;
	for (i = 0; i < p->nobjs && !need; i++) {
		struct relive_object *o = &p->objs[i];
		const struct relive_res_func *rf;
		char path[4096], running[RELIVE_RES_ID];
		uintptr_t bias, *e;
		const uint64_t *calls;
		size_t n;

		if (!find_loaded_file(o->name, path, sizeof(path), &bias) ||
		    (o->name && !objects_permanent(path)))
			break;
		resolution_running_build_id(bias, running, sizeof(running));
		if (!(rf = resolution_object(o, running)) ||
		    !(e = realloc(entry, (o->nfuncs + 1) * sizeof(*e))))
			break;
		entry = e;
		for (j = 0; j < o->nfuncs; j++) {
			if (!resolution_site_fits(resolution_site(o, &rf[j]),
						  bias + rf[j].value,
						  rf[j].size))
				break;
			entry[j] = bias + rf[j].value;
		}
		/* relive's list of the direct calls needs no decoding */
		if (j == o->nfuncs && !resolution_calls(o, rf, &calls, &n))
			need = direct_calls_possible(entry, o->nfuncs);
		else
			need = j < o->nfuncs;
	}
	free(entry);
	return need || i < p->nobjs;
}

/*
 * First half of loading, without agent_lock: everything that calls into
 * the dynamic loader (dlopen, dlsym, dladdr take its lock, and the loader
 * calls the agent's hook with its lock held, so the agent never calls it
 * while holding its own).  Returns the patch, or NULL with *rc set.
 */
struct relive_patch *core_open(const char *path, uint64_t seq, int *rc)
{
	struct relive_patch *p;
	bool loaded = false;
	char name[256];
	size_t i, j;

	patch_name_of(path, name, sizeof(name));
	p = calloc(1, sizeof(*p));
	if (!p || !(p->file = strdup(path))) {
		free(p);
		*rc = -ENOMEM;
		return NULL;
	}
	text_copy(p->name, sizeof(p->name), name);
	if (relive_agent_ctl.load_near_main) {
		uintptr_t lo, hi;

		if (code_segment_of(getauxval(AT_ENTRY), &lo, &hi))
			direct_steer_begin(path, lo, hi);
	}
	background_step();
	p->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	direct_steer_end();
	background_step();
	if (!p->handle) {
		agent_msg("cannot load %s: %s", path, dlerror());
		free(p->file);
		free(p);
		*rc = -ENOEXEC;
		return NULL;
	}
	p->info = dlsym(p->handle, "relive_patch_info");
	if (!p->info || p->info->magic != RELIVE_PATCH_MAGIC) {
		agent_msg("%s is not a relive patch (no RELIVE_PATCH())", path);
		*rc = -ENOEXEC;
		goto fail;
	}
	if (p->info->abi != RELIVE_ABI_VERSION) {
		agent_msg("%s was built for patch ABI %u, this agent speaks %u; "
			  "rebuild it with this relive's header", path,
			  p->info->abi, RELIVE_ABI_VERSION);
		*rc = -ENOEXEC;
		goto fail;
	}
	*rc = build_patch(p);
	if (*rc)
		goto fail;
	resolution_begin(p, seq);
	{
		struct elfsym_file *pf = NULL;
		uintptr_t bias = 0;
		Dl_info info;
		char err[256];

		/* Static new versions have their sizes in .symtab only:
		 * read it unless relive's resolution says them. */
		bool resolved = all_new_resolved(p);

		if (resolved)
			agent_log("'%s': new versions as resolved by relive",
				  p->name);
		/* held until needs_libs() below says whether the patch
		 * keeps them */
		if (!resolved && !(p->holds_libs = libs_get(&loaded)))
			agent_log("'%s': %s", p->name, libs_error());
		if (!resolved && dladdr(p->info, &info) &&
		    info.dli_fname &&
		    elfsym_open(info.dli_fname, &pf, err, sizeof(err)) == 0)
			bias = (uintptr_t)info.dli_fbase -
			       elfsym_first_vaddr(pf);
		for (i = 0; i < p->nobjs; i++)
			for (j = 0; j < p->objs[i].nfuncs; j++)
				new_func_range(&p->objs[i].funcs[j], pf, bias);
		elfsym_close(pf);
		background_step();
	}
	*rc = klp_relocs_read(p);
	if (*rc)
		goto fail;
	/* The patch holds the libraries for as long as it is listed if it
	 * could need them: for its transitions, and for objects loaded later
	 * (a patch that did not may find them loaded, held by another). */
	if (!needs_libs(p)) {
		if (p->holds_libs)
			libs_put();
		p->holds_libs = false;
	} else if (!p->holds_libs && !(p->holds_libs = libs_get(&loaded))) {
		agent_msg("patch '%s' needs symbol tables read or code decoded "
			  "in the process, but %s", p->name, libs_error());
		*rc = -ENOENT;
		goto fail;
	}
	if (loaded && p->holds_libs)
		agent_log("'%s': libelf and Zydis loaded", p->name);
	return p;
fail:
	core_discard(p);
	return NULL;
}

/* Frees a patch that is not (or no longer) listed.  Without agent_lock. */
void core_discard(struct relive_patch *p)
{
	if (!p)
		return;
	if (p->handle)
		dlclose(p->handle);
	if (p->holds_libs)
		libs_put();
	patch_free(p);
}

/* Second half of loading, under agent_lock.  On failure the caller
 * discards p. */
int core_load(struct relive_patch *p)
{
	struct relive_patch **tail;
	char objpath[4096];
	size_t i;
	int rc;

	ops_plan_reset();
	if (core_find(p->name)) {
		agent_msg("patch '%s' is already applied to this process",
			  p->name);
		return -EEXIST;
	}
	for (i = 0; i < p->nobjs; i++) {
		struct relive_object *o = &p->objs[i];

		o->loaded = find_loaded_object(o->name, objpath,
					       sizeof(objpath), &o->bias);
		if (!o->loaded)
			continue;
		rc = resolve_object(o, objpath);
		if (rc)
			goto fail;
	}
	rc = klp_relocs_apply_all(p);
	if (rc)
		goto fail;
	rc = state_check_compatible(p);
	if (rc)
		goto fail;
	p->info->api = &agent_api;
	rc = ops_plan_redirects_for(p);
	if (!rc)
		rc = objects_plan_hook();
	if (rc)
		goto fail;
	ops_plan_write_alone();
	/* relive's resolution served this load only (resolution.c). */
	resolution_end(p);
	for (tail = &agent_patches; *tail; tail = &(*tail)->next)
		;
	*tail = p;
	agent_log("'%s': loaded from %s", p->name, p->file);
	return 0;
fail:
	resolution_end(p);
	ops_plan_reset();
	return rc;
}

/* --- atomic replace: nop functions ------------------------------------- */

/* Does patch p (or a nop made so far) already cover ops? */
static bool covers(struct relive_patch *p, size_t nnop, struct relive_ops *ops)
{
	size_t i, j;

	for (i = 0; i < p->nobjs + nnop; i++) {
		struct relive_object *o = i < p->nobjs ? &p->objs[i] :
							 &p->nop_objs[i - p->nobjs];

		for (j = 0; j < o->nfuncs; j++)
			if (o->funcs[j].ops == ops)
				return true;
	}
	return false;
}

/*
 * kernel: klp_add_nops().  A replacing patch gets a nop version for every
 * function an enabled patch changed and it does not: during its transition
 * the nop sends switched threads to the original code.
 */
static int make_nops(struct relive_patch *p)
{
	struct relive_patch *q;
	size_t n = 0, i, j;

	for (q = agent_patches; q; q = q->next)
		if (q != p && q->enabled)
			n += q->nobjs;
	if (!n)
		return 0;
	p->nop_objs = calloc(n, sizeof(*p->nop_objs));
	if (!p->nop_objs)
		return -ENOMEM;
	for (q = agent_patches; q; q = q->next) {
		if (q == p || !q->enabled)
			continue;
		for (i = 0; i < q->nobjs; i++) {
			struct relive_object *qo = &q->objs[i];
			struct relive_object *no = &p->nop_objs[p->n_nop_objs];

			if (!qo->loaded)
				continue;
			no->funcs = calloc(qo->nfuncs, sizeof(*no->funcs));
			if (!no->funcs)
				return -ENOMEM;
			no->name = qo->name;
			no->patch = p;
			no->loaded = true;
			no->bias = qo->bias;
			text_copy(no->build_id, sizeof(no->build_id),
				  qo->build_id);
			for (j = 0; j < qo->nfuncs; j++) {
				struct relive_func *f = &no->funcs[no->nfuncs];

				if (!qo->funcs[j].ops ||
				    covers(p, p->n_nop_objs + 1, qo->funcs[j].ops))
					continue;
				f->old_name = qo->funcs[j].old_name;
				f->old_sympos = qo->funcs[j].old_sympos;
				f->nop = true;
				f->obj = no;
				f->ops = qo->funcs[j].ops;
				if (ops_reserve(f->ops))
					return -ENOMEM;
				no->nfuncs++;
			}
			if (no->nfuncs)
				p->n_nop_objs++;
			else
				free(no->funcs);
		}
	}
	return 0;
}

void core_free_nops(struct relive_patch *p)
{
	size_t i;

	for (i = 0; i < p->n_nop_objs; i++)
		free(p->nop_objs[i].funcs);
	free(p->nop_objs);
	p->nop_objs = NULL;
	p->n_nop_objs = 0;
}

/* --- enabling and disabling -------------------------------------------- */

static int busy(const char *name)
{
	struct relive_patch *t = transition_patch();

	agent_msg("the %s transition of patch '%s' is in progress; wait for "
		  "it (relive wait), or reverse or force it before changing "
		  "'%s'", transition_patching() ? "patching" : "unpatching",
		  t->name, name);
	return -EBUSY;
}

/* core_enable() once no entry is direct: callbacks, nops, the start. */
static int enable_taken_back(struct relive_patch *p, const char *name)
{
	size_t i;
	int rc;

	for (i = 0; i < p->nobjs; i++) {
		struct relive_object *o = &p->objs[i];

		if (!o->loaded)
			continue;
		rc = o->kobj->callbacks.pre_patch ?
			     o->kobj->callbacks.pre_patch(o->kobj) : 0;
		if (rc) {
			agent_msg("pre_patch callback of object '%s' in patch "
				  "'%s' failed (%d); the patch is refused",
				  objname(o), name, rc);
			/* kernel symmetry: post_unpatch for those that ran */
			while (i-- > 0) {
				struct relive_object *u = &p->objs[i];

				if (u->pre_patch_ran &&
				    u->kobj->callbacks.post_unpatch)
					u->kobj->callbacks.post_unpatch(u->kobj);
				u->pre_patch_ran = false;
			}
			return -ECANCELED;
		}
		o->pre_patch_ran = true;
	}
	if (p->replace) {
		rc = make_nops(p);
		if (rc) {
			agent_msg("out of memory preparing the replacement");
			core_free_nops(p);
			return rc;
		}
	}
	rc = transition_start(p, true);
	if (rc) {
		agent_msg("out of memory starting the transition");
		return rc;
	}
	p->enabled = true;
	p->was_enabled = true;
	return 0;
}

/* kernel: __klp_enable_patch(). */
int core_enable(const char *name)
{
	struct relive_patch *p = core_find(name), *t = transition_patch();
	int rc;

	if (!p) {
		agent_msg("no patch '%s' in this process", name);
		return -ENOENT;
	}
	if (t) {
		if (t != p || transition_patching())
			return busy(name);
		/* Enabling a patch while it is being disabled reverses. */
		transition_reverse();
		p->enabled = true;
		return 0;
	}
	if (p->enabled) {
		agent_msg("patch '%s' is already applied to this process",
			  name);
		return -EEXIST;
	}
	if (p->was_enabled) {
		agent_msg("patch '%s' is loaded but disabled; remove it first "
			  "(relive remove), then apply it again", name);
		return -EEXIST;
	}
	/* Every call goes through a stub again before anything changes;
	 * a refused enable makes the entries direct again. */
	rc = direct_take_back_all();
	if (rc)
		return rc;
	rc = enable_taken_back(p, name);
	if (rc)
		direct_make_all();
	return rc;
}

/* kernel: __klp_disable_patch(). */
int core_disable(const char *name)
{
	struct relive_patch *p = core_find(name), *t = transition_patch();
	size_t i;
	int rc;

	if (!p) {
		agent_msg("no patch '%s' in this process", name);
		return -ENOENT;
	}
	if (t) {
		if (t != p || !transition_patching())
			return busy(name);
		/* Disabling a patch while it is being enabled reverses. */
		transition_reverse();
		p->enabled = false;
		return 0;
	}
	if (!p->enabled) {
		agent_msg("patch '%s' is not enabled%s", name,
			  p->replaced ? " (a replacing patch took its place)" :
					"");
		return -EALREADY;
	}
	rc = direct_take_back_all();
	if (rc)
		return rc;
	for (i = 0; i < p->nobjs; i++) {
		struct relive_object *o = &p->objs[i];

		if (o->post_patch_ran && o->kobj->callbacks.pre_unpatch)
			o->kobj->callbacks.pre_unpatch(o->kobj);
		o->post_patch_ran = false;
	}
	p->enabled = false;
	if (transition_start(p, false)) {
		direct_make_all();
		return -ENOMEM;
	}
	return 0;
}

int core_complete(void)
{
	if (!transition_patch()) {
		agent_msg("no transition in progress");
		return -EALREADY;
	}
	transition_complete(false);
	return 0;
}

/* kernel: klp_force_transition(). */
int core_force(const char *name)
{
	struct relive_patch *t = transition_patch();

	if (!t || strcmp(t->name, name)) {
		agent_msg(t ? "patch '%s' is not in transition (patch '%s' is)" :
			      "patch '%s' is not in transition%s",
			  name, t ? t->name : "");
		return -EALREADY;
	}
	transition_complete(true);
	return 0;
}

static void unlink_patch(struct relive_patch *p)
{
	struct relive_patch **pp;

	for (pp = &agent_patches; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			return;
		}
}

int core_remove(const char *name, struct relive_patch **gone)
{
	struct relive_patch *p = core_find(name);

	if (!p) {
		agent_msg("no patch '%s' in this process", name);
		return -ENOENT;
	}
	if (p == transition_patch()) {
		agent_msg("patch '%s' is in transition; wait for it (relive "
			  "wait) or force it", name);
		return -EBUSY;
	}
	if (p->enabled) {
		agent_msg("patch '%s' is enabled; disable it first "
			  "(relive disable)", name);
		return -EBUSY;
	}
	if (p->forced) {
		agent_msg("patch '%s' was forced: its code may still run "
			  "somewhere, so it can never be removed", name);
		return -EPERM;
	}
	unlink_patch(p);
	*gone = p;
	agent_log("'%s': removed", name);
	return 0;
}

/* Undoes a load whose code writes failed: the patch was never enabled. */
int core_abort(const char *name, struct relive_patch **gone)
{
	struct relive_patch *p = core_find(name);

	if (!p || p->enabled || p == transition_patch())
		return 0;
	unlink_patch(p);
	*gone = p;
	return 0;
}

/* --- the listing -------------------------------------------------------- */

struct sbuf {
	char *s;
	size_t len, cap;
	bool oom;
};

/* Room for n more bytes and the final NUL. */
static bool sb_room(struct sbuf *b, size_t n)
{
	size_t cap;
	char *ns;

	if (b->oom)
		return false;
	if (b->len + n < b->cap)
		return true;
	cap = b->cap ? b->cap * 2 : 4096;
	while (cap <= b->len + n)
		cap *= 2;
	ns = realloc(b->s, cap);
	if (!ns) {
		b->oom = true;
		return false;
	}
	b->s = ns;
	b->cap = cap;
	return true;
}

/*
 * The listing is made of plain appends: it is rewritten at the end of
 * every request, where one vsnprintf per character of each name (as it
 * was made before) took 13.5 us of the CPU of a one-function request with
 * 1000 processes alive; plain appends take 4 us.
 */
static void sb_put(struct sbuf *b, const char *s, size_t n)
{
	if (!sb_room(b, n))
		return;
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void sb_add(struct sbuf *b, const char *s)
{
	sb_put(b, s, strlen(s));
}

static void sb_bool(struct sbuf *b, bool v)
{
	sb_add(b, v ? "true" : "false");
}

static void sb_num(struct sbuf *b, unsigned long long v)
{
	char d[24];

	sb_put(b, d, text_append_dec(d, sizeof(d), 0, v));
}

/* A JSON string: quotes, backslashes and control characters escaped. */
static void sb_str(struct sbuf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	sb_put(b, "\"", 1);
	while (s && *s) {
		size_t n = 0;
		unsigned char c;

		while (s[n] && s[n] != '"' && s[n] != '\\' &&
		       (unsigned char)s[n] >= 0x20)
			n++;
		sb_put(b, s, n);
		s += n;
		if (!*s)
			break;
		c = (unsigned char)*s++;
		if (c == '"' || c == '\\') {
			char e[2] = { '\\', (char)c };

			sb_put(b, e, 2);
		} else {
			char e[6] = { '\\', 'u', '0', '0', hex[c >> 4],
				      hex[c & 15] };

			sb_put(b, e, 6);
		}
	}
	sb_put(b, "\"", 1);
}

/*
 * Rewrites the listing (a JSON array of patches) and publishes it under a
 * sequence count, so the controller can read it without stopping anything:
 * an odd snap_seq means "being written".
 */
/* Calls reach f straight from its function's entry (direct.c). */
static bool is_direct(const struct relive_func *f)
{
	return f->on_stack && f->ops && f->new_func &&
	       f->ops->direct == (uintptr_t)f->new_func;
}

/* How many calls reach f without going through the entry at all: direct
 * calls in the function's object (direct.c) and PLT slots of any object
 * (direct_plt.c). */
static size_t direct_calls(const struct relive_func *f)
{
	uintptr_t v = (uintptr_t)f->new_func;

	if (!f->on_stack || !f->ops || !v)
		return 0;
	return direct_calls_of(f->ops, v) + direct_plt_count(f->ops, v);
}

void core_snapshot(void)
{
	struct relive_ctl *c = &relive_agent_ctl;
	struct sbuf b = { 0 };
	struct relive_patch *p;
	int order = 0;
	char *old;

	sb_add(&b, "[");
	for (p = agent_patches; p; p = p->next) {
		size_t i, j;

		sb_add(&b, p == agent_patches ? "{\"name\":" : ",{\"name\":");
		sb_str(&b, p->name);
		sb_add(&b, ",\"file\":");
		sb_str(&b, p->file);
		sb_add(&b, ",\"enabled\":");
		sb_bool(&b, p->enabled);
		sb_add(&b, ",\"transition\":");
		sb_bool(&b, p == transition_patch());
		sb_add(&b, ",\"forced\":");
		sb_bool(&b, p->forced);
		sb_add(&b, ",\"replace\":");
		sb_bool(&b, p->replace);
		sb_add(&b, ",\"stack_order\":");
		sb_num(&b, p->enabled || p == transition_patch() ?
				   (unsigned)++order : 0);
		sb_add(&b, ",\"objects\":[");
		for (i = 0; i < p->nobjs + p->n_nop_objs; i++) {
			struct relive_object *o = i < p->nobjs ? &p->objs[i] :
				&p->nop_objs[i - p->nobjs];

			sb_add(&b, i ? ",{\"name\":" : "{\"name\":");
			sb_str(&b, objname(o));
			sb_add(&b, ",\"build_id\":");
			if (o->build_id[0])
				sb_str(&b, o->build_id);
			else if (o->kobj && o->kobj->build_id)
				sb_str(&b, o->kobj->build_id);
			else
				sb_add(&b, "null");
			sb_add(&b, ",\"loaded\":");
			sb_bool(&b, o->loaded);
			sb_add(&b, ",\"patched\":");
			sb_bool(&b, o->patched);
			sb_add(&b, ",");
			if (o->refused[0]) {
				sb_add(&b, "\"error\":");
				sb_str(&b, o->refused);
				sb_add(&b, ",");
			}
			sb_add(&b, "\"funcs\":[");
			for (j = 0; j < o->nfuncs; j++) {
				sb_add(&b, j ? ",{\"name\":" : "{\"name\":");
				sb_str(&b, o->funcs[j].old_name);
				sb_add(&b, ",\"sympos\":");
				sb_num(&b, o->funcs[j].old_sympos);
				sb_add(&b, ",\"nop\":");
				sb_bool(&b, o->funcs[j].nop);
				sb_add(&b, ",\"direct\":");
				sb_bool(&b, is_direct(&o->funcs[j]));
				sb_add(&b, ",\"direct_calls\":");
				sb_num(&b, direct_calls(&o->funcs[j]));
				sb_add(&b, "}");
			}
			sb_add(&b, "]}");
		}
		sb_add(&b, "]}");
	}
	sb_add(&b, "]");
	if (b.oom) {
		free(b.s);
		return;
	}
	old = (char *)(uintptr_t)c->snap;
	__atomic_store_n(&c->snap_seq, c->snap_seq + 1, __ATOMIC_RELEASE);
	c->snap = (uintptr_t)b.s;
	c->snap_len = b.len;
	__atomic_store_n(&c->snap_seq, c->snap_seq + 1, __ATOMIC_RELEASE);
	/* A reader that raced with us sees the sequence change and retries;
	 * it reads with process_vm_readv, which fails cleanly on freed
	 * memory, so freeing now is safe. */
	free(old);
}
