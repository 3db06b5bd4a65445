/*
 * agent/warm.c - the agent's own thread makes ready, before any request,
 * what every request would otherwise pay for the first time in each
 * process.
 *
 * A request in a process where the agent was preloaded used to spend
 * about a third of its CPU time on work that does not depend on the
 * patch: the thread's first malloc creating its arena (an mmap, an
 * mprotect, a page fault per new page of heap), and a page fault at the
 * first touch of each page of its stack, of the agent's code and of the
 * libraries it calls (Zydis's decoder and its tables, libelf, parts of the
 * C library), and of the vDSO's clock: 30 of a small patch's 45 faults.
 * On a virtual machine every fault is an exit to the hypervisor.  For
 * `relive patch --all` over a thousand preloaded processes, that was paid
 * a thousand times on the critical path; here it is paid once per
 * process, when the agent starts, while nothing waits.
 * docs/performance.md ("Many processes") has the measurements.
 *
 * A present page-table entry is not all: on the machines measured, the
 * first access to a page by the process is what costs (on a virtual
 * machine, the hypervisor's side of the mapping is made then), even after
 * its pages had been populated (MADV_POPULATE_READ).  So the agent's own
 * pages are read, one byte per page.  The C library is only populated:
 * reading all of it cost more at start (0.55 ms) than it saved a request.
 *
 * libelf and Zydis are not loaded here: relive reads the symbol tables,
 * decodes the entries, finds the direct calls and resolves the references
 * a request needs (relive/resolution.c, relive/sites.c), so most patches
 * never need them, and a patch that does loads them and holds them while
 * it is listed (agent/libs.c).  Until round 28 they were loaded and their
 * decoder run once here, which cost every preloaded process about 2.3 ms
 * of CPU at start and 0.8 MB of memory (PSS), patched or not; a patch that
 * needs them now pays about 2 ms more once (docs/performance.md, round
 * 29).
 *
 * Only where the agent was preloaded (`relive run`): an injected agent
 * starts its thread when the first request is about to be served, so
 * nothing would be gained, and the code it makes ready (all of the C
 * library's, for one) is more than a request runs.  On `relive patch
 * --all` of 1000 unprepared processes, warming there showed no gain (4.4
 * and 5.7 s without, 4.9 and 5.6 s with, alternating, on a busy
 * machine).
 *
 * The cost: about 110 KiB of memory touched in every preloaded process
 * (the heap and stack below, page tables, the first code and data chunks'
 * pages and a page of the control block), whether it is patched or not,
 * and about 0.25-0.3 ms of the agent's thread's CPU when it starts.
 *
 * Nothing here can fail in a way that matters: each step that the kernel
 * or the C library refuses is skipped, and the request then pays for it
 * as before.
 */
#include <dlfcn.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 /* Linux 5.14 */
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* Heap the thread takes and gives back at once: about what a request of
 * a small patch allocates (the patch's functions, symbol names, the
 * listing), in pieces below malloc's mmap threshold so that they come
 * from the thread's arena and stay there once freed. */
#define WARM_HEAP_PIECES 4
#define WARM_HEAP_PIECE (16 * 1024)

/* Stack a request of a small patch reaches (about 25 KiB measured), of the
 * thread's 1 MiB (service.c). */
#define WARM_STACK (32 * 1024)

static void warm_heap(void)
{
	void *p[WARM_HEAP_PIECES];
	int i;

	for (i = 0; i < WARM_HEAP_PIECES; i++) {
		p[i] = malloc(WARM_HEAP_PIECE);
		if (p[i])
			memset(p[i], 0, WARM_HEAP_PIECE);
	}
	for (i = WARM_HEAP_PIECES - 1; i >= 0; i--)
		free(p[i]);
}

/* Touches the pages of stack below the caller's frame that a request
 * will use.  Not inlined, so that its frame is below the caller's. */
__attribute__((noinline)) static void warm_stack(void)
{
	volatile char pages[WARM_STACK];

	for (size_t i = 0; i < sizeof(pages); i += 4096)
		pages[i] = 0;
	pages[sizeof(pages) - 1] = 0;
}

static bool is_libc(const char *path)
{
	const char *bn = strrchr(path, '/');

	return !strncmp(bn ? bn + 1 : path, "libc.so", 7);
}

/* The objects whose code and read-only data a request runs through: the
 * agent itself (found by its own address) and the C library, parts of
 * which only a request runs in most programs. */
static bool is_agent_library(const char *path, uintptr_t base,
			     uintptr_t self_base)
{
	return base == self_base || is_libc(path);
}

static int warm_object(struct dl_phdr_info *info, size_t size, void *arg)
{
	uintptr_t self_base = *(uintptr_t *)arg;
	long pg = sysconf(_SC_PAGESIZE);
	bool touch;

	(void)size;
	if (!info->dlpi_name ||
	    !is_agent_library(info->dlpi_name, info->dlpi_addr, self_base))
		return 0;
	touch = !is_libc(info->dlpi_name);
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t lo, hi;

		/* Code and read-only data; writable segments are the
		 * object's own copy, faulted in by whoever writes. */
		if (ph->p_type != PT_LOAD || (ph->p_flags & PF_W) || pg <= 0)
			continue;
		lo = (info->dlpi_addr + ph->p_vaddr) & ~((uintptr_t)pg - 1);
		hi = (info->dlpi_addr + ph->p_vaddr + ph->p_filesz +
		      (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1);
		(void)madvise((void *)lo, hi - lo, MADV_POPULATE_READ);
		if (touch)
			for (; lo < hi; lo += (uintptr_t)pg)
				(void)*(volatile const char *)lo;
	}
	return 0;
}

/* Set by agent/preload.c's shim for the time of its dlopen of the
 * agent, so seen by the agent's constructor only when preloaded. */
#define PRELOAD_ENV "RELIVE_PRELOAD_AGENT"

static bool warm_wanted;

void warm_choose(void)
{
	warm_wanted = getenv(PRELOAD_ENV) != NULL;
}

void warm_thread(void)
{
	Dl_info di;
	uintptr_t self_base = 0;
	struct timespec ts;

	if (!warm_wanted)
		return;
	warm_heap();
	warm_stack();
	/* The clock's data page (the vDSO's), read at every paced step. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (dladdr((void *)warm_thread, &di))
		self_base = (uintptr_t)di.dli_fbase;
	dl_iterate_phdr(warm_object, &self_base);
	/* The first stub's and its data's pages (codemem.c), and the page of
	 * the control block that a request writes and relive does not (its
	 * status and message): the block is initialised data, the agent
	 * file's page until written, so each process's first request took a
	 * page fault there.  Populating writes nothing: relive may be writing
	 * a request into the block meanwhile. */
	codemem_prepare();
	{
		struct relive_ctl *c = &relive_agent_ctl;
		uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
		uintptr_t lo = (uintptr_t)&c->status & ~(pg - 1);
		uintptr_t hi = ((uintptr_t)(c->msg + sizeof(c->msg)) + pg - 1) &
			       ~(pg - 1);

		(void)madvise((void *)lo, hi - lo, MADV_POPULATE_WRITE);
	}
}
