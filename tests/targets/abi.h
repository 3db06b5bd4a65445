/*
 * tests/targets/abi.h - the functions of the abi target (abi.c, abi_cet.c,
 * abi_asm.S), with their original behaviour.  The patches tests/patches/abi_*.c
 * give each one new behaviour with the same prototype.
 */
#ifndef RELIVE_TEST_ABI_H
#define RELIVE_TEST_ABI_H

/* Ten int arguments, four of them on the stack.
 * Original: a+b+...+j.  Patch abi_ints: 1*a + 2*b + ... + 10*j. */
long many_ints(int a, int b, int c, int d, int e, int f, int g, int h, int i,
	       int j);

/* Ten double arguments, two of them on the stack, and an int among them.
 * Original: a+b+...+j + k.  Patch abi_doubles: 1*a + 2*b + ... + 10*j - k. */
double many_doubles(double a, double b, double c, double d, double e,
		    double f, double g, double h, double i, double j, int k);

/* Returned in memory (hidden pointer in %rdi).
 * Original: {x, x+1, x+2}.  Patch abi_struct: {10x, 20x, 30x}. */
struct triple {
	long a, b, c;
};
struct triple make_triple(long x);

/* Returned in %rax and %xmm0.
 * Original: {x, x/2.0}.  Patch abi_struct: {x+100, x*1.5}. */
struct pair {
	long n;
	double d;
};
struct pair make_pair(long x);

/* Variadic: n arguments, alternately long and double (%al = vector count).
 * Original: their sum.  Patch abi_variadic: 10 * their sum. */
double var_sum(int n, ...);

/* Recursion.  Original: n + rec_sum(n-1), i.e. n(n+1)/2.
 * Patch abi_rec: 2n + rec_sum(n-1), i.e. n(n+1). */
long rec_sum(long n);

/* Mutual recursion.  Original: ping(n) = 1 + pong(n-1), pong(n) = 2 +
 * ping(n-1), 0 for n <= 0.  Patch abi_mutual: ping 10 + ..., pong 20 + .... */
long ping(long n);
long pong(long n);

/* Built with -fcf-protection=full: starts with endbr64.
 * Original: x + 1.  Patch abi_cet: x + 100. */
int cet_value(int x);

/* abi_asm.S.  page_cross starts 2 bytes before a 4 KiB boundary, so its
 * first five bytes lie on two pages.  Original: x + 1; patch abi_pagecross:
 * x + 100. */
int page_cross(int x);
/* tiny_value is 4 bytes long, shorter than a jump, and after_tiny follows
 * it at once.  Original: x + 1 and x + 2; patch abi_tiny (tiny_value: x +
 * 100) must be refused. */
int tiny_value(int x);
int after_tiny(int x);
/* backjump_sum's loop jumps back to byte 4, inside the first five bytes.
 * Original: n + (n-1) + ... + 1 for n > 0, n otherwise; patch abi_backjump:
 * -1. */
int backjump_sum(int n);
/* far_landing's entry jump can be a one-byte write (its landing, 1 GiB
 * below it, is free); near_landing's cannot (its landing is in the
 * program's code).  Original: x + 1 and x + 2; patch abi_landing: x + 100
 * and x + 200. */
int far_landing(int x);
int near_landing(int x);

#endif
