/*
 * builder/object.c - reads one relocatable object for relive-build and
 * names what its relocations point at, so two builds of one source file
 * can be compared by meaning rather than by address.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dobj.h"

static void fail(char *err, size_t len, const char *path, const char *what)
{
	snprintf(err, len, "%s: %s", path, what);
}

char *dobj_normalize(const char *name)
{
	char *out = malloc(strlen(name) + 1), *w = out;
	const char *p = name;

	if (!out)
		return NULL;
	while (*p) {
		const char *q = p + 1;

		if (*p == '.' && p != name && *q >= '0' && *q <= '9') {
			while (*q >= '0' && *q <= '9')
				q++;
			if (*q == '.' || !*q) {
				p = q;
				continue;
			}
		}
		*w++ = *p++;
	}
	*w = 0;
	return out;
}

static int read_rels(struct dobj *o, Elf_Scn *scn, const GElf_Shdr *sh,
		     const char *path, char *err, size_t errlen)
{
	Elf_Data *d = elf_getdata(scn, NULL);
	struct dsec *t;
	size_t n, i;

	if (sh->sh_info >= o->nsecs || !sh->sh_entsize || !d) {
		fail(err, errlen, path, "malformed relocation section");
		return -1;
	}
	t = &o->secs[sh->sh_info];
	n = sh->sh_size / sh->sh_entsize;
	t->rels = calloc(n ? n : 1, sizeof(*t->rels));
	if (!t->rels) {
		fail(err, errlen, path, "out of memory");
		return -1;
	}
	for (i = 0; i < n; i++) {
		GElf_Rela r;

		if (!gelf_getrela(d, i, &r)) {
			fail(err, errlen, path, "unreadable relocation");
			return -1;
		}
		t->rels[i].offset = r.r_offset;
		t->rels[i].type = GELF_R_TYPE(r.r_info);
		t->rels[i].addend = r.r_addend;
		t->rels[i].sym = GELF_R_SYM(r.r_info);
		if (t->rels[i].sym >= o->nsyms) {
			fail(err, errlen, path, "relocation names no symbol");
			return -1;
		}
	}
	t->nrels = n;
	return 0;
}

int dobj_open(const char *path, struct dobj **out, char *err, size_t errlen)
{
	struct dobj *o = calloc(1, sizeof(*o));
	size_t shstrndx, i;
	Elf_Scn *scn = NULL;
	GElf_Ehdr eh;

	*out = NULL;
	if (!o || !(o->path = strdup(path))) {
		free(o);
		fail(err, errlen, path, "out of memory");
		return -1;
	}
	elf_version(EV_CURRENT);
	o->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (o->fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto bad;
	}
	o->elf = elf_begin(o->fd, ELF_C_READ, NULL);
	if (!o->elf || elf_kind(o->elf) != ELF_K_ELF || !gelf_getehdr(o->elf, &eh)) {
		fail(err, errlen, path, "not an ELF file");
		goto bad;
	}
	if (eh.e_type != ET_REL || eh.e_machine != EM_X86_64) {
		fail(err, errlen, path, "not an x86-64 relocatable object (.o)");
		goto bad;
	}
	if (elf_getshdrnum(o->elf, &o->nsecs) || elf_getshdrstrndx(o->elf, &shstrndx)) {
		fail(err, errlen, path, "unreadable section headers");
		goto bad;
	}
	o->secs = calloc(o->nsecs, sizeof(*o->secs));
	if (!o->secs) {
		fail(err, errlen, path, "out of memory");
		goto bad;
	}
	/* Sections and the symbol table first, relocations after. */
	while ((scn = elf_nextscn(o->elf, scn))) {
		size_t idx = elf_ndxscn(scn);
		struct dsec *s = &o->secs[idx];
		Elf_Data *d;

		gelf_getshdr(scn, &s->sh);
		s->name = elf_strptr(o->elf, shstrndx, s->sh.sh_name);
		if (!s->name)
			s->name = "";
		if (s->sh.sh_type != SHT_NOBITS && (d = elf_getdata(scn, NULL)))
			s->bytes = d->d_buf;
		if (s->sh.sh_type == SHT_SYMTAB) {
			size_t n = s->sh.sh_entsize ? s->sh.sh_size / s->sh.sh_entsize : 0;

			d = elf_getdata(scn, NULL);
			o->syms = calloc(n ? n : 1, sizeof(*o->syms));
			if (!o->syms || !d) {
				fail(err, errlen, path, "unreadable symbol table");
				goto bad;
			}
			o->nsyms = n;
			for (i = 0; i < n; i++) {
				struct dsym *y = &o->syms[i];

				gelf_getsym(d, i, &y->sym);
				y->name = elf_strptr(o->elf, s->sh.sh_link, y->sym.st_name);
				if (!y->name)
					y->name = "";
				y->type = GELF_ST_TYPE(y->sym.st_info);
				y->bind = GELF_ST_BIND(y->sym.st_info);
				y->norm = dobj_normalize(y->name);
				y->canon = y->norm ? strdup(y->norm) : NULL;
				if (!y->norm || !y->canon) {
					fail(err, errlen, path, "out of memory");
					goto bad;
				}
				if (y->type == STT_FILE && !o->file)
					o->file = y->name;
			}
		}
	}
	if (!o->syms) {
		fail(err, errlen, path, "has no symbol table");
		goto bad;
	}
	{
		size_t n = o->file ? strlen(o->file) : 0;
		bool comment = false;

		for (i = 1; i < o->nsecs; i++)
			if (!strcmp(o->secs[i].name, ".comment"))
				comment = true;
		o->from_asm = (n > 2 && o->file[n - 2] == '.' &&
			       (o->file[n - 1] == 's' || o->file[n - 1] == 'S')) ||
			      (!comment && !o->file);
	}
	scn = NULL;
	while ((scn = elf_nextscn(o->elf, scn))) {
		GElf_Shdr sh;

		gelf_getshdr(scn, &sh);
		if (sh.sh_type == SHT_REL) {
			fail(err, errlen, path, "has REL relocations; x86-64 uses RELA");
			goto bad;
		}
		if (sh.sh_type == SHT_RELA &&
		    read_rels(o, scn, &sh, path, err, errlen))
			goto bad;
	}
	*out = o;
	return 0;
bad:
	dobj_close(o);
	return -1;
}

void dobj_close(struct dobj *o)
{
	size_t i;

	if (!o)
		return;
	for (i = 0; i < o->nsecs; i++)
		free(o->secs[i].rels);
	for (i = 0; i < o->nsyms; i++) {
		free(o->syms[i].norm);
		free(o->syms[i].canon);
	}
	free(o->secs);
	free(o->syms);
	if (o->elf)
		elf_end(o->elf);
	if (o->fd >= 0)
		close(o->fd);
	free(o->path);
	free(o);
}

bool dobj_is_defined(const struct dobj *o, size_t i)
{
	const struct dsym *y = &o->syms[i];

	return (y->type == STT_FUNC || y->type == STT_OBJECT ||
		y->type == STT_TLS) &&
	       y->sym.st_shndx != SHN_UNDEF && y->sym.st_shndx < o->nsecs;
}

bool dobj_is_writable(const struct dobj *o, size_t i)
{
	const struct dsym *y = &o->syms[i];

	return y->sym.st_shndx < o->nsecs &&
	       (o->secs[y->sym.st_shndx].sh.sh_flags & SHF_WRITE);
}

long dobj_find(const struct dobj *o, const char *name)
{
	size_t i;

	for (i = 1; i < o->nsyms; i++)
		if (dobj_is_defined(o, i) && !strcmp(o->syms[i].name, name))
			return (long)i;
	return -1;
}

long dobj_find_norm(const struct dobj *o, const char *norm, int type)
{
	long found = -1;
	size_t i;

	for (i = 1; i < o->nsyms; i++) {
		if (!dobj_is_defined(o, i) || strcmp(o->syms[i].norm, norm))
			continue;
		if (type && o->syms[i].type != type)
			continue;
		if (found >= 0)
			return -2;
		found = (long)i;
	}
	return found;
}

long dobj_sym_at(const struct dobj *o, size_t shndx, uint64_t off)
{
	long best = -1;
	size_t i;

	for (i = 1; i < o->nsyms; i++) {
		const GElf_Sym *s = &o->syms[i].sym;

		if (!dobj_is_defined(o, i) || s->st_shndx != shndx)
			continue;
		if (off == s->st_value ||
		    (off > s->st_value && off < s->st_value + s->st_size)) {
			/* Prefer a local name: it is the one the code uses. */
			if (best < 0 || o->syms[i].bind == STB_LOCAL)
				best = (long)i;
		}
	}
	return best;
}

int dobj_rel_width(uint32_t type)
{
	switch (type) {
	case R_X86_64_64:
	case R_X86_64_PC64:
	case R_X86_64_GOTOFF64:
	case R_X86_64_GOTPC64:
	case R_X86_64_GOT64:
	case R_X86_64_PLTOFF64:
	case R_X86_64_DTPOFF64:
	case R_X86_64_TPOFF64:
		return 8;
	case R_X86_64_PC32:
	case R_X86_64_PLT32:
	case R_X86_64_32:
	case R_X86_64_32S:
	case R_X86_64_GOTPCREL:
	case R_X86_64_GOTPCRELX:
	case R_X86_64_REX_GOTPCRELX:
	case R_X86_64_GOTPC32:
	case R_X86_64_TLSGD:
	case R_X86_64_TLSLD:
	case R_X86_64_DTPOFF32:
	case R_X86_64_GOTTPOFF:
	case R_X86_64_TPOFF32:
		return 4;
	case R_X86_64_16:
	case R_X86_64_PC16:
		return 2;
	case R_X86_64_8:
	case R_X86_64_PC8:
		return 1;
	default:
		return 0;
	}
}

int dobj_rel_pcbias(uint32_t type)
{
	switch (type) {
	case R_X86_64_PC32:
	case R_X86_64_PLT32:
	case R_X86_64_GOTPCREL:
	case R_X86_64_GOTPCRELX:
	case R_X86_64_REX_GOTPCRELX:
		return 4;
	default:
		return 0;
	}
}

bool dobj_rel_section(const struct dobj *o, const struct drel *r,
		      size_t *shndx, int64_t *addend)
{
	const struct dsym *y = &o->syms[r->sym];

	if (y->sym.st_shndx == SHN_UNDEF || y->sym.st_shndx >= o->nsecs)
		return false;
	if (y->type == STT_SECTION) {
		*shndx = y->sym.st_shndx;
		*addend = r->addend;
		return true;
	}
	if (y->type == STT_NOTYPE) {
		/* A label such as ".LC2": its section, offset by its value. */
		*shndx = y->sym.st_shndx;
		*addend = r->addend + (int64_t)y->sym.st_value;
		return true;
	}
	return false;
}

void dobj_rel_target(const struct dobj *o, const struct drel *r, long *named,
		     int64_t *off)
{
	size_t shndx;
	int64_t add, at;

	*named = -1;
	*off = r->addend;
	if (!dobj_rel_section(o, r, &shndx, &add)) {
		if (dobj_is_defined(o, r->sym))
			*named = (long)r->sym;
		return;
	}
	at = add + dobj_rel_pcbias(r->type);
	if (at < 0)
		return;
	*named = dobj_sym_at(o, shndx, (uint64_t)at);
	if (*named >= 0)
		*off = add - (int64_t)o->syms[*named].sym.st_value;
}

/* FNV-1a, enough to tell two contents apart in a comparison. */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n--) {
		h ^= *b++;
		h *= 0x100000001b3ull;
	}
	return h;
}

/* Content of [start, start+size) of a section: bytes outside relocated
 * fields, and what each relocation in it points at (depth-limited: data
 * that points at data). */
static uint64_t content_hash(const struct dobj *o, size_t shndx, uint64_t start,
			     uint64_t size, int depth)
{
	const struct dsec *s = &o->secs[shndx];
	uint64_t h = 0xcbf29ce484222325ull, i;
	size_t k;

	h = fnv(h, &size, sizeof(size));
	if (!s->bytes)
		return h;
	for (i = start; i < start + size && i < s->sh.sh_size; i++) {
		bool masked = false;

		for (k = 0; k < s->nrels; k++) {
			const struct drel *r = &s->rels[k];

			if (i >= r->offset && i < r->offset + (uint64_t)dobj_rel_width(r->type)) {
				masked = true;
				break;
			}
		}
		if (!masked)
			h = fnv(h, &s->bytes[i], 1);
	}
	for (k = 0; k < s->nrels && depth > 0; k++) {
		const struct drel *r = &s->rels[k];
		char id[512];

		if (r->offset < start || r->offset >= start + size)
			continue;
		{
			size_t sh2;
			int64_t a2;

			if (dobj_rel_section(o, r, &sh2, &a2) && sh2 == shndx) {
				/* Pointing into itself (a jump table): the
				 * offset is what matters. */
				h = fnv(h, &a2, sizeof(a2));
				continue;
			}
		}
		if (depth == 1) {
			h = fnv(h, o->syms[r->sym].canon, strlen(o->syms[r->sym].canon));
			continue;
		}
		dobj_rel_ident(o, r, id, sizeof(id));
		h = fnv(h, id, strlen(id));
	}
	return h;
}

static void ident_depth(const struct dobj *o, const struct drel *r, char *buf,
			size_t len, int depth)
{
	const struct dsym *y = &o->syms[r->sym];
	long named;
	int64_t off;

	if (y->sym.st_shndx == SHN_UNDEF && y->type != STT_SECTION) {
		snprintf(buf, len, "ext:%s%+lld", y->name, (long long)r->addend);
		return;
	}
	dobj_rel_target(o, r, &named, &off);
	if (named >= 0) {
		const struct dsym *n = &o->syms[named];

		if (!dobj_is_writable(o, (size_t)named) && n->type == STT_OBJECT)
			snprintf(buf, len, "ro:%s%+lld#%016llx", n->canon,
				 (long long)off,
				 (unsigned long long)content_hash(
					 o, n->sym.st_shndx, n->sym.st_value,
					 n->sym.st_size, depth - 1));
		else
			snprintf(buf, len, "%s:%s%+lld",
				 n->type == STT_FUNC ? "fn" : "obj", n->canon,
				 (long long)off);
		return;
	}
	{
		size_t shndx;
		int64_t add;
		const struct dsec *s;
		int64_t at;

		if (!dobj_rel_section(o, r, &shndx, &add))
			goto plain;
		s = &o->secs[shndx];
		at = add + dobj_rel_pcbias(r->type);
		if ((s->sh.sh_flags & SHF_STRINGS) && s->bytes && at >= 0 &&
		    (uint64_t)at < s->sh.sh_size) {
			snprintf(buf, len, "str:\"%.*s\"",
				 (int)(len > 16 ? len - 16 : 0),
				 (const char *)s->bytes + at);
			return;
		}
		if (s->sh.sh_flags & SHF_EXECINSTR) {
			/* Code without a symbol: a label in a function. */
			snprintf(buf, len, "code:%s%+lld", s->name, (long long)add);
			return;
		}
		snprintf(buf, len, "anon:%016llx%+lld",
			 (unsigned long long)content_hash(o, shndx, 0,
							  s->sh.sh_size,
							  depth - 1),
			 (long long)add);
		return;
	}
plain:
	snprintf(buf, len, "sym:%s%+lld", y->norm, (long long)r->addend);
}

void dobj_rel_ident(const struct dobj *o, const struct drel *r, char *buf,
		    size_t len)
{
	ident_depth(o, r, buf, len, 3);
}
