/*
 * agent/patch.c - the per-function ops and their func_stack (kernel:
 * kernel/livepatch/patch.c).
 *
 * One ops exists for every function any patch has ever touched, and lives
 * as long as the process: its stub and its relocated original copy must
 * stay valid because a thread may be executing them at any time.  Keeping
 * it also means a function patched, unpatched and patched again needs no
 * new memory.
 *
 * What runs is chosen by the ops' targets (before, after), aligned 8-byte
 * words that the stub jumps through.  Changing behaviour is atomic stores
 * of them; code is written only to put the entry jump in place, to take it
 * away, or to make it direct in steady state (direct.c), and the first two
 * writes are planned here: a one-byte write (the stub sits at the site's
 * landing) is made here too, with no thread held; the others are carried
 * out by the controller while every thread is held (see
 * docs/architecture.md, "Code writes").
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "agent.h"
#include "libs.h"
#include "background.h"

#define OPS_CELL 256 /* stub (RELIVE_STUB_SIZE) + copy (RELIVE_ARCH_MAX_COPY) */

/*
 * The ops by entry address, in a table that starts at 64 buckets and grows
 * four times over whenever it holds more ops than buckets.  It lives on
 * the heap, and each new table is written (zeroed) before it is read: a
 * fixed table of 4096 buckets in the agent's zero-filled data was read
 * first, which maps the kernel's shared zero page, and the first ops put
 * in a bucket then took a second fault to replace that page, with a flush
 * of the TLBs of every CPU the process runs on: 6% of the agent's CPU in
 * `relive patch --all` of preloaded programs (docs/performance.md, round
 * 23).  Until the first table is allocated, one bucket serves.
 */
#define OPS_BITS_FIRST 6
#define OPS_BITS_MAX 20

static struct relive_ops *ops_one;
static struct relive_ops **ops_table = &ops_one;
static unsigned ops_bits; /* 0: ops_one alone */
static size_t ops_count;

static struct relive_ctl_write *plan;
static size_t nplan, capplan;
static uint64_t plan_gen = 1; /* ops with plan_mark == plan_gen are in it */

static size_t ops_hash(uintptr_t addr)
{
	if (!ops_bits)
		return 0;
	return (addr >> 4) * 0x9e3779b97f4a7c15ull >> (64 - ops_bits);
}

/* Every ops, newest first: ops_all() walks this, not the buckets. */
static struct relive_ops *ops_list;

/* A table of 1 << bits buckets holding every ops; on no memory the old
 * one stays (its chains grow longer, nothing is lost). */
static void ops_rehash(unsigned bits)
{
	size_t n = (size_t)1 << bits;
	struct relive_ops **t = malloc(n * sizeof(*t)), *o;

	if (!t)
		return;
	memset(t, 0, n * sizeof(*t));
	if (ops_bits)
		free(ops_table);
	ops_table = t;
	ops_bits = bits;
	for (o = ops_list; o; o = o->all_next) {
		size_t h = ops_hash(o->func_addr);

		o->next = t[h];
		t[h] = o;
	}
}

static void ops_insert(struct relive_ops *o)
{
	size_t h;

	if (!ops_bits)
		ops_rehash(OPS_BITS_FIRST);
	else if (ops_count >= ((size_t)1 << ops_bits) &&
		 ops_bits + 2 <= OPS_BITS_MAX)
		ops_rehash(ops_bits + 2);
	h = ops_hash(o->func_addr);
	o->next = ops_table[h];
	ops_table[h] = o;
	o->all_next = ops_list;
	o->all_prev = &ops_list;
	if (ops_list)
		ops_list->all_prev = &o->all_next;
	ops_list = o;
	ops_count++;
}

struct relive_ops *ops_find(uintptr_t func_addr)
{
	struct relive_ops *o;

	for (o = ops_table[ops_hash(func_addr)]; o; o = o->next)
		if (o->func_addr == func_addr)
			return o;
	return NULL;
}

/*
 * Places o's stub and writes it with the original copy (o->site.copy, for
 * copy_addr, just after the stub's place in its code cell): the stub goes
 * at the site's landing when the landing can be mapped (the entry jump is
 * then a one-byte write that needs no thread held), else at the start of
 * the cell, and stub and copy are then one write.  The targets go within
 * reach of the stub's RIP-relative loads.
 */
static int place_code(struct relive_ops *o, uint8_t *cell)
{
	uint8_t buf[RELIVE_STUB_SIZE + sizeof(o->site.copy)];
	uint8_t *stub = buf, *copy = buf + RELIVE_STUB_SIZE;
	uint64_t land = relive_arch_landing(&o->site);

	if (land && codemem_landing(land, RELIVE_STUB_SIZE)) {
		o->data = codemem_data(land, sizeof(struct relive_stub_data));
		if (o->data) {
			o->stub = (uint8_t *)(uintptr_t)land;
			o->landed = true;
		} else {
			codemem_landing_drop(land);
		}
	}
	if (!o->landed) {
		o->stub = cell;
		o->data = codemem_data((uintptr_t)cell,
				       sizeof(struct relive_stub_data));
		if (!o->data)
			return -ENOMEM;
	}
	o->data->before = o->site.copy_addr;
	o->data->after = o->site.copy_addr;
	o->data->switched = RELIVE_STATE_NEVER;
	memset(stub, 0xcc, RELIVE_STUB_SIZE);
	arch_emit_stub(stub, (uintptr_t)o->stub, o->data,
		       relive_agent_ctl.tls_offset);
	memcpy(copy, o->site.copy, o->site.copy_len);
	if (!o->landed) /* the stub and the copy side by side: one write */
		return codemem_write(cell, buf, RELIVE_STUB_SIZE +
				     o->site.copy_len) ? -EIO : 0;
	if (codemem_write(cell + RELIVE_STUB_SIZE, copy, o->site.copy_len))
		return -EIO;
	return codemem_write(o->stub, stub, RELIVE_STUB_SIZE) ? -EIO : 0;
}

/*
 * The site the controller prepared (relive/sites.c), when it is for these
 * bytes, moved to the copy at copy_addr; false: decode them here.
 */
static bool prepared_site(struct relive_site *site,
			  const struct relive_res_site *prep,
			  uintptr_t func_addr, size_t size, uintptr_t copy_addr)
{
	if (!resolution_site_fits(prep, func_addr, size))
		return false;
	*site = prep->site;
	return relive_arch_rebase_site(site, func_addr, copy_addr) == 0;
}

struct relive_ops *ops_get(uintptr_t func_addr, size_t size, const char *what,
			   const struct relive_res_site *prep)
{
	struct relive_ops *o = ops_find(func_addr);
	char err[256];
	uint8_t *code;

	if (o)
		return o;
	o = calloc(1, sizeof(*o));
	if (!o || !(o->name = strdup(what))) {
		free(o);
		agent_msg("out of memory preparing %s", what);
		return NULL;
	}
	code = codemem_code(func_addr, OPS_CELL);
	if (!code) {
		agent_msg("cannot patch %s: no free memory within 2 GiB of it "
			  "for its stub", what);
		goto fail;
	}
	if (prepared_site(&o->site, prep, func_addr, size,
			  (uintptr_t)code + RELIVE_STUB_SIZE)) {
		agent_log("%s: its site as decoded by relive", what);
	} else if (!libs_ready()) {
		/* libs.c: not foreseen by core_open(); the next load has
		 * them */
		libs_want();
		agent_msg("cannot patch %s: its entry must be decoded in the "
			  "process, and %s; nothing was changed, try again",
			  what, libs_error());
		goto fail;
	} else if (relive_arch_prepare_site((const uint8_t *)func_addr, size,
					    func_addr,
					    (uintptr_t)code + RELIVE_STUB_SIZE,
					    &o->site, err, sizeof(err))) {
		agent_msg("cannot patch %s: %s", what, err);
		goto fail;
	}
	o->func_addr = func_addr;
	o->size = size;
	if (place_code(o, code)) {
		agent_msg("cannot patch %s: writing its stub failed (%s)",
			  what, strerror(errno));
		goto fail;
	}
	ops_insert(o);
	return o;
fail:
	/* The code cell and the landing, if any, stay unused: they were
	 * never reachable. */
	free(o->name);
	free(o);
	return NULL;
}

void ops_push(struct relive_ops *o, struct relive_func *f)
{
	if (o->nstack == o->capstack) {
		size_t cap = o->capstack ? 2 * o->capstack : 4;
		struct relive_func **s = realloc(o->stack, cap * sizeof(*s));

		if (!s)
			abort(); /* cannot happen after the load reserved it */
		o->stack = s;
		o->capstack = cap;
	}
	o->stack[o->nstack++] = f;
	f->on_stack = true;
}

int ops_reserve(struct relive_ops *o)
{
	if (o->nstack < o->capstack)
		return 0;
	size_t cap = o->capstack ? 2 * o->capstack : 4;
	struct relive_func **s = realloc(o->stack, cap * sizeof(*s));

	if (!s)
		return -ENOMEM;
	o->stack = s;
	o->capstack = cap;
	return 0;
}

void ops_remove(struct relive_ops *o, struct relive_func *f)
{
	size_t i;

	for (i = 0; i < o->nstack; i++)
		if (o->stack[i] == f) {
			memmove(&o->stack[i], &o->stack[i + 1],
				(o->nstack - i - 1) * sizeof(*o->stack));
			o->nstack--;
			break;
		}
	f->on_stack = false;
}

static uint64_t func_target(const struct relive_ops *o,
			    const struct relive_func *f)
{
	if (!f || f->nop)
		return o->site.copy_addr;
	return (uintptr_t)f->new_func;
}

uint64_t ops_top_target(const struct relive_ops *o)
{
	return func_target(o, o->nstack ? o->stack[o->nstack - 1] : NULL);
}

/* Steady state: every thread runs target. */
void ops_set_target(struct relive_ops *o, uint64_t target)
{
	/* A direct entry (or call, or PLT slot) bypasses the stub: it must
	 * lead to the stub again first (transition_start() does so for all
	 * of a transition's ops at once; this is for any other change). */
	if (((o->direct && o->direct != target) ||
	     direct_plt_elsewhere(o, target)) &&
	    direct_take_back(&o, 1))
		agent_log("%s: %s", o->name, relive_agent_ctl.msg);
	/* Each store is an aligned 8-byte word, seen whole or not at all by
	 * the dispatcher's loads; `switched` last, so a thread that still
	 * matches it finds after set already. */
	__atomic_store_n(&o->data->before, target, __ATOMIC_RELEASE);
	__atomic_store_n(&o->data->after, target, __ATOMIC_RELEASE);
	__atomic_store_n(&o->data->switched, RELIVE_STATE_NEVER,
			 __ATOMIC_RELEASE);
}

/* --- the plan of code writes -------------------------------------------- */

void ops_plan_reset(void)
{
	nplan = 0;
	plan_gen++;
	relive_agent_ctl.plan = (uintptr_t)plan;
	relive_agent_ctl.nplan = 0;
	relive_agent_ctl.plan_after = 0;
}

/*
 * Makes the plan's one-byte writes here and now, and leaves in the plan
 * only the writes that need every thread held.  A one-byte write needs no
 * thread held (docs/architecture.md, "Code writes"), so the agent makes it
 * itself through /proc/self/mem, the controller's way, and spares the
 * controller the round trip.  A write whose bytes are not what the plan
 * expects stays in the plan: the controller reports it.
 */
void ops_plan_write_alone(void)
{
	size_t i, kept = 0;

	for (i = 0; i < nplan; i++) {
		struct relive_ctl_write *w = &plan[i];
		struct relive_ops *o = ops_find(w->func);
		uint8_t cur[sizeof(w->expect)];
		bool done = false;

		background_step();

		if (o && (w->flags & RELIVE_WRITE_FIRST_BYTE) && w->len > 1 &&
		    !memcmp(w->bytes + 1, w->expect + 1, w->len - 1u) &&
		    !codemem_read(cur, w->addr, w->len)) {
			if (!memcmp(cur, w->bytes, w->len))
				done = true; /* made by an interrupted run */
			else if (!memcmp(cur, w->expect, w->len))
				done = !codemem_write((void *)(uintptr_t)w->addr,
						      w->bytes, 1);
		}
		if (done) {
			o->redirected = w->redirect;
			relive_agent_ctl.written_alone++;
		} else
			plan[kept++] = *w;
	}
	nplan = kept;
	relive_agent_ctl.nplan = nplan;
}

/* After a completed transition: the entry jumps no version uses are taken
 * away, at once for the one-byte ones; the others are left in the plan for
 * the controller, and plan_after says so. */
int ops_plan_after_transition(void)
{
	int rc = ops_plan_restores();

	if (rc)
		return rc;
	ops_plan_write_alone();
	relive_agent_ctl.plan_after = 1;
	return 0;
}

static int plan_add(struct relive_ops *o, bool redirect)
{
	struct relive_ctl_write *w;
	uint8_t jump[RELIVE_ARCH_JUMP_LEN];

	if (o->plan_mark == plan_gen)
		return 0; /* planned already */
	if (relive_arch_encode_jump(o->site.site_addr, (uintptr_t)o->stub,
				    jump)) {
		agent_msg("cannot patch %s: its stub is out of reach", o->name);
		return -ERANGE;
	}
	if (nplan == capplan) {
		size_t cap = capplan ? 2 * capplan : 64;
		struct relive_ctl_write *p = realloc(plan, cap * sizeof(*p));

		if (!p) {
			agent_msg("out of memory planning code writes");
			return -ENOMEM;
		}
		plan = p;
		capplan = cap;
	}
	o->plan_mark = plan_gen;
	w = &plan[nplan++];
	memset(w, 0, sizeof(*w));
	w->addr = o->site.site_addr;
	w->len = RELIVE_ARCH_JUMP_LEN;
	w->redirect = redirect;
	if (redirect) {
		memcpy(w->expect, o->site.saved, w->len);
		memcpy(w->bytes, jump, w->len);
	} else {
		memcpy(w->expect, jump, w->len);
		memcpy(w->bytes, o->site.saved, w->len);
	}
	if (o->landed)
		w->flags = RELIVE_WRITE_FIRST_BYTE;
	w->n_insns = o->site.n_insns;
	memcpy(w->old_off, o->site.old_off, sizeof(w->old_off));
	memcpy(w->new_off, o->site.new_off, sizeof(w->new_off));
	w->copy = o->site.copy_addr;
	w->stub = (uintptr_t)o->stub;
	w->func = o->func_addr;
	relive_agent_ctl.plan = (uintptr_t)plan;
	relive_agent_ctl.nplan = nplan;
	return 0;
}

/* What the entry's bytes cur say about o (see ops_sync); !cur: they could
 * not be read. */
static void sync_from(struct relive_ops *o, const uint8_t *cur)
{
	uint8_t jump[RELIVE_ARCH_JUMP_LEN];

	if (relive_arch_encode_jump(o->site.site_addr, (uintptr_t)o->stub,
				    jump))
		return;
	if (!cur) {
		o->redirected = false;
		o->direct = 0;
		return;
	}
	o->redirected = !memcmp(cur, jump, sizeof(jump));
	if (o->redirected) {
		o->direct = 0;
	} else if (o->direct &&
		   !relive_arch_encode_jump(o->site.site_addr, o->direct,
					    jump) &&
		   !memcmp(cur, jump, sizeof(jump))) {
		o->redirected = true;
	} else {
		o->direct = 0;
	}
}

/* Whether the entry jump is in place, and whether it is direct (direct.c),
 * read from the code itself: a controller killed between its writes and
 * its report must not leave the agent believing otherwise. */
void ops_sync(struct relive_ops *o)
{
	ops_sync_all(&o, 1);
}

#define SYNC_BATCH 64

/* ops_sync() of ops[0..n), their entries read in one call per
 * SYNC_BATCH: a completed transition syncs every ops in the process. */
void ops_sync_all(struct relive_ops **ops, size_t n)
{
	uint8_t cur[SYNC_BATCH][RELIVE_ARCH_JUMP_LEN];
	struct iovec l[SYNC_BATCH], r[SYNC_BATCH];
	pid_t self;
	size_t i, k, m;

	if (n == 1) { /* one read through /proc/self/mem, open in a request */
		sync_from(ops[0], codemem_read(cur[0], ops[0]->site.site_addr,
					       RELIVE_ARCH_JUMP_LEN) ?
					  NULL : cur[0]);
		return;
	}
	self = getpid();
	for (i = 0; i < n; i += m) {
		size_t whole;
		ssize_t got;

		m = n - i < SYNC_BATCH ? n - i : SYNC_BATCH;
		for (k = 0; k < m; k++) {
			l[k].iov_base = cur[k];
			l[k].iov_len = RELIVE_ARCH_JUMP_LEN;
			r[k].iov_base = (void *)ops[i + k]->site.site_addr;
			r[k].iov_len = RELIVE_ARCH_JUMP_LEN;
		}
		/* Read through the kernel: an object unmapped behind the
		 * agent's back fails the read instead of faulting.  The read
		 * stops at the first entry it cannot read whole. */
		got = process_vm_readv(self, l, m, r, m, 0);
		whole = got > 0 ? (size_t)got / RELIVE_ARCH_JUMP_LEN : 0;
		for (k = 0; k < m; k++) {
			if (k < whole) {
				sync_from(ops[i + k], cur[k]);
			} else if (k == whole || m == 1) {
				sync_from(ops[i + k], NULL);
			} else {
				/* after the one that failed: alone */
				ssize_t one = process_vm_readv(self, &l[k], 1,
							      &r[k], 1, 0);

				sync_from(ops[i + k],
					  one == RELIVE_ARCH_JUMP_LEN ? cur[k]
								      : NULL);
			}
		}
	}
}

/* Plans the entry jumps of the patch's functions that are not redirected
 * yet, and reserves room on their func_stacks so enabling cannot fail. */
int ops_plan_redirects_for(struct relive_patch *p)
{
	struct relive_ops **ops;
	size_t i, j, n = 0;
	int rc = 0;

	for (i = 0; i < p->nobjs; i++)
		n += p->objs[i].nfuncs;
	if (!(ops = malloc((n ? n : 1) * sizeof(*ops)))) {
		agent_msg("out of memory planning code writes");
		return -ENOMEM;
	}
	n = 0;
	for (i = 0; i < p->nobjs; i++)
		for (j = 0; j < p->objs[i].nfuncs; j++)
			if (p->objs[i].funcs[j].ops)
				ops[n++] = p->objs[i].funcs[j].ops;
	ops_sync_all(ops, n);
	for (i = 0; i < n && !rc; i++) {
		rc = ops_reserve(ops[i]);
		if (!rc && !ops[i]->redirected)
			rc = plan_add(ops[i], true);
	}
	free(ops);
	return rc;
}

/* Plans the removal of entry jumps that no version uses any more. */
int ops_plan_restores(void)
{
	struct relive_ops **ops;
	size_t i, n;
	int rc = 0;

	ops_plan_reset();
	if (!(ops = ops_all(&n))) {
		agent_msg("out of memory planning code writes");
		return -ENOMEM;
	}
	ops_sync_all(ops, n);
	for (i = 0; i < n && !rc; i++)
		if (ops[i]->redirected && !ops[i]->nstack)
			rc = plan_add(ops[i], false);
	free(ops);
	return rc;
}

/* The controller carried the plan out. */
void ops_plan_done(void)
{
	size_t i;

	for (i = 0; i < nplan; i++) {
		struct relive_ops *o = ops_find(plan[i].func);

		if (o)
			o->redirected = plan[i].redirect;
	}
	ops_plan_reset();
}

/*
 * An ops for a hook of the agent's own (objects.c): the site is a 1-byte
 * `ret` followed by padding, the stub always sends to target, and the
 * "original copy" is that `ret`.
 */
struct relive_ops *ops_get_hook(uintptr_t site, uintptr_t target)
{
	struct relive_ops *o = calloc(1, sizeof(*o));
	static const uint8_t ret = 0xc3;
	uint8_t *code;

	if (!o || !(o->name = strdup("the dynamic loader's notification")) ||
	    !(code = codemem_code(site, OPS_CELL)))
		goto fail;
	o->func_addr = site;
	o->size = 1;
	o->pinned = true;
	o->site.func_addr = site;
	o->site.site_addr = site;
	o->site.displaced = RELIVE_ARCH_JUMP_LEN;
	memcpy(o->site.saved, (const void *)site, RELIVE_ARCH_JUMP_LEN);
	o->site.n_insns = 1;
	o->site.copy[0] = ret;
	o->site.copy_len = 1;
	o->site.copy_addr = (uintptr_t)code + RELIVE_STUB_SIZE;
	if (place_code(o, code))
		goto fail;
	o->data->before = o->data->after = target;
	o->data->switched = RELIVE_STATE_NEVER;
	ops_insert(o);
	return o;
fail:
	if (o)
		free(o->name);
	free(o);
	return NULL;
}

/* Plans o's entry jump unless it is in place already. */
int ops_plan_redirect(struct relive_ops *o)
{
	ops_sync(o);
	return o->redirected ? 0 : plan_add(o, true);
}

/* Every ops but the agent's own hooks, in a malloc'd array (or NULL). */
struct relive_ops **ops_all(size_t *n)
{
	struct relive_ops **all = NULL, *o;
	size_t cap = 0;

	*n = 0;
	for (o = ops_list; o; o = o->all_next) {
		if (o->pinned)
			continue;
		if (*n == cap) {
			size_t c = cap ? 2 * cap : 64;
			struct relive_ops **a = realloc(all, c * sizeof(*a));

			if (!a) {
				free(all);
				return NULL;
			}
			all = a;
			cap = c;
		}
		all[(*n)++] = o;
	}
	if (!all)
		all = malloc(sizeof(*all));
	return all;
}

/* The function's object was unloaded: its address may be reused. */
void ops_forget(struct relive_ops *o)
{
	struct relive_ops **pp;

	for (pp = &ops_table[ops_hash(o->func_addr)]; *pp; pp = &(*pp)->next)
		if (*pp == o) {
			*pp = o->next;
			break;
		}
	*o->all_prev = o->all_next;
	if (o->all_next)
		o->all_next->all_prev = o->all_prev;
	ops_count--;
	/* Its stub and copy stay mapped: a thread could still be leaving
	 * them.  The memory is not reused. */
	free(o->stack);
	free(o->calls);
	free(o->slots);
	free(o->name);
	free(o);
}
