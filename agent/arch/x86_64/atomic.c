/*
 * agent/arch/x86_64/atomic.c - changing code other threads may be running,
 * in one store.
 *
 * A steady-state entry jump, or a direct call, is retargeted in place
 * (agent/direct.c): only its 4-byte operand changes.  Those bytes always lie in
 * one aligned 16-byte block when the jump starts at most 11 bytes into its
 * block, and a locked cmpxchg16b replaces such a block in one indivisible
 * store, the way JIT compilers retarget a call another thread may be
 * executing: a CPU fetching the jump sees the old operand or the new one,
 * never a mix.
 */
#include <stdint.h>
#include <string.h>

#include "../../arch.h"

int relive_arch_store16(void *block, const uint8_t old[16],
			const uint8_t new[16])
{
	uint64_t o[2], n[2];
	uint8_t ok;

	if ((uintptr_t)block & 15)
		return -1;
	memcpy(o, old, 16);
	memcpy(n, new, 16);
	__asm__ volatile("lock cmpxchg16b %1\n\tsete %0"
			 : "=q"(ok), "+m"(*(volatile __int128 *)block),
			   "+a"(o[0]), "+d"(o[1])
			 : "b"(n[0]), "c"(n[1])
			 : "memory", "cc");
	return ok ? 0 : -1;
}
