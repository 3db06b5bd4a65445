/*
 * agent/arch.h - everything relive needs from the instruction set, behind
 * one small interface.  x86-64 lives in agent/arch/x86_64/; a second
 * architecture is a second folder implementing these functions.
 *
 * Pure functions: they read bytes and addresses given to them and write
 * only into the structures they are handed, so they can be unit-tested on
 * buffers (tests/unit/test_insn.c).
 */
#ifndef RELIVE_ARCH_H
#define RELIVE_ARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Length of the jump written at a site. */
#define RELIVE_ARCH_JUMP_LEN 5
/* Upper bounds of what prepare_site may displace and emit. */
#define RELIVE_ARCH_MAX_DISPLACED 32
#define RELIVE_ARCH_MAX_COPY 160
#define RELIVE_ARCH_MAX_INSNS 16
#define RELIVE_ARCH_MAX_FIX 32

/*
 * A site: where the entry of a function is redirected, and the relocated
 * copy of the instructions the redirection displaces.
 */
struct relive_site {
	uint64_t func_addr;   /* the function's entry */
	uint64_t site_addr;   /* where the jump goes: entry, or entry+4 after endbr64 */
	unsigned displaced;   /* bytes displaced at the site (>= RELIVE_ARCH_JUMP_LEN),
				 whole instructions */
	uint8_t saved[RELIVE_ARCH_MAX_DISPLACED]; /* the original bytes at the site */
	/* Instruction boundaries for moving a stopped thread's PC: the i-th
	 * displaced instruction starts at site_addr + old_off[i] and its
	 * relocated form at copy_addr + new_off[i]. */
	unsigned n_insns;
	uint8_t old_off[RELIVE_ARCH_MAX_INSNS];
	uint8_t new_off[RELIVE_ARCH_MAX_INSNS];
	/* Relocated displaced instructions followed by a jump back to
	 * site_addr + displaced: running it runs the original function.  A
	 * small function of straight-line code is copied whole instead, up
	 * to its ret, with no jump back. */
	uint8_t copy[RELIVE_ARCH_MAX_COPY];
	unsigned copy_len;
	uint64_t copy_addr;   /* where copy[] will live */
	/* The copy's 32-bit displacements that address the function's
	 * object from the copy (relocated operands, the jump back): where
	 * each starts in copy[].  Moving the function and the copy moves
	 * them by the difference (relive_arch_rebase_site). */
	unsigned n_fix;
	uint8_t fix[RELIVE_ARCH_MAX_FIX];
};

/*
 * Decodes the first bytes of the function at func_addr (code points to its
 * `size` bytes, size from the symbol table) and builds the site and its
 * relocated copy, to be placed at copy_addr (which must lie within +-2 GiB
 * of the function).  Refuses, with a message naming the reason, a function
 * shorter than a jump, one whose displaced bytes cannot be relocated
 * (a branch into them from the rest of the function, an instruction that
 * cannot be moved), or one it cannot decode.  A function whose code is
 * straight-line up to a ret within a few dozen bytes is copied whole.
 * Returns 0, or -1 with err filled.
 */
int relive_arch_prepare_site(const uint8_t *code, size_t size,
			     uint64_t func_addr, uint64_t copy_addr,
			     struct relive_site *site, char *err, size_t errlen);

/*
 * Moves a site made by relive_arch_prepare_site() for the same bytes to a
 * function now at func_addr and a copy at copy_addr: the displacements in
 * fix[] change by the difference, nothing else does (every relocated form
 * has one length wherever it lies).  This is how the controller's work
 * serves the agent (relive/sites.c): the controller decodes the bytes it
 * read, the agent checks they are the bytes it runs and moves the result to
 * the copy it chose.  Returns 0, or -1 when a displacement no longer fits
 * (the site is then as it was).
 */
int relive_arch_rebase_site(struct relive_site *site, uint64_t func_addr,
			    uint64_t copy_addr);

/* The relocation type of a PLT slot (the GOT entry a PLT stub jumps
 * through). */
#define RELIVE_ARCH_R_JUMP_SLOT 7 /* R_X86_64_JUMP_SLOT */
/* Length of a direct call (a call site that direct.c may retarget): its
 * first byte, then a 32-bit operand relative to its end. */
#define RELIVE_ARCH_CALL_LEN 5
#define RELIVE_ARCH_CALL_OPCODE 0xe8

/* Can the direct call at `at` be retargeted in one store: does its 4-byte
 * operand lie in one aligned 16-byte block (relive_arch_store16)?  The
 * same at a link-time address as in the process, the load bias being a
 * multiple of the page size. */
static inline bool relive_arch_call_in_block(uint64_t at)
{
	return ((at + 1) & 15) <= 12;
}
/* No instruction that starts this many bytes or more into a function is
 * ever among the bytes its redirection displaces (the site is the entry or
 * entry+4, and a displaced instruction starts before the site's jump ends),
 * nor in an original copy that was made whole (those hold no call). */
#define RELIVE_ARCH_PROLOGUE_MAX 16

/* The calling thread's thread pointer.  x86-64 TLS ABI: the word at the
 * thread pointer (%fs:0) holds the thread pointer itself, which is how a
 * thread pointer found by other means is recognised
 * (RELIVE_ARCH_TP_SELF: the offset of that word). */
static inline uintptr_t relive_arch_thread_pointer(void)
{
	uintptr_t tp;

	__asm__ volatile("mov %%fs:0, %0" : "=r"(tp));
	return tp;
}
#define RELIVE_ARCH_TP_SELF 0

/* The code of a signal handler's restorer (where a handler returns, to
 * rt_sigreturn) as the C library writes it: `mov $15,%rax; syscall`.
 * glibc does not export its restorer; agent/sleepers.c finds it by this
 * code next to sigaction. */
#define RELIVE_ARCH_RESTORER_CODE \
	{ 0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05 }

/* Encodes the RELIVE_ARCH_JUMP_LEN-byte jump from `from` to `to`.
 * Returns 0, or -1 if `to` is out of reach. */
int relive_arch_encode_jump(uint64_t from, uint64_t to,
			    uint8_t out[RELIVE_ARCH_JUMP_LEN]);

/* Encodes the RELIVE_ARCH_CALL_LEN-byte direct call from `from` to `to`.
 * Returns 0, or -1 if `to` is out of reach. */
int relive_arch_encode_call(uint64_t from, uint64_t to,
			    uint8_t out[RELIVE_ARCH_CALL_LEN]);

/*
 * Which of the addresses cand[0..n) (ascending, inside the function at
 * func_addr whose `size` bytes are at code) are direct calls: decodes the
 * function from its first byte, in order, and sets is_call[i] when an
 * instruction starts exactly at cand[i] and is a call with a 32-bit
 * relative operand of RELIVE_ARCH_CALL_LEN bytes.  Everything after a byte
 * that does not decode, or past the end of the function, stays false.
 * Returns how many were set.
 */
size_t relive_arch_find_calls(const uint8_t *code, size_t size,
			      uint64_t func_addr, const uint64_t *cand,
			      size_t n, bool *is_call);

/*
 * The landing of a site: where its entry jump leads when only the site's
 * first byte is changed, the jump's operand being the bytes already there.
 * A stub placed at that address makes the redirection a one-byte write,
 * which no thread can see half done and which leaves every displaced
 * instruction after the first intact for a thread already past the entry.
 * Returns the address (not checked for being mappable), or 0 if the
 * architecture has no such jump.
 */
uint64_t relive_arch_landing(const struct relive_site *site);

/*
 * Maps a PC inside the displaced bytes of a site (site_addr < pc <
 * site_addr + displaced) to the equivalent PC in the copy.  Returns 0 with
 * *out set, or -1 if pc is not an instruction boundary (cannot happen for a
 * thread stopped between instructions).
 */
int relive_arch_site_pc_to_copy(const struct relive_site *site, uint64_t pc,
				uint64_t *out);

/*
 * Replaces the aligned 16 bytes at block, which must still hold old, with
 * new, in one indivisible store that a thread fetching those bytes as
 * instructions sees whole or not at all.  The page must be writable.  Not
 * pure: it is the one function here that writes memory.  Returns 0, or -1
 * if block is not aligned or did not hold old.
 */
int relive_arch_store16(void *block, const uint8_t old[16],
			const uint8_t new[16]);

#endif
