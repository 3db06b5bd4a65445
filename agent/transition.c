/*
 * agent/transition.c - the agent's half of the consistency model (kernel:
 * kernel/livepatch/transition.c and the enable/disable paths of core.c).
 *
 * A transition moves the functions of one patch from their "before"
 * versions to their "after" versions.  Starting it changes no thread: every
 * ops of the patch gets its before and after targets and its stub is armed
 * with the transition's generation, so the stub's dispatcher sends each
 * thread to the version of the world the thread is in.  A thread is in the
 * "after" world when its state word equals the transition's generation
 * (trans_gen); the controller switches threads one by one, after a reliable
 * unwind of each thread's stack shows none of the versions it leaves
 * (relive/transition.c).
 * Threads born during the transition start in the target world: the
 * agent's TLS initialisation image carries the target value, and a new
 * thread's stack is empty.
 *
 * When every thread is in the target world, completing the transition
 * sends every thread to the version to run, and makes the entry jumps lead
 * straight there where they can (direct.c), so steady state has no
 * per-thread cost at all.  A fresh generation per transition means no
 * value left in a thread from an earlier transition can ever count as
 * "switched".
 */
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"

static struct {
	struct relive_patch *patch;
	bool patching;              /* target: patched (false: unpatched) */
	struct relive_ops **ops;
	size_t nops;
} trans;

static uint32_t last_gen = RELIVE_STATE_INIT;
static bool gen_wrapped;            /* a generation may be below a word */
static uint32_t *tls_image;         /* the state word in the TLS image */

static struct relive_ctl_range *ranges;
static size_t nranges, capranges;

static int find_tls_image(struct dl_phdr_info *info, size_t size, void *arg)
{
	uintptr_t me = (uintptr_t)&relive_agent_ctl;
	const ElfW(Phdr) *tls = NULL;
	bool mine = false;
	int i;

	for (i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type == PT_TLS)
			tls = ph;
		if (ph->p_type == PT_LOAD &&
		    me >= info->dlpi_addr + ph->p_vaddr &&
		    me < info->dlpi_addr + ph->p_vaddr + ph->p_memsz)
			mine = true;
	}
	if (!mine)
		return 0;
	/* The state word is the agent's only thread-local variable, so it
	 * is the whole TLS image. */
	if (tls && tls->p_filesz == sizeof(relive_thread_state))
		*(uint32_t **)arg = (uint32_t *)(info->dlpi_addr +
						 tls->p_vaddr);
	return 1;
}

void transition_init(void)
{
	dl_iterate_phdr(find_tls_image, &tls_image);
	if (!tls_image)
		agent_log("no TLS image found: threads created during a "
			  "transition will be checked like the others");
}

/* New threads are born with this state word. */
static void set_newborn_state(uint32_t v)
{
	if (tls_image)
		codemem_write(tls_image, &v, sizeof(v));
}

static const char *objname(const struct relive_object *o)
{
	return o->name ? o->name : "main";
}

/* --- the code ranges a stack is checked against --------------------------- */

static int add_range(uintptr_t lo, uintptr_t hi, int world, const char *name,
		     uint32_t flags)
{
	struct relive_ctl_range *r;
	const char *q = strchr(name, '\''), *e = q ? strchr(q + 1, '\'') : NULL;

	if (nranges == capranges) {
		size_t cap = capranges ? 2 * capranges : 64;
		struct relive_ctl_range *n = realloc(ranges, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		ranges = n;
		capranges = cap;
	}
	r = &ranges[nranges++];
	memset(r, 0, sizeof(*r));
	r->lo = lo;
	r->hi = hi;
	r->world = world;
	r->flags = flags;
	/* ops names read "'func' in object": the listing wants func */
	if (q && e)
		text_copyn(r->name, sizeof(r->name), q + 1, (size_t)(e - q - 1));
	else
		text_copy(r->name, sizeof(r->name), name);
	return 0;
}

/* The ranges of the version `target` of ops, in world `world`. */
static int add_version(struct relive_ops *o, uint64_t target, int world)
{
	uintptr_t lo, hi;
	int rc;

	/* A thread in the stub may hold its old state word in %r11. */
	rc = add_range((uintptr_t)o->stub,
		       (uintptr_t)o->stub + RELIVE_STUB_SIZE, world, o->name,
		       0);
	if (rc)
		return rc;
	if (target == o->site.copy_addr) {
		rc = add_range(o->func_addr, o->func_addr + o->size, world,
			       o->name, o->redirected && !o->direct ?
						RELIVE_RANGE_ENTRY : 0);
		if (!rc)
			rc = add_range(o->site.copy_addr,
				       o->site.copy_addr + o->site.copy_len,
				       world, o->name, 0);
		if (!rc && o->cold_hi)
			rc = add_range(o->cold_lo, o->cold_hi, world, o->name,
				       0);
		return rc;
	}
	lo = target;
	hi = target + 1;
	for (size_t i = 0; i < o->nstack; i++)
		if ((uintptr_t)o->stack[i]->new_func == target) {
			const struct relive_func *f = o->stack[i];

			lo = f->new_lo;
			hi = f->new_hi;
			if (f->new_cold_hi) {
				rc = add_range(f->new_cold_lo, f->new_cold_hi,
					       world, o->name, 0);
				if (rc)
					return rc;
			}
		}
	return add_range(lo, hi, world, o->name, 0);
}

static void publish(void)
{
	struct relive_ctl *c = &relive_agent_ctl;

	c->ranges = (uintptr_t)ranges;
	c->nranges = nranges;
}

/* --- starting, reversing, completing -------------------------------------- */

static int collect_ops(struct relive_patch *p)
{
	static uint64_t mark;
	size_t i, j, n = 0;

	free(trans.ops);
	trans.ops = NULL;
	trans.nops = 0;
	for (i = 0; i < p->nobjs; i++)
		n += p->objs[i].nfuncs;
	for (i = 0; i < p->n_nop_objs; i++)
		n += p->nop_objs[i].nfuncs;
	trans.ops = calloc(n ? n : 1, sizeof(*trans.ops));
	if (!trans.ops)
		return -ENOMEM;
	mark++;
	for (i = 0; i < p->nobjs + p->n_nop_objs; i++) {
		struct relive_object *o = i < p->nobjs ?
			&p->objs[i] : &p->nop_objs[i - p->nobjs];

		if (!o->loaded)
			continue;
		for (j = 0; j < o->nfuncs; j++) {
			struct relive_ops *ops = o->funcs[j].ops;

			if (!ops || ops->trans_mark == mark)
				continue; /* two functions, one ops */
			ops->trans_mark = mark;
			trans.ops[trans.nops++] = ops;
		}
	}
	return 0;
}

/* The version an ops runs if the patch's functions are (not) on it. */
static uint64_t target_without(struct relive_ops *o, struct relive_patch *p)
{
	size_t i;

	for (i = o->nstack; i-- > 0;)
		if (o->stack[i]->obj->patch != p)
			return o->stack[i]->nop ? o->site.copy_addr :
						  (uintptr_t)o->stack[i]->new_func;
	return o->site.copy_addr;
}

/* Points every ops of the transition at the dispatcher and publishes the
 * ranges; before/after already set. */
static int arm(uint32_t gen)
{
	size_t i;
	int rc = 0;

	nranges = 0;
	for (i = 0; i < trans.nops && !rc; i++) {
		struct relive_ops *o = trans.ops[i];

		rc = add_version(o, o->data->before, 0);
		if (!rc)
			rc = add_version(o, o->data->after, 1);
	}
	if (rc)
		return rc;
	for (i = 0; i < trans.nops; i++)
		/* Pairs with the dispatcher's loads: after is visible before
		 * the generation that sends a thread there. */
		__atomic_store_n(&trans.ops[i]->data->switched, gen,
				 __ATOMIC_RELEASE);
	publish();
	return 0;
}

/*
 * The agent's own thread switches itself when it starts or reverses a
 * transition, so the controller need not stop it to check its stack
 * (kernel: a task switches when no function in transition is on its
 * stack; this thread knows its own).  Serving the request, its stack is
 * the agent's code over libc's thread start (start_thread, and clone3
 * below it): unless a function in transition lies in libc or in the agent,
 * none is on it.  Otherwise, or when another thread serves the request,
 * it is checked like any other.
 */
static void self_switch(void)
{
	struct relive_ctl *c = &relive_agent_ctl;
	uintptr_t libc = service_thread_start_object(), me;
	Dl_info di;
	size_t i;

	c->svc_switched_gen = 0;
	if (!libc || !c->svc_tid || (uint32_t)gettid() != c->svc_tid ||
	    !dladdr(&relive_agent_ctl, &di))
		return;
	me = (uintptr_t)di.dli_fbase;
	for (i = 0; i < trans.nops; i++)
		if (!dladdr((void *)trans.ops[i]->func_addr, &di) ||
		    (uintptr_t)di.dli_fbase == libc ||
		    (uintptr_t)di.dli_fbase == me)
			return;
	relive_thread_state = c->trans_after_is_target ? c->trans_gen : 0;
	c->svc_switched_to = relive_thread_state;
	c->svc_switched_gen = c->trans_gen;
}

int transition_start(struct relive_patch *p, bool patching)
{
	struct relive_ctl *c = &relive_agent_ctl;
	uint32_t gen;
	size_t i;
	int rc;

	rc = collect_ops(p);
	if (rc)
		return rc;
	gen = ++last_gen;
	/* The top bit marks a tentative switch (sleepers.c). */
	if (gen == 0 || gen == RELIVE_STATE_INIT || (gen & 0x80000000u)) {
		gen = last_gen = RELIVE_STATE_INIT + 1;
		gen_wrapped = true;
	}
	for (i = 0; i < trans.nops; i++) {
		struct relive_ops *o = trans.ops[i];

		/* No thread reads after yet (switched matches no one), and
		 * before already holds the top: the stores change nothing
		 * that runs. */
		__atomic_store_n(&o->data->before, ops_top_target(o),
				 __ATOMIC_RELAXED);
		__atomic_store_n(&o->data->after,
				 patching ? o->data->before :
					    target_without(o, p),
				 __ATOMIC_RELAXED);
	}
	if (patching) {
		/* Push the new versions (and nops) now: "after" is the top. */
		for (i = 0; i < p->nobjs + p->n_nop_objs; i++) {
			struct relive_object *o = i < p->nobjs ?
				&p->objs[i] : &p->nop_objs[i - p->nobjs];
			size_t j;

			if (!o->loaded)
				continue;
			for (j = 0; j < o->nfuncs; j++)
				ops_push(o->funcs[j].ops, &o->funcs[j]);
			o->patched = true;
		}
		for (i = 0; i < trans.nops; i++)
			__atomic_store_n(&trans.ops[i]->data->after,
					 ops_top_target(trans.ops[i]),
					 __ATOMIC_RELAXED);
	}
	trans.patch = p;
	trans.patching = patching;
	c->trans_gen = gen;
	c->trans_after_is_target = 1;
	c->trans_target = patching;
	text_copy(c->trans_patch, sizeof(c->trans_patch), p->name);
	text_copy(c->pending, sizeof(c->pending), "[]");
	rc = arm(gen);
	if (rc)
		return rc;
	/* Only now may a thread be in the "after" world: before every ops
	 * is armed, a thread born with the new word could run a version
	 * through a stub not yet armed and the next one through an armed
	 * stub, mixing worlds in one call chain. */
	set_newborn_state(gen);
	c->trans_active = 1;
	self_switch();
	agent_log("'%s': starting %s transition", p->name,
		  patching ? "patching" : "unpatching");
	return 0;
}

/* An ops of the transition whose object is being unloaded. */
void transition_forget_ops(struct relive_ops *o)
{
	bool found = false;
	size_t i;

	for (i = 0; i < trans.nops && !found; i++)
		if (trans.ops[i] == o) {
			trans.ops[i] = trans.ops[--trans.nops];
			found = true;
		}
	if (!found || !relive_agent_ctl.trans_active)
		return;
	nranges = 0;
	for (i = 0; i < trans.nops; i++) {
		add_version(trans.ops[i], trans.ops[i]->data->before, 0);
		add_version(trans.ops[i], trans.ops[i]->data->after, 1);
	}
	publish();
}

/* Is every generation given so far below the current one?  (Not after
 * 2^31 transitions in one process.) */
bool transition_gen_rising(void)
{
	return !gen_wrapped;
}

struct relive_patch *transition_patch(void)
{
	return relive_agent_ctl.trans_active ? trans.patch : NULL;
}

bool transition_patching(void)
{
	return trans.patching;
}

/*
 * kernel: klp_reverse_transition().  The threads already switched are now
 * the ones to switch back, under the same rule; the threads not switched
 * yet are already in the new target world.
 */
void transition_reverse(void)
{
	struct relive_ctl *c = &relive_agent_ctl;

	trans.patching = !trans.patching;
	c->trans_after_is_target = !c->trans_after_is_target;
	c->trans_target = trans.patching;
	set_newborn_state(c->trans_after_is_target ? c->trans_gen : 0);
	self_switch();
	agent_log("'%s': reversing transition to %s", trans.patch->name,
		  trans.patching ? "patched" : "unpatched");
}

static void run_post_callbacks(struct relive_patch *p, bool patched)
{
	size_t i;

	for (i = 0; i < p->nobjs; i++) {
		struct relive_object *o = &p->objs[i];
		struct klp_callbacks *cb = &o->kobj->callbacks;

		if (!o->loaded)
			continue;
		if (patched) {
			if (cb->post_patch)
				cb->post_patch(o->kobj);
			o->post_patch_ran = true;
		} else {
			if (cb->post_unpatch && o->pre_patch_ran)
				cb->post_unpatch(o->kobj);
			o->pre_patch_ran = false;
			o->post_patch_ran = false;
			o->patched = false;
		}
	}
}

static void pop_patch(struct relive_patch *p)
{
	size_t i, j;

	for (i = 0; i < p->nobjs + p->n_nop_objs; i++) {
		struct relive_object *o = i < p->nobjs ?
			&p->objs[i] : &p->nop_objs[i - p->nobjs];

		for (j = 0; j < o->nfuncs; j++)
			if (o->funcs[j].on_stack)
				ops_remove(o->funcs[j].ops, &o->funcs[j]);
		o->patched = false;
	}
}

/*
 * kernel: klp_complete_transition().  Every thread is in the target world
 * (or the transition is forced): send every thread to the version to run
 * (and make the entries direct where they can be), and finish what the
 * target state implies.
 */
void transition_complete(bool forced)
{
	struct relive_ctl *c = &relive_agent_ctl;
	struct relive_patch *p = trans.patch, *q;
	bool patched = trans.patching;
	size_t i;

	if (!c->trans_active)
		return;
	if (patched && p->replace) {
		/* kernel: klp_discard_replaced_patches(), then
		 * klp_discard_nops(). */
		for (q = agent_patches; q; q = q->next) {
			if (q == p || !q->enabled)
				continue;
			pop_patch(q);
			q->enabled = false;
			q->replaced = true;
			agent_log("'%s': replaced by '%s'", q->name, p->name);
		}
		for (i = 0; i < p->n_nop_objs; i++) {
			size_t j;

			for (j = 0; j < p->nop_objs[i].nfuncs; j++)
				if (p->nop_objs[i].funcs[j].on_stack)
					ops_remove(p->nop_objs[i].funcs[j].ops,
						   &p->nop_objs[i].funcs[j]);
		}
	}
	if (!patched)
		pop_patch(p);
	for (i = 0; i < trans.nops; i++)
		ops_set_target(trans.ops[i], ops_top_target(trans.ops[i]));
	/* Nothing needs the stubs' choice any more. */
	direct_make_all();
	if (patched && p->replace)
		core_free_nops(p);
	p->enabled = patched;
	if (forced)
		for (q = agent_patches; q; q = q->next)
			q->forced = true;
	c->trans_active = 0;
	nranges = 0;
	publish();
	text_copy(c->pending, sizeof(c->pending), "[]");
	agent_log("'%s': %s complete%s", p->name,
		  patched ? "patching" : "unpatching",
		  forced ? " (forced)" : "");
	run_post_callbacks(p, patched);
	trans.patch = NULL;
	free(trans.ops);
	trans.ops = NULL;
	trans.nops = 0;
}

const char *transition_objname(const struct relive_object *o)
{
	return objname(o);
}
