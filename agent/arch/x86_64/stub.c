/*
 * agent/arch/x86_64/stub.c - the per-function stub and dispatcher (kernel:
 * klp_ftrace_handler).
 *
 * The entry jump of a patched function lands on the stub, which picks the
 * version for the calling thread:
 *
 *     mov    %fs:TLS, %r11d        the thread's state word
 *     cmp    switched(%rip), %r11d
 *     mov    before(%rip), %r11    unswitched thread (and steady state)
 *     cmove  after(%rip), %r11     switched thread: the new world
 *     jmp    *%r11
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
 * (static chain) are untouched.  No lock, no syscall.
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
	/* 9: cmp switched(%rip), %r11d */
	*p++ = 0x44; *p++ = 0x3b; *p++ = 0x1d;
	put_rel32(p, at + 16, switched); p += 4;
	/* 16: mov before(%rip), %r11 (mov leaves the flags alone) */
	*p++ = 0x4c; *p++ = 0x8b; *p++ = 0x1d;
	put_rel32(p, at + 23, before); p += 4;
	/* 23: cmove after(%rip), %r11 */
	*p++ = 0x4c; *p++ = 0x0f; *p++ = 0x44; *p++ = 0x1d;
	put_rel32(p, at + 31, after); p += 4;
	/* 31: jmp *%r11 */
	*p++ = 0x41; *p++ = 0xff; *p++ = 0xe3;
	(void)p;
}
