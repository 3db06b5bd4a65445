/*
 * bench/calls_loop.S - a loop that calls bench_f with a direct call
 * instruction (call rel32), the way compiled code calls a function of its
 * own object.
 *
 * Why asm: once the transition of calls_fgh completed, relive makes this
 * call lead straight to bench_f_v2 (agent/direct.c, direct calls), and the
 * benchmark compares it with the very same instructions calling bench_f_v2
 * from a copy the target makes within reach of it (calls.c, variant C).
 * Only the call's operand and the loop's address differ, which C code
 * cannot promise.  The copy runs anywhere: the loop has no RIP-relative
 * operand and its only branches are within itself.
 *
 *	long bench_loop_f(long n): the sum of bench_f(i) for i in [0, n)
 *
 * bench_loop_f_call marks the call, so the copy can retarget it; it lies
 * 16 or more bytes into the function (direct calls in a function's first
 * bytes are left alone) and its operand within one 16-byte block.
 */
#if defined(__x86_64__)
	.text
	.globl	bench_loop_f
	.globl	bench_loop_f_call
	.globl	bench_loop_f_end
	.type	bench_loop_f, @function
	.p2align 6
bench_loop_f:
	push	%rbx
	push	%r12
	push	%r13
	mov	%rdi, %r12		/* n */
	xor	%ebx, %ebx		/* i */
	xor	%r13d, %r13d		/* the sum */
	jmp	2f
	.p2align 4
1:	mov	%rbx, %rdi
bench_loop_f_call:
	call	bench_f
	add	%rax, %r13
	inc	%rbx
2:	cmp	%r12, %rbx
	jl	1b
	mov	%r13, %rax
	pop	%r13
	pop	%r12
	pop	%rbx
	ret
bench_loop_f_end:
	.size	bench_loop_f, .-bench_loop_f
#endif
	.section .note.GNU-stack, "", @progbits
