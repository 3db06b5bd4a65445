/*
 * bench/gen.h - the preprocessor generates the many functions of the
 * scale benchmarks: BENCH_REP10000(M, bf_) expands M(bf_0000) ...
 * M(bf_9999), BENCH_REP1000(M, bf_0) the first 1000 of them, and so on.
 * The target defines all 10000 bf_NNNN(); a patch built with
 * -DBENCH_NFUNCS=1|100|1000|10000 replaces the first N.
 */
#ifndef RELIVE_BENCH_GEN_H
#define RELIVE_BENCH_GEN_H

#define BENCH_REP10(M, p) \
	M(p##0) M(p##1) M(p##2) M(p##3) M(p##4) \
	M(p##5) M(p##6) M(p##7) M(p##8) M(p##9)
#define BENCH_REP100(M, p) \
	BENCH_REP10(M, p##0) BENCH_REP10(M, p##1) BENCH_REP10(M, p##2) \
	BENCH_REP10(M, p##3) BENCH_REP10(M, p##4) BENCH_REP10(M, p##5) \
	BENCH_REP10(M, p##6) BENCH_REP10(M, p##7) BENCH_REP10(M, p##8) \
	BENCH_REP10(M, p##9)
#define BENCH_REP1000(M, p) \
	BENCH_REP100(M, p##0) BENCH_REP100(M, p##1) BENCH_REP100(M, p##2) \
	BENCH_REP100(M, p##3) BENCH_REP100(M, p##4) BENCH_REP100(M, p##5) \
	BENCH_REP100(M, p##6) BENCH_REP100(M, p##7) BENCH_REP100(M, p##8) \
	BENCH_REP100(M, p##9)
#define BENCH_REP10000(M, p) \
	BENCH_REP1000(M, p##0) BENCH_REP1000(M, p##1) BENCH_REP1000(M, p##2) \
	BENCH_REP1000(M, p##3) BENCH_REP1000(M, p##4) BENCH_REP1000(M, p##5) \
	BENCH_REP1000(M, p##6) BENCH_REP1000(M, p##7) BENCH_REP1000(M, p##8) \
	BENCH_REP1000(M, p##9)

#endif
