/*
 * agent/shadow.c - shadow variables (kernel: kernel/livepatch/shadow.c).
 *
 * A patch that needs a new field in an existing structure attaches a shadow
 * variable to it, keyed by (object pointer, id).  Patched functions run on
 * many threads at once, so the table is split into stripes, each with its
 * own read-write lock: a lookup takes one stripe's lock for reading, and a
 * writer holds one stripe only for the time of one list change.  The
 * constructor runs under the stripe's write lock, as the kernel's runs under
 * klp_shadow_lock, so no thread can see a half-constructed variable.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"

#define SHADOW_STRIPES 64

struct shadow {
	struct shadow *next;
	void *obj;
	unsigned long id;
	_Alignas(16) unsigned char data[];
};

static struct {
	pthread_rwlock_t lock;
	struct shadow *head;
} stripes[SHADOW_STRIPES] = {
	[0 ... SHADOW_STRIPES - 1] = { PTHREAD_RWLOCK_INITIALIZER, NULL },
};

static unsigned stripe_of(void *obj, unsigned long id)
{
	uint64_t h = ((uintptr_t)obj >> 3) ^ (id * 0x9e3779b97f4a7c15ull);

	return (unsigned)((h * 0xff51afd7ed558ccdull) >> 58);
}

static struct shadow *find(unsigned s, void *obj, unsigned long id)
{
	struct shadow *sh;

	for (sh = stripes[s].head; sh; sh = sh->next)
		if (sh->obj == obj && sh->id == id)
			return sh;
	return NULL;
}

static void *shadow_get(void *obj, unsigned long id)
{
	unsigned s = stripe_of(obj, id);
	struct shadow *sh;

	pthread_rwlock_rdlock(&stripes[s].lock);
	sh = find(s, obj, id);
	pthread_rwlock_unlock(&stripes[s].lock);
	return sh ? sh->data : NULL;
}

static void *get_or_alloc(void *obj, unsigned long id, size_t size,
			  klp_shadow_ctor_t ctor, void *ctor_data,
			  bool warn_on_exist)
{
	unsigned s = stripe_of(obj, id);
	struct shadow *sh, *n;

	/* Allocate outside the lock, as the kernel does with GFP flags. */
	n = calloc(1, sizeof(*n) + size);
	if (!n)
		return NULL;
	n->obj = obj;
	n->id = id;
	pthread_rwlock_wrlock(&stripes[s].lock);
	sh = find(s, obj, id);
	if (sh) {
		pthread_rwlock_unlock(&stripes[s].lock);
		free(n);
		if (warn_on_exist)
			agent_log("shadow variable <%p, %lx> already exists",
				  obj, id);
		return warn_on_exist ? NULL : sh->data;
	}
	if (ctor && ctor(obj, n->data, ctor_data)) {
		pthread_rwlock_unlock(&stripes[s].lock);
		free(n);
		return NULL;
	}
	n->next = stripes[s].head;
	stripes[s].head = n;
	pthread_rwlock_unlock(&stripes[s].lock);
	return n->data;
}

static void *shadow_alloc(void *obj, unsigned long id, size_t size, int gfp,
			  klp_shadow_ctor_t ctor, void *ctor_data)
{
	return get_or_alloc(obj, id, size, ctor, ctor_data, true);
}

static void *shadow_get_or_alloc(void *obj, unsigned long id, size_t size,
				 int gfp, klp_shadow_ctor_t ctor,
				 void *ctor_data)
{
	return get_or_alloc(obj, id, size, ctor, ctor_data, false);
}

static void shadow_free(void *obj, unsigned long id, klp_shadow_dtor_t dtor)
{
	unsigned s = stripe_of(obj, id);
	struct shadow **pp, *sh = NULL;

	pthread_rwlock_wrlock(&stripes[s].lock);
	for (pp = &stripes[s].head; *pp; pp = &(*pp)->next)
		if ((*pp)->obj == obj && (*pp)->id == id) {
			sh = *pp;
			*pp = sh->next;
			if (dtor)
				dtor(obj, sh->data);
			break;
		}
	pthread_rwlock_unlock(&stripes[s].lock);
	free(sh);
}

static void shadow_free_all(unsigned long id, klp_shadow_dtor_t dtor)
{
	unsigned s;

	for (s = 0; s < SHADOW_STRIPES; s++) {
		struct shadow **pp, *sh, *dead = NULL;

		pthread_rwlock_wrlock(&stripes[s].lock);
		pp = &stripes[s].head;
		while ((sh = *pp)) {
			if (sh->id != id) {
				pp = &sh->next;
				continue;
			}
			*pp = sh->next;
			if (dtor)
				dtor(sh->obj, sh->data);
			sh->next = dead;
			dead = sh;
		}
		pthread_rwlock_unlock(&stripes[s].lock);
		while (dead) {
			sh = dead->next;
			free(dead);
			dead = sh;
		}
	}
}

const struct relive_api agent_api = {
	.abi = RELIVE_ABI_VERSION,
	.shadow_get = shadow_get,
	.shadow_alloc = shadow_alloc,
	.shadow_get_or_alloc = shadow_get_or_alloc,
	.shadow_free = shadow_free,
	.shadow_free_all = shadow_free_all,
	.get_state = state_get,
	.get_prev_state = state_get_prev,
};
