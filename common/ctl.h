/*
 * common/ctl.h - the agent's control block: the whole interface between the
 * controller (`relive`, another process) and the agent (inside the target).
 *
 * The agent exports one symbol, relive_agent_ctl, of this type.  The
 * controller finds it through the agent's symbol table and /proc/PID/maps,
 * reads and writes it with process_vm_readv/writev, and wakes the agent's
 * own thread (svc_*, agent/service.c) to act on a request, or, when there
 * is none, makes one borrowed thread of the target call
 * relive_agent_request().  Everything
 * the controller must read about the agent's state (the listing, the plan of
 * code writes) is reachable from here, so no request is needed to read.
 *
 * The layout is versioned by RELIVE_CTL_ABI: a controller refuses an agent
 * whose ABI or version differs from its own.
 */
#ifndef RELIVE_CTL_H
#define RELIVE_CTL_H

#include <stddef.h>
#include <stdint.h>

#include "arch.h"

#define RELIVE_CTL_MAGIC 0x4c5443564c45524cull /* "RELVCTL" */
#define RELIVE_CTL_ABI 11u

enum relive_op {
	RELIVE_OP_NONE = 0,
	/* arg: patch path.  dlopen, check, resolve, build ops; changes nothing
	 * that runs.  Fills the write plan with the entry jumps to write. */
	RELIVE_OP_LOAD,
	/* The controller wrote the plan: mark the sites redirected. */
	RELIVE_OP_WRITTEN,
	/* arg: patch name.  Start the transition to PATCHED. */
	RELIVE_OP_ENABLE,
	/* arg: patch name.  Start the transition to UNPATCHED (or reverse). */
	RELIVE_OP_DISABLE,
	/* Complete the transition in progress (every thread switched). */
	RELIVE_OP_COMPLETE,
	/* arg: patch name.  Drop a disabled patch: fills the plan with the
	 * entry restorations, then dlcloses the patch. */
	RELIVE_OP_REMOVE,
	/* arg: patch name.  Undo a LOAD whose writes or enable failed. */
	RELIVE_OP_ABORT,
	/* Fill the plan with restorations of entries no version uses. */
	RELIVE_OP_UNUSED_SITES,
	/* arg: patch name.  Complete its transition now (kernel: force). */
	RELIVE_OP_FORCE,
	/* arg: patch path.  LOAD, then, when the plan holds no write left
	 * for the controller, ENABLE of the patch loaded, in the same
	 * request; load_enabled says what happened.  An enable refused here
	 * (status and message are its own) leaves the patch loaded, for the
	 * controller to ABORT as after a refused ENABLE: never retried, its
	 * callbacks ran once. */
	RELIVE_OP_LOAD_ENABLE,
};

/* A code range a thread's stack is checked against: a version of a
 * function in transition.  world 0: the version unswitched threads run
 * ("before"); 1: the one switched threads run ("after"). */
struct relive_ctl_range {
	uint64_t lo, hi;
	uint32_t world;
	uint32_t flags;           /* RELIVE_RANGE_* */
	char name[112];           /* "func in object" */
};
/* lo is the entry of a patched function whose entry jump leads to its
 * stub: a thread about to run the instruction there goes through the
 * dispatcher, so the address alone (a function pointer) shows nothing
 * of this version on a stack. */
#define RELIVE_RANGE_ENTRY 1u

/* One code write of the plan: an entry jump, or the restoration of the
 * original bytes. */
/* expect and bytes differ in their first byte only: writing that byte is
 * the whole change, and no thread needs holding for it. */
#define RELIVE_WRITE_FIRST_BYTE 0x1

struct relive_ctl_write {
	uint64_t addr;            /* site address */
	uint8_t len;              /* bytes to write */
	uint8_t n_insns;          /* PC map (redirection only) */
	uint8_t redirect;         /* 1: writes the jump; 0: restores */
	uint8_t flags;            /* RELIVE_WRITE_* */
	uint8_t expect[32];       /* what must be there now */
	uint8_t bytes[32];        /* what to write */
	uint8_t old_off[16];      /* i-th displaced instruction at addr+old_off[i] */
	uint8_t new_off[16];      /* ... and at copy+new_off[i] in the copy */
	uint64_t copy;            /* the original copy */
	uint64_t stub;            /* the stub (a PC there needs no fix-up) */
	uint64_t func;            /* the function's entry (names its ops) */
};

/* Per-thread state, kernel's task->patch_state, for the listing. */
enum relive_thread_reason {
	RELIVE_REASON_ON_STACK = 1,
	RELIVE_REASON_UNRELIABLE,
	RELIVE_REASON_RUNNING,
};

struct relive_ctl {
	uint64_t magic;
	uint32_t abi;
	uint32_t busy;            /* a request is being served */
	char version[32];
	int64_t tls_offset;       /* thread state byte = thread pointer + this */

	/* Request. */
	uint32_t op;
	uint32_t server_tid;      /* the thread that served the last request:
				     the controller borrows it again, so the
				     agent's allocations stay in one thread's
				     malloc arena */
	char arg[4096];

	/* Reply. */
	int32_t status;           /* 0 or a negative errno */
	uint32_t written_alone;   /* one-byte entry writes the agent made
				     itself in this request */
	uint32_t load_enabled;    /* LOAD_ENABLE: 0 loaded only, 1 loaded
				     and enabled, 2 loaded, enable refused */
	uint32_t pad3;
	char msg[4096];

	/* Plan of code writes (agent memory, valid until the next request). */
	uint64_t plan;            /* struct relive_ctl_write[] */
	uint32_t nplan;
	uint32_t plan_after;      /* 1: the plan holds the removals of unused
				     entry jumps, made by the last COMPLETE */

	/* Listing: a JSON array of the patches, rewritten after every change.
	 * Read it between two equal even values of snap_seq. */
	uint64_t snap_seq;
	uint64_t snap;            /* char[] */
	uint64_t snap_len;

	/* The transition in progress (kernel: klp_transition_patch,
	 * klp_target_state).  A thread runs the "after" versions when its
	 * state word (thread pointer + tls_offset) equals trans_gen. */
	uint32_t trans_active;
	uint32_t trans_gen;
	uint32_t trans_after_is_target; /* 0 once the transition is reversed */
	uint32_t trans_target;          /* 1: patched, 0: unpatched */
	char trans_patch[256];
	uint64_t ranges;                /* struct relive_ctl_range[] */
	uint32_t nranges;
	uint32_t load_near_main;        /* LOAD: the patch changes functions
					   of the main executable, and is
					   best loaded within reach of it
					   (set with every request) */
	uint32_t threads;               /* the process's threads as relive
					   counted them before the request
					   (set with every request; 0:
					   unknown): the agent gives way
					   between its steps by it
					   (common/background.c) */
	uint32_t pad4;

	/* Written by the controller for the listing: a JSON array of the
	 * threads that block the transition ("[]" when none). */
	char pending[8192];

	/* The controller sets req_seq with each request; the agent copies it
	 * into done_seq (a release store, after the reply) when the request
	 * is served, so the controller waits without tracing the thread.
	 * From done_seq to done_ino, the fields are read in one system call
	 * before each request (relive/inject.c): keep them together. */
	uint64_t req_seq;
	uint64_t done_seq;

	/* The agent's own thread (agent/service.c), blocked in read(2) on a
	 * pipe: the controller opens /proc/PID/fd/svc_fd for writing, checks
	 * that it is the pipe svc_ino, and writes one byte to have the request
	 * served.  svc_tid 0: no such thread (not started, or lost in a fork
	 * child); the controller borrows a thread instead. */
	uint32_t svc_tid;
	int32_t svc_fd;
	uint64_t svc_ino;

	/* The agent's own thread switched itself (agent/transition.c,
	 * self_switch): its state word is svc_switched_to for the transition
	 * trans_gen == svc_switched_gen, and the controller need not stop it.
	 * svc_switched_gen 0: it did not. */
	uint32_t svc_switched_gen;
	uint32_t svc_switched_to;

	/* A page of shared memory (a memfd the agent mapped and closed): after
	 * setting done_seq, the agent stores its low 32 bits in the page's
	 * first word and wakes the futex there, so that a controller that
	 * maps the page too (through /proc/PID/map_files, checking that it is
	 * the file done_ino) sleeps until the request is served instead of
	 * polling done_seq.  The word is only a hint: done_seq decides.
	 * done_page 0: there is none; the controller polls. */
	uint64_t done_page;
	uint64_t done_ino;

	/* Where the agent keeps the controller's resolution of a patch (a
	 * struct relive_res in the agent's memory, below): written with a
	 * LOAD or LOAD_ENABLE request. */
	uint64_t res;

	/* The req_seq of the last request that completed a transition: a
	 * COMPLETE, or the request that started it when every other thread
	 * was asleep in a system call and the agent switched it there
	 * (agent/sleepers.c), so that the controller has no thread to
	 * check. */
	uint64_t completed_seq;
};

/*
 * The controller's resolution of the patch a LOAD request loads: what it
 * found in the object files' symbol tables when it checked the patch
 * (relive/resolution.c), so that the agent need not read the same tables
 * again inside the target, in every process.  It is only a shortcut: the
 * agent uses an object's entries when the build-id they were read from is
 * the build-id of the object as the process has it mapped, and the patch's
 * when the new versions are where they say; otherwise it reads the files
 * itself, as without it (agent/resolution.c).
 */
#define RELIVE_RES_OBJS 8
#define RELIVE_RES_FUNCS 256
#define RELIVE_RES_CALLS 2048
#define RELIVE_RES_REFS 256
#define RELIVE_RES_REF_NAMES 8192
#define RELIVE_RES_XOBJS 8
#define RELIVE_RES_ID 72          /* build-id in hex, with its NUL */

struct relive_res_func {
	/* The function replaced: its symbol's st_value and st_size in its
	 * object, and its "NAME.cold" part (0, 0: none). */
	uint64_t value, size;
	uint64_t cold, cold_size;
	/* The new version: its address in the patch file (link-time) and the
	 * size of the function symbol there (0: none; the agent then counts
	 * the patch's whole code segment), and its cold part. */
	uint64_t new_value, new_size;
	uint64_t new_cold, new_cold_size;
	/* Its direct calls, when its object's calls_found says so:
	 * calls[first_call .. first_call + ncalls) of struct relive_res. */
	uint32_t first_call, ncalls;
};

struct relive_res_obj {
	char build_id[RELIVE_RES_ID]; /* of the file resolved; "": not resolved
					 (not loaded, or no build-id) */
	uint32_t nfuncs;              /* the object's functions, in order */
	uint32_t calls_found;         /* 1: its functions' ncalls list every
					 direct call the agent would find
					 (relive/calls.c); 0: none looked for */
};

/*
 * The site of a function replaced (agent/arch.h, struct relive_site), made
 * by the controller from the function's bytes as it read them in the
 * process (relive/sites.c), for the copy at the function itself.  The agent
 * takes it only when the function's bytes still hash to `hash`, and moves it
 * to the copy it places (relive_arch_rebase_site); otherwise it decodes the
 * function itself.  Decoding inside the target touched Zydis's tables:
 * 94 us of a one-function request of 1.2-1.5 ms with 1000 processes alive
 * (docs/performance.md, "Many processes", round 18).
 */
struct relive_res_site {
	uint64_t hash;                /* relive_code_hash() of the bytes */
	uint64_t size;                /* how many: the symbol's st_size */
	uint32_t ok;                  /* 0: none made (the agent decodes) */
	uint32_t pad;
	struct relive_site site;
};

/*
 * A KLP_SYMBOL or KLP_ORIGINAL reference of the patch, looked up by the
 * controller in the same file and with the same rule as the functions of
 * the object it points into: the symbol's st_value, st_size and type.
 * Into one of the patch's own objects, or (KLP_SYMBOL only) into another
 * object the process has loaded, listed in xobjs[] with the build-id of
 * the file read.  One that names no symbol of a loaded object, or no
 * single one, is refused by the controller before any request; one into
 * an object not loaded, or past the table's room, is not listed, and the
 * agent looks it up itself.
 */
struct relive_res_ref {
	uint32_t obj;                 /* objs[] index; nobjs + k: xobjs[k] */
	uint32_t name;                /* its symbol: ref_names + name */
	uint64_t sympos;
	uint64_t value, size;
	uint32_t type;                /* STT_* */
	uint32_t original;            /* 1: a KLP_ORIGINAL reference */
};

/* An object the patch's references point into but whose functions it
 * does not replace. */
struct relive_res_xobj {
	uint32_t name;                /* as the references name it:
					 ref_names + name */
	uint32_t pad;
	char build_id[RELIVE_RES_ID]; /* of the file read */
};

struct relive_res {
	uint64_t seq;                 /* the request it belongs to (req_seq) */
	char patch_build_id[RELIVE_RES_ID];
	uint32_t nobjs;               /* the patch's objects, in order */
	uint32_t nfuncs;              /* funcs[]: each object's in turn */
	uint32_t ncalls;              /* calls[] in use */
	uint32_t nrefs;               /* refs[] in use */
	uint32_t ref_names_len;       /* ref_names[] in use */
	uint32_t nxobjs;              /* xobjs[] in use */
	struct relive_res_obj objs[RELIVE_RES_OBJS];
	struct relive_res_func funcs[RELIVE_RES_FUNCS];
	struct relive_res_site sites[RELIVE_RES_FUNCS]; /* as funcs[] */
	/* The direct calls (`call rel32` in the same object) to the
	 * functions replaced: each instruction's link-time address in its
	 * object. */
	uint64_t calls[RELIVE_RES_CALLS];
	struct relive_res_ref refs[RELIVE_RES_REFS];
	char ref_names[RELIVE_RES_REF_NAMES]; /* NUL-terminated names */
	struct relive_res_xobj xobjs[RELIVE_RES_XOBJS];
};

/*
 * The hash a prepared site is checked with: 64-bit FNV-1a of the bytes.
 * Not a defence against anyone (the controller is trusted); it tells the
 * agent that the bytes it runs are the bytes the controller decoded.
 */
static inline uint64_t relive_code_hash(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t h = 0xcbf29ce484222325ull;

	while (n--) {
		h ^= *b++;
		h *= 0x100000001b3ull;
	}
	return h;
}

/*
 * librelive-boot.so (agent/boot.c), the loader of the agent: its
 * constructor starts the boot thread on the agent beside it; relive reads
 * state until that thread has loaded the agent or failed to.  (When the
 * library was loaded already, relive writes path and calls
 * relive_boot_start() itself.)
 */
#define RELIVE_AGENT_FILE "librelive-agent.so"

enum relive_boot_state {
	RELIVE_BOOT_IDLE = 0,
	RELIVE_BOOT_RUNNING,      /* the thread is making the dlopen */
	RELIVE_BOOT_LOADED,       /* the agent is loaded */
	RELIVE_BOOT_FAILED,       /* error says why; nothing was loaded */
};

struct relive_boot {
	uint32_t state;           /* enum relive_boot_state, set last */
	uint32_t tid;             /* the boot thread (it ends after the dlopen) */
	uint64_t handle;          /* this library's dlopen handle */
	char path[4096];          /* the agent to load */
	char error[512];          /* dlerror() of a failed load */
};

#endif
