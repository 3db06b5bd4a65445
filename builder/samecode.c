/*
 * builder/samecode.c - does a rebuilt binary have the code of the running
 * one?  The reproducibility check of relive-build.
 *
 * relive-build rebuilds the original tree with -ffunction-sections, so the
 * rebuilt binary has another layout and another build-id even when its
 * code is the same.  So each function is compared instruction by
 * instruction, and every address an instruction uses (a call, a jump, a
 * RIP-relative operand) is compared as what it points at in its own
 * binary: a function or variable by name and offset, a PLT stub by the
 * symbol it calls, a string literal by its text.  Functions are matched by
 * name and, for local names, by the source file they come from.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <Zydis/Zydis.h>

#include "dobj.h"

struct bsym {
	const char *name;
	const char *file;
	uint64_t addr, size;
	int type;
	unsigned dup; /* how many earlier symbols have the same name and file */
};

struct bin {
	int fd;
	Elf *elf;
	GElf_Shdr *sh;
	const char **shname;
	size_t nsec;
	struct bsym *s;     /* functions and objects, by address */
	size_t n;
	struct { uint64_t slot; const char *name; } *got;
	size_t ngot;
};

static int by_addr(const void *a, const void *b)
{
	const struct bsym *x = a, *y = b;

	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

static void bin_close(struct bin *b)
{
	free(b->sh);
	free(b->shname);
	free(b->s);
	free(b->got);
	if (b->elf)
		elf_end(b->elf);
	if (b->fd >= 0)
		close(b->fd);
}

static int bin_open(const char *path, struct bin *b, char *err, size_t errlen)
{
	Elf_Scn *scn = NULL;
	size_t shstrndx;

	memset(b, 0, sizeof(*b));
	b->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (b->fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	elf_version(EV_CURRENT);
	b->elf = elf_begin(b->fd, ELF_C_READ, NULL);
	if (!b->elf || elf_kind(b->elf) != ELF_K_ELF ||
	    elf_getshdrnum(b->elf, &b->nsec) || elf_getshdrstrndx(b->elf, &shstrndx)) {
		snprintf(err, errlen, "%s: not an ELF file", path);
		return -1;
	}
	b->sh = calloc(b->nsec, sizeof(*b->sh));
	b->shname = calloc(b->nsec, sizeof(*b->shname));
	if (!b->sh || !b->shname)
		goto oom;
	while ((scn = elf_nextscn(b->elf, scn))) {
		size_t i = elf_ndxscn(scn);
		GElf_Shdr *sh = &b->sh[i];
		Elf_Data *d;
		size_t k, n;
		const char *file = NULL;

		gelf_getshdr(scn, sh);
		b->shname[i] = elf_strptr(b->elf, shstrndx, sh->sh_name);
		if (!b->shname[i])
			b->shname[i] = "";
		if (!sh->sh_entsize || !(d = elf_getdata(scn, NULL)))
			continue;
		n = sh->sh_size / sh->sh_entsize;
		if (sh->sh_type == SHT_SYMTAB) {
			b->s = calloc(n ? n : 1, sizeof(*b->s));
			if (!b->s)
				goto oom;
			for (k = 0; k < n; k++) {
				GElf_Sym y;
				int t;
				const char *name;

				gelf_getsym(d, k, &y);
				t = GELF_ST_TYPE(y.st_info);
				name = elf_strptr(b->elf, sh->sh_link, y.st_name);
				if (t == STT_FILE)
					file = name;
				if ((t != STT_FUNC && t != STT_OBJECT) ||
				    y.st_shndx == SHN_UNDEF || !name || !*name)
					continue;
				b->s[b->n].name = name;
				b->s[b->n].file = GELF_ST_BIND(y.st_info) == STB_LOCAL
							  ? file : NULL;
				b->s[b->n].addr = y.st_value;
				b->s[b->n].size = y.st_size;
				b->s[b->n].type = t;
				b->n++;
			}
		} else if (sh->sh_type == SHT_RELA && sh->sh_link) {
			/* JUMP_SLOT and GLOB_DAT: what a PLT stub jumps
			 * through. */
			Elf_Scn *ds = elf_getscn(b->elf, sh->sh_link);
			Elf_Data *dd = ds ? elf_getdata(ds, NULL) : NULL;
			GElf_Shdr dsh;

			if (!dd || !gelf_getshdr(ds, &dsh))
				continue;
			for (k = 0; k < n; k++) {
				GElf_Rela r;
				GElf_Sym y;
				void *nn;

				if (!gelf_getrela(d, k, &r) ||
				    (GELF_R_TYPE(r.r_info) != R_X86_64_JUMP_SLOT &&
				     GELF_R_TYPE(r.r_info) != R_X86_64_GLOB_DAT) ||
				    !gelf_getsym(dd, GELF_R_SYM(r.r_info), &y))
					continue;
				nn = realloc(b->got, (b->ngot + 1) * sizeof(*b->got));
				if (!nn)
					goto oom;
				b->got = nn;
				b->got[b->ngot].slot = r.r_offset;
				b->got[b->ngot].name = elf_strptr(b->elf, dsh.sh_link,
								  y.st_name);
				b->ngot++;
			}
		}
	}
	if (!b->s) {
		snprintf(err, errlen, "%s has no symbol table: cannot compare "
			 "its code function by function", path);
		return -1;
	}
	qsort(b->s, b->n, sizeof(*b->s), by_addr);
	return 0;
oom:
	snprintf(err, errlen, "out of memory");
	return -1;
}

static const uint8_t *bytes_at(const struct bin *b, uint64_t addr,
			       uint64_t *avail, size_t *secidx)
{
	size_t i;

	for (i = 1; i < b->nsec; i++) {
		const GElf_Shdr *sh = &b->sh[i];
		Elf_Data *d;

		if (!(sh->sh_flags & SHF_ALLOC) || addr < sh->sh_addr ||
		    addr >= sh->sh_addr + sh->sh_size)
			continue;
		if (secidx)
			*secidx = i;
		if (sh->sh_type == SHT_NOBITS)
			return NULL;
		d = elf_getdata(elf_getscn(b->elf, i), NULL);
		if (!d || !d->d_buf)
			return NULL;
		*avail = sh->sh_addr + sh->sh_size - addr;
		return (const uint8_t *)d->d_buf + (addr - sh->sh_addr);
	}
	return NULL;
}

/* One function decoded, padding left out.  Padding inside a function
 * depends on where its section starts (with -ffunction-sections each
 * function starts its own section), so the same code can carry nops of
 * other lengths, and branches over them other displacements: instructions
 * are compared by meaning, a branch inside the function by the index of
 * the instruction it lands on. */
struct ins {
	uint64_t off;
	ZydisDecodedInstruction in;
	ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
};

static struct ins *decode_all(const uint8_t *code, uint64_t size, size_t *n)
{
	struct ins *v = calloc(size ? size : 1, sizeof(*v));
	ZydisDecoder dec;
	uint64_t off = 0;

	*n = 0;
	if (!v)
		return NULL;
	ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
	while (off < size) {
		struct ins *x = &v[*n];

		if (!ZYAN_SUCCESS(ZydisDecoderDecodeFull(&dec, code + off, size - off,
							 &x->in, x->ops))) {
			free(v);
			return NULL;
		}
		x->off = off;
		off += x->in.length;
		if (x->in.mnemonic != ZYDIS_MNEMONIC_NOP)
			(*n)++;
	}
	return v;
}

/* Index of the first instruction at or after off. */
static size_t index_at(const struct ins *v, size_t n, uint64_t off)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (v[i].off >= off)
			return i;
	return n;
}

/* What address addr of b is, as a string equal across two builds. */
static void name_addr(const struct bin *b, uint64_t addr, char *buf, size_t len)
{
	size_t lo = 0, hi = b->n, sec = 0, i;
	uint64_t avail = 0;
	const uint8_t *p;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (b->s[mid].addr <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* The last symbol at or below addr, then back over same-address
	 * aliases to find one that covers it. */
	for (i = lo; i-- > 0 && i + 8 >= lo;) {
		const struct bsym *s = &b->s[i];

		if (addr == s->addr || addr < s->addr + s->size) {
			const uint8_t *code;
			struct ins *v;
			size_t nv;

			/* Into the middle of a function (a .cold part
			 * jumping back): which instruction, padding left
			 * out. */
			if (s->type == STT_FUNC && addr != s->addr &&
			    (code = bytes_at(b, s->addr, &avail, NULL)) &&
			    avail >= s->size && (v = decode_all(code, s->size, &nv))) {
				snprintf(buf, len, "%s#%zu", s->name,
					 index_at(v, nv, addr - s->addr));
				free(v);
				return;
			}
			snprintf(buf, len, "%s+%llu", s->name,
				 (unsigned long long)(addr - s->addr));
			return;
		}
	}
	p = bytes_at(b, addr, &avail, &sec);
	if (!sec) {
		snprintf(buf, len, "?%s", "unmapped");
		return;
	}
	if (p && strstr(b->shname[sec], "plt")) {
		/* A PLT stub: endbr64? then jmp *slot(%rip). */
		ZydisDecoder dec;
		ZydisDecodedInstruction in;
		ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
		uint64_t at = addr, off = 0;
		int k;

		ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
		for (k = 0; k < 3 && off < avail; k++) {
			if (!ZYAN_SUCCESS(ZydisDecoderDecodeFull(&dec, p + off,
								 avail - off, &in, ops)))
				break;
			if (in.mnemonic == ZYDIS_MNEMONIC_JMP &&
			    ops[0].type == ZYDIS_OPERAND_TYPE_MEMORY &&
			    ops[0].mem.base == ZYDIS_REGISTER_RIP) {
				uint64_t slot = at + off + in.length +
						(uint64_t)ops[0].mem.disp.value;
				size_t g;

				for (g = 0; g < b->ngot; g++)
					if (b->got[g].slot == slot) {
						snprintf(buf, len, "plt:%s", b->got[g].name);
						return;
					}
				break;
			}
			off += in.length;
		}
	}
	/* Data without a symbol (string literals, jump tables, constants)
	 * is named by its section only: a jump table's offsets depend on the
	 * layout, and its bytes can look like a string. */
	snprintf(buf, len, "in:%s", b->shname[sec]);
}

static bool same_operand(const ZydisDecodedOperand *x,
			 const ZydisDecodedOperand *y)
{
	if (x->type != y->type)
		return false;
	/* A branch may be short in one build and near in the other (the
	 * assembler cannot shorten one into another section). */
	if (x->size != y->size &&
	    !(x->type == ZYDIS_OPERAND_TYPE_IMMEDIATE && x->imm.is_relative))
		return false;
	switch (x->type) {
	case ZYDIS_OPERAND_TYPE_REGISTER:
		return x->reg.value == y->reg.value;
	case ZYDIS_OPERAND_TYPE_MEMORY:
		return x->mem.type == y->mem.type && x->mem.base == y->mem.base &&
		       x->mem.index == y->mem.index && x->mem.scale == y->mem.scale &&
		       x->mem.segment == y->mem.segment &&
		       (x->mem.base == ZYDIS_REGISTER_RIP ||
			x->mem.disp.value == y->mem.disp.value);
	case ZYDIS_OPERAND_TYPE_IMMEDIATE:
		return x->imm.is_relative == y->imm.is_relative &&
		       (x->imm.is_relative || x->imm.value.u == y->imm.value.u);
	default:
		return true;
	}
}

/* Compares function f of a with function g of b.  Returns true when the
 * same. */
static bool same_function(const struct bin *a, const struct bsym *f,
			  const struct bin *b, const struct bsym *g)
{
	uint64_t availa = 0, availb = 0;
	const uint8_t *x = bytes_at(a, f->addr, &availa, NULL);
	const uint8_t *y = bytes_at(b, g->addr, &availb, NULL);
	struct ins *va = NULL, *vb = NULL;
	size_t na = 0, nb = 0, i = 0;
	bool same = false;
	const ZyanU32 attrs = ZYDIS_ATTRIB_HAS_LOCK | ZYDIS_ATTRIB_HAS_REP |
			      ZYDIS_ATTRIB_HAS_REPE | ZYDIS_ATTRIB_HAS_REPNE;

	if (!x || !y || availa < f->size || availb < g->size)
		return false;
	va = decode_all(x, f->size, &na);
	vb = decode_all(y, g->size, &nb);
	if (!va || !vb) {
		/* Not all code (data in text): compare raw. */
		same = f->size == g->size && !memcmp(x, y, f->size);
		goto out;
	}
	if (na != nb)
		goto out;
	for (i = 0; i < na; i++) {
		const struct ins *p = &va[i], *q = &vb[i];
		unsigned k;

		if (p->in.mnemonic != q->in.mnemonic ||
		    p->in.operand_count_visible != q->in.operand_count_visible ||
		    p->in.operand_width != q->in.operand_width ||
		    (p->in.attributes & attrs) != (q->in.attributes & attrs))
			goto out;
		for (k = 0; k < p->in.operand_count_visible; k++) {
			uint64_t ta, tb;
			char sa[300], sb[300];

			if (!same_operand(&p->ops[k], &q->ops[k]))
				goto out;
			if (!((p->ops[k].type == ZYDIS_OPERAND_TYPE_MEMORY &&
			       p->ops[k].mem.base == ZYDIS_REGISTER_RIP) ||
			      (p->ops[k].type == ZYDIS_OPERAND_TYPE_IMMEDIATE &&
			       p->ops[k].imm.is_relative)))
				continue;
			if (!ZYAN_SUCCESS(ZydisCalcAbsoluteAddress(&p->in, &p->ops[k],
								   f->addr + p->off, &ta)) ||
			    !ZYAN_SUCCESS(ZydisCalcAbsoluteAddress(&q->in, &q->ops[k],
								   g->addr + q->off, &tb)))
				goto out;
			if (ta >= f->addr && ta < f->addr + f->size) {
				/* Inside the function: the same instruction. */
				if (!(tb >= g->addr && tb < g->addr + g->size) ||
				    index_at(va, na, ta - f->addr) !=
					    index_at(vb, nb, tb - g->addr))
					goto out;
				continue;
			}
			name_addr(a, ta, sa, sizeof(sa));
			name_addr(b, tb, sb, sizeof(sb));
			if (strcmp(sa, sb)) {
				if (getenv("RELIVE_BUILD_DEBUG"))
					fprintf(stderr, "%s+%llu: %s / %s\n", f->name,
						(unsigned long long)p->off, sa, sb);
				goto out;
			}
		}
	}
	same = true;
out:
	if (!same && getenv("RELIVE_BUILD_DEBUG"))
		fprintf(stderr, "%s: %zu/%zu instructions, stopped at %zu\n",
			f->name, na, nb, i);
	free(va);
	free(vb);
	return same;
}

static void number_dups(struct bin *b)
{
	size_t i, k;

	/* Quadratic in the worst case only for names defined many times. */
	for (i = 0; i < b->n; i++)
		for (k = 0; k < i; k++)
			if (b->s[k].type == b->s[i].type &&
			    !strcmp(b->s[k].name, b->s[i].name) &&
			    (b->s[k].file == b->s[i].file ||
			     (b->s[k].file && b->s[i].file &&
			      !strcmp(b->s[k].file, b->s[i].file))))
				b->s[i].dup++;
}

static const struct bsym *match(const struct bin *b, const struct bsym *f)
{
	size_t i;

	for (i = 0; i < b->n; i++) {
		const struct bsym *g = &b->s[i];

		if (g->type == STT_FUNC && g->dup == f->dup &&
		    !strcmp(g->name, f->name) &&
		    (!f->file == !g->file) &&
		    (!f->file || !strcmp(f->file, g->file)))
			return g;
	}
	return NULL;
}

long samecode_compare(const char *running, const char *rebuilt, FILE *report,
		      int maxshow, char *err, size_t errlen)
{
	struct bin a, b;
	long bad = 0;
	size_t i;

	if (bin_open(running, &a, err, errlen)) {
		bin_close(&a);
		return -1;
	}
	if (bin_open(rebuilt, &b, err, errlen)) {
		bin_close(&a);
		bin_close(&b);
		return -1;
	}
	number_dups(&a);
	number_dups(&b);
	for (i = 0; i < a.n; i++) {
		const struct bsym *f = &a.s[i], *g;
		const char *why = NULL;

		if (f->type != STT_FUNC || !f->size)
			continue;
		if (i && a.s[i - 1].addr == f->addr && a.s[i - 1].type == STT_FUNC &&
		    a.s[i - 1].size)
			continue; /* an alias of the previous one */
		g = match(&b, f);
		if (!g)
			why = "missing from the rebuilt binary";
		else if (!same_function(&a, f, &b, g))
			why = "different code";
		if (why) {
			if (report && bad < maxshow)
				fprintf(report, "  %s%s%s: %s\n", f->name,
					f->file ? " in " : "", f->file ? f->file : "",
					why);
			bad++;
		}
	}
	bin_close(&a);
	bin_close(&b);
	return bad;
}
