/*
 * tests/unit/test_insn.c - prologue relocation (agent/arch/x86_64/insn.c),
 * and small functions copied whole.
 *
 * Most tests feed hand-assembled byte sequences at made-up addresses and
 * check the copy by decoding it again with Zydis: a relocated operand must
 * address the same absolute address from the copy's address.  The last
 * tests relocate real functions of this program into memory mapped near
 * them and call the copies, which proves the whole path end to end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>
#include <Zydis/Zydis.h>

#include "arch.h"

#define FUNC 0x401000ULL
#define COPY 0x7f0000ULL

static struct relive_site site;
static char err[256];

static int prepare(const uint8_t *code, size_t size, uint64_t func,
		   uint64_t copy)
{
	err[0] = '\0';
	return relive_arch_prepare_site(code, size, func, copy, &site, err,
					sizeof(err));
}

static void decode_copy(unsigned off, ZydisDecodedInstruction *zi,
			ZydisDecodedOperand *ops)
{
	ZydisDecoder dec;

	assert_true(off < site.copy_len);
	ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_64,
			 ZYDIS_STACK_WIDTH_64);
	assert_true(ZYAN_SUCCESS(ZydisDecoderDecodeFull(&dec, site.copy + off,
							site.copy_len - off,
							zi, ops)));
}

/*
 * Absolute address referred to (branch target or RIP-relative operand) by
 * the instruction at copy offset off, computed at its address in the copy.
 */
static uint64_t copy_target(unsigned off)
{
	ZydisDecodedInstruction zi;
	ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
	ZyanU64 abs;

	decode_copy(off, &zi, ops);
	for (int i = 0; i < zi.operand_count; i++) {
		if ((ops[i].type == ZYDIS_OPERAND_TYPE_IMMEDIATE &&
		     ops[i].imm.is_relative) ||
		    (ops[i].type == ZYDIS_OPERAND_TYPE_MEMORY &&
		     ops[i].mem.base == ZYDIS_REGISTER_RIP)) {
			assert_true(ZYAN_SUCCESS(ZydisCalcAbsoluteAddress(
				&zi, &ops[i], site.copy_addr + off, &abs)));
			return abs;
		}
	}
	fail_msg("no relative operand at copy offset %u", off);
	return 0;
}

static ZydisMnemonic copy_mnemonic(unsigned off, unsigned *len)
{
	ZydisDecodedInstruction zi;
	ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];

	decode_copy(off, &zi, ops);
	if (len)
		*len = zi.length;
	return zi.mnemonic;
}

/* The copy ends with a jmp rel32 back to the first byte after the site. */
static void assert_jump_back(void)
{
	unsigned off = site.copy_len - RELIVE_ARCH_JUMP_LEN, len;

	assert_int_equal(site.copy[off], 0xe9);
	assert_int_equal(copy_mnemonic(off, &len), ZYDIS_MNEMONIC_JMP);
	assert_int_equal(len, 5);
	assert_true(copy_target(off) == site.site_addr + site.displaced);
}

/* The copy is the whole function, relocated: it ends with the function's
 * own ret and has no jump back (a small function, copied whole). */
static void assert_returns_itself(unsigned len)
{
	assert_int_equal(site.copy_len, len);
	assert_int_equal(site.copy[len - 1], 0xc3);
}

static void assert_refused(const char *what)
{
	assert_non_null(strstr(err, what));
}

static void test_push_mov_prologue(void **state)
{
	static const uint8_t code[] = {
		0x55,				/* push %rbp */
		0x48, 0x89, 0xe5,		/* mov %rsp,%rbp */
		0x48, 0x83, 0xec, 0x10,		/* sub $0x10,%rsp */
		0x89, 0x7d, 0xfc,		/* mov %edi,-0x4(%rbp) */
		0x8b, 0x45, 0xfc,		/* mov -0x4(%rbp),%eax */
		0xc9, 0xc3,			/* leave; ret */
	};

	(void)state;
	assert_int_equal(prepare(code, sizeof(code), FUNC, COPY), 0);
	assert_true(site.func_addr == FUNC);
	assert_true(site.site_addr == FUNC);
	assert_true(site.copy_addr == COPY);
	assert_int_equal(site.displaced, 8);
	assert_memory_equal(site.saved, code, 8);
	assert_int_equal(site.n_insns, 3);
	assert_int_equal(site.old_off[0], 0);
	assert_int_equal(site.old_off[1], 1);
	assert_int_equal(site.old_off[2], 4);
	assert_memory_equal(site.new_off, site.old_off, 3);
	/* straight-line code up to its ret: copied whole */
	assert_memory_equal(site.copy, code, sizeof(code));
	assert_returns_itself(sizeof(code));
}

static void test_endbr64_prologue(void **state)
{
	static const uint8_t code[] = {
		0xf3, 0x0f, 0x1e, 0xfa,		/* endbr64 */
		0x55,				/* push %rbp */
		0x48, 0x89, 0xe5,		/* mov %rsp,%rbp */
		0x41, 0x54,			/* push %r12 */
		0x53,				/* push %rbx */
		0x5b, 0x41, 0x5c, 0x5d, 0xc3,	/* pops; ret */
	};

	(void)state;
	assert_int_equal(prepare(code, sizeof(code), FUNC, COPY), 0);
	assert_true(site.site_addr == FUNC + 4);
	assert_int_equal(site.displaced, 6);
	assert_int_equal(site.n_insns, 3);
	assert_memory_equal(site.saved, code + 4, 6);
	/* endbr64 stays in the function, it is not part of the copy */
	assert_memory_equal(site.copy, code + 4, sizeof(code) - 4);
	assert_returns_itself(sizeof(code) - 4);
}

static void test_rip_relative(void **state)
{
	static const uint8_t mov[] = {
		0x48, 0x8b, 0x05, 0x34, 0x12, 0x00, 0x00, /* mov 0x1234(%rip),%rax */
		0xc3,
	};
	static const uint8_t lea[] = {
		0x55,					  /* push %rbp */
		0x48, 0x8d, 0x0d, 0xf0, 0xff, 0xff, 0xff, /* lea -0x10(%rip),%rcx */
		0x5d, 0xc3,
	};
	/* An immediate after the displacement: cmpl $5,0x100(%rip) */
	static const uint8_t cmp[] = {
		0x83, 0x3d, 0x00, 0x01, 0x00, 0x00, 0x05,
		0xc3,
	};
	unsigned len;

	(void)state;
	assert_int_equal(prepare(mov, sizeof(mov), FUNC, COPY), 0);
	assert_int_equal(site.displaced, 7);
	assert_int_equal(copy_mnemonic(0, &len), ZYDIS_MNEMONIC_MOV);
	assert_int_equal(len, 7);
	assert_true(copy_target(0) == FUNC + 7 + 0x1234);
	assert_returns_itself(8);

	/* and with the copy below the function */
	assert_int_equal(prepare(mov, sizeof(mov), FUNC, FUNC - 0x100000), 0);
	assert_true(copy_target(0) == FUNC + 7 + 0x1234);
	assert_returns_itself(8);

	assert_int_equal(prepare(lea, sizeof(lea), FUNC, COPY), 0);
	assert_int_equal(site.displaced, 8);
	assert_int_equal(site.n_insns, 2);
	assert_int_equal(site.new_off[1], 1);
	assert_int_equal(copy_mnemonic(1, NULL), ZYDIS_MNEMONIC_LEA);
	assert_true(copy_target(1) == FUNC + 8 - 0x10);
	assert_returns_itself(sizeof(lea));

	assert_int_equal(prepare(cmp, sizeof(cmp), FUNC, COPY), 0);
	assert_int_equal(copy_mnemonic(0, NULL), ZYDIS_MNEMONIC_CMP);
	assert_true(copy_target(0) == FUNC + 7 + 0x100);
	assert_int_equal(site.copy[6], 0x05);
}

static void test_call_rel32(void **state)
{
	static const uint8_t code[] = {
		0x55,				/* push %rbp */
		0xe8, 0x00, 0x10, 0x00, 0x00,	/* call .+0x1005 */
		0x5d, 0xc3,
	};
	/* call *%rax, then more displaced instructions */
	static const uint8_t indirect[] = {
		0xff, 0xd0, 0x31, 0xc0, 0x31, 0xc9, 0xc3,
	};
	/* call *0x200(%rip) as the last displaced instruction is fine */
	static const uint8_t ripcall[] = {
		0xff, 0x15, 0x00, 0x02, 0x00, 0x00, 0xc3,
	};

	(void)state;
	assert_int_equal(prepare(code, sizeof(code), FUNC, COPY), 0);
	assert_int_equal(site.displaced, 6);
	assert_int_equal(site.copy[1], 0xe8);
	assert_int_equal(copy_mnemonic(1, NULL), ZYDIS_MNEMONIC_CALL);
	assert_true(copy_target(1) == FUNC + 6 + 0x1000);
	assert_jump_back();

	assert_int_equal(prepare(indirect, sizeof(indirect), FUNC, COPY), -1);
	assert_refused("would return into the middle of the jump");

	assert_int_equal(prepare(ripcall, sizeof(ripcall), FUNC, COPY), 0);
	assert_int_equal(copy_mnemonic(0, NULL), ZYDIS_MNEMONIC_CALL);
	assert_true(copy_target(0) == FUNC + 6 + 0x200);
}

static const uint8_t jcc_code[0x20] = {
	0x85, 0xff,		/* test %edi,%edi */
	0x74, 0x10,		/* je .+0x12 (offset 0x14) */
	0x31, 0xc0,		/* xor %eax,%eax */
	0xc3,
	[7 ... 0x13] = 0x90,
	[0x14] = 0xb8, 0x01, 0x00, 0x00, 0x00,	/* mov $1,%eax */
	0xc3,
};

static void test_jcc_rel8(void **state)
{
	unsigned len;

	(void)state;
	assert_int_equal(prepare(jcc_code, sizeof(jcc_code), FUNC, COPY), 0);
	assert_int_equal(site.displaced, 6);
	assert_int_equal(site.n_insns, 3);
	assert_memory_equal(site.copy, jcc_code, 2);
	assert_int_equal(site.copy[2], 0x0f);
	assert_int_equal(site.copy[3], 0x84);
	assert_int_equal(copy_mnemonic(2, &len), ZYDIS_MNEMONIC_JZ);
	assert_int_equal(len, 6);
	assert_true(copy_target(2) == FUNC + 0x14);
	assert_int_equal(site.new_off[2], 8);
	assert_memory_equal(site.copy + 8, jcc_code + 4, 2);
	assert_int_equal(site.copy_len, 2 + 6 + 2 + 5);
	assert_jump_back();
}

static void test_jmp_rel8(void **state)
{
	static const uint8_t code[] = {
		0xeb, 0x03,		/* jmp .+5 */
		0x90, 0x90, 0x90,
		0xc3,
	};

	(void)state;
	assert_int_equal(prepare(code, sizeof(code), FUNC, COPY), 0);
	assert_int_equal(site.displaced, 5);
	assert_int_equal(site.copy[0], 0xe9);
	assert_true(copy_target(0) == FUNC + 5);
	assert_int_equal(site.new_off[1], 5);
	assert_jump_back();
}

static void test_jrcxz_converted(void **state)
{
	uint8_t code[0x20];
	unsigned len;

	(void)state;
	memset(code, 0x90, sizeof(code));
	code[0] = 0xe3;		/* jrcxz .+0x12 */
	code[1] = 0x10;
	code[0x1f] = 0xc3;
	assert_int_equal(prepare(code, sizeof(code), FUNC, COPY), 0);
	assert_int_equal(site.displaced, 5);
	assert_int_equal(copy_mnemonic(0, &len), ZYDIS_MNEMONIC_JRCXZ);
	assert_int_equal(len, 2);
	assert_true(copy_target(0) == COPY + 4);	/* taken */
	assert_int_equal(copy_mnemonic(2, NULL), ZYDIS_MNEMONIC_JMP);
	assert_true(copy_target(2) == COPY + 9);	/* not taken */
	assert_true(copy_target(4) == FUNC + 0x12);
	assert_int_equal(site.new_off[1], 9);
	assert_int_equal(site.n_insns, 4);
	assert_int_equal(site.new_off[3], 11);
	assert_jump_back();
}

static void test_patchable_entry_nops(void **state)
{
	static const uint8_t code[] = {
		0x90, 0x90, 0x90, 0x90, 0x90,	/* -fpatchable-function-entry=5 */
		0x55, 0x48, 0x89, 0xe5, 0x5d, 0xc3,
	};

	(void)state;
	assert_int_equal(prepare(code, sizeof(code), FUNC, COPY), 0);
	assert_int_equal(site.displaced, 5);
	assert_int_equal(site.n_insns, 5);
	for (unsigned i = 0; i < 5; i++) {
		assert_int_equal(site.old_off[i], i);
		assert_int_equal(site.new_off[i], i);
	}
	assert_memory_equal(site.copy, code, sizeof(code));
	assert_returns_itself(sizeof(code));
}

static void test_too_short(void **state)
{
	static const uint8_t tiny[] = { 0x31, 0xc0, 0xc3, 0x90 };
	static const uint8_t endbr_tiny[] = {
		0xf3, 0x0f, 0x1e, 0xfa, 0x31, 0xc0, 0xc3,
	};
	/* push; then a 7-byte mov running past the 6-byte symbol */
	static const uint8_t past[] = {
		0x55, 0x48, 0x8b, 0x05, 0x00, 0x00, 0x00, 0x00,
	};
	static const uint8_t garbage[] = { 0x06, 0x90, 0x90, 0x90, 0x90, 0xc3 };

	(void)state;
	assert_int_equal(prepare(tiny, sizeof(tiny), FUNC, COPY), -1);
	assert_string_equal(err,
		"function is 4 bytes, shorter than the 5-byte jump");
	assert_int_equal(prepare(endbr_tiny, sizeof(endbr_tiny), FUNC, COPY), -1);
	assert_refused("3 bytes after endbr64, shorter than the 5-byte jump");
	assert_int_equal(prepare(past, 6, FUNC, COPY), -1);
	assert_refused("runs past the end of the function");
	assert_int_equal(prepare(garbage, sizeof(garbage), FUNC, COPY), -1);
	assert_refused("cannot decode the instruction at offset 0x0");
	/* exactly the jump's length, ending the function, is fine */
	assert_int_equal(prepare(garbage + 1, 5, FUNC, COPY), 0);
}

static void test_jump_into_site(void **state)
{
	uint8_t code[] = {
		0x55,				/* push %rbp */
		0x48, 0x89, 0xe5,		/* mov %rsp,%rbp */
		0x48, 0x83, 0xec, 0x10,		/* sub $0x10,%rsp */
		0x90, 0x90, 0x90, 0x90,
		0xeb, 0xf3,			/* 0xc: jmp to offset 1 */
		0xc3,
		0xcc, 0xcc, 0x06, 0x06,		/* padding, garbage */
	};
	static const uint8_t far_jcc[] = {
		0x55, 0x48, 0x89, 0xe5, 0x90, 0x90,
		0x0f, 0x85, 0xf7, 0xff, 0xff, 0xff,	/* 6: jne to offset 3 */
		0xc3,
	};
	static const uint8_t inner[] = {
		0xeb, 0x01,			/* jmp to offset 3 */
		0x90, 0x90, 0x90, 0xc3,
	};

	(void)state;
	assert_int_equal(prepare(code, sizeof(code), FUNC, COPY), -1);
	assert_string_equal(err,
		"a jump at offset 0xc lands inside the first 8 bytes; the function cannot be redirected safely");

	/* to the site itself: fine */
	code[13] = 0xf2;
	assert_int_equal(prepare(code, sizeof(code), FUNC, COPY), 0);

	assert_int_equal(prepare(far_jcc, sizeof(far_jcc), FUNC, COPY), -1);
	assert_refused("a jump at offset 0x6 lands inside the first 5 bytes");

	assert_int_equal(prepare(inner, sizeof(inner), FUNC, COPY), -1);
	assert_refused("a jump at offset 0x0 lands inside");
}

/* An address taken RIP-relatively (a computed goto's label) inside the
 * displaced bytes is refused like a jump there; the sweep decodes the
 * operands of such instructions only, and of every relative one. */
static void test_address_taken_into_site(void **state)
{
	uint8_t code[] = {
		0x55,				/* push %rbp */
		0x48, 0x89, 0xe5,		/* mov %rsp,%rbp */
		0x48, 0x83, 0xec, 0x10,		/* sub $0x10,%rsp */
		0x90, 0x90,
		0x48, 0x8d, 0x05, 0xf0, 0xff, 0xff, 0xff, /* 0xa: lea -0x10(%rip),%rax: offset 1 */
		0x90, 0x90,
		0xc3,
	};

	(void)state;
	assert_int_equal(prepare(code, sizeof(code), FUNC, COPY), -1);
	assert_refused("an address taken at offset 0xa points inside the first 8 bytes");

	/* the function's own start: fine */
	code[13] = 0xef;
	assert_int_equal(prepare(code, sizeof(code), FUNC, COPY), 0);
}

static void test_unmovable(void **state)
{
	static const uint8_t sys[] = { 0x0f, 0x05, 0x90, 0x90, 0x90, 0xc3 };
	static const uint8_t brk[] = { 0xcc, 0x90, 0x90, 0x90, 0x90, 0xc3 };
	static const uint8_t xbegin[] = {
		0xc7, 0xf8, 0x00, 0x00, 0x00, 0x00, 0xc3,
	};

	(void)state;
	assert_int_equal(prepare(sys, sizeof(sys), FUNC, COPY), -1);
	assert_refused("a system call at offset 0x0");
	assert_int_equal(prepare(brk, sizeof(brk), FUNC, COPY), -1);
	assert_refused("int3");
	assert_int_equal(prepare(xbegin, sizeof(xbegin), FUNC, COPY), -1);
	assert_refused("cannot be relocated");
}

static void test_out_of_range(void **state)
{
	static const uint8_t plain[] = {
		0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x10, 0xc9, 0xc3,
	};
	static const uint8_t mov[] = {
		0x48, 0x8b, 0x05, 0xf0, 0xff, 0xff, 0x7f, /* mov 0x7ffffff0(%rip),%rax */
		0xc3,
	};
	const uint64_t func = 0x100000000ULL;

	(void)state;
	assert_int_equal(prepare(plain, sizeof(plain), FUNC,
				 FUNC + 0xc0000000ULL), -1);
	assert_refused("out of 32-bit reach");
	assert_int_equal(prepare(plain, sizeof(plain), func,
				 func - 0x90000000ULL), -1);
	assert_refused("out of 32-bit reach");

	/* the copy reaches the function, but not what the mov reads */
	assert_int_equal(prepare(mov, sizeof(mov), func,
				 func - 0x10000000ULL), -1);
	assert_refused("refers to 0x17ffffff7");
	assert_int_equal(prepare(mov, sizeof(mov), func,
				 func + 0x10000000ULL), 0);
	assert_true(copy_target(0) == func + 7 + 0x7ffffff0);
}

/* A small function is copied whole, so that a thread that runs the
 * original through the copy takes no jump back; anything but straight-line
 * code up to the ret keeps the jump back. */
static void test_small_function_copied_whole(void **state)
{
	static const uint8_t rip_tail[] = {
		0x55, 0x48, 0x89, 0xe5,		/* push %rbp; mov %rsp,%rbp */
		0x48, 0x83, 0xec, 0x10,		/* sub $0x10,%rsp */
		0x8b, 0x05, 0x10, 0x00, 0x00, 0x00, /* mov 0x10(%rip),%eax */
		0xc9, 0xc3,			/* leave; ret */
	};
	static const uint8_t call[] = {
		0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x10,
		0xe8, 0x00, 0x00, 0x00, 0x00,	/* call (the next insn) */
		0xc9, 0xc3,
	};
	static const uint8_t branch[] = {
		0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x10,
		0x85, 0xff,			/* test %edi,%edi */
		0x74, 0x01, 0x90,		/* je over a nop */
		0xc9, 0xc3,
	};
	uint8_t long_tail[8 + 60 + 2];

	(void)state;
	assert_int_equal(prepare(rip_tail, sizeof(rip_tail), FUNC, COPY), 0);
	assert_int_equal(site.displaced, 8);
	assert_returns_itself(sizeof(rip_tail));
	/* the tail's RIP-relative operand still reads what the original
	 * reads, from the copy's address */
	assert_int_equal(copy_mnemonic(8, NULL), ZYDIS_MNEMONIC_MOV);
	assert_true(copy_target(8) == FUNC + 14 + 0x10);
	/* and below the function too */
	assert_int_equal(prepare(rip_tail, sizeof(rip_tail), FUNC,
				 FUNC - 0x100000), 0);
	assert_true(copy_target(8) == FUNC + 14 + 0x10);

	assert_int_equal(prepare(call, sizeof(call), FUNC, COPY), 0);
	assert_int_equal(site.copy_len, 8 + RELIVE_ARCH_JUMP_LEN);
	assert_jump_back();

	assert_int_equal(prepare(branch, sizeof(branch), FUNC, COPY), 0);
	assert_int_equal(site.copy_len, 8 + RELIVE_ARCH_JUMP_LEN);
	assert_jump_back();

	/* straight-line, but longer than is worth copying */
	memcpy(long_tail, branch, 8);
	memset(long_tail + 8, 0x90, 60);
	long_tail[68] = 0xc9;
	long_tail[69] = 0xc3;
	assert_int_equal(prepare(long_tail, sizeof(long_tail), FUNC, COPY), 0);
	assert_int_equal(site.copy_len, 8 + RELIVE_ARCH_JUMP_LEN);
	assert_jump_back();

	/* no ret within the symbol: the jump back */
	assert_int_equal(prepare(rip_tail, sizeof(rip_tail) - 1, FUNC, COPY),
			 0);
	assert_int_equal(site.copy_len, 8 + RELIVE_ARCH_JUMP_LEN);
	assert_jump_back();
}

/*
 * A site made at one function and copy address and moved to others
 * (relive_arch_rebase_site, how the controller's decoding serves the
 * agent) is byte for byte the site made at the others directly, for every
 * relocated form: RIP-relative operands (with an immediate after the
 * displacement, in a tail copied whole), rel8 and rel32 branches, calls,
 * jrcxz's trampoline, the jump back.
 */
static void test_rebase(void **state)
{
	static const uint8_t ripcall[] = {
		0x55,				/* push %rbp */
		0xff, 0x15, 0x00, 0x02, 0x00, 0x00, /* call *0x200(%rip) */
		0x5d, 0xc3,
	};
	static const uint8_t tail[] = {
		0x55, 0x48, 0x89, 0xe5,		/* push %rbp; mov %rsp,%rbp */
		0x48, 0x83, 0xec, 0x10,		/* sub $0x10,%rsp */
		0x83, 0x3d, 0x00, 0x01, 0x00, 0x00, 0x05, /* cmpl $5,0x100(%rip) */
		0x8b, 0x05, 0x10, 0x00, 0x00, 0x00, /* mov 0x10(%rip),%eax */
		0xc9, 0xc3,			/* leave; ret */
	};
	static const uint8_t call[] = {
		0x55, 0xe8, 0x00, 0x10, 0x00, 0x00, 0x5d, 0xc3,
	};
	static const uint8_t jmp8[] = { 0xeb, 0x03, 0x90, 0x90, 0x90, 0xc3 };
	static const uint8_t plain[] = {
		0x55, 0x48, 0x89, 0xe5, 0x31, 0xc0, 0x5d, 0xc3,
	};
	uint8_t jrcxz[0x20];
	const struct {
		const uint8_t *code;
		size_t size;
		unsigned n_fix;
	} cases[] = {
		{ ripcall, sizeof(ripcall), 1 },	/* copied whole: no jump back */
		{ tail, sizeof(tail), 2 },		/* two in the tail */
		{ call, sizeof(call), 2 },
		{ jcc_code, sizeof(jcc_code), 2 },
		{ jmp8, sizeof(jmp8), 2 },
		{ jrcxz, sizeof(jrcxz), 2 },
	};
	const uint64_t moves[][2] = {
		{ FUNC + 0x10000, COPY },		/* the function moved */
		{ FUNC, COPY - 0x300000 },		/* the copy moved */
		{ 0x7f1234560000ULL, 0x7f1234560000ULL - 0x40000000ULL },
	};
	struct relive_site made, moved;

	(void)state;
	memset(jrcxz, 0x90, sizeof(jrcxz));
	jrcxz[0] = 0xe3;
	jrcxz[1] = 0x10;
	jrcxz[0x1f] = 0xc3;
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		assert_int_equal(prepare(cases[c].code, cases[c].size, FUNC,
					 COPY), 0);
		assert_int_equal(site.n_fix, cases[c].n_fix);
		made = site;
		for (size_t m = 0; m < sizeof(moves) / sizeof(moves[0]); m++) {
			moved = made;
			assert_int_equal(relive_arch_rebase_site(&moved,
								 moves[m][0],
								 moves[m][1]),
					 0);
			assert_int_equal(prepare(cases[c].code, cases[c].size,
						 moves[m][0], moves[m][1]), 0);
			assert_memory_equal(&moved, &site, sizeof(site));
		}
	}

	/* Out of reach: refused, and the site left as it was. */
	assert_int_equal(prepare(call, sizeof(call), FUNC, COPY), 0);
	made = site;
	moved = made;
	assert_int_equal(relive_arch_rebase_site(&moved, FUNC,
						 FUNC + 0x90000000ULL), -1);
	assert_memory_equal(&moved, &made, sizeof(made));

	/* A site with no displacement moves too (only its addresses). */
	assert_int_equal(prepare(plain, sizeof(plain), FUNC, COPY), 0);
	assert_int_equal(site.n_fix, 0);
	made = site;
	assert_int_equal(relive_arch_rebase_site(&made, FUNC + 8, COPY + 8),
			 0);
	assert_int_equal(prepare(plain, sizeof(plain), FUNC + 8, COPY + 8), 0);
	assert_memory_equal(&made, &site, sizeof(site));
}

static void test_pc_to_copy(void **state)
{
	uint64_t out = 0;

	(void)state;
	assert_int_equal(prepare(jcc_code, sizeof(jcc_code), FUNC, COPY), 0);
	/* not strictly inside */
	assert_int_equal(relive_arch_site_pc_to_copy(&site, FUNC, &out), -1);
	assert_int_equal(relive_arch_site_pc_to_copy(&site, FUNC + 6, &out), -1);
	assert_int_equal(relive_arch_site_pc_to_copy(&site, FUNC - 1, &out), -1);
	/* not a boundary */
	assert_int_equal(relive_arch_site_pc_to_copy(&site, FUNC + 1, &out), -1);
	assert_int_equal(relive_arch_site_pc_to_copy(&site, FUNC + 3, &out), -1);
	/* the je, and the xor after the je grew by 4 bytes */
	assert_int_equal(relive_arch_site_pc_to_copy(&site, FUNC + 2, &out), 0);
	assert_true(out == COPY + 2);
	assert_int_equal(relive_arch_site_pc_to_copy(&site, FUNC + 4, &out), 0);
	assert_true(out == COPY + 8);
}

/* The landing is where the jump made by changing only the first byte of
 * the site leads: its encoding differs from the site's bytes in that byte
 * alone. */
/* relive_arch_store16: the block changes only when it holds what the
 * caller expects, and only when aligned; a direct entry's retargeting (one
 * jump's operand at offset 1 of its block) leaves every other byte. */
static void test_store16(void **state)
{
	_Alignas(16) uint8_t buf[32];
	uint8_t old[16], new[16], jump[RELIVE_ARCH_JUMP_LEN];
	uint64_t at;

	(void)state;
	memset(buf, 0x90, sizeof(buf));
	at = (uintptr_t)buf;
	assert_int_equal(relive_arch_encode_jump(at, at + 0x1000, jump), 0);
	memcpy(buf, jump, sizeof(jump));
	memcpy(old, buf, 16);
	memcpy(new, old, 16);
	assert_int_equal(relive_arch_encode_jump(at, at - 0x2000,
						 new), 0);
	/* not what is there: nothing changes */
	old[3] ^= 1;
	assert_int_equal(relive_arch_store16(buf, old, new), -1);
	old[3] ^= 1;
	assert_memory_equal(buf, jump, sizeof(jump));
	/* not aligned: refused */
	assert_int_equal(relive_arch_store16(buf + 1, old, new), -1);
	assert_memory_equal(buf, jump, sizeof(jump));
	/* the operand changes, the opcode and the bytes after stay */
	assert_int_equal(relive_arch_store16(buf, old, new), 0);
	assert_int_equal(buf[0], 0xe9);
	assert_memory_equal(buf, new, 16);
	for (size_t i = RELIVE_ARCH_JUMP_LEN; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 0x90);
}

static void test_landing(void **state)
{
	static const uint8_t movabs[] = { /* mov $0xc0000000,%eax; lea 1(%rdi),%eax; ret */
		0xb8, 0x00, 0x00, 0x00, 0xc0, 0x8d, 0x47, 0x01, 0xc3 };
	static const uint8_t push[] = { /* push %rbp; mov %rsp,%rbp; mov 0x10(%rip),%eax; ... */
		0x55, 0x48, 0x89, 0xe5, 0x8b, 0x05, 0x10, 0x00, 0x00, 0x00,
		0x5d, 0xc3 };
	static const uint8_t cet[] = { /* endbr64; push %r15; push %r14; ... */
		0xf3, 0x0f, 0x1e, 0xfa, 0x41, 0x57, 0x41, 0x56, 0x41, 0x55,
		0xc3 };
	const struct { const uint8_t *code; size_t size; uint64_t site; } c[] = {
		{ movabs, sizeof(movabs), FUNC },
		{ push, sizeof(push), FUNC },
		{ cet, sizeof(cet), FUNC + 4 },
	};
	uint8_t jump[RELIVE_ARCH_JUMP_LEN];

	(void)state;
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		uint64_t land;

		assert_int_equal(prepare(c[i].code, c[i].size, FUNC, COPY), 0);
		assert_true(site.site_addr == c[i].site);
		land = relive_arch_landing(&site);
		assert_int_equal(relive_arch_encode_jump(site.site_addr, land,
							 jump), 0);
		assert_int_equal(jump[0], 0xe9);
		assert_memory_equal(jump + 1, site.saved + 1, 4);
	}
	/* b8 00 00 00 c0: 1 GiB below the end of the jump */
	assert_int_equal(prepare(movabs, sizeof(movabs), FUNC, COPY), 0);
	assert_true(relive_arch_landing(&site) == FUNC + 5 - 0x40000000ULL);
	/* 55 48 89 e5 8b: 0x8be58948 is negative */
	assert_int_equal(prepare(push, sizeof(push), FUNC, COPY), 0);
	assert_true(relive_arch_landing(&site) ==
		    FUNC + 5 + (uint64_t)(int64_t)(int32_t)0x8be58948u);
}

static void test_encode_jump(void **state)
{
	uint8_t out[RELIVE_ARCH_JUMP_LEN];
	static const uint8_t fwd[] = { 0xe9, 0xfb, 0x0f, 0x00, 0x00 };
	static const uint8_t back[] = { 0xe9, 0xfb, 0xef, 0xff, 0xff };
	static const uint8_t self[] = { 0xe9, 0xfb, 0xff, 0xff, 0xff };
	const uint64_t from = 0x7f0000000000ULL;

	(void)state;
	assert_int_equal(relive_arch_encode_jump(from, from + 0x1000, out), 0);
	assert_memory_equal(out, fwd, 5);
	assert_int_equal(relive_arch_encode_jump(from, from, out), 0);
	assert_memory_equal(out, self, 5);
	assert_int_equal(relive_arch_encode_jump(from + 0x1000, from, out), 0);
	assert_memory_equal(out, back, 5);

	/* the limits of rel32 */
	assert_int_equal(relive_arch_encode_jump(from, from + 5 + INT32_MAX,
						 out), 0);
	assert_int_equal(relive_arch_encode_jump(from, from + 6 + INT32_MAX,
						 out), -1);
	assert_int_equal(relive_arch_encode_jump(from,
			from + 5 - 0x80000000ULL, out), 0);
	assert_int_equal(relive_arch_encode_jump(from,
			from + 4 - 0x80000000ULL, out), -1);
	assert_int_equal(relive_arch_encode_jump(from, 0x1000, out), -1);
}

static void test_encode_call(void **state)
{
	uint8_t out[RELIVE_ARCH_CALL_LEN];
	static const uint8_t fwd[] = { 0xe8, 0xfb, 0x0f, 0x00, 0x00 };
	const uint64_t from = 0x7f0000000000ULL;

	(void)state;
	assert_int_equal(relive_arch_encode_call(from, from + 0x1000, out), 0);
	assert_memory_equal(out, fwd, 5);
	assert_int_equal(relive_arch_encode_call(from, from + 5 + INT32_MAX,
						 out), 0);
	assert_int_equal(relive_arch_encode_call(from, from + 6 + INT32_MAX,
						 out), -1);
}

/*
 * Only a call rel32 that starts on an instruction boundary counts: an e8
 * byte inside an immediate, an indirect call and anything after a byte
 * that does not decode do not.
 */
static void test_find_calls(void **state)
{
	static const uint8_t code[] = {
		0x55,                               /*  0 push %rbp */
		0xb8, 0xe8, 0x00, 0x00, 0x00,       /*  1 mov $0xe8,%eax */
		0xe8, 0x10, 0x00, 0x00, 0x00,       /*  6 call .+0x15 */
		0xff, 0xd0,                         /* 11 call *%rax */
		0x48, 0x89, 0xe5,                   /* 14 mov %rsp,%rbp */
		0xe8, 0x00, 0x00, 0x00, 0x00,       /* 16 call .+5 */
		0x06,                               /* 21 (no such insn) */
		0xe8, 0x00, 0x00, 0x00, 0x00,       /* 22 call, not reached */
	};
	const uint64_t cand[] = { FUNC + 2, FUNC + 6, FUNC + 11, FUNC + 16,
				  FUNC + 22, FUNC + 40 };
	bool is_call[6];

	(void)state;
	assert_int_equal(relive_arch_find_calls(code, sizeof(code), FUNC,
						cand, 6, is_call), 2);
	assert_false(is_call[0]);
	assert_true(is_call[1]);
	assert_false(is_call[2]);
	assert_true(is_call[3]);
	assert_false(is_call[4]);
	assert_false(is_call[5]);
	/* a candidate list that skips the first call still finds the second */
	assert_int_equal(relive_arch_find_calls(code, sizeof(code), FUNC,
						cand + 3, 1, is_call), 1);
	assert_true(is_call[0]);
	/* a function cut short before the call */
	assert_int_equal(relive_arch_find_calls(code, 18, FUNC, cand + 3, 1,
						is_call), 0);
}

/* ---- real code ---- */

int relive_test_global = 42;

/* One function per section: __start_/__stop_ give its size without an ELF
 * reader, at any optimisation level. */
__attribute__((noinline, noipa, used, section("relive_test_cfn_text")))
int relive_test_cfn(int x)
{
	return x * 3 + relive_test_global;
}
extern const uint8_t __start_relive_test_cfn_text[], __stop_relive_test_cfn_text[];

__attribute__((noinline, noipa, used))
int relive_test_helper(void)
{
	return 100 + relive_test_global;
}

/*
 * asm1: endbr64, a jcc rel8 and a RIP-relative load in the displaced bytes.
 * asm2: jrcxz in the displaced bytes.
 * asm3: a call rel32 in the displaced bytes.
 */
int relive_test_asm1(int x);
int relive_test_asm2(long x);
int relive_test_asm3(void);
extern const uint8_t relive_test_asm1_end[], relive_test_asm2_end[],
	relive_test_asm3_end[];
__asm__(
	"	.pushsection .text.relive_test_asm,\"ax\",@progbits\n"
	"	.globl relive_test_asm1, relive_test_asm1_end\n"
	"	.type relive_test_asm1, @function\n"
	"relive_test_asm1:\n"
	"	endbr64\n"
	"	test %edi, %edi\n"
	"	js 1f\n"
	"	mov relive_test_global(%rip), %eax\n"
	"	add %edi, %eax\n"
	"	ret\n"
	"1:	mov $-1, %eax\n"
	"	ret\n"
	"relive_test_asm1_end:\n"
	"	.size relive_test_asm1, .-relive_test_asm1\n"
	"	.globl relive_test_asm2, relive_test_asm2_end\n"
	"	.type relive_test_asm2, @function\n"
	"relive_test_asm2:\n"
	"	mov %rdi, %rcx\n"
	"	jrcxz 2f\n"
	"	lea 1(%rdi), %eax\n"
	"	ret\n"
	"2:	mov $7, %eax\n"
	"	ret\n"
	"relive_test_asm2_end:\n"
	"	.size relive_test_asm2, .-relive_test_asm2\n"
	"	.globl relive_test_asm3, relive_test_asm3_end\n"
	"	.type relive_test_asm3, @function\n"
	"relive_test_asm3:\n"
	"	push %rbx\n"
	"	call relive_test_helper\n"
	"	add $1, %eax\n"
	"	pop %rbx\n"
	"	ret\n"
	"relive_test_asm3_end:\n"
	"	.size relive_test_asm3, .-relive_test_asm3\n"
	"	.popsection\n");

#define NEAR_LIMIT (1LL << 30)

/* A page within 1 GiB of addr, as the agent's codemem does. */
static uint8_t *map_near(uint64_t addr, size_t len)
{
	uint64_t pg = (uint64_t)sysconf(_SC_PAGESIZE);

	for (int64_t d = 1 << 20; d < NEAR_LIMIT; d += 1 << 20) {
		for (int sign = -1; sign <= 1; sign += 2) {
			uint64_t hint = (addr + (uint64_t)(sign * d)) & ~(pg - 1);
			void *p = mmap((void *)hint, len, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS |
				       MAP_FIXED_NOREPLACE, -1, 0);
			int64_t dist;

			if (p == MAP_FAILED)
				continue;
			dist = (int64_t)((uint64_t)p - addr);
			if (dist > -NEAR_LIMIT && dist < NEAR_LIMIT)
				return p;
			munmap(p, len);
		}
	}
	return NULL;
}

static uint64_t relocate_real(uint8_t *page, const void *fn, size_t size,
			      unsigned slot)
{
	uint64_t copy = (uint64_t)page + slot * 256;

	assert_true(size > 0 && size < 4096);
	if (prepare(fn, size, (uint64_t)fn, copy))
		fail_msg("relocating %p: %s", fn, err);
	memcpy(page + slot * 256, site.copy, site.copy_len);
	return copy;
}

static void test_real_code(void **state)
{
	const size_t len = 4096;
	uint8_t *page = map_near((uint64_t)relive_test_cfn, len);
	int (*cfn)(int), (*asm1)(int), (*asm2)(long), (*asm3)(void);
	unsigned asm1_displaced;

	(void)state;
	assert_non_null(page);
	cfn = (int (*)(int))relocate_real(page, relive_test_cfn,
			__stop_relive_test_cfn_text - __start_relive_test_cfn_text, 0);
	asm1 = (int (*)(int))relocate_real(page, relive_test_asm1,
			relive_test_asm1_end - (const uint8_t *)relive_test_asm1, 1);
	asm1_displaced = site.displaced;
	assert_true(site.site_addr == (uint64_t)relive_test_asm1 + 4);
	asm2 = (int (*)(long))relocate_real(page, relive_test_asm2,
			relive_test_asm2_end - (const uint8_t *)relive_test_asm2, 2);
	asm3 = (int (*)(void))relocate_real(page, relive_test_asm3,
			relive_test_asm3_end - (const uint8_t *)relive_test_asm3, 3);
	/* W^X, like the agent: write, then make it read+execute */
	assert_int_equal(mprotect(page, len, PROT_READ | PROT_EXEC), 0);

	assert_int_equal(asm1_displaced, 10);	/* test, js, mov */
	for (int x = -3; x <= 3; x++) {
		assert_int_equal(cfn(x), relive_test_cfn(x));
		assert_int_equal(asm1(x), relive_test_asm1(x));
		assert_int_equal(asm2(x), relive_test_asm2(x));
	}
	assert_int_equal(asm1(5), 47);
	assert_int_equal(asm1(-5), -1);
	assert_int_equal(asm2(0), 7);
	assert_int_equal(asm2(9), 10);
	assert_int_equal(asm3(), 143);
	assert_int_equal(asm3(), relive_test_asm3());

	relive_test_global = 1000;
	assert_int_equal(cfn(2), 1006);
	assert_int_equal(asm1(2), 1002);
	relive_test_global = 42;
	munmap(page, len);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_push_mov_prologue),
		cmocka_unit_test(test_endbr64_prologue),
		cmocka_unit_test(test_rip_relative),
		cmocka_unit_test(test_call_rel32),
		cmocka_unit_test(test_jcc_rel8),
		cmocka_unit_test(test_jmp_rel8),
		cmocka_unit_test(test_jrcxz_converted),
		cmocka_unit_test(test_patchable_entry_nops),
		cmocka_unit_test(test_too_short),
		cmocka_unit_test(test_jump_into_site),
		cmocka_unit_test(test_address_taken_into_site),
		cmocka_unit_test(test_unmovable),
		cmocka_unit_test(test_out_of_range),
		cmocka_unit_test(test_small_function_copied_whole),
		cmocka_unit_test(test_rebase),
		cmocka_unit_test(test_pc_to_copy),
		cmocka_unit_test(test_encode_jump),
		cmocka_unit_test(test_encode_call),
		cmocka_unit_test(test_find_calls),
		cmocka_unit_test(test_landing),
		cmocka_unit_test(test_store16),
		cmocka_unit_test(test_real_code),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
