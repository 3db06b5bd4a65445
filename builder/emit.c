/*
 * builder/emit.c - writes the relocatable object that becomes a patch.
 *
 * Input: the patched source file compiled with -mcmodel=large (every
 * reference is an absolute 64-bit address, R_X86_64_64, so the patch works
 * wherever the loader maps it, however far from the target), and the
 * comparison of the original and the patched build (compare.c).
 *
 * Output: the changed and the new functions with everything they need that
 * the target does not have (their .cold parts, new data, string literals,
 * constants, jump tables), and nothing else.  Every reference to a
 * function or variable the target already has becomes an undefined weak
 * symbol named the way KLP_SYMBOL names it, "relive.klp.sym.OBJ:NAME.POS",
 * which the agent resolves per object from the target's symbol table: so
 * an unchanged static variable keeps its running state.  POS is computed
 * among the same-named local symbols of the running binary, by the source
 * file they come from.  Symbols defined by the patch are made local, so
 * nothing of the target can bind to them; each replacement gets a hidden
 * alias "relive_new_SERIAL_N" that the generated descriptor names.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dobj.h"

/* ---- the running binary's symbol table, in order, with source files ---- */

struct tsym {
	const char *name;
	const char *file;
	int type, bind;
	bool defined;
};

struct target {
	int fd;
	Elf *elf;
	struct tsym *s;
	size_t n;
};

static int target_open(const char *path, struct target *t, char *err,
		       size_t errlen)
{
	Elf_Scn *scn = NULL;
	const char *file = NULL;

	memset(t, 0, sizeof(*t));
	t->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (t->fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	elf_version(EV_CURRENT);
	t->elf = elf_begin(t->fd, ELF_C_READ, NULL);
	while (t->elf && (scn = elf_nextscn(t->elf, scn))) {
		GElf_Shdr sh;
		Elf_Data *d;
		size_t i;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_SYMTAB ||
		    !sh.sh_entsize || !(d = elf_getdata(scn, NULL)))
			continue;
		t->n = sh.sh_size / sh.sh_entsize;
		t->s = calloc(t->n ? t->n : 1, sizeof(*t->s));
		if (!t->s)
			break;
		for (i = 0; i < t->n; i++) {
			GElf_Sym y;

			gelf_getsym(d, i, &y);
			t->s[i].name = elf_strptr(t->elf, sh.sh_link, y.st_name);
			if (!t->s[i].name)
				t->s[i].name = "";
			t->s[i].type = GELF_ST_TYPE(y.st_info);
			t->s[i].bind = GELF_ST_BIND(y.st_info);
			t->s[i].defined = y.st_shndx != SHN_UNDEF &&
					  (t->s[i].type == STT_FUNC ||
					   t->s[i].type == STT_OBJECT ||
					   t->s[i].type == STT_TLS);
			if (t->s[i].type == STT_FILE)
				file = t->s[i].name;
			/* Globals come after every local: they have no file. */
			t->s[i].file = t->s[i].bind == STB_LOCAL ? file : NULL;
		}
		break;
	}
	if (!t->s) {
		snprintf(err, errlen,
			 "%s has no symbol table (.symtab): relive-build needs "
			 "the running binary unstripped, to name what the patch "
			 "refers to", path);
		return -1;
	}
	return 0;
}

static const char *basename_of(const char *p)
{
	const char *s = p ? strrchr(p, '/') : NULL;

	return s ? s + 1 : p;
}

/* Whether the binary has code from a source file of that base name. */
static bool target_has_file(const struct target *t, const char *file)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		if (t->s[i].type == STT_FILE &&
		    !strcmp(basename_of(t->s[i].name), basename_of(file)))
			return true;
	return false;
}

static void target_close(struct target *t)
{
	free(t->s);
	if (t->elf)
		elf_end(t->elf);
	if (t->fd >= 0)
		close(t->fd);
}


/* Position of name for KLP_SYMBOL: 0 when unique, else the 1-based
 * position of the definition that comes from source file.  -1 when the
 * target has none, -2 when it cannot be told apart. */
static long target_sympos(const struct target *t, const char *name,
			  const char *file, bool local)
{
	size_t i, count = 0, pos = 0, hits = 0;

	for (i = 0; i < t->n; i++) {
		if (!t->s[i].defined || strcmp(t->s[i].name, name))
			continue;
		count++;
		if (local && t->s[i].bind == STB_LOCAL && t->s[i].file && file &&
		    !strcmp(basename_of(t->s[i].file), basename_of(file))) {
			pos = count;
			hits++;
		} else if (!local && t->s[i].bind != STB_LOCAL) {
			pos = count;
			hits++;
		}
	}
	if (!count)
		return -1;
	if (count == 1)
		return 0;
	return hits == 1 ? (long)pos : -2;
}

/* ---- building the output ---- */

enum how { H_NONE, H_INCLUDE, H_REF, H_AMBIG };

struct out {
	const struct dobj *in;
	const struct dobj *orig;
	const struct ddiff *d;
	const struct emit_opts *opts;
	struct target t;
	bool *incsec;      /* per input section: copied into the output */
	size_t *secmap;    /* input section -> output section index */
	size_t *symmap;    /* input symbol -> output symbol index */
	size_t *secsym;    /* input section -> its output section symbol */
	/* output symbols */
	GElf_Sym *osym;
	char **oname;
	size_t nosym, nlocal;
	/* references made, by name */
	char err[512];
};

static int add_osym(struct out *o, const char *name, GElf_Sym s)
{
	GElf_Sym *ns = realloc(o->osym, (o->nosym + 1) * sizeof(*ns));
	char **nn;

	if (!ns)
		return -1;
	o->osym = ns;
	nn = realloc(o->oname, (o->nosym + 1) * sizeof(*nn));
	if (!nn)
		return -1;
	o->oname = nn;
	o->osym[o->nosym] = s;
	o->oname[o->nosym] = strdup(name ? name : "");
	if (!o->oname[o->nosym])
		return -1;
	return (int)o->nosym++;
}

static const struct dentry *entry_for(const struct out *o, size_t i)
{
	const struct dsym *y = &o->in->syms[i];
	const struct dentry *e = ddiff_get(o->d, y->name);
	size_t k;

	if (e)
		return e;
	/* The large-model build may number a clone differently: its plain
	 * name then, when only one entry has it. */
	e = NULL;
	for (k = 0; k < o->d->n; k++) {
		char *n = dobj_normalize(o->d->e[k].name);
		bool same = n && !strcmp(n, y->norm) && o->d->e[k].type == y->type;

		free(n);
		if (same && e)
			return NULL;
		if (same)
			e = &o->d->e[k];
	}
	return e;
}

static bool wanted(const struct dentry *e)
{
	return e && (e->status == D_CHANGED || e->status == D_NEW);
}

/* How a reference to defined symbol i of the input is made: H_INCLUDE
 * (the patch carries it) or H_REF (the target's own). */
static enum how decide(struct out *o, size_t i)
{
	const struct dsym *y = &o->in->syms[i];
	const struct dentry *e = entry_for(o, i);

	if (o->incsec[y->sym.st_shndx])
		return H_INCLUDE;
	/* A variable the comparison does not know by this name could be a
	 * running one: a copy would lose its value. */
	if ((!e || e->status == D_REMOVED) && y->type != STT_FUNC &&
	    dobj_is_writable(o->in, i))
		return H_AMBIG;
	if (!e || wanted(e) || e->status == D_REMOVED)
		return H_INCLUDE;
	/* Unchanged: the target's own, if the target has it. */
	if (target_sympos(&o->t, e->oldname, o->orig->file,
			  y->bind == STB_LOCAL) == -1 &&
	    target_sympos(&o->t, e->oldname, o->orig->file,
			  y->bind != STB_LOCAL) == -1) {
		if (y->type == STT_FUNC || !dobj_is_writable(o->in, i))
			return H_INCLUDE; /* same code or constant: a copy is fine */
		return H_NONE;
	}
	return H_REF;
}

static int include_section(struct out *o, size_t sec, size_t **work,
			   size_t *nwork)
{
	size_t *n;

	if (o->incsec[sec])
		return 0;
	o->incsec[sec] = true;
	n = realloc(*work, (*nwork + 1) * sizeof(*n));
	if (!n)
		return -1;
	*work = n;
	(*work)[(*nwork)++] = sec;
	return 0;
}

static bool target_defines_global(const struct out *o, const char *name)
{
	size_t i;

	for (i = 0; i < o->t.n; i++)
		if (o->t.s[i].defined && o->t.s[i].bind != STB_LOCAL &&
		    !strcmp(o->t.s[i].name, name))
			return true;
	return false;
}

/* Finds every section the patch must carry, starting from the changed and
 * new functions. */
static int closure(struct out *o)
{
	size_t *work = NULL, nwork = 0, i;
	int rc = -1;

	for (i = 1; i < o->in->nsyms; i++) {
		const struct dsym *y = &o->in->syms[i];
		const struct dentry *e;

		if (!dobj_is_defined(o->in, i) || y->type != STT_FUNC)
			continue;
		e = entry_for(o, i);
		if (wanted(e) && include_section(o, y->sym.st_shndx, &work, &nwork))
			goto out;
	}
	/* Each included function's .cold part goes with it. */
	for (i = 1; i < o->in->nsyms; i++) {
		const struct dsym *y = &o->in->syms[i];
		const char *c = strstr(y->name, ".cold");
		long parent;
		char *pname;

		if (!dobj_is_defined(o->in, i) || y->type != STT_FUNC || !c)
			continue;
		pname = strndup(y->name, (size_t)(c - y->name));
		parent = pname ? dobj_find(o->in, pname) : -1;
		free(pname);
		if (parent >= 0 && o->incsec[o->in->syms[parent].sym.st_shndx] &&
		    include_section(o, y->sym.st_shndx, &work, &nwork))
			goto out;
	}
	while (nwork) {
		const struct dsec *s = &o->in->secs[work[--nwork]];

		for (i = 0; i < s->nrels; i++) {
			const struct drel *r = &s->rels[i];
			const struct dsym *y = &o->in->syms[r->sym];
			long named;
			int64_t off;

			if (y->sym.st_shndx == SHN_UNDEF && y->type != STT_SECTION)
				continue;
			dobj_rel_target(o->in, r, &named, &off);
			if (named < 0) {
				size_t shndx;
				int64_t add;

				if (dobj_rel_section(o->in, r, &shndx, &add) &&
				    include_section(o, shndx, &work, &nwork))
					goto out;
				continue;
			}
			switch (decide(o, (size_t)named)) {
			case H_INCLUDE:
				if (include_section(o, o->in->syms[named].sym.st_shndx,
						    &work, &nwork))
					goto out;
				break;
			case H_AMBIG:
				snprintf(o->err, sizeof(o->err),
					 "'%s' (%s) uses variable '%s', which the "
					 "patch's build names differently from the "
					 "original build: relive-build cannot tell "
					 "which running variable it is",
					 s->name, o->orig->file ? o->orig->file : "?",
					 o->in->syms[named].name);
				goto out;
			case H_NONE:
				snprintf(o->err, sizeof(o->err),
					 "'%s' (%s) uses variable '%s', which the "
					 "running binary does not have",
					 s->name, o->orig->file ? o->orig->file : "?",
					 o->in->syms[named].name);
				goto out;
			default:
				break;
			}
		}
	}
	rc = 0;
out:
	free(work);
	return rc;
}

static int ref_symbol(struct out *o, const char *name, bool local,
		      const char *why)
{
	char buf[600];
	long pos = target_sympos(&o->t, name, o->orig->file, local);
	GElf_Sym s = { 0 };
	size_t k;

	if (pos == -1)
		pos = target_sympos(&o->t, name, o->orig->file, !local);
	if (pos < 0) {
		snprintf(o->err, sizeof(o->err),
			 "%s '%s' of %s cannot be told apart from the other "
			 "symbols of that name in %s", why, name,
			 o->orig->file ? o->orig->file : "?", o->opts->target);
		return -1;
	}
	snprintf(buf, sizeof(buf), "relive.klp.sym.%s:%s.%ld", o->opts->objname,
		 name, pos);
	for (k = o->nlocal; k < o->nosym; k++)
		if (!strcmp(o->oname[k], buf))
			return (int)k;
	s.st_info = GELF_ST_INFO(STB_WEAK, STT_NOTYPE);
	s.st_shndx = SHN_UNDEF;
	if (o->opts->report)
		fprintf(o->opts->report, "    reference: %s '%s' -> %s\n", why,
			name, buf);
	return add_osym(o, buf, s);
}

static int extern_symbol(struct out *o, size_t i)
{
	const struct dsym *y = &o->in->syms[i];
	GElf_Sym s = y->sym;
	size_t k;

	if (target_defines_global(o, y->name))
		return ref_symbol(o, y->name, false, "global");
	for (k = o->nlocal; k < o->nosym; k++)
		if (!strcmp(o->oname[k], y->name))
			return (int)k;
	s.st_value = 0;
	s.st_size = 0;
	return add_osym(o, y->name, s);
}

static Elf_Scn *new_section(Elf *e, const char *name, GElf_Shdr *sh,
			    const void *buf, size_t size, Elf_Type dtype,
			    char **shstr, size_t *shstrlen)
{
	Elf_Scn *scn = elf_newscn(e);
	Elf_Data *d;
	size_t nlen = strlen(name) + 1;
	char *n;

	if (!scn || !(d = elf_newdata(scn)))
		return NULL;
	n = realloc(*shstr, *shstrlen + nlen);
	if (!n)
		return NULL;
	*shstr = n;
	memcpy(n + *shstrlen, name, nlen);
	sh->sh_name = *shstrlen;
	*shstrlen += nlen;
	d->d_buf = (void *)buf;
	d->d_size = size;
	d->d_type = dtype;
	d->d_align = sh->sh_addralign ? sh->sh_addralign : 1;
	d->d_version = EV_CURRENT;
	if (!gelf_update_shdr(scn, sh))
		return NULL;
	return scn;
}

int emit_patch_object(const struct dobj *large, const struct dobj *orig,
		      struct ddiff *d, const struct emit_opts *opts,
		      const char *out_path, char *err, size_t errlen)
{
	struct out o = { .in = large, .orig = orig, .d = d, .opts = opts };
	char *shstr = NULL, *strtab = NULL;
	size_t shstrlen = 1, strlen_ = 1, i, k, nout = 0, alias = 0;
	GElf_Rela **relas = NULL;
	size_t *nrelas = NULL;
	Elf_Scn **oscn = NULL;
	Elf *e = NULL;
	int fd = -1, rc = -1;
	GElf_Ehdr eh;
	GElf_Sym zero = { 0 };

	o.t.fd = -1;
	if (target_open(opts->target, &o.t, err, errlen))
		goto out;
	if (orig->file && !target_has_file(&o.t, orig->file)) {
		if (opts->report)
			fprintf(opts->report,
				"    not part of %s (no code from %s in it): "
				"nothing to patch\n", opts->target, orig->file);
		rc = EMIT_NOT_IN_TARGET;
		goto out;
	}
	/* Callers that rely on a changed function's registers come too. */
	if (ipa_ra_callers(orig, large, d, opts->report)) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	o.incsec = calloc(large->nsecs, sizeof(*o.incsec));
	o.secmap = calloc(large->nsecs, sizeof(*o.secmap));
	o.symmap = calloc(large->nsyms, sizeof(*o.symmap));
	o.secsym = calloc(large->nsecs, sizeof(*o.secsym));
	relas = calloc(large->nsecs, sizeof(*relas));
	nrelas = calloc(large->nsecs, sizeof(*nrelas));
	oscn = calloc(large->nsecs, sizeof(*oscn));
	shstr = calloc(1, 1);
	if (!o.incsec || !o.secmap || !o.symmap || !o.secsym || !relas || !nrelas || !oscn ||
	    !shstr || add_osym(&o, "", zero) < 0)
		goto oom;
	if (closure(&o)) {
		snprintf(err, errlen, "%s", o.err);
		goto out;
	}

	/* Output sections, in input order: 1..nout. */
	for (i = 1; i < large->nsecs; i++)
		if (o.incsec[i])
			o.secmap[i] = ++nout;

	/* Local symbols: one per section, then the named ones carried. */
	for (i = 1; i < large->nsecs; i++) {
		GElf_Sym s = { 0 };

		if (!o.incsec[i])
			continue;
		s.st_info = GELF_ST_INFO(STB_LOCAL, STT_SECTION);
		s.st_shndx = o.secmap[i];
		if (add_osym(&o, "", s) < 0)
			goto oom;
		o.secsym[i] = o.nosym - 1;
	}
	for (k = 1; k < large->nsyms; k++) {
		const struct dsym *y = &large->syms[k];
		GElf_Sym s = y->sym;
		int idx;

		if (!dobj_is_defined(large, k) || !o.incsec[y->sym.st_shndx])
			continue;
		s.st_info = GELF_ST_INFO(STB_LOCAL, y->type);
		s.st_other = 0;
		s.st_shndx = o.secmap[y->sym.st_shndx];
		if ((idx = add_osym(&o, y->name, s)) < 0)
			goto oom;
		o.symmap[k] = (size_t)idx;
	}
	o.nlocal = o.nosym;

	/* The replacements' aliases, named by the descriptor. */
	for (i = 0; i < d->n; i++) {
		const struct dentry *en = &d->e[i];
		long li, pos;
		GElf_Sym s;
		char name[64];

		if (en->status != D_CHANGED || en->type != STT_FUNC || en->cold)
			continue;
		if (en->tiny) {
			if (opts->report)
				fprintf(opts->report,
					"    %s: too short to redirect: its new code "
					"goes with its callers\n", en->oldname);
			continue;
		}
		li = dobj_find(large, en->name);
		if (li < 0) {
			char *n = dobj_normalize(en->name);

			li = n ? dobj_find_norm(large, n, STT_FUNC) : -1;
			free(n);
		}
		if (li < 0) {
			snprintf(err, errlen,
				 "%s: changed function '%s' is missing from the "
				 "large-model build of %s", orig->file ? orig->file : "?",
				 en->name, large->path);
			goto out;
		}
		pos = target_sympos(&o.t, en->oldname, orig->file,
				    large->syms[li].bind == STB_LOCAL);
		if (pos == -1)
			pos = target_sympos(&o.t, en->oldname, orig->file,
					    large->syms[li].bind != STB_LOCAL);
		if (pos == -1) {
			if (opts->report)
				fprintf(opts->report,
					"    %s: not a function of the running binary "
					"(inlined everywhere): its callers carry the "
					"change\n", en->oldname);
			continue;
		}
		if (pos == -2) {
			snprintf(err, errlen,
				 "'%s' (%s) cannot be told apart from the other "
				 "functions of that name in %s", en->oldname,
				 orig->file ? orig->file : "?", opts->target);
			goto out;
		}
		s = large->syms[li].sym;
		s.st_info = GELF_ST_INFO(STB_GLOBAL, STT_FUNC);
		s.st_other = STV_HIDDEN;
		s.st_shndx = o.secmap[large->syms[li].sym.st_shndx];
		snprintf(name, sizeof(name), "relive_new_%u_%zu", opts->serial,
			 alias++);
		if (add_osym(&o, name, s) < 0)
			goto oom;
		if (opts->descriptor)
			fprintf(opts->descriptor, "FUNC %s %ld %s\n", en->oldname,
				pos, name);
	}

	/* Relocations of every carried section. */
	for (i = 1; i < large->nsecs; i++) {
		const struct dsec *s = &large->secs[i];

		if (!o.incsec[i] || !s->nrels)
			continue;
		relas[i] = calloc(s->nrels, sizeof(**relas));
		if (!relas[i])
			goto oom;
		for (k = 0; k < s->nrels; k++) {
			const struct drel *r = &s->rels[k];
			const struct dsym *y = &large->syms[r->sym];
			GElf_Rela *w = &relas[i][nrelas[i]++];
			long named;
			int64_t off;
			int idx;

			w->r_offset = r->offset;
			w->r_addend = r->addend;
			size_t shndx;
			int64_t add;

			if (y->sym.st_shndx == SHN_UNDEF && y->type != STT_SECTION) {
				if ((idx = extern_symbol(&o, r->sym)) < 0)
					goto fail_ref;
			} else if (dobj_rel_section(large, r, &shndx, &add) &&
				   o.incsec[shndx]) {
				idx = (int)o.secsym[shndx];
				w->r_addend = add;
			} else if (o.symmap[r->sym]) {
				idx = (int)o.symmap[r->sym];
			} else {
				dobj_rel_target(large, r, &named, &off);
				if (named < 0) {
					snprintf(err, errlen,
						 "%s: relocation at %s+%#llx points at "
						 "nothing relive-build can name",
						 large->path, s->name,
						 (unsigned long long)r->offset);
					goto out;
				}
				{
					const struct dentry *en = entry_for(&o, (size_t)named);
					const char *tname = en && en->oldname
								    ? en->oldname
								    : large->syms[named].name;

					idx = ref_symbol(&o, tname,
							 large->syms[named].bind == STB_LOCAL,
							 large->syms[named].type == STT_FUNC
								 ? "function"
								 : "variable");
				}
				if (idx < 0)
					goto fail_ref;
				w->r_addend = off;
				if (r->type != R_X86_64_64) {
					snprintf(err, errlen,
						 "%s: %s refers to '%s' of the target "
						 "with relocation type %u%s, which a "
						 "patch cannot resolve; write this "
						 "function by hand (docs/patch-guide.md)",
						 large->path, s->name,
						 large->syms[named].name, r->type,
						 large->syms[named].type == STT_TLS
							 ? " (a thread-local variable)"
							 : "");
					goto out;
				}
			}
			w->r_info = GELF_R_INFO((size_t)idx, r->type);
		}
	}

	/* Write it. */
	fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", out_path, strerror(errno));
		goto out;
	}
	e = elf_begin(fd, ELF_C_WRITE, NULL);
	if (!e || !gelf_newehdr(e, ELFCLASS64))
		goto elferr;
	memset(&eh, 0, sizeof(eh));
	eh.e_ident[EI_MAG0] = ELFMAG0;
	eh.e_ident[EI_MAG1] = ELFMAG1;
	eh.e_ident[EI_MAG2] = ELFMAG2;
	eh.e_ident[EI_MAG3] = ELFMAG3;
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_type = ET_REL;
	eh.e_machine = EM_X86_64;
	eh.e_version = EV_CURRENT;
	eh.e_ehsize = sizeof(Elf64_Ehdr);
	eh.e_shentsize = sizeof(Elf64_Shdr);
	for (i = 1; i < large->nsecs; i++) {
		const struct dsec *s = &large->secs[i];
		GElf_Shdr sh = s->sh;

		if (!o.incsec[i])
			continue;
		sh.sh_link = 0;
		sh.sh_info = 0;
		sh.sh_offset = 0;
		sh.sh_addr = 0;
		sh.sh_flags &= ~(GElf_Xword)SHF_GROUP;
		oscn[i] = new_section(e, s->name, &sh, s->bytes, s->sh.sh_size,
				      ELF_T_BYTE, &shstr, &shstrlen);
		if (!oscn[i])
			goto elferr;
	}
	{
		/* The symbol and string tables. */
		size_t symndx = nout + 1, strndx = nout + 2, shstrndx;
		GElf_Shdr sh = { 0 };
		Elf64_Sym *tab = calloc(o.nosym, sizeof(*tab));
		Elf_Scn *scn;

		if (!tab)
			goto oom;
		strtab = calloc(1, 1);
		for (k = 0; strtab && k < o.nosym; k++) {
			size_t l = strlen(o.oname[k]);
			char *n;

			tab[k].st_name = 0;
			if (l) {
				n = realloc(strtab, strlen_ + l + 1);
				if (!n) {
					free(strtab);
					strtab = NULL;
					break;
				}
				strtab = n;
				memcpy(strtab + strlen_, o.oname[k], l + 1);
				tab[k].st_name = strlen_;
				strlen_ += l + 1;
			}
			tab[k].st_info = o.osym[k].st_info;
			tab[k].st_other = o.osym[k].st_other;
			tab[k].st_shndx = o.osym[k].st_shndx;
			tab[k].st_value = o.osym[k].st_value;
			tab[k].st_size = o.osym[k].st_size;
		}
		if (!strtab) {
			free(tab);
			goto oom;
		}
		sh.sh_type = SHT_SYMTAB;
		sh.sh_entsize = sizeof(Elf64_Sym);
		sh.sh_addralign = 8;
		sh.sh_link = strndx;
		sh.sh_info = o.nlocal;
		scn = new_section(e, ".symtab", &sh, tab, o.nosym * sizeof(*tab),
				  ELF_T_SYM, &shstr, &shstrlen);
		if (!scn) {
			free(tab);
			goto elferr;
		}
		memset(&sh, 0, sizeof(sh));
		sh.sh_type = SHT_STRTAB;
		sh.sh_addralign = 1;
		if (!new_section(e, ".strtab", &sh, strtab, strlen_, ELF_T_BYTE,
				 &shstr, &shstrlen))
			goto elferr;
		/* Relocation sections. */
		for (i = 1; i < large->nsecs; i++) {
			char rname[512];

			if (!o.incsec[i] || !nrelas[i])
				continue;
			memset(&sh, 0, sizeof(sh));
			sh.sh_type = SHT_RELA;
			sh.sh_flags = SHF_INFO_LINK;
			sh.sh_entsize = sizeof(Elf64_Rela);
			sh.sh_addralign = 8;
			sh.sh_link = symndx;
			sh.sh_info = o.secmap[i];
			snprintf(rname, sizeof(rname), ".rela%s", large->secs[i].name);
			{
				Elf64_Rela *rr = calloc(nrelas[i], sizeof(*rr));

				if (!rr)
					goto oom;
				for (k = 0; k < nrelas[i]; k++) {
					rr[k].r_offset = relas[i][k].r_offset;
					rr[k].r_info = relas[i][k].r_info;
					rr[k].r_addend = relas[i][k].r_addend;
				}
				free(relas[i]);
				relas[i] = (GElf_Rela *)rr;
				if (!new_section(e, rname, &sh, rr,
						 nrelas[i] * sizeof(*rr), ELF_T_RELA,
						 &shstr, &shstrlen))
					goto elferr;
			}
		}
		/* No executable stack. */
		memset(&sh, 0, sizeof(sh));
		sh.sh_type = SHT_PROGBITS;
		sh.sh_addralign = 1;
		if (!new_section(e, ".note.GNU-stack", &sh, NULL, 0, ELF_T_BYTE,
				 &shstr, &shstrlen))
			goto elferr;
		memset(&sh, 0, sizeof(sh));
		sh.sh_type = SHT_STRTAB;
		sh.sh_addralign = 1;
		/* The name must be in the table before the table is written. */
		{
			char *n = realloc(shstr, shstrlen + sizeof(".shstrtab"));

			if (!n)
				goto oom;
			shstr = n;
		}
		scn = elf_newscn(e);
		if (!scn)
			goto elferr;
		memcpy(shstr + shstrlen, ".shstrtab", sizeof(".shstrtab"));
		sh.sh_name = shstrlen;
		shstrlen += sizeof(".shstrtab");
		{
			Elf_Data *dd = elf_newdata(scn);

			if (!dd)
				goto elferr;
			dd->d_buf = shstr;
			dd->d_size = shstrlen;
			dd->d_type = ELF_T_BYTE;
			dd->d_align = 1;
			dd->d_version = EV_CURRENT;
		}
		if (!gelf_update_shdr(scn, &sh))
			goto elferr;
		shstrndx = elf_ndxscn(scn);
		eh.e_shstrndx = shstrndx;
		if (!gelf_update_ehdr(e, &eh) || elf_update(e, ELF_C_WRITE) < 0) {
			free(tab);
			goto elferr;
		}
		free(tab);
	}
	rc = 0;
	goto out;
fail_ref:
	snprintf(err, errlen, "%s", o.err);
	goto out;
oom:
	snprintf(err, errlen, "out of memory");
	goto out;
elferr:
	snprintf(err, errlen, "%s: cannot write: %s", out_path, elf_errmsg(-1));
out:
	if (e)
		elf_end(e);
	if (fd >= 0)
		close(fd);
	if (rc)
		unlink(out_path);
	if (relas)
		for (i = 0; i < large->nsecs; i++)
			free(relas[i]);
	free(relas);
	free(nrelas);
	free(oscn);
	for (i = 0; i < o.nosym; i++)
		free(o.oname[i]);
	free(o.oname);
	free(o.osym);
	free(o.incsec);
	free(o.secmap);
	free(o.symmap);
	free(o.secsym);
	free(shstr);
	free(strtab);
	target_close(&o.t);
	return rc;
}
