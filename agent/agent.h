/*
 * agent/agent.h - what the files of the agent share.  The agent is the
 * library relive loads into a target process; see docs/architecture.md.
 *
 * Locking: every change of agent state happens under agent_lock (requests
 * from the controller, and later the dynamic loader's notifications).  The
 * dispatcher and the patched functions never take it.
 */
#ifndef RELIVE_AGENT_H
#define RELIVE_AGENT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arch.h"
#include "ctl.h"
#include "relive/livepatch.h"

#define AGENT_EXPORT __attribute__((visibility("default")))

struct relive_ops;
struct relive_object;
struct relive_patch;

/* One function of one patch (kernel: struct klp_func). */
struct relive_func {
	const char *old_name;
	void *new_func;            /* NULL for a nop (atomic replace) */
	unsigned long old_sympos;
	bool nop;
	struct relive_object *obj;
	struct relive_ops *ops;    /* NULL while the object is not loaded */
	bool on_stack;             /* pushed on ops->stack */
	uintptr_t new_lo, new_hi;  /* code of new_func (kernel: new_size) */
	uintptr_t new_cold_lo, new_cold_hi; /* its "NAME.cold" part, if any */
};

/* One object of one patch (kernel: struct klp_object). */
struct relive_object {
	const char *name;          /* NULL: the main executable */
	struct klp_object *kobj;   /* NULL for objects added for nops */
	struct relive_patch *patch;
	struct relive_func *funcs;
	size_t nfuncs;
	bool loaded;
	bool patched;
	bool pre_patch_ran;        /* kernel: callbacks.post_unpatch_enabled */
	bool post_patch_ran;       /* pre_unpatch may run */
	char refused[256];         /* why a late object was left unpatched */
	char build_id[RELIVE_RES_ID];
	uintptr_t bias;
};

/* relive's resolution of a patch (ctl.h, struct relive_res) as checked
 * against it, for the request that loads it only (resolution.c). */
struct relive_patch_res {
	const struct relive_res *table; /* NULL: none */
	size_t first[RELIVE_RES_OBJS];  /* each object's first entry */
	uintptr_t patch_bias;           /* the patch's load bias */
	bool new_ok;                    /* the new versions' entries fit */
};

/* A loaded patch (kernel: struct klp_patch). */
struct relive_patch {
	char name[256];
	char *file;                 /* the path it was loaded from */
	void *handle;
	struct relive_patch_info *info;
	struct relive_object *objs;
	size_t nobjs;
	struct klp_reloc *relocs;   /* KLP_SYMBOL/KLP_ORIGINAL references */
	size_t nrelocs;
	struct relive_object *nop_objs; /* atomic replace, while in transition */
	size_t n_nop_objs;
	bool enabled;
	bool was_enabled;
	bool forced;
	bool replace;
	bool replaced;              /* disabled by a replacing patch */
	bool holds_libs;            /* holds libelf and Zydis (libs.c) */
	struct relive_patch_res res;
	struct relive_patch *next;  /* load order */
};

/* One patched function of the process (kernel: struct klp_ops). */
struct relive_stub_data {
	uint64_t before;            /* unswitched threads; steady: the top */
	uint64_t after;             /* transition: switched threads */
	uint32_t switched;          /* state word of switched threads;
				       RELIVE_STATE_NEVER in steady state */
	uint32_t pad;
};

/* A direct call to a patched function in the code of its own object
 * (direct.c), or a PLT slot of any object (direct_plt.c). */
struct relive_call {
	uintptr_t at;               /* the call instruction, or the slot */
	uintptr_t to;               /* 0: it leads to the entry, as built;
				       else where it leads instead (a
				       version, or the stub) */
};

struct relive_ops {
	uintptr_t func_addr;
	size_t size;                /* of the original function */
	uintptr_t cold_lo, cold_hi; /* its "NAME.cold" part (GCC's split of
				       the unlikely code), if any: a thread
				       there runs the function too */
	char *name;                 /* "func in object", for messages */
	struct relive_site site;
	uint8_t *stub;              /* code: the dispatcher */
	struct relive_stub_data *data;
	bool redirected;            /* the entry jump is in place */
	uintptr_t direct;           /* non-zero: the entry jump leads straight
				       to this version (direct.c) */
	struct relive_call *calls;  /* the direct calls to the function */
	size_t ncalls;
	bool calls_found;           /* calls[] was looked for */
	struct relive_call *slots;  /* PLT slots leading to a version
				       (direct_plt.c) */
	size_t nslots;
	bool pinned;                /* never restored (the loader hook) */
	bool landed;                /* the stub is at the site's landing: the
				       entry jump is a one-byte write */
	struct relive_func **stack; /* func_stack, bottom to top */
	size_t nstack, capstack;
	uint64_t plan_mark;         /* == plan_gen: in the current plan */
	uint64_t trans_mark;        /* == trans_gen_mark: in the transition */
	struct relive_ops *next;    /* in its hash bucket */
	struct relive_ops *all_next, **all_prev; /* among all ops */
};

extern pthread_mutex_t agent_lock;
extern struct relive_ctl relive_agent_ctl;
long relive_agent_request(void);
extern struct relive_patch *agent_patches;

/* agent.c */
void agent_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void agent_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* text.c: string copies and number reads without printf or scanf.  The
 * copies truncate to size (NUL included) like snprintf's "%s" and return
 * the length written; the appends write at dst + at and return the new
 * length.  text_u64 reads an unsigned number in base 10 or 16 (with an
 * optional 0x) after blanks, and returns where it stopped, or NULL when
 * there was no digit or it does not fit; text_skip_field returns the end
 * of the next blank-separated field, or NULL at the end of the line. */
size_t text_copy(char *dst, size_t size, const char *src);
size_t text_copyn(char *dst, size_t size, const char *src, size_t n);
size_t text_append(char *dst, size_t size, size_t at, const char *src);
size_t text_append_dec(char *dst, size_t size, size_t at, uint64_t v);
const char *text_u64(const char *s, uint64_t *v, int base);
const char *text_skip_field(const char *s);

/* service.c: the agent's own thread, which serves requests */
void service_start(void);
uintptr_t service_thread_start_object(void);
void service_done(uint64_t seq);

/* warm.c: what a request would pay for the first time, paid at start */
void warm_choose(void);
void warm_thread(void);

/* core.c: patches and objects */
struct relive_patch *core_open(const char *path, uint64_t seq, int *rc);
void core_discard(struct relive_patch *p);
int core_load(struct relive_patch *p);
int core_enable(const char *name);
int core_disable(const char *name);
int core_remove(const char *name, struct relive_patch **gone);
int core_abort(const char *name, struct relive_patch **gone);
int core_force(const char *name);
int core_complete(void);
void core_free_nops(struct relive_patch *p);
void core_snapshot(void);
struct relive_patch *core_find(const char *name);

/* objects.c: objects that come and go, relocations of KLP_SYMBOL */
bool code_segment_of(uintptr_t addr, uintptr_t *lo, uintptr_t *hi);
int klp_relocs_read(struct relive_patch *p);
int klp_relocs_apply_all(struct relive_patch *p);
/* Can every reference of p be written from relive's resolution, with no
 * symbol table read in the process (objects.c)? */
bool klp_relocs_served(struct relive_patch *p);
void klp_relocs_free(struct relive_patch *p);
int objects_plan_hook(void);
void objects_init(void);
int resolve_object(struct relive_object *o, const char *path);
bool find_loaded_object(const char *name, char *path, size_t pathlen,
			uintptr_t *bias);
bool find_other_copy(const char *name, uintptr_t skip, char *path,
		     size_t pathlen, uintptr_t *bias);
/* As find_loaded_object, by file name only (no file is read). */
bool find_loaded_file(const char *name, char *path, size_t pathlen,
		      uintptr_t *bias);
/* Is the object loaded from path one that is never unloaded: a library
 * the program itself names (DT_NEEDED)? */
bool objects_permanent(const char *path);

/* resolution.c: the controller's resolution of a patch (ctl.h) */
void resolution_init(void);
void resolution_begin(struct relive_patch *p, uint64_t seq);
void resolution_end(struct relive_patch *p);
/* The entry of f's new version, with the patch's load bias; NULL: none. */
const struct relive_res_func *resolution_new(const struct relive_func *f,
					     uintptr_t *bias);
/* The entries of o's functions when they were read from the build-id
 * running (the object's as mapped); NULL: none. */
const struct relive_res_func *resolution_object(const struct relive_object *o,
						const char *running);
/* The site the controller prepared for the function whose entry rf is (an
 * entry resolution_object() gave); NULL: none. */
const struct relive_res_site *resolution_site(const struct relive_object *o,
					      const struct relive_res_func *rf);
/* Is prep a site for the size bytes of the function at func_addr as they
 * are now (then the agent need not decode them)? */
/* The direct calls relive found to the function of rf (an entry that
 * resolution_object() gave for o): true with calls[0..*n), link-time
 * addresses in o's object, when relive looked for them there
 * (relive/calls.c); false: the agent looks itself. */
bool resolution_calls(const struct relive_object *o,
		      const struct relive_res_func *rf,
		      const uint64_t **calls, size_t *n);
/* relive's resolution of the KLP_SYMBOL (or, original, KLP_ORIGINAL)
 * reference to sym (at sympos) in o, when o's entries can be taken
 * (resolution_object() with the build-id mapped, running); NULL: the
 * agent looks it up itself. */
const struct relive_res_ref *resolution_ref(const struct relive_object *o,
					    const char *running,
					    const char *sym,
					    unsigned long sympos, bool original);
/* The same for a KLP_SYMBOL reference into obj (as the reference names
 * it), an object the patch replaces no function of, whose mapped build-id
 * is running. */
const struct relive_res_ref *resolution_xref(const struct relive_patch *p,
					     const char *obj,
					     const char *running,
					     const char *sym,
					     unsigned long sympos);
bool resolution_site_fits(const struct relive_res_site *prep,
			  uintptr_t func_addr, size_t size);
/* The build-id of the object loaded at bias, from its mapped notes, in
 * hex; "" when it has none. */
void resolution_running_build_id(uintptr_t bias, char *hex, size_t hexlen);
/* Is f the object loaded at bias, by their build-ids (true when either
 * has none)?  running[len] gets the mapped one. */
struct elfsym_file;
bool resolution_same_build(const struct elfsym_file *f, uintptr_t bias,
			   char *running, size_t len);
/* The same, and if not, says so in the reply, naming the object name
 * and the file path. */
bool resolution_file_runs(const struct elfsym_file *f, uintptr_t bias,
			  const char *name, const char *path);

/* transition.c */
#define RELIVE_STATE_INIT 1u
#define RELIVE_STATE_NEVER 0xffffffffu /* no thread, no generation */
void transition_init(void);
int transition_start(struct relive_patch *p, bool patching);
void transition_reverse(void);
void transition_complete(bool forced);
struct relive_patch *transition_patch(void);
void transition_forget_ops(struct relive_ops *ops);
bool transition_patching(void);
bool transition_gen_rising(void);

/* stackscan.c: may a sleeping thread's stack hold a frame of a version
 * it leaves?  (pure) */
struct stackscan {
	const struct relive_ctl_range *r; /* sorted by lo (stackscan_sort) */
	size_t n;
	uint64_t maxlen;              /* of the longest range */
	uint32_t world;               /* the world the thread leaves */
	bool any_world;               /* the thread is in the target world
					 already: look only for thread
					 creation and signal frames */
	uintptr_t create_lo, create_hi; /* libc's pthread_create */
	const uintptr_t *restorers;   /* signal frames' return addresses */
	size_t nrestorers;
	uintptr_t lo_all, hi_all;     /* bounds of all the code looked for
					 (stackscan_bounds) */
};
void stackscan_sort(struct relive_ctl_range *r, size_t n, uint64_t *maxlen);
/* Sets lo_all and hi_all from the ranges and pthread_create's. */
void stackscan_bounds(struct stackscan *s);
/* NULL: the word cannot be a return address or a saved PC into what the
 * thread leaves; else the name of that code. */
const char *stackscan_word(const struct stackscan *s, uintptr_t w);
const char *stackscan_words(const struct stackscan *s, const uintptr_t *w,
			    size_t n);
/* The same for the innermost frame's PC. */
const char *stackscan_pc(const struct stackscan *s, uintptr_t pc);

/* sleepers.c: switching the threads asleep in a system call */
void sleepers_init(void);
/* Switches every thread but the caller that sleeps in a system call with
 * nothing of what it leaves on its stack.  true: every thread of the
 * process is now in the target world, the transition can complete. */
bool sleepers_switch(void);

/* patch.c: ops and the func_stack */
struct relive_ops *ops_get(uintptr_t func_addr, size_t size, const char *what,
			   const struct relive_res_site *prep);
struct relive_ops *ops_find(uintptr_t func_addr);
void ops_push(struct relive_ops *ops, struct relive_func *f);
void ops_remove(struct relive_ops *ops, struct relive_func *f);
uint64_t ops_top_target(const struct relive_ops *ops);
void ops_set_target(struct relive_ops *ops, uint64_t target);
int ops_reserve(struct relive_ops *ops);
int ops_plan_redirects_for(struct relive_patch *p);
int ops_plan_restores(void);
void ops_plan_done(void);
struct relive_ops *ops_get_hook(uintptr_t site, uintptr_t target);
int ops_plan_redirect(struct relive_ops *ops);
void ops_forget(struct relive_ops *ops);
void ops_plan_reset(void);
void ops_plan_write_alone(void);
int ops_plan_after_transition(void);
void ops_sync(struct relive_ops *ops);
void ops_sync_all(struct relive_ops **ops, size_t n);
struct relive_ops **ops_all(size_t *n);

/* direct.c: in steady state, entry jumps straight to the version */
bool direct_allowed(void);
void direct_steer_begin(const char *path, uintptr_t lo, uintptr_t hi);
void direct_steer_end(void);
struct elfsym_file;
void direct_find_calls(struct elfsym_file *f, const char *path,
		       uintptr_t bias, struct relive_ops **ops, size_t n);
bool direct_calls_possible(const uintptr_t *entry, size_t n);
void direct_take_calls(struct relive_ops *o, uintptr_t bias,
		       const uint64_t *calls, size_t n);
size_t direct_calls_of(const struct relive_ops *o, uintptr_t target);
size_t direct_make_all(void);
int direct_take_back(struct relive_ops **ops, size_t n);
int direct_take_back_all(void);

/* direct_plt.c: in steady state, PLT slots straight to the version */
size_t direct_plt_make(struct relive_ops **ops, size_t n);
int direct_plt_take_back(struct relive_ops **ops, size_t n);
size_t direct_plt_count(const struct relive_ops *o, uintptr_t target);
bool direct_plt_elsewhere(const struct relive_ops *o, uintptr_t target);

/* codemem.c: memory for stubs and copies near the code they serve */
void *codemem_code(uintptr_t near, size_t len);
void *codemem_data(uintptr_t near, size_t len);
void codemem_prepare(void);
bool codemem_landing(uintptr_t at, size_t len);
void codemem_landing_drop(uintptr_t at);
int codemem_write(void *dst, const void *src, size_t len);
int codemem_read(void *dst, uintptr_t src, size_t len);
void codemem_begin(void);
void codemem_end(void);
struct codemem_vma {
	uintptr_t lo, hi;
	int prot;                   /* PROT_* */
	bool stack;                 /* the main thread's [stack] */
};
struct codemem_vma *codemem_vmas(size_t *n);
int codemem_vma_at(uintptr_t addr, struct codemem_vma *out);
void codemem_vmas_forget(void);
void codemem_growth_zones(uintptr_t *heap_lo, uintptr_t *heap_hi,
			  uintptr_t *stack_lo, uintptr_t *stack_hi);

/* arch/x86_64/stub.c */
#define RELIVE_STUB_SIZE 64
void arch_emit_stub(uint8_t *buf, uint64_t stub_addr,
		    const struct relive_stub_data *data, int64_t tls_offset);

/* state.c */
struct klp_state *state_get(const void *info, unsigned long id);
struct klp_state *state_get_prev(const void *info, unsigned long id);
int state_check_compatible(struct relive_patch *p);

/* shadow.c */
extern const struct relive_api agent_api;

/* The calling thread's state word (initial-exec TLS, kernel's
 * task->patch_state): the thread runs the "after" versions of the
 * transition in progress when it equals the transition's generation. */
extern __thread uint32_t relive_thread_state;

#endif
