/*
 * builder/compare.c - compares the original and the patched build of one
 * source file, function by function and data object by data object.
 *
 * Two functions are the same when their bytes are equal outside relocated
 * fields and every relocation points at the same thing (object.c names it:
 * a function or variable by its name without the compiler's numbering, a
 * string by its text, a constant by its content).  So a function whose
 * callee moved is the same; a function into which a changed function was
 * inlined differs, and so it is included; a function that only uses a
 * changed string or constant differs too.  A function whose only
 * differences are immediates that are a line number the diff moved
 * (__LINE__ in an assertion) is the same (D_LINES).
 *
 * Data: a writable variable whose size or initial value changed cannot be
 * patched live (the running program keeps its own copy); that is refused
 * with the way out (a shadow variable, a callback).  A changed read-only
 * object is just new data for the patch.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <Zydis/Zydis.h>

#include "dobj.h"

const char *dstatus_name(enum dstatus st)
{
	static const char *const names[] = {
		[D_SAME] = "same",	 [D_LINES] = "same (line numbers moved)",
		[D_CHANGED] = "changed", [D_NEW] = "new",
		[D_REMOVED] = "removed",
	};
	return names[st];
}

static int add_entry(struct ddiff *d, const char *name, const char *oldname,
		     int type, enum dstatus st)
{
	struct dentry *n = realloc(d->e, (d->n + 1) * sizeof(*n));

	if (!n)
		return -1;
	d->e = n;
	n = &d->e[d->n];
	memset(n, 0, sizeof(*n));
	n->name = strdup(name);
	n->oldname = oldname ? strdup(oldname) : NULL;
	n->type = type;
	n->status = st;
	n->cold = strstr(name, ".cold") != NULL;
	if (!n->name || (oldname && !n->oldname))
		return -1;
	d->n++;
	return 0;
}

__attribute__((format(printf, 2, 3)))
static int refuse(struct ddiff *d, const char *fmt, ...)
{
	struct drefusal *n = realloc(d->refusals,
				     (d->nrefusals + 1) * sizeof(*n));
	char buf[1024];
	va_list ap;

	if (!n)
		return -1;
	d->refusals = n;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (!(n[d->nrefusals].what = strdup(buf)))
		return -1;
	d->nrefusals++;
	return 0;
}

void ddiff_free(struct ddiff *d)
{
	size_t i;

	for (i = 0; i < d->n; i++) {
		free(d->e[i].name);
		free(d->e[i].oldname);
	}
	for (i = 0; i < d->nrefusals; i++)
		free(d->refusals[i].what);
	free(d->e);
	free(d->refusals);
	memset(d, 0, sizeof(*d));
}

size_t ddiff_count(const struct ddiff *d, enum dstatus st, int type)
{
	size_t i, n = 0;

	for (i = 0; i < d->n; i++)
		if (d->e[i].status == st && (!type || d->e[i].type == type))
			n++;
	return n;
}

const struct dentry *ddiff_get(const struct ddiff *d, const char *name)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		if (!strcmp(d->e[i].name, name))
			return &d->e[i];
	return NULL;
}

static bool is_func(const struct dobj *o, size_t i)
{
	return dobj_is_defined(o, i) && o->syms[i].type == STT_FUNC;
}

static bool is_data(const struct dobj *o, size_t i)
{
	return dobj_is_defined(o, i) &&
	       (o->syms[i].type == STT_OBJECT || o->syms[i].type == STT_TLS);
}

struct span {
	const struct dobj *o;
	const struct dsec *s;
	uint64_t start, size;
	const struct drel **rels;
	size_t nrels;
};

static int cmp_rel(const void *a, const void *b)
{
	const struct drel *x = *(const struct drel *const *)a;
	const struct drel *y = *(const struct drel *const *)b;

	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int span_of(const struct dobj *o, size_t symi, struct span *sp)
{
	const struct dsym *y = &o->syms[symi];
	size_t k;

	sp->o = o;
	sp->s = &o->secs[y->sym.st_shndx];
	sp->start = y->sym.st_value;
	sp->size = y->sym.st_size;
	sp->nrels = 0;
	sp->rels = calloc(sp->s->nrels ? sp->s->nrels : 1, sizeof(*sp->rels));
	if (!sp->rels)
		return -1;
	for (k = 0; k < sp->s->nrels; k++) {
		const struct drel *r = &sp->s->rels[k];

		if (r->offset >= sp->start && r->offset < sp->start + sp->size)
			sp->rels[sp->nrels++] = r;
	}
	qsort(sp->rels, sp->nrels, sizeof(*sp->rels), cmp_rel);
	return 0;
}

static bool masked(const struct span *sp, uint64_t at)
{
	size_t k;

	for (k = 0; k < sp->nrels; k++) {
		uint64_t o = sp->rels[k]->offset;

		if (at >= o && at < o + (uint64_t)dobj_rel_width(sp->rels[k]->type))
			return true;
	}
	return false;
}

/*
 * Which symbol of the original build each symbol of the patched build is.
 * A plain name is itself.  A name the compiler numbered (a static local
 * "calls.0", a clone "scale.constprop.1") is not: GCC numbers them per
 * file, so a new one can take an old one's number.  Those are matched, in
 * this order, by the functions that use them (the k-th use of a "calls.N"
 * in counter() of one build is the k-th in the other), then when there is
 * one candidate on each side, then for functions by identical code; what
 * is left is new.  No original symbol is claimed twice.
 */
static bool numbered(const struct dsym *y)
{
	return strcmp(y->name, y->norm) != 0;
}

static bool matchable(const struct dobj *o, size_t i)
{
	return dobj_is_defined(o, i);
}

/* The ordinal of reference r among the references of function fn (a span)
 * to symbols of the same normalized name; -1 when r is not one. */
static long use_ordinal(const struct dobj *o, const struct span *sp, size_t r,
			const char *norm)
{
	long n = 0;
	size_t k;

	for (k = 0; k <= r; k++) {
		long named;
		int64_t off;

		dobj_rel_target(o, sp->rels[k], &named, &off);
		if (named < 0 || strcmp(o->syms[named].norm, norm))
			continue;
		if (k == r)
			return n;
		n++;
	}
	return -1;
}

/* The symbol of o that the ord-th use of norm in fn refers to, or -1. */
static long use_at(const struct dobj *o, const struct span *sp, long ord,
		   const char *norm)
{
	long n = 0;
	size_t k;

	for (k = 0; k < sp->nrels; k++) {
		long named;
		int64_t off;

		dobj_rel_target(o, sp->rels[k], &named, &off);
		if (named < 0 || strcmp(o->syms[named].norm, norm))
			continue;
		if (n++ == ord)
			return named;
	}
	return -1;
}

static long by_use(const struct dobj *orig, const struct dobj *patched,
		   size_t i, const bool *claimed)
{
	const struct dsym *y = &patched->syms[i];
	size_t f;

	for (f = 1; f < patched->nsyms; f++) {
		struct span sp = { 0 }, so = { 0 };
		long fo, found = -1;
		size_t k;

		if (!is_func(patched, f) || numbered(&patched->syms[f]) || f == i ||
		    (fo = dobj_find(orig, patched->syms[f].name)) < 0 ||
		    !is_func(orig, (size_t)fo))
			continue;
		if (span_of(patched, f, &sp) || span_of(orig, (size_t)fo, &so)) {
			free(sp.rels);
			free(so.rels);
			continue;
		}
		for (k = 0; k < sp.nrels && found < 0; k++) {
			long named, ord, cand;
			int64_t off;

			dobj_rel_target(patched, sp.rels[k], &named, &off);
			if (named != (long)i)
				continue;
			ord = use_ordinal(patched, &sp, k, y->norm);
			cand = use_at(orig, &so, ord, y->norm);
			if (cand >= 0 && orig->syms[cand].type == y->type &&
			    !claimed[cand])
				found = cand;
		}
		free(sp.rels);
		free(so.rels);
		if (found >= 0)
			return found;
	}
	return -1;
}

static enum dstatus compare_code(const struct dobj *o, size_t oi,
				 const struct dobj *p, size_t pi,
				 const struct linemap *lines, const char *file);

/* Fills match[i] (patched symbol -> original symbol, or -1) and the
 * canonical names identities are built from. */
static int match_symbols(struct dobj *orig, struct dobj *patched, long *match)
{
	bool *claimed = calloc(orig->nsyms ? orig->nsyms : 1, sizeof(*claimed));
	size_t i, k;
	int pass;

	if (!claimed)
		return -1;
	for (i = 0; i < patched->nsyms; i++)
		match[i] = -1;
	/* Plain names. */
	for (i = 1; i < patched->nsyms; i++) {
		long m;

		if (!matchable(patched, i) || numbered(&patched->syms[i]))
			continue;
		m = dobj_find(orig, patched->syms[i].name);
		if (m >= 0 && orig->syms[m].type == patched->syms[i].type &&
		    !claimed[m]) {
			match[i] = m;
			claimed[m] = true;
		}
	}
	/* Numbered names: by use, then alone of their name, then by code. */
	for (pass = 0; pass < 3; pass++) {
		for (i = 1; i < patched->nsyms; i++) {
			const struct dsym *y = &patched->syms[i];
			long m = -1;

			if (!matchable(patched, i) || !numbered(y) || match[i] >= 0)
				continue;
			if (pass == 0) {
				m = by_use(orig, patched, i, claimed);
			} else if (pass == 1) {
				size_t no = 0, np = 0;
				long cand = -1;

				for (k = 1; k < orig->nsyms; k++)
					if (matchable(orig, k) && !claimed[k] &&
					    orig->syms[k].type == y->type &&
					    !strcmp(orig->syms[k].norm, y->norm)) {
						no++;
						cand = (long)k;
					}
				for (k = 1; k < patched->nsyms; k++)
					if (matchable(patched, k) && match[k] < 0 &&
					    patched->syms[k].type == y->type &&
					    !strcmp(patched->syms[k].norm, y->norm))
						np++;
				if (no == 1 && np == 1)
					m = cand;
			} else if (y->type == STT_FUNC) {
				for (k = 1; k < orig->nsyms && m < 0; k++)
					if (is_func(orig, k) && !claimed[k] &&
					    !strcmp(orig->syms[k].norm, y->norm) &&
					    compare_code(orig, k, patched, i, NULL,
							 NULL) == D_SAME)
						m = (long)k;
			}
			if (m >= 0) {
				match[i] = m;
				claimed[m] = true;
			}
		}
	}
	/* Identities: the original's own names; the patched build's names
	 * as matched, "new:" otherwise. */
	for (k = 1; k < orig->nsyms; k++) {
		free(orig->syms[k].canon);
		orig->syms[k].canon = strdup(orig->syms[k].name);
		if (!orig->syms[k].canon)
			goto oom;
	}
	for (i = 1; i < patched->nsyms; i++) {
		const struct dsym *y = &patched->syms[i];
		char *c;

		if (!matchable(patched, i))
			c = strdup(y->name);
		else if (match[i] >= 0)
			c = strdup(orig->syms[match[i]].name);
		else if (asprintf(&c, "new:%s", y->name) < 0)
			c = NULL;
		if (!c)
			goto oom;
		free(patched->syms[i].canon);
		patched->syms[i].canon = c;
	}
	free(claimed);
	return 0;
oom:
	free(claimed);
	return -1;
}

/* Whether the only byte differences are immediates that are line numbers
 * the diff moved. */
static bool only_lines(const struct span *a, const struct span *b,
		       const struct linemap *lines, const char *file)
{
	const uint8_t *x = a->s->bytes + a->start, *y = b->s->bytes + b->start;
	ZydisDecoder dec;
	uint64_t off = 0;
	bool any = false;

	if (!lines)
		return false;
	ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
	while (off < a->size) {
		ZydisDecodedInstruction ia, ib;
		uint64_t i;

		if (!ZYAN_SUCCESS(ZydisDecoderDecodeInstruction(
			    &dec, NULL, x + off, a->size - off, &ia)) ||
		    !ZYAN_SUCCESS(ZydisDecoderDecodeInstruction(
			    &dec, NULL, y + off, b->size - off, &ib)) ||
		    ia.length != ib.length)
			return false;
		for (i = 0; i < ia.length; i++) {
			const __typeof__(ia.raw.imm[0]) *im = NULL;
			unsigned k;
			bool in_imm = false;

			if (x[off + i] == y[off + i] || masked(a, a->start + off + i))
				continue;
			for (k = 0; k < 2; k++) {
				im = &ia.raw.imm[k];
				if (im->size && i >= im->offset &&
				    i < im->offset + im->size / 8u) {
					in_imm = true;
					break;
				}
			}
			if (!in_imm)
				return false;
			{
				uint64_t va = 0, vb = 0;

				memcpy(&va, x + off + im->offset, im->size / 8u);
				memcpy(&vb, y + off + im->offset, im->size / 8u);
				if (!linemap_moved(lines, file, va, vb))
					return false;
				any = true;
				i = im->offset + im->size / 8u - 1;
			}
		}
		off += ia.length;
	}
	return any;
}

static enum dstatus compare_code(const struct dobj *o, size_t oi,
				 const struct dobj *p, size_t pi,
				 const struct linemap *lines, const char *file)
{
	struct span a = { 0 }, b = { 0 };
	enum dstatus st = D_CHANGED;
	bool bytes_same = true;
	uint64_t i;
	size_t k;

	if (span_of(o, oi, &a) || span_of(p, pi, &b))
		goto out;
	if (a.size != b.size || a.nrels != b.nrels || !a.s->bytes || !b.s->bytes)
		goto out;
	for (k = 0; k < a.nrels; k++) {
		char ia[512], ib[512];

		if (a.rels[k]->offset - a.start != b.rels[k]->offset - b.start ||
		    a.rels[k]->type != b.rels[k]->type)
			goto out;
		dobj_rel_ident(o, a.rels[k], ia, sizeof(ia));
		dobj_rel_ident(p, b.rels[k], ib, sizeof(ib));
		if (strcmp(ia, ib))
			goto out;
	}
	for (i = 0; i < a.size; i++)
		if (a.s->bytes[a.start + i] != b.s->bytes[b.start + i] &&
		    !masked(&a, a.start + i)) {
			bytes_same = false;
			break;
		}
	if (bytes_same)
		st = D_SAME;
	else if (only_lines(&a, &b, lines, file))
		st = D_LINES;
out:
	free(a.rels);
	free(b.rels);
	return st;
}

/* Whether two data objects have the same size and initial content. */
static bool same_data(const struct dobj *o, size_t oi, const struct dobj *p,
		      size_t pi)
{
	const struct dsym *x = &o->syms[oi], *y = &p->syms[pi];
	struct drel r = { 0 };
	char ia[512], ib[512];

	if (x->sym.st_size != y->sym.st_size)
		return false;
	if (o->secs[x->sym.st_shndx].sh.sh_type == SHT_NOBITS &&
	    p->secs[y->sym.st_shndx].sh.sh_type == SHT_NOBITS)
		return true;
	if (o->secs[x->sym.st_shndx].sh.sh_type == SHT_NOBITS ||
	    p->secs[y->sym.st_shndx].sh.sh_type == SHT_NOBITS)
		return false;
	/* Compare as read-only content, whatever the section's flags: the
	 * identity string carries the content hash. */
	r.sym = oi;
	dobj_rel_ident(o, &r, ia, sizeof(ia));
	r.sym = pi;
	dobj_rel_ident(p, &r, ib, sizeof(ib));
	if (dobj_is_writable(o, oi)) {
		/* A writable object's identity is its name: hash by hand. */
		struct span a = { 0 }, b = { 0 };
		bool same = true;
		uint64_t i;
		size_t k;

		if (span_of(o, oi, &a) || span_of(p, pi, &b)) {
			free(a.rels);
			free(b.rels);
			return false;
		}
		if (a.nrels != b.nrels)
			same = false;
		for (k = 0; same && k < a.nrels; k++) {
			dobj_rel_ident(o, a.rels[k], ia, sizeof(ia));
			dobj_rel_ident(p, b.rels[k], ib, sizeof(ib));
			same = a.rels[k]->offset - a.start == b.rels[k]->offset - b.start &&
			       !strcmp(ia, ib);
		}
		for (i = 0; same && i < a.size; i++)
			same = masked(&a, a.start + i) ||
			       a.s->bytes[a.start + i] == b.s->bytes[b.start + i];
		free(a.rels);
		free(b.rels);
		return same;
	}
	return !strcmp(strchr(ia, '#') ? strchr(ia, '#') : ia,
		       strchr(ib, '#') ? strchr(ib, '#') : ib);
}




/* A .cold part that changed takes its parent with it. */
static void cold_parents(struct ddiff *d)
{
	size_t i, k;

	for (i = 0; i < d->n; i++) {
		const char *c = strstr(d->e[i].name, ".cold");
		size_t plen;

		if (!d->e[i].cold || d->e[i].status != D_CHANGED || !c)
			continue;
		plen = (size_t)(c - d->e[i].name);
		for (k = 0; k < d->n; k++)
			if (!d->e[k].cold && strlen(d->e[k].name) == plen &&
			    !strncmp(d->e[k].name, d->e[i].name, plen) &&
			    (d->e[k].status == D_SAME || d->e[k].status == D_LINES))
				d->e[k].status = D_CHANGED;
	}
}

/*
 * The call graph of the original build: who calls (or tail-calls) whom
 * directly.  A changed function too short to be redirected is replaced
 * through its callers.  (Callers that rely on a changed function's
 * registers, GCC's IPA-RA, are found later, in emit.c with regs.c: that
 * needs the new version's code as the patch will carry it.)
 */
struct cg {
	size_t (*edge)[2]; /* caller, callee */
	size_t nedge;
};

static int call_graph(const struct dobj *o, struct cg *g)
{
	ZydisDecoder dec;
	size_t i;

	memset(g, 0, sizeof(*g));
	ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
	for (i = 1; i < o->nsyms; i++) {
		struct span sp;
		uint64_t off = 0;

		if (!is_func(o, i) || span_of(o, i, &sp))
			continue;
		while (sp.s->bytes && off < sp.size) {
			ZydisDecodedInstruction in;
			const uint8_t *code = sp.s->bytes + sp.start;
			const struct drel *r = NULL;
			long named;
			int64_t roff;
			size_t k;

			if (!ZYAN_SUCCESS(ZydisDecoderDecodeInstruction(
				    &dec, NULL, code + off, sp.size - off, &in)))
				break;
			off += in.length;
			if (in.mnemonic != ZYDIS_MNEMONIC_CALL &&
			    in.mnemonic != ZYDIS_MNEMONIC_JMP)
				continue;
			for (k = 0; k < sp.nrels; k++)
				if (sp.rels[k]->offset >= sp.start + off - in.length &&
				    sp.rels[k]->offset < sp.start + off)
					r = sp.rels[k];
			if (!r)
				continue;
			dobj_rel_target(o, r, &named, &roff);
			if (named >= 0 && is_func(o, (size_t)named) &&
			    (size_t)named != i) {
				size_t (*n)[2] = realloc(g->edge,
							 (g->nedge + 1) * sizeof(*n));

				if (!n) {
					free(sp.rels);
					return -1;
				}
				g->edge = n;
				g->edge[g->nedge][0] = i;
				g->edge[g->nedge][1] = (size_t)named;
				g->nedge++;
			}
		}
		free(sp.rels);
	}
	return 0;
}

static struct dentry *entry_by_old(struct ddiff *d, const char *oldname)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		if (d->e[i].oldname && !strcmp(d->e[i].oldname, oldname) &&
		    d->e[i].type == STT_FUNC)
			return &d->e[i];
	return NULL;
}

/* The smallest function relive can redirect: its entry takes a 5-byte
 * jump. */
#define MIN_REDIRECT 5

/* Whether symbol k of o is referenced other than by a direct call or jump
 * from code (a function pointer in data, an address taken in code). */
static bool address_taken(const struct dobj *o, size_t k)
{
	size_t i, j;

	for (i = 1; i < o->nsecs; i++) {
		const struct dsec *s = &o->secs[i];

		if (!(s->sh.sh_flags & SHF_ALLOC))
			continue;
		for (j = 0; j < s->nrels; j++) {
			const struct drel *r = &s->rels[j];
			long named;
			int64_t off;
			bool branch;

			dobj_rel_target(o, r, &named, &off);
			if (named != (long)k)
				continue;
			branch = (s->sh.sh_flags & SHF_EXECINSTR) && s->bytes &&
				 r->offset >= 1 &&
				 (r->type == R_X86_64_PLT32 || r->type == R_X86_64_PC32) &&
				 (s->bytes[r->offset - 1] == 0xe8 ||
				  s->bytes[r->offset - 1] == 0xe9);
			if (!branch)
				return true;
		}
	}
	return false;
}

/* One round of the rule that pulls callers in: a changed function too
 * short to be redirected.  Returns 1 when something was added, 0 when
 * nothing, -1 on error. */
static int callers_round(const struct dobj *orig, struct ddiff *d,
			 const struct cg *g)
{
	size_t i;
	int more = 0;

	for (i = 0; i < d->n; i++) {
		struct dentry *e = &d->e[i];
		long k;

		if (e->status != D_CHANGED || e->type != STT_FUNC || e->cold ||
		    e->tiny || !e->oldname || (k = dobj_find(orig, e->oldname)) < 0 ||
		    orig->syms[k].sym.st_size >= MIN_REDIRECT)
			continue;
		e->tiny = true;
		more = 1;
		if (orig->syms[k].bind != STB_LOCAL || address_taken(orig, (size_t)k)) {
			if (refuse(d,
				   "function '%s' (%s) is %llu bytes, too short for "
				   "the %d-byte jump that redirects a function, and "
				   "%s: change its callers instead, or mark it "
				   "noinline and make it longer in the running "
				   "program's next build",
				   e->oldname, d->file ? d->file : "?",
				   (unsigned long long)orig->syms[k].sym.st_size,
				   MIN_REDIRECT,
				   orig->syms[k].bind != STB_LOCAL
					   ? "other files may call it"
					   : "its address is taken") < 0)
				return -1;
		}
	}
	for (i = 0; i < g->nedge; i++) {
		size_t caller = g->edge[i][0], callee = g->edge[i][1];
		struct dentry *ce = entry_by_old(d, orig->syms[callee].name);
		struct dentry *cr = entry_by_old(d, orig->syms[caller].name);

		if (!ce || !cr || ce->status != D_CHANGED ||
		    (cr->status != D_SAME && cr->status != D_LINES))
			continue;
		if (!ce->tiny)
			continue;
		cr->why = "calls a changed function too short to be "
			  "redirected on its own";
		cr->status = D_CHANGED;
		more = 1;
	}
	return more;
}

static int pull_callers(const struct dobj *orig, struct ddiff *d)
{
	struct cg g;
	int rc;

	if (call_graph(orig, &g)) {
		free(g.edge);
		return -1;
	}
	while ((rc = callers_round(orig, d, &g)) > 0)
		cold_parents(d);
	free(g.edge);
	return rc;
}

int diff_objects(struct dobj *orig, struct dobj *patched,
		 const struct linemap *lines, struct ddiff *d, char *err,
		 size_t errlen)
{
	size_t i;
	bool *seen = calloc(orig->nsyms ? orig->nsyms : 1, sizeof(*seen));
	long *match = calloc(patched->nsyms ? patched->nsyms : 1, sizeof(*match));

	memset(d, 0, sizeof(*d));
	if (!seen || !match || match_symbols(orig, patched, match)) {
		free(seen);
		free(match);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	d->file = orig->file ? orig->file : patched->file;
	for (i = 1; i < patched->nsyms; i++) {
		const struct dsym *y = &patched->syms[i];
		long k;
		enum dstatus st;

		if (!is_func(patched, i) && !is_data(patched, i))
			continue;
		k = match[i];
		if (k < 0) {
			if (add_entry(d, y->name, NULL, y->type, D_NEW))
				goto oom;
			continue;
		}
		seen[k] = true;
		if (y->type == STT_FUNC) {
			st = compare_code(orig, (size_t)k, patched, i, lines, d->file);
		} else if (same_data(orig, (size_t)k, patched, i)) {
			st = D_SAME;
		} else {
			st = D_CHANGED;
			if (dobj_is_writable(orig, (size_t)k) ||
			    dobj_is_writable(patched, i)) {
				const char *what =
					orig->syms[k].sym.st_size != y->sym.st_size
						? "changes its size or layout"
						: "changes its initial value";
				int rc;

				if (y->bind != STB_LOCAL)
					rc = refuse(d,
						    "global variable '%s' (%s) %s: the "
						    "running program keeps its own copy, "
						    "which a live patch cannot change; keep "
						    "the variable as it is and add a shadow "
						    "variable (klp_shadow_*) for new fields, "
						    "or set the new value in a post_patch "
						    "callback",
						    y->name, d->file ? d->file : "?", what);
				else
					rc = refuse(d,
						    "variable '%s' (%s) changes its layout or "
						    "initial value: the running program keeps "
						    "its own copy, which a live patch cannot "
						    "change; keep its definition as it is and "
						    "use a shadow variable (klp_shadow_*) for "
						    "new fields, or a post_patch callback to "
						    "set a new value",
						    y->name, d->file ? d->file : "?");
				if (rc)
					goto oom;
			}
		}
		if (add_entry(d, y->name, orig->syms[k].name, y->type, st))
			goto oom;
	}
	for (i = 1; i < orig->nsyms; i++)
		if ((is_func(orig, i) || is_data(orig, i)) && !seen[i] &&
		    add_entry(d, orig->syms[i].name, orig->syms[i].name,
			      orig->syms[i].type, D_REMOVED))
			goto oom;
	cold_parents(d);
	if (pull_callers(orig, d))
		goto oom;
	if ((orig->from_asm || patched->from_asm) &&
	    (ddiff_count(d, D_CHANGED, 0) || ddiff_count(d, D_NEW, 0) ||
	     ddiff_count(d, D_REMOVED, 0)) &&
	    refuse(d,
		   "assembly source %s changed: relive-build compares "
		   "compiled C; write the new version of the routine as a C "
		   "function in a hand-written patch (see docs/patch-guide.md)",
		   d->file ? d->file : patched->path) < 0)
		goto oom;
	free(seen);
	free(match);
	return 0;
oom:
	free(seen);
	free(match);
	ddiff_free(d);
	snprintf(err, errlen, "out of memory");
	return -1;
}
