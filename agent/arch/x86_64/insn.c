/*
 * agent/arch/x86_64/insn.c - prologue relocation for x86-64.
 *
 * A redirected function gets a 5-byte `jmp rel32` at its site (its entry,
 * or entry+4 after endbr64, which stays so indirect-branch tracking still
 * accepts calls).  The whole instructions that jump overwrites are moved to
 * an "original copy" elsewhere, followed by a jump back to the first byte
 * after them; calling the copy runs the unpatched function.  This file
 * decides whether that move is safe and builds the copy.  relive runs it
 * too (relive/sites.c), on the bytes it read from the process, and the
 * agent moves the copy relive built to the address it places it at
 * (relive_arch_rebase_site).
 *
 * Decoding is Zydis only: x86 has too many prefixes and encodings for a
 * hand-written length decoder to be trusted with someone else's running
 * process.  Encoding, on the other hand, is done by hand: the only forms we
 * ever emit are `jmp/call rel32`, `jcc rel32` and the fixed `jrcxz/loop`
 * trampoline below, and patching a disp32 in place, so exact bytes are
 * easier to reason about (and to test) than an encoder's choice of form.
 *
 * Moving an instruction changes its address, so anything that depends on
 * it is rewritten: a RIP-relative memory operand gets a new disp32 that
 * addresses the same absolute address, a relative branch is re-emitted in
 * its rel32 form with the same absolute target (rel8 forms would almost
 * never reach).  `jrcxz`/`loop*` have no rel32 form and become
 *	jrcxz 1f; jmp 2f; 1: jmp target; 2:
 * Every relocated instruction keeps its position in the sequence, so a
 * thread stopped on the boundary of a displaced instruction can be moved to
 * the same boundary in the copy (old_off[]/new_off[]).
 *
 * What we refuse, and why:
 *  - a branch from anywhere in the function (found by a linear Zydis sweep
 *    of the symbol's bytes) into the displaced bytes after their first
 *    byte: it would land in the middle of the new jump.  A branch to the
 *    site itself is fine: it then takes the redirection, like a call.
 *    Only the function's own bytes are swept: a jump from another symbol
 *    (e.g. a `.cold` part) into a prologue is not something compilers do.
 *  - a call that is not the last displaced instruction: a thread inside
 *    the callee has a return address inside the displaced bytes on its
 *    stack, which nobody rewrites; it would return into the new jump.
 *  - syscall/sysenter/int: the controller restarts interrupted system
 *    calls by moving the PC back over the instruction, which must then
 *    still be there; int3 is most likely a debugger's breakpoint, whose
 *    original byte we do not know.
 *  - any other PC-relative instruction (xbegin, ...), and anything whose
 *    rewritten displacement no longer fits in 32 bits.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <Zydis/Zydis.h>

#include "arch.h"

#define JMP_REL32	0xe9
#define CALL_REL32	0xe8

static const uint8_t endbr64[4] = { 0xf3, 0x0f, 0x1e, 0xfa };

/* How a displaced instruction is carried into the copy. */
enum reloc_kind {
	RELOC_VERBATIM,		/* position-independent: copied as is */
	RELOC_RIP_MEM,		/* RIP-relative memory operand: new disp32 */
	RELOC_JMP,		/* jmp rel8/rel32 -> jmp rel32 */
	RELOC_JCC,		/* jcc rel8/rel32 -> jcc rel32 */
	RELOC_CALL,		/* call rel32 -> call rel32 */
	RELOC_LOOP,		/* jrcxz/jecxz/loop* rel8 -> trampoline */
};

struct insn {
	ZydisDecodedInstruction zi;
	ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
	uint64_t addr;		/* where it is in the function */
	const uint8_t *bytes;
	enum reloc_kind kind;
	int rip_op;		/* operand index for RELOC_RIP_MEM */
	uint64_t target;	/* absolute address it refers to, if any */
};

static int __attribute__((format(printf, 3, 4)))
fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static bool fits_rel32(int64_t v)
{
	return v >= INT32_MIN && v <= INT32_MAX;
}

/* rel32 from the end of an instruction at `from` of `len` bytes to `to`. */
static bool rel32_to(uint64_t from, unsigned len, uint64_t to, int32_t *rel)
{
	int64_t d = (int64_t)(to - (from + len));

	if (!fits_rel32(d))
		return false;
	*rel = (int32_t)d;
	return true;
}

static void put_rel32(uint8_t *p, int32_t rel)
{
	memcpy(p, &rel, sizeof(rel));	/* x86 is little-endian */
}

static void decoder_init(ZydisDecoder *dec)
{
	ZydisDecoderInit(dec, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
}

/* Index of the RIP-relative memory operand, or -1. */
static int find_rip_operand(const struct insn *in)
{
	for (int i = 0; i < in->zi.operand_count; i++) {
		const ZydisDecodedOperand *op = &in->ops[i];

		if (op->type == ZYDIS_OPERAND_TYPE_MEMORY &&
		    op->mem.base == ZYDIS_REGISTER_RIP)
			return i;
	}
	return -1;
}

/* Index of the relative immediate (branch target) operand, or -1. */
static int find_rel_imm_operand(const struct insn *in)
{
	for (int i = 0; i < in->zi.operand_count; i++) {
		const ZydisDecodedOperand *op = &in->ops[i];

		if (op->type == ZYDIS_OPERAND_TYPE_IMMEDIATE &&
		    op->imm.is_relative)
			return i;
	}
	return -1;
}

static ZyanStatus decode(const ZydisDecoder *dec, const uint8_t *code,
			 size_t size, size_t off, uint64_t func_addr,
			 struct insn *in)
{
	ZyanStatus st;

	memset(in, 0, sizeof(*in));
	st = ZydisDecoderDecodeFull(dec, code + off, size - off, &in->zi,
				    in->ops);
	in->addr = func_addr + off;
	in->bytes = code + off;
	in->rip_op = -1;
	return st;
}

/*
 * Absolute address an instruction branches to or addresses RIP-relatively.
 * Returns false when it has neither.
 */
static bool insn_target(struct insn *in, bool *is_branch)
{
	ZyanU64 abs;
	int i;

	i = find_rel_imm_operand(in);
	*is_branch = i >= 0;
	if (i < 0)
		i = find_rip_operand(in);
	if (i < 0)
		return false;
	if (!ZYAN_SUCCESS(ZydisCalcAbsoluteAddress(&in->zi, &in->ops[i],
						   in->addr, &abs)))
		return false;
	in->target = abs;
	return true;
}

/* Decides how a displaced instruction moves, or refuses it. */
static int classify(struct insn *in, uint64_t func_addr, char *err,
		    size_t errlen)
{
	const ZydisDecodedInstruction *zi = &in->zi;
	unsigned off = (unsigned)(in->addr - func_addr);
	bool is_branch = false;

	switch (zi->mnemonic) {
	case ZYDIS_MNEMONIC_SYSCALL:
	case ZYDIS_MNEMONIC_SYSENTER:
	case ZYDIS_MNEMONIC_INT:
		return fail(err, errlen,
			    "a system call at offset 0x%x is among the displaced instructions; it cannot be moved",
			    off);
	case ZYDIS_MNEMONIC_INT3:
		return fail(err, errlen,
			    "an int3 at offset 0x%x (a debugger breakpoint?) is among the displaced instructions",
			    off);
	default:
		break;
	}

	in->kind = RELOC_VERBATIM;
	if (!insn_target(in, &is_branch)) {
		if (zi->attributes & ZYDIS_ATTRIB_IS_RELATIVE)
			return fail(err, errlen,
				    "cannot compute the target of the PC-relative instruction at offset 0x%x",
				    off);
		return 0;
	}

	if (!is_branch) {
		in->rip_op = find_rip_operand(in);
		if (zi->raw.disp.size != 32)
			return fail(err, errlen,
				    "the RIP-relative instruction at offset 0x%x has a %u-bit displacement",
				    off, zi->raw.disp.size);
		in->kind = RELOC_RIP_MEM;
		return 0;
	}

	if (zi->attributes & ZYDIS_ATTRIB_HAS_OPERANDSIZE)
		return fail(err, errlen,
			    "the branch at offset 0x%x has an operand-size prefix; it cannot be relocated",
			    off);

	if (zi->opcode_map == ZYDIS_OPCODE_MAP_DEFAULT) {
		if (zi->opcode == 0xeb || zi->opcode == 0xe9)
			in->kind = RELOC_JMP;
		else if (zi->opcode == 0xe8)
			in->kind = RELOC_CALL;
		else if (zi->opcode >= 0x70 && zi->opcode <= 0x7f)
			in->kind = RELOC_JCC;
		else if (zi->opcode >= 0xe0 && zi->opcode <= 0xe3)
			in->kind = RELOC_LOOP;
	} else if (zi->opcode_map == ZYDIS_OPCODE_MAP_0F &&
		   zi->opcode >= 0x80 && zi->opcode <= 0x8f) {
		in->kind = RELOC_JCC;
	}
	if (in->kind == RELOC_VERBATIM)
		return fail(err, errlen,
			    "the PC-relative instruction at offset 0x%x (%s) cannot be relocated",
			    off, ZydisMnemonicGetString(zi->mnemonic));
	return 0;
}

/* Worst-case size of the relocated form. */
static unsigned reloc_len(const struct insn *in)
{
	switch (in->kind) {
	case RELOC_JMP:
	case RELOC_CALL:
		return 5;
	case RELOC_JCC:
		return 6;
	case RELOC_LOOP:
		/* prefixes + opcode + rel8, then jmp +5 and jmp rel32 */
		return in->zi.length + 2 + 5;
	default:
		return in->zi.length;
	}
}

/* Notes a displacement at copy[at] (struct relive_site, fix[]).  More
 * than fit (they cannot: at most RELIVE_ARCH_MAX_INSNS displaced
 * instructions and TAIL_MAX bytes of tail, each with one) leaves the site
 * one that cannot be moved. */
static void add_fix(struct relive_site *site, unsigned at)
{
	if (site->n_fix < RELIVE_ARCH_MAX_FIX)
		site->fix[site->n_fix] = (uint8_t)at;
	if (site->n_fix <= RELIVE_ARCH_MAX_FIX)
		site->n_fix++;
}

/*
 * Writes the relocated form of `in` at out, which will execute at `at`.
 * Returns its length, or -1 if something no longer reaches; *fix is where
 * its 32-bit displacement starts in out, or -1 when it has none.  Each
 * form has one length, whatever `at` is.
 */
static int relocate(const struct insn *in, uint64_t func_addr, uint64_t at,
		    uint8_t *out, int *fix, char *err, size_t errlen)
{
	const ZydisDecodedInstruction *zi = &in->zi;
	unsigned off = (unsigned)(in->addr - func_addr);
	unsigned len = zi->length;
	int32_t rel;

	*fix = -1;
	switch (in->kind) {
	case RELOC_VERBATIM:
		memcpy(out, in->bytes, len);
		return (int)len;
	case RELOC_RIP_MEM:
		memcpy(out, in->bytes, len);
		if (!rel32_to(at, len, in->target, &rel))
			goto out_of_range;
		put_rel32(out + zi->raw.disp.offset, rel);
		*fix = zi->raw.disp.offset;
		return (int)len;
	case RELOC_JMP:
	case RELOC_CALL:
		out[0] = in->kind == RELOC_JMP ? JMP_REL32 : CALL_REL32;
		if (!rel32_to(at, 5, in->target, &rel))
			goto out_of_range;
		put_rel32(out + 1, rel);
		*fix = 1;
		return 5;
	case RELOC_JCC:
		out[0] = 0x0f;
		out[1] = 0x80 | (zi->opcode & 0x0f);
		if (!rel32_to(at, 6, in->target, &rel))
			goto out_of_range;
		put_rel32(out + 2, rel);
		*fix = 2;
		return 6;
	case RELOC_LOOP:
		/* Keep the prefixes: 0x67 selects %ecx over %rcx. */
		len = zi->raw.imm[0].offset;
		memcpy(out, in->bytes, len);
		out[len++] = 2;			/* taken: to the jmp rel32 */
		out[len++] = 0xeb;		/* not taken: over it */
		out[len++] = 5;
		out[len] = JMP_REL32;
		if (!rel32_to(at + len, 5, in->target, &rel))
			goto out_of_range;
		put_rel32(out + len + 1, rel);
		*fix = (int)len + 1;
		return (int)len + 5;
	}
	return fail(err, errlen, "internal error: unknown relocation");

out_of_range:
	return fail(err, errlen,
		    "the instruction at offset 0x%x refers to 0x%llx, out of 32-bit reach of the copy at 0x%llx",
		    off, (unsigned long long)in->target,
		    (unsigned long long)at);
}

/*
 * Sweeps the whole function for a branch (or a RIP-relative address, as
 * taken by a computed goto) into the displaced bytes after their first.
 * Stops quietly at the first bytes Zydis cannot decode: that is padding or
 * data, and whatever follows cannot be reliably decoded anyway.
 */
static int check_branches_in(const ZydisDecoder *dec, const uint8_t *code,
			     size_t size, uint64_t func_addr,
			     uint64_t site_addr, unsigned displaced,
			     char *err, size_t errlen)
{
	struct insn in;
	size_t off = 0;
	bool is_branch;

	memset(&in, 0, sizeof(in));
	while (off < size) {
		ZydisDecoderContext ctx;

		/* The instruction alone first: its operands are decoded only
		 * when one of them is relative (a branch's, or RIP-relative
		 * memory: Zydis's IS_RELATIVE), the only ones looked at.
		 * Most instructions of a function have none. */
		if (!ZYAN_SUCCESS(ZydisDecoderDecodeInstruction(
			    dec, &ctx, code + off, size - off, &in.zi)))
			break;
		if (!(in.zi.attributes & ZYDIS_ATTRIB_IS_RELATIVE)) {
			off += in.zi.length;
			continue;
		}
		if (!ZYAN_SUCCESS(ZydisDecoderDecodeOperands(
			    dec, &ctx, &in.zi, in.ops, ZYDIS_MAX_OPERAND_COUNT)))
			break;
		in.addr = func_addr + off;
		in.bytes = code + off;
		in.rip_op = -1;
		if (insn_target(&in, &is_branch) && in.target > site_addr &&
		    in.target < site_addr + displaced)
			return fail(err, errlen,
				    "%s at offset 0x%zx %s inside the first %u bytes; the function cannot be redirected safely",
				    is_branch ? "a jump" : "an address taken",
				    off, is_branch ? "lands" : "points",
				    displaced);
		off += in.zi.length;
	}
	return 0;
}

/*
 * The rest of a small function, copied after its displaced instructions so
 * that the copy returns by itself instead of jumping back into the
 * original: a thread that has not switched yet then takes one jump less
 * per call (the unswitched path of a transition: entry, stub, copy).
 * Only straight-line code is taken: from off up to and including the
 * first `ret`, within TAIL_MAX bytes, every instruction either moved as it
 * is or with its RIP-relative operand rewritten; any branch, call, system
 * call or undecodable byte before the `ret` and nothing is taken.  The
 * original instructions stay where they are, so a branch from elsewhere in
 * the function into them still lands on the original.  Writes at most
 * room bytes at site->copy + base (which will execute at `at`); returns
 * their number, or 0 when the function is not that small (site->fix[] as
 * it was).
 */
#define TAIL_MAX 48

static unsigned copy_tail(const ZydisDecoder *dec, const uint8_t *code,
			  size_t size, uint64_t func_addr, size_t off,
			  uint64_t at, struct relive_site *site,
			  unsigned base, unsigned room)
{
	uint8_t *out = site->copy + base;
	unsigned n_fix = site->n_fix;
	char scratch[160];
	unsigned len = 0;
	struct insn in;
	int fix;

	if (room > TAIL_MAX)
		room = TAIL_MAX;
	while (off < size) {
		int r;

		if (!ZYAN_SUCCESS(decode(dec, code, size, off, func_addr, &in)))
			break;
		if (in.zi.meta.category == ZYDIS_CATEGORY_CALL ||
		    in.zi.meta.category == ZYDIS_CATEGORY_COND_BR ||
		    in.zi.meta.category == ZYDIS_CATEGORY_UNCOND_BR ||
		    in.zi.meta.category == ZYDIS_CATEGORY_SYSTEM ||
		    in.zi.meta.category == ZYDIS_CATEGORY_INTERRUPT ||
		    in.zi.mnemonic == ZYDIS_MNEMONIC_SYSCALL ||
		    in.zi.mnemonic == ZYDIS_MNEMONIC_UD2 ||
		    in.zi.mnemonic == ZYDIS_MNEMONIC_HLT)
			break;
		if (classify(&in, func_addr, scratch, sizeof(scratch)) ||
		    (in.kind != RELOC_VERBATIM && in.kind != RELOC_RIP_MEM))
			break;
		if (len + in.zi.length > room)
			break;
		r = relocate(&in, func_addr, at + len, out + len, &fix, scratch,
			     sizeof(scratch));
		if (r < 0)
			break;
		if (fix >= 0)
			add_fix(site, base + len + (unsigned)fix);
		len += (unsigned)r;
		if (in.zi.meta.category == ZYDIS_CATEGORY_RET)
			return len;
		off += in.zi.length;
	}
	site->n_fix = n_fix;
	return 0;
}

int relive_arch_prepare_site(const uint8_t *code, size_t size,
			     uint64_t func_addr, uint64_t copy_addr,
			     struct relive_site *site, char *err, size_t errlen)
{
	struct insn insns[RELIVE_ARCH_MAX_INSNS];
	uint8_t back[RELIVE_ARCH_JUMP_LEN];
	ZydisDecoder dec;
	ZyanStatus st;
	size_t site_off = 0, off;
	unsigned n = 0, i, len;
	int r, fix;

	memset(site, 0, sizeof(*site));
	site->func_addr = func_addr;
	site->copy_addr = copy_addr;
	decoder_init(&dec);

	if (size >= sizeof(endbr64) && !memcmp(code, endbr64, sizeof(endbr64)))
		site_off = sizeof(endbr64);
	site->site_addr = func_addr + site_off;

	if (size < site_off + RELIVE_ARCH_JUMP_LEN)
		return fail(err, errlen,
			    "function is %zu byte%s%s, shorter than the %d-byte jump",
			    size - site_off, size - site_off == 1 ? "" : "s",
			    site_off ? " after endbr64" : "",
			    RELIVE_ARCH_JUMP_LEN);

	/* The displaced instructions: whole ones, covering the jump. */
	for (off = site_off; off < site_off + RELIVE_ARCH_JUMP_LEN;
	     off += insns[n++].zi.length) {
		if (n == RELIVE_ARCH_MAX_INSNS)
			return fail(err, errlen,
				    "more than %d instructions in the first %d bytes",
				    RELIVE_ARCH_MAX_INSNS, RELIVE_ARCH_JUMP_LEN);
		st = decode(&dec, code, size, off, func_addr, &insns[n]);
		if (st == ZYDIS_STATUS_NO_MORE_DATA)
			return fail(err, errlen,
				    "the instruction at offset 0x%zx runs past the end of the function (%zu bytes)",
				    off, size);
		if (!ZYAN_SUCCESS(st))
			return fail(err, errlen,
				    "cannot decode the instruction at offset 0x%zx",
				    off);
		if (classify(&insns[n], func_addr, err, errlen))
			return -1;
	}
	site->displaced = (unsigned)(off - site_off);
	site->n_insns = n;
	if (site->displaced > RELIVE_ARCH_MAX_DISPLACED)
		return fail(err, errlen, "%u bytes to displace, more than %d",
			    site->displaced, RELIVE_ARCH_MAX_DISPLACED);
	memcpy(site->saved, code + site_off, site->displaced);

	for (i = 0; i + 1 < n; i++)
		if (insns[i].zi.meta.category == ZYDIS_CATEGORY_CALL)
			return fail(err, errlen,
				    "the call at offset 0x%llx would return into the middle of the jump",
				    (unsigned long long)(insns[i].addr - func_addr));

	if (check_branches_in(&dec, code, size, func_addr, site->site_addr,
			      site->displaced, err, errlen))
		return -1;

	/* The copy: relocated instructions, then the jump back. */
	len = 0;
	for (i = 0; i < n; i++) {
		if (len + reloc_len(&insns[i]) + RELIVE_ARCH_JUMP_LEN >
		    RELIVE_ARCH_MAX_COPY)
			return fail(err, errlen,
				    "the relocated instructions exceed %d bytes",
				    RELIVE_ARCH_MAX_COPY);
		site->old_off[i] = (uint8_t)(insns[i].addr - site->site_addr);
		site->new_off[i] = (uint8_t)len;
		r = relocate(&insns[i], func_addr, copy_addr + len,
			     site->copy + len, &fix, err, errlen);
		if (r < 0)
			return -1;
		if (fix >= 0)
			add_fix(site, len + (unsigned)fix);
		len += (unsigned)r;
	}
	/* The jump back, which also proves the copy within reach of the
	 * function, whether or not it ends up in the copy. */
	if (relive_arch_encode_jump(copy_addr + len,
				    site->site_addr + site->displaced, back))
		return fail(err, errlen,
			    "the copy at 0x%llx is out of 32-bit reach of the function at 0x%llx",
			    (unsigned long long)copy_addr,
			    (unsigned long long)func_addr);
	/* A small function whose displaced instructions all run on to the
	 * next: its copy returns by itself (copy_tail). */
	for (i = 0; i < n; i++)
		if ((insns[i].kind != RELOC_VERBATIM &&
		     insns[i].kind != RELOC_RIP_MEM) ||
		    insns[i].zi.meta.category == ZYDIS_CATEGORY_RET)
			break;
	if (i == n) {
		unsigned t = copy_tail(&dec, code, size, func_addr,
				       site_off + site->displaced,
				       copy_addr + len, site, len,
				       RELIVE_ARCH_MAX_COPY - len);

		if (t) {
			site->copy_len = len + t;
			return 0;
		}
	}
	memcpy(site->copy + len, back, RELIVE_ARCH_JUMP_LEN);
	add_fix(site, len + 1);
	site->copy_len = len + RELIVE_ARCH_JUMP_LEN;
	return 0;
}

int relive_arch_rebase_site(struct relive_site *site, uint64_t func_addr,
			    uint64_t copy_addr)
{
	/* Every displacement addresses something that moves with the
	 * function (its object), from a place in the copy. */
	int64_t d = (int64_t)(func_addr - site->func_addr) -
		    (int64_t)(copy_addr - site->copy_addr);
	int32_t rel[RELIVE_ARCH_MAX_FIX];
	unsigned i;

	if (site->n_fix > RELIVE_ARCH_MAX_FIX)
		return -1;
	for (i = 0; i < site->n_fix; i++) {
		int32_t v;

		if (site->fix[i] + sizeof(v) > site->copy_len)
			return -1;
		memcpy(&v, site->copy + site->fix[i], sizeof(v));
		if (!fits_rel32((int64_t)v + d))
			return -1;
		rel[i] = (int32_t)((int64_t)v + d);
	}
	for (i = 0; i < site->n_fix; i++)
		put_rel32(site->copy + site->fix[i], rel[i]);
	site->site_addr = site->site_addr - site->func_addr + func_addr;
	site->func_addr = func_addr;
	site->copy_addr = copy_addr;
	return 0;
}

/* A 5-byte opcode + rel32 instruction at `from` leading to `to`. */
static int encode_rel32(uint8_t opcode, uint64_t from, uint64_t to,
			uint8_t out[5])
{
	int32_t rel;

	if (!rel32_to(from, 5, to, &rel))
		return -1;
	out[0] = opcode;
	put_rel32(out + 1, rel);
	return 0;
}

int relive_arch_encode_jump(uint64_t from, uint64_t to,
			    uint8_t out[RELIVE_ARCH_JUMP_LEN])
{
	return encode_rel32(JMP_REL32, from, to, out);
}

int relive_arch_encode_call(uint64_t from, uint64_t to,
			    uint8_t out[RELIVE_ARCH_CALL_LEN])
{
	return encode_rel32(CALL_REL32, from, to, out);
}

size_t relive_arch_find_calls(const uint8_t *code, size_t size,
			      uint64_t func_addr, const uint64_t *cand,
			      size_t n, bool *is_call)
{
	ZydisDecoder dec;
	struct insn in;
	size_t off = 0, i = 0, found = 0;

	memset(is_call, 0, n * sizeof(*is_call));
	decoder_init(&dec);
	while (i < n && off < size) {
		uint64_t at = func_addr + off;

		while (i < n && cand[i] < at)
			i++; /* not an instruction boundary */
		if (i == n ||
		    !ZYAN_SUCCESS(decode(&dec, code, size, off, func_addr, &in)))
			break;
		if (cand[i] == at && in.zi.length == RELIVE_ARCH_CALL_LEN &&
		    in.bytes[0] == CALL_REL32 &&
		    in.zi.mnemonic == ZYDIS_MNEMONIC_CALL) {
			is_call[i++] = true;
			found++;
		}
		off += in.zi.length;
	}
	return found;
}

uint64_t relive_arch_landing(const struct relive_site *site)
{
	int32_t rel;

	if (site->displaced < RELIVE_ARCH_JUMP_LEN)
		return 0;
	memcpy(&rel, site->saved + 1, sizeof(rel));
	return site->site_addr + RELIVE_ARCH_JUMP_LEN + (int64_t)rel;
}

int relive_arch_site_pc_to_copy(const struct relive_site *site, uint64_t pc,
				uint64_t *out)
{
	if (pc <= site->site_addr || pc >= site->site_addr + site->displaced)
		return -1;
	for (unsigned i = 1; i < site->n_insns; i++) {
		if (site->site_addr + site->old_off[i] == pc) {
			*out = site->copy_addr + site->new_off[i];
			return 0;
		}
	}
	return -1;
}
