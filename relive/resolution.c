/*
 * relive/resolution.c - what relive found in the symbol tables when it
 * checked a patch, handed to the agent with the request that loads it.
 *
 * Before it touches a process, `relive patch` reads the symbols of every
 * object the patch names (precheck, with relive/filecache.c: once per
 * command, whatever the number of processes) and of the patch itself.  The
 * agent needs the same answers: where each replaced function starts and
 * ends, its "NAME.cold" part, where each new version ends, what each
 * KLP_SYMBOL or KLP_ORIGINAL reference into an object the patch changes
 * points at (relive-build writes such a reference for every static of
 * the program a fix uses; before, each one made the agent load libelf
 * and read the object's whole symbol table inside the process), and each
 * KLP_SYMBOL reference into another loaded object, found in the process
 * and read from the file it runs (resolution_other_refs).  Reading
 * them again inside every target was about a quarter of the agent's
 * request that loads a small patch; this file writes them into a struct
 * relive_res (common/ctl.h) that agent_request() sends with LOAD and
 * LOAD_ENABLE.  Each object's
 * entries carry the build-id of the file they were read from, and the
 * agent uses them only when that is the build-id of the object it has
 * mapped (agent/resolution.c), so an answer about another file is never
 * taken.  A patch too large for the table gets none: the agent reads the
 * files itself.
 */
#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "elfsym.h"
#include "patchfile.h"
#include "relive.h"

/* Where each object's entries start; false when the patch does not fit. */
static bool layout(const struct patchfile *pf, size_t *first)
{
	size_t i, n = 0;

	if (pf->nobjs > RELIVE_RES_OBJS)
		return false;
	for (i = 0; i < pf->nobjs; i++) {
		first[i] = n;
		n += pf->objs[i].nfuncs;
	}
	return n <= RELIVE_RES_FUNCS;
}

/* The "NAME.cold" part of a function of f, when it has one of its own. */
static void cold_of(const struct elfsym_file *f, const char *name,
		    uint64_t *value, uint64_t *size)
{
	struct elfsym_sym sym;
	char cold[512];

	*value = *size = 0;
	if ((size_t)snprintf(cold, sizeof(cold), "%s.cold", name) >=
	    sizeof(cold))
		return;
	if (elfsym_lookup(f, cold, 0, &sym, NULL) == 0 &&
	    sym.type == STT_FUNC && sym.size) {
		*value = sym.value;
		*size = sym.size;
	}
}

void resolution_start(struct relive_res *r, const struct patchfile *pf)
{
	size_t first[RELIVE_RES_OBJS], i, j;

	memset(r, 0, offsetof(struct relive_res, objs));
	if (!layout(pf, first))
		return;
	r->nobjs = (uint32_t)pf->nobjs;
	for (i = 0; i < pf->nobjs; i++) {
		memset(&r->objs[i], 0, sizeof(r->objs[i]));
		r->objs[i].nfuncs = (uint32_t)pf->objs[i].nfuncs;
		r->nfuncs += (uint32_t)pf->objs[i].nfuncs;
	}
	memset(r->funcs, 0, r->nfuncs * sizeof(r->funcs[0]));
	for (i = 0; i < pf->nobjs; i++)
		for (j = 0; j < pf->objs[i].nfuncs; j++)
			r->funcs[first[i] + j].new_value =
				pf->objs[i].funcs[j].new_value;
}

void resolution_patch(struct relive_res *r, const struct patchfile *pf,
		      const struct elfsym_file *f)
{
	size_t first[RELIVE_RES_OBJS], i, j;
	const char *id = elfsym_build_id(f);

	if (!r->nobjs || !layout(pf, first) || !id[0] ||
	    strlen(id) >= sizeof(r->patch_build_id))
		return;
	for (i = 0; i < pf->nobjs; i++)
		for (j = 0; j < pf->objs[i].nfuncs; j++) {
			struct relive_res_func *rf = &r->funcs[first[i] + j];
			struct elfsym_sym sym;
			const char *name;

			/* The index by address is built on first use: the
			 * file stays the cache's, and is read only. */
			if (elfsym_func_name_at((struct elfsym_file *)f,
						rf->new_value, &sym,
						&name) == 0) {
				rf->new_size = sym.size;
				cold_of(f, name, &rf->new_cold,
					&rf->new_cold_size);
			}
		}
	snprintf(r->patch_build_id, sizeof(r->patch_build_id), "%s", id);
}

void resolution_func(struct relive_res *r, const struct patchfile *pf,
		     size_t obj, size_t func, const struct elfsym_file *f,
		     const struct elfsym_sym *sym)
{
	size_t first[RELIVE_RES_OBJS];
	struct relive_res_func *rf;

	if (!r->nobjs || !layout(pf, first))
		return;
	rf = &r->funcs[first[obj] + func];
	rf->value = sym->value;
	rf->size = sym->size;
	cold_of(f, pf->objs[obj].funcs[func].old_name, &rf->cold,
		&rf->cold_size);
}

void resolution_object(struct relive_res *r, size_t obj,
		       const struct elfsym_file *f)
{
	const char *id = elfsym_build_id(f);

	if (!r->nobjs || obj >= r->nobjs ||
	    strlen(id) >= sizeof(r->objs[obj].build_id))
		return;
	snprintf(r->objs[obj].build_id, sizeof(r->objs[obj].build_id), "%s",
		 id);
}

/* The name of object obj of the patch as its references write it. */
static const char *ref_objname(const struct patchfile *pf, size_t obj)
{
	return pf->objs[obj].name ? pf->objs[obj].name : "main";
}

/* Looks ref up in f (the file of the object it points into) and, when
 * listable (the table has an entry for that object: objidx), lists it for
 * the agent.  Returns 0, or a negative errno with err set when it names no
 * symbol, or no single one, of f. */
static int add_ref(struct relive_res *r, const struct patchfile *pf,
		   const struct pf_ref *ref, const struct elfsym_file *f,
		   bool listable, uint32_t objidx, char *err, size_t errlen)
{
	size_t len = strlen(ref->sym) + 1;
	struct relive_res_ref *rr;
	struct elfsym_sym sym;
	unsigned count = 0;
	const char *kind = ref->original ? "KLP_ORIGINAL" : "KLP_SYMBOL";
	char msg[512];
	int rc;

	rc = elfsym_lookup(f, ref->sym, ref->sympos, &sym, &count);
	if (rc == -EEXIST) {
		snprintf(err, errlen,
			 "%s: %s reference: symbol '%s' is ambiguous in %s (%u "
			 "definitions); give its position (sympos, 1..%u) as "
			 "its third argument", pf->name, kind, ref->sym,
			 ref->obj, count, count);
		return rc;
	}
	if (rc) {
		elfsym_strerror(rc, ref->sym, ref->sympos, count, ref->obj,
				msg, sizeof(msg));
		snprintf(err, errlen, "%s: %s reference: %s", pf->name, kind,
			 msg);
		return rc;
	}
	/* Left to the agent: a patch too large for the table. */
	if (!listable || r->nrefs == RELIVE_RES_REFS ||
	    len > sizeof(r->ref_names) - r->ref_names_len)
		return 0;
	rr = &r->refs[r->nrefs++];
	memset(rr, 0, sizeof(*rr));
	rr->obj = objidx;
	rr->name = r->ref_names_len;
	rr->sympos = ref->sympos;
	rr->value = sym.value;
	rr->size = sym.size;
	rr->type = (uint32_t)sym.type;
	rr->original = ref->original;
	memcpy(r->ref_names + r->ref_names_len, ref->sym, len);
	r->ref_names_len += (uint32_t)len;
	return 0;
}

int resolution_refs(struct relive_res *r, const struct patchfile *pf,
		    size_t obj, const struct elfsym_file *f, char *err,
		    size_t errlen)
{
	size_t i;
	int rc;

	for (i = 0; i < pf->nrefs; i++) {
		if (strcmp(pf->refs[i].obj, ref_objname(pf, obj)))
			continue;
		rc = add_ref(r, pf, &pf->refs[i], f,
			     r->nobjs && obj < r->nobjs, (uint32_t)obj, err,
			     errlen);
		if (rc)
			return rc;
	}
	return 0;
}

/* Does a reference name one of the patch's own objects? */
static bool own_object(const struct patchfile *pf, const char *name)
{
	size_t k;

	for (k = 0; k < pf->nobjs; k++)
		if (!strcmp(name, ref_objname(pf, k)))
			return true;
	return false;
}

/* Lists object name (as the references write it) in r->xobjs with the
 * build-id of f; returns its index, or -1 when the table has no room. */
static int add_xobj(struct relive_res *r, const char *name,
		    const struct elfsym_file *f)
{
	const char *id = elfsym_build_id(f);
	size_t len = strlen(name) + 1;
	struct relive_res_xobj *x;

	if (!r->nobjs || r->nxobjs == RELIVE_RES_XOBJS || !id[0] ||
	    strlen(id) >= sizeof(x->build_id) ||
	    len > sizeof(r->ref_names) - r->ref_names_len)
		return -1;
	x = &r->xobjs[r->nxobjs];
	memset(x, 0, sizeof(*x));
	x->name = r->ref_names_len;
	snprintf(x->build_id, sizeof(x->build_id), "%s", id);
	memcpy(r->ref_names + r->ref_names_len, name, len);
	r->ref_names_len += (uint32_t)len;
	return (int)r->nxobjs++;
}

int resolution_other_refs(struct relive_res *r, const struct patchfile *pf,
			  pid_t pid, char *err, size_t errlen)
{
	size_t i, k;
	int rc;

	for (i = 0; i < pf->nrefs; i++) {
		const char *name = pf->refs[i].obj;
		const struct elfsym_file *f;
		char path[4096];
		uint64_t bias;
		int x;

		if (own_object(pf, name))
			continue;
		for (k = 0; k < i && strcmp(pf->refs[k].obj, name); k++)
			;
		if (k < i)
			continue;      /* that object's references are done */
		rc = proc_find_object(pid, strcmp(name, "main") ? name : NULL,
				      path, sizeof(path), &bias);
		if (rc == -EACCES) {
			snprintf(err, errlen,
				 "%s: object '%s', which the patch's references "
				 "point into: its file was replaced on disk after "
				 "process %d loaded it, and reading the loaded "
				 "one (%s) takes CAP_SYS_ADMIN; run relive as "
				 "root, or restart the process", pf->name, name,
				 pid, path);
			return -EPERM;
		}
		/* Not loaded: the agent looks its references up when it
		 * loads. */
		if (rc)
			continue;
		f = filecache_symbols(path, err, errlen);
		if (!f)
			return -ENOEXEC;
		x = add_xobj(r, name, f);
		for (k = i; k < pf->nrefs; k++) {
			if (strcmp(pf->refs[k].obj, name))
				continue;
			/* A KLP_ORIGINAL here names a function the patch does
			 * not replace: its code is decoded by the agent. */
			rc = add_ref(r, pf, &pf->refs[k], f,
				     x >= 0 && !pf->refs[k].original,
				     r->nobjs + (uint32_t)x, err, errlen);
			if (rc)
				return rc;
		}
	}
	return 0;
}

void resolution_forget_objects(struct relive_res *r)
{
	size_t i;

	for (i = 0; i < r->nobjs; i++) {
		r->objs[i].build_id[0] = '\0';
		r->objs[i].calls_found = 0;
	}
	for (i = 0; i < r->nfuncs; i++)
		r->funcs[i].first_call = r->funcs[i].ncalls = 0;
	r->ncalls = 0; /* relive/calls.c */
	/* resolution_refs(), resolution_other_refs() */
	r->nrefs = r->ref_names_len = r->nxobjs = 0;
	/* the sites are the last process's (relive/sites.c) */
	memset(r->sites, 0, r->nfuncs * sizeof(r->sites[0]));
}

struct relive_res_func *resolution_funcs_of(struct relive_res *r,
					    const struct patchfile *pf,
					    size_t obj)
{
	size_t first[RELIVE_RES_OBJS];

	if (!r->nobjs || obj >= pf->nobjs || !layout(pf, first))
		return NULL;
	return &r->funcs[first[obj]];
}

struct relive_res_site *resolution_site(struct relive_res *r,
					const struct patchfile *pf,
					size_t obj, size_t func)
{
	size_t first[RELIVE_RES_OBJS];

	if (!r->nobjs || obj >= pf->nobjs || !layout(pf, first))
		return NULL;
	return &r->sites[first[obj] + func];
}
