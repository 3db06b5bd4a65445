/*
 * cm_shadow_fix: shadow variables (kernel: klp_shadow_*), exercised by the
 * new versions of two functions of the cm_multi target.
 *
 * cm_shadow_op(op, obj, id, val), the value of a shadow variable being one
 * long set by its constructor to the ctor_data (val):
 *     0  get:           the value, or -1 when there is none
 *     1  alloc:         the new variable's value, or -1 (NULL: it exists)
 *     2  get_or_alloc:  the value of the existing or new variable
 *     3  free (dtor):   0
 *     4  free_all (dtor) of id: 0
 *     5  constructor calls so far
 *     6  destructor calls so far
 *     7  sum of the values the destructor saw
 *     8  sum of the counters of the 8 shared objects from obj on (stress)
 *
 * cm_shadow_stress(idx, iters, own, shared): iters rounds of get_or_alloc,
 * get, alloc (must fail), and every 16th round free, on the calling
 * thread's own object, plus a get_or_alloc and an atomic increment of a
 * counter on one of 8 shared objects.  Returns the number of mismatches.
 */
#include <relive/livepatch.h>

#define ID_OWN 0x51
#define ID_SHARED 0x52
#define THING_SIZE (4 * sizeof(long))

static long ctor_calls, dtor_calls, dtor_sum;

static int ctor_val(void *obj, void *shadow_data, void *ctor_data)
{
	(void)obj;
	*(long *)shadow_data = *(long *)ctor_data;
	__atomic_add_fetch(&ctor_calls, 1, __ATOMIC_SEQ_CST);
	return 0;
}

static void dtor_val(void *obj, void *shadow_data)
{
	(void)obj;
	__atomic_add_fetch(&dtor_calls, 1, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&dtor_sum, *(long *)shadow_data, __ATOMIC_SEQ_CST);
}

static long new_cm_shadow_op(long op, void *obj, long id, long val)
{
	long *p;

	switch (op) {
	case 0:
		p = klp_shadow_get(obj, (unsigned long)id);
		return p ? *p : -1;
	case 1:
		p = klp_shadow_alloc(obj, (unsigned long)id, sizeof(long), 0,
				     ctor_val, &val);
		return p ? *p : -1;
	case 2:
		p = klp_shadow_get_or_alloc(obj, (unsigned long)id,
					    sizeof(long), 0, ctor_val, &val);
		return p ? *p : -1;
	case 3:
		klp_shadow_free(obj, (unsigned long)id, dtor_val);
		return 0;
	case 4:
		klp_shadow_free_all((unsigned long)id, dtor_val);
		return 0;
	case 5:
		return __atomic_load_n(&ctor_calls, __ATOMIC_SEQ_CST);
	case 6:
		return __atomic_load_n(&dtor_calls, __ATOMIC_SEQ_CST);
	case 7:
		return __atomic_load_n(&dtor_sum, __ATOMIC_SEQ_CST);
	case 8: {
		long sum = 0;

		for (int i = 0; i < 8; i++) {
			p = klp_shadow_get((char *)obj + i * THING_SIZE,
					   ID_SHARED);
			if (p)
				sum += __atomic_load_n(p, __ATOMIC_SEQ_CST);
		}
		return sum;
	}
	}
	return -2;
}

struct own {
	long idx, count;
};

static int ctor_own(void *obj, void *shadow_data, void *ctor_data)
{
	struct own *o = shadow_data;

	(void)obj;
	o->idx = *(long *)ctor_data;
	o->count = 0;
	return 0;
}

static int ctor_zero(void *obj, void *shadow_data, void *ctor_data)
{
	(void)obj, (void)ctor_data;
	*(long *)shadow_data = 0;
	return 0;
}

static void dtor_own(void *obj, void *shadow_data)
{
	(void)obj;
	/* poison, so a use after free shows as a mismatch */
	((struct own *)shadow_data)->idx = -7;
}

static long new_cm_shadow_stress(long idx, long iters, void *own,
				 void *shared)
{
	long bad = 0;

	for (long i = 0; i < iters; i++) {
		struct own *o = klp_shadow_get_or_alloc(own, ID_OWN, sizeof(*o),
							0, ctor_own, &idx);
		long *s;

		if (!o || o->idx != idx) {
			bad++;
		} else {
			o->count++;
			if (klp_shadow_get(own, ID_OWN) != o)
				bad++;
			if (klp_shadow_alloc(own, ID_OWN, sizeof(*o), 0,
					     ctor_own, &idx) != NULL)
				bad++;
			if ((i & 15) == 15) {
				if (o->count != 16)
					bad++;
				klp_shadow_free(own, ID_OWN, dtor_own);
				if (klp_shadow_get(own, ID_OWN) != NULL)
					bad++;
			}
		}
		s = klp_shadow_get_or_alloc((char *)shared +
						    (i & 7) * THING_SIZE,
					    ID_SHARED, sizeof(long), 0,
					    ctor_zero, NULL);
		if (!s)
			bad++;
		else
			__atomic_add_fetch(s, 1, __ATOMIC_SEQ_CST);
	}
	return bad;
}

static struct klp_func funcs[] = {
	{ .old_name = "cm_shadow_op", .new_func = new_cm_shadow_op },
	{ .old_name = "cm_shadow_stress", .new_func = new_cm_shadow_stress },
	{ 0 }
};

static struct klp_object objs[] = {
	{ .name = NULL, .funcs = funcs },
	{ 0 }
};

static struct klp_patch patch = { .objs = objs };
RELIVE_PATCH(patch);
