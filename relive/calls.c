/*
 * relive/calls.c - the direct calls to the functions a patch replaces,
 * found by relive in the object's file instead of inside every target.
 *
 * Once a transition completes, the agent rewrites every `call rel32` to a
 * patched function in the function's own object so that it calls the
 * version every thread runs (agent/direct.c).  Finding those calls means a
 * scan of the object's whole code for the opcode, then a decode, with
 * Zydis, of each function holding a match, found by its symbols with
 * libelf.  Inside the target that was the better part of the agent's
 * request: patching one function of Redis, the scan of its megabyte of
 * code ran twice (once to learn whether libelf and Zydis were needed at
 * all), then the agent loaded both libraries into Redis and read its
 * symbol table (docs/performance.md, round 27).
 *
 * relive has the symbol table already (it checked the patch with it) and
 * the file mapped; it scans and decodes the same bytes once per file and
 * command, whatever the number of processes, and sends each function's
 * calls with the resolution (common/ctl.h, struct relive_res, calls).  The
 * agent takes them only when the object's mapped build-id is the file's,
 * as for the rest of the resolution, and rewrites a call only when the
 * process's bytes there are still a call rel32 to the function's entry:
 * the list says where to look, never what to write.  The conditions are
 * the agent's own (agent/direct.c): the operand in one aligned 16-byte
 * block, the call past the first RELIVE_ARCH_PROLOGUE_MAX bytes of its
 * function and wholly inside it, an instruction boundary by decoding from
 * the function's first byte.  A list that does not fit is not sent: the
 * agent then looks itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arch.h"
#include "elfsym.h"
#include "patchfile.h"
#include "relive.h"

/* Each object's answer, kept for the next process that maps the same
 * file (`relive patch --all`). */
struct answer {
	struct stat st;             /* the file's identity */
	uint64_t values[RELIVE_RES_FUNCS]; /* its functions' entries */
	uint32_t ncalls[RELIVE_RES_FUNCS];
	uint64_t *calls;            /* by function, in turn */
	size_t nfuncs, total;
	bool valid, found;
};

static struct answer answers[RELIVE_RES_OBJS];

struct cand {
	uint64_t at;                /* link-time address of the opcode */
	size_t func;                /* the function it calls */
};

/* The function of funcs[0..n) whose entry is to, or n. */
static size_t func_at(const struct relive_res_func *funcs, size_t n,
		      uint64_t to)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (funcs[i].value == to)
			return i;
	return n;
}

/* Appends the calls rel32 to one of funcs[0..n) in the code at
 * [vaddr, vaddr + size) (its bytes at code) to *c. */
static int scan(const uint8_t *code, uint64_t vaddr, size_t size,
		const struct relive_res_func *funcs, size_t n,
		uint64_t min, uint64_t max, struct cand **c, size_t *nc,
		size_t *cap)
{
	const uint8_t *p = code, *end = code + size, *b;

	while (size >= RELIVE_ARCH_CALL_LEN && p <= end - RELIVE_ARCH_CALL_LEN &&
	       (b = memchr(p, RELIVE_ARCH_CALL_OPCODE,
			   (size_t)(end - RELIVE_ARCH_CALL_LEN + 1 - p)))) {
		uint64_t at = vaddr + (uint64_t)(b - code), to;
		int32_t rel;
		size_t f;

		p = b + 1;
		memcpy(&rel, b + 1, sizeof(rel));
		to = at + RELIVE_ARCH_CALL_LEN + (int64_t)rel;
		if (to < min || to > max || !relive_arch_call_in_block(at) ||
		    (f = func_at(funcs, n, to)) == n)
			continue;
		if (*nc == *cap) {
			struct cand *m;

			*cap = *cap ? 2 * *cap : 64;
			if (!(m = realloc(*c, *cap * sizeof(*m))))
				return -ENOMEM;
			*c = m;
		}
		(*c)[*nc].at = at;
		(*c)[(*nc)++].func = f;
	}
	return 0;
}

/* Keeps c[i] (ascending) where decoding its function, from the file's
 * bytes, shows a call instruction that the agent may rewrite.  Returns 0
 * or -ENOMEM (a list that misses calls is never sent as complete). */
static int confirm(struct elfsym_file *f, const uint8_t *raw, size_t rawlen,
		   const GElf_Phdr *ph, struct cand *c, size_t n, bool *keep)
{
	uint64_t *at = malloc((n ? n : 1) * sizeof(*at));
	bool *is_call = malloc((n ? n : 1) * sizeof(*is_call));
	size_t i = 0, j, k;
	int rc = at && is_call ? 0 : -ENOMEM;

	memset(keep, 0, n * sizeof(*keep));
	while (!rc && i < n) {
		struct elfsym_sym sym;
		uint64_t start, end;

		if (elfsym_func_containing(f, c[i].at, &sym) ||
		    sym.value < ph->p_vaddr ||
		    sym.value + sym.size > ph->p_vaddr + ph->p_filesz ||
		    ph->p_offset + (sym.value - ph->p_vaddr) + sym.size >
			    rawlen) {
			i++; /* between functions, or unknown: left alone */
			continue;
		}
		start = sym.value;
		end = start + sym.size;
		for (j = i, k = 0; j < n && c[j].at < end; j++)
			at[k++] = c[j].at;
		relive_arch_find_calls(raw + ph->p_offset +
					       (start - ph->p_vaddr),
				       sym.size, start, at, k, is_call);
		for (k = 0; i < j; i++, k++)
			keep[i] = is_call[k] &&
				  c[i].at >= start + RELIVE_ARCH_PROLOGUE_MAX &&
				  c[i].at + RELIVE_ARCH_CALL_LEN <= end;
	}
	free(at);
	free(is_call);
	return rc;
}

/* Finds the calls to funcs[0..n) in the file at path, whose symbols are
 * f, into *last: in the mapping the symbols' libelf handle has when it is
 * the file's, else in one of its own.  Returns 0, or a negative errno
 * (nothing found then). */
static int find(struct answer *last, const char *path, struct elfsym_file *f,
		const struct relive_res_func *funcs, size_t n)
{
	struct cand *c = NULL;
	size_t nc = 0, cap = 0, i, k, rawlen, nph;
	uint64_t min = UINT64_MAX, max = 0;
	const uint8_t *raw;
	bool *keep = NULL;
	Elf *elf = elfsym_elf(f), *own = NULL;
	int fd = -1, rc = -EIO;

	for (i = 0; i < n; i++) {
		if (funcs[i].value < min)
			min = funcs[i].value;
		if (funcs[i].value > max)
			max = funcs[i].value;
	}
	if (!elf) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		if (elf_version(EV_CURRENT) == EV_NONE ||
		    !(elf = own = elf_begin(fd, ELF_C_READ_MMAP, NULL)))
			goto out;
	}
	if (elf_kind(elf) != ELF_K_ELF || elf_getphdrnum(elf, &nph) ||
	    !(raw = (const uint8_t *)elf_rawfile(elf, &rawlen)))
		goto out;
	for (i = 0; i < nph; i++) {
		GElf_Phdr ph;
		size_t first = nc;

		if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_LOAD ||
		    !(ph.p_flags & PF_X))
			continue;
		if (ph.p_offset > rawlen || ph.p_filesz > rawlen - ph.p_offset)
			goto out;
		rc = scan(raw + ph.p_offset, ph.p_vaddr, ph.p_filesz, funcs,
			  n, min, max, &c, &nc, &cap);
		if (rc)
			goto out;
		rc = -EIO;
		if (nc > first) {
			bool *m = realloc(keep, nc * sizeof(*keep));

			if (!m)
				goto out;
			keep = m;
			if (confirm(f, raw, rawlen, &ph, c + first, nc - first,
				    keep + first))
				goto out;
		}
	}
	/* by function, each in address order */
	free(last->calls);
	last->calls = NULL;
	last->total = 0;
	memset(last->ncalls, 0, sizeof(last->ncalls));
	for (i = 0; i < nc; i++)
		if (keep[i]) {
			last->ncalls[c[i].func]++;
			last->total++;
		}
	if (last->total && !(last->calls = malloc(last->total *
						sizeof(*last->calls)))) {
		rc = -ENOMEM;
		goto out;
	}
	for (i = 0, k = 0; i < n; i++) {
		size_t j;

		for (j = 0; j < nc; j++)
			if (keep[j] && c[j].func == i)
				last->calls[k++] = c[j].at;
	}
	rc = 0;
out:
	free(c);
	free(keep);
	elf_end(own);
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Is last the answer for these functions, in this file? */
static bool cached(const struct answer *last, const struct stat *st,
		   const struct relive_res_func *funcs, size_t n)
{
	size_t i;

	if (!last->valid || last->nfuncs != n ||
	    !filecache_same_file(&last->st, st))
		return false;
	for (i = 0; i < n; i++)
		if (last->values[i] != funcs[i].value)
			return false;
	return true;
}

void calls_find(struct relive_res *r, const struct patchfile *pf, size_t obj,
		const struct elfsym_file *f, const char *path)
{
	struct relive_res_func *funcs = resolution_funcs_of(r, pf, obj);
	size_t n = pf->objs[obj].nfuncs, i, k;
	struct answer *last;
	struct stat st;

	/* For tests (tests/scenarios/test_direct.py): none sent, so that
	 * the agent looks itself, for the two to be compared. */
	if (!funcs || !n || obj >= r->nobjs ||
	    (!filecache_identity(f, &st) && stat(path, &st)) ||
	    getenv("RELIVE_TEST_CALLS_UNSENT"))
		return;
	last = &answers[obj];
	for (i = 0; i < n; i++)
		if (!funcs[i].value)
			return;
	if (!cached(last, &st, funcs, n)) {
		last->valid = false;
		/* The index by address is built on first use: the file stays
		 * the cache's, and is read only. */
		last->found = !find(last, path, (struct elfsym_file *)f,
				    funcs, n);
		last->st = st;
		last->nfuncs = n;
		for (i = 0; i < n; i++)
			last->values[i] = funcs[i].value;
		last->valid = true;
	}
	if (!last->found || last->total > RELIVE_RES_CALLS - r->ncalls)
		return; /* the agent looks itself */
	for (i = 0, k = 0; i < n; i++) {
		funcs[i].first_call = r->ncalls + (uint32_t)k;
		funcs[i].ncalls = last->ncalls[i];
		k += last->ncalls[i];
	}
	if (last->total)
		memcpy(r->calls + r->ncalls, last->calls,
		       last->total * sizeof(*last->calls));
	r->ncalls += (uint32_t)last->total;
	r->objs[obj].calls_found = 1;
}
