/*
 * relive/unwind.h - a reliable unwind of a stopped thread's stack, from
 * outside the process (elfutils libdwfl, with relive's own thread
 * callbacks so libdwfl never attaches or stops anything itself).
 *
 * "Reliable" is the kernel's notion (arch_stack_walk_reliable): every frame
 * was unwound with call-frame information (.eh_frame or .debug_frame) and
 * the walk reached the thread's outermost frame.  Anything else - a PC in
 * code without CFI, a frame-pointer guess, an unreadable stack, a walk that
 * stops early - is reported as unreliable, never as a complete stack.
 */
#ifndef RELIVE_UNWIND_H
#define RELIVE_UNWIND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

struct unwinder;

/* Prepares unwinding in process pid (reads its memory map and the objects'
 * unwind tables; reuse one unwinder for all threads of a command).
 * Returns 0, or a negative errno with err filled. */
int unwind_open(pid_t pid, struct unwinder **u, char *err, size_t errlen);
void unwind_close(struct unwinder *u);
/* The same, shared by every step of one command on process pid: made on
 * first use, refreshed (objects mapped or unmapped since) on each later
 * one.  Not to be closed by the caller. */
int unwind_get(pid_t pid, struct unwinder **u, char *err, size_t errlen);
/* Call when objects were mapped or unmapped since unwind_open. */
int unwind_refresh(struct unwinder *u);

/*
 * Unwinds thread tid, which the caller holds stopped, starting from regs.
 * cb is called for each frame, innermost first, with the frame's PC (the
 * interrupted PC for the first frame, a return address for the others) and
 * returns 0 to go on or non-zero to stop early (the walk then counts as
 * reliable-so-far and unwind_thread returns 1).
 * Returns 0: reliable and complete; 1: stopped by cb; -EAGAIN: unreliable,
 * with why filled ("no unwind information for 0x4011d6 in target",
 * "unwinding failed at 0x...: ...").
 */
int unwind_thread(struct unwinder *u, pid_t tid,
		  const struct user_regs_struct *regs,
		  int (*cb)(uint64_t pc, void *arg), void *arg, char *why,
		  size_t whylen);

/* Closes the object files unwinders opened and no longer use (they are
 * otherwise kept for the next process: see unwind.c). */
/* Loads, before any thread is held, what unwinding a frame at pc needs;
 * true with the bounds of the object mapped there. */
bool unwind_warm(struct unwinder *u, uint64_t pc, uint64_t *lo,
		 uint64_t *hi);
void unwind_warm_exe(struct unwinder *u);

void unwind_drop_files(void);

/*
 * The unwinder is a library of its own, librelive-unwind.so (elfutils
 * libdw and the compression libraries it needs), which the controller
 * loads the first time it unwinds (relive/unwind_load.c): most commands
 * never do, now that the agent switches sleeping threads itself.  The
 * library exports this table under RELIVE_UNWIND_OPS and nothing else;
 * set_pace gives it the controller's pacing step (common/background.c),
 * whose clock it shares.
 */
struct unwind_ops {
	int (*open)(pid_t pid, struct unwinder **u, char *err, size_t errlen);
	void (*close)(struct unwinder *u);
	int (*get)(pid_t pid, struct unwinder **u, char *err, size_t errlen);
	int (*refresh)(struct unwinder *u);
	int (*thread)(struct unwinder *u, pid_t tid,
		      const struct user_regs_struct *regs,
		      int (*cb)(uint64_t pc, void *arg), void *arg, char *why,
		      size_t whylen);
	bool (*warm)(struct unwinder *u, uint64_t pc, uint64_t *lo,
		     uint64_t *hi);
	void (*warm_exe)(struct unwinder *u);
	void (*drop_files)(void);
	void (*set_pace)(bool (*step)(void));
};
#define RELIVE_UNWIND_FILE "librelive-unwind.so"
#define RELIVE_UNWIND_OPS "relive_unwind_ops"

#endif
