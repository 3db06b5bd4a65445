/*
 * builder/regs.c - which call-clobbered registers a function writes, and
 * whether a caller reads one after a call: the facts behind GCC's IPA-RA.
 *
 * With IPA-RA (on at -O2), GCC compiles a caller knowing which registers a
 * callee of the same file really writes, and may keep a value in another
 * call-clobbered register across the call.  A new version of the callee
 * that writes a register the old one did not would destroy that value.
 * relive-build replaces such a caller too, but only when it has to: when
 * the new version writes registers the old one (with everything it calls)
 * did not, and the caller reads one of those after the call before writing
 * it, on some path.
 *
 * Registers are the System V call-clobbered ones: rax, rcx, rdx, rsi, rdi,
 * r8-r11 and xmm0-15; anything else a function writes (x87, AVX-512 upper
 * registers) is one more bit that is never assumed preserved.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <Zydis/Zydis.h>

#include "dobj.h"

#define XMM0 9
#define OTHER 25

static int reg_bit(ZydisRegister r)
{
	ZydisRegisterClass c = ZydisRegisterGetClass(r);

	switch (c) {
	case ZYDIS_REGCLASS_GPR8:
	case ZYDIS_REGCLASS_GPR16:
	case ZYDIS_REGCLASS_GPR32:
	case ZYDIS_REGCLASS_GPR64:
		switch (ZydisRegisterGetLargestEnclosing(ZYDIS_MACHINE_MODE_LONG_64, r)) {
		case ZYDIS_REGISTER_RAX: return 0;
		case ZYDIS_REGISTER_RCX: return 1;
		case ZYDIS_REGISTER_RDX: return 2;
		case ZYDIS_REGISTER_RSI: return 3;
		case ZYDIS_REGISTER_RDI: return 4;
		case ZYDIS_REGISTER_R8: return 5;
		case ZYDIS_REGISTER_R9: return 6;
		case ZYDIS_REGISTER_R10: return 7;
		case ZYDIS_REGISTER_R11: return 8;
		default: return -1; /* callee-saved, rsp */
		}
	case ZYDIS_REGCLASS_XMM:
	case ZYDIS_REGCLASS_YMM:
	case ZYDIS_REGCLASS_ZMM: {
		ZyanI8 id = ZydisRegisterGetId(r);

		return id >= 0 && id < 16 ? XMM0 + id : OTHER;
	}
	case ZYDIS_REGCLASS_X87:
	case ZYDIS_REGCLASS_MMX:
	case ZYDIS_REGCLASS_MASK:
		return OTHER;
	default:
		return -1; /* flags, rip, segments: not kept across calls */
	}
}

static bool full_write(const ZydisDecodedOperand *op)
{
	ZydisRegisterClass c = ZydisRegisterGetClass(op->reg.value);

	/* A 32- or 64-bit GPR write replaces the whole register; 8- and
	 * 16-bit ones merge, and vector writes may merge (legacy SSE
	 * scalars): never counted as replacing. */
	return (op->actions & ZYDIS_OPERAND_ACTION_WRITE) &&
	       !(op->actions & ZYDIS_OPERAND_ACTION_CONDWRITE) &&
	       (c == ZYDIS_REGCLASS_GPR32 || c == ZYDIS_REGCLASS_GPR64);
}

static void uses(const ZydisDecodedInstruction *in,
		 const ZydisDecodedOperand *ops, regset *read, regset *written,
		 regset *killed)
{
	unsigned k;

	*read = *written = *killed = 0;
	for (k = 0; k < in->operand_count; k++) {
		const ZydisDecodedOperand *op = &ops[k];
		int b;

		if (op->type == ZYDIS_OPERAND_TYPE_MEMORY) {
			if ((b = reg_bit(op->mem.base)) >= 0)
				*read |= 1u << b;
			if ((b = reg_bit(op->mem.index)) >= 0)
				*read |= 1u << b;
			continue;
		}
		if (op->type != ZYDIS_OPERAND_TYPE_REGISTER ||
		    (b = reg_bit(op->reg.value)) < 0)
			continue;
		if (op->actions & ZYDIS_OPERAND_ACTION_MASK_READ)
			*read |= 1u << b;
		if (op->actions & ZYDIS_OPERAND_ACTION_MASK_WRITE) {
			*written |= 1u << b;
			if (full_write(op))
				*killed |= 1u << b;
			else
				*read |= 1u << b; /* a merge reads the rest */
		}
	}
}

regset regs_written(const uint8_t *code, size_t size, unsigned *calls)
{
	ZydisDecoder dec;
	regset all = 0;
	size_t off = 0;

	*calls = 0;
	ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
	while (off < size) {
		ZydisDecodedInstruction in;
		ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
		regset r, w, kl;

		if (!ZYAN_SUCCESS(ZydisDecoderDecodeFull(&dec, code + off, size - off,
							 &in, ops)))
			return REGS_ALL;
		if (in.mnemonic == ZYDIS_MNEMONIC_CALL)
			(*calls)++;
		uses(&in, ops, &r, &w, &kl);
		all |= w;
		off += in.length;
	}
	return all;
}

/* Registers a callee reads from its caller: arguments (rax: the number of
 * vector arguments of a variadic call). */
#define REGS_ARGS (0x7fu | (0xffu << XMM0))
/* What a function returns in. */
#define REGS_RET ((1u << 0) | (1u << 2) | (3u << XMM0))

bool regs_read_after(const uint8_t *code, size_t size, size_t from,
		     regset set)
{
	ZydisDecoder dec;
	size_t cap = (size + 1) * 4;
	regset *pending = calloc(size + 1, sizeof(*pending));
	size_t *work = calloc(cap, sizeof(*work)), nwork = 0;
	bool reads = false;

	if (!pending || !work) {
		free(pending);
		free(work);
		return true;
	}
	ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
	pending[from] = set;
	work[nwork++] = from;
	while (nwork && !reads) {
		size_t off = work[--nwork];
		regset live = pending[off];

		while (off < size && !reads) {
			ZydisDecodedInstruction in;
			ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
			regset r, w, kl;
			uint64_t target;
			size_t next;

			if (!live)
				break;
			if (!ZYAN_SUCCESS(ZydisDecoderDecodeFull(&dec, code + off,
								 size - off, &in, ops))) {
				reads = true;
				break;
			}
			uses(&in, ops, &r, &w, &kl);
			if (r & live) {
				reads = true;
				break;
			}
			live &= ~kl;
			next = off + in.length;
			if (in.mnemonic == ZYDIS_MNEMONIC_RET) {
				reads = (live & REGS_RET) != 0;
				break;
			}
			if (in.mnemonic == ZYDIS_MNEMONIC_CALL) {
				/* A call reads the arguments; what it clobbers
				 * is not assumed here (kept live: more
				 * callers replaced, never fewer). */
				if (live & REGS_ARGS) {
					reads = true;
					break;
				}
			}
			if (in.meta.branch_type != ZYDIS_BRANCH_TYPE_NONE &&
			    in.mnemonic != ZYDIS_MNEMONIC_CALL) {
				bool inside = ops[0].type == ZYDIS_OPERAND_TYPE_IMMEDIATE &&
					      ZYAN_SUCCESS(ZydisCalcAbsoluteAddress(
						      &in, &ops[0], off, &target)) &&
					      target < size;

				if (!inside) {
					/* Out of the function (a tail call, a
					 * .cold part, a jump table): assume
					 * it reads what is live. */
					reads = true;
					break;
				}
				if ((pending[target] | live) != pending[target]) {
					if (nwork == cap) {
						reads = true;
						break;
					}
					pending[target] |= live;
					work[nwork++] = (size_t)target;
				}
				if (in.mnemonic == ZYDIS_MNEMONIC_JMP)
					break;
			}
			off = next;
			if ((pending[off] | live) == pending[off] && pending[off])
				break; /* already explored with this much */
			pending[off] |= live;
		}
	}
	free(pending);
	free(work);
	return reads;
}

/* ---- the callers that rely on a changed function's registers ---------- */

struct fn {
	const uint8_t *code;
	uint64_t size;
	const struct dsec *s;
	uint64_t start;
};

static bool fn_of(const struct dobj *o, long i, struct fn *f)
{
	const struct dsym *y;

	if (i < 0 || !dobj_is_defined(o, (size_t)i) || o->syms[i].type != STT_FUNC)
		return false;
	y = &o->syms[i];
	f->s = &o->secs[y->sym.st_shndx];
	if (!f->s->bytes || y->sym.st_value + y->sym.st_size > f->s->sh.sh_size)
		return false;
	f->start = y->sym.st_value;
	f->size = y->sym.st_size;
	f->code = f->s->bytes + f->start;
	return true;
}

static long cold_of(const struct dobj *o, const char *name)
{
	char buf[512];

	snprintf(buf, sizeof(buf), "%s.cold", name);
	return dobj_find(o, buf);
}

/* The registers function i of o writes, with everything it calls (GCC's
 * view of it under IPA-RA).  memo: per symbol, 0 unknown, else set|1<<31;
 * busy marks recursion. */
static regset clobbers(const struct dobj *o, long i, regset *memo, bool *busy,
		       bool transitive)
{
	struct fn f;
	regset set;
	unsigned calls, relcalls = 0;
	size_t k;
	long c;

	if (!fn_of(o, i, &f))
		return REGS_ALL;
	if (memo[i])
		return memo[i] & ~REGS_KNOWN;
	if (busy[i])
		return REGS_ALL;
	busy[i] = true;
	set = regs_written(f.code, f.size, &calls);
	for (k = 0; k < f.s->nrels && set != REGS_ALL; k++) {
		const struct drel *r = &f.s->rels[k];
		long named;
		int64_t off;

		if (r->offset < f.start + 1 || r->offset >= f.start + f.size ||
		    f.s->bytes[r->offset - 1] != 0xe8)
			continue;
		relcalls++;
		if (!transitive) {
			set = REGS_ALL;
			break;
		}
		dobj_rel_target(o, r, &named, &off);
		set |= named >= 0 ? clobbers(o, named, memo, busy, transitive)
				  : REGS_ALL;
	}
	if (calls > relcalls)
		set = REGS_ALL; /* through a pointer */
	c = cold_of(o, o->syms[i].name);
	if (c >= 0 && c != i)
		set |= clobbers(o, c, memo, busy, transitive);
	busy[i] = false;
	memo[i] = set | REGS_KNOWN;
	return set;
}

static struct dentry *by_old(struct ddiff *d, const char *name)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		if (d->e[i].oldname && d->e[i].type == STT_FUNC &&
		    !strcmp(d->e[i].oldname, name))
			return &d->e[i];
	return NULL;
}

static long in_large(const struct dobj *large, const char *name)
{
	long li = dobj_find(large, name);

	if (li < 0) {
		char *n = dobj_normalize(name);

		li = n ? dobj_find_norm(large, n, STT_FUNC) : -1;
		free(n);
	}
	return li;
}

/* Whether caller c of orig may keep a value in a register of x across one
 * of its calls to callee. */
static bool relies(const struct dobj *orig, long c, long callee, regset x)
{
	struct fn f;
	size_t k;

	if (!fn_of(orig, c, &f))
		return true;
	for (k = 0; k < f.s->nrels; k++) {
		const struct drel *r = &f.s->rels[k];
		long named;
		int64_t off;
		uint8_t op;

		if (r->offset < f.start + 1 || r->offset >= f.start + f.size)
			continue;
		dobj_rel_target(orig, r, &named, &off);
		if (named != callee)
			continue;
		op = f.s->bytes[r->offset - 1];
		if (op == 0xe9)
			return true; /* a tail call: its own callers see x */
		if (op != 0xe8)
			continue;    /* the address taken: not a call */
		if (regs_read_after(f.code, f.size, r->offset + 4 - f.start, x))
			return true;
	}
	return false;
}

int ipa_ra_callers(const struct dobj *orig, const struct dobj *large,
		   struct ddiff *d, FILE *report)
{
	regset *memo = calloc(orig->nsyms ? orig->nsyms : 1, sizeof(*memo));
	regset *lmemo = calloc(large->nsyms ? large->nsyms : 1, sizeof(*lmemo));
	bool *busy = calloc(orig->nsyms ? orig->nsyms : 1, sizeof(*busy));
	bool *lbusy = calloc(large->nsyms ? large->nsyms : 1, sizeof(*lbusy));
	bool more = true;
	int rc = -1;

	if (!memo || !lmemo || !busy || !lbusy)
		goto out;
	while (more) {
		size_t i;

		more = false;
		for (i = 0; i < d->n; i++) {
			struct dentry *e = &d->e[i];
			long oi, li;
			regset x;
			size_t c;

			if (e->status != D_CHANGED || e->type != STT_FUNC ||
			    e->cold || !e->oldname ||
			    (oi = dobj_find(orig, e->oldname)) < 0)
				continue;
			li = in_large(large, e->name);
			/* The new version, compiled with -fno-ipa-ra: any
			 * call may clobber everything. */
			x = (li < 0 ? REGS_ALL
				    : clobbers(large, li, lmemo, lbusy, false)) &
			    ~clobbers(orig, oi, memo, busy, true);
			if (!x)
				continue;
			for (c = 1; c < orig->nsyms; c++) {
				struct dentry *ce;
				const char *cname = orig->syms[c].name;
				char parent[512];
				const char *cold;

				if (!dobj_is_defined(orig, c) ||
				    orig->syms[c].type != STT_FUNC || (long)c == oi)
					continue;
				/* A .cold part's call is its parent's. */
				cold = strstr(cname, ".cold");
				snprintf(parent, sizeof(parent), "%.*s",
					 cold ? (int)(cold - cname) : (int)strlen(cname),
					 cname);
				ce = by_old(d, parent);
				if (!ce || (ce->status != D_SAME && ce->status != D_LINES) ||
				    !relies(orig, (long)c, oi, x))
					continue;
				ce->status = D_CHANGED;
				ce->why = "keeps a value in a register across a call "
					  "to a changed function that the new version "
					  "writes (IPA-RA)";
				if (report)
					fprintf(report, "  changed   function %s: %s "
						"(%s)\n", ce->name, ce->why, e->oldname);
				more = true;
			}
		}
	}
	rc = 0;
out:
	free(memo);
	free(lmemo);
	free(busy);
	free(lbusy);
	return rc;
}
