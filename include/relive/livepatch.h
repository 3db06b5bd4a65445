/*
 * <relive/livepatch.h> - the patch author's API.
 *
 * A relive patch is an ordinary shared object that holds new versions of
 * functions of a running program and one descriptor, made with
 * RELIVE_PATCH(), that says which function of which object each new version
 * replaces.  The names are the Linux kernel's livepatch names wherever the
 * concept is the same (include/linux/livepatch.h): klp_func, klp_object,
 * klp_patch, klp_callbacks, klp_state, klp_shadow_*.
 *
 * Build a patch with nothing but the compiler:
 *
 *     cc -shared -fPIC -I include -o fix.so fix.c
 *
 * The patch's name is its file name without ".so".  Nothing in this header
 * needs linking against relive: the services of the agent (shadow variables,
 * states) are reached through a table the agent fills in when it loads the
 * patch, so a patch never binds a symbol of the target or of the agent by
 * name and can never interpose on them.
 */
#ifndef RELIVE_LIVEPATCH_H
#define RELIVE_LIVEPATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct klp_object;

/*
 * One function to replace.  old_name is the symbol in the object; old_sympos
 * is 0 when the name is unique in that object, N (1-based) to pick the Nth
 * symbol of that name in symbol-table order when a local name repeats.
 * new_func is the replacement, with the same prototype.
 */
struct klp_func {
	const char *old_name;
	void *new_func;
	unsigned long old_sympos;
};

/*
 * Callbacks of one object, with the kernel's symmetry: post_unpatch runs only
 * if pre_patch ran and succeeded, pre_unpatch only if post_patch ran.  A
 * non-zero return of pre_patch refuses the patch (or, for an object that is
 * loaded later, leaves that object unpatched).
 */
struct klp_callbacks {
	int (*pre_patch)(struct klp_object *obj);
	void (*post_patch)(struct klp_object *obj);
	void (*pre_unpatch)(struct klp_object *obj);
	void (*post_unpatch)(struct klp_object *obj);
};

/*
 * The functions of one target object.  name is NULL for the main executable,
 * otherwise the object's DT_SONAME or its file name ("libfoo.so.1").
 * funcs ends with an entry whose old_name is NULL.  build_id, when set, is
 * the GNU build-id of the one build the patch was made for, in hex; a patch
 * whose object has another build-id is refused before anything is written.
 */
struct klp_object {
	const char *name;
	struct klp_func *funcs;
	struct klp_callbacks callbacks;
	const char *build_id;
};

/*
 * A system state the patch introduces or takes over (kernel: struct
 * klp_state).  A replacing patch must carry every state installed by the
 * patches it replaces, at an equal or higher version.
 */
struct klp_state {
	unsigned long id;
	unsigned int version;
	void *data;
};

/*
 * The patch.  objs ends with an entry whose funcs is NULL; states, when set,
 * ends with an entry whose id is 0.  replace makes this a cumulative patch
 * that atomically replaces every patch applied before it.
 */
struct klp_patch {
	struct klp_object *objs;
	struct klp_state *states;
	bool replace;
};

/* Shadow variable constructor and destructor (kernel signatures). */
typedef int (*klp_shadow_ctor_t)(void *obj, void *shadow_data, void *ctor_data);
typedef void (*klp_shadow_dtor_t)(void *obj, void *shadow_data);

/*
 * Services the agent offers a loaded patch.  Filled in by the agent before
 * any callback or new function of the patch can run.
 */
struct relive_api {
	unsigned int abi;
	void *(*shadow_get)(void *obj, unsigned long id);
	void *(*shadow_alloc)(void *obj, unsigned long id, size_t size,
			      int gfp, klp_shadow_ctor_t ctor, void *ctor_data);
	void *(*shadow_get_or_alloc)(void *obj, unsigned long id, size_t size,
				     int gfp, klp_shadow_ctor_t ctor,
				     void *ctor_data);
	void (*shadow_free)(void *obj, unsigned long id, klp_shadow_dtor_t dtor);
	void (*shadow_free_all)(unsigned long id, klp_shadow_dtor_t dtor);
	struct klp_state *(*get_state)(const void *patch_info, unsigned long id);
	struct klp_state *(*get_prev_state)(const void *patch_info,
					    unsigned long id);
};

#define RELIVE_PATCH_MAGIC 0x4b4c5052u /* "RPLK" */
#define RELIVE_ABI_VERSION 1u

/* What RELIVE_PATCH() puts in the patch: found by the agent by name. */
struct relive_patch_info {
	uint32_t magic;
	uint32_t abi;
	struct klp_patch *patch;
	const struct relive_api *api;
};

/*
 * Makes this shared object a relive patch.  Use once, at file scope:
 *
 *     static struct klp_patch patch = { .objs = objs };
 *     RELIVE_PATCH(patch);
 */
#define RELIVE_PATCH(p)                                                        \
	__attribute__((visibility("protected"), used))                         \
	struct relive_patch_info relive_patch_info = {                         \
		RELIVE_PATCH_MAGIC, RELIVE_ABI_VERSION, &(p), NULL             \
	}

/*
 * A reference to a symbol of a target object that is not exported (a static
 * function or variable, a hidden symbol), resolved per object by the agent
 * from that object's full symbol table:
 *
 *     extern int counter KLP_SYMBOL("libplug.so", counter, 0);
 *     extern int helper(int) KLP_SYMBOL("main", helper, 0);
 *
 * The declaration gets a unique, weak, undefined symbol name, so the dynamic
 * loader can never bind it to a same-named symbol of another object and
 * loading the patch never fails because of it.  relive-build writes the
 * same reference as "relive.klp.sym.OBJ:SYM.POS", a form in which SYM may
 * contain dots (a static local "calls.0", a clone "f.isra.0").
 */
#define KLP_SYMBOL(objname, sym, sympos)                                       \
	__asm__("relive.klp.sym." objname "." #sym "." #sympos)              \
		__attribute__((weak))

/*
 * The original, unpatched code of a function the patch replaces (or any
 * function of a target object), callable from the patch:
 *
 *     extern int orig_compute(int) KLP_ORIGINAL("main", compute, 0);
 *
 * Calling compute by its own name from the new version would run the
 * patched version again; orig_compute runs the code as it was.
 */
#define KLP_ORIGINAL(objname, sym, sympos)                                     \
	__asm__("relive.klp.orig." objname "." #sym "." #sympos)             \
		__attribute__((weak))

/* Exported for the agent, bound locally inside the patch (never interposed). */
extern struct relive_patch_info relive_patch_info
	__attribute__((visibility("protected")));

static inline void *klp_shadow_get(void *obj, unsigned long id)
{
	return relive_patch_info.api->shadow_get(obj, id);
}

static inline void *klp_shadow_alloc(void *obj, unsigned long id, size_t size,
				     int gfp, klp_shadow_ctor_t ctor,
				     void *ctor_data)
{
	return relive_patch_info.api->shadow_alloc(obj, id, size, gfp, ctor,
						   ctor_data);
}

static inline void *klp_shadow_get_or_alloc(void *obj, unsigned long id,
					    size_t size, int gfp,
					    klp_shadow_ctor_t ctor,
					    void *ctor_data)
{
	return relive_patch_info.api->shadow_get_or_alloc(obj, id, size, gfp,
							  ctor, ctor_data);
}

static inline void klp_shadow_free(void *obj, unsigned long id,
				   klp_shadow_dtor_t dtor)
{
	relive_patch_info.api->shadow_free(obj, id, dtor);
}

static inline void klp_shadow_free_all(unsigned long id, klp_shadow_dtor_t dtor)
{
	relive_patch_info.api->shadow_free_all(id, dtor);
}

static inline struct klp_state *klp_get_state(unsigned long id)
{
	return relive_patch_info.api->get_state(&relive_patch_info, id);
}

static inline struct klp_state *klp_get_prev_state(unsigned long id)
{
	return relive_patch_info.api->get_prev_state(&relive_patch_info, id);
}

#ifdef __cplusplus
}
#endif

#endif /* RELIVE_LIVEPATCH_H */
