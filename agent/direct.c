/*
 * agent/direct.c - direct entries and direct calls: in steady state, a
 * patched function's entry jump leads straight to the version every thread
 * runs, and the direct calls to it in its own object call that version.
 *
 * Why: through the stub, a call to a patched function takes two jumps, the
 * entry's and the stub's indirect one, which costs as much as a tiny
 * function's whole body.  Once a transition has completed, nothing
 * needs the stub's choice until the next transition over the function, so
 * the entry jump's operand is rewritten to reach the version itself: the
 * same call then costs one direct jump, the least any redirection can.
 *
 * Three parts:
 *
 *  - Reach.  A jmp rel32 reaches +-2 GiB.  A patch's dynamic loader maps it
 *    where it likes: near the libraries (usually within reach of them) and
 *    terabytes away from a position-independent executable.  When a patch
 *    changes the executable, its load is steered: for the length of the
 *    dlopen, every free gap above a chosen window is reserved with
 *    inaccessible, unbacked mappings, so the kernel's top-down search finds
 *    the window first; the reservations are removed when dlopen returns.
 *    The window lies above the heap, leaving it as much room to grow as
 *    reach allows (up to the 1 GiB landings leave it, at least 128 MiB; the
 *    kernel places the break up to 1 GiB above the executable): a heap that
 *    outgrows it continues in mapped memory, as malloc does whenever the
 *    break cannot move.  Another
 *    thread's mapping made meanwhile lands in the window, in the heap's
 *    room or below the executable, never nowhere: the gaps below the window
 *    stay free.  The stack's room is never reserved.
 *
 *  - The write.  Only the jump's 4-byte operand changes.  When those bytes
 *    lie in one aligned 16-byte block (any jump starting at most 11 bytes
 *    into its block: functions are 16-byte aligned, and an endbr64 puts
 *    the jump 4 bytes in), one locked cmpxchg16b replaces the block while
 *    its page is made writable for that instant
 *    (relive_arch_store16): a thread fetching the jump sees the old target
 *    or the new one.  Both targets run the same version, so it does not
 *    matter which.  Where a page cannot be made writable (a system that
 *    forbids writable+executable pages), the entry stays on the stub.
 *
 *  - Taking it back.  Before any transition starts, every direct entry is
 *    pointed at its stub again.  A thread may still run a direct jump it
 *    fetched before that store; it leads to the version of the world every
 *    thread is in until it is switched.  A thread enters the new world only
 *    through a kernel entry made after the store (its ptrace stop, when
 *    the controller switches it, or its birth), and a CPU entering the
 *    kernel discards every instruction it had fetched for the thread: no
 *    switched thread can run a stale direct jump into the version it left.
 *
 * Direct calls go one step further: the entry's jump is still one jump
 * more than the program's own call (10-30% of a call of a tiny function),
 * so every `call rel32` to the function in its object, found once by a
 * scan for the opcode and a decode of the functions holding a match, is
 * rewritten the same way (its operand, in one aligned block) to call the
 * version, and taken back first, to the stub, before any transition.
 * relive makes that scan and decode in the object's file when it checks
 * the patch (relive/calls.c) and sends the calls it found: the agent then
 * only checks each (direct_take_calls), and looks itself only without
 * them (an object loaded later, a patch too large for the table).
 * PLT slots of other objects are direct_plt.c's.
 *
 * RELIVE_NO_DIRECT in the process's environment keeps every entry on its
 * stub and every call as built (benchmarks compare both).
 */
#include <errno.h>
#include <fcntl.h>
#include <elf.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "agent.h"
#include "background.h"
#include "elfsym.h"

#define REACH ((uintptr_t)1 << 31)
#define MARGIN ((uintptr_t)16 << 20)
#define PAGE ((uintptr_t)4096)
#define TOP_OF_USER ((uintptr_t)1 << 47)
#define HEAP_ROOM_MIN ((uintptr_t)128 << 20)

static int direct_state = -1; /* 1: allowed, 0: RELIVE_NO_DIRECT */

bool direct_allowed(void)
{
	if (direct_state < 0)
		direct_state = !getenv("RELIVE_NO_DIRECT");
	return direct_state == 1;
}

/* --- steering a patch's load near the executable ------------------------ */

static struct {
	uintptr_t lo, hi;
} *reserved;
static size_t nreserved;

/* The bytes of address space a shared object's dlopen maps at once (its
 * loadable segments' span plus the largest alignment), or 0. */
static size_t load_span(const char *path)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph;
	uintptr_t lo = ~(uintptr_t)0, hi = 0, align = PAGE;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	unsigned i;

	if (fd < 0)
		return 0;
	if (pread(fd, &eh, sizeof(eh), 0) != sizeof(eh) ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_phentsize != sizeof(ph))
		goto bad;
	for (i = 0; i < eh.e_phnum; i++) {
		if (pread(fd, &ph, sizeof(ph), eh.e_phoff + i * sizeof(ph)) !=
		    sizeof(ph))
			goto bad;
		if (ph.p_type != PT_LOAD)
			continue;
		if (ph.p_vaddr < lo)
			lo = ph.p_vaddr;
		if (ph.p_vaddr + ph.p_memsz > hi)
			hi = ph.p_vaddr + ph.p_memsz;
		if (ph.p_align > align && ph.p_align <= ((uintptr_t)1 << 30))
			align = ph.p_align;
	}
	close(fd);
	if (hi <= lo)
		return 0;
	lo &= ~(PAGE - 1);
	hi = (hi + PAGE - 1) & ~(PAGE - 1);
	return hi - lo + align;
bad:
	close(fd);
	return 0;
}

static void reserve(uintptr_t lo, uintptr_t hi)
{
	void *p;

	if (hi <= lo)
		return;
	p = mmap((void *)lo, hi - lo, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE |
			 MAP_FIXED_NOREPLACE,
		 -1, 0);
	if (p == MAP_FAILED) {
		/* raced, or no room under a limit: only less steering */
		agent_log("cannot reserve %#lx-%#lx: %s", (unsigned long)lo,
			  (unsigned long)hi, strerror(errno));
		return;
	}
	if (p != (void *)lo) {
		munmap(p, hi - lo); /* a kernel that took it as a hint */
		return;
	}
	reserved[nreserved].lo = lo;
	reserved[nreserved].hi = hi;
	nreserved++;
}

/*
 * Before loading the patch at path, which changes code in [lo, hi): makes
 * the loader's next mapping of it land within reach of that code, if a
 * window can be found.  direct_steer_end() must follow the dlopen.
 */
void direct_steer_begin(const char *path, uintptr_t lo, uintptr_t hi)
{
	uintptr_t heap_lo, heap_hi, stk_lo, stk_hi, floor, want, win = 0;
	uintptr_t prev;
	size_t span, n, i;
	struct codemem_vma *v;

	if (!direct_allowed() || !(span = load_span(path)))
		return;
	codemem_growth_zones(&heap_lo, &heap_hi, &stk_lo, &stk_hi);
	/* As much room for the heap as reach allows, up to what landings
	 * leave it, and at least HEAP_ROOM_MIN. */
	floor = (hi > heap_lo ? hi : heap_lo) + HEAP_ROOM_MIN;
	want = lo + REACH - MARGIN - span;
	if (heap_hi && want > heap_hi)
		want = heap_hi;
	want &= ~(PAGE - 1);
	if (want < floor)
		return;
	v = codemem_vmas(&n);
	if (!v)
		return;
	/* The window: the highest free range of span bytes at or below want
	 * and above floor. */
	for (i = 0, prev = PAGE; i <= n; i++) {
		uintptr_t g_lo = prev, g_hi = i < n ? v[i].lo : TOP_OF_USER;
		uintptr_t at = g_hi >= span ? (g_hi - span) & ~(PAGE - 1) : 0;

		if (at > want)
			at = want;
		if (at >= g_lo && at >= floor && at + span <= g_hi)
			win = at;
		if (i < n && v[i].hi > prev)
			prev = v[i].hi;
	}
	if (!win || !(reserved = calloc(n + 1, sizeof(*reserved)))) {
		free(v);
		return;
	}
	/* Every free gap above it (a gap too small for the patch costs one
	 * mapping, and saves reading the patch's exact mapping size). */
	for (i = 0, prev = PAGE; i <= n; i++) {
		uintptr_t g_lo = prev, g_hi = i < n ? v[i].lo : TOP_OF_USER;

		if (i < n && v[i].hi > prev)
			prev = v[i].hi;
		if (g_hi <= win + span)
			continue;
		if (g_lo < win + span)
			g_lo = win + span;
		if (stk_hi && g_hi > stk_lo)
			g_hi = stk_lo; /* the main stack's room stays free */
		if (g_hi > TOP_OF_USER)
			g_hi = TOP_OF_USER;
		if (g_hi > g_lo)
			reserve(g_lo, g_hi);
	}
	free(v);
	agent_log("steering the patch's load to %#lx (%zu reservations)",
		  (unsigned long)win, nreserved);
}

void direct_steer_end(void)
{
	size_t i;

	codemem_vmas_forget(); /* the dlopen mapped the patch */
	for (i = 0; i < nreserved; i++)
		munmap((void *)reserved[i].lo, reserved[i].hi - reserved[i].lo);
	free(reserved);
	reserved = NULL;
	nreserved = 0;
}

/* --- retargeting code in place ------------------------------------------ */

/* One 5-byte instruction to rewrite: an entry jump, or a direct call. */
struct retarget {
	uintptr_t at;
	struct relive_ops *o;       /* whose entry, or whose call */
	struct relive_call *call;   /* NULL: the entry jump */
	uint64_t to;
	uint8_t old[RELIVE_ARCH_JUMP_LEN], new[RELIVE_ARCH_JUMP_LEN];
	bool done;
};

_Static_assert(RELIVE_ARCH_CALL_LEN == RELIVE_ARCH_JUMP_LEN,
	       "a retarget rewrites jumps and calls of one length");

static int by_at(const void *a, const void *b)
{
	uint64_t x = ((const struct retarget *)a)->at;
	uint64_t y = ((const struct retarget *)b)->at;

	return x < y ? -1 : x > y;
}

/* The aligned 16-byte block that holds every byte where old and new
 * differ, or 0 if there is no such block. */
static uintptr_t block_of(const struct retarget *r)
{
	uintptr_t first = 0, last = 0;
	bool any = false;
	size_t i;

	for (i = 0; i < RELIVE_ARCH_JUMP_LEN; i++)
		if (r->old[i] != r->new[i]) {
			if (!any)
				first = r->at + i;
			last = r->at + i;
			any = true;
		}
	if (!any || (first & ~(uintptr_t)15) != (last & ~(uintptr_t)15))
		return 0;
	return first & ~(uintptr_t)15;
}

static bool store(const struct retarget *r, uintptr_t block)
{
	uint8_t cur[16], next[16];
	size_t i;

	memcpy(cur, (const void *)block, sizeof(cur));
	memcpy(next, cur, sizeof(next));
	/* The instruction may start before the block or end after it: the
	 * bytes outside it do not change, but must be what is expected too. */
	for (i = 0; i < RELIVE_ARCH_JUMP_LEN; i++) {
		uintptr_t a = r->at + i;

		if (a >= block && a < block + 16) {
			if (cur[a - block] != r->old[i])
				return false;
			next[a - block] = r->new[i];
		} else if (*(const uint8_t *)a != r->old[i]) {
			return false;
		}
	}
	return relive_arch_store16((void *)block, cur, next) == 0;
}

/*
 * Carries out r[0..n): for each run of instructions in one mapping, makes
 * the pages between the first and the last writable (unless the program
 * made them writable and executable itself), stores each one's block, and
 * gives the pages their protection back.
 */
static void retarget(struct retarget *r, size_t n)
{
	size_t i = 0;

	if (!n)
		return;
	qsort(r, n, sizeof(*r), by_at);
	while (i < n) {
		uintptr_t at = r[i].at, lo, hi;
		struct codemem_vma v;
		bool writable;
		size_t j;

		if (codemem_vma_at(at, &v) != 1 || !(v.prot & PROT_EXEC)) {
			i++;
			continue;
		}
		writable = v.prot & PROT_WRITE; /* the program's own RWX */
		for (j = i + 1; j < n && r[j].at + 16 < v.hi; j++)
			;
		lo = at & ~(PAGE - 1);
		hi = (r[j - 1].at + 16 + PAGE - 1) & ~(PAGE - 1);
		if (hi > v.hi)
			hi = v.hi;
		if (writable ||
		    !mprotect((void *)lo, hi - lo, v.prot | PROT_WRITE)) {
			for (; i < j; i++) {
				uintptr_t b = block_of(&r[i]);

				r[i].done = b && b + 16 <= hi && store(&r[i], b);
			}
			if (!writable && mprotect((void *)lo, hi - lo, v.prot))
				agent_log("cannot make %#lx-%#lx read-only "
					  "again: %s", (unsigned long)lo,
					  (unsigned long)hi, strerror(errno));
		}
		i = j;
	}
}

/* --- finding the direct calls ----------------------------------------------- */

struct wanted {
	uintptr_t entry;
	struct relive_ops *o;
};

struct candidate {
	uintptr_t at;
	struct relive_ops *o;
};

static int by_entry(const void *a, const void *b)
{
	uintptr_t x = ((const struct wanted *)a)->entry;
	uintptr_t y = ((const struct wanted *)b)->entry;

	return x < y ? -1 : x > y;
}

static const struct wanted *wanted_at(const struct wanted *w, size_t n,
				      uintptr_t entry)
{
	struct wanted key = { .entry = entry };

	return bsearch(&key, w, n, sizeof(*w), by_entry);
}

static bool add_call(struct relive_ops *o, uintptr_t at)
{
	struct relive_call *c = o->calls;

	/* room doubles at each power of two: 4, 8, 16 ... */
	if (o->ncalls < 4 ? !o->calls : !(o->ncalls & (o->ncalls - 1))) {
		size_t room = o->ncalls < 4 ? 4 : 2 * o->ncalls;

		if (!(c = realloc(o->calls, room * sizeof(*c))))
			return false;
		o->calls = c;
	}
	c[o->ncalls].at = at;
	c[o->ncalls].to = 0;
	o->ncalls++;
	return true;
}

/* The byte pattern of a call rel32 to one of w[0..n) in [lo, hi): every
 * opcode byte (found with memchr) whose operand leads to a wanted entry
 * and lies in one aligned 16-byte block (so that it can be rewritten in
 * one store).  Most are calls; the rest (the byte inside another
 * instruction) are told apart by decoding. */
static struct candidate *scan(uintptr_t lo, uintptr_t hi,
			      const struct wanted *w, size_t n, size_t *out)
{
	struct candidate *c = NULL;
	size_t nc = 0, cap = 0;
	uintptr_t min = w[0].entry, max = w[n - 1].entry, p, next_step;

	if (hi - lo < RELIVE_ARCH_CALL_LEN) {
		*out = 0;
		return NULL;
	}
	next_step = lo + 262144;
	for (p = lo; p + RELIVE_ARCH_CALL_LEN <= hi; p++) {
		const uint8_t *b;
		const struct wanted *o;
		uintptr_t to;
		int32_t rel;

		if (p >= next_step) {
			background_step(); /* a long text: pages to fault in */
			next_step = p + 262144;
		}
		b = memchr((const void *)p, RELIVE_ARCH_CALL_OPCODE,
			   hi - RELIVE_ARCH_CALL_LEN + 1 - p);
		if (!b)
			break;
		p = (uintptr_t)b;
		memcpy(&rel, b + 1, sizeof(rel));
		to = p + RELIVE_ARCH_CALL_LEN + (intptr_t)rel;
		if (to < min || to > max || !relive_arch_call_in_block(p) ||
		    !(o = wanted_at(w, n, to)))
			continue;
		if (nc == cap) {
			struct candidate *m;

			cap = cap ? 2 * cap : 64;
			if (!(m = realloc(c, cap * sizeof(*c)))) {
				free(c);
				*out = 0;
				return NULL;
			}
			c = m;
		}
		c[nc].at = p;
		c[nc++].o = o->o;
	}
	*out = nc;
	return c;
}

/* The size bytes of the function at start as built: a function that is
 * redirected already has its entry jump where its first instructions were,
 * which a decode from its first byte would read out of step, so those
 * bytes are decoded from the site's saved copy (*copy is then set, to be
 * freed).  NULL when out of memory. */
static const uint8_t *original_code(uintptr_t start, size_t size,
				    uint8_t **copy)
{
	struct relive_ops *fo = ops_find(start);
	size_t off;

	*copy = NULL;
	if (!fo)
		return (const uint8_t *)start;
	off = fo->site.site_addr - start;
	if (!(*copy = malloc(size)))
		return NULL;
	memcpy(*copy, (const void *)start, size);
	if (off + fo->site.displaced <= size)
		memcpy(*copy + off, fo->site.saved, fo->site.displaced);
	return *copy;
}

/* Keeps the candidates c[0..n) (ascending) that decoding shows to be
 * calls, and not in any function's first RELIVE_ARCH_PROLOGUE_MAX bytes
 * (where a redirection may displace them into an original copy).  Each
 * function holding candidates is decoded once, whatever their number. */
static size_t confirm(struct elfsym_file *f, uintptr_t bias,
		      struct candidate *c, size_t n)
{
	uint64_t *at = malloc(n * sizeof(*at));
	bool *is_call = malloc(n * sizeof(*is_call));
	size_t i = 0, j, k, found = 0;
	const uint8_t *code;
	uint8_t *copy;

	while (at && is_call && i < n) {
		struct elfsym_sym sym;
		uintptr_t start, end;

		if (elfsym_func_containing(f, c[i].at - bias, &sym)) {
			i++; /* between functions, or unknown: left alone */
			continue;
		}
		start = bias + sym.value;
		end = start + sym.size;
		for (j = i, k = 0; j < n && c[j].at < end; j++)
			at[k++] = c[j].at;
		code = original_code(start, sym.size, &copy);
		if (code)
			relive_arch_find_calls(code, sym.size, start, at, k,
					       is_call);
		else
			memset(is_call, 0, k * sizeof(*is_call));
		free(copy);
		for (k = 0; i < j; i++, k++)
			if (is_call[k] &&
			    c[i].at >= start + RELIVE_ARCH_PROLOGUE_MAX &&
			    c[i].at + RELIVE_ARCH_CALL_LEN <= end &&
			    add_call(c[i].o, c[i].at))
				found++;
		background_step();
	}
	free(at);
	free(is_call);
	return found;
}

/*
 * Finds the direct calls (call rel32 in the same object) to the functions
 * of ops[0..n), whose object's symbols are f, loaded at bias (f NULL:
 * read from path when a match needs them, if that file is the object the
 * process runs, by its build-id): one pass
 * over each code segment for the byte pattern, then a decode of each
 * function holding a match from its first byte, so that only a real call
 * instruction is ever rewritten.  Code without a function symbol is left
 * alone, as is a call whose operand straddles a 16-byte block.  Calls
 * through the PLT are direct_plt.c's; calls through a pointer keep
 * reaching the entry.
 */
void direct_find_calls(struct elfsym_file *f, const char *path,
		       uintptr_t bias, struct relive_ops **ops, size_t n)
{
	struct elfsym_file *opened = NULL;
	struct wanted *w;
	size_t i, m = 0, done = 0, found = 0;

	if (!direct_allowed() || !n || !(w = calloc(n, sizeof(*w))))
		return;
	for (i = 0; i < n; i++)
		if (ops[i] && !ops[i]->calls_found && !ops[i]->pinned) {
			ops[i]->calls_found = true;
			w[m].entry = ops[i]->func_addr;
			w[m++].o = ops[i];
		}
	qsort(w, m, sizeof(*w), by_entry);
	/* One code segment after the other (an object has one, usually). */
	while (done < m) {
		uintptr_t lo, hi;
		struct candidate *c;
		size_t nc, k, in = 0;
		struct wanted *seg;

		if (!code_segment_of(w[done].entry, &lo, &hi)) {
			done++;
			continue;
		}
		seg = w + done;
		while (done + in < m && w[done + in].entry < hi)
			in++;
		c = scan(lo, hi, seg, in, &nc);
		if (c && nc && !f) {
			char err[256], running[RELIVE_RES_ID];

			/* The functions holding the calls are known from
			 * the object's symbols only. */
			if (elfsym_open(path, &opened, err, sizeof(err)))
				agent_log("direct calls not looked for: %s",
					  err);
			else if (!resolution_same_build(opened, bias, running,
							sizeof(running))) {
				agent_log("direct calls not looked for: %s "
					  "is no longer the file mapped",
					  path);
				elfsym_close(opened);
				opened = NULL;
			}
			f = opened;
		}
		k = c && f ? confirm(f, bias, c, nc) : 0;
		found += k;
		free(c);
		done += in;
	}
	free(w);
	elfsym_close(opened);
	if (found)
		agent_log("%zu direct calls found to %zu functions", found, m);
}

/*
 * Takes the direct calls to o's function that relive found in its object's
 * file (relive/calls.c: the same scan and decode as direct_find_calls(),
 * from the file's bytes), instead of looking for them: each at bias +
 * calls[i], taken when the bytes the process has there are still a call
 * rel32 to the function's entry, in one aligned block, inside the code of
 * the object.  The list says where to look, never what to write.
 */
void direct_take_calls(struct relive_ops *o, uintptr_t bias,
		       const uint64_t *calls, size_t n)
{
	uintptr_t lo, hi;
	size_t i, found = 0;

	if (!direct_allowed() || !o || o->calls_found || o->pinned)
		return;
	o->calls_found = true;
	if (!code_segment_of(o->func_addr, &lo, &hi))
		return;
	for (i = 0; i < n; i++) {
		uintptr_t at = bias + (uintptr_t)calls[i];
		int32_t rel;

		if (at < lo || at > hi - RELIVE_ARCH_CALL_LEN ||
		    !relive_arch_call_in_block(at) ||
		    *(const uint8_t *)at != RELIVE_ARCH_CALL_OPCODE)
			continue;
		memcpy(&rel, (const void *)(at + 1), sizeof(rel));
		if (at + RELIVE_ARCH_CALL_LEN + (intptr_t)rel == o->func_addr &&
		    add_call(o, at))
			found++;
	}
	if (found)
		agent_log("%zu direct calls taken as relive found them", found);
}

/*
 * Could direct_find_calls() find a call to one of the functions at
 * entry[0..n)?  The same scan for the byte pattern, before any decode:
 * true when it matches anywhere (the decode, and the symbols that say
 * where each function starts, are libelf's and Zydis's: agent/libs.c).
 */
bool direct_calls_possible(const uintptr_t *entry, size_t n)
{
	struct wanted *w;
	size_t i, done = 0;
	bool found = false;

	if (!direct_allowed() || !n)
		return false;
	if (!(w = calloc(n, sizeof(*w))))
		return true;
	for (i = 0; i < n; i++)
		w[i].entry = entry[i];
	qsort(w, n, sizeof(*w), by_entry);
	while (done < n && !found) {
		uintptr_t lo, hi;
		struct candidate *c;
		size_t nc, in = 0;

		if (!code_segment_of(w[done].entry, &lo, &hi)) {
			done++;
			continue;
		}
		while (done + in < n && w[done + in].entry < hi)
			in++;
		c = scan(lo, hi, w + done, in, &nc);
		found = nc > 0;
		free(c);
		done += in;
	}
	free(w);
	return found;
}

/* How many direct calls lead straight to the version at target. */
size_t direct_calls_of(const struct relive_ops *o, uintptr_t target)
{
	size_t i, k = 0;

	for (i = 0; i < o->ncalls; i++)
		if (target && o->calls[i].to == target)
			k++;
	return k;
}

/* --- making them direct, and taking them back ------------------------------- */

/* The direct calls of ops[0..n) to where they lead in steady state: the
 * version of a direct entry, else the entry (after a transition that held
 * them on the stub, or when the function is no longer patched).  Returns
 * how many lead straight to a version now. */
static size_t make_calls_direct(struct relive_ops **ops, size_t n)
{
	struct retarget *r;
	size_t i, j, m = 0, done = 0;

	for (i = 0; i < n; i++)
		m += ops[i]->ncalls;
	if (!m || !(r = calloc(m, sizeof(*r))))
		return 0;
	for (i = 0, m = 0; i < n; i++) {
		struct relive_ops *o = ops[i];
		uintptr_t to = o->direct; /* 0: the entry */

		for (j = 0; j < o->ncalls; j++) {
			struct relive_call *c = &o->calls[j];

			if (c->to == to ||
			    relive_arch_encode_call(c->at,
						    c->to ? c->to : o->func_addr,
						    r[m].old) ||
			    relive_arch_encode_call(c->at, to ? to : o->func_addr,
						    r[m].new))
				continue;
			r[m].at = c->at;
			r[m].o = o;
			r[m].call = c;
			r[m++].to = to;
		}
	}
	retarget(r, m);
	for (i = 0; i < m; i++)
		if (r[i].done) {
			r[i].call->to = r[i].to;
			done += r[i].to != 0;
		}
	free(r);
	return done;
}

/*
 * With no transition in progress: the entry of every ops whose top version
 * is a new function within reach is made a direct jump to it, then the
 * direct calls to those functions are made calls of it (and any other
 * call calls its entry again).  Returns how many entries are direct now.
 */
size_t direct_make_all(void)
{
	struct relive_ops **ops;
	struct retarget *r;
	size_t i, n, m = 0, done = 0, have = 0, calls, slots;

	if (!direct_allowed() || !(ops = ops_all(&n)))
		return 0;
	if (!(r = calloc(n ? n : 1, sizeof(*r)))) {
		free(ops);
		return 0;
	}
	ops_sync_all(ops, n);
	for (i = 0; i < n; i++) {
		struct relive_ops *o = ops[i];
		uint64_t to = ops_top_target(o);

		if (o->direct)
			have++;
		if (o->pinned || !o->redirected || o->direct || !o->nstack ||
		    to == o->site.copy_addr ||
		    relive_arch_encode_jump(o->site.site_addr,
					    (uintptr_t)o->stub, r[m].old) ||
		    relive_arch_encode_jump(o->site.site_addr, to, r[m].new))
			continue;
		r[m].at = o->site.site_addr;
		r[m].o = o;
		r[m].to = to;
		m++;
	}
	retarget(r, m);
	for (i = 0; i < m; i++)
		if (r[i].done) {
			r[i].o->direct = r[i].to;
			done++;
		}
	free(r);
	calls = make_calls_direct(ops, n);
	slots = direct_plt_make(ops, n);
	free(ops);
	if (done || calls || slots)
		agent_log("%zu entries, %zu calls and %zu PLT slots made direct",
			  done, calls, slots);
	return have + done;
}

/*
 * The direct calls among ops[0..n) that lead to a version lead to the stub
 * instead (the entry, for a function without one), which gives each
 * thread its world's version as the entry would, one jump sooner.
 * Returns 0, or -EIO with the message set when one still leads to a
 * version.
 */
static int take_back_calls(struct relive_ops **ops, size_t n)
{
	struct retarget *r;
	size_t i, j, m = 0;
	int rc = 0;

	for (i = 0; i < n; i++)
		for (j = 0; j < ops[i]->ncalls; j++)
			if (ops[i]->calls[j].to &&
			    ops[i]->calls[j].to != (uintptr_t)ops[i]->stub)
				m++;
	if (!m)
		return 0;
	if (!(r = calloc(m, sizeof(*r)))) {
		agent_msg("out of memory");
		return -ENOMEM;
	}
	for (i = 0, m = 0; i < n; i++) {
		struct relive_ops *o = ops[i];
		uintptr_t to = o->redirected && o->stub ? (uintptr_t)o->stub : 0;

		for (j = 0; j < o->ncalls; j++) {
			struct relive_call *c = &o->calls[j];

			if (!c->to || c->to == (uintptr_t)o->stub ||
			    relive_arch_encode_call(c->at, c->to, r[m].old))
				continue;
			/* the entry, which the call reached as built, when
			 * the stub is out of its reach */
			r[m].to = to;
			if (!to || relive_arch_encode_call(c->at, to, r[m].new)) {
				r[m].to = 0;
				relive_arch_encode_call(c->at, o->func_addr,
							r[m].new);
			}
			r[m].at = c->at;
			r[m].o = o;
			r[m++].call = c;
		}
	}
	retarget(r, m);
	for (i = 0; i < m; i++) {
		uint8_t cur[RELIVE_ARCH_CALL_LEN];

		if (r[i].done) {
			r[i].call->to = r[i].to;
			continue;
		}
		/* Not taken back: read what the call is now, through the
		 * kernel (its object may be gone).  Only a call still
		 * leading to the version would bypass the transition. */
		if (codemem_read(cur, r[i].at, sizeof(cur))) {
			r[i].call->to = 0; /* its object is gone */
		} else if (!memcmp(cur, r[i].old, sizeof(cur))) {
			agent_msg("cannot make a call of %s at %#lx call its "
				  "stub again; nothing was changed",
				  r[i].o->name, (unsigned long)r[i].at);
			rc = -EIO;
		} else {
			/* someone else's code now, or the store landed */
			r[i].call->to = memcmp(cur, r[i].new, sizeof(cur)) ?
						0 : r[i].to;
		}
	}
	free(r);
	return rc;
}

/*
 * Before a transition starts (or a target changes): every direct call and
 * every direct entry among ops[0..n) leads to the stub again (the calls
 * straight to it).  Returns 0,
 * or -EIO with the message set (nothing may start: a direct entry or call
 * would bypass the transition).
 */
int direct_take_back(struct relive_ops **ops, size_t n)
{
	struct retarget *r;
	size_t i, m = 0;
	int rc = take_back_calls(ops, n);

	if (!rc)
		rc = direct_plt_take_back(ops, n);
	if (rc)
		return rc;
	for (i = 0; i < n; i++)
		if (ops[i]->direct)
			m++;
	if (!m)
		return 0;
	if (!(r = calloc(m, sizeof(*r)))) {
		agent_msg("out of memory");
		return -ENOMEM;
	}
	for (i = 0, m = 0; i < n; i++) {
		struct relive_ops *o = ops[i];

		if (!o->direct)
			continue;
		if (relive_arch_encode_jump(o->site.site_addr, o->direct,
					    r[m].old) ||
		    relive_arch_encode_jump(o->site.site_addr,
					    (uintptr_t)o->stub, r[m].new))
			continue;
		r[m].at = o->site.site_addr;
		r[m++].o = o;
	}
	retarget(r, m);
	for (i = 0; i < m; i++) {
		if (r[i].done) {
			r[i].o->direct = 0;
			continue;
		}
		/* Not taken back: ops_sync() reads what the entry is now.
		 * Only a jump still direct would bypass the transition (an
		 * object unmapped meanwhile has no entry left to take). */
		ops_sync(r[i].o);
		if (r[i].o->direct) {
			agent_msg("cannot point the entry of %s at its stub "
				  "again; nothing was changed",
				  r[i].o->name);
			rc = -EIO;
		}
	}
	free(r);
	return rc;
}

/* direct_take_back() for every ops of the process. */
int direct_take_back_all(void)
{
	size_t n;
	struct relive_ops **ops = ops_all(&n);
	int rc;

	if (!ops) {
		agent_msg("out of memory");
		return -ENOMEM;
	}
	rc = direct_take_back(ops, n);
	free(ops);
	return rc;
}
