/*
 * agent/resolution.c - the controller's resolution of a patch, taken when
 * it can be trusted, and the identity of the objects as they are mapped.
 *
 * Loading a patch means knowing where each function it replaces starts and
 * ends in its object, and where each new version ends in the patch: symbol
 * tables, which the agent would read from the files with libelf in every
 * process, inside the target.  The controller has read the same tables
 * already to check the patch (relive/resolution.c) and writes what it
 * found next to the request (ctl.h, struct relive_res), read once per
 * command for any number of processes.  Reading the two symbol tables
 * was about a quarter of the agent's request that loads a small patch
 * (docs/performance.md, "Many processes", round 15).
 *
 * It is a shortcut, never an authority: an object's entries are used only
 * when the build-id they were read from is the one in the object's notes
 * as the process has them mapped (the file a path names may have been
 * replaced since), and the patch's only when each new version is where
 * they put it.  Anything else, and the agent reads the files as before.
 * What was checked is kept in the patch (struct relive_patch_res) from
 * core_open() to the end of core_load(), within the one request: an
 * object that loads later, or another patch, never sees it.
 *
 * The same mapped build-id guards that path: when the file the agent reads
 * is not the object the process runs, the patch is refused rather than
 * resolved against the wrong code.
 */
#include <link.h>
#include <string.h>
#include <strings.h>

#include "agent.h"
#include "buildid.h"
#include "elfsym.h"

/* Written by the controller with a LOAD request; read during it only. */
static struct relive_res agent_res;

/* Is o one of p's objects (not one added for nops)? */
static bool own_object(const struct relive_patch *p,
		       const struct relive_object *o)
{
	return o >= p->objs && o < p->objs + p->nobjs;
}

void resolution_init(void)
{
	relive_agent_ctl.res = (uint64_t)(uintptr_t)&agent_res;
}

struct loaded_query {
	uintptr_t bias;      /* by load bias, or */
	uintptr_t addr;      /* by an address inside (when not 0) */
	char *hex;
	size_t hexlen;
	uintptr_t found_bias;
	bool found;
};

static int loaded_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct loaded_query *q = arg;
	bool match = false;
	size_t i;

	(void)size;
	if (q->addr) {
		for (i = 0; i < info->dlpi_phnum && !match; i++) {
			const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
			uintptr_t lo = info->dlpi_addr + ph->p_vaddr;

			match = ph->p_type == PT_LOAD && q->addr >= lo &&
				q->addr - lo < ph->p_memsz;
		}
	} else {
		match = info->dlpi_addr == q->bias;
	}
	if (!match)
		return 0;
	q->found = true;
	q->found_bias = info->dlpi_addr;
	for (i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type == PT_NOTE &&
		    buildid_from_notes((const void *)(info->dlpi_addr +
						      ph->p_vaddr),
				       ph->p_memsz, ph->p_align, q->hex,
				       q->hexlen))
			break;
	}
	return 1;
}

/* The mapped build-id of the object at bias (or holding addr); "" when it
 * has none.  Returns false when no loaded object matches. */
static bool loaded_build_id(uintptr_t bias, uintptr_t addr, char *hex,
			    size_t hexlen, uintptr_t *found_bias)
{
	struct loaded_query q = { .bias = bias, .addr = addr, .hex = hex,
				  .hexlen = hexlen };

	hex[0] = '\0';
	dl_iterate_phdr(loaded_cb, &q);
	if (found_bias)
		*found_bias = q.found_bias;
	return q.found;
}

void resolution_running_build_id(uintptr_t bias, char *hex, size_t hexlen)
{
	loaded_build_id(bias, 0, hex, hexlen, NULL);
}

bool resolution_same_build(const struct elfsym_file *f, uintptr_t bias,
			   char *running, size_t len)
{
	const char *id = elfsym_build_id(f);

	resolution_running_build_id(bias, running, len);
	return !running[0] || !id[0] || !strcasecmp(running, id);
}

bool resolution_file_runs(const struct elfsym_file *f, uintptr_t bias,
			  const char *name, const char *path)
{
	char running[RELIVE_RES_ID];
	const char *id = elfsym_build_id(f);

	if (resolution_same_build(f, bias, running, sizeof(running)))
		return true;
	agent_msg("object '%s': the file %s has build-id %s, but the process "
		  "runs build-id %s: the file was replaced after the process "
		  "loaded it; the patch is refused (restart the process to "
		  "run the new file)", name, path, id, running);
	return false;
}

void resolution_begin(struct relive_patch *p, uint64_t seq)
{
	const struct relive_res *r = &agent_res;
	struct relive_patch_res *pr = &p->res;
	char id[RELIVE_RES_ID];
	size_t i, j, n = 0;

	memset(pr, 0, sizeof(*pr));
	if (!seq || r->seq != seq || r->nobjs != p->nobjs ||
	    r->nobjs > RELIVE_RES_OBJS || r->nfuncs > RELIVE_RES_FUNCS)
		return;
	for (i = 0; i < p->nobjs; i++) {
		if (r->objs[i].nfuncs != p->objs[i].nfuncs)
			return;
		pr->first[i] = n;
		n += p->objs[i].nfuncs;
	}
	if (n != r->nfuncs)
		return;
	pr->table = r;
	/* The new versions: the patch as mapped is the file resolved, and
	 * each new_func is where its entry says. */
	if (!r->patch_build_id[0] ||
	    !memchr(r->patch_build_id, '\0', sizeof(r->patch_build_id)) ||
	    !loaded_build_id(0, (uintptr_t)p->info, id, sizeof(id),
			     &pr->patch_bias) ||
	    strcasecmp(id, r->patch_build_id))
		return;
	for (i = 0; i < p->nobjs; i++)
		for (j = 0; j < p->objs[i].nfuncs; j++)
			if ((uintptr_t)p->objs[i].funcs[j].new_func !=
			    pr->patch_bias + r->funcs[pr->first[i] + j].new_value)
				return;
	pr->new_ok = true;
}

void resolution_end(struct relive_patch *p)
{
	memset(&p->res, 0, sizeof(p->res));
}

const struct relive_res_func *resolution_new(const struct relive_func *f,
					     uintptr_t *bias)
{
	const struct relive_object *o = f->obj;
	const struct relive_patch_res *pr;
	size_t i;

	if (!o || !o->patch)
		return NULL;
	pr = &o->patch->res;
	if (!pr->table || !pr->new_ok || !own_object(o->patch, o))
		return NULL;
	i = (size_t)(o - o->patch->objs);
	*bias = pr->patch_bias;
	return &pr->table->funcs[pr->first[i] + (size_t)(f - o->funcs)];
}

const struct relive_res_site *resolution_site(const struct relive_object *o,
					      const struct relive_res_func *rf)
{
	const struct relive_res *t;

	if (!rf || !o->patch || !(t = o->patch->res.table) ||
	    rf < t->funcs || rf >= t->funcs + t->nfuncs)
		return NULL;
	return &t->sites[rf - t->funcs];
}

bool resolution_calls(const struct relive_object *o,
		      const struct relive_res_func *rf,
		      const uint64_t **calls, size_t *n)
{
	const struct relive_res *t;
	size_t i;

	if (!rf || !o->patch || !(t = o->patch->res.table) ||
	    !own_object(o->patch, o) || rf < t->funcs ||
	    rf >= t->funcs + t->nfuncs)
		return false;
	i = (size_t)(o - o->patch->objs);
	if (!t->objs[i].calls_found || t->ncalls > RELIVE_RES_CALLS ||
	    rf->first_call > t->ncalls ||
	    rf->ncalls > t->ncalls - rf->first_call)
		return false;
	*calls = t->calls + rf->first_call;
	*n = rf->ncalls;
	return true;
}

bool resolution_site_fits(const struct relive_res_site *prep,
			  uintptr_t func_addr, size_t size)
{
	return prep && prep->ok && prep->size == size &&
	       prep->site.copy_len <= RELIVE_ARCH_MAX_COPY &&
	       prep->site.displaced <= RELIVE_ARCH_MAX_DISPLACED &&
	       prep->site.n_insns <= RELIVE_ARCH_MAX_INSNS &&
	       relive_code_hash((const void *)func_addr, size) == prep->hash;
}

const struct relive_res_func *resolution_object(const struct relive_object *o,
						const char *running)
{
	const struct relive_patch_res *pr;
	const struct relive_res_obj *ro;
	size_t i;

	if (!o->patch || !running[0])
		return NULL;
	pr = &o->patch->res;
	if (!pr->table || !own_object(o->patch, o))
		return NULL;
	i = (size_t)(o - o->patch->objs);
	ro = &pr->table->objs[i];
	if (!memchr(ro->build_id, '\0', sizeof(ro->build_id)) ||
	    strcasecmp(ro->build_id, running))
		return NULL;
	return &pr->table->funcs[pr->first[i]];
}

/* The entry of table t for the reference to sym (sympos, original) into
 * the object at index obj (objs[], or nobjs + xobjs[]). */
static const struct relive_res_ref *find_ref(const struct relive_res *t,
					     size_t obj, const char *sym,
					     unsigned long sympos,
					     bool original)
{
	size_t k;

	if (t->nrefs > RELIVE_RES_REFS ||
	    t->ref_names_len > RELIVE_RES_REF_NAMES)
		return NULL;
	for (k = 0; k < t->nrefs; k++) {
		const struct relive_res_ref *rr = &t->refs[k];
		const char *name = t->ref_names + rr->name;

		if (rr->obj != obj || rr->sympos != sympos ||
		    rr->original != (uint32_t)original ||
		    rr->name >= t->ref_names_len ||
		    !memchr(name, '\0', t->ref_names_len - rr->name))
			continue;
		if (!strcmp(name, sym))
			return rr;
	}
	return NULL;
}

const struct relive_res_ref *resolution_ref(const struct relive_object *o,
					    const char *running,
					    const char *sym,
					    unsigned long sympos, bool original)
{
	if (!resolution_object(o, running))
		return NULL;
	return find_ref(o->patch->res.table, (size_t)(o - o->patch->objs),
			sym, sympos, original);
}

const struct relive_res_ref *resolution_xref(const struct relive_patch *p,
					     const char *obj,
					     const char *running,
					     const char *sym,
					     unsigned long sympos)
{
	const struct relive_res *t = p->res.table;
	size_t k;

	if (!t || !running[0] || t->nxobjs > RELIVE_RES_XOBJS ||
	    t->ref_names_len > RELIVE_RES_REF_NAMES)
		return NULL;
	for (k = 0; k < t->nxobjs; k++) {
		const struct relive_res_xobj *x = &t->xobjs[k];
		const char *name = t->ref_names + x->name;

		if (x->name >= t->ref_names_len ||
		    !memchr(name, '\0', t->ref_names_len - x->name) ||
		    strcmp(name, obj))
			continue;
		if (!memchr(x->build_id, '\0', sizeof(x->build_id)) ||
		    strcasecmp(x->build_id, running))
			return NULL;
		return find_ref(t, p->nobjs + k, sym, sympos, false);
	}
	return NULL;
}
