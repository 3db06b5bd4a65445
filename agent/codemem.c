/*
 * agent/codemem.c - memory for stubs and original copies, within reach of
 * the code they serve.
 *
 * A 5-byte jmp reaches +-2 GiB, and a relocated RIP-relative instruction
 * must stay within 2 GiB of what it addresses, so each ops' code lives in a
 * chunk mapped near the patched function.  Code chunks are mapped
 * read+execute and never writable: they are filled through /proc/self/mem,
 * which writes through the page protection, before any thread can reach
 * them.  That keeps relive working where writable+executable memory is
 * forbidden, and leaves no page writable and executable at once.
 * Data chunks (the slots) are read+write and never executable.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "agent.h"

#define CODE_CHUNK (64 * 1024)
#define DATA_CHUNK (8 * 1024)
#define REACH ((uintptr_t)1 << 31)
#define MARGIN ((uintptr_t)16 << 20)

struct chunk {
	uintptr_t base;
	size_t size, used;
	int prot;
	struct chunk *next;
};

static struct chunk *chunks;

static bool within(uintptr_t a, uintptr_t b, size_t len)
{
	uintptr_t lo = a < b ? a : b, hi = a < b ? b + len : a + len;

	return hi - lo < REACH - MARGIN;
}

/* Finds a free range of size len as close as possible to near, from the
 * process's own memory map. */
static uintptr_t free_range_near(uintptr_t near, size_t len)
{
	char buf[8192];
	uintptr_t prev_end = 0x10000, best = 0, best_dist = ~(uintptr_t)0;
	size_t have = 0;
	ssize_t n;
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	for (;;) {
		char *line, *nl;

		n = read(fd, buf + have, sizeof(buf) - 1 - have);
		if (n <= 0)
			break;
		have += n;
		buf[have] = '\0';
		line = buf;
		while ((nl = strchr(line, '\n'))) {
			unsigned long lo, hi;

			*nl = '\0';
			if (sscanf(line, "%lx-%lx", &lo, &hi) == 2) {
				/* gap [prev_end, lo) */
				if (lo > prev_end && lo - prev_end >= len) {
					uintptr_t cand, dist;

					if (near < prev_end)
						cand = prev_end;
					else if (near + len > lo)
						cand = lo - len;
					else
						cand = near & ~(uintptr_t)0xfff;
					dist = cand > near ? cand - near :
							     near - cand;
					if (dist < best_dist) {
						best = cand;
						best_dist = dist;
					}
				}
				if (hi > prev_end)
					prev_end = hi;
			}
			line = nl + 1;
		}
		have = strlen(line);
		memmove(buf, line, have);
	}
	close(fd);
	if (!best || !within(best, near, len))
		return 0;
	return best;
}

static struct chunk *chunk_new(uintptr_t near, size_t size, int prot)
{
	struct chunk *c = calloc(1, sizeof(*c));
	int tries;

	if (!c)
		return NULL;
	for (tries = 0; tries < 8; tries++) {
		uintptr_t at = free_range_near(near, size);
		void *p;

		if (!at)
			break;
		p = mmap((void *)at, size, prot,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1,
			 0);
		if (p == MAP_FAILED) {
			if (errno == EEXIST)
				continue; /* raced with another mapping */
			break;
		}
		c->base = (uintptr_t)p;
		c->size = size;
		c->prot = prot;
		c->next = chunks;
		chunks = c;
		return c;
	}
	free(c);
	return NULL;
}

static void *chunk_take(uintptr_t near, size_t len, size_t csize, int prot)
{
	struct chunk *c;

	len = (len + 15) & ~(size_t)15;
	for (c = chunks; c; c = c->next)
		if (c->prot == prot && c->size - c->used >= len &&
		    within(c->base + c->used, near, len))
			break;
	if (!c)
		c = chunk_new(near, csize, prot);
	if (!c)
		return NULL;
	c->used += len;
	return (void *)(c->base + c->used - len);
}

int codemem_alloc(uintptr_t near, uint8_t **code, size_t codesize,
		  void **data, size_t datasize)
{
	*code = chunk_take(near, codesize, CODE_CHUNK, PROT_READ | PROT_EXEC);
	if (!*code)
		return -ENOMEM;
	/* The data must be within reach of the stub's RIP-relative loads. */
	*data = chunk_take((uintptr_t)*code, datasize, DATA_CHUNK,
			   PROT_READ | PROT_WRITE);
	if (!*data)
		return -ENOMEM;
	return 0;
}

/* /proc/self/mem, kept open for the length of one request (under
 * agent_lock), so a patch of many functions opens it once; it is never
 * left open between requests. */
static int memfd = -1;

void codemem_begin(void)
{
	if (memfd < 0)
		memfd = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
}

void codemem_end(void)
{
	if (memfd >= 0)
		close(memfd);
	memfd = -1;
}

int codemem_write(void *dst, const void *src, size_t len)
{
	int fd = memfd >= 0 ? memfd : open("/proc/self/mem", O_RDWR | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = pwrite(fd, src, len, (off_t)(uintptr_t)dst);
	if (fd != memfd)
		close(fd);
	return n == (ssize_t)len ? 0 : -1;
}
