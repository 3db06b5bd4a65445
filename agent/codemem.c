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
 * Data chunks (the stubs' targets) are read+write and never executable.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
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

/*
 * The process's mappings in address order, read from /proc/self/maps in
 * one pass.  Returns a malloc'd array (the caller frees it) with *n set, or
 * NULL.
 */
static struct codemem_vma *read_vmas(size_t *n)
{
	struct codemem_vma *v = NULL;
	size_t cap = 0, have = 0;
	char buf[8192];
	ssize_t got;
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);

	*n = 0;
	if (fd < 0)
		return NULL;
	for (;;) {
		char *line, *nl;

		got = read(fd, buf + have, sizeof(buf) - 1 - have);
		if (got <= 0)
			break;
		have += got;
		buf[have] = '\0';
		line = buf;
		while ((nl = strchr(line, '\n'))) {
			struct codemem_vma m = { 0 };
			char *e;

			*nl = '\0';
			m.lo = strtoul(line, &e, 16);
			if (*e == '-') {
				m.hi = strtoul(e + 1, &e, 16);
				if (e[0] == ' ' && e[1] && e[2] && e[3]) {
					m.prot = (e[1] == 'r' ? PROT_READ : 0) |
						 (e[2] == 'w' ? PROT_WRITE : 0) |
						 (e[3] == 'x' ? PROT_EXEC : 0);
					m.stack = strstr(e, " [stack]") != NULL;
				}
				if (*n == cap) {
					size_t c = cap ? 2 * cap : 128;
					struct codemem_vma *nv =
						realloc(v, c * sizeof(*v));

					if (!nv)
						goto fail;
					v = nv;
					cap = c;
				}
				v[(*n)++] = m;
			}
			line = nl + 1;
		}
		have = strlen(line);
		memmove(buf, line, have);
	}
	close(fd);
	return v;
fail:
	close(fd);
	free(v);
	*n = 0;
	return NULL;
}

/*
 * The map as the thread serving a request last read it, kept for the rest
 * of the request (codemem_begin to codemem_end) and kept up to date with
 * the agent's own mappings: a patch of one function used to read the map
 * four times.  Another thread's mapping made meanwhile is missing from it;
 * what depends on that (a free range found here) is checked by the
 * kernel (MAP_FIXED_NOREPLACE), and a failure drops the copy.  Any other
 * thread, and any thread outside a request, reads the map afresh.
 */
static struct {
	struct codemem_vma *v;
	size_t n, cap;
	pthread_t owner;      /* the serving thread, when busy */
	bool busy, valid;
} snap;

static bool snap_mine(void)
{
	/* pthread_self() reads the thread pointer: no system call (the
	 * map's users ask this dozens of times per request) */
	return snap.busy && pthread_equal(snap.owner, pthread_self());
}

void codemem_vmas_forget(void)
{
	snap.valid = false;
}

/* The agent mapped [lo, hi) with prot itself. */
static void snap_insert(uintptr_t lo, uintptr_t hi, int prot)
{
	size_t i;

	if (!snap_mine() || !snap.valid)
		return;
	if (snap.n == snap.cap) {
		size_t c = snap.cap ? 2 * snap.cap : 64;
		struct codemem_vma *nv = realloc(snap.v, c * sizeof(*nv));

		if (!nv) {
			snap.valid = false;
			return;
		}
		snap.v = nv;
		snap.cap = c;
	}
	for (i = snap.n; i > 0 && snap.v[i - 1].lo > lo; i--)
		snap.v[i] = snap.v[i - 1];
	snap.v[i] = (struct codemem_vma){ .lo = lo, .hi = hi, .prot = prot };
	snap.n++;
}

struct codemem_vma *codemem_vmas(size_t *n)
{
	struct codemem_vma *v;

	if (!snap_mine())
		return read_vmas(n);
	if (!snap.valid) {
		free(snap.v);
		snap.v = read_vmas(&snap.n);
		snap.cap = snap.n;
		snap.valid = snap.v != NULL;
		if (!snap.valid)
			return NULL;
	}
	v = malloc((snap.n ? snap.n : 1) * sizeof(*v));
	if (!v)
		return NULL;
	memcpy(v, snap.v, snap.n * sizeof(*v));
	*n = snap.n;
	return v;
}

/*
 * PROCMAP_QUERY (Linux 6.11, include/uapi/linux/fs.h; declared here for
 * older headers): the mapping that holds one address, asked of
 * /proc/self/maps without the kernel writing out the whole map.  Reading
 * the map of a process with many threads and patched functions took the
 * agent 0.6 ms at each completed transition.
 */
struct vma_query {
	uint64_t size;
	uint64_t query_flags;
	uint64_t query_addr;
	uint64_t vma_start;
	uint64_t vma_end;
	uint64_t vma_flags;
	uint64_t vma_page_size;
	uint64_t vma_offset;
	uint64_t inode;
	uint32_t dev_major;
	uint32_t dev_minor;
	uint32_t vma_name_size;
	uint32_t build_id_size;
	uint64_t vma_name_addr;
	uint64_t build_id_addr;
};
#define VMA_QUERY _IOWR('f', 17, struct vma_query)
#define VMA_QUERY_READABLE 0x1
#define VMA_QUERY_WRITABLE 0x2
#define VMA_QUERY_EXECUTABLE 0x4

static int mapsfd = -1;       /* /proc/self/maps for one request */
/* The kernel has no PROCMAP_QUERY (it said ENOTTY or EINVAL once), or
 * RELIVE_NO_VMA_QUERY in the process's environment asks for the way
 * kernels before 6.11 take (the tests use it); -1: not known yet. */
static int no_vma_query = -1;

static int vma_query(int fd, uintptr_t addr, struct codemem_vma *out)
{
	struct vma_query q;

	memset(&q, 0, sizeof(q));
	q.size = sizeof(q);
	q.query_addr = addr;
	if (ioctl(fd, VMA_QUERY, &q)) {
		if (errno == ENOTTY || errno == EINVAL)
			no_vma_query = 1;
		return errno == ENOENT ? 0 : -1;
	}
	out->lo = q.vma_start;
	out->hi = q.vma_end;
	out->prot = (q.vma_flags & VMA_QUERY_READABLE ? PROT_READ : 0) |
		    (q.vma_flags & VMA_QUERY_WRITABLE ? PROT_WRITE : 0) |
		    (q.vma_flags & VMA_QUERY_EXECUTABLE ? PROT_EXEC : 0);
	out->stack = false;
	return 1;
}

/*
 * The mapping that holds addr, as the kernel has it now (stack is not
 * filled in).  Returns 1 with *out set, 0 if nothing is mapped at addr, -1
 * if it cannot tell.  Without PROCMAP_QUERY, from the map (codemem_vmas).
 */
int codemem_vma_at(uintptr_t addr, struct codemem_vma *out)
{
	struct codemem_vma *v;
	size_t i, n;
	int rc = -1;

	if (no_vma_query < 0)
		no_vma_query = getenv("RELIVE_NO_VMA_QUERY") != NULL;
	if (!no_vma_query) {
		bool mine = snap_mine();
		int fd = mine && mapsfd >= 0 ? mapsfd :
			 open("/proc/self/maps", O_RDONLY | O_CLOEXEC);

		if (fd >= 0) {
			rc = vma_query(fd, addr, out);
			if (mine)
				mapsfd = fd; /* closed by codemem_end() */
			else
				close(fd);
		}
		if (!no_vma_query)
			return rc;
	}
	if (!(v = codemem_vmas(&n)))
		return -1;
	rc = 0;
	for (i = 0; i < n; i++)
		if (addr >= v[i].lo && addr < v[i].hi) {
			*out = v[i];
			rc = 1;
			break;
		}
	free(v);
	return rc;
}

/* Finds a free range of size len as close as possible to near, from the
 * process's own memory map. */
static uintptr_t free_range_near(uintptr_t near, size_t len)
{
	uintptr_t prev_end = 0x10000, best = 0, best_dist = ~(uintptr_t)0;
	size_t i, n;
	struct codemem_vma *v = codemem_vmas(&n);

	for (i = 0; i < n; i++) {
		uintptr_t lo = v[i].lo, hi = v[i].hi;

		/* gap [prev_end, lo) */
		if (lo > prev_end && lo - prev_end >= len) {
			uintptr_t cand, dist;

			if (near < prev_end)
				cand = prev_end;
			else if (near + len > lo)
				cand = lo - len;
			else
				cand = near & ~(uintptr_t)0xfff;
			dist = cand > near ? cand - near : near - cand;
			if (dist < best_dist) {
				best = cand;
				best_dist = dist;
			}
		}
		if (hi > prev_end)
			prev_end = hi;
	}
	free(v);
	if (!best || !within(best, near, len))
		return 0;
	return best;
}

static bool overlaps(uintptr_t a, uintptr_t b, uintptr_t lo, uintptr_t hi)
{
	return a < hi && lo < b;
}

/*
 * A chunk where the kernel would put any mapping, if that is within reach
 * of near and outside the heap's and the main stack's room: for a
 * function of a library, mapped by the loader near where the kernel puts
 * new mappings, it nearly always is, and the whole map need not be read
 * (5% of a small patch's request in `relive patch --all`).  Only tried
 * when near is within reach of the agent's own code, itself a library;
 * NULL when not taken.
 */
static void *chunk_where_kernel_maps(uintptr_t near, size_t size, int prot)
{
	uintptr_t heap_lo, heap_hi, stk_lo, stk_hi, at;
	void *p;

	if (!within((uintptr_t)chunk_where_kernel_maps, near, size))
		return NULL;
	p = mmap(NULL, size, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	at = (uintptr_t)p;
	codemem_growth_zones(&heap_lo, &heap_hi, &stk_lo, &stk_hi);
	if (within(at, near, size) &&
	    !(heap_hi && overlaps(at, at + size, heap_lo, heap_hi)) &&
	    !(stk_hi && overlaps(at, at + size, stk_lo, stk_hi)))
		return p;
	munmap(p, size);
	return NULL;
}

static struct chunk *chunk_new(uintptr_t near, size_t size, int prot)
{
	struct chunk *c = calloc(1, sizeof(*c));
	void *p;
	int tries;

	if (!c)
		return NULL;
	p = chunk_where_kernel_maps(near, size, prot);
	for (tries = 0; !p && tries < 8; tries++) {
		uintptr_t at = free_range_near(near, size);

		if (!at)
			break;
		p = mmap((void *)at, size, prot,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1,
			 0);
		if (p == MAP_FAILED) {
			p = NULL;
			if (errno == EEXIST) {
				/* raced with another mapping */
				codemem_vmas_forget();
				continue;
			}
			break;
		}
	}
	if (!p) {
		free(c);
		return NULL;
	}
	snap_insert((uintptr_t)p, (uintptr_t)p + size, prot);
	c->base = (uintptr_t)p;
	c->size = size;
	c->prot = prot;
	c->next = chunks;
	chunks = c;
	return c;
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

void *codemem_code(uintptr_t near, size_t len)
{
	return chunk_take(near, len, CODE_CHUNK, PROT_READ | PROT_EXEC);
}

void *codemem_data(uintptr_t near, size_t len)
{
	return chunk_take(near, len, DATA_CHUNK, PROT_READ | PROT_WRITE);
}

/*
 * Where the agent was preloaded, before any request (warm.c): one code and
 * one data chunk near the agent's own code, their first pages made.  The
 * first request's stubs and data then go there whenever the functions are
 * within reach (a library's nearly always are), and it takes neither the
 * two mappings nor the two page faults of fresh memory (a fault is an exit
 * to the hypervisor on a virtual machine: tens of microseconds with a
 * thousand processes alive, docs/performance.md, round 19).  The code
 * page is made by writing a zero byte through /proc/self/mem, as stubs
 * are written: the chunk stays read+execute.  Costs two pages of memory
 * and the chunks' address space in every preloaded process.  Under
 * agent_lock, like every request.
 */
void codemem_prepare(void)
{
	static const uint8_t zero;
	struct chunk *code, *data;

	pthread_mutex_lock(&agent_lock);
	code = chunk_new((uintptr_t)codemem_prepare, CODE_CHUNK,
			 PROT_READ | PROT_EXEC);
	data = chunk_new((uintptr_t)codemem_prepare, DATA_CHUNK,
			 PROT_READ | PROT_WRITE);
	if (code)
		(void)codemem_write((void *)code->base, &zero, 1);
	if (data)
		memset((void *)data->base, 0, 1);
	pthread_mutex_unlock(&agent_lock);
}

/* --- landings ------------------------------------------------------------
 *
 * A landing is a stub at the one address a site's entry jump reaches when
 * only the site's first byte changes (relive_arch_landing).  The address
 * is fixed by the function's own bytes, so it is taken only where nothing
 * is mapped (MAP_FIXED_NOREPLACE), never where the heap or the main stack
 * would grow, and at most LANDING_MAX times: each costs a page.
 */
#define LANDING_MAX 1024
#define LANDING_USES 8
#define HEAP_ROOM ((uintptr_t)1 << 30)
#define STACK_GAP ((uintptr_t)1 << 20)

struct landing {
	uintptr_t base;
	size_t size;
	unsigned nused;
	struct {
		uintptr_t lo, hi;
	} used[LANDING_USES];
};

/* Sorted by address (they never overlap): a patch of 10000 functions
 * looks for each site's landing among up to LANDING_MAX of them. */
static struct landing *landings[LANDING_MAX];
static unsigned nlandings;

/* The index of the first landing that ends after at. */
static unsigned landing_after(uintptr_t at)
{
	unsigned lo = 0, hi = nlandings;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (landings[mid]->base + landings[mid]->size <= at)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The top of the main thread's stack (glibc's dynamic loader). */
extern void *__libc_stack_end;

static int landing_off = -1; /* RELIVE_NO_LANDING in the environment */
static uintptr_t stack_lo, stack_hi;

/* Where the main thread's stack may grow: from its mapping down by its
 * limit (1 GiB when unlimited), and the kernel's guard gap. */
static void find_stack(void)
{
	struct codemem_vma sv;
	struct rlimit rl;
	uintptr_t room = 8 << 20;
	size_t i, n;
	struct codemem_vma *v;

	/* The mapping that holds the top of the main thread's stack (the C
	 * library's __libc_stack_end): one query, not the whole map. */
	if (__libc_stack_end &&
	    codemem_vma_at((uintptr_t)__libc_stack_end, &sv) == 1 &&
	    !(sv.prot & PROT_EXEC)) {
		stack_lo = sv.lo;
		stack_hi = sv.hi;
	} else if ((v = codemem_vmas(&n))) {
		for (i = 0; i < n; i++)
			if (v[i].stack) {
				stack_lo = v[i].lo;
				stack_hi = v[i].hi;
				break;
			}
		free(v);
	}
	if (!getrlimit(RLIMIT_STACK, &rl))
		room = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > HEAP_ROOM ?
			       HEAP_ROOM : rl.rlim_cur;
	if (stack_hi)
		stack_lo = stack_lo > room + STACK_GAP ?
				   stack_lo - room - STACK_GAP : 0;
}

/* Where the heap and the main stack may grow, never to be taken: the
 * first HEAP_ROOM above the break, and the stack's limit below it. */
void codemem_growth_zones(uintptr_t *heap_lo, uintptr_t *heap_hi,
			  uintptr_t *stk_lo, uintptr_t *stk_hi)
{
	uintptr_t brk_now = (uintptr_t)sbrk(0);

	if (landing_off < 0) {
		landing_off = getenv("RELIVE_NO_LANDING") != NULL;
		find_stack();
	}
	*heap_lo = brk_now == (uintptr_t)-1 ? 0 : brk_now;
	*heap_hi = brk_now == (uintptr_t)-1 ? 0 : brk_now + HEAP_ROOM;
	*stk_lo = stack_lo;
	*stk_hi = stack_hi;
}

bool codemem_landing(uintptr_t at, size_t len)
{
	uintptr_t end = at + len, page = at & ~(uintptr_t)4095;
	uintptr_t heap_lo, heap_hi, stk_lo, stk_hi;
	size_t size = ((end + 4095) & ~(uintptr_t)4095) - page;
	struct landing *l;
	unsigned i;
	void *p;

	codemem_growth_zones(&heap_lo, &heap_hi, &stk_lo, &stk_hi);
	if (landing_off || end < at)
		return false;
	if (heap_hi && overlaps(at, end, heap_lo, heap_hi))
		return false;
	if (stk_hi && overlaps(at, end, stk_lo, stk_hi))
		return false;
	i = landing_after(at);
	l = i < nlandings ? landings[i] : NULL;
	if (l && overlaps(at, end, l->base, l->base + l->size)) {
		/* a page of ours: share it if the range is free there */
		if (at < l->base || end > l->base + l->size ||
		    l->nused == LANDING_USES)
			return false;
		for (unsigned k = 0; k < l->nused; k++)
			if (overlaps(at, end, l->used[k].lo, l->used[k].hi))
				return false;
		l->used[l->nused].lo = at;
		l->used[l->nused].hi = end;
		l->nused++;
		return true;
	}
	if (nlandings >= LANDING_MAX || !(l = calloc(1, sizeof(*l))))
		return false;
	p = mmap((void *)page, size, PROT_READ | PROT_EXEC,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (p == MAP_FAILED || p != (void *)page) {
		/* taken (EEXIST), or a kernel that took the address as a
		 * mere hint */
		if (p != MAP_FAILED)
			munmap(p, size);
		free(l);
		return false;
	}
	snap_insert(page, page + size, PROT_READ | PROT_EXEC);
	l->base = page;
	l->size = size;
	l->used[0].lo = at;
	l->used[0].hi = end;
	l->nused = 1;
	memmove(&landings[i + 1], &landings[i],
		(nlandings - i) * sizeof(landings[0]));
	landings[i] = l;
	nlandings++;
	return true;
}

void codemem_landing_drop(uintptr_t at)
{
	unsigned i = landing_after(at);
	struct landing *l = i < nlandings ? landings[i] : NULL;

	if (!l || at < l->base)
		return;
	for (unsigned k = 0; k < l->nused; k++)
		if (l->used[k].lo == at) {
			l->used[k] = l->used[--l->nused];
			if (l->nused)
				return;
			/* never reachable: nothing points there yet */
			munmap((void *)l->base, l->size);
			codemem_vmas_forget();
			memmove(&landings[i], &landings[i + 1],
				(nlandings - i - 1) * sizeof(landings[0]));
			nlandings--;
			free(l);
			return;
		}
}

/* /proc/self/mem, kept open for the length of one request (under
 * agent_lock), so a patch of many functions opens it once; it is never
 * left open between requests. */
static int memfd = -1;

void codemem_begin(void)
{
	if (memfd < 0)
		memfd = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
	snap.owner = pthread_self();
	snap.busy = true;
	snap.valid = false;
}

void codemem_end(void)
{
	if (memfd >= 0)
		close(memfd);
	memfd = -1;
	if (mapsfd >= 0)
		close(mapsfd);
	mapsfd = -1;
	snap.busy = false;
	snap.valid = false;
	free(snap.v);
	snap.v = NULL;
	snap.n = snap.cap = 0;
}

int codemem_read(void *dst, uintptr_t src, size_t len)
{
	int fd = memfd >= 0 ? memfd : open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = pread(fd, dst, len, (off_t)src);
	if (fd != memfd)
		close(fd);
	return n == (ssize_t)len ? 0 : -1;
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
