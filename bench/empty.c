/*
 * bench/empty.c - a library with nothing in it: bench/machcost times its
 * first dlopen() in a process, what loading any library costs here.
 */
int bench_empty;
