/*
 * tests/targets/abi_asm.S - prologues a compiler will not produce on
 * demand.  Each function has CFI, so unwinders can walk through it.
 */

	.section .rodata
	.balign 4
.Lone:
	.long 1

/*
 * page_cross starts at offset 4094 of a 4 KiB-aligned block: its first
 * five bytes (push %rbp; mov %rsp,%rbp; the first byte of a RIP-relative
 * load) lie on two pages.  int page_cross(int x): x + 1.
 */
	.section .text.relive_pagecross,"ax",@progbits
	.balign 4096
	.skip 4094, 0xcc
	.globl page_cross
	.type page_cross, @function
page_cross:
	.cfi_startproc
	push %rbp
	.cfi_def_cfa_offset 16
	.cfi_offset %rbp, -16
	mov %rsp, %rbp
	.cfi_def_cfa_register %rbp
	mov .Lone(%rip), %eax
	add %edi, %eax
	pop %rbp
	.cfi_def_cfa %rsp, 8
	ret
	.cfi_endproc
	.size page_cross, .-page_cross

/*
 * tiny_value is four bytes, one less than a jump, and after_tiny starts
 * right after it: redirecting tiny_value would overwrite after_tiny.
 * int tiny_value(int x): x + 1.  int after_tiny(int x): x + 2.
 */
	.text
	.balign 16
	.globl tiny_value
	.type tiny_value, @function
tiny_value:
	.cfi_startproc
	lea 1(%rdi), %eax
	ret
	.cfi_endproc
	.size tiny_value, .-tiny_value

	.globl after_tiny
	.type after_tiny, @function
after_tiny:
	.cfi_startproc
	lea 2(%rdi), %eax
	ret
	.cfi_endproc
	.size after_tiny, .-after_tiny

/*
 * backjump_sum's loop branches back to offset 4, inside the five bytes a
 * jump at the entry would overwrite.  int backjump_sum(int n):
 * n + (n-1) + ... + 1 for n > 0, n otherwise.
 */
	.balign 16
	.globl backjump_sum
	.type backjump_sum, @function
backjump_sum:
	.cfi_startproc
	mov %edi, %ecx          /* 2 bytes */
	xor %eax, %eax          /* 2 bytes */
.Lloop:                         /* offset 4 */
	add %ecx, %eax
	dec %ecx
	jg .Lloop
	ret
	.cfi_endproc
	.size backjump_sum, .-backjump_sum

/*
 * Landings: changing only the first byte of a function's entry into e9
 * (jmp rel32) makes a jump whose operand is the four bytes already there.
 * far_landing starts with `mov $0xc0000000, %eax` (b8 00 00 00 c0): that
 * jump leads 1 GiB below it, where nothing is mapped.  near_landing starts
 * with `mov $0x10, %eax` (b8 10 00 00 00): that jump leads 16 bytes past
 * its first five, into the program's own code.
 * int far_landing(int x): x + 1.  int near_landing(int x): x + 2.
 */
	.balign 16
	.globl far_landing
	.type far_landing, @function
far_landing:
	.cfi_startproc
	mov $0xc0000000, %eax
	lea 1(%rdi), %eax
	ret
	.cfi_endproc
	.size far_landing, .-far_landing

	.balign 16
	.globl near_landing
	.type near_landing, @function
near_landing:
	.cfi_startproc
	mov $0x10, %eax
	lea 2(%rdi), %eax
	ret
	.cfi_endproc
	.size near_landing, .-near_landing

	.section .note.GNU-stack,"",@progbits
