/*
 * agent/direct_plt.c - direct PLT slots: in steady state, another object's
 * calls of a patched function through its PLT reach the version without
 * the entry's jump.
 *
 * Why: a program calls a function of a library through its PLT, an
 * indirect jump through the GOT slot the dynamic loader filled with the
 * function's address.  Once the function is patched, that address is the
 * entry, whose jump leads to the version: one jump more per call than the
 * program had before.  A PLT slot is data read by one instruction (`jmp
 * *slot(%rip)`), so pointing it at the version is an aligned 8-byte store,
 * and the call then costs what it cost before the patch.
 *
 * Only the slots of the PLT (R_X86_64_JUMP_SLOT relocations, the
 * `.rela.plt` of every loaded object) are touched: a pointer to the
 * function taken by the program comes from other GOT entries, which keep
 * the entry's address, so function pointers still compare equal.  A slot
 * is a candidate when it holds the entry (or the stub, after a
 * transition) of a patched function; one the loader has not filled yet
 * (lazy binding) is filled later with the entry and costs the entry's jump.
 *
 * The slots are found again at each steady state (a few thousand
 * relocations for a program and its libraries: tens of microseconds), so
 * the agent keeps them only while they lead to a version: before any
 * transition over the function they lead to its stub (which gives each
 * thread its world's version) or, failing that, to the entry, by the same
 * argument as direct entries: the load of the slot and the jump are one
 * instruction, and a thread enters the new world only through a kernel
 * entry made after the store.  A slot on a read-only page (RELRO) is
 * written with the page writable for that instant, as code is.
 */
#include <errno.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "agent.h"

#define PAGE ((uintptr_t)4096)

/* What a slot may hold: the entry or the stub of o; and where it should
 * lead. */
struct holder {
	uintptr_t addr;
	struct relive_ops *o;
	uintptr_t to;
};

static int by_addr(const void *a, const void *b)
{
	uintptr_t x = ((const struct holder *)a)->addr;
	uintptr_t y = ((const struct holder *)b)->addr;

	return x < y ? -1 : x > y;
}

static const struct holder *holder_of(const struct holder *h, size_t n,
				      uintptr_t v)
{
	struct holder key = { .addr = v };

	return bsearch(&key, h, n, sizeof(*h), by_addr);
}

/*
 * Replaces the 8-byte slot's value old with new, making its page writable
 * for the store when it is not.  Returns 0, or -1 (the slot held something
 * else, or its page could not be written).
 */
static int slot_store(uintptr_t slot, uintptr_t old, uintptr_t new)
{
	struct codemem_vma v;
	uintptr_t page = slot & ~(PAGE - 1);
	bool ok;

	if ((slot & 7) || codemem_vma_at(slot, &v) != 1 ||
	    !(v.prot & PROT_READ))
		return -1;
	if (!(v.prot & PROT_WRITE) &&
	    mprotect((void *)page, PAGE, v.prot | PROT_WRITE))
		return -1;
	ok = __atomic_compare_exchange_n((uintptr_t *)slot, &old, new, false,
					 __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
	if (!(v.prot & PROT_WRITE) && mprotect((void *)page, PAGE, v.prot))
		agent_log("cannot make the GOT page %#lx read-only again: %s",
			  (unsigned long)page, strerror(errno));
	return ok ? 0 : -1;
}

static bool add_slot(struct relive_ops *o, uintptr_t slot, uintptr_t to)
{
	struct relive_call *s = realloc(o->slots,
					(o->nslots + 1) * sizeof(*s));

	if (!s)
		return false;
	o->slots = s;
	o->slots[o->nslots].at = slot;
	o->slots[o->nslots++].to = to;
	return true;
}

struct walk {
	const struct holder *h;
	size_t nh;
	size_t made;
};

/* One object's PLT slots: each one that holds the entry or the stub of a
 * patched function leads to its direct version, or to the entry when the
 * function has none any more. */
static int walk_object(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct walk *w = arg;
	const ElfW(Dyn) *d = NULL;
	uintptr_t jmprel = 0, relsz = 0, base = info->dlpi_addr;
	long pltrel = 0;
	int i;

	(void)size;
	for (i = 0; i < info->dlpi_phnum; i++)
		if (info->dlpi_phdr[i].p_type == PT_DYNAMIC)
			d = (const ElfW(Dyn) *)(base +
						info->dlpi_phdr[i].p_vaddr);
	for (; d && d->d_tag != DT_NULL; d++) {
		if (d->d_tag == DT_JMPREL)
			jmprel = d->d_un.d_ptr;
		else if (d->d_tag == DT_PLTRELSZ)
			relsz = d->d_un.d_val;
		else if (d->d_tag == DT_PLTREL)
			pltrel = (long)d->d_un.d_val;
	}
	if (!jmprel || pltrel != DT_RELA)
		return 0;
	/* The loader relocates these addresses in place where it may (a
	 * writable dynamic section); otherwise they are link-time ones. */
	if (jmprel < base)
		jmprel += base;
	for (uintptr_t k = 0; k < relsz / sizeof(ElfW(Rela)); k++) {
		const ElfW(Rela) *r = (const ElfW(Rela) *)jmprel + k;
		uintptr_t slot = base + r->r_offset, v;
		const struct holder *h;

		if (ELF64_R_TYPE(r->r_info) != RELIVE_ARCH_R_JUMP_SLOT)
			continue;
		v = __atomic_load_n((const uintptr_t *)slot, __ATOMIC_RELAXED);
		if (!(h = holder_of(w->h, w->nh, v)) || v == h->to ||
		    slot_store(slot, v, h->to))
			continue;
		if (h->to != h->o->func_addr && add_slot(h->o, slot, h->to))
			w->made++;
	}
	return 0;
}

/*
 * With no transition in progress: every PLT slot of every loaded object
 * that holds the entry (or the stub) of one of ops[0..n) leads to its top
 * version, or to the entry when the function is no longer patched.
 * Returns how many lead to a version.
 */
size_t direct_plt_make(struct relive_ops **ops, size_t n)
{
	struct holder *h;
	struct walk w = { 0 };
	size_t i;

	if (!direct_allowed() || !(h = calloc(2 * n + 1, sizeof(*h))))
		return 0;
	w.h = h;
	for (i = 0; i < n; i++) {
		struct relive_ops *o = ops[i];

		uintptr_t to = ops_top_target(o);

		if (o->pinned || !o->redirected)
			continue;
		/* A slot holds 64 bits: it reaches any version, even one
		 * the entry's jump cannot. */
		if (!o->nstack || to == o->site.copy_addr)
			to = o->func_addr;
		h[w.nh].addr = o->func_addr;
		h[w.nh].to = to;
		h[w.nh++].o = o;
		if (o->stub) {
			h[w.nh].addr = (uintptr_t)o->stub;
			h[w.nh].to = to;
			h[w.nh++].o = o;
		}
	}
	if (w.nh) {
		qsort(h, w.nh, sizeof(*h), by_addr);
		dl_iterate_phdr(walk_object, &w);
	}
	free(h);
	return w.made;
}

/*
 * Before a transition: the slots that lead to a version of one of
 * ops[0..n) lead to its stub (or its entry).  Returns 0, or -EIO with the
 * message set when one still leads to the version.
 */
int direct_plt_take_back(struct relive_ops **ops, size_t n)
{
	size_t i, j;
	int rc = 0;

	for (i = 0; i < n; i++) {
		struct relive_ops *o = ops[i];
		uintptr_t to = o->redirected && o->stub ? (uintptr_t)o->stub :
							  o->func_addr;
		size_t kept = 0;

		for (j = 0; j < o->nslots; j++) {
			struct relive_call c = o->slots[j];
			struct codemem_vma vma;
			uintptr_t v = 0;

			if (!slot_store(c.at, c.to, to))
				continue;
			/* Not stored: gone (unmapped), changed by the
			 * program, or a page that cannot be written. */
			if (codemem_vma_at(c.at, &vma) == 1 &&
			    (vma.prot & PROT_READ))
				v = __atomic_load_n((const uintptr_t *)c.at,
						    __ATOMIC_RELAXED);
			if (v && v == c.to) {
				agent_msg("cannot make the PLT slot %#lx of %s "
					  "lead to its stub again; nothing was "
					  "changed", (unsigned long)c.at,
					  o->name);
				o->slots[kept++] = c;
				rc = -EIO;
			}
		}
		o->nslots = kept;
	}
	return rc;
}

/* How many PLT slots lead straight to the version at target. */
size_t direct_plt_count(const struct relive_ops *o, uintptr_t target)
{
	size_t i, k = 0;

	for (i = 0; i < o->nslots; i++)
		if (o->slots[i].to == target)
			k++;
	return k;
}

/* Whether a PLT slot of o leads to a version other than target. */
bool direct_plt_elsewhere(const struct relive_ops *o, uintptr_t target)
{
	return direct_plt_count(o, target) != o->nslots;
}
