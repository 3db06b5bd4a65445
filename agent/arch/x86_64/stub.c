/*
 * agent/arch/x86_64/stub.c - the per-function stub and dispatcher (kernel:
 * klp_ftrace_handler).
 *
 * The entry jump of a patched function lands on the stub, which picks the
 * version for the calling thread:
 *
 *  0: mov    %fs:TLS, %r11d        the thread's state word
 *     test   %r11d, %r11d
 *     js     3f                    tentative (below)
 *     cmp    switched(%rip), %r11d
 *     mov    before(%rip), %r11    unswitched thread (and steady state)
 *     cmove  after(%rip), %r11     switched thread: the new world
 *     jmp    *%r11
 *  3: push   %rax                  tentative: take the word back to 0
 *     mov    %r11d, %eax             (before world), unless the agent
 *     xor    %r11d, %r11d            turned it into the generation first
 *     lock cmpxchg %r11d, %fs:TLS
 *     pop    %rax
 *     jmp    0b                    and choose again
 *
 * A word with its top bit set is a switch the agent has begun but not
 * confirmed (agent/sleepers.c): the thread, asleep in a system call when
 * the agent looked at its stack, has woken and calls a patched function
 * before the agent could confirm.  It stays in the world it was in, and
 * the compare-exchange tells the agent so: the agent's own confirmation
 * is an atomic change of the same word, so exactly one of the two wins.
 * Generations never have the top bit set.
 *
 * In steady state `switched` holds a value no thread ever has and `before`
 * the top version, so every thread goes there.  The choice is a
 * conditional move, not a branch: a switched and an unswitched thread
 * take the same two jumps (the entry's and this one), the fewest a
 * per-thread choice can cost.  (Once the transition has completed, the
 * entry jump usually leads straight to the version and the stub is not on
 * the path at all: agent/direct.c.)
 *
 * Only %r11 and the flags change, both free at a call (SysV ABI); the
 * stack, the red zone, %rax (vector count of a variadic call) and %r10
 * (static chain) are as the caller left them (the tentative path saves
 * %rax below the stack pointer, which at a function's entry holds nothing
 * of the caller's).  No lock and no syscall on the usual paths.
 */
#include <stddef.h>
#include <string.h>

#include "agent.h"

static void put_rel32(uint8_t *p, uint64_t insn_end, uint64_t target)
{
	int32_t rel = (int32_t)(int64_t)(target - insn_end);

	memcpy(p, &rel, 4);
}

void arch_emit_stub(uint8_t *b, uint64_t at, const struct relive_stub_data *d,
		    int64_t tls_offset)
{
	uint64_t before = (uintptr_t)&d->before;
	uint64_t after = (uintptr_t)&d->after;
	uint64_t switched = (uintptr_t)&d->switched;
	int32_t tls = (int32_t)tls_offset;
	uint8_t *p = b;

	/* 0: mov %fs:tls, %r11d */
	*p++ = 0x64; *p++ = 0x44; *p++ = 0x8b; *p++ = 0x1c; *p++ = 0x25;
	memcpy(p, &tls, 4); p += 4;
	/* 9: test %r11d, %r11d */
	*p++ = 0x45; *p++ = 0x85; *p++ = 0xdb;
	/* 12: js 39 */
	*p++ = 0x78; *p++ = 39 - 14;
	/* 14: cmp switched(%rip), %r11d */
	*p++ = 0x44; *p++ = 0x3b; *p++ = 0x1d;
	put_rel32(p, at + 21, switched); p += 4;
	/* 21: mov before(%rip), %r11 (mov leaves the flags alone) */
	*p++ = 0x4c; *p++ = 0x8b; *p++ = 0x1d;
	put_rel32(p, at + 28, before); p += 4;
	/* 28: cmove after(%rip), %r11 */
	*p++ = 0x4c; *p++ = 0x0f; *p++ = 0x44; *p++ = 0x1d;
	put_rel32(p, at + 36, after); p += 4;
	/* 36: jmp *%r11 */
	*p++ = 0x41; *p++ = 0xff; *p++ = 0xe3;
	/* 39: push %rax */
	*p++ = 0x50;
	/* 40: mov %r11d, %eax */
	*p++ = 0x44; *p++ = 0x89; *p++ = 0xd8;
	/* 43: xor %r11d, %r11d */
	*p++ = 0x45; *p++ = 0x31; *p++ = 0xdb;
	/* 46: lock cmpxchg %r11d, %fs:tls */
	*p++ = 0xf0; *p++ = 0x64; *p++ = 0x44; *p++ = 0x0f; *p++ = 0xb1;
	*p++ = 0x1c; *p++ = 0x25;
	memcpy(p, &tls, 4); p += 4;
	/* 57: pop %rax */
	*p++ = 0x58;
	/* 58: jmp 0 */
	*p++ = 0xeb; *p++ = (uint8_t)(0 - 60);
	_Static_assert(60 <= RELIVE_STUB_SIZE, "the stub fits its cell");
	(void)p;
}
